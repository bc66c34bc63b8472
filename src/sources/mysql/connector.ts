/** SourceConnector for MySQL and MariaDB, through a small mysql2 pool created on first use. */
import { createPool, type PoolOptions } from 'mysql2';
import { type ConnectionOptions, createConnection, type Pool, type PoolConnection } from 'mysql2/promise';
import { AppError } from '../../core/errors.js';
import {
  type ConnectionParameters,
  DEFAULT_SOURCE_LIMITS,
  type KeyBucket,
  type KeyScopeRequest,
  type KeysetPosition,
  type ReadBatchRequest,
  type ReadByKeysRequest,
  type SourceConnector,
  type SourceLimits,
  SourceQueryCancelled,
  type SourceRow,
  SourceTimeoutError,
  type TableInfo,
  type TableRef,
} from '../port.js';
import {
  buildCountNullQuery,
  buildKeyBucketsQuery,
  buildKeysInBucketsQuery,
  buildReadByKeysQuery,
  scopeColumns,
  toKeyBuckets,
  buildKeysetQuery,
  buildMaxPositionQuery,
  ceilUnits,
  checkSeconds,
  connectionError,
  InFlightQueries,
  publicInfo,
  subtractInteger,
  TableCache,
  toPosition,
  toSourceRows,
  validateReadRequest,
  wholeSeconds,
} from '../shared.js';
import { introspect, type MysqlQuery } from './introspect.js';
import { type MysqlColumnExtra, mysqlDialect, quoteIdent } from './sql.js';

export { quoteIdent };

export type MysqlParameters = Exclude<ConnectionParameters, { path: string }>;

export class MysqlConnector implements SourceConnector {
  readonly engine = 'mysql' as const;
  private pool: Pool | null = null;
  private closed = false;
  private readonly options: PoolOptions;
  private readonly tables = new TableCache<MysqlColumnExtra>((ref) => this.loadTable(ref));
  /** Thread ids of the connections running a query (KILL QUERY targets). */
  private readonly inFlight = new InFlightQueries();
  /** For the connection that sends KILL QUERY. */
  private readonly connection: ConnectionOptions;

  /** The server's limits do nothing when it stops answering: the client gives up a little after them. */
  private clientDeadline(): number {
    return Math.round(this.limits.statementTimeoutMs + this.limits.lockTimeoutMs + 5_000);
  }

  constructor(
    params: MysqlParameters,
    private readonly limits: SourceLimits = DEFAULT_SOURCE_LIMITS,
  ) {
    const target = 'url' in params ? { ...parseMysqlUrl(params.url), ...(params.ssl ? { ssl: true } : {}) } : params;
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
      connectionLimit: 4,
      maxIdle: 4,
      idleTimeout: 10_000,
      connectTimeout: 5_000,
      charset: 'utf8mb4',
      // DATETIME(6) as a Date would lose microseconds and be read in this process's time zone.
      dateStrings: true,
      // BIGINT and DECIMAL beyond 2^53 come back as strings instead of rounded numbers.
      supportBigNumbers: true,
    };
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
        conn.query(`SET SESSION max_statement_time = ${(this.limits.statementTimeoutMs / 1000).toFixed(3)}`, () => {});
        conn.query(`SET SESSION max_execution_time = ${Math.round(this.limits.statementTimeoutMs)}`, () => {});
      });
      this.pool = pool.promise();
    }
    return this.pool;
  }

  private readonly query: MysqlQuery = async <R>(sql: string, values: unknown[]) =>
    this.guard(async (conn) => {
      const [rows] = await conn.execute({ sql, timeout: this.clientDeadline() }, values as never[]);
      return rows as R[];
    });

  private async queryArrays(sql: string, values: unknown[]): Promise<unknown[][]> {
    return this.guard(async (conn) => {
      const [rows] = await conn.execute({ sql, rowsAsArray: true, timeout: this.clientDeadline() }, values as never[]);
      return rows as unknown[][];
    });
  }

  /**
   * Runs `fn` on a pooled connection known to be in flight (for cancel()); refuses queries after
   * cancel(); turns the server's timeout and kill errors into the port's.
   */
  private async guard<T>(fn: (conn: PoolConnection) => Promise<T>): Promise<T> {
    if (this.inFlight.cancelled) throw new SourceQueryCancelled();
    const conn = await this.getPool().getConnection();
    const thread = conn.threadId;
    this.inFlight.add(thread);
    try {
      return await fn(conn);
    } catch (err) {
      if (this.inFlight.cancelled) throw new SourceQueryCancelled({ cause: err });
      switch ((err as { errno?: unknown } | null)?.errno) {
        case 1205: // ER_LOCK_WAIT_TIMEOUT: lock_wait_timeout (metadata) or innodb_lock_wait_timeout (rows)
          throw new SourceTimeoutError('lock', this.limits.lockTimeoutMs, { cause: err });
        case 1969: // MariaDB ER_STATEMENT_TIMEOUT (max_statement_time)
        case 3024: // MySQL ER_QUERY_TIMEOUT (MAX_EXECUTION_TIME)
          throw new SourceTimeoutError('statement', this.limits.statementTimeoutMs, { cause: err });
        default:
          throw err;
      }
    } finally {
      this.inFlight.delete(thread);
      conn.release();
    }
  }

  /** KILL QUERY on the threads running this connector's queries, from a connection of its own. */
  async cancel(): Promise<void> {
    await this.inFlight.cancel(async (threads) => {
      const conn = await createConnection(this.connection);
      conn.on('error', () => {});
      try {
        for (const thread of threads) {
          if (Number.isSafeInteger(thread)) await conn.query(`KILL QUERY ${thread}`).catch(() => undefined);
        }
      } finally {
        await conn.end().catch(() => undefined);
      }
    });
  }

  private async loadTable(ref: TableRef) {
    if (!(await this.isCurrentDatabase(ref.schema))) return null;
    const [table] = await introspect(this.query, ref.name);
    return table ?? null;
  }

  /** A ref's schema is null, or the connected database's own name. */
  private async isCurrentDatabase(schema: string | null): Promise<boolean> {
    if (schema === null) return true;
    const rows = await this.query<{ db: string | null }>('SELECT DATABASE() AS db', []);
    return rows[0]?.db === schema;
  }

  async ping(): Promise<void> {
    try {
      const conn = await this.getPool().getConnection();
      try {
        await conn.ping();
      } finally {
        conn.release();
      }
    } catch (err) {
      throw connectionError(err, [this.options.password]);
    }
  }

  async listTables(): Promise<TableInfo[]> {
    const tables = await introspect(this.query);
    return tables.map((t) => publicInfo(t)!);
  }

  async describeTable(ref: TableRef): Promise<TableInfo | null> {
    return publicInfo(await this.tables.fresh(ref));
  }

  async readBatch(req: ReadBatchRequest): Promise<SourceRow[]> {
    validateReadRequest(req);
    const table = await this.tables.require(req.table, [...req.columns, req.filterColumn, ...req.keyColumns]);
    const q = buildKeysetQuery(mysqlDialect, table, req);
    const rows = await this.queryArrays(q.sql, q.params);
    return toSourceRows(rows, q.valueColumns, req.keyColumns.length, mysqlDialect.toText);
  }

  async maxPosition(
    table: TableRef,
    filterColumn: string,
    keyColumns: string[],
  ): Promise<KeysetPosition | null> {
    const t = await this.tables.require(table, [filterColumn, ...keyColumns]);
    const q = buildMaxPositionQuery(mysqlDialect, t, filterColumn, keyColumns);
    const rows = await this.queryArrays(q.sql, q.params);
    return toPosition(rows[0], mysqlDialect.toText);
  }

  async countNullFilter(table: TableRef, filterColumn: string): Promise<number> {
    const t = await this.tables.require(table, [filterColumn]);
    const rows = await this.queryArrays(buildCountNullQuery(mysqlDialect, t, filterColumn), []);
    return Number(rows[0]?.[0] ?? 0);
  }

  async lookbackFrom(
    table: TableRef,
    filterColumn: string,
    value: string,
    seconds: number,
  ): Promise<string | null> {
    checkSeconds(seconds);
    const t = await this.tables.require(table, [filterColumn]);
    const { info, extra } = t.columns.get(filterColumn)!;
    let sql: string;
    let params: unknown[];
    // The smallest value of a time column: DATE_SUB is NULL below year 0 (a zero date watermark,
    // '0000-00-00', included), so the window is clamped there instead of failing every run.
    let zero: string | null = null;
    switch (info.kind) {
      case 'timestamp': {
        // Subtract whole units of the column's precision (rounded up, so the window is never
        // shorter) and read it back at that precision: the result has the column's text form.
        const fsp = Math.min(Math.max(extra.fsp, 0), 6);
        const unit = 10 ** (6 - fsp);
        const micros = ceilUnits(seconds, unit / 1e6) * BigInt(unit);
        sql =
          `SELECT CAST(CAST(DATE_SUB(CAST(? AS DATETIME(6)), INTERVAL ? MICROSECOND) AS DATETIME(${fsp})) AS CHAR), ` +
          'CAST(? AS DATETIME(6)) IS NOT NULL';
        params = [value, micros.toString(), value];
        zero = `0000-00-00 00:00:00${fsp > 0 ? `.${'0'.repeat(fsp)}` : ''}`;
        break;
      }
      case 'date':
        sql = 'SELECT CAST(DATE_SUB(CAST(? AS DATE), INTERVAL ? DAY) AS CHAR), CAST(? AS DATE) IS NOT NULL';
        params = [value, ceilUnits(seconds, 86_400).toString(), value];
        zero = '0000-00-00';
        break;
      case 'integer':
        // An UNSIGNED column stops at 0: a negative bound would wrap to 2^64 - n and re-read nothing.
        return subtractInteger(value, seconds, extra.unsigned ? 0n : undefined);
      case 'numeric':
        if (extra.dataType === 'decimal') {
          // Seconds rounded up to the column's scale keep the result exact in DECIMAL.
          const scale = extra.scale;
          const digits = Math.min(scale, 9);
          const secs = Number.isInteger(seconds)
            ? String(seconds)
            : (Number(ceilUnits(seconds, 10 ** -digits)) / 10 ** digits).toFixed(digits);
          sql = `SELECT CAST(CAST(? AS DECIMAL(65, ${scale})) - CAST(? AS DECIMAL(65, ${scale})) AS CHAR)`;
          params = [value, secs];
        } else {
          sql = 'SELECT CAST(CAST(? AS DOUBLE) - CAST(? AS DOUBLE) AS CHAR)';
          params = [value, String(seconds)];
        }
        break;
      default:
        return null;
    }
    const rows = await this.queryArrays(sql, params);
    const result = rows[0]?.[0];
    if (result === null && zero !== null && Number(rows[0]?.[1]) === 1) return zero;
    if (result === null || result === undefined) {
      throw new AppError(
        'INVALID_REQUEST',
        `lookback: ${JSON.stringify(value)} is not a valid ${info.type} value`,
      );
    }
    return mysqlDialect.toText(result);
  }

  async keyBuckets(req: KeyScopeRequest & { digits: number; within: string[] | null }): Promise<KeyBucket[]> {
    const ref = req.table;
    const t = await this.tables.require(ref, scopeColumns(req));
    const q = buildKeyBucketsQuery(mysqlDialect, t, { ...req, table: ref });
    return toKeyBuckets((await this.queryArrays(q.sql, q.params)), mysqlDialect.toText);
  }

  async keysInBuckets(req: KeyScopeRequest & { buckets: string[] }): Promise<string[][]> {
    if (req.buckets.length === 0) return [];
    const ref = req.table;
    const t = await this.tables.require(ref, scopeColumns(req));
    const q = buildKeysInBucketsQuery(mysqlDialect, t, { ...req, table: ref });
    return (await this.queryArrays(q.sql, q.params)).map((row) => row.map(mysqlDialect.toText));
  }

  async readByKeys(req: ReadByKeysRequest): Promise<SourceRow[]> {
    if (req.keys.length === 0) return [];
    const ref = req.table;
    const t = await this.tables.require(ref, [...req.columns, req.filterColumn, ...req.keyColumns]);
    const q = buildReadByKeysQuery(mysqlDialect, t, { ...req, table: ref });
    return toSourceRows((await this.queryArrays(q.sql, q.params)), q.valueColumns, req.keyColumns.length, mysqlDialect.toText);
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    this.closed = true;
    this.tables.clear();
    if (pool !== null) await pool.end();
  }
}

interface MysqlTarget {
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
  ssl?: boolean;
}

/** `mysql://user:pass@host:port/db?ssl=true` (also `mariadb://`). */
export function parseMysqlUrl(url: string): MysqlTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new AppError('INVALID_REQUEST', 'MySQL connection URL is not a valid URL');
  }
  if (u.protocol !== 'mysql:' && u.protocol !== 'mariadb:') {
    throw new AppError(
      'INVALID_REQUEST',
      `MySQL connection URL must start with mysql://, not ${u.protocol}//`,
    );
  }
  const db = decodeURIComponent(u.pathname.replace(/^\//, ''));
  const ssl = u.searchParams.get('ssl') ?? u.searchParams.get('sslmode');
  return {
    host: u.hostname === '' ? undefined : u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: u.port === '' ? undefined : Number(u.port),
    user: u.username === '' ? undefined : decodeURIComponent(u.username),
    password: u.password === '' ? undefined : decodeURIComponent(u.password),
    database: db === '' ? undefined : db,
    ssl: ssl !== null && !['false', '0', 'disable', 'disabled'].includes(ssl.toLowerCase()),
  };
}
