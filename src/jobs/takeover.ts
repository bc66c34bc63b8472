/**
 * Recovery in a fleet (docs/architecture.md, "Fleet"): the store writes of the sweep every
 * process makes every half claim life. A run recorded `running` whose claim lapsed (its process
 * died, stalled or shut down without finishing it) is either taken over — the same run record
 * goes on from its job's last checkpoint on the process that takes it — or, when its job no
 * longer runs it (paused meanwhile, or another run claimed since), closed as INTERRUPTED. Each
 * write checks again, in its own transaction, that the run is still in the state it was judged
 * in (core/run-lease.ts sweepVerdict), so two processes sweeping at once never both act.
 */
import { claimLapsed, type IsDead, leaseFor, sweepVerdict } from '../core/run-lease.js';
import type { ControlStore, JobRecord, RunRecord, RunSummary } from '../store/port.js';

export interface Lapsed {
  job: JobRecord;
  run: RunRecord;
}

/**
 * Reads the runs recorded `running` that this process does not run, closes those to close, puts
 * back jobs left `running` without a running run, and answers the runs to take over (lapsed
 * claims, oldest run first). Two store reads whatever the fleet's size, plus one per run whose
 * job is not `running` (rare: paused during a run).
 */
export async function findLapsedRuns(
  store: ControlStore,
  runsHere: (jobId: string) => boolean,
  isDead: IsDead,
  finishedAt: number,
): Promise<Lapsed[]> {
  const jobs = new Map((await store.listJobsWithStatus('running', 10_000)).map((j) => [j.id, j]));
  const runs = (await store.listRunningRuns()).sort((a, b) => (a.id < b.id ? -1 : 1));
  const now = Date.now();
  const lapsed: Lapsed[] = [];
  for (const run of runs) {
    if (runsHere(run.jobId)) continue;
    const job = jobs.get(run.jobId) ?? (await store.getJobById(run.jobId));
    const verdict = sweepVerdict(job, run, now, isDead);
    if (verdict === 'resume' && job !== null) lapsed.push({ job, run });
    if (verdict === 'close') await closeInterrupted(store, run, isDead, finishedAt);
  }
  // A job `running` whose current run is not recorded running (stored by an older version, or
  // written by hand): back to the status it ran from once its claim lapsed.
  const running = new Set(runs.map((r) => r.id));
  for (const job of jobs.values()) {
    if (runsHere(job.id) || (job.lastRun !== null && running.has(job.lastRun.id))) continue;
    await store.mutateJob(job.id, (current) =>
      current.status === 'running' && current.lastRun?.id === job.lastRun?.id && claimLapsed(current.runLease, Date.now(), isDead)
        ? afterInterruption(current, finishedAt)
        : null,
    );
  }
  return lapsed;
}

/**
 * Takes the run over for `owner`: the claim becomes this process's and the run record says who
 * runs it now. Null when it is no longer there to take (another process was quicker, or the
 * process that held it woke up and wrote a checkpoint, which renews the claim).
 */
export async function takeOver(store: ControlStore, owner: string, ttlMs: number, lapsed: Lapsed, isDead: IsDead): Promise<Lapsed | null> {
  const run: RunRecord = { ...lapsed.run, processId: owner };
  let taken = false;
  const job = await store.mutateJob(
    lapsed.job.id,
    (current) => {
      const now = Date.now();
      taken = sweepVerdict(current, lapsed.run, now, isDead) === 'resume';
      return taken ? { ...current, runLease: leaseFor(owner, now, ttlMs) } : null;
    },
    run,
  );
  return taken && job !== null ? { job, run } : null;
}

/**
 * Records a lapsed run its job no longer runs as failed INTERRUPTED (an interrupted run counts as
 * failed in the job's totals, API.md "Jobs"); if it was the job's current run, the job shows it
 * and goes back to the status it ran from.
 */
async function closeInterrupted(store: ControlStore, run: RunRecord, isDead: IsDead, finishedAt: number): Promise<void> {
  const interrupted: RunRecord = {
    ...run,
    status: 'failed',
    finishedAt,
    error: { code: 'INTERRUPTED', message: 'the process running it stopped; the next run resumes from the last checkpoint' },
    // What the dead process last wrote of its progress is not shown on a run that has ended.
    progress: null,
  };
  await store.mutateJob(
    run.jobId,
    (current) => {
      if (sweepVerdict(current, run, Date.now(), isDead) !== 'close') return null;
      const currentRun = current.lastRun?.id === run.id;
      const closed: JobRecord = {
        ...current,
        ...(currentRun ? { lastRun: summary(interrupted), runLease: null } : {}),
        totals: { ...current.totals, runs_failed: current.totals.runs_failed + 1 },
      };
      return currentRun && current.status === 'running' ? afterInterruption(closed, finishedAt) : closed;
    },
    interrupted,
  );
}

/** Gives up this process's claim on a run it abandons (shutdown), so another process takes it over at once. */
export async function releaseClaim(store: ControlStore, owner: string, jobId: string, runId: string): Promise<void> {
  await store.mutateJob(jobId, (current) =>
    current.runLease?.owner === owner && current.lastRun?.id === runId ? { ...current, runLease: { owner, expiresAt: 0 } } : null,
  );
}

/** Where a job left `running` by a dead process goes back to. */
export function afterInterruption(job: JobRecord, now: number): JobRecord {
  const before = job.statusBeforeRun ?? 'scheduled';
  const base = { ...job, statusBeforeRun: null, runLease: null, updatedAt: now };
  if (before === 'scheduled') return { ...base, status: 'scheduled', nextRunMs: now };
  return { ...base, status: before, nextRunMs: null };
}

export function summary(run: RunRecord): RunSummary {
  return {
    id: run.id,
    trigger: run.trigger,
    status: run.status,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    error: run.error,
  };
}
