/**
 * Headless Chromium for browser tests: Debian's `chromium` package, installed
 * by the test setup itself when it is missing (as CI must: nothing is assumed
 * to be on the machine), and driven by playwright-core through its
 * executablePath — no browser download by Playwright.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
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

function run(command: string[]): void {
  const [file, ...args] = command;
  execFileSync(file!, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    timeout: 15 * 60_000,
  });
}

/** Installs Debian's chromium with apt-get when it is not there yet; a no-op otherwise. */
export function ensureChromium(): string {
  if (fs.existsSync(CHROMIUM_PATH)) return CHROMIUM_PATH;
  process.stderr.write('[chromium] not installed: apt-get install -y chromium\n');
  const install = asRoot(['apt-get', 'install', '-y', '--no-install-recommends', 'chromium']);
  try {
    run(install);
  } catch {
    // A fresh machine may have no package lists yet.
    run(asRoot(['apt-get', 'update']));
    run(install);
  }
  if (!fs.existsSync(CHROMIUM_PATH))
    throw new Error(`apt-get install chromium did not provide ${CHROMIUM_PATH}`);
  return CHROMIUM_PATH;
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: ensureChromium(), args: CHROMIUM_ARGS, headless: true });
}
