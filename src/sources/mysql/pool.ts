/**
 * A registered MySQL/MariaDB database's connections (a mysql2 pool, created on first use) and
 * table descriptions, shared by every run on it (SourcePool). The session time zone, statement
 * and lock timeouts are set when a connection opens, so every connection of the pool carries them.
 */
import { createPool, type PoolOptions } from 'mysql2';
import { type ConnectionOptions, createConnection, type Pool, type PoolConnection } from 'mysql2/promise';
import {
  type ConnectionParameters,
  DEFAULT_POOL_LIMITS,
  DEFAULT_SOURCE_LIMITS,
  type SourceConnector,
  type SourceLimits,
  type SourcePool,
  type SourcePoolLimits,
  SourceQueryCancelled,
} from '../port.js';
import { ConnectorUse, type InFlightQueries, TableCache, wholeSeconds } from '../shared.js';
import { MysqlConnector, parseMysqlUrl } from './connector.js';
import type { MysqlColumnExtra } from './sql.js';

export type MysqlParameters = Exclude<ConnectionParameters, { path: string }>;

export class MysqlPool implements SourcePool {
  readonly engine = 'mysql' as const;
  readonly options: PoolOptions;
  readonly tables: TableCache<MysqlColumnExtra>;
  readonly use = new ConnectorUse();
  /** For the connection that sends KILL QUERY. */
  private readonly connection: ConnectionOptions;
  private pool: Pool | null = null;
  private closed = false;

  constructor(
    params: MysqlParameters,
    readonly limits: SourceLimits = DEFAULT_SOURCE_LIMITS,
    poolLimits: SourcePoolLimits = DEFAULT_POOL_LIMITS,
  ) {
    this.tables = new TableCache<MysqlColumnExtra>(poolLimits.describeMaxAgeMs);
    const target =
      'url' in params ? { ...parseMysqlUrl(params.url), ...(params.ssl ? { ssl: true } : {}) } : params;
    this.connection = {
      host: target.host ?? 'localhost',
      port: target.port ?? 3306,
      user: target.user,
      password: target.password,
      ssl: target.ssl ? {} : undefined,
      connectTimeout: 5_000,
    };
    this.options = {
      host: target.host ?? 'localhost',
      port: target.port ?? 3306,
      user: target.user,
      password: target.password,
      database: target.database,
      ssl: target.ssl ? {} : undefined,
      connectionLimit: poolLimits.size,
      maxIdle: poolLimits.size,
      idleTimeout: poolLimits.idleMs,
      connectTimeout: 5_000,
      charset: 'utf8mb4',
      // DATETIME(6) as a Date would lose microseconds and be read in this process's time zone.
      dateStrings: true,
      // BIGINT and DECIMAL beyond 2^53 come back as strings instead of rounded numbers.
      supportBigNumbers: true,
    };
  }

  /** `closesPool`: the connector owns this pool and closes it with itself (createSourceConnector). */
  connector(options: { closesPool?: boolean } = {}): SourceConnector {
    return new MysqlConnector(this, options.closesPool ?? false);
  }

  idleSince(): number | null {
    return this.use.idleSince();
  }

  /** The server's limits do nothing when it stops answering: the client gives up a little after them. */
  clientDeadline(): number {
    return Math.round(this.limits.statementTimeoutMs + this.limits.lockTimeoutMs + 5_000);
  }

  private getPool(): Pool {
    if (this.closed) throw new Error('MySQL source connector is closed');
    if (this.pool === null) {
      const pool = createPool(this.options);
      // TIMESTAMP is converted to the session zone on output; UTC keeps a watermark's text the
      // same on every connection. mysql2 runs a connection's commands in order, so this SET
      // completes before the first query on the new connection.
      pool.on('connection', (conn) => {
        conn.query("SET time_zone = '+00:00'", () => {});
        // The statement and lock timeouts (SEMANTICS.md, "One configuration per run"): metadata
        // locks (LOCK TABLES, DDL) and row locks wait whole seconds; the statement limit is
        // MariaDB's max_statement_time (seconds) or MySQL's MAX_EXECUTION_TIME (ms, SELECT only).
        // Each engine refuses the other's variable, so each is set on its own and errors ignored.
        const lock = wholeSeconds(this.limits.lockTimeoutMs);
        conn.query(`SET SESSION lock_wait_timeout = ${lock}, innodb_lock_wait_timeout = ${lock}`, () => {});
        conn.query(
          `SET SESSION max_statement_time = ${(this.limits.statementTimeoutMs / 1000).toFixed(3)}`,
          () => {},
        );
        conn.query(
          `SET SESSION max_execution_time = ${Math.round(this.limits.statementTimeoutMs)}`,
          () => {},
        );
      });
      this.pool = pool.promise();
    }
    return this.pool;
  }

  /**
   * Runs `fn` on a pooled connection whose thread `inFlight` knows while it runs (the connector's
   * cancel() targets it). A connection that ran a query of a cancelled connector, or failed other
   * than with a server error, is closed rather than reused: a KILL QUERY still on its way must
   * never reach another run's query.
   */
  async withConnection<T>(inFlight: InFlightQueries, fn: (conn: PoolConnection) => Promise<T>): Promise<T> {
    const conn = await this.getPool().getConnection();
    const thread = conn.threadId;
    inFlight.add(thread);
    let discard = false;
    try {
      if (inFlight.cancelled) throw new SourceQueryCancelled();
      return await fn(conn);
    } catch (err) {
      discard = !isServerError(err);
      throw err;
    } finally {
      inFlight.delete(thread);
      if (discard || inFlight.cancelled) conn.destroy();
      else conn.release();
    }
  }

  /** KILL QUERY on these threads, from a connection of its own. */
  async killQueries(threads: number[]): Promise<void> {
    const conn = await createConnection(this.connection);
    conn.on('error', () => {});
    try {
      for (const thread of threads) {
        if (Number.isSafeInteger(thread)) await conn.query(`KILL QUERY ${thread}`).catch(() => undefined);
      }
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    this.closed = true;
    this.tables.clear();
    if (pool !== null) await pool.end();
  }
}

/**
 * An error the server sent about a statement (an errno below 2000; 2xxx are client errors such
 * as a lost connection): the connection is still sound. A killed query (1317) is not reused.
 */
function isServerError(err: unknown): boolean {
  const errno = (err as { errno?: unknown } | null)?.errno;
  const fatal = (err as { fatal?: unknown } | null)?.fatal === true;
  return typeof errno === 'number' && errno < 2000 && errno !== 1317 && !fatal;
}
