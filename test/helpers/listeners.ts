/**
 * Which TCP ports the local stack's processes listen on, read from Linux's
 * own tables: /proc/net/tcp{,6} (sockets in LISTEN state, by inode) joined with
 * /proc/<pid>/fd (which process holds which inode). The stack's processes are
 * the process groups named by its pid files and node records, plus every
 * descendant of them (Ray's workers, agents and servers) and of `extraRoots`
 * (e.g. this test process, whose worker runs the Ray bridge).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { StackConfig } from '../../stack/config';
import { listLocalNodes } from '../../stack/ray-nodes';

export interface Listener {
  pid: number;
  command: string;
  address: string;
  port: number;
}

interface ProcInfo {
  pid: number;
  ppid: number;
  pgid: number;
}

function readProcs(): ProcInfo[] {
  const procs: ProcInfo[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command (which may hold spaces) start after its closing parenthesis.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      procs.push({ pid: Number(entry), ppid: Number(fields[1]), pgid: Number(fields[2]) });
    } catch {
      // exited while we looked
    }
  }
  return procs;
}

/** Every process of the stack (see the header), by pid. */
export function stackProcessIds(config: StackConfig, extraRoots: number[] = []): Set<number> {
  const roots = new Set<number>(extraRoots);
  if (fs.existsSync(config.pidDir))
    for (const file of fs.readdirSync(config.pidDir))
      roots.add(Number(fs.readFileSync(path.join(config.pidDir, file), 'utf8')));
  for (const node of listLocalNodes(config)) roots.add(node.pid);
  const procs = readProcs();
  const members = new Set(procs.filter((p) => roots.has(p.pid) || roots.has(p.pgid)).map((p) => p.pid));
  // Descendants, to a fixed point: a child may be listed before its parent.
  for (let grew = true; grew;) {
    grew = false;
    for (const p of procs)
      if (!members.has(p.pid) && members.has(p.ppid)) {
        members.add(p.pid);
        grew = true;
      }
  }
  return members;
}

/** `0100007F:1F90` (IPv4) or 32 hex digits (IPv6), little-endian per 32-bit word, as the kernel prints them. */
function decodeAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => (w.match(/../g) ?? []).reverse().map((b) => parseInt(b, 16)));
  if (bytes.length === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  const v6 = groups.join(':');
  // IPv4-mapped (::ffff:a.b.c.d), as dual-stack servers show IPv4 peers.
  if (v6.startsWith('0:0:0:0:0:ffff:')) return `::ffff:${bytes.slice(12).join('.')}`;
  return v6.replace(/(^|:)0(:0)+(:|$)/, '::');
}

/** The listening TCP sockets held by `pids`. */
export function listenersOf(pids: Set<number>): Listener[] {
  const listening = new Map<string, { address: string; port: number }>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!fs.existsSync(table)) continue;
    for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== '0A') continue; // 0A: TCP_LISTEN
      const [addr, port] = cols[1]!.split(':');
      listening.set(cols[9]!, { address: decodeAddress(addr!), port: parseInt(port!, 16) });
    }
  }
  const found: Listener[] = [];
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    let command = '?';
    try {
      command = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    } catch {
      /* exited */
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      const socket = inode === undefined ? undefined : listening.get(inode);
      if (socket) found.push({ pid, command, ...socket });
    }
  }
  return found;
}
