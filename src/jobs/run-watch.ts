/**
 * Watches the runs this process executes, for the fleet (docs/architecture.md, "Fleet"):
 *
 * - renews each run's claim (the job's `runLease`) every third of its life, in a transaction that
 *   first checks the claim is still this process's;
 * - reads each run's job about once a second, so a pause or delete made through another process
 *   stops the run within ~2 s even while it waits on a source query or the embedding provider
 *   (one made through this process stops it at once: Scheduler.stopRun);
 * - says a run is lost when another process took it over (this one stalled past the claim's
 *   life) or when its claim could not be renewed before it ran out (the store unreachable): the
 *   run must stop and write nothing more — another process resumes it from its last checkpoint.
 *
 * Real, unref'd timers and wall-clock time, like every lease.
 */
import { holdsRun, leaseFor } from '../core/run-lease.js';
import type { ControlStore } from '../store/port.js';

export type WatchStop = 'paused' | 'deleted' | 'lost';

interface Watched {
  runId: string;
  /** The claim holds until then, as far as this process knows (its last successful renewal). */
  validUntil: number;
  renewedAt: number;
  /** A pause was reported (once: the run is stopping and keeps its claim until it has written its end). */
  pauseReported: boolean;
  ended: boolean;
  onStop(reason: WatchStop): void;
}

export class RunWatch {
  /** By job id. */
  private readonly runs = new Map<string, Watched>();
  private timer: NodeJS.Timeout | null = null;
  private polling = false;
  readonly pollMs: number;

  constructor(
    private readonly store: ControlStore,
    private readonly owner: string,
    private readonly ttlMs: number,
  ) {
    this.pollMs = Math.max(20, Math.min(1000, Math.floor(ttlMs / 3)));
  }

  /** Watches a run whose claim was written at `claimedAt` (so it holds until claimedAt + ttl). */
  watch(jobId: string, runId: string, claimedAt: number, onStop: (reason: WatchStop) => void): void {
    this.runs.set(jobId, { runId, validUntil: claimedAt + this.ttlMs, renewedAt: claimedAt, pauseReported: false, ended: false, onStop });
    if (this.timer === null) {
      this.timer = setInterval(() => void this.poll(), this.pollMs);
      this.timer.unref();
    }
  }

  unwatch(jobId: string, runId: string): void {
    if (this.runs.get(jobId)?.runId !== runId) return;
    this.runs.delete(jobId);
    if (this.runs.size === 0 && this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /** Stops watching everything (shutdown). */
  close(): void {
    this.runs.clear();
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      for (const [jobId, w] of [...this.runs]) {
        if (!w.ended) await this.check(jobId, w).catch(() => undefined);
      }
    } finally {
      this.polling = false;
    }
  }

  private async check(jobId: string, w: Watched): Promise<void> {
    const end = (reason: WatchStop) => {
      w.ended = true;
      w.onStop(reason);
    };
    if (Date.now() >= w.validUntil) return end('lost');
    const job = await this.store.getJobById(jobId);
    if (job === null) return end('deleted');
    if (!holdsRun(job, this.owner, w.runId)) return end('lost');
    if (job.status === 'paused' && !w.pauseReported) {
      w.pauseReported = true;
      w.onStop('paused');
    }
    const now = Date.now();
    if (now - w.renewedAt < this.ttlMs / 3) return;
    let held = true;
    const stored = await this.store.mutateJob(jobId, (current) => {
      held = holdsRun(current, this.owner, w.runId);
      return held ? { ...current, runLease: leaseFor(this.owner, now, this.ttlMs) } : null;
    });
    if (stored === null) return end('deleted');
    if (!held) return end('lost');
    w.renewedAt = now;
    w.validUntil = now + this.ttlMs;
  }
}
