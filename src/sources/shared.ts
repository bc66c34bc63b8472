/**
 * Pieces every source adapter shares: request validation, the identifier check against the
 * introspected table, the keyset query shape, a short-lived table cache and driver-error
 * messages. Nothing here knows a driver.
 */
import { AppError } from '../core/errors.js';
import type {
  ColumnInfo,
  ColumnKind,
  KeyBucket,
  KeyScopeRequest,
  KeysetPosition,
  ProbeRequest,
  ProbeResult,
  ReadBatchRequest,
  ReadByKeysRequest,
  SourceRow,
  TableInfo,
  TableRef,
} from './port.js';

/** Introspected column plus what an adapter needs to bind a value of it (a cast, an affinity). */
export interface ResolvedColumn<Extra> {
  info: ColumnInfo;
  extra: Extra;
}

/** Introspected table as adapters keep it: the port's TableInfo plus per-column dialect data. */
export interface ResolvedTable<Extra> {
  info: TableInfo;
  columns: Map<string, ResolvedColumn<Extra>>;
}

export function displayTable(ref: TableRef): string {
  return ref.schema === null
    ? JSON.stringify(ref.name)
    : `${JSON.stringify(ref.schema)}.${JSON.stringify(ref.name)}`;
}

/**
 * Caches introspection per table, for every run on the pool (SourcePool), so a run does not
 * re-read the catalog for every batch, nor every run. An entry lives `ttlMs`; a miss on a table
 * or column re-reads once before failing, so a column added after the cache was filled is still
 * found; a run whose query fails re-reads it too (SourceConnector.describeTable).
 */
export class TableCache<Extra> {
  private readonly entries = new Map<string, { at: number; table: ResolvedTable<Extra> | null }>();
  /** Loads in progress, so runs starting together on a cold cache read the catalog once. */
  private readonly loading = new Map<string, Promise<ResolvedTable<Extra> | null>>();

  constructor(private readonly ttlMs = 60_000) {}

  /**
   * Loads fresh (no cache) through the caller's own queries (so its cancel() reaches them) and
   * remembers the result.
   */
  async fresh(ref: TableRef, load: Loader<Extra>): Promise<ResolvedTable<Extra> | null> {
    const table = await load(ref);
    this.entries.set(cacheKey(ref), { at: Date.now(), table });
    return table;
  }

  /** The cached entry while it is young enough, else a fresh one (shared with a load in progress). */
  async get(ref: TableRef, load: Loader<Extra>): Promise<ResolvedTable<Extra> | null> {
    const key = cacheKey(ref);
    const hit = this.entries.get(key);
    if (hit !== undefined && hit.table !== null && Date.now() - hit.at < this.ttlMs) return hit.table;
    const pending = this.loading.get(key);
    if (pending !== undefined) {
      try {
        return await pending;
      } catch {
        // Another caller's load failed (its run was cancelled, say): this caller tries itself.
        return this.fresh(ref, load);
      }
    }
    const started = this.fresh(ref, load).finally(() => this.loading.delete(key));
    this.loading.set(key, started);
    return started;
  }

  /** The table with every named column checked against it; throws a clear error otherwise. */
  async require(ref: TableRef, columnNames: readonly string[], load: Loader<Extra>): Promise<ResolvedTable<Extra>> {
    const hit = this.entries.get(cacheKey(ref));
    const cached = hit !== undefined && Date.now() - hit.at < this.ttlMs;
    let table = cached ? hit.table : await this.get(ref, load);
    if (cached && (table === null || columnNames.some((c) => !table!.columns.has(c)))) {
      table = await this.fresh(ref, load);
    }
    if (table === null) {
      throw new AppError('INVALID_TABLE', `Table ${displayTable(ref)} does not exist`, [
        `table ${displayTable(ref)} was not found in the source database`,
      ]);
    }
    const unknown = columnNames.filter((c) => !table.columns.has(c));
    if (unknown.length > 0) {
      const list = unknown.map((c) => JSON.stringify(c)).join(', ');
      throw new AppError('INVALID_TABLE', `Unknown column ${list} in table ${displayTable(ref)}`, [
        ...unknown.map((c) => `column ${JSON.stringify(c)} does not exist in table ${displayTable(ref)}`),
      ]);
    }
    return table;
  }

  clear(): void {
    this.entries.clear();
  }
}

/** Reads one table's description from the catalog. */
export type Loader<Extra> = (ref: TableRef) => Promise<ResolvedTable<Extra> | null>;

function cacheKey(ref: TableRef): string {
  return JSON.stringify([ref.schema, ref.name]);
}

/** Throws unless the request is well formed (positions match the key, the limit is sane). */
export function validateReadRequest(req: ReadBatchRequest): void {
  if (!Number.isSafeInteger(req.limit) || req.limit < 1) {
    throw new AppError(
      'INVALID_REQUEST',
      `readBatch limit must be a positive integer, got ${String(req.limit)}`,
    );
  }
  if (new Set(req.keyColumns).size !== req.keyColumns.length) {
    throw new AppError('INVALID_REQUEST', 'readBatch key columns must be distinct');
  }
  if (req.from !== null && 'after' in req.from) checkPosition(req.from.after, req.keyColumns, 'from.after');
  if (req.from !== null && 'atLeast' in req.from && typeof req.from.atLeast !== 'string') {
    throw new AppError('INVALID_REQUEST', 'readBatch from.atLeast must be a string');
  }
  if (req.until !== null) checkPosition(req.until, req.keyColumns, 'until');
}

function checkPosition(pos: KeysetPosition, keyColumns: readonly string[], what: string): void {
  if (
    typeof pos.filter !== 'string' ||
    !Array.isArray(pos.key) ||
    pos.key.some((k) => typeof k !== 'string')
  ) {
    throw new AppError('INVALID_REQUEST', `readBatch ${what} must hold string values`);
  }
  if (pos.key.length !== keyColumns.length) {
    throw new AppError(
      'INVALID_REQUEST',
      `readBatch ${what} has ${pos.key.length} key values but there are ${keyColumns.length} key columns`,
    );
  }
}

/** How one dialect spells the pieces of a keyset query. */
export interface KeysetDialect<Extra> {
  quote(name: string): string;
  /** The qualified, quoted table name. */
  table(ref: TableRef): string;
  /** Expression for the text form of `expr` (a column of `column`'s type); `toText` finishes it. */
  textOf(expr: string, column: ResolvedColumn<Extra>): string;
  toText(value: unknown): string;
  /** Binds `value` (a text form) for comparison with `column`; returns the placeholder expression. */
  bind(column: ResolvedColumn<Extra>, value: string, params: unknown[]): string;
  /**
   * Whether to repeat the bound on the leading column alone (`f >= x AND (f, k) > (x, k0)`).
   * MySQL/MariaDB only turn row-constructor comparisons into an index range through it.
   */
  boundLeadingColumn: boolean;
  /** `LIMIT` clause for a validated positive integer. */
  limit(n: number, params: unknown[]): string;
  /**
   * A test true only for a real NULL in `expr`, where `expr IS NULL` is not one (MariaDB/MySQL
   * match zero dates with IS NULL on a NOT NULL DATE/DATETIME column). Default `expr IS NULL`.
   */
  isNull?(expr: string, column: ResolvedColumn<Extra>): string;
  /**
   * SQL for the MD5 (32 lower-case hex digits) of a key's hash input (core/hash.ts
   * keyHashInput), from each key column's text-form expression (`textOf`).
   */
  keyHash(texts: string[]): string;
  /** SQL for the unsigned 32-bit number of 8 hex digits (`hex8` is an expression). */
  hex32(hex8: string): string;
  /** A plain placeholder for a text value (no cast). */
  param(value: string, params: unknown[]): string;
}

/** keyHash for engines with an MD5 function and a variadic CONCAT (PostgreSQL, MySQL). */
export function md5KeyHash(md5: string, charLength: string): (texts: string[]) => string {
  return (texts) =>
    texts.length === 1
      ? `${md5}(${texts[0]})`
      : `${md5}(CONCAT(${texts.map((t) => `${charLength}(${t}), ':', ${t}`).join(', ')}))`;
}

/**
 * Every column reference is qualified with this alias: a bare name in ORDER BY means an output
 * column first (PostgreSQL, SQLite), and `ts` and `ts::text` would both be outputs named `ts`.
 * An alias is a plain identifier, so no user name can be mistaken for it once qualified.
 */
export const SOURCE_ALIAS = 'kbsync_src';

export interface KeysetQuery {
  sql: string;
  params: unknown[];
  /** Names of the value columns, in select-list order, before the position columns. */
  valueColumns: string[];
}

/**
 * `SELECT values..., text(f), text(k)... FROM t WHERE f IS NOT NULL AND (f, k...) > (...)
 * ORDER BY f, k... LIMIT n`: the shape a (filter, key...) index answers without sorting.
 */
export function buildKeysetQuery<Extra>(
  d: KeysetDialect<Extra>,
  table: ResolvedTable<Extra>,
  req: ReadBatchRequest,
): KeysetQuery {
  const col = (name: string): ResolvedColumn<Extra> => table.columns.get(name)!;
  const order = [req.filterColumn, ...req.keyColumns];
  const valueColumns = [...new Set([...req.columns, ...order])];
  const params: unknown[] = [];
  const ref = (name: string): string => `${SOURCE_ALIAS}.${d.quote(name)}`;
  const select = [...valueColumns.map(ref), ...order.map((c) => d.textOf(ref(c), col(c))), ...markColumn(d, table, req.softDeleteColumn)];
  const f = ref(req.filterColumn);
  const where = [`${f} IS NOT NULL`];

  const compareRow = (op: '>' | '<=', pos: KeysetPosition): void => {
    where.push(...positionBound(d, table, req.filterColumn, req.keyColumns, op, pos, params));
  };

  if (req.from !== null && 'after' in req.from) compareRow('>', req.from.after);
  else if (req.from !== null)
    where.push(`${f} >= ${d.bind(col(req.filterColumn), req.from.atLeast, params)}`);
  if (req.until !== null) compareRow('<=', req.until);

  const sql =
    `SELECT ${select.join(', ')} FROM ${d.table(table.info)} AS ${SOURCE_ALIAS} WHERE ${where.join(' AND ')} ` +
    `ORDER BY ${order.map(ref).join(', ')} ${d.limit(req.limit, params)}`;
  return { sql, params, valueColumns };
}

/** `(f, k...) op (bound...)`, plus the leading-column repeat some dialects need for an index range. */
export function positionBound<Extra>(
  d: KeysetDialect<Extra>,
  table: ResolvedTable<Extra>,
  filterColumn: string,
  keyColumns: string[],
  op: '>' | '<=',
  pos: KeysetPosition,
  params: unknown[],
): string[] {
  const col = (name: string): ResolvedColumn<Extra> => table.columns.get(name)!;
  const ref = (name: string): string => `${SOURCE_ALIAS}.${d.quote(name)}`;
  const order = [filterColumn, ...keyColumns];
  const values = [pos.filter, ...pos.key];
  const parts: string[] = [];
  if (d.boundLeadingColumn && order.length > 1) {
    parts.push(`${ref(filterColumn)} ${op === '>' ? '>=' : '<='} ${d.bind(col(filterColumn), pos.filter, params)}`);
  }
  const bound = order.map((name, i) => d.bind(col(name), values[i]!, params));
  parts.push(`(${order.map(ref).join(', ')}) ${op} (${bound.join(', ')})`);
  return parts;
}

/**
 * The soft-delete mark (API.md, `soft_delete_column`): a value that is not NULL and not
 * false/0 marks the row deleted. Always decided by the source in SQL — reads select it as a
 * column (markColumn), reconciliation filters on it — so both ways agree on every value.
 */
function notMarkedDeleted(expr: string, kind: ColumnKind): string {
  switch (kind) {
    case 'boolean':
      return `${expr} IS NOT TRUE`;
    case 'integer':
    case 'numeric':
      return `(${expr} IS NULL OR ${expr} = 0)`;
    case 'text':
      return `(${expr} IS NULL OR ${expr} IN ('0', 'false'))`;
    default:
      return `${expr} IS NULL`;
  }
}

/** `CASE WHEN <not marked> THEN 0 ELSE 1 END`, the last column of a read that asks for the mark. */
function markColumn<Extra>(d: KeysetDialect<Extra>, table: ResolvedTable<Extra>, column: string | null | undefined): string[] {
  if (column === null || column === undefined) return [];
  const kind = table.columns.get(column)!.info.kind;
  return [`CASE WHEN ${notMarkedDeleted(`${SOURCE_ALIAS}.${d.quote(column)}`, kind)} THEN 0 ELSE 1 END`];
}

/** The WHERE conditions of a reconciliation's scope, plus the key-hash expression. */
function keyScope<Extra>(
  d: KeysetDialect<Extra>,
  table: ResolvedTable<Extra>,
  req: KeyScopeRequest,
  params: unknown[],
): { where: string[]; hash: string } {
  const col = (name: string): ResolvedColumn<Extra> => table.columns.get(name)!;
  const ref = (name: string): string => `${SOURCE_ALIAS}.${d.quote(name)}`;
  // Rows with a NULL filter value are never synced (rows_skipped), so they are out of scope.
  const where = [`${ref(req.filterColumn)} IS NOT NULL`];
  if (req.softDeleteColumn !== null) {
    where.push(notMarkedDeleted(ref(req.softDeleteColumn), col(req.softDeleteColumn).info.kind));
  }
  if (req.after !== null) {
    where.push(...positionBound(d, table, req.filterColumn, req.keyColumns, '>', req.after, params));
  }
  const hash = d.keyHash(req.keyColumns.map((k) => d.textOf(ref(k), col(k))));
  return { where, hash };
}

/** Every column a reconciliation request names (checked against the table before use). */
export function scopeColumns(req: KeyScopeRequest): string[] {
  return [req.filterColumn, ...req.keyColumns, ...(req.softDeleteColumn === null ? [] : [req.softDeleteColumn])];
}

function hexDigits(n: number): number {
  if (!Number.isSafeInteger(n) || n < 1 || n > 32) throw new AppError('INVALID_REQUEST', `key-hash digits must be 1-32, got ${String(n)}`);
  return n;
}


/**
 * `SELECT bucket, count, sum FROM (SELECT md5(key) ...) GROUP BY bucket`: one pass over the
 * table's keys inside the source; only the aggregates travel.
 */
export function buildKeyBucketsQuery<Extra>(
  d: KeysetDialect<Extra>,
  table: ResolvedTable<Extra>,
  req: KeyScopeRequest & { digits: number; within: string[] | null },
): { sql: string; params: unknown[] } {
  const digits = req.digits === 0 && req.within === null ? 0 : hexDigits(req.digits);
  const params: unknown[] = [];
  const scope = keyScope(d, table, req, params);
  let outer = '';
  if (req.within !== null && req.within.length > 0) {
    const width = hexDigits(req.within[0]!.length);
    checkPrefixes(req.within, width);
    outer = `WHERE substr(h, 1, ${width}) IN (${req.within.map((p) => d.param(p, params)).join(', ')})`;
  }
  const keys = `FROM (SELECT ${scope.hash} AS h FROM ${d.table(table.info)} AS ${SOURCE_ALIAS} WHERE ${scope.where.join(' AND ')}) kbsync_keys`;
  const term = `sum(${d.hex32('substr(h, 25, 8)')})`;
  // Zero digits: one aggregate over the whole scope, with no grouping to pay for.
  const sql =
    digits === 0
      ? `SELECT '' AS b, count(*) AS n, ${term} AS s ${keys}`
      : `SELECT substr(h, 1, ${digits}) AS b, count(*) AS n, ${term} AS s ${keys} ${outer} GROUP BY substr(h, 1, ${digits})`;
  return { sql, params };
}

/** Turns the rows of a key-bucket query into KeyBuckets. */
export function toKeyBuckets(rows: unknown[][], toText: (v: unknown) => string): KeyBucket[] {
  return rows
    .filter((r) => Number(r[1]) > 0)
    .map((r) => ({ bucket: toText(r[0]), count: Number(r[1]), sum: BigInt(toText(r[2]).replace(/\.0*$/, '')).toString() }));
}

/** Hex prefixes of one width, at most MAX_KEY_PREFIXES of them (each is a bound parameter). */
function checkPrefixes(prefixes: string[], width: number): void {
  if (prefixes.length > MAX_KEY_PREFIXES || !prefixes.every((p) => p.length === width && /^[0-9a-f]+$/.test(p))) {
    throw new AppError('INVALID_REQUEST', `key buckets must be at most ${MAX_KEY_PREFIXES} hex prefixes of one length`);
  }
}

/** Bucket prefixes one reconciliation query may bind (sync/reconcile.ts asks for no more). */
export const MAX_KEY_PREFIXES = 4096;

/** The text-form keys of the rows in scope whose key hash starts with one of `buckets`. */
export function buildKeysInBucketsQuery<Extra>(
  d: KeysetDialect<Extra>,
  table: ResolvedTable<Extra>,
  req: KeyScopeRequest & { buckets: string[] },
): { sql: string; params: unknown[] } {
  // [''] is the one bucket of every key (a comparison settled at its first round).
  const all = req.buckets.length === 1 && req.buckets[0] === '';
  const width = all ? 0 : hexDigits(req.buckets[0]?.length ?? 0);
  if (!all) checkPrefixes(req.buckets, width);
  const params: unknown[] = [];
  const scope = keyScope(d, table, req, params);
  const col = (name: string): ResolvedColumn<Extra> => table.columns.get(name)!;
  const ref = (name: string): string => `${SOURCE_ALIAS}.${d.quote(name)}`;
  const inBuckets = all ? '' : ` AND substr(${scope.hash}, 1, ${width}) IN (${req.buckets.map((b) => d.param(b, params)).join(', ')})`;
  const sql =
    `SELECT ${req.keyColumns.map((k) => d.textOf(ref(k), col(k))).join(', ')} FROM ${d.table(table.info)} AS ${SOURCE_ALIAS} ` +
    `WHERE ${scope.where.join(' AND ')}${inBuckets}`;
  return { sql, params };
}

/** Rows by key: the keyset query's select list, `WHERE key IN (...)` (or ORs of composite equalities). */
export function buildReadByKeysQuery<Extra>(
  d: KeysetDialect<Extra>,
  table: ResolvedTable<Extra>,
  req: ReadByKeysRequest,
): KeysetQuery {
  const col = (name: string): ResolvedColumn<Extra> => table.columns.get(name)!;
  const ref = (name: string): string => `${SOURCE_ALIAS}.${d.quote(name)}`;
  const order = [req.filterColumn, ...req.keyColumns];
  const valueColumns = [...new Set([...req.columns, ...order])];
  const params: unknown[] = [];
  const select = [...valueColumns.map(ref), ...order.map((c) => d.textOf(ref(c), col(c))), ...markColumn(d, table, req.softDeleteColumn)];
  for (const key of req.keys) checkPosition({ filter: '', key }, req.keyColumns, 'keys');
  const match =
    req.keyColumns.length === 1
      ? `${ref(req.keyColumns[0]!)} IN (${req.keys.map((k) => d.bind(col(req.keyColumns[0]!), k[0]!, params)).join(', ')})`
      : req.keys
          .map((k) => `(${req.keyColumns.map((c, i) => `${ref(c)} = ${d.bind(col(c), k[i]!, params)}`).join(' AND ')})`)
          .join(' OR ');
  const sql =
    `SELECT ${select.join(', ')} FROM ${d.table(table.info)} AS ${SOURCE_ALIAS} ` +
    `WHERE ${req.includeNullFilter ? '' : `${ref(req.filterColumn)} IS NOT NULL AND `}(${match})`;
  return { sql, params, valueColumns };
}

/** Turns array rows of a keyset query into SourceRows. */
export function toSourceRows(
  rows: unknown[][],
  valueColumns: string[],
  keyCount: number,
  toText: (v: unknown) => string,
  toValue: (v: unknown) => unknown = (v) => v,
): SourceRow[] {
  const n = valueColumns.length;
  return rows.map((row) => {
    const values: Record<string, unknown> = {};
    valueColumns.forEach((name, i) => {
      values[name] = toValue(row[i]);
    });
    const source: SourceRow = {
      position: {
        filter: toText(row[n]),
        key: Array.from({ length: keyCount }, (_, i) => toText(row[n + 1 + i])),
      },
      values,
    };
    // A read that asked for the soft-delete mark has it after the position columns.
    const mark = row[n + 1 + keyCount];
    if (mark !== undefined) source.markedDeleted = Number(mark) === 1;
    return source;
  });
}

/**
 * The probe (SourceConnector.probe) as one statement, each part a derived table of one row:
 *
 *     SELECT nulls, max position, past?, window count/sum, keys count/sum
 *     FROM (count of NULL filters) LEFT JOIN (last row, ORDER BY f DESC, k DESC LIMIT 1)
 *          CROSS JOIN (window aggregate) CROSS JOIN (key aggregate)
 *
 * Parameters are pushed in the order they appear in the text (`?` dialects need that).
 */
export function buildProbeQuery<Extra>(
  d: KeysetDialect<Extra>,
  table: ResolvedTable<Extra>,
  req: ProbeRequest,
): { sql: string; params: unknown[] } {
  const col = (name: string): ResolvedColumn<Extra> => table.columns.get(name)!;
  const ref = (name: string): string => `${SOURCE_ALIAS}.${d.quote(name)}`;
  const from = `FROM ${d.table(table.info)} AS ${SOURCE_ALIAS}`;
  const order = [req.filterColumn, ...req.keyColumns];
  const f = ref(req.filterColumn);
  const params: unknown[] = [];
  const select = ['kbsync_n.n'];
  const parts: string[] = [];

  const fq = d.quote(req.filterColumn);
  parts.push(`(SELECT count(*) AS n FROM ${d.table(table.info)} WHERE ${d.isNull ? d.isNull(fq, col(req.filterColumn)) : `${fq} IS NULL`}) kbsync_n`);

  const past =
    req.watermark === null
      ? '1'
      : `CASE WHEN ${positionBound(d, table, req.filterColumn, req.keyColumns, '>', req.watermark, params).join(' AND ')} THEN 1 ELSE 0 END`;
  const positions = order.map((c, i) => `${d.textOf(ref(c), col(c))} AS p${i}`);
  parts.push(
    `LEFT JOIN (SELECT ${positions.join(', ')}, ${past} AS past ${from} WHERE ${f} IS NOT NULL ` +
      `ORDER BY ${order.map((c) => `${ref(c)} DESC`).join(', ')} ${d.limit(1, params)}) kbsync_m ON 1 = 1`,
  );
  select.push(...order.map((_, i) => `kbsync_m.p${i}`), 'kbsync_m.past');

  // count and sum of 32-bit hash terms, as reconciliation adds them (hex32 of hash digits 25-32).
  const aggregate = (hash: string, where: string[], alias: string) =>
    `CROSS JOIN (SELECT count(*) AS n, sum(${d.hex32('substr(h, 25, 8)')}) AS s FROM (SELECT ${hash} AS h ${from} WHERE ${where.join(' AND ')}) ${alias}_h) ${alias}`;

  const others = [...new Set(req.columns)].filter((c) => !order.includes(c));
  if (others.length > 0) {
    // Names every column the job reads, so one that is gone fails the statement; selects no row.
    parts.push(`CROSS JOIN (SELECT count(*) AS n FROM (SELECT ${others.map(ref).join(', ')} ${from} WHERE 1 = 0) kbsync_cols) kbsync_c`);
  }
  if (req.window !== null && req.watermark !== null) {
    const where = [`${f} IS NOT NULL`, `${f} >= ${d.bind(col(req.filterColumn), req.window.from, params)}`];
    where.push(...positionBound(d, table, req.filterColumn, req.keyColumns, '<=', req.watermark, params));
    // Each value as its text plus a NULL flag, so NULL and '' differ.
    const texts = [...order, ...others].flatMap((c) => [
      `COALESCE(${d.textOf(ref(c), col(c))}, '')`,
      `CASE WHEN ${ref(c)} IS NULL THEN '1' ELSE '0' END`,
    ]);
    parts.push(aggregate(d.keyHash(texts), where, 'kbsync_w'));
    select.push('kbsync_w.n', 'kbsync_w.s');
  }
  if (req.keys !== null) {
    const scope = keyScope(d, table, { ...req.keys, table: req.table, keyColumns: req.keyColumns, filterColumn: req.filterColumn }, params);
    parts.push(aggregate(scope.hash, scope.where, 'kbsync_k'));
    select.push('kbsync_k.n', 'kbsync_k.s');
  }
  // The oldest row not yet synced (the job's lag): the first position past the watermark, read
  // from the (filter, key) index like a run's first batch. Last, so its parameters bind last.
  const after = req.watermark === null ? [] : positionBound(d, table, req.filterColumn, req.keyColumns, '>', req.watermark, params);
  parts.push(
    `LEFT JOIN (SELECT ${d.textOf(f, col(req.filterColumn))} AS o ${from} WHERE ${[`${f} IS NOT NULL`, ...after].join(' AND ')} ` +
      `ORDER BY ${order.map((c) => `${ref(c)} ASC`).join(', ')} ${d.limit(1, params)}) kbsync_o ON 1 = 1`,
  );
  select.push('kbsync_o.o');
  return { sql: `SELECT ${select.join(', ')} FROM ${parts.join(' ')}`, params };
}

/** Every column a probe names (checked against the table before use). */
export function probeColumns(req: ProbeRequest): string[] {
  return [
    req.filterColumn,
    ...req.keyColumns,
    ...req.columns,
    ...(req.keys?.softDeleteColumn ? [req.keys.softDeleteColumn] : []),
  ];
}

/** Reads the row of buildProbeQuery. */
export function toProbeResult(row: unknown[], req: ProbeRequest, toText: (v: unknown) => string): ProbeResult {
  const keyCount = req.keyColumns.length;
  const positionAt = 1;
  const present = row[positionAt] !== null && row[positionAt] !== undefined;
  const max = present ? { filter: toText(row[positionAt]), key: row.slice(positionAt + 1, positionAt + 1 + keyCount).map(toText) } : null;
  let i = positionAt + 1 + keyCount;
  const past = present && Number(row[i]) === 1;
  i++;
  const sum = (v: unknown): string => (v === null || v === undefined ? '0' : BigInt(toText(v).replace(/\.0*$/, '')).toString());
  let window: ProbeResult['window'] = null;
  if (req.window !== null && req.watermark !== null) {
    window = { count: Number(row[i]), sum: sum(row[i + 1]) };
    i += 2;
  }
  let keys: ProbeResult['keys'] = null;
  if (req.keys !== null) {
    keys = { bucket: '', count: Number(row[i]), sum: sum(row[i + 1]) };
    i += 2;
  }
  const oldest = row[i];
  const oldestPending = oldest === null || oldest === undefined ? null : toText(oldest);
  return { max, pastWatermark: past, nullFilter: Number(row[0] ?? 0), window, keys, oldestPending };
}

/** Rows whose filter value is NULL (reported as skipped): the same statement in every dialect. */
export function buildCountNullQuery<Extra>(d: KeysetDialect<Extra>, table: ResolvedTable<Extra>, column: string): string {
  const expr = d.quote(column);
  const test = d.isNull ? d.isNull(expr, table.columns.get(column)!) : `${expr} IS NULL`;
  return `SELECT count(*) FROM ${d.table(table.info)} WHERE ${test}`;
}

/** `SELECT text(f), text(k)... ORDER BY f DESC, k DESC LIMIT 1`: the last position. */
export function buildMaxPositionQuery<Extra>(
  d: KeysetDialect<Extra>,
  table: ResolvedTable<Extra>,
  filterColumn: string,
  keyColumns: string[],
): { sql: string; params: unknown[] } {
  const order = [filterColumn, ...keyColumns];
  const params: unknown[] = [];
  const ref = (name: string): string => `${SOURCE_ALIAS}.${d.quote(name)}`;
  const sql =
    `SELECT ${order.map((c) => d.textOf(ref(c), table.columns.get(c)!)).join(', ')} ` +
    `FROM ${d.table(table.info)} AS ${SOURCE_ALIAS} WHERE ${ref(filterColumn)} IS NOT NULL ` +
    `ORDER BY ${order.map((c) => `${ref(c)} DESC`).join(', ')} ${d.limit(1, params)}`;
  return { sql, params };
}

export function toPosition(
  row: unknown[] | undefined,
  toText: (v: unknown) => string,
): KeysetPosition | null {
  if (row === undefined) return null;
  return { filter: toText(row[0]), key: row.slice(1).map(toText) };
}

export function checkSeconds(seconds: number): void {
  if (!Number.isFinite(seconds) || seconds < 0) {
    throw new AppError(
      'INVALID_REQUEST',
      `lookback seconds must be a finite number >= 0, got ${String(seconds)}`,
    );
  }
}

/** Whole units (days, microseconds, ...) covering `seconds`, rounded up so a window is never shorter. */
export function ceilUnits(seconds: number, unitSeconds: number): bigint {
  // Sub-second units multiply by an exact power of ten (300 s * 1e6 is exact, 300 / 1e-6 is not);
  // the relative epsilon keeps 0.1 * 1000 (= 100.00000000000001) from becoming 101.
  const x = unitSeconds < 1 ? seconds * Math.round(1 / unitSeconds) : seconds / unitSeconds;
  return BigInt(Math.ceil(x - Math.max(1, Math.abs(x)) * 1e-12));
}

/**
 * Integer filter minus seconds, exact for integers beyond 2^53, and never below `min` (the
 * column type's smallest value, e.g. 0 for an unsigned column, where a negative bound would wrap).
 */
export function subtractInteger(value: string, seconds: number, min?: bigint): string {
  const v = value.trim();
  if (!/^[+-]?\d+$/.test(v)) {
    throw new AppError('INVALID_REQUEST', `lookback: ${JSON.stringify(value)} is not an integer`);
  }
  const result = BigInt(v) - ceilUnits(seconds, 1);
  return (min !== undefined && result < min ? min : result).toString();
}

/**
 * The driver's reason, readable and without the password: Node's AggregateError (a connect to
 * every address of a host failed) has an empty message, so its inner errors are used.
 */
export function driverReason(err: unknown, secrets: (string | undefined)[] = []): string {
  let reason = '';
  if (err instanceof Error) {
    reason = err.message;
    const inner = (err as { errors?: unknown }).errors;
    if (reason === '' && Array.isArray(inner)) {
      reason = [...new Set(inner.map((e) => (e instanceof Error ? e.message : String(e))))].join('; ');
    }
    if (reason === '') reason = (err as { code?: unknown }).code?.toString() ?? err.name;
  } else {
    reason = String(err);
  }
  // Credentials in a URL-looking fragment, then any literal occurrence of a known secret.
  reason = reason.replace(/(\/\/[^/:@\s]*:)[^@\s]*@/g, '$1***@');
  for (const s of secrets) {
    if (s !== undefined && s.length >= 3) reason = reason.split(s).join('***');
  }
  return reason === '' ? 'unknown connection error' : reason;
}

export function connectionError(err: unknown, secrets: (string | undefined)[]): AppError {
  return new AppError('CONNECTION_FAILED', driverReason(err, secrets), [], { cause: err });
}

/**
 * The server sessions running a connector's queries, and the cancellation every server adapter
 * does the same way (SourceConnector.cancel): kill what is in flight, again while anything still
 * is (a query checked out just before the cancel may reach the server after the first kill),
 * and refuse every later query.
 */
export class InFlightQueries {
  private readonly sessions = new Map<number, number>();
  private cancelling: Promise<void> | null = null;
  cancelled = false;

  add(session: number): void {
    this.sessions.set(session, (this.sessions.get(session) ?? 0) + 1);
  }

  delete(session: number): void {
    const n = (this.sessions.get(session) ?? 0) - 1;
    if (n > 0) this.sessions.set(session, n);
    else this.sessions.delete(session);
  }

  /** `kill` gets the sessions in flight; failures are ignored (the statement timeout still bounds the query). */
  cancel(kill: (sessions: number[]) => Promise<void>, options: { intervalMs?: number; maxMs?: number } = {}): Promise<void> {
    this.cancelled = true;
    this.cancelling ??= (async () => {
      const { intervalMs = 250, maxMs = 5_000 } = options;
      const until = Date.now() + maxMs;
      while (this.sessions.size > 0 && Date.now() < until) {
        await kill([...this.sessions.keys()]).catch(() => undefined);
        await new Promise<void>((resolve) => setTimeout(resolve, intervalMs).unref());
      }
    })();
    return this.cancelling;
  }
}

/**
 * How many connectors of a pool are open, and since when none is (SourcePool.idleSince): the
 * pool cache (sources/pools.ts) closes a pool nobody has used for a while.
 */
export class ConnectorUse {
  private open = 0;
  private since = Date.now();

  opened(): void {
    this.open++;
  }

  closed(): void {
    this.open = Math.max(0, this.open - 1);
    if (this.open === 0) this.since = Date.now();
  }

  idleSince(): number | null {
    return this.open === 0 ? this.since : null;
  }
}

/** Seconds for a session variable counted in whole seconds (at least 1, rounded up). */
export function wholeSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** Strips adapter-only data so callers see exactly the port's TableInfo. */
export function publicInfo<Extra>(table: ResolvedTable<Extra> | null): TableInfo | null {
  if (table === null) return null;
  const { schema, name, columns, primaryKey, uniqueKeys } = table.info;
  return {
    schema,
    name,
    columns: columns.map((c) => ({ ...c })),
    primaryKey: [...primaryKey],
    uniqueKeys: uniqueKeys.map((k) => [...k]),
  };
}
