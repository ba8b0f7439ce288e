/**
 * The helper protocol never drops a line: a real Python process that garbles
 * chosen answers (test/python/fixtures/garbled_bridge.py). An answer that is
 * not JSON fails the call it belongs to at once; a line that is not JSON and
 * names no call stops the helper, failing every call in flight instead of
 * leaving it to wait forever; the helper starts again on the next call.
 */
import * as path from 'node:path';
import pino from 'pino';
import { PythonHelper, PythonHelperCallError, PythonHelperLostError } from '../../stack/python-helper';
import { VENV_PYTHON } from '../helpers/qdrant-server';

const helper = new PythonHelper({
  python: VENV_PYTHON,
  rayTasksDir: path.resolve(__dirname, '..', 'python', 'fixtures'),
  rayAddress: 'unused',
  logger: pino({ level: 'silent' }),
  module: 'garbled_bridge',
  title: 'the garbled helper',
});
afterAll(() => helper.close());

test('an answer that is not JSON fails its own call, naming the line; other calls go on', async () => {
  const other = helper.call('echo', { n: 1 });
  const garbled = helper.call('nan');
  await expect(garbled).rejects.toBeInstanceOf(PythonHelperCallError);
  await expect(garbled).rejects.toMatchObject({
    type: 'UnparseableAnswer',
    message: expect.stringMatching(/not JSON: \{"id":\d+,"result":\{"score":NaN\}\}/),
  });
  expect(await other).toEqual({ n: 1 });
  expect(await helper.call('echo', 'still serving')).toBe('still serving');
});

test('a line that names no call stops the helper: every call in flight fails, none waits forever', async () => {
  await helper.call('echo', 0);
  const firstPid = helper.pid;
  const waiting = helper.call('never');
  const noise = helper.call('noise');
  await expect(waiting).rejects.toBeInstanceOf(PythonHelperLostError);
  await expect(noise).rejects.toThrow(/wrote a line that is not JSON and was stopped: Traceback/);
  expect(await helper.call('echo', 'again')).toBe('again');
  expect(helper.pid).not.toBe(firstPid);
});
