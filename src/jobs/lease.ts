/**
 * Who a process is in the fleet (docs/architecture.md, "Fleet"): `host:pid:random`, the owner of
 * its heartbeat (jobs/fleet.ts) and of the runs it claims (core/run-lease.ts). And whether such
 * an owner is a process of this host that no longer exists (a crash), so its claims need not be
 * waited out: a restart on the same machine resumes its runs at once.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';

/** A new process id (one per app: two apps in one test process are two members). */
export function newProcessId(): string {
  return `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

/** The host and pid an id names (null when it is not `host:pid:…`). */
export function parseProcessId(id: string): { host: string; pid: number } | null {
  const [host, pid] = id.split(':');
  if (!host || !pid || !/^\d+$/.test(pid)) return null;
  return { host, pid: Number(pid) };
}

/** `host:pid:…` of this host whose pid is gone. Never this process (apps in one test process share its pid). */
export function holderIsDeadHere(holder: string): boolean {
  const parsed = parseProcessId(holder);
  if (parsed === null || parsed.host !== os.hostname() || parsed.pid === process.pid) return false;
  try {
    process.kill(parsed.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
