/**
 * Prints `N passed, M failed` as the last line of a jest run, so that CI shows
 * at a glance a run that executed no test. Also writes the numbers to
 * test-results/summary.json for .ci/run. For a test file that failed, names the
 * file its workers logged to (test/helpers/test-log.ts), which the terminal
 * does not show.
 */
const fs = require('node:fs');
const path = require('node:path');

class SummaryReporter {
  constructor() {
    this.failedLogs = [];
  }

  onTestResult(_test, result) {
    const dir = process.env.PANTHEON_TEST_LOG_DIR;
    if (!dir || (result.numFailingTests === 0 && !result.testExecError)) return;
    const log = path.join(dir, `${path.basename(result.testFilePath)}.log`);
    if (fs.existsSync(log)) this.failedLogs.push(log);
  }

  onRunComplete(_contexts, results) {
    for (const log of this.failedLogs) process.stdout.write(`\nworker logs of a failed test file: ${log}`);
    const passed = results.numPassedTests;
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    const dir = path.join(process.cwd(), 'test-results');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'summary.json'), JSON.stringify({ passed, failed }) + '\n');
    process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
  }
}

module.exports = SummaryReporter;
