/**
 * Runs one vector search of the SQLite store: chooses the plan (vector-search-plan.ts, which also
 * explains each plan and its limits), runs its statements through the store's runner (a reader
 * thread, or the main connection), falls back when a plan cannot answer, and remembers the
 * Hamming radii that bound later scans. Validation and the answer's shape stay in vector-store.ts.
 */
import type { SqlFragment } from './metadata-filter.js';
import type { CollectionTables } from './vector-schema.js';
import { canQuantize } from './vector-schema.js';
import {
  candidatesFor,
  DEFAULT_INDEX_MIN_CHUNKS,
  exactSql,
  FILTERED_EXACT_MAX,
  filteredExactSql,
  HammingRadii,
  indexApplies,
  indexSql,
  matchingIdsSql,
  type PlannedSql,
  postFilterHolds,
  type VectorPlan,
} from './vector-search-plan.js';

export interface SqliteVectorStoreOptions {
  /**
   * Collections with at least this many chunks answer vector searches from the binary-quantized
   * candidate index (0: always; Infinity: never); smaller ones scan exactly. The index is kept in
   * step with every write either way, so changing this needs no rebuild.
   */
  indexMinChunks?: number;
  /**
   * With the index in use, a filter admitting at most this many chunks is ranked exactly by rowid
   * (default FILTERED_EXACT_MAX); more use the index with the filter in its scan.
   */
  filteredExactMax?: number;
  /**
   * Tests and the benchmark: every filtered search (with the index in use) takes this plan,
   * skipping the post-filter attempt and the count (both plans are safe for any filter).
   */
  forceFilterPlan?: 'filtered-exact' | 'index-filtered';
}

/** A hit as the search SQL returns it (vector-search-plan.ts hitsOf). */
export interface HitRow {
  doc_id: string;
  chunk_index: number;
  text: string;
  metadata: string;
  score: number | null;
}

interface IndexRow extends HitRow {
  /** Candidates the Hamming KNN returned, and the largest Hamming distance among them. */
  found: number;
  radius: number | null;
  /** Post-filtered candidates only: how many of the nearest pass the filter, and whether this row does. */
  passing?: number;
  passes?: number;
}

export interface SearchCollection {
  id: number;
  dimensions: number;
  chunks: number;
  tables: CollectionTables;
}

/** Runs one SELECT (on a reader thread or the main connection) and answers its rows. */
export type RunSql = <T>(sql: string, params: unknown[]) => Promise<T[]>;

export class VectorSearch {
  readonly #indexMinChunks: number;
  readonly #filteredExactMax: number;
  readonly #forceFilterPlan: SqliteVectorStoreOptions['forceFilterPlan'];
  readonly #radii = new HammingRadii();
  readonly planCounts: Record<VectorPlan, number> = {
    exact: 0,
    index: 0,
    'index-postfilter': 0,
    'filtered-exact': 0,
    'index-filtered': 0,
  };
  /** Searches run again without a bound (every bound held fewer than k candidates). */
  unboundedReruns = 0;
  /** Searches run again with a wider bound (the first held fewer than k candidates). */
  widenedBounds = 0;

  constructor(options: SqliteVectorStoreOptions = {}) {
    const minChunks = options.indexMinChunks ?? DEFAULT_INDEX_MIN_CHUNKS;
    if (!(minChunks >= 0)) throw new RangeError(`indexMinChunks must be 0 or more, got ${minChunks}`);
    this.#indexMinChunks = minChunks;
    this.#filteredExactMax = options.filteredExactMax ?? FILTERED_EXACT_MAX;
    this.#forceFilterPlan = options.forceFilterPlan;
  }

  forget(collectionId: number): void {
    this.#radii.forget(collectionId);
  }

  /** The K nearest chunks the filter admits, nearest first (`query`: the float32 bytes). */
  async search(
    c: SearchCollection,
    query: Buffer,
    topK: number,
    filter: SqlFragment | undefined,
    run: RunSql,
  ): Promise<HitRow[]> {
    const base = {
      chunks: c.chunks,
      topK,
      quantized: canQuantize(c.dimensions),
      minChunks: this.#indexMinChunks,
    };
    if (!indexApplies(base))
      return this.#answer('exact', await run(...sqlOf(exactSql(c.tables, c.id, query, topK, filter))));
    if (filter === undefined)
      return this.#answer('index', await this.#indexSearch(c, query, topK, { filterIn: 'none' }, run));

    if (this.#forceFilterPlan === undefined) {
      // A broad filter passes most of the nearest candidates: answered as cheaply as no filter.
      // Else (postFilterHolds) discarded, and the filter is applied before ranking.
      const rows = await this.#indexSearch(c, query, topK, { filter, filterIn: 'candidates' }, run);
      const [first] = rows;
      if (first !== undefined && postFilterHolds(first.passing ?? 0, first.found, topK)) {
        return this.#answer(
          'index-postfilter',
          rows.filter((r) => r.passes === 1),
        );
      }
    }
    if (this.#forceFilterPlan !== 'index-filtered') {
      const max =
        this.#forceFilterPlan === 'filtered-exact' ? Number.MAX_SAFE_INTEGER - 1 : this.#filteredExactMax;
      // One pass over the documents, stopping after max + 1 matches: a broad filter stops early.
      const listing = matchingIdsSql(c.id, filter, max + 1);
      const ids = (await run<{ id: number }>(listing.sql, listing.params)).map((r) => r.id);
      if (ids.length <= max) {
        return this.#answer(
          'filtered-exact',
          await run(...sqlOf(filteredExactSql(c.tables, ids, query, topK, filter))),
        );
      }
    }
    return this.#answer(
      'index-filtered',
      await this.#indexSearch(c, query, topK, { filter, filterIn: 'scan' }, run),
    );
  }

  #answer<T extends HitRow>(plan: VectorPlan, rows: T[]): T[] {
    this.planCounts[plan]++;
    return rows;
  }

  /**
   * A Hamming KNN (bounded by the collection's recent radii when there are some) and the exact
   * rescoring; run again with a wider bound, then unbounded, while a bound held fewer than the
   * candidates wanted, so the candidates are always the nearest by Hamming distance.
   */
  async #indexSearch(
    c: SearchCollection,
    query: Buffer,
    topK: number,
    options: { filter?: SqlFragment; filterIn: 'none' | 'scan' | 'candidates' },
    run: RunSql,
  ): Promise<IndexRow[]> {
    const k = candidatesFor(topK);
    // With the filter in the scan the distances are those of the matching chunks only: no bound.
    const bounds = options.filterIn === 'scan' || c.chunks <= k ? [] : this.#radii.bounds(c.id, k);
    let rows: IndexRow[] | undefined;
    for (const [i, radius] of bounds.entries()) {
      if (i > 0) this.widenedBounds++;
      rows = await run<IndexRow>(...sqlOf(indexSql(c.tables, c.id, query, topK, { ...options, radius })));
      // Fewer than k within the bound: the k nearest are not all there.
      if ((rows[0]?.found ?? 0) < k) rows = undefined;
      else break;
    }
    if (rows === undefined) {
      if (bounds.length > 0) this.unboundedReruns++;
      rows = await run<IndexRow>(...sqlOf(indexSql(c.tables, c.id, query, topK, options)));
    }
    const first = rows[0];
    if (options.filterIn !== 'scan' && first !== undefined && first.found === k && first.radius !== null) {
      this.#radii.record(c.id, k, first.radius);
    }
    return rows;
  }
}

function sqlOf(planned: PlannedSql): [string, unknown[]] {
  return [planned.sql, planned.params];
}
