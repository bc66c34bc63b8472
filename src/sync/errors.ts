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

/** Heuristic for driver errors worth retrying inside the run: connection and timeout trouble. */
export function isTransientSourceError(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code ?? '';
  const message = err instanceof Error ? err.message : String(err);
  return (
    ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'PROTOCOL_CONNECTION_LOST', '57P01', '57P03', '08006', '08001', '08003', 'SQLITE_BUSY'].includes(code) ||
    /connection (terminated|lost|refused|reset)|timeout|timed out|server closed|ECONNRESET|database is locked/i.test(message)
  );
}
