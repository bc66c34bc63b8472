/**
 * SourceConnector for PostgreSQL: one run's (or one request's) view of a PostgresPool. The pool
 * and its table descriptions are shared; the queries in flight, and cancel(), are this
 * connector's own.
 */
import type pg from 'pg';
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
  probeColumns,
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
  toPosition,
  toProbeResult,
  toSourceRows,
  validateReadRequest,
} from '../shared.js';
import { buildBoundedCountQuery, buildRangeQuery, estimateFrom } from '../estimate.js';
import { introspect, type PgQuery } from './introspect.js';
import type { PostgresPool } from './pool.js';
import { pgDialect, quoteIdent } from './sql.js';

export { quoteIdent };
export type { PostgresParameters } from './pool.js';

export class PostgresConnector implements SourceConnector {
  readonly engine = 'postgres' as const;
  private closed = false;
  /** Backend pids of the pool's clients running this connector's queries (pg_cancel_backend targets). */
  private readonly inFlight = new InFlightQueries();

  constructor(
    private readonly pool: PostgresPool,
    /** Whether close() also closes the pool (a connector made on its own, createSourceConnector). */
    private readonly closesPool: boolean,
  ) {
    pool.use.opened();
  }

  private get tables() {
    return this.pool.tables;
  }

  private readonly load = (ref: TableRef) => this.loadTable(ref);

  private client<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    if (this.closed) throw new Error('PostgreSQL source connector is closed');
    return this.pool.withClient(this.inFlight, fn);
  }

  private readonly query: PgQuery = async <R>(text: string, values: unknown[]) =>
    this.guard(async () => (await this.client((c) => c.query<R & pg.QueryResultRow>(text, values))).rows);

  private async queryArrays(text: string, values: unknown[]): Promise<unknown[][]> {
    return this.guard(async () => (await this.client((c) => c.query<unknown[]>({ text, values, rowMode: 'array' }))).rows);
  }

  /** Refuses queries after cancel(); turns the server's timeout and cancel errors into the port's. */
  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    if (this.inFlight.cancelled) throw new SourceQueryCancelled();
    try {
      return await fn();
    } catch (err) {
      if (this.inFlight.cancelled) throw new SourceQueryCancelled({ cause: err });
      const code = (err as { code?: unknown } | null)?.code;
      const message = err instanceof Error ? err.message : '';
      // 55P03 lock_not_available (lock_timeout); 57014 query_canceled (statement_timeout, or a
      // cancel from elsewhere, which is left as it is).
      if (code === '55P03') throw new SourceTimeoutError('lock', this.pool.limits.lockTimeoutMs, { cause: err });
      if (code === '57014' && /statement timeout/i.test(message)) {
        throw new SourceTimeoutError('statement', this.pool.limits.statementTimeoutMs, { cause: err });
      }
      throw err;
    }
  }

  /** pg_cancel_backend on the sessions running this connector's queries, from a connection of its own. */
  async cancel(): Promise<void> {
    await this.inFlight.cancel((pids) => this.pool.cancelBackends(pids));
  }

  private ref(ref: TableRef): TableRef & { schema: string } {
    return { schema: ref.schema ?? this.pool.defaultSchema, name: ref.name };
  }

  private async loadTable(ref: TableRef) {
    const [table] = await introspect(this.query, this.ref(ref));
    return table ?? null;
  }

  async ping(): Promise<void> {
    try {
      await this.client((c) => c.query('SELECT 1'));
    } catch (err) {
      throw connectionError(err, this.pool.secrets);
    }
  }

  async listTables(): Promise<TableInfo[]> {
    const tables = await introspect(this.query);
    return tables.map((t) => publicInfo(t)!);
  }

  async describeTable(ref: TableRef, options: { cached?: boolean } = {}): Promise<TableInfo | null> {
    const r = this.ref(ref);
    return publicInfo(options.cached ? await this.tables.get(r, this.load) : await this.tables.fresh(r, this.load));
  }

  async probe(req: ProbeRequest): Promise<ProbeResult> {
    const ref = this.ref(req.table);
    const t = await this.tables.require(ref, probeColumns(req), this.load);
    const q = buildProbeQuery(pgDialect, t, { ...req, table: ref });
    const rows = await this.queryArrays(q.sql, q.params);
    return toProbeResult(rows[0] ?? [], req, pgDialect.toText);
  }

  async readBatch(req: ReadBatchRequest): Promise<SourceRow[]> {
    validateReadRequest(req);
    const ref = this.ref(req.table);
    const table = await this.tables.require(ref, [...req.columns, req.filterColumn, ...req.keyColumns], this.load);
    const q = buildKeysetQuery(pgDialect, table, { ...req, table: ref });
    const rows = await this.queryArrays(q.sql, q.params);
    return toSourceRows(rows, q.valueColumns, req.keyColumns.length, pgDialect.toText);
  }

  async maxPosition(
    table: TableRef,
    filterColumn: string,
    keyColumns: string[],
  ): Promise<KeysetPosition | null> {
    const t = await this.tables.require(this.ref(table), [filterColumn, ...keyColumns], this.load);
    const q = buildMaxPositionQuery(pgDialect, t, filterColumn, keyColumns);
    const rows = await this.queryArrays(q.sql, q.params);
    return toPosition(rows[0], pgDialect.toText);
  }

  async countNullFilter(table: TableRef, filterColumn: string): Promise<number> {
    const t = await this.tables.require(this.ref(table), [filterColumn], this.load);
    const rows = await this.queryArrays(buildCountNullQuery(pgDialect, t, filterColumn), []);
    return Number(rows[0]?.[0] ?? 0);
  }

  async lookbackFrom(
    table: TableRef,
    filterColumn: string,
    value: string,
    seconds: number,
  ): Promise<string | null> {
    checkSeconds(seconds);
    const t = await this.tables.require(this.ref(table), [filterColumn], this.load);
    const col = t.columns.get(filterColumn)!;
    const type = col.extra.castType;
    let sql: string;
    let params: unknown[];
    switch (col.info.kind) {
      case 'timestamptz':
      case 'timestamp':
        // In the column's own type: microseconds kept, and in a UTC session no DST gap.
        sql = `SELECT ($1::${type} - make_interval(secs => $2::float8))::text`;
        params = [value, seconds];
        break;
      case 'date':
        // Whole days, rounded up so the window is never shorter than asked.
        sql = `SELECT ($1::${type} - $2::int)::text`;
        params = [value, ceilUnits(seconds, 86_400).toString()];
        break;
      case 'integer':
        return subtractInteger(value, seconds);
      case 'numeric':
        // numeric arithmetic is exact, also for a float column's shortest-exact text.
        sql = 'SELECT ($1::numeric - $2::numeric)::text';
        params = [value, String(seconds)];
        break;
      default:
        return null;
    }
    try {
      const rows = await this.queryArrays(sql, params);
      return String(rows[0]?.[0]);
    } catch (err) {
      if (err instanceof SourceTimeoutError || err instanceof SourceQueryCancelled) throw err;
      throw new AppError(
        'INVALID_REQUEST',
        `lookback from ${JSON.stringify(value)} failed: ${(err as Error).message}`,
        [],
        {
          cause: err,
        },
      );
    }
  }

  async keyBuckets(req: KeyScopeRequest & { digits: number; within: string[] | null }): Promise<KeyBucket[]> {
    const ref = this.ref(req.table);
    const t = await this.tables.require(ref, scopeColumns(req), this.load);
    const q = buildKeyBucketsQuery(pgDialect, t, { ...req, table: ref });
    return toKeyBuckets((await this.queryArrays(q.sql, q.params)), pgDialect.toText);
  }

  async keysInBuckets(req: KeyScopeRequest & { buckets: string[] }): Promise<string[][]> {
    if (req.buckets.length === 0) return [];
    const ref = this.ref(req.table);
    const t = await this.tables.require(ref, scopeColumns(req), this.load);
    const q = buildKeysInBucketsQuery(pgDialect, t, { ...req, table: ref });
    return (await this.queryArrays(q.sql, q.params)).map((row) => row.map(pgDialect.toText));
  }

  async readByKeys(req: ReadByKeysRequest): Promise<SourceRow[]> {
    if (req.keys.length === 0) return [];
    const ref = this.ref(req.table);
    const t = await this.tables.require(ref, [...req.columns, req.filterColumn, ...req.keyColumns], this.load);
    const q = buildReadByKeysQuery(pgDialect, t, { ...req, table: ref });
    return toSourceRows((await this.queryArrays(q.sql, q.params)), q.valueColumns, req.keyColumns.length, pgDialect.toText);
  }

  /**
   * The bounded count, then (past the bound) the planner's row estimate for the same range from
   * `EXPLAIN (FORMAT JSON)`, which plans the statement without running it (sources/estimate.ts).
   */
  async estimateRows(req: RowEstimateRequest): Promise<RowEstimate> {
    const ref = this.ref(req.table);
    const t = await this.tables.require(ref, [req.filterColumn, ...req.keyColumns], this.load);
    const count = buildBoundedCountQuery(pgDialect, t, { ...req, table: ref });
    const range = buildRangeQuery(pgDialect, t, { ...req, table: ref });
    return estimateFrom(
      req.limit,
      async () => Number((await this.queryArrays(count.sql, count.params))[0]?.[0] ?? 0),
      async () => {
        const plan = (await this.queryArrays(`EXPLAIN (FORMAT JSON) ${range.sql}`, range.params))[0]?.[0];
        const rows = (plan as Array<{ Plan?: { 'Plan Rows'?: unknown } }> | undefined)?.[0]?.Plan?.['Plan Rows'];
        return typeof rows === 'number' ? rows : null;
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
