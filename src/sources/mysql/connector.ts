/**
 * SourceConnector for MySQL and MariaDB: one run's (or one request's) view of a MysqlPool. The
 * pool and its table descriptions are shared; the queries in flight, and cancel(), are this
 * connector's own.
 */
import type { PoolConnection } from 'mysql2/promise';
import { AppError } from '../../core/errors.js';
import {
  type KeyBucket,
  type KeyScopeRequest,
  type KeysetPosition,
  type ProbeRequest,
  type ProbeResult,
  type ReadBatchRequest,
  type ReadByKeysRequest,
  type RowEstimate,
  type RowEstimateRequest,
  type SourceConnector,
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
  buildProbeQuery,
  buildReadByKeysQuery,
  probeColumns,
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
  toPosition,
  toProbeResult,
  toSourceRows,
  validateReadRequest,
} from '../shared.js';
import { buildBoundedCountQuery, buildRangeQuery, estimateFrom } from '../estimate.js';
import { introspect, type MysqlQuery } from './introspect.js';
import type { MysqlPool } from './pool.js';
import { mysqlDialect, quoteIdent } from './sql.js';

export { quoteIdent };
export type { MysqlParameters } from './pool.js';

export class MysqlConnector implements SourceConnector {
  readonly engine = 'mysql' as const;
  private closed = false;
  /** Thread ids of the connections running this connector's queries (KILL QUERY targets). */
  private readonly inFlight = new InFlightQueries();

  constructor(
    private readonly pool: MysqlPool,
    /** Whether close() also closes the pool (a connector made on its own, createSourceConnector). */
    private readonly closesPool: boolean,
  ) {
    pool.use.opened();
  }

  private get tables() {
    return this.pool.tables;
  }

  private readonly load = (ref: TableRef) => this.loadTable(ref);

  private readonly query: MysqlQuery = async <R>(sql: string, values: unknown[]) =>
    this.guard(async (conn) => {
      const [rows] = await conn.execute({ sql, timeout: this.pool.clientDeadline() }, values as never[]);
      return rows as R[];
    });

  private async queryArrays(sql: string, values: unknown[]): Promise<unknown[][]> {
    return this.guard(async (conn) => {
      const [rows] = await conn.execute({ sql, rowsAsArray: true, timeout: this.pool.clientDeadline() }, values as never[]);
      return rows as unknown[][];
    });
  }

  /**
   * Runs `fn` on a pooled connection known to be in flight (for cancel()); refuses queries after
   * cancel(); turns the server's timeout and kill errors into the port's.
   */
  private async guard<T>(fn: (conn: PoolConnection) => Promise<T>): Promise<T> {
    if (this.closed) throw new Error('MySQL source connector is closed');
    if (this.inFlight.cancelled) throw new SourceQueryCancelled();
    try {
      return await this.pool.withConnection(this.inFlight, fn);
    } catch (err) {
      if (this.inFlight.cancelled) throw new SourceQueryCancelled({ cause: err });
      switch ((err as { errno?: unknown } | null)?.errno) {
        case 1205: // ER_LOCK_WAIT_TIMEOUT: lock_wait_timeout (metadata) or innodb_lock_wait_timeout (rows)
          throw new SourceTimeoutError('lock', this.pool.limits.lockTimeoutMs, { cause: err });
        case 1969: // MariaDB ER_STATEMENT_TIMEOUT (max_statement_time)
        case 3024: // MySQL ER_QUERY_TIMEOUT (MAX_EXECUTION_TIME)
          throw new SourceTimeoutError('statement', this.pool.limits.statementTimeoutMs, { cause: err });
        default:
          throw err;
      }
    }
  }

  /** KILL QUERY on the threads running this connector's queries, from a connection of its own. */
  async cancel(): Promise<void> {
    await this.inFlight.cancel((threads) => this.pool.killQueries(threads));
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
      await this.pool.withConnection(this.inFlight, (conn) => conn.ping());
    } catch (err) {
      throw connectionError(err, [this.pool.options.password]);
    }
  }

  async listTables(): Promise<TableInfo[]> {
    const tables = await introspect(this.query);
    return tables.map((t) => publicInfo(t)!);
  }

  async describeTable(ref: TableRef, options: { cached?: boolean } = {}): Promise<TableInfo | null> {
    return publicInfo(options.cached ? await this.tables.get(ref, this.load) : await this.tables.fresh(ref, this.load));
  }

  async probe(req: ProbeRequest): Promise<ProbeResult> {
    const t = await this.tables.require(req.table, probeColumns(req), this.load);
    const q = buildProbeQuery(mysqlDialect, t, req);
    const rows = await this.queryArrays(q.sql, q.params);
    return toProbeResult(rows[0] ?? [], req, mysqlDialect.toText);
  }

  async readBatch(req: ReadBatchRequest): Promise<SourceRow[]> {
    validateReadRequest(req);
    const table = await this.tables.require(req.table, [...req.columns, req.filterColumn, ...req.keyColumns], this.load);
    const q = buildKeysetQuery(mysqlDialect, table, req);
    const rows = await this.queryArrays(q.sql, q.params);
    return toSourceRows(rows, q.valueColumns, req.keyColumns.length, mysqlDialect.toText);
  }

  async maxPosition(
    table: TableRef,
    filterColumn: string,
    keyColumns: string[],
  ): Promise<KeysetPosition | null> {
    const t = await this.tables.require(table, [filterColumn, ...keyColumns], this.load);
    const q = buildMaxPositionQuery(mysqlDialect, t, filterColumn, keyColumns);
    const rows = await this.queryArrays(q.sql, q.params);
    return toPosition(rows[0], mysqlDialect.toText);
  }

  async countNullFilter(table: TableRef, filterColumn: string): Promise<number> {
    const t = await this.tables.require(table, [filterColumn], this.load);
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
    const t = await this.tables.require(table, [filterColumn], this.load);
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
    const t = await this.tables.require(ref, scopeColumns(req), this.load);
    const q = buildKeyBucketsQuery(mysqlDialect, t, { ...req, table: ref });
    return toKeyBuckets((await this.queryArrays(q.sql, q.params)), mysqlDialect.toText);
  }

  async keysInBuckets(req: KeyScopeRequest & { buckets: string[] }): Promise<string[][]> {
    if (req.buckets.length === 0) return [];
    const ref = req.table;
    const t = await this.tables.require(ref, scopeColumns(req), this.load);
    const q = buildKeysInBucketsQuery(mysqlDialect, t, { ...req, table: ref });
    return (await this.queryArrays(q.sql, q.params)).map((row) => row.map(mysqlDialect.toText));
  }

  async readByKeys(req: ReadByKeysRequest): Promise<SourceRow[]> {
    if (req.keys.length === 0) return [];
    const ref = req.table;
    const t = await this.tables.require(ref, [...req.columns, req.filterColumn, ...req.keyColumns], this.load);
    const q = buildReadByKeysQuery(mysqlDialect, t, { ...req, table: ref });
    return toSourceRows((await this.queryArrays(q.sql, q.params)), q.valueColumns, req.keyColumns.length, mysqlDialect.toText);
  }

  /**
   * The bounded count, then (past the bound) the optimizer's row estimate for the same range from
   * `EXPLAIN` (index dives; nothing is run), times `filtered` where the server reports it (MySQL;
   * MariaDB's plain EXPLAIN has no such column). See sources/estimate.ts.
   */
  async estimateRows(req: RowEstimateRequest): Promise<RowEstimate> {
    const t = await this.tables.require(req.table, [req.filterColumn, ...req.keyColumns], this.load);
    const count = buildBoundedCountQuery(mysqlDialect, t, req);
    const range = buildRangeQuery(mysqlDialect, t, req);
    return estimateFrom(
      req.limit,
      async () => Number((await this.queryArrays(count.sql, count.params))[0]?.[0] ?? 0),
      async () => {
        const [plan] = await this.query<{ rows?: unknown; filtered?: unknown }>(`EXPLAIN ${range.sql}`, range.params);
        const rows = Number(plan?.rows);
        const filtered = plan?.filtered === undefined || plan.filtered === null ? 100 : Number(plan.filtered);
        return Number.isFinite(rows) && Number.isFinite(filtered) ? (rows * filtered) / 100 : null;
      },
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pool.use.closed();
    if (this.closesPool) await this.pool.close();
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
