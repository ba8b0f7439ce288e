/**
 * Headless Chromium for browser tests: Debian's `chromium` package, installed
 * by the test setup itself when it is missing (as CI must: nothing is assumed
 * to be on the machine), and driven by playwright-core through its
 * executablePath — no browser download by Playwright.
 *
 * The install runs as a child process the event loop waits on, never
 * synchronously, and before the test connects to anything: a synchronous
 * apt-get of several minutes beside a connection that is being made starves its
 * timers (the gRPC connect to Temporal missed its deadline).
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Flags for a quiet, sandbox-free headless run in a container. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
];

function asRoot(command: string[]): string[] {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  return root ? command : ['sudo', '-n', ...command];
}

async function run(command: string[]): Promise<void> {
  const [file, ...args] = command;
  await promisify(execFile)(file!, args, {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    timeout: 15 * 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
}

/** Installs Debian's chromium with apt-get when it is not there yet; a no-op otherwise. */
export async function ensureChromium(): Promise<string> {
  if (fs.existsSync(CHROMIUM_PATH)) return CHROMIUM_PATH;
  process.stderr.write('[chromium] not installed: apt-get install -y chromium (a few minutes, once)\n');
  const install = asRoot(['apt-get', 'install', '-y', '--no-install-recommends', 'chromium']);
  try {
    await run(install);
  } catch {
    // A fresh machine may have no package lists yet.
    await run(asRoot(['apt-get', 'update']));
    await run(install);
  }
  if (!fs.existsSync(CHROMIUM_PATH))
    throw new Error(`apt-get install chromium did not provide ${CHROMIUM_PATH}`);
  return CHROMIUM_PATH;
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: await ensureChromium(), args: CHROMIUM_ARGS, headless: true });
}
