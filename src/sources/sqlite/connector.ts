/**
 * SourceConnector for a SQLite file: one run's (or one request's) view of a SqlitePool, whose
 * read-only handle and table descriptions are shared.
 */
import type Database from 'better-sqlite3';
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
  checkSeconds,
  connectionError,
  publicInfo,
  subtractInteger,
  toPosition,
  toProbeResult,
  toSourceRows,
  validateReadRequest,
} from '../shared.js';
import { buildBoundedCountQuery, estimateFrom } from '../estimate.js';
import { introspect } from './introspect.js';
import type { SqlitePool } from './pool.js';
import { bindValue, quoteIdent, sqliteDialect, subtractFromTime, toText, toValue } from './sql.js';

export { quoteIdent };

export class SqliteConnector implements SourceConnector {
  readonly engine = 'sqlite' as const;
  private closed = false;
  private cancelled = false;
  /** The path was checked again for this connector (before its first query). */
  private verified = false;

  constructor(
    private readonly pool: SqlitePool,
    /** Whether close() also closes the pool (a connector made on its own, createSourceConnector). */
    private readonly closesPool: boolean,
  ) {
    pool.use.opened();
  }

  private get tables() {
    return this.pool.tables;
  }

  private get busyTimeoutMs() {
    return this.pool.busyTimeoutMs;
  }

  private readonly load = async (ref: TableRef) => this.loadTable(ref);

  private open(): Database.Database {
    if (this.closed) throw new Error('SQLite source connector is closed');
    if (this.cancelled) throw new SourceQueryCancelled();
    const db = this.pool.handle(!this.verified);
    this.verified = true;
    return db;
  }

  /** A lock still held after the busy timeout becomes the port's lock timeout. */
  private guard<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      if (typeof code === 'string' && (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_'))) {
        throw new SourceTimeoutError('lock', this.busyTimeoutMs, { cause: err });
      }
      throw err;
    }
  }

  private loadTable(ref: TableRef) {
    if (ref.schema !== null && ref.schema !== 'main') return null;
    const [table] = this.guard(() => introspect(this.open(), ref.name));
    return table ?? null;
  }

  /** Rows as arrays with every integer as BigInt, so a key beyond 2^53 keeps its digits. */
  private all(sql: string, params: unknown[]): unknown[][] {
    return this.guard(
      () =>
        this.open()
          .prepare(sql)
          .raw(true)
          .safeIntegers(true)
          .all(...params) as unknown[][],
    );
  }

  /**
   * Nothing is ever in flight (queries are synchronous; the busy timeout bounds a wait for a
   * lock): later queries are refused.
   */
  async cancel(): Promise<void> {
    this.cancelled = true;
  }

  async ping(): Promise<void> {
    try {
      // Opening succeeds on any file; reading the schema proves it is a database.
      this.open().prepare('SELECT count(*) FROM sqlite_master').get();
    } catch (err) {
      // A file that is not (yet) a database is not kept open, so a later ping tries afresh.
      this.pool.discard();
      this.verified = false;
      throw connectionError(err, []);
    }
  }

  async listTables(): Promise<TableInfo[]> {
    return this.guard(() => introspect(this.open())).map((t) => publicInfo(t)!);
  }

  async describeTable(ref: TableRef, options: { cached?: boolean } = {}): Promise<TableInfo | null> {
    // The path is checked before any answer, the cached one included.
    this.open();
    return publicInfo(options.cached ? await this.tables.get(ref, this.load) : await this.tables.fresh(ref, this.load));
  }

  async probe(req: ProbeRequest): Promise<ProbeResult> {
    this.open();
    const t = await this.tables.require(req.table, probeColumns(req), this.load);
    const q = buildProbeQuery(sqliteDialect, t, req);
    return toProbeResult(this.all(q.sql, q.params)[0] ?? [], req, toText);
  }

  async readBatch(req: ReadBatchRequest): Promise<SourceRow[]> {
    validateReadRequest(req);
    const table = await this.tables.require(req.table, [...req.columns, req.filterColumn, ...req.keyColumns], this.load);
    const q = buildKeysetQuery(sqliteDialect, table, req);
    return toSourceRows(this.all(q.sql, q.params), q.valueColumns, req.keyColumns.length, toText, toValue);
  }

  async maxPosition(
    table: TableRef,
    filterColumn: string,
    keyColumns: string[],
  ): Promise<KeysetPosition | null> {
    const t = await this.tables.require(table, [filterColumn, ...keyColumns], this.load);
    const q = buildMaxPositionQuery(sqliteDialect, t, filterColumn, keyColumns);
    return toPosition(this.all(q.sql, q.params)[0], toText);
  }

  async countNullFilter(table: TableRef, filterColumn: string): Promise<number> {
    const t = await this.tables.require(table, [filterColumn], this.load);
    const rows = this.all(buildCountNullQuery(sqliteDialect, t, filterColumn), []);
    return Number(rows[0]?.[0] ?? 0);
  }

  /**
   * SQLite has no time type: a time column holds text (or Unix numbers), so the arithmetic is done
   * on that stored form, keeping its layout (see subtractFromTime for what is understood).
   */
  async lookbackFrom(
    table: TableRef,
    filterColumn: string,
    value: string,
    seconds: number,
  ): Promise<string | null> {
    checkSeconds(seconds);
    const t = await this.tables.require(table, [filterColumn], this.load);
    const col = t.columns.get(filterColumn)!;
    switch (col.info.kind) {
      case 'timestamp':
      case 'date': {
        const result = subtractFromTime(value, seconds);
        if (result === null) {
          throw new AppError(
            'INVALID_REQUEST',
            `lookback: ${JSON.stringify(value)} is not a date/time SQLite stores`,
            [
              'expected YYYY-MM-DD[ HH:MM[:SS[.fff]]][zone] or a Unix time number; set lookback to 0 otherwise',
            ],
          );
        }
        return result;
      }
      case 'integer':
      case 'numeric': {
        const bound = bindValue(col.extra.affinity, value);
        if (typeof bound === 'bigint') return subtractInteger(value, seconds);
        if (typeof bound === 'number') return String(bound - seconds);
        throw new AppError('INVALID_REQUEST', `lookback: ${JSON.stringify(value)} is not a number`);
      }
      default:
        return null;
    }
  }

  async keyBuckets(req: KeyScopeRequest & { digits: number; within: string[] | null }): Promise<KeyBucket[]> {
    const ref = req.table;
    const t = await this.tables.require(ref, scopeColumns(req), this.load);
    const q = buildKeyBucketsQuery(sqliteDialect, t, { ...req, table: ref });
    return toKeyBuckets(this.all(q.sql, q.params), toText);
  }

  async keysInBuckets(req: KeyScopeRequest & { buckets: string[] }): Promise<string[][]> {
    if (req.buckets.length === 0) return [];
    const ref = req.table;
    const t = await this.tables.require(ref, scopeColumns(req), this.load);
    const q = buildKeysInBucketsQuery(sqliteDialect, t, { ...req, table: ref });
    return this.all(q.sql, q.params).map((row) => row.map(toText));
  }

  async readByKeys(req: ReadByKeysRequest): Promise<SourceRow[]> {
    if (req.keys.length === 0) return [];
    const ref = req.table;
    const t = await this.tables.require(ref, [...req.columns, req.filterColumn, ...req.keyColumns], this.load);
    const q = buildReadByKeysQuery(sqliteDialect, t, { ...req, table: ref });
    return toSourceRows(this.all(q.sql, q.params), q.valueColumns, req.keyColumns.length, toText, toValue);
  }

  /**
   * The bounded count (sources/estimate.ts); SQLite has no planner statistics for a range, so
   * beyond the bound it answers a lower estimate.
   */
  async estimateRows(req: RowEstimateRequest): Promise<RowEstimate> {
    const t = await this.tables.require(req.table, [req.filterColumn, ...req.keyColumns], this.load);
    const q = buildBoundedCountQuery(sqliteDialect, t, req);
    return estimateFrom(req.limit, async () => Number(this.all(q.sql, q.params)[0]?.[0] ?? 0), null);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pool.use.closed();
    if (this.closesPool) await this.pool.close();
  }
}
