/**
 * The Temporal Web UI of the local stack, seen through headless Chromium:
 * a finished pipeline is found by its search attribute and its page shows the
 * summary it was started with; a running pipeline shows its live progress as
 * current details; a step output kept in the blob store is shown decoded (the
 * stack's codec server). The screenshots taken here are the README's: with
 * PANTHEON_UPDATE_SCREENSHOTS=1 they are written to docs/, otherwise to a
 * scratch folder, so a test run leaves the tracked files alone.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { planRun } from '../../cli/targets';
import { loadStackConfig } from '../../stack/config';
import type { PipelineResult } from '../../core/schemas/pipeline-spec';
import { launchChromium } from '../helpers/chromium';
import { startTestEnv, uniqueId, waitUntil, type TestEnv } from '../helpers/test-env';

const SCREENSHOTS =
  process.env.PANTHEON_UPDATE_SCREENSHOTS === '1'
    ? path.resolve(__dirname, '..', '..', 'docs')
    : path.join(os.tmpdir(), 'pantheon-webui-screenshots');

let env: TestEnv;
let browser: Browser;
let webUi: string;
beforeAll(async () => {
  // Installs Debian's chromium first if this machine has none (a few minutes, once), before
  // anything connects; one after the other, so that a failure of either leaves nothing unowned
  // (a browser launched after its sibling failed was never closed, and jest never exited).
  browser = await launchChromium();
  // Small outputs go to the blob store too, so the UI has a reference to decode that it can show whole.
  env = await startTestEnv({ env: { PANTHEON_BLOB_THRESHOLD_BYTES: '1024' } });
  webUi = `http://127.0.0.1:${loadStackConfig().temporal.uiPort}`;
}, 20 * 60_000);
afterAll(async () => {
  await browser?.close();
  await env?.close();
});

/** The Web UI renders summaries and details (Markdown) in iframes of its own; waits until one shows `text`. */
async function markdownShown(page: Page, text: string): Promise<void> {
  await waitUntil(
    `the Web UI to show "${text}"`,
    async () => {
      for (const frame of page.frames()) {
        const body = await frame
          .locator('body')
          .innerText({ timeout: 1_000 })
          .catch(() => '');
        if (body.replace(/\s+/g, ' ').includes(text)) return true;
      }
      return undefined;
    },
    60_000,
    500,
  );
}

async function screenshot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, name);
  await page.screenshot({ path: file });
  expect(fs.statSync(file).size).toBeGreaterThan(10_000);
}

test('a finished pipeline is found by its search attribute and shows its summary', async () => {
  const project = uniqueId('webui');
  // Started exactly as `pantheon run research-report --project … --priority 2` starts it.
  const plan = planRun('research-report', {
    project,
    priority: 2,
    input: JSON.stringify({ topic: 'grid-scale batteries' }),
  });
  const workflowId = uniqueId('research-report');
  const handle = await env.client.workflow.start(plan.workflowType, {
    ...plan.options,
    workflowId,
    args: plan.args,
  });
  const result = (await handle.result()) as PipelineResult;
  expect(result.status).toBe('succeeded');

  const query = `PantheonProject="${project}" AND PantheonStatus="succeeded"`;
  await waitUntil('the pipeline to be visible to search', async () => {
    for await (const wf of env.client.workflow.list({ query })) if (wf.workflowId === workflowId) return true;
    return undefined;
  });

  const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  await page.goto(`${webUi}/namespaces/default/workflows?query=${encodeURIComponent(query)}`);
  const row = page.getByRole('link', { name: workflowId }).first();
  await row.waitFor({ timeout: 60_000 });
  await row.click();
  // The timeline: step activities with their summaries (`<step>: agent <name>`). It renders only
  // the rows near the top, latest first; the last step (write, after review) is always among them,
  // where the three parallel analysts may or may not be.
  await page.getByText('write: agent writer').first().waitFor({ timeout: 60_000 });
  await screenshot(page, 'webui.png');

  await page.getByText('User Metadata', { exact: true }).first().click();
  await markdownShown(page, String(plan.options.staticSummary));
  await screenshot(page, 'webui-summary.png');
  await page.close();
}, 600_000);

test('a running pipeline shows its live progress as current details', async () => {
  const handle = await env.startPipeline({
    name: 'webui-live',
    project: uniqueId('webui'),
    steps: [
      { id: 'prepare', task: 'pantheon_tasks.testkit:echo', args: ['ready'] },
      { id: 'train', task: 'pantheon_tasks.testkit:sleep', args: [300], dependsOn: ['prepare'] },
      { id: 'publish', task: 'pantheon_tasks.testkit:echo', args: [{ $step: 'train' }] },
    ],
  });
  await waitUntil('train to run', async () =>
    (await env.progress(handle)).steps.train?.status === 'running' ? true : undefined,
  );
  const { runId } = await handle.describe();
  const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  await page.goto(`${webUi}/namespaces/default/workflows/${handle.workflowId}/${runId}/user-metadata`);
  await markdownShown(page, '1 succeeded, 1 running, 1 pending');
  await markdownShown(page, 'train running');
  await screenshot(page, 'webui-live.png');
  await page.close();
  await handle.cancel();
}, 600_000);

test('a step output kept in the blob store is shown decoded, not as its reference', async () => {
  const fill = 'qz';
  const handle = await env.startPipeline({
    name: 'webui-blob',
    project: uniqueId('webui'),
    steps: [{ id: 'report', task: 'pantheon_tasks.testkit:text', args: [3000, fill] }],
  });
  const result = (await handle.result()) as PipelineResult;
  // In history the output is a reference whose preview holds only the first 200 characters.
  expect(result.steps.report?.output).toMatchObject({ $blob: expect.stringMatching(/^sha256:/) });
  const { runId } = await handle.describe();
  const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  await page.goto(`${webUi}/namespaces/default/workflows/${handle.workflowId}/${runId}/history`);
  const whole = fill.repeat(1500);
  await waitUntil(
    'the Web UI to show the whole output',
    async () => {
      const text = (
        await page
          .locator('body')
          .innerText({ timeout: 1_000 })
          .catch(() => '')
      ).replace(/\s+/g, '');
      return text.includes(whole) ? true : undefined;
    },
    60_000,
    500,
  );
  expect((await page.locator('body').innerText()).includes('sha256:')).toBe(false);
  await page.close();
}, 600_000);
