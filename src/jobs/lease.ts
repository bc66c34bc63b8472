/**
 * One scheduling process per store: the scheduler holds a lease in the control store, renewed
 * while it lives. A second process on the same data dir serves the API and waits; it takes over
 * when the lease expires, or at once when the holder is a process of this host that no longer
 * exists (a crash), so a restart does not wait out the lease.
 *
 * Wall-clock time and real timers on purpose: the lease is about processes, not the job schedule
 * (which runs on the Clock port), and its timers must not keep a process alive.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type { ControlStore } from '../store/port.js';

export const SCHEDULER_LEASE = 'scheduler';

export class ProcessLease {
  readonly owner = `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: ControlStore,
    private readonly name = SCHEDULER_LEASE,
    readonly ttlMs = 30_000,
  ) {}

  /** Takes the lease if it is free, expired, ours, or held by a dead process of this host. */
  async tryAcquire(): Promise<{ acquired: boolean; holder: string | null }> {
    const first = await this.store.acquireLease(this.name, this.owner, this.ttlMs, Date.now());
    if (first.acquired || first.holder === null || !holderIsDeadHere(first.holder)) return first;
    return this.store.acquireLease(this.name, this.owner, this.ttlMs, Date.now(), first.holder);
  }

  /** Renews every third of the TTL; calls `onLost` if another process took it meanwhile. */
  keep(onLost: () => void): void {
    this.every(this.ttlMs / 3, async () => {
      const r = await this.store.acquireLease(this.name, this.owner, this.ttlMs, Date.now());
      if (!r.acquired) {
        this.clear();
        onLost();
      }
    });
  }

  /** Retries every half TTL until the lease is ours, then calls `onAcquired`. */
  waitFor(onAcquired: () => void): void {
    this.every(this.ttlMs / 2, async () => {
      if ((await this.tryAcquire()).acquired) {
        this.clear();
        onAcquired();
      }
    });
  }

  async release(): Promise<void> {
    this.clear();
    await this.store.releaseLease(this.name, this.owner).catch(() => undefined);
  }

  private every(ms: number, fn: () => Promise<void>): void {
    this.clear();
    this.timer = setInterval(() => void fn().catch(() => undefined), ms);
    this.timer.unref();
  }

  private clear(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

/** `host:pid:…` of this host whose pid is gone. */
export function holderIsDeadHere(holder: string): boolean {
  const [host, pid] = holder.split(':');
  if (host !== os.hostname() || !pid || !/^\d+$/.test(pid) || Number(pid) === process.pid) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
