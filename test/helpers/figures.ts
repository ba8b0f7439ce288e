/**
 * Measured figures from the fault tests (kill rounds, cancel latency, ...):
 * printed, and kept in test-results/figures/<name>.json for the closing note.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from '../../stack/config';

export function recordFigures(name: string, figures: Record<string, unknown>): void {
  const dir = path.join(REPO_ROOT, 'test-results', 'figures');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(figures, null, 2) + '\n');
  process.stderr.write(`[figures] ${name}: ${JSON.stringify(figures)}\n`);
}
