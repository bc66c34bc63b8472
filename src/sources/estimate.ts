/**
 * The row estimate of a run's keyset range (SourceConnector.estimateRows), the same way on every
 * engine: a bounded count first, then the engine's planner statistics when the count reached its
 * bound. Why this shape:
 *
 * - A count bounded by `LIMIT n`, in the keyset order the reads use, walks at most n entries of
 *   the (filter, key) index the reads walk anyway (measured, 100,000 entries of 300,000: 14 ms on
 *   PostgreSQL, 25 ms on MariaDB, 8 ms on SQLite), so it is exact for the common run (up to n new
 *   rows) and never a full count of a large table.
 * - Past the bound, a whole-table figure (pg_class.reltuples, information_schema TABLE_ROWS) would
 *   be wrong for every run but the first: it counts the rows before the watermark too. The
 *   planner's estimate for the same range (EXPLAIN, nothing executed) is about this run's rows:
 *   PostgreSQL from its histograms (beyond their last bucket it probes the index for the actual
 *   extreme), MySQL/MariaDB from index dives. It is never taken below the bound, since the count
 *   saw that many rows.
 * - SQLite keeps no statistics unless ANALYZE was run, and those are whole-table: it reports the
 *   bound as a lower estimate (`at_least`); core/progress.ts drops a total that rows done pass.
 */
import { AppError } from '../core/errors.js';
import type { RowEstimate, RowEstimateRequest } from './port.js';
import { SourceQueryCancelled } from './port.js';
import { type KeysetDialect, positionBound, type ResolvedTable, SOURCE_ALIAS } from './shared.js';

/** The range's FROM and WHERE, as the keyset reads select it (shared.ts buildKeysetQuery). */
function rangeScan<Extra>(d: KeysetDialect<Extra>, table: ResolvedTable<Extra>, req: RowEstimateRequest, params: unknown[]): string {
  const f = `${SOURCE_ALIAS}.${d.quote(req.filterColumn)}`;
  const where = [`${f} IS NOT NULL`];
  if (req.after !== null) where.push(...positionBound(d, table, req.filterColumn, req.keyColumns, '>', req.after, params));
  if (req.until !== null) where.push(...positionBound(d, table, req.filterColumn, req.keyColumns, '<=', req.until, params));
  return `FROM ${d.table(table.info)} AS ${SOURCE_ALIAS} WHERE ${where.join(' AND ')}`;
}

/**
 * `SELECT count(*) FROM (SELECT 1 FROM t WHERE <range> ORDER BY f, k LIMIT n + 1)`: the ORDER BY
 * keeps the planner on the (filter, key) index range, so it stops after n entries instead of
 * scanning the rows before the watermark first.
 */
export function buildBoundedCountQuery<Extra>(
  d: KeysetDialect<Extra>,
  table: ResolvedTable<Extra>,
  req: RowEstimateRequest,
): { sql: string; params: unknown[] } {
  if (!Number.isSafeInteger(req.limit) || req.limit < 1) {
    throw new AppError('INVALID_REQUEST', `estimate limit must be a positive integer, got ${String(req.limit)}`);
  }
  const params: unknown[] = [];
  const order = [req.filterColumn, ...req.keyColumns].map((c) => `${SOURCE_ALIAS}.${d.quote(c)}`);
  const scan = rangeScan(d, table, req, params);
  // One row past the limit tells "exactly the limit" from "more".
  const sql = `SELECT count(*) FROM (SELECT 1 AS one ${scan} ORDER BY ${order.join(', ')} ${d.limit(req.limit + 1, params)}) kbsync_e`;
  return { sql, params };
}

/** `SELECT 1 FROM t WHERE <range>`: the statement whose plan (EXPLAIN) estimates the range's rows. */
export function buildRangeQuery<Extra>(
  d: KeysetDialect<Extra>,
  table: ResolvedTable<Extra>,
  req: RowEstimateRequest,
): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  return { sql: `SELECT 1 AS one ${rangeScan(d, table, req, params)}`, params };
}

/**
 * The estimate from a bounded count (buildBoundedCountQuery: at most limit + 1) and, when it
 * passed the limit, the engine's statistics (null: the engine has none). Statistics that fail or
 * make no sense give the count as a lower estimate; a cancelled query still cancels.
 */
export async function estimateFrom(
  limit: number,
  count: () => Promise<number>,
  statistics: (() => Promise<number | null>) | null,
): Promise<RowEstimate> {
  const counted = await count();
  if (counted <= limit) return { rows: counted, basis: 'counted' };
  let planned: number | null = null;
  if (statistics !== null) {
    try {
      planned = await statistics();
    } catch (err) {
      if (err instanceof SourceQueryCancelled) throw err;
      planned = null;
    }
  }
  if (planned === null || !Number.isFinite(planned) || planned < 0) return { rows: counted, basis: 'at_least' };
  return { rows: Math.max(counted, Math.round(planned)), basis: 'statistics' };
}
