/**
 * Bundles workflows/ for the Temporal worker (webpack, once) and writes the
 * bundle to a file. Workers then load the file instead of bundling at start,
 * which keeps webpack out of the worker's memory and its start fast.
 *
 *   tsx stack/workflow-bundle.ts [out-file]   (what workers/main.ts runs in a child process)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { loadStackConfig, REPO_ROOT } from './config';

const noop = () => undefined;
const quietLogger = {
  trace: noop,
  debug: noop,
  info: noop,
  warn: console.warn,
  error: console.error,
  log: noop,
};

export function defaultBundlePath(): string {
  return path.join(loadStackConfig().stateDir, 'workflow-bundle.js');
}

export async function buildWorkflowBundle(outFile: string = defaultBundlePath()): Promise<string> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: path.join(REPO_ROOT, 'agents', 'workflows.ts'),
    logger: quietLogger,
    // The SDK requires an inline source map and keeps it parsed in the workflow thread to map stack
    // traces. Its default map carries every bundled module's source text and column mappings: 2.3 of the
    // bundle's 3.6 MB, held by each worker for its lifetime. Lines and file names are all a stack trace
    // (and the Web UI's stack tab) shows without `showStackTraceSources`, which the worker leaves off:
    // without the sources the worker's RSS was ~50 MB lower under a fan-out (bench/README.md).
    webpackConfigHook: (config) => ({ ...config, devtool: 'inline-nosources-cheap-module-source-map' }),
  });
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  // Write then rename, so a concurrent reader never sees half a bundle.
  const tmp = `${outFile}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, code);
  fs.renameSync(tmp, outFile);
  return outFile;
}

if (require.main === module) {
  buildWorkflowBundle(process.argv[2]).then(
    (file) => process.stderr.write(`workflow bundle written to ${file}\n`),
    (err: unknown) => {
      process.stderr.write(`bundling failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
