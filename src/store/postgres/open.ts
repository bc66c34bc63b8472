/**
 * Opens the scale-out store: a pg.Pool on KBSYNC_STORE_URL whose every connection works in the
 * kbsync schema (KBSYNC_STORE_SCHEMA). Shared by the PostgreSQL control and vector stores; nothing
 * outside store/postgres/ sees the pool.
 *
 * search_path (and jit) are start-up parameters of each connection (libpq `options`), so no query
 * can run before they are set and none pays an extra round trip. `public` comes second because that is where
 * the migrations create the pgvector extension (its type and operators must resolve unqualified).
 */
import pg from 'pg';

/** Lower-case unquoted identifiers only: the name goes into SQL text and the `options` parameter. */
export const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;
export const DEFAULT_SCHEMA = 'kbsync';

export interface PostgresDatabase {
  readonly pool: pg.Pool;
  readonly schema: string;
  /** Ends every connection; idempotent. */
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Connections at most (default 10). */
  max?: number;
  /** Name for pg_stat_activity, so an operator can tell kbsync's sessions apart. */
  applicationName?: string;
  /**
   * Longest a statement may run (lock waits included), and longest a session may sit idle inside
   * a transaction, in ms; unset: the server's settings. The app always sets it
   * (KBSYNC_STORE_STATEMENT_TIMEOUT_MS), so a stuck store fails a request instead of wedging it,
   * and a client stalled mid-transaction cannot hold row locks for longer. Benchmarks that build
   * an HNSW index on a million rows leave it unset.
   */
  statementTimeoutMs?: number;
}

export function checkSchemaName(schema: string): void {
  if (!SCHEMA_PATTERN.test(schema)) {
    throw new RangeError(
      `schema name ${JSON.stringify(schema)} is not valid: use 1-63 lower-case letters, digits and '_', not starting with a digit`,
    );
  }
}

export function openPostgres(
  url: string,
  schema: string = DEFAULT_SCHEMA,
  options: OpenOptions = {},
): PostgresDatabase {
  checkSchemaName(schema);
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'kbsync',
    // jit off: the planner's cost of a keyword or exact vector search over a large collection
    // passes jit_above_cost, and compiling took longer (1.4 s, measured) than the query itself.
    options: `-c search_path=${schema},public -c jit=off${timeoutOptions(options.statementTimeoutMs)}`,
    connectionTimeoutMillis: 10_000,
  });
  // An idle connection the server ends (restart, idle timeout) emits 'error' on the pool; unhandled,
  // that would end the process. The pool drops the client; the next query opens another.
  pool.on('error', () => {});
  let closed: Promise<void> | null = null;
  return {
    pool,
    schema,
    close() {
      closed ??= pool.end();
      return closed;
    },
  };
}

function timeoutOptions(ms: number | undefined): string {
  if (ms === undefined) return '';
  if (!Number.isSafeInteger(ms) || ms < 1) throw new RangeError(`statementTimeoutMs must be a positive whole number, got ${ms}`);
  return ` -c statement_timeout=${ms} -c idle_in_transaction_session_timeout=${ms}`;
}

/** Runs `work` in one transaction on one connection; rolls back on any error. */
export async function inTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  // A connection whose ROLLBACK failed is in an unknown state: destroyed, not returned to the pool.
  let broken = false;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    throw err;
  } finally {
    client.release(broken);
  }
}

/** SQLSTATE of a driver error, if it has one. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
