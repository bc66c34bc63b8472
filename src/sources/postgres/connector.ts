/** SourceConnector for PostgreSQL, through a small pg.Pool created on first use. */
import pg from 'pg';
import { AppError } from '../../core/errors.js';
import type {
  ConnectionParameters,
  KeyBucket,
  KeyScopeRequest,
  KeysetPosition,
  ReadBatchRequest,
  ReadByKeysRequest,
  SourceConnector,
  SourceRow,
  TableInfo,
  TableRef,
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
const SESSION_OPTIONS = '-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=1';

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

  constructor(params: PostgresParameters) {
    const common: pg.PoolConfig = {
      max: 4,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 10_000,
      // An idle pool must not keep a CLI or test process alive; close() still ends it.
      allowExitOnIdle: true,
      options: SESSION_OPTIONS,
      application_name: 'kbsync',
      types: TYPES,
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
      this.pool = pool;
    }
    return this.pool;
  }

  private readonly query: PgQuery = async <R>(text: string, values: unknown[]) => {
    const res = await this.getPool().query<R & pg.QueryResultRow>(text, values);
    return res.rows;
  };

  private async queryArrays(text: string, values: unknown[]): Promise<unknown[][]> {
    const res = await this.getPool().query<unknown[]>({ text, values, rowMode: 'array' });
    return res.rows;
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

function passwordOfUrl(url: string): string | undefined {
  try {
    const p = new URL(url).password;
    return p === '' ? undefined : decodeURIComponent(p);
  } catch {
    return undefined;
  }
}
