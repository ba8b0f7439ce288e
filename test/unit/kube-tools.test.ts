/**
 * The Kubernetes test API server needs Go (to build it) and etcd: where one is
 * missing, the error says what to install instead of failing inside a spawn.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findGo } from '../../stack/go-tools';
import { ensureEtcd } from '../../stack/kube-test-server';

describe('findGo', () => {
  it('names the toolchain to install when go is nowhere', () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-no-go-'));
    expect(() => findGo(empty, [])).toThrow(
      /the Go toolchain \(go 1\.24 or newer\) is needed .* install Go from https:\/\/go\.dev\/dl\//,
    );
  });

  it('finds go on PATH', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-go-'));
    const go = path.join(dir, 'go');
    fs.writeFileSync(go, '#!/bin/sh\n', { mode: 0o755 });
    expect(findGo(['/nonexistent', dir].join(path.delimiter), [])).toBe(go);
  });
});

describe('ensureEtcd', () => {
  it('names the package to install when etcd is missing and it may not install it', async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-no-etcd-'));
    await expect(ensureEtcd(empty, false)).rejects.toThrow(
      'etcd is needed by the Kubernetes test API server and is not on PATH: install it (Debian/Ubuntu: `sudo apt-get install etcd-server`), then run again',
    );
  });
});
