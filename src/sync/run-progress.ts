/**
 * A running run's live progress (API.md "Jobs": `progress`): rows done (a batch being embedded
 * counted by the share of it embedded), the run's estimated total, percent and ETA
 * (core/progress.ts), kept on the run record and written to the control store about once a
 * second while rows move, so any process reading the store sees it.
 *
 * The writes themselves are the caller's (sync/run-sync.ts): it runs them on the same chain as
 * the run's checkpoints, so a progress write never carries counters or a watermark older than a
 * checkpoint already written, and never overtakes the end of the run.
 */
import { type RunProgress, observeThroughput, runProgress, startThroughput, type Throughput } from '../core/progress.js';
import type { RunRecord } from '../store/port.js';

export interface ProgressOptions {
  /** How often progress is sampled and, when rows moved, written; default 1 s (API.md: at least every 2 s). */
  intervalMs?: number;
  /** A monotonic clock in ms (the rate is about real time, whatever clock the scheduler uses). */
  now?: () => number;
}

export class RunProgressReporter {
  private estimate: number | null = null;
  /**
   * Rows of each batch being embedded or written that count as done (its share embedded so far),
   * by batch: a run has up to two batches in flight (sync/run-sync.ts, "pipeline").
   */
  private readonly inBatches = new Map<object, number>();
  private rate: Throughput;
  /** What the store last got, to write only when something moved (at first: what the run started with). */
  private written: { rows: number; estimate: number | null };
  private pending: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly now: () => number;

  constructor(
    private readonly run: RunRecord,
    /** Writes the run's progress (run.progress is already set); serialised with checkpoints by the caller. */
    private readonly write: () => Promise<void>,
    private readonly options: ProgressOptions = {},
  ) {
    this.now = options.now ?? (() => performance.now());
    this.rate = startThroughput(this.now(), run.rowsRead);
    this.written = { rows: run.rowsRead, estimate: null };
  }

  /** Samples every interval and writes when something moved; one write at a time, never a queue of them. */
  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.tick(), this.options.intervalMs ?? 1_000);
    this.timer.unref();
  }

  /** Stops sampling and waits for a write in flight; nothing is written afterwards. */
  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.pending;
  }

  /**
   * The rows the run is expected to read (null: unknown), known once its reading starts: the rate
   * is measured from now, so the time spent before (table description, probe) does not lower it.
   */
  setEstimate(rows: number | null): void {
    this.estimate = rows;
    this.rate = startThroughput(this.now(), this.run.rowsRead + this.inFlight());
  }

  /** Rows of `batch` (any object naming it) that count as done so far; never goes back within a batch. */
  batchProgress(batch: object, rows: number): void {
    this.inBatches.set(batch, Math.max(this.inBatches.get(batch) ?? 0, rows));
  }

  /**
   * The progress now, also set on the run record (so a checkpoint writes it too). Called by the
   * checkpoint of `written` after it added that batch's rows to the run: they no longer count apart.
   */
  refresh(written?: object): RunProgress {
    if (written !== undefined) this.inBatches.delete(written);
    const done = this.run.rowsRead + this.inFlight();
    this.rate = observeThroughput(this.rate, this.now(), done);
    const progress = runProgress(done, this.estimate, this.rate.rowsPerSecond);
    this.run.progress = progress;
    return progress;
  }

  private inFlight(): number {
    let rows = 0;
    for (const n of this.inBatches.values()) rows += n;
    return rows;
  }

  /** The store has this progress (a checkpoint or a progress write wrote it). */
  stored(progress: RunProgress): void {
    this.written = { rows: progress.rowsDone, estimate: this.estimate };
  }

  private tick(): void {
    const progress = this.refresh();
    if (this.pending !== null || this.timer === null) return;
    if (this.written.rows === progress.rowsDone && this.written.estimate === this.estimate) return;
    // A failed write (the store briefly busy) is not the run's failure: the next tick tries again.
    this.pending = this.write()
      .catch(() => undefined)
      .finally(() => {
        this.pending = null;
      });
  }
}
