/**
 * Run claims in a fleet (docs/architecture.md, "Fleet"): which process runs a job's current run,
 * and when another process may take that run over. Pure: the caller passes the wall-clock time
 * and how to tell a dead process of this host (jobs/lease.ts holderIsDeadHere).
 *
 * A claim lives in the job record (`runLease`), so the claim, every checkpoint and the end of a
 * run check it in the same transaction that writes (ControlStore.mutateJob): a process whose run
 * was taken over cannot write for it any more, however late it wakes up.
 */

export interface RunLease {
  owner: string;
  expiresAt: number;
}

/** What these rules read of a job record. */
export interface LeasedJob {
  status: string;
  runLease?: RunLease | null;
  lastRun: { id: string } | null;
}

/** What these rules read of a run record. */
export interface LeasedRun {
  id: string;
  status: string;
}

export type IsDead = (owner: string) => boolean;

/** A claim for `owner` that holds `ttlMs` from `now`. */
export function leaseFor(owner: string, now: number, ttlMs: number): RunLease {
  return { owner, expiresAt: now + ttlMs };
}

/**
 * Whether `owner` still holds the job's run `runId`: the job's current run is that run and its
 * claim is `owner`'s. Expiry does not matter here: until another process takes the run over, the
 * late owner's writes are still the only ones (the checkpoint renews the claim).
 */
export function holdsRun(job: LeasedJob, owner: string, runId: string): boolean {
  return job.runLease?.owner === owner && job.lastRun?.id === runId;
}

/** No claim, an expired one, or one whose holder is known to be dead: nobody runs the job's run now. */
export function claimLapsed(lease: RunLease | null | undefined, now: number, isDead: IsDead): boolean {
  return lease == null || lease.expiresAt <= now || isDead(lease.owner);
}

/**
 * What the fleet's sweep does with a run recorded `running` that this process does not run:
 *
 * - `wait`: its claim is alive (another process runs it), or its job is gone;
 * - `resume`: its claim lapsed and its job is still running it: take it over, same run record,
 *   from the job's last checkpoint;
 * - `close`: its claim lapsed and its job no longer runs it (paused meanwhile, or another run
 *   started since): record it as interrupted.
 *
 * Decided again inside the transaction that acts on it, so two sweeps never both act.
 */
export function sweepVerdict(job: LeasedJob | null, run: LeasedRun, now: number, isDead: IsDead): 'wait' | 'resume' | 'close' {
  if (job === null || run.status !== 'running') return 'wait';
  if (job.lastRun?.id !== run.id) {
    // Another run was claimed since, which needs this one's claim lapsed (claimBlocked).
    return 'close';
  }
  if (!claimLapsed(job.runLease, now, isDead)) return 'wait';
  return job.status === 'running' ? 'resume' : 'close';
}

/**
 * A new run cannot be claimed while the job's current run still holds a live claim, whatever the
 * job's status says: a job paused during a run shows `paused` before its run has stopped, and a
 * run-now then must not start a second run beside it.
 */
export function claimBlocked(job: LeasedJob, now: number, isDead: IsDead): boolean {
  return job.status === 'running' || !claimLapsed(job.runLease, now, isDead);
}
