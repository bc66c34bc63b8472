/** SourceConnector for a SQLite file, opened read-only on first use. */
import Database from 'better-sqlite3';
import { AppError } from '../../core/errors.js';
import type {
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
  checkSeconds,
  connectionError,
  publicInfo,
  subtractInteger,
  TableCache,
  toPosition,
  toSourceRows,
  validateReadRequest,
} from '../shared.js';
import { introspect } from './introspect.js';
import {
  bindValue,
  quoteIdent,
  registerKeyHash,
  type SqliteColumnExtra,
  sqliteDialect,
  subtractFromTime,
  toText,
  toValue,
} from './sql.js';

export { quoteIdent };

export class SqliteConnector implements SourceConnector {
  readonly engine = 'sqlite' as const;
  private db: Database.Database | null = null;
  private closed = false;
  private readonly tables = new TableCache<SqliteColumnExtra>(async (ref) => this.loadTable(ref));

  constructor(private readonly path: string) {}

  private open(): Database.Database {
    if (this.closed) throw new Error('SQLite source connector is closed');
    if (this.db === null) {
      // Read-only: kbsync must never change a user's file, nor create one at a mistyped path.
      // `timeout` waits that long for a writer's lock instead of failing at once.
      const db = new Database(this.path, { readonly: true, fileMustExist: true, timeout: 5_000 });
      registerKeyHash(db);
      this.db = db;
    }
    return this.db;
  }

  private loadTable(ref: TableRef) {
    if (ref.schema !== null && ref.schema !== 'main') return null;
    const [table] = introspect(this.open(), ref.name);
    return table ?? null;
  }

  /** Rows as arrays with every integer as BigInt, so a key beyond 2^53 keeps its digits. */
  private all(sql: string, params: unknown[]): unknown[][] {
    return this.open()
      .prepare(sql)
      .raw(true)
      .safeIntegers(true)
      .all(...params) as unknown[][];
  }

  async ping(): Promise<void> {
    try {
      // Opening succeeds on any file; reading the schema proves it is a database.
      this.open().prepare('SELECT count(*) FROM sqlite_master').get();
    } catch (err) {
      // A file that is not (yet) a database is not kept open, so a later ping tries afresh.
      this.db?.close();
      this.db = null;
      throw connectionError(err, []);
    }
  }

  async listTables(): Promise<TableInfo[]> {
    return introspect(this.open()).map((t) => publicInfo(t)!);
  }

  async describeTable(ref: TableRef): Promise<TableInfo | null> {
    return publicInfo(await this.tables.fresh(ref));
  }

  async readBatch(req: ReadBatchRequest): Promise<SourceRow[]> {
    validateReadRequest(req);
    const table = await this.tables.require(req.table, [...req.columns, req.filterColumn, ...req.keyColumns]);
    const q = buildKeysetQuery(sqliteDialect, table, req);
    return toSourceRows(this.all(q.sql, q.params), q.valueColumns, req.keyColumns.length, toText, toValue);
  }

  async maxPosition(
    table: TableRef,
    filterColumn: string,
    keyColumns: string[],
  ): Promise<KeysetPosition | null> {
    const t = await this.tables.require(table, [filterColumn, ...keyColumns]);
    const q = buildMaxPositionQuery(sqliteDialect, t, filterColumn, keyColumns);
    return toPosition(this.all(q.sql, q.params)[0], toText);
  }

  async countNullFilter(table: TableRef, filterColumn: string): Promise<number> {
    const t = await this.tables.require(table, [filterColumn]);
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
    const t = await this.tables.require(table, [filterColumn]);
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
    const t = await this.tables.require(ref, scopeColumns(req));
    const q = buildKeyBucketsQuery(sqliteDialect, t, { ...req, table: ref });
    return toKeyBuckets(this.all(q.sql, q.params), toText);
  }

  async keysInBuckets(req: KeyScopeRequest & { buckets: string[] }): Promise<string[][]> {
    if (req.buckets.length === 0) return [];
    const ref = req.table;
    const t = await this.tables.require(ref, scopeColumns(req));
    const q = buildKeysInBucketsQuery(sqliteDialect, t, { ...req, table: ref });
    return this.all(q.sql, q.params).map((row) => row.map(toText));
  }

  async readByKeys(req: ReadByKeysRequest): Promise<SourceRow[]> {
    if (req.keys.length === 0) return [];
    const ref = req.table;
    const t = await this.tables.require(ref, [...req.columns, req.filterColumn, ...req.keyColumns]);
    const q = buildReadByKeysQuery(sqliteDialect, t, { ...req, table: ref });
    return toSourceRows(this.all(q.sql, q.params), q.valueColumns, req.keyColumns.length, toText, toValue);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.tables.clear();
    const db = this.db;
    this.db = null;
    db?.close();
  }
}
