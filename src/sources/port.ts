/**
 * The source-connector port: what kbsync needs from a user's database, whatever the engine.
 * Adapters (postgres/, mysql/, sqlite/) hide their driver; nothing here names a driver type.
 *
 * Values that must survive a round trip exactly (the watermark: filter value and primary key)
 * travel as strings in the source's own text form, never through a JavaScript Date or number
 * that would round microseconds or big integers (SEMANTICS.md, "Incremental read").
 */

export type SourceEngine = 'postgres' | 'mysql' | 'sqlite';

/** Broad family of a column's type; decides how a watermark value is bound and compared. */
export type ColumnKind =
  | 'timestamptz' // timestamp with time zone
  | 'timestamp' // timestamp without time zone, MySQL DATETIME/TIMESTAMP
  | 'date'
  | 'integer'
  | 'numeric' // decimal / float
  | 'text'
  | 'boolean'
  | 'other';

export interface ColumnInfo {
  name: string;
  /** The engine's own type name, e.g. "timestamp with time zone", "datetime(6)", "INTEGER". */
  type: string;
  kind: ColumnKind;
  nullable: boolean;
  /**
   * Set by the adapter when rows cannot be read in keyset order on this column: the engine's
   * ORDER BY and its comparison with a bound value disagree (MySQL ENUM and SET sort by member
   * position but compare as strings), so `(f, k) > (…)` would skip rows. Holds the reason, shown
   * to the user; such a column is refused as a key or filter column. Absent: orderable.
   */
  unorderable?: string;
}

export interface TableRef {
  /** Postgres schema (default "public"); null for MySQL and SQLite. */
  schema: string | null;
  name: string;
}

export interface TableInfo extends TableRef {
  columns: ColumnInfo[];
  /** Primary-key column names in key order; empty when the table has none. */
  primaryKey: string[];
  /** Unique constraints whose columns are all NOT NULL (document identity when there is no PK). */
  uniqueKeys: string[][];
}

/** A position in keyset order on (filter column, key columns). */
export interface KeysetPosition {
  filter: string;
  key: string[];
}

export interface ReadBatchRequest {
  table: TableRef;
  /** Columns to return (content and metadata columns); key and filter columns are always read. */
  columns: string[];
  filterColumn: string;
  keyColumns: string[];
  /** Where to start: strictly after a position, at or after a filter value (lookback), or the beginning. */
  from: { after: KeysetPosition } | { atLeast: string } | null;
  /** Inclusive upper bound, fixed at the start of a run so a run under constant inserts still ends. */
  until: KeysetPosition | null;
  limit: number;
  /** When set, each row says whether this column marks it deleted (SourceRow.markedDeleted). */
  softDeleteColumn?: string | null;
}

export interface SourceRow {
  /** Position of this row; rows come sorted by it. */
  position: KeysetPosition;
  /** Requested column values as the driver returned them (Date, string, number, bigint, Buffer, null). */
  values: Record<string, unknown>;
  /**
   * Whether the request's soft-delete column marks the row deleted (not NULL and not false/0),
   * decided by the source in SQL with the same rule reconciliation uses, so the two never disagree.
   */
  markedDeleted?: boolean;
}

/**
 * What a run asks first (SEMANTICS.md, "Incremental read"), in one statement: is anything past
 * the watermark, where the run's upper bound is, how many rows have a NULL filter value, and —
 * when asked — fingerprints of the lookback window and of the keys delete reconciliation
 * compares, so a run with nothing new needs no other query.
 */
export interface ProbeRequest {
  table: TableRef;
  filterColumn: string;
  keyColumns: string[];
  /** Where the run starts; null when nothing has been read yet. */
  watermark: KeysetPosition | null;
  /**
   * The other columns the job reads (content, metadata, soft-delete). The statement names every
   * one of them, so a column dropped or renamed makes it fail however the rows look (the run then
   * reads the table's description again), and the window fingerprint covers them.
   */
  columns: string[];
  /**
   * The lookback window to fingerprint: the rows from filter value `from` up to the watermark
   * (as the lookback read selects them), hashed over their key, filter value and `columns`, so
   * any row entering, leaving or changing in the window changes it. Null: not wanted (no
   * lookback, or no watermark).
   */
  window: { from: string } | null;
  /** Reconciliation's first aggregate (one bucket over every key in scope); null: not wanted. */
  keys: Pick<KeyScopeRequest, 'softDeleteColumn' | 'after'> | null;
}

export interface ProbeResult {
  /** The greatest position (non-NULL filter): the run's upper bound. Null for a table without one. */
  max: KeysetPosition | null;
  /** Whether a row lies after the watermark (with no watermark: whether there is any row). */
  pastWatermark: boolean;
  /** Rows whose filter value is NULL (reported as skipped). */
  nullFilter: number;
  /** Rows in the lookback window and the sum of their hash terms (decimal digits); null when not asked. */
  window: { count: number; sum: string } | null;
  /** The keys in scope as one KeyBucket (bucket ''; count 0 and sum '0' when none); null when not asked. */
  keys: KeyBucket | null;
  /**
   * The filter value (text form) of the first row past the watermark in keyset order — the oldest
   * row not yet synced, for the job's lag (core/lag.ts); null when none. Optional, as a test's
   * decorator may not give it: absent means not measured.
   */
  oldestPending?: string | null;
}

export interface SourceConnector {
  readonly engine: SourceEngine;
  /** Throws with the driver's reason when the database cannot be reached. */
  ping(): Promise<void>;
  listTables(): Promise<TableInfo[]>;
  /**
   * Exact-name lookup; null when the table does not exist. Reads the catalog, unless `cached`:
   * then a description read earlier through the same pool (SourcePool) answers while it is
   * younger than the pool's description age; a run asks again uncached when a query fails in a
   * way a schema change would explain.
   */
  describeTable(ref: TableRef, options?: { cached?: boolean }): Promise<TableInfo | null>;
  /** One statement: see ProbeRequest. */
  probe(req: ProbeRequest): Promise<ProbeResult>;
  /** Rows with a non-NULL filter value, in keyset order on (filter, key...), at most `limit`. */
  readBatch(req: ReadBatchRequest): Promise<SourceRow[]>;
  /** The greatest position (non-NULL filter), or null for an empty table. */
  maxPosition(table: TableRef, filterColumn: string, keyColumns: string[]): Promise<KeysetPosition | null>;
  /** How many rows have a NULL filter value (they are reported as skipped). */
  countNullFilter(table: TableRef, filterColumn: string): Promise<number>;
  /**
   * The filter value `seconds` before `value`, computed by the source in its own type
   * (for lookback). Null when the column kind has no notion of time distance (text, boolean).
   * Integer and numeric columns subtract `seconds` as a plain number.
   */
  lookbackFrom(table: TableRef, filterColumn: string, value: string, seconds: number): Promise<string | null>;
  /**
   * Delete reconciliation (SEMANTICS.md, "Deletes"): the rows in scope, grouped into buckets by
   * the first `digits` hex digits of the MD5 of their key (core/hash.ts keyHash), computed inside
   * the source. Only buckets under one of `within` (prefixes of fewer digits) when given.
   */
  keyBuckets(req: KeyScopeRequest & { digits: number; within: string[] | null }): Promise<KeyBucket[]>;
  /** Keys (text form) of the rows in scope whose key hash starts with one of `buckets`. */
  keysInBuckets(req: KeyScopeRequest & { buckets: string[] }): Promise<string[][]>;
  /** The rows with these keys (text form) and a non-NULL filter value (unless asked), in no particular order. */
  readByKeys(req: ReadByKeysRequest): Promise<SourceRow[]>;
  /**
   * How many rows a run will read in a keyset range (a run's progress, API.md "Jobs"), cheaply:
   * see RowEstimateRequest. Optional, as EmbeddingProvider.probe is: a connector without it (a
   * test's decorator) only means runs show rows done without a total.
   */
  estimateRows?(req: RowEstimateRequest): Promise<RowEstimate>;
  /**
   * Cancels this connector's queries in flight (PostgreSQL `pg_cancel_backend`, MySQL/MariaDB
   * `KILL QUERY`, each from a connection of its own) and refuses every later query with
   * SourceQueryCancelled: a connector serves one run, and a cancelled run reads nothing more. A
   * cancelled query rejects with SourceQueryCancelled. Other connectors of the same pool are not
   * touched: a connection that ran a cancelled connector's query is closed, never reused. SQLite
   * queries are synchronous, so there is never one in flight to cancel; the busy timeout bounds
   * how long one waits for a lock.
   */
  cancel(): Promise<void>;
  /** Ends this connector; a connector taken from a SourcePool leaves the pool open. */
  close(): Promise<void>;
}

/**
 * A registered database's connections and table descriptions, kept across runs
 * (sources/pools.ts keeps one per database): each run or request takes a connector from it.
 */
export interface SourcePool {
  readonly engine: SourceEngine;
  /** A connector for one run or request; cheap, connects nothing by itself. */
  connector(): SourceConnector;
  /** Since when no connector of this pool is open (epoch ms), or null while one is. */
  idleSince(): number | null;
  /** Closes every connection; connectors taken from the pool refuse queries afterwards. */
  close(): Promise<void>;
}

/** How a pool is sized and aged (KBSYNC_SOURCE_POOL_SIZE, KBSYNC_SOURCE_IDLE_MS). */
export interface SourcePoolLimits {
  /** Connections at most. */
  size: number;
  /** A connection unused this long is closed, in ms. */
  idleMs: number;
  /** A table description is read again from the catalog once this old, in ms. */
  describeMaxAgeMs: number;
}

export const DEFAULT_POOL_LIMITS: Readonly<SourcePoolLimits> = Object.freeze({ size: 4, idleMs: 300_000, describeMaxAgeMs: 600_000 });

/** Bounds on every source query (KBSYNC_SOURCE_STATEMENT_TIMEOUT_MS, KBSYNC_SOURCE_LOCK_TIMEOUT_MS). */
export interface SourceLimits {
  /** Longest a query may run, in milliseconds. */
  statementTimeoutMs: number;
  /** Longest a query may wait for a lock another session holds, in milliseconds. */
  lockTimeoutMs: number;
}

export const DEFAULT_SOURCE_LIMITS: Readonly<SourceLimits> = Object.freeze({ statementTimeoutMs: 60_000, lockTimeoutMs: 10_000 });

/**
 * A source query hit its statement or lock timeout. Not retried inside the run (the same wait
 * would come again and hold a run slot); the run fails with code SOURCE_TIMEOUT and the job stays
 * scheduled, so the next tick tries again.
 */
export class SourceTimeoutError extends Error {
  override name = 'SourceTimeoutError';
  readonly code = 'SOURCE_TIMEOUT';
  constructor(
    readonly kind: 'statement' | 'lock',
    readonly timeoutMs: number,
    options?: { cause?: unknown },
  ) {
    super(
      kind === 'lock'
        ? `a query waited longer than the lock timeout (${timeoutMs} ms) for a lock another session holds on the table; look for a long transaction, LOCK TABLE(S) or a schema change on it in the source database, or raise KBSYNC_SOURCE_LOCK_TIMEOUT_MS`
        : `a query ran longer than the statement timeout (${timeoutMs} ms); check the source's load and that the table has an index on (filter column, key columns), or raise KBSYNC_SOURCE_STATEMENT_TIMEOUT_MS`,
      options,
    );
  }
}

/** A query stopped by SourceConnector.cancel() (the run was paused, deleted or shut down). */
export class SourceQueryCancelled extends Error {
  override name = 'SourceQueryCancelled';
  readonly code = 'SOURCE_QUERY_CANCELLED';
  constructor(options?: { cause?: unknown }) {
    super('the source query was cancelled', options);
  }
}

/** Which rows a reconciliation compares with the knowledge base: rows with a non-NULL filter value. */
export interface KeyScopeRequest {
  table: TableRef;
  keyColumns: string[];
  filterColumn: string;
  /** Rows whose soft-delete column marks them deleted are out of scope. */
  softDeleteColumn: string | null;
  /**
   * Only rows after this position in (filter, key) order (a `backfill: false` job never synced
   * the rows before it); null: every row.
   */
  after: KeysetPosition | null;
}

export interface KeyBucket {
  /** Hex prefix of the key hashes in the bucket. */
  bucket: string;
  count: number;
  /** Sum of the keys' 32-bit hash terms (core/hash.ts keyHashTerm), as decimal digits. */
  sum: string;
}

export interface ReadByKeysRequest {
  table: TableRef;
  columns: string[];
  filterColumn: string;
  keyColumns: string[];
  keys: string[][];
  softDeleteColumn?: string | null;
  /** Also rows whose filter value is NULL (to tell whether a key exists at all). */
  includeNullFilter?: boolean;
}

/**
 * The rows with a non-NULL filter value after `after` and up to `until` in keyset order — what a
 * run's incremental read will go through — counted at most `limit` of them, in one index range
 * like the reads themselves. Past the limit the engine's planner statistics for the same range
 * answer, without reading it; an engine without them reports the limit as a lower estimate.
 */
export interface RowEstimateRequest {
  table: TableRef;
  filterColumn: string;
  keyColumns: string[];
  /** Rows strictly after this position; null: from the first row. */
  after: KeysetPosition | null;
  /** Rows up to this position (inclusive); null: to the last row. */
  until: KeysetPosition | null;
  /** Rows counted at most. */
  limit: number;
}

export interface RowEstimate {
  rows: number;
  /**
   * `counted`: exact (as of the query), at most `limit`; `statistics`: more than `limit` rows, and
   * this is the planner's estimate for the range (never below what was counted); `at_least`: more
   * than `limit` rows and no statistics: `rows` is a lower estimate (`limit` + 1).
   */
  basis: 'counted' | 'statistics' | 'at_least';
}

/** Connection parameters as registered (API.md, "Databases"). */
export type ConnectionParameters =
  | { url: string; ssl?: boolean; schema?: string }
  | {
      host?: string;
      port?: number;
      user?: string;
      password?: string;
      database?: string;
      schema?: string;
      ssl?: boolean;
    }
  | { path: string };
