/**
 * How one vector search runs, and its SQL. Every plan answers the K nearest chunks by cosine
 * among those the filter admits, with the exact cosine as the score; they differ in cost, and the
 * index plans in recall (a true neighbour missing from the candidates; measured on real
 * embeddings in bench/vector-index.ts).
 *
 * - `exact`: vec0's exact KNN over the collection's float vectors, a filter applied during the
 *   scan as `rowid IN (matching chunks)`. Cost grows with the collection (62.8 ms p50 at 100k
 *   chunks of 512 dimensions, ~0.6 s at 1M), whatever the filter.
 * - `index`: a Hamming KNN over the sign bits (kb_vbit_<n>, 64 bytes a vector at 512 dimensions)
 *   picks `candidatesFor(K)` chunks, whose float vectors (kb_vflt_<n>, by rowid) are ranked by
 *   the exact cosine.
 * - `index-postfilter`: with a filter, the same unfiltered candidates, the filter applied to them.
 *   Taken only when K of the nearest quarter of the candidates pass (`postFilterHolds`): then the
 *   K nearest matching chunks are among the candidates as surely as the K nearest are without a
 *   filter. Else the answer is discarded, never returned short: a filter that admits few chunks,
 *   or one that excludes the query's own neighbourhood (a category filter on a query about
 *   another category), whose matching neighbours are far, where sign bits rank poorly.
 * - `filtered-exact`: a filter admitting at most `filteredExactMax` chunks has their ids listed
 *   (one pass over the documents) and their vectors read by rowid and ranked exactly: exact, and
 *   cheaper than either scan.
 * - `index-filtered`: the Hamming KNN with the filter in its scan (`rowid IN (matching chunks)`):
 *   every candidate matches, so K come back whenever K chunks match.
 *
 * The Hamming KNN's cost is a scan plus keeping the best `k` of every 1024-vector chunk (a
 * selection costing k passes over the chunk): at 100k chunks of real embeddings ~3.6 ms for k = 1,
 * 12 ms for k = 100 (measured). A `distance <= radius` bound lets vec0 drop far vectors before that
 * selection; the radii come from recent searches of the collection (HammingRadii): when fewer than
 * k candidates fall within one the search runs again with the next, finally without a bound, so
 * the candidates are always the k nearest, and the answer does not depend on the radii.
 */
import type { SqlFragment } from './metadata-filter.js';
import type { CollectionTables } from './vector-schema.js';

export type VectorPlan = 'exact' | 'index' | 'index-postfilter' | 'filtered-exact' | 'index-filtered';

/**
 * Collections with fewer chunks than this are searched exactly (KBSYNC_VECTOR_INDEX_MIN_CHUNKS):
 * below it the exact scan takes ~12 ms or less at 512 dimensions and is exact.
 */
export const DEFAULT_INDEX_MIN_CHUNKS = 20_000;

/** sqlite-vec refuses a KNN `k` above 4096. */
const MAX_KNN_K = 4096;

/** Above this many candidates (K > 100) the exact scan is about as cheap, and exact. */
export const MAX_CANDIDATES = 1000;

/**
 * A filter matching at most this many chunks is ranked exactly by rowid (`filtered-exact`):
 * reading that many vectors by rowid costs about what the Hamming scan of 100k chunks does.
 */
export const FILTERED_EXACT_MAX = 3000;

/**
 * The post-filtered candidates are trusted when K of the nearest 1/POST_FILTER_NEAR of them (by
 * exact distance) pass: the K-th nearest matching chunk is then within the region the candidates
 * cover densely (with K = 10: among the nearest 25 of 100).
 */
export const POST_FILTER_NEAR = 4;

/**
 * Candidates rescored for a top-K search: enough for recall@K >= 0.95 on real embeddings
 * (bench/vector-index.ts measures K = 10 and 40), never fewer than 100.
 */
export function candidatesFor(topK: number): number {
  return Math.max(100, 10 * topK);
}

export interface PlanInput {
  chunks: number;
  topK: number;
  quantized: boolean;
  minChunks: number;
}

/** Whether the index answers this search at all (else `exact`). */
export function indexApplies(input: PlanInput): boolean {
  const candidates = candidatesFor(input.topK);
  return (
    input.quantized &&
    input.chunks >= input.minChunks &&
    candidates <= MAX_CANDIDATES &&
    candidates <= MAX_KNN_K
  );
}

/**
 * Whether post-filtered candidates answer a filtered search: K of the nearest candidates passed
 * (`passingNear`), or the candidates were every chunk of the collection (then it is exact).
 */
export function postFilterHolds(passingNear: number, candidatesFound: number, topK: number): boolean {
  return candidatesFound < candidatesFor(topK) || passingNear >= topK;
}

export interface PlannedSql {
  sql: string;
  params: unknown[];
}

/**
 * Chunk ids the filter admits. CROSS JOIN makes documents the outer loop: each is filtered once,
 * then the chunks of the few that match are looked up (left to itself the planner walks every
 * chunk and looks up its document: 1.7x slower at 100k, measured).
 */
function matchingChunks(filter: SqlFragment): string {
  return `SELECT c.id FROM kb_documents d CROSS JOIN kb_chunks c
            ON c.collection_id = d.collection_id AND c.doc_id = d.doc_id
          WHERE d.collection_id = ? AND ${filter.sql}`;
}

const HIT_COLUMNS = 'c.doc_id, c.chunk_index, c.text, d.metadata, 1 - ranked.distance AS score';

/** The hits' rows, nearest first, from a `ranked(id, distance)` CTE defined in `ctes`. */
function hitsOf(ctes: string, extraColumns = ''): string {
  return `WITH ${ctes}
    SELECT ${HIT_COLUMNS}${extraColumns}
    FROM ranked
    JOIN kb_chunks c ON c.id = ranked.id
    JOIN kb_documents d ON d.collection_id = c.collection_id AND d.doc_id = c.doc_id
    ORDER BY ranked.distance, c.id`;
}

export function exactSql(
  t: CollectionTables,
  collectionId: number,
  query: Buffer,
  topK: number,
  filter: SqlFragment | undefined,
): PlannedSql {
  const prefilter = filter === undefined ? '' : `AND rowid IN (${matchingChunks(filter)})`;
  return {
    sql: hitsOf(
      `ranked AS (SELECT rowid AS id, distance FROM ${t.vectors} WHERE embedding MATCH ? AND k = ? ${prefilter})`,
    ),
    params: [query, topK, ...(filter === undefined ? [] : [collectionId, ...filter.params])],
  };
}

/**
 * `index`, `index-postfilter` and `index-filtered`. Each row also carries `found` (candidates the
 * Hamming KNN returned) and `radius` (the largest Hamming distance among them), for the caller's
 * checks: a bounded scan that found fewer than k candidates is run again unbounded.
 */
export function indexSql(
  t: CollectionTables,
  collectionId: number,
  query: Buffer,
  topK: number,
  options: { filter?: SqlFragment; filterIn: 'none' | 'scan' | 'candidates'; radius?: number },
): PlannedSql {
  const { filter, filterIn } = options;
  const k = candidatesFor(topK);
  const params: unknown[] = [];
  let bound = '';
  if (options.radius !== undefined) bound = 'AND distance <= ?';
  let prefilter = '';
  if (filterIn === 'scan' && filter !== undefined) prefilter = `AND rowid IN (${matchingChunks(filter)})`;
  // The candidates' float vectors are read by rowid from the plain table and ranked by the same
  // cosine distance vec0 computes, so a chunk found both ways has the same score. CROSS JOIN
  // keeps the candidates the outer loop (never a scan of the floats probing vec0).
  const candidates = `candidate AS MATERIALIZED (
      SELECT rowid, distance FROM ${t.bits}
      WHERE embedding MATCH vec_quantize_binary(vec_f32(?)) AND k = ? ${bound} ${prefilter})`;
  const stats = `, (SELECT count(*) FROM candidate) AS found, (SELECT max(distance) FROM candidate) AS radius`;
  if (filterIn === 'candidates' && filter !== undefined) {
    // The filter evaluated on the candidates' documents: the K nearest that pass come first, and
    // `passing` counts those that pass among the nearest k / POST_FILTER_NEAR candidates. Rows
    // that do not pass still come (after them) so the stats arrive even when none passes; the
    // caller drops them.
    const ranked = `ranked AS (
      SELECT id, distance, passes, sum(CASE WHEN nearness <= ? THEN passes ELSE 0 END) OVER () AS passing FROM (
        SELECT f.id, vec_distance_cosine(f.embedding, vec_f32(?)) AS distance,
               CASE WHEN ${filter.sql} THEN 1 ELSE 0 END AS passes,
               row_number() OVER (ORDER BY vec_distance_cosine(f.embedding, vec_f32(?)), f.id) AS nearness
        FROM candidate CROSS JOIN kb_chunks c ON c.id = candidate.rowid
          CROSS JOIN kb_documents d ON d.collection_id = c.collection_id AND d.doc_id = c.doc_id
          CROSS JOIN ${t.floats} f ON f.id = candidate.rowid)
      ORDER BY passes DESC, distance, id LIMIT ?)`;
    return {
      sql: hitsOf(
        `${candidates}, ${ranked}`,
        `${stats}, ranked.passing AS passing, ranked.passes AS passes`,
      ).replace('ORDER BY ranked.distance, c.id', 'ORDER BY ranked.passes DESC, ranked.distance, c.id'),
      params: [
        query,
        k,
        ...(options.radius === undefined ? [] : [options.radius]),
        Math.ceil(k / POST_FILTER_NEAR),
        query,
        ...filter.params,
        query,
        topK,
      ],
    };
  }
  const ranked = `ranked AS (
      SELECT f.id, vec_distance_cosine(f.embedding, vec_f32(?)) AS distance
      FROM candidate CROSS JOIN ${t.floats} f ON f.id = candidate.rowid
      ORDER BY distance, f.id LIMIT ?)`;
  params.push(query, k);
  if (options.radius !== undefined) params.push(options.radius);
  if (prefilter !== '' && filter !== undefined) params.push(collectionId, ...filter.params);
  params.push(query, topK);
  return { sql: hitsOf(`${candidates}, ${ranked}`, stats), params };
}

/** Ids of the chunks a filter admits, at most `cap` of them (rows: {id}). */
export function matchingIdsSql(collectionId: number, filter: SqlFragment, cap: number): PlannedSql {
  return { sql: `${matchingChunks(filter)} LIMIT ?`, params: [collectionId, ...filter.params, cap] };
}

/**
 * `filtered-exact`: the listed chunks ranked exactly, their vectors read by rowid. The filter is
 * applied again to them: a document changed since the ids were listed must not slip through.
 */
export function filteredExactSql(
  t: CollectionTables,
  ids: number[],
  query: Buffer,
  topK: number,
  filter: SqlFragment,
): PlannedSql {
  return {
    sql: hitsOf(`ranked AS (
      SELECT f.id, vec_distance_cosine(f.embedding, vec_f32(?)) AS distance
      FROM json_each(?) AS listed CROSS JOIN kb_chunks c ON c.id = listed.value
        CROSS JOIN kb_documents d ON d.collection_id = c.collection_id AND d.doc_id = c.doc_id
        CROSS JOIN ${t.floats} f ON f.id = c.id
      WHERE ${filter.sql}
      ORDER BY distance, f.id LIMIT ?)`),
    params: [query, JSON.stringify(ids), ...filter.params, topK],
  };
}

/**
 * Hamming radii of recent searches, per collection and candidate count. How far a query's k-th
 * candidate lies varies a lot from query to query on real embeddings (at 100k chunks, k = 100:
 * from ~73 to ~164 bits, p50 ~111; bench/vector-index.ts), and a bound cuts the scan's cost only
 * when it is tight (a bound of 111 bits: 5.4 ms, of 164: 13.3 ms, as unbounded). So a search tries
 * the bound most recent queries needed (the upper quartile of the last few radii), then, when that
 * held fewer than k, the largest of them, then no bound: the cost of the common case falls to about
 * a third, at the price of a second scan for the queries beyond the quartile.
 * Kept in memory only; a new process learns it again from its first searches.
 */
export class HammingRadii {
  static readonly WINDOW = 16;
  /** The first bound: this quantile of the recent radii. */
  static readonly FIRST_QUANTILE = 0.75;
  readonly #recent = new Map<string, number[]>();

  /** The bounds to try in turn, tightest first (empty: unbounded at once). */
  bounds(collectionId: number, k: number): number[] {
    const seen = this.#recent.get(`${collectionId}:${k}`);
    // Too few observations to bound safely: unbounded.
    if (seen === undefined || seen.length < 4) return [];
    const sorted = [...seen].sort((a, b) => a - b);
    const first = sorted[Math.ceil(HammingRadii.FIRST_QUANTILE * sorted.length) - 1]!;
    const last = sorted[sorted.length - 1]!;
    return first < last ? [first, last] : [last];
  }

  record(collectionId: number, k: number, radius: number): void {
    const key = `${collectionId}:${k}`;
    const seen = this.#recent.get(key) ?? [];
    seen.push(radius);
    if (seen.length > HammingRadii.WINDOW) seen.shift();
    this.#recent.set(key, seen);
    // Collections come and go; a bounded map keeps a long-lived process small.
    if (this.#recent.size > 1024) this.#recent.delete(this.#recent.keys().next().value!);
  }

  forget(collectionId: number): void {
    for (const key of this.#recent.keys()) if (key.startsWith(`${collectionId}:`)) this.#recent.delete(key);
  }
}
