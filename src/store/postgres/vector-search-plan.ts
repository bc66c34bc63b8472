/**
 * How a vector search runs on PostgreSQL. Pure: the store (vector-store.ts) asks for a plan and
 * its SQL and runs them in one transaction.
 *
 * - exact: ranks every admitted chunk by exact cosine, the HNSW index switched off for the
 *   statement (enable_indexscan; a GIN bitmap scan still serves an equality filter). For
 *   collections under `indexMinChunks`, where it is cheap and its recall perfect, for dimensions
 *   no HNSW index takes, and for a collection without a valid HNSW index: it gets one only past
 *   `indexMinChunks`, built after its writes pause (vector-index.ts), and a crashed build leaves an
 *   INVALID one until it is rebuilt. The index plans below would then scan and sort all the same,
 *   under settings meant for an index.
 * - index: HNSW (cosine), `hnsw.ef_search` = max(topK, efSearch) capped at pgvector's 1000, with
 *   `hnsw.iterative_scan = relaxed_order` so a top K above ef_search keeps the scan walking the
 *   graph. Relaxed order may return neighbours slightly out of order: they are re-sorted by their
 *   exact cosine, which also rescores a halfvec index's half-precision distances.
 * - a filter, on a collection the index serves: first an estimate of how many chunks it admits,
 *   counted on a sample of the table's pages (TABLESAMPLE SYSTEM, about SAMPLE_ROWS rows, the same
 *   pages every time) — cheap, where counting the matches themselves meant scanning the wide
 *   chunk rows until enough were found (0.1 s for a 10% filter at 100k chunks, measured). When at
 *   most `filteredExactMax` are estimated (8 times as many for an equality the GIN index on
 *   metadata serves; a range filter scans the table), the admitted chunks are ranked exactly
 *   (filtered-exact):
 *   HNSW with a selective filter is slow and poor, its iterative scan visiting ~K / selectivity
 *   chunks — on 100k synthetic clustered vectors a 1% equality filter had recall@10 0.74 in
 *   141 ms against 1.0 in 13 ms exactly (bench/pgvector.ts has the real-vector figures). A
 *   broader filter goes to:
 * - index-filtered: HNSW with the filter applied during the iterative scan. The scan gives up after
 *   `hnsw.max_scan_tuples` (pgvector's default, 20,000), so fewer than K rows means "maybe short",
 *   and the search is answered again exactly (filtered-exact).
 */
import { indexedDistanceSql, indexKind } from './vector-schema.js';

export type VectorPlan = 'exact' | 'index' | 'index-filtered' | 'filtered-exact';

/** Below this many chunks an exact scan is fast and perfect; measured in bench/pgvector.ts. */
export const DEFAULT_INDEX_MIN_CHUNKS = 10_000;
/**
 * Candidates the HNSW search keeps (hnsw.ef_search; pgvector's default is 40). At 100k real
 * local-model embeddings recall@10 was 0.915 at 40, 0.950 at 100, 0.964 at 200 (bench/pgvector.ts).
 */
export const DEFAULT_EF_SEARCH = 200;
/** pgvector's upper bound for hnsw.ef_search. */
export const MAX_EF_SEARCH = 1000;
/** A filter admitting at most this many chunks is answered exactly (the SQLite adapter's bound too). */
export const FILTERED_EXACT_MAX = 3000;
/**
 * For a filter the GIN index serves (an equality), the bound is this many times higher: the index
 * finds the admitted chunks without reading the others, so ranking them all stays cheap — the
 * 10,000 chunks of a 1% equality at 1M took 23 ms, recall 1 (bench/pgvector.ts), where a range
 * filter of that size would scan the table.
 */
export const INDEXED_FILTER_FACTOR = 8;

/** The most chunks a filter may admit and still be answered exactly. */
export function exactFilterBound(filteredExactMax: number, indexed: boolean): number {
  return indexed ? filteredExactMax * INDEXED_FILTER_FACTOR : filteredExactMax;
}

export interface PlanInput {
  chunks: number;
  dimensions: number;
  filtered: boolean;
  indexMinChunks: number;
  /** Whether the collection's HNSW index exists and is valid (collectionLookupSql). */
  indexed: boolean;
}

/** The first plan: exact, index, or (with a filter) a sample that decides between the two. */
export function choosePlan(input: PlanInput): 'exact' | 'index' | 'sample' {
  if (!input.indexed || indexKind(input.dimensions) === 'none' || input.chunks < input.indexMinChunks) return 'exact';
  return input.filtered ? 'sample' : 'index';
}

/** The statement settings of a plan (SET LOCAL, inside the search's transaction). */
export function planSettings(plan: VectorPlan | 'sample', topK: number, efSearch: number): string {
  if (plan !== 'index' && plan !== 'index-filtered') {
    return 'SET LOCAL enable_indexscan = off; SET LOCAL enable_seqscan = on; SET LOCAL enable_bitmapscan = on';
  }
  const ef = Math.min(MAX_EF_SEARCH, Math.max(topK, efSearch));
  // The planner would pick a sequential scan and sort for a small table: the plan is chosen here.
  return [
    `SET LOCAL hnsw.ef_search = ${ef}`,
    'SET LOCAL hnsw.iterative_scan = relaxed_order',
    'SET LOCAL enable_seqscan = off',
    'SET LOCAL enable_bitmapscan = off',
    'SET LOCAL enable_indexscan = on',
  ].join('; ');
}

const COLUMNS = 'c.id, c.doc_id, c.chunk_index, c.text, c.metadata';

/**
 * The search statement of an exact or index plan. `vectorParam` is the query vector's placeholder,
 * `limitParam` top K's, `filterSql` a boolean over `c.metadata`. Rows: doc_id, chunk_index, text,
 * metadata, score (exact cosine), best first.
 */
export function planSql(
  plan: VectorPlan,
  chunks: string,
  dimensions: number,
  vectorParam: string,
  limitParam: string,
  filterSql: string,
): string {
  const exactDistance = `c.embedding <=> ${vectorParam}::vector(${dimensions})`;
  // The distance is computed once per row, in the inner select, and sorted on as a column.
  const inner =
    plan === 'exact' || plan === 'filtered-exact'
      ? `SELECT ${COLUMNS}, ${exactDistance} AS distance FROM ${chunks} c WHERE ${filterSql}
         ORDER BY distance, c.id LIMIT ${limitParam}`
      : `SELECT ${COLUMNS}, ${exactDistance} AS distance FROM ${chunks} c WHERE ${filterSql}
         ORDER BY ${indexedDistanceSql(dimensions, vectorParam)} LIMIT ${limitParam}`;
  return `SELECT r.doc_id, r.chunk_index, r.text, r.metadata, 1 - r.distance AS score
    FROM (${inner}) r ORDER BY r.distance, r.id`;
}

/** Rows the selectivity estimate reads, about: enough to see a 0.3% filter ~10 times. */
export const SAMPLE_ROWS = 3000;

/** The share of pages (percent) to sample from a collection of `chunks` chunks. */
export function samplePercent(chunks: number): number {
  return Math.min(100, (100 * SAMPLE_ROWS) / Math.max(1, chunks));
}

/**
 * The estimate's statement: rows sampled and rows the filter admits among them, over the pages
 * TABLESAMPLE SYSTEM picks for `percentParam` (REPEATABLE: the same pages each time, so the same
 * filter gets the same plan until the table changes).
 */
export function filterEstimateSql(chunks: string, percentParam: string, filterSql: string): string {
  return `SELECT count(*) AS seen, count(*) FILTER (WHERE ${filterSql}) AS admitted
    FROM ${chunks} c TABLESAMPLE SYSTEM (${percentParam}::float4) REPEATABLE (0)`;
}

/** The estimated number of admitted chunks, or null when the sample saw no row. */
export function estimateAdmitted(seen: number, admitted: number, chunks: number): number | null {
  return seen === 0 ? null : (admitted / seen) * chunks;
}

/**
 * Whether an index plan's answer may be short: fewer than K rows while more chunks may qualify (all
 * chunks without a filter; with one, any number could match).
 */
export function fallbackToExact(plan: VectorPlan, rows: number, topK: number, chunks: number): boolean {
  if (plan === 'index') return rows < Math.min(topK, chunks);
  return plan === 'index-filtered' && rows < topK;
}
