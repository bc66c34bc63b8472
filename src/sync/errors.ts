import { SourceQueryCancelled, SourceTimeoutError } from '../sources/port.js';

/**
 * Two kinds of run failure (SEMANTICS.md): a transient one fails the run and the job stays
 * scheduled (the next tick retries from the checkpoint); a permanent one (table dropped, column
 * removed, knowledge base deleted, credentials refused) marks the job `failed` with what to fix.
 */
export class PermanentSyncError extends Error {
  override name = 'PermanentSyncError';
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The job was paused or deleted: the run stops at the batch boundary. */
export class RunCancelled extends Error {
  override name = 'RunCancelled';
}

/**
 * Another process took the run over (this one stalled past its claim), or its claim could not be
 * renewed in time: the run stops and writes nothing more; the process holding the claim goes on
 * from the last checkpoint (core/run-lease.ts).
 */
export class RunLeaseLost extends RunCancelled {
  override name = 'RunLeaseLost';
}

/**
 * Heuristic for driver errors worth retrying inside the run: connection trouble. A source query
 * that hit its statement or lock timeout is not (SourceTimeoutError, SEMANTICS.md "One
 * configuration per run"): the same wait would come again, holding a run slot readAttempts times
 * as long; the run fails with SOURCE_TIMEOUT and the next tick tries again. Nor is a cancelled query.
 */
export function isTransientSourceError(err: unknown): boolean {
  if (err instanceof SourceTimeoutError || err instanceof SourceQueryCancelled) return false;
  const code = (err as { code?: string } | null)?.code ?? '';
  const errno = (err as { errno?: number } | null)?.errno;
  // Timeouts and cancels the adapters did not translate: PostgreSQL query_canceled and
  // lock_not_available, MySQL/MariaDB lock wait, statement time, killed query.
  if (['57014', '55P03'].includes(code) || (errno !== undefined && [1205, 1317, 1969, 3024].includes(errno))) return false;
  const message = err instanceof Error ? err.message : String(err);
  return (
    ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'PROTOCOL_CONNECTION_LOST', '57P01', '57P03', '08006', '08001', '08003', 'SQLITE_BUSY'].includes(code) ||
    /connection (terminated|lost|refused|reset)|timeout|timed out|server closed|ECONNRESET|database is locked/i.test(message)
  );
}
