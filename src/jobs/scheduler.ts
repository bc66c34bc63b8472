/**
 * The scheduler (SEMANTICS.md, "Schedule"): sleeps until the next due tick or a change to the
 * jobs, then starts due runs. One job never runs twice at once; a tick that passes during a run
 * is coalesced into one run right after; ticks missed while the service was down collapse into
 * one `catch_up` run at start-up; after the last tick the job is `completed`.
 *
 * A due job is first checked (sync/check.ts: one source query, read-only, up to
 * maxConcurrentChecks at once). A run that finds nothing new is recorded in one write — started,
 * finished and the job moved to its next tick together — without taking a run slot, so
 * thousands of quiet jobs do not queue behind each other's fixed costs. A check that finds rows
 * waits for one of the maxConcurrentRuns run slots, then claims the job (`running`, its run
 * recorded) and runs in full, as a manual run does (at once, beyond the limit if need be).
 *
 * Every process of a fleet schedules (docs/architecture.md, "Fleet"): each claim is one
 * transaction guarded by the job's status and next tick, so a tick runs once however many
 * processes checked it; a process claims only with a free run slot, so runs spread over the
 * processes; the claim (`runLease`, core/run-lease.ts) is renewed while the run lives
 * (jobs/run-watch.ts), and a sweep every half claim life takes over runs whose claim lapsed
 * (jobs/takeover.ts).
 */
import type { Logger } from 'pino';
import { AppError, conflict } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { claimBlocked, holdsRun, leaseFor } from '../core/run-lease.js';
import { firstTickAfter } from '../core/schedule.js';
import { Fleet } from './fleet.js';
import { holderIsDeadHere } from './lease.js';
import { RunWatch, type WatchStop } from './run-watch.js';
import { findLapsedRuns, type Lapsed, releaseClaim, summary, takeOver } from './takeover.js';
import type { ControlStore, JobRecord, JobStatus, RunRecord, RunTrigger } from '../store/port.js';
import { EmbeddingProviderError } from '../embeddings/errors.js';
import { SourceQueryCancelled, SourceTimeoutError } from '../sources/port.js';
import { checkNothingNew, type NothingNew } from '../sync/check.js';
import { lagAlertStands } from '../core/lag.js';
import { eventsOf, type WebhookDispatcher } from './webhooks.js';
import { PermanentSyncError, RunCancelled, RunLeaseLost } from '../sync/errors.js';
import type { StoreHealth } from '../store/faults.js';
import { executeSync, type SyncDeps, type SyncOptions } from '../sync/run-sync.js';

export interface SchedulerOptions {
  /** Runs this process executes at once. */
  maxConcurrentRuns: number;
  /** Due jobs this process checks for anything new at once (default 16). */
  maxConcurrentChecks?: number;
  /** Told about every finished run (metrics). */
  onRunFinished?: (run: RunRecord) => void;
  /** Life of a run's claim and of the process's heartbeat (default 30 s; tests shorten it). */
  leaseTtlMs?: number;
  /** This process in the fleet (its id owns the claims); default: a new member of the store's fleet. */
  fleet?: Fleet;
  /** How long stop() waits for runs to end before abandoning them to start-up recovery (default 10 s). */
  shutdownTimeoutMs?: number;
  /** Told when a write of the store fails and when one succeeds again (/health). */
  storeHealth?: StoreHealth;
  /** First wait before writing the end of a run again after a store fault (doubles up to 30 s). */
  finishRetryMs?: number;
  /** Sends the events of the jobs' webhook_url (run.failed, job.failed, job.lagging). */
  webhooks?: WebhookDispatcher;
}

/** A job this process is checking, waiting to run, or running. */
interface ActiveRun {
  /** Null while the job is checked (nothing is recorded yet). */
  run: RunRecord | null;
  /** Aborted by shutdown, and when the run's claim is lost (`lost` then says so). */
  abort: AbortController;
  /** Another process took the run over, or its claim could not be renewed: write nothing more. */
  lost?: boolean;
  /** The run's work is over and its end is being written (fenced by the claim itself). */
  ending?: boolean;
  /** Pause or delete: cancels the source query in flight; the run stops at its next batch boundary. */
  stopSource: AbortController;
  done: Promise<void>;
}

const gridOf = (job: JobRecord) => ({ startMs: job.startMs, endMs: job.endMs, intervalMs: job.intervalMs });

/** Due jobs read from the store at a time; more are read when fewer than half are left to check. */
const DUE_BATCH = 256;
/** Pause after a write of the store failed before checking more jobs (the tick retries too). */
const STORE_BACKOFF_MS = 5_000;

export class Scheduler {
  private readonly active = new Map<string, ActiveRun>();
  /** Due jobs read from the store, not checked yet, in due order (with the trigger each gets). */
  private readonly queue = new Map<string, RunTrigger>();
  /** Checks in flight. */
  private checking = 0;
  /** Run slots taken by runs at work; manual runs count too (they may take one beyond the limit). */
  private runSlots = 0;
  /** Checked jobs with rows to read, waiting for a run slot before they claim (each is handed one). */
  private readonly slotWaiters: Array<(granted: boolean) => void> = [];
  /** The time of the last read of due jobs: every job due by then is queued, in flight, or still to read (backlog). */
  private fetchedAt = Number.NEGATIVE_INFINITY;
  /** No check starts before this (after a failed write of the store). */
  private backoffUntil = 0;
  /** Ends of runs the store could not write yet, by job: how each job will look once written. */
  private readonly finishing = new Map<string, (job: JobRecord) => JobRecord | null>();
  private cancelTimer: (() => void) | null = null;
  private stopped = true;
  /** stop() was called: the service is shutting down (unlike `stopped`, false before start()). */
  private closing = false;
  private ticking = false;
  private tickAgain = false;
  private catchUp = new Set<string>();
  /** This process in the fleet: its id owns the claims of the runs it executes. */
  readonly fleet: Fleet;
  private readonly ttlMs: number;
  private readonly watch: RunWatch;
  /** Every half claim life: the sweep for lapsed runs, and a look at due jobs other processes' changes made. */
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweeping = false;
  /** Other processes were alive at the last sweep. */
  private fleetShared = false;
  /**
   * Checks whose answer could not be used: another process (or a change) claimed or recorded the
   * job first. In a fleet every process checks the due jobs; this is what that costs.
   */
  private wastedChecks = 0;

  constructor(
    private readonly store: ControlStore,
    private readonly sync: SyncDeps,
    private readonly logger: Logger,
    private readonly options: SchedulerOptions,
  ) {
    this.ttlMs = options.fleet?.ttlMs ?? options.leaseTtlMs ?? 30_000;
    this.fleet = options.fleet ?? new Fleet(store, this.ttlMs);
    this.watch = new RunWatch(store, this.fleet.id, this.ttlMs);
  }

  /** What this process's scheduling cost the fleet (tests, benchmarks). */
  stats(): { wastedChecks: number } {
    return { wastedChecks: this.wastedChecks };
  }

  private get clock() {
    return this.sync.clock;
  }

  /** The run's deps with each written batch logged at debug level (LOG_LEVEL=debug). */
  private logBatches(job: JobRecord, run: RunRecord): SyncDeps {
    if (!this.logger.isLevelEnabled('debug')) return this.sync;
    const sink = this.sync.sink;
    return {
      ...this.sync,
      sink: {
        upsertDocuments: async (kb, docs, options) => {
          const t0 = performance.now();
          const counts = await sink.upsertDocuments(kb, docs, options);
          this.logger.debug(
            {
              job: job.name,
              run: run.id,
              documents: docs.length,
              added: counts.added,
              updated: counts.updated,
              unchanged: counts.unchanged,
              failed: counts.failed?.length ?? 0,
              chunks: counts.chunksWritten,
              ms: Math.round(performance.now() - t0),
              rows_read_before: run.rowsRead,
            },
            'batch written',
          );
          return counts;
        },
      },
    };
  }

  /**
   * Joins the fleet, takes over the runs whose process died (at once for a dead process of this
   * host: a restart), then starts ticking. Ticks missed by the whole fleet (no other process is
   * alive) make one `catch_up` run per job.
   */
  async start(): Promise<void> {
    if (!this.stopped) return;
    this.stopped = false;
    this.closing = false;
    await this.fleet.join();
    await this.sweep();
    if (this.stopped) return;
    if (!this.fleetShared) for (const job of await this.store.listDueJobs(this.clock.now(), 10_000)) this.catchUp.add(job.id);
    this.sweepTimer = setInterval(() => {
      void this.sweep();
      // Jobs created, resumed or finished through other processes wake no timer here.
      void this.tick();
    }, this.ttlMs / 2);
    this.sweepTimer.unref();
    await this.tick();
  }

  /**
   * Takes over runs recorded `running` whose claim lapsed, while this process has free run slots
   * (jobs/takeover.ts); closes those their job no longer runs.
   */
  private async sweep(): Promise<void> {
    if (this.sweeping || this.stopped) return;
    this.sweeping = true;
    try {
      this.fleetShared = await this.fleet.othersAlive();
      const here = (jobId: string) => this.active.has(jobId) || this.finishing.has(jobId);
      const lapsed = await findLapsedRuns(this.store, here, holderIsDeadHere, this.clock.now());
      for (const found of lapsed) {
        if (this.stopped || this.runSlots >= this.options.maxConcurrentRuns) break;
        if (here(found.job.id)) continue;
        this.runSlots++;
        const taken = await takeOver(this.store, this.fleet.id, this.ttlMs, found, holderIsDeadHere).catch((err: unknown) => {
          this.logger.error({ err, job: found.job.id }, 'could not take over a run');
          return null;
        });
        if (taken === null || this.stopped || here(found.job.id)) {
          this.releaseRunSlot();
          continue;
        }
        this.resume(taken);
      }
    } catch (err) {
      this.logger.error({ err }, 'the sweep for runs of stopped processes failed; it runs again shortly');
    } finally {
      this.sweeping = false;
    }
  }

  /** A run taken over: the same run record goes on from its job's last checkpoint, in a slot already taken. */
  private resume({ job, run }: Lapsed): void {
    const abort = new AbortController();
    const stopSource = new AbortController();
    const active: ActiveRun = { run, abort, stopSource, done: Promise.resolve() };
    this.active.set(job.id, active);
    this.watch.watch(job.id, run.id, job.runLease?.expiresAt !== undefined ? job.runLease.expiresAt - this.ttlMs : Date.now(), (reason) =>
      this.onWatchStop(job.id, run.id, active, reason),
    );
    const statusBefore: JobStatus = job.statusBeforeRun ?? 'scheduled';
    active.done = this.execute(job, run, statusBefore, active, { stopSource: stopSource.signal, resumed: true });
    this.logger.warn({ job: job.name, run: run.id, rows_read: run.rowsRead }, 'took over a run whose process stopped; it goes on from its last checkpoint');
  }

  /** What the run watch saw: a pause or delete made through another process, or the claim lost. */
  private onWatchStop(jobId: string, runId: string, active: ActiveRun, reason: WatchStop): void {
    // Seen just as the run ended (its end clears the claim): nothing to stop.
    if (active.ending || this.active.get(jobId) !== active) return;
    if (reason !== 'lost') {
      this.stopRun(jobId, reason === 'paused' ? 'job paused' : 'job deleted');
      return;
    }
    active.lost = true;
    active.abort.abort(new RunLeaseLost('another process took this run over, or its claim could not be renewed'));
    this.logger.warn({ job: jobId, run: runId }, 'this run was taken over by another process (or its claim could not be renewed in time); it stops here and writes nothing more');
  }

  /**
   * Stops ticking and cancels running runs (their source query in flight included), waiting for
   * them at most shutdownTimeoutMs. A run still going then is abandoned: it stays `running` in
   * the store and its claim is given up, so another process (or the next start) takes it over
   * from its last checkpoint at once. Then the process leaves the fleet.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.closing = true;
    this.cancelTimer?.();
    this.cancelTimer = null;
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    this.queue.clear();
    this.refuseSlotWaiters();
    for (const a of this.active.values()) a.abort.abort(new RunCancelled('the service is shutting down'));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), this.options.shutdownTimeoutMs ?? 10_000);
    });
    const ended = await Promise.race([Promise.all([...this.active.values()].map((a) => a.done)), deadline]);
    clearTimeout(timer);
    if (ended === 'late') {
      const abandoned = [...this.active].flatMap(([jobId, a]) => (a.run ? [{ jobId, runId: a.run.id }] : []));
      this.logger.warn({ runs: abandoned.map((r) => r.runId) }, 'runs did not stop before the shutdown deadline; another process (or the next start) takes them over');
      for (const { jobId, runId } of abandoned) await releaseClaim(this.store, this.fleet.id, jobId, runId).catch(() => undefined);
    }
    this.watch.close();
    await this.fleet.leave();
  }

  /**
   * Pause or delete of a job with a run in progress: cancels its source query in flight, so a run
   * blocked on a lock ends now; a batch being written finishes, and the run stops at its
   * checkpoint. The watermark stays at the last checkpoint.
   */
  stopRun(jobId: string, reason: string): void {
    const a = this.active.get(jobId);
    if (a !== undefined && !a.stopSource.signal.aborted) a.stopSource.abort(new RunCancelled(reason));
  }

  /** Something changed (job created, patched, paused, resumed, deleted): look again. */
  wake(): void {
    if (!this.stopped) void this.tick();
  }

  isRunning(jobId: string): boolean {
    return this.active.has(jobId);
  }

  /** Resolves when no run or check is in progress or queued, and no tick is being processed (tests, shutdown). */
  async whenIdle(): Promise<void> {
    while (this.active.size > 0 || this.ticking || (this.queue.size > 0 && !this.stopped)) {
      await Promise.all([...this.active.values()].map((a) => a.done));
      await new Promise((r) => setImmediate(r));
    }
  }

  /** A job as it will be once the end of its run is written (the store could not take it yet). */
  pendingView(job: JobRecord): JobRecord {
    const change = this.finishing.get(job.id);
    return change !== undefined && job.status === 'running' ? (change(job) ?? job) : job;
  }

  /** Writes the end of a run until the store takes it (or the scheduler stops: recovery then does). */
  private async retryFinish(jobId: string, record: () => Promise<unknown>): Promise<void> {
    // Not `stopped`: a process that serves the API without scheduling (KBSYNC_SCHEDULER=off, or
    // waiting for the lease) still finishes its manual runs.
    for (let wait = this.options.finishRetryMs ?? 1000; !this.closing; wait = Math.min(wait * 2, 30_000)) {
      await new Promise((r) => setTimeout(r, wait));
      if (this.closing) return;
      try {
        await record();
        this.finishing.delete(jobId);
        this.options.storeHealth?.succeeded();
        this.logger.info({ job: jobId }, 'the end of a run was recorded after a store fault');
        void this.tick();
        return;
      } catch (err) {
        this.options.storeHealth?.failed(err);
      }
    }
  }

  /** POST /jobs/{job}/run: a manual run now; 409 while one is in progress. */
  async runNow(job: JobRecord, options: SyncOptions = {}): Promise<RunRecord> {
    if (this.finishing.has(job.id) && this.options.storeHealth) throw this.options.storeHealth.error();
    if (this.active.has(job.id) || job.status === 'running') {
      throw conflict('Job is already running', [`job '${job.name}' has a run in progress; wait for it to finish`]);
    }
    // A manual run starts at once, whatever the run slots (it takes one, beyond the limit if need be).
    this.runSlots++;
    const started = await this.claim(job.id, 'manual', options).catch((err: unknown) => {
      this.releaseRunSlot();
      throw err;
    });
    if (!started) {
      this.releaseRunSlot();
      throw conflict('Job is already running', [`job '${job.name}' has a run in progress`]);
    }
    return started;
  }

  private async tick(): Promise<void> {
    if (this.ticking) {
      this.tickAgain = true;
      return;
    }
    this.ticking = true;
    try {
      do {
        this.tickAgain = false;
        if (this.stopped) return;
        const now = this.clock.now();
        // Refilled when half the batch is checked: jobs in flight are still due in the store (a
        // check writes nothing until it is done), so they are read again and skipped.
        if (this.queue.size < DUE_BATCH / 2 && now >= this.backoffUntil) {
          const limit = this.active.size + this.queue.size + DUE_BATCH;
          const due = await this.store.listDueJobs(now, limit);
          // Every process of a fleet reads the same due jobs: each takes them in its own order, so
          // their checks meet on fewer jobs (a check of a job another process recorded or claimed
          // meanwhile stops at its first read, before any source query).
          if (this.fleetShared) shuffle(due);
          if (due.length > 0) this.logger.debug({ due: due.length, active: this.active.size, queued: this.queue.size }, 'scheduler tick');
          for (const job of due) {
            if (this.active.has(job.id) || this.queue.has(job.id)) continue;
            this.queue.set(job.id, this.catchUp.delete(job.id) ? 'catch_up' : 'schedule');
          }
          // A full batch may have left due jobs unread: they count as not read by this time.
          this.fetchedAt = due.length < limit ? now : Number.NEGATIVE_INFINITY;
        }
        this.pump();
        await this.arm();
      } while (this.tickAgain && !this.stopped);
    } catch (err) {
      this.logger.error({ err }, 'scheduler tick failed');
      this.cancelTimer?.();
      this.cancelTimer = this.clock.setTimer(5_000, () => void this.tick());
    } finally {
      this.ticking = false;
    }
  }

  /** Starts checks of queued jobs while check slots are free. */
  private pump(): void {
    const max = this.options.maxConcurrentChecks ?? 16;
    while (this.checking < max && this.queue.size > 0 && !this.stopped && this.clock.now() >= this.backoffUntil) {
      const [jobId, trigger] = this.queue.entries().next().value as [string, RunTrigger];
      this.queue.delete(jobId);
      if (this.active.has(jobId)) continue;
      this.startCheck(jobId, trigger);
    }
  }

  /**
   * Sleeps until the earliest due tick (no polling of every job). Jobs due by the last read of
   * due jobs are queued or in flight, and each check or run that ends ticks again: the timer is
   * for the first job due after that read.
   */
  private async arm(): Promise<void> {
    this.cancelTimer?.();
    this.cancelTimer = null;
    if (this.stopped) return;
    const now = this.clock.now();
    if (now < this.backoffUntil) {
      this.cancelTimer = this.clock.setTimer(this.backoffUntil - now, () => void this.tick());
      return;
    }
    let next = await this.store.nextDueTime();
    if (next !== null && next <= this.fetchedAt && (this.active.size > 0 || this.queue.size > 0)) {
      next = await this.store.nextDueTime(this.fetchedAt);
    }
    if (next === null) return;
    this.logger.debug({ next_due_in_ms: Math.max(0, next - this.clock.now()) }, 'scheduler sleeps until the next due job');
    this.cancelTimer = this.clock.setTimer(Math.max(0, next - this.clock.now()), () => void this.tick());
  }

  /** Checks a due job; records its run when it finds nothing new, else claims it and runs it in full once a run slot is free. */
  private startCheck(jobId: string, trigger: RunTrigger): void {
    const entry: ActiveRun = { run: null, abort: new AbortController(), stopSource: new AbortController(), done: Promise.resolve() };
    this.active.set(jobId, entry);
    this.checking++;
    entry.done = this.checkThenRun(jobId, trigger, entry).catch((err: unknown) => {
      this.logger.error({ err, job: jobId }, 'checking a due job failed');
    });
  }

  private async checkThenRun(jobId: string, trigger: RunTrigger, entry: ActiveRun): Promise<void> {
    // Let startCheck() register the check before any of its work (and its end) happens.
    await Promise.resolve();
    let verdict: 'recorded' | 'run' | 'dropped' = 'dropped';
    try {
      verdict = await this.check(jobId, trigger, entry);
    } finally {
      this.checking--;
      if (verdict !== 'run') {
        this.active.delete(jobId);
        if (!this.stopped) void this.tick();
      }
    }
    if (verdict !== 'run') return;
    // Rows to read: the run waits for a run slot here (the check slot is free again meanwhile)
    // and only then claims the job, so a process without a free slot leaves it to the fleet's
    // other processes, which check it too; the claim's guard lets exactly one of them win. The
    // job stays in `active` meanwhile: no tick of this process checks it again.
    const granted = await this.acquireRunSlot();
    const run =
      granted && !entry.abort.signal.aborted && !entry.stopSource.signal.aborted
        ? await this.claim(jobId, trigger, {}, entry).catch((err: unknown) => {
            this.logger.error({ err, job: jobId }, 'could not start a run');
            return null;
          })
        : null;
    if (run === null) {
      if (granted) {
        this.wastedChecks++;
        this.releaseRunSlot();
      }
      if (this.active.get(jobId) === entry) this.active.delete(jobId);
      if (!this.stopped) void this.tick();
      return;
    }
    await this.active.get(jobId)?.done;
  }

  /** The check itself: 'recorded' (nothing new, run written), 'run' (run in full), 'dropped' (not due any more, or stopped). */
  private async check(jobId: string, trigger: RunTrigger, entry: ActiveRun): Promise<'recorded' | 'run' | 'dropped'> {
    const startedAt = this.clock.now();
    const job = await this.store.getJobById(jobId);
    if (job?.status !== 'scheduled' || job.nextRunMs === null || job.nextRunMs > startedAt) return 'dropped';
    let found: NothingNew | null;
    try {
      found = await checkNothingNew(this.sync, job, [entry.abort.signal, entry.stopSource.signal]);
    } catch (err) {
      if (entry.abort.signal.aborted || entry.stopSource.signal.aborted || err instanceof SourceQueryCancelled) return 'dropped';
      // Unreachable, timed out, refused: the full run meets it again and records why.
      this.logger.debug({ err, job: job.name }, 'check failed; the job runs in full');
      found = null;
    }
    if (entry.abort.signal.aborted || entry.stopSource.signal.aborted) return 'dropped';
    if (found === null) return 'run';
    const written = await this.recordNothingNew(job, trigger, startedAt, found);
    if (written === 'changed') this.wastedChecks++;
    if (written === 'changed' && trigger === 'catch_up') this.catchUp.add(job.id);
    return written === 'recorded' ? 'recorded' : 'dropped';
  }

  /**
   * A run that found nothing new, in one write: the run (succeeded, started and finished) and the
   * job moved to its next tick together — only if the job is still as it was checked (not paused,
   * deleted, changed, claimed or moved on meanwhile); otherwise nothing is written.
   */
  private async recordNothingNew(job: JobRecord, trigger: RunTrigger, startedAt: number, found: NothingNew): Promise<'recorded' | 'changed' | 'gone'> {
    const now = this.clock.now();
    const run: RunRecord = {
      id: newId('run', startedAt),
      jobId: job.id,
      trigger,
      status: 'succeeded',
      startedAt,
      finishedAt: now,
      rowsRead: 0,
      documentsAdded: 0,
      documentsUpdated: 0,
      documentsUnchanged: 0,
      rowsSkipped: found.rowsSkipped,
      rowsFailed: 0,
      documentsDeleted: 0,
      reconcile: found.reconcile,
      chunksWritten: 0,
      watermarkStart: job.watermark,
      watermarkEnd: job.watermark,
      error: null,
      processId: this.fleet.id,
    };
    let written = false;
    let stored: JobRecord | null;
    try {
      stored = await this.store.mutateJob(
        job.id,
        (current) => {
          const same =
            current.status === 'scheduled' &&
            current.nextRunMs === job.nextRunMs &&
            current.started &&
            (current.configVersion ?? 0) === (job.configVersion ?? 0) &&
            JSON.stringify(current.watermark) === JSON.stringify(job.watermark);
          if (!same) return null;
          written = true;
          const nextRunMs = firstTickAfter(gridOf(current), startedAt);
          const totals = { ...current.totals, runs_succeeded: current.totals.runs_succeeded + 1, rows_skipped: found.rowsSkipped };
          const lookbackSeen = this.sync.lookback?.seen(current);
          return {
            ...current,
            status: nextRunMs === null ? 'completed' : 'scheduled',
            statusBeforeRun: null,
            nextRunMs,
            lastRun: summary(run),
            totals,
            ...(lookbackSeen !== undefined ? { lookbackSeen } : {}),
            ...(found.lag !== undefined ? { lag: found.lag } : {}),
            lagAlerted: lagAlertStands(current.alertLagSeconds, found.lag ?? current.lag, current.lagAlerted === true, now),
            updatedAt: now,
          };
        },
        run,
      );
      this.options.storeHealth?.succeeded();
    } catch (err) {
      // Nothing was written and the job is still due: checks pause a little, the tick retries.
      this.options.storeHealth?.failed(err);
      this.logger.error({ err, job: job.name }, 'could not record a run that found nothing new; retrying shortly');
      this.backoffUntil = this.clock.now() + STORE_BACKOFF_MS;
      return 'changed';
    }
    if (stored === null) return 'gone';
    if (!written) return 'changed';
    void this.options.webhooks?.emit(stored, eventsOf(job, stored, null), null);
    this.options.onRunFinished?.(run);
    this.logger.debug({ job: job.name, run: run.id, trigger }, 'run found nothing new');
    return 'recorded';
  }

  /** A run slot: at once while fewer than maxConcurrentRuns are taken, else when one is handed over. False when stopping. */
  private acquireRunSlot(): Promise<boolean> {
    if (this.runSlots < this.options.maxConcurrentRuns) {
      this.runSlots++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => this.slotWaiters.push(resolve));
  }

  /** Hands the slot to the next waiting job, or frees it. */
  private releaseRunSlot(): void {
    const next = this.slotWaiters.shift();
    if (next !== undefined && this.runSlots <= this.options.maxConcurrentRuns) next(true);
    else {
      this.runSlots = Math.max(0, this.runSlots - 1);
      if (next !== undefined) this.slotWaiters.unshift(next);
    }
  }

  private refuseSlotWaiters(): void {
    for (const waiter of this.slotWaiters.splice(0)) waiter(false);
  }

  /**
   * Atomically moves the job to `running` (only if it is in a state this trigger may start from,
   * and no claim of another run is alive), records the run with this process's claim and starts
   * it. Scheduled triggers move next_run to the first tick after now, so ticks passing during the
   * run collapse into at most one run right after it — and a tick is claimed once across the
   * fleet: every other process's claim of it finds next_run moved (or the job running) and
   * writes nothing. The caller holds a run slot.
   */
  private async claim(jobId: string, trigger: RunTrigger, options: SyncOptions = {}, checked?: ActiveRun): Promise<RunRecord | null> {
    const now = this.clock.now();
    let before: JobStatus | null = null;
    const run: RunRecord = {
      id: newId('run', now),
      jobId,
      trigger,
      status: 'running',
      startedAt: now,
      finishedAt: null,
      rowsRead: 0,
      documentsAdded: 0,
      documentsUpdated: 0,
      documentsUnchanged: 0,
      rowsSkipped: 0,
      rowsFailed: 0,
      documentsDeleted: 0,
      chunksWritten: 0,
      watermarkStart: null,
      watermarkEnd: null,
      error: null,
      processId: this.fleet.id,
    };
    let claimedAt = 0;
    // The job moves to `running` and its run is recorded in one transaction: a job is never
    // running without a run that recovery can find.
    const job = await this.store.mutateJob(
      jobId,
      (current) => {
        before = null;
        claimedAt = Date.now();
        if (claimBlocked(current, claimedAt, holderIsDeadHere)) return null;
        if (trigger !== 'manual' && (current.status !== 'scheduled' || current.nextRunMs === null || current.nextRunMs > now)) return null;
        before = current.status;
        run.watermarkStart = current.watermark;
        run.watermarkEnd = current.watermark;
        const nextRunMs = trigger === 'manual' ? current.nextRunMs : firstTickAfter(gridOf(current), now);
        return {
          ...current,
          status: 'running',
          statusBeforeRun: current.status,
          nextRunMs,
          lastRun: summary(run),
          runLease: leaseFor(this.fleet.id, claimedAt, this.ttlMs),
          updatedAt: now,
        };
      },
      run,
    );
    if (!job || before === null) return null;
    const statusBefore: JobStatus = before;
    // After a check, a pause or shutdown already asked for reaches the run through the same controllers.
    const abort = checked?.abort ?? new AbortController();
    const stopSource = checked?.stopSource ?? new AbortController();
    const active: ActiveRun = { run, abort, stopSource, done: Promise.resolve() };
    this.active.set(jobId, active);
    this.watch.watch(jobId, run.id, claimedAt, (reason) => this.onWatchStop(jobId, run.id, active, reason));
    active.done = this.execute(job, run, statusBefore, active, { ...options, stopSource: stopSource.signal });
    this.logger.info({ job: job.name, run: run.id, trigger }, 'run started');
    return run;
  }

  private async execute(job: JobRecord, run: RunRecord, statusBefore: JobStatus, active: ActiveRun, options: SyncOptions): Promise<void> {
    // Let claim() register the run before any of its work (and its completion) happens.
    await Promise.resolve();
    const signal = active.abort.signal;
    const claim = { owner: this.fleet.id, ttlMs: this.ttlMs };
    let outcome: { status: RunRecord['status']; error: RunRecord['error']; permanent: boolean };
    try {
      await executeSync(this.logBatches(job, run), job.id, run, signal, { ...options, claim });
      outcome = { status: 'succeeded', error: null, permanent: false };
    } catch (err) {
      if (err instanceof RunLeaseLost || active.lost) {
        // Another process goes on with this run from its last checkpoint: nothing is written here.
        this.forget(job.id, run.id);
        this.logger.warn({ job: job.name, run: run.id }, 'run given up: another process took it over');
        return;
      }
      if (err instanceof RunCancelled || err instanceof SourceQueryCancelled || signal.aborted) {
        // An abort (shutdown; pause or delete for the source) may surface as the provider's
        // AbortError or the source's cancelled query: still a cancellation, for the abort's reason.
        const reason = [signal, options.stopSource].find((s) => s?.aborted && s.reason instanceof RunCancelled)?.reason as RunCancelled | undefined;
        const message = reason?.message ?? (err instanceof RunCancelled ? err.message : 'the service is shutting down');
        outcome = { status: 'cancelled', error: { code: 'CANCELLED', message }, permanent: false };
      } else if (err instanceof SourceTimeoutError) {
        // Not permanent: the lock may be gone at the next tick.
        outcome = {
          status: 'failed',
          error: { code: err.code, message: `reading source table '${job.sourceTable}' timed out: ${err.message}; the job stays scheduled and its next run tries again` },
          permanent: false,
        };
      } else if (err instanceof PermanentSyncError) {
        outcome = { status: 'failed', error: { code: err.code, message: err.message }, permanent: true };
      } else if (err instanceof EmbeddingProviderError && !err.retryable && [401, 403, 404].includes(err.status ?? 0)) {
        // Refused credentials or an unknown model do not heal by waiting.
        outcome = {
          status: 'failed',
          error: {
            code: 'PROVIDER_REFUSED',
            message: `${err.message}; fix the knowledge base's embedding configuration (key, model, base_url), then resume the job`,
          },
          permanent: true,
        };
      } else {
        const message = err instanceof AppError ? `${err.message}: ${err.details.join('; ')}` : err instanceof Error ? err.message : String(err);
        outcome = { status: 'failed', error: { code: 'SYNC_FAILED', message }, permanent: false };
      }
    }
    active.ending = true;
    const now = this.clock.now();
    const finished: RunRecord = { ...run, status: outcome.status, error: outcome.error, finishedAt: now };
    // The job as the write that recorded the end found it: its events (jobs/webhooks.ts) compare with it.
    let before: JobRecord | null = null;
    const change = (current: JobRecord): JobRecord | null => {
      before = null;
      const next = endOfRun(current);
      if (next !== null) before = current;
      return next === null ? null : { ...next, lagAlerted: lagAlertStands(next.alertLagSeconds, next.lag, current.lagAlerted === true, now) };
    };
    const endOfRun = (current: JobRecord): JobRecord | null => {
        // Written late (after a store fault or a stall), the run may have been taken over by
        // another process meanwhile, which records its end: nothing is written here then.
        if (!holdsRun(current, claim.owner, run.id)) return null;
        const totals = { ...current.totals };
        if (outcome.status === 'succeeded') totals.runs_succeeded += 1;
        if (outcome.status === 'failed') totals.runs_failed += 1;
        totals.rows_skipped = finished.rowsSkipped;
        totals.rows_failed += finished.rowsFailed;
        // What the run learnt about the lookback window is kept with the job (sync/lookback-memory.ts).
        const lookbackSeen = this.sync.lookback?.seen(current);
        const next: JobRecord = {
          ...current,
          totals,
          lastRun: summary(finished),
          statusBeforeRun: null,
          runLease: null,
          ...(lookbackSeen !== undefined ? { lookbackSeen } : {}),
          // The lag the run measured (sync/run-sync.ts), kept with the job in this same write.
          ...(finished.lag !== undefined ? { lag: finished.lag } : {}),
          updatedAt: now,
        };
        if (current.status !== 'running') return next; // paused meanwhile: keep it paused
        if (outcome.permanent) {
          return { ...next, status: 'failed', statusReason: outcome.error?.message ?? null, nextRunMs: null };
        }
        // A manual run of a paused, failed or completed job leaves the job as it was (unless it
        // was resumed meanwhile, which sets statusBeforeRun to scheduled).
        const before = current.statusBeforeRun ?? statusBefore;
        if (run.trigger === 'manual' && before !== 'scheduled') return { ...next, status: before };
        if (signal.aborted && outcome.status === 'cancelled') {
          // Service shutdown: due again at once, so another process (or the next start) finishes what is left.
          return { ...next, status: 'scheduled', nextRunMs: Math.min(current.nextRunMs ?? now, now) };
        }
        return current.nextRunMs === null
          ? { ...next, status: 'completed', nextRunMs: null }
          : { ...next, status: 'scheduled' };
    };
    const record = async () => {
      const stored = await this.store.mutateJob(job.id, change, finished);
      if (stored !== null && before !== null) void this.options.webhooks?.emit(stored, eventsOf(before, stored, finished), finished);
    };
    // A failed write (the file briefly locked) is retried; meanwhile the run's claim lapses and
    // another process may take it over (then this late end is not written).
    try {
      await record();
      this.options.storeHealth?.succeeded();
    } catch (err) {
      // The store cannot be written (disk full…): the end of the run is kept and written once it
      // can; meanwhile the job is shown as it will be (pendingView), never as running forever.
      this.options.storeHealth?.failed(err);
      this.logger.error({ err, run: run.id }, 'could not record the end of a run; retrying until the store takes writes');
      this.finishing.set(job.id, change);
      void this.retryFinish(job.id, record);
    }
    this.forget(job.id, run.id);
    this.options.onRunFinished?.(finished);
    this.logger.info({ job: job.name, run: run.id, status: outcome.status, rows: run.rowsRead, error: outcome.error?.message }, 'run finished');
  }

  /** The run no longer works here: its slot and its watch are free. */
  private forget(jobId: string, runId: string): void {
    this.watch.unwatch(jobId, runId);
    if (this.active.get(jobId)?.run?.id === runId) this.active.delete(jobId);
    this.releaseRunSlot();
    if (!this.stopped) void this.tick();
  }
}

/** Fisher-Yates, in place. */
function shuffle<T>(items: T[]): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}
