/** SourceConnector for PostgreSQL, through a small pg.Pool created on first use. */
import pg from 'pg';
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
} from '../shared.js';
import { introspect, type PgQuery } from './introspect.js';
import { type PgColumnExtra, pgDialect, quoteIdent } from './sql.js';

export { quoteIdent };

export type PostgresParameters = Exclude<ConnectionParameters, { path: string }>;

// Stable text forms whatever the server's defaults: timestamptz in UTC, ISO dates, and
// shortest-exact floats (0 would round doubles to 15 digits and lose the watermark).
// Every query also runs under the configured statement and lock timeouts (SEMANTICS.md, "One
// configuration per run"): a table locked by another session fails the query, not the service.
const SESSION_OPTIONS = '-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=1';
const limitOptions = (limits: SourceLimits) =>
  `-c statement_timeout=${Math.round(limits.statementTimeoutMs)} -c lock_timeout=${Math.round(limits.lockTimeoutMs)}`;

// date, timestamp and timestamptz values come back as the server's text (ISO, UTC in this
// session), not as a JavaScript Date, which would drop microseconds and read a date or a naive
// timestamp in this process's time zone. Typed metadata is made from that text (core/typed-values.ts).
const TEXT_TYPE_OIDS = new Set([1082, 1114, 1184]);
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    TEXT_TYPE_OIDS.has(oid) && format !== 'binary'
      ? (text: string) => text
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

export class PostgresConnector implements SourceConnector {
  readonly engine = 'postgres' as const;
  private pool: pg.Pool | null = null;
  private closed = false;
  private readonly config: pg.PoolConfig;
  private readonly defaultSchema: string;
  private readonly secrets: (string | undefined)[];
  private readonly tables = new TableCache<PgColumnExtra>((ref) => this.loadTable(ref));
  /** Backend pids of the pool's clients running a query (pg_cancel_backend targets). */
  private readonly inFlight = new InFlightQueries();

  constructor(
    params: PostgresParameters,
    private readonly limits: SourceLimits = DEFAULT_SOURCE_LIMITS,
  ) {
    const common: pg.PoolConfig = {
      max: 4,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 10_000,
      // An idle pool must not keep a CLI or test process alive; close() still ends it.
      allowExitOnIdle: true,
      options: `${SESSION_OPTIONS} ${limitOptions(limits)}`,
      application_name: 'kbsync',
      types: TYPES,
      // The server's timeouts do nothing when the server (or the network) stops answering: the
      // client gives up too, a little after them, and keepalive notices a dead peer.
      query_timeout: clientDeadline(limits),
      keepAlive: true,
    };
    if ('url' in params) {
      // ssl: true asks for TLS even when the URL does not say sslmode (an explicit sslmode wins).
      this.config = { ...common, connectionString: params.url, ...(params.ssl ? { ssl: {} } : {}) };
      this.secrets = [passwordOfUrl(params.url)];
      this.defaultSchema = params.schema ?? 'public';
    } else {
      this.config = {
        ...common,
        host: params.host ?? 'localhost',
        port: params.port ?? 5432,
        user: params.user,
        password: params.password,
        database: params.database,
        ssl: params.ssl ? {} : undefined,
      };
      this.secrets = [params.password];
      this.defaultSchema = params.schema ?? 'public';
    }
  }

  private getPool(): pg.Pool {
    if (this.closed) throw new Error('PostgreSQL source connector is closed');
    if (this.pool === null) {
      const pool = new pg.Pool(this.config);
      // An idle client that loses its server emits on the pool; unheard, it would crash the
      // process. The next query checks out a fresh client and reports its own error.
      pool.on('error', () => {});
      // A client is checked out for exactly one query (pool.query), so checked out = in flight.
      pool.on('acquire', (client) => {
        const pid = backendPid(client);
        if (pid !== null) this.inFlight.add(pid);
      });
      pool.on('release', (_err: unknown, client: pg.PoolClient) => {
        const pid = backendPid(client);
        if (pid !== null) this.inFlight.delete(pid);
      });
      this.pool = pool;
    }
    return this.pool;
  }

  private readonly query: PgQuery = async <R>(text: string, values: unknown[]) =>
    this.guard(async () => (await this.getPool().query<R & pg.QueryResultRow>(text, values)).rows);

  private async queryArrays(text: string, values: unknown[]): Promise<unknown[][]> {
    return this.guard(async () => (await this.getPool().query<unknown[]>({ text, values, rowMode: 'array' })).rows);
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
      if (code === '55P03') throw new SourceTimeoutError('lock', this.limits.lockTimeoutMs, { cause: err });
      if (code === '57014' && /statement timeout/i.test(message)) {
        throw new SourceTimeoutError('statement', this.limits.statementTimeoutMs, { cause: err });
      }
      throw err;
    }
  }

  /** pg_cancel_backend on the sessions running this connector's queries, from a connection of its own. */
  async cancel(): Promise<void> {
    await this.inFlight.cancel(async (pids) => {
      const client = new pg.Client({ ...this.config, connectionTimeoutMillis: 5_000 });
      client.on('error', () => {});
      try {
        await client.connect();
        await client.query('SELECT pg_cancel_backend(pid) FROM unnest($1::int[]) AS pid', [pids]);
      } finally {
        await client.end().catch(() => undefined);
      }
    });
  }

  private ref(ref: TableRef): TableRef & { schema: string } {
    return { schema: ref.schema ?? this.defaultSchema, name: ref.name };
  }

  private async loadTable(ref: TableRef) {
    const [table] = await introspect(this.query, this.ref(ref));
    return table ?? null;
  }

  async ping(): Promise<void> {
    try {
      await this.getPool().query('SELECT 1');
    } catch (err) {
      throw connectionError(err, this.secrets);
    }
  }

  async listTables(): Promise<TableInfo[]> {
    const tables = await introspect(this.query);
    return tables.map((t) => publicInfo(t)!);
  }

  async describeTable(ref: TableRef): Promise<TableInfo | null> {
    return publicInfo(await this.tables.fresh(this.ref(ref)));
  }

  async readBatch(req: ReadBatchRequest): Promise<SourceRow[]> {
    validateReadRequest(req);
    const ref = this.ref(req.table);
    const table = await this.tables.require(ref, [...req.columns, req.filterColumn, ...req.keyColumns]);
    const q = buildKeysetQuery(pgDialect, table, { ...req, table: ref });
    const rows = await this.queryArrays(q.sql, q.params);
    return toSourceRows(rows, q.valueColumns, req.keyColumns.length, pgDialect.toText);
  }

  async maxPosition(
    table: TableRef,
    filterColumn: string,
    keyColumns: string[],
  ): Promise<KeysetPosition | null> {
    const t = await this.tables.require(this.ref(table), [filterColumn, ...keyColumns]);
    const q = buildMaxPositionQuery(pgDialect, t, filterColumn, keyColumns);
    const rows = await this.queryArrays(q.sql, q.params);
    return toPosition(rows[0], pgDialect.toText);
  }

  async countNullFilter(table: TableRef, filterColumn: string): Promise<number> {
    const t = await this.tables.require(this.ref(table), [filterColumn]);
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
    const t = await this.tables.require(this.ref(table), [filterColumn]);
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
    const t = await this.tables.require(ref, scopeColumns(req));
    const q = buildKeyBucketsQuery(pgDialect, t, { ...req, table: ref });
    return toKeyBuckets((await this.queryArrays(q.sql, q.params)), pgDialect.toText);
  }

  async keysInBuckets(req: KeyScopeRequest & { buckets: string[] }): Promise<string[][]> {
    if (req.buckets.length === 0) return [];
    const ref = this.ref(req.table);
    const t = await this.tables.require(ref, scopeColumns(req));
    const q = buildKeysInBucketsQuery(pgDialect, t, { ...req, table: ref });
    return (await this.queryArrays(q.sql, q.params)).map((row) => row.map(pgDialect.toText));
  }

  async readByKeys(req: ReadByKeysRequest): Promise<SourceRow[]> {
    if (req.keys.length === 0) return [];
    const ref = this.ref(req.table);
    const t = await this.tables.require(ref, [...req.columns, req.filterColumn, ...req.keyColumns]);
    const q = buildReadByKeysQuery(pgDialect, t, { ...req, table: ref });
    return toSourceRows((await this.queryArrays(q.sql, q.params)), q.valueColumns, req.keyColumns.length, pgDialect.toText);
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    this.closed = true;
    this.tables.clear();
    if (pool !== null) await pool.end();
  }
}

function backendPid(client: unknown): number | null {
  const pid = (client as { processID?: unknown } | null)?.processID;
  return typeof pid === 'number' && Number.isSafeInteger(pid) ? pid : null;
}

function passwordOfUrl(url: string): string | undefined {
  try {
    const p = new URL(url).password;
    return p === '' ? undefined : decodeURIComponent(p);
  } catch {
    return undefined;
  }
}

/** How long the client waits for any answer: the server's own limits plus a margin. */
function clientDeadline(limits: SourceLimits): number {
  return Math.round(limits.statementTimeoutMs + limits.lockTimeoutMs + 5_000);
}
