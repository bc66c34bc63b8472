/**
 * VectorStore on PostgreSQL: pgvector (HNSW, cosine) for vectors, a generated tsvector with a GIN
 * index and BM25 for keywords, JSONB for metadata, in the kbsync schema. Table layout and its
 * reasons: vector-schema.ts; search plans: vector-search-plan.ts; keyword ranking:
 * vector-keyword-query.ts. Any number of kbsync processes may share it.
 *
 * Concurrency. A write transaction first takes FOR KEY SHARE on its collection's registry row:
 * dropCollection (which deletes that row) waits for writes in flight, and a write never lands in a
 * table being dropped. Writers of one collection do not block each other until the last statement,
 * which adds their chunk and word counts to the registry row (FOR NO KEY UPDATE, which KEY SHARE
 * does not conflict with, so no lock upgrade can deadlock). Documents are written in id order, so
 * two batches touching the same documents lock them in the same order; a deadlock or serialization
 * failure that happens anyway (a delete racing an upsert) is retried.
 *
 * Rebuilds (vector-shadow.ts): a write also locks its collection's shadow (KEY SHARE, after the
 * collection) and writes it in the same transaction; what links, unlinks or retires takes the
 * collection's row FOR UPDATE, which waits for the writes in flight and makes later ones see the
 * change (vector-collections.ts). The HNSW index is built late, outside any write (vector-index.ts).
 */
import type pg from 'pg';
import { conflict, notFound } from '../../core/errors.js';
import type {
  CollectionState,
  DocumentInput,
  KeyHashBucket,
  Metadata,
  MetadataFilter,
  MetadataUpdate,
  SearchHit,
  ShadowDifferences,
  ShadowWrite,
  StoredDocument,
  VectorStore,
} from '../vector-port.js';
import { compileMetadataFilter, Params } from './metadata-filter.js';
import { applyMigrations } from './migrations.js';
import { inTransaction, openPostgres, type OpenOptions, type PostgresDatabase, sqlState } from './open.js';
import {
  checkDocument,
  checkEmbedding,
  checkKbId,
  checkPageLimit,
  checkTopK,
  isZero,
  pgText,
} from './vector-input.js';
import {
  documentIdsInKeyBuckets,
  documentsWithoutKeyHash,
  keyHashBuckets,
  setKeyHashes,
} from './vector-keys.js';
import { keywordPhrases, keywordSearchSql } from './vector-keyword-query.js';
import { type Collection, lockForWrite, lookupCollection, type RowLock } from './vector-collections.js';
import { readDocumentPage, readDocumentsById } from './vector-documents.js';
import {
  cancelIndexBuild,
  checkWorkMem,
  DEFAULT_INDEX_MAX_DEFER_MS,
  DEFAULT_INDEX_QUIET_MS,
  DEFAULT_MAINTENANCE_WORK_MEM,
  VectorIndexBuilder,
} from './vector-index.js';
import { checkDimensions, createCollectionSql, dropCollectionSql, vectorParam } from './vector-schema.js';
import * as shadows from './vector-shadow.js';
import {
  choosePlan,
  DEFAULT_EF_SEARCH,
  DEFAULT_INDEX_MIN_CHUNKS,
  FILTERED_EXACT_MAX,
  fallbackToExact,
  estimateAdmitted,
  exactFilterBound,
  filterEstimateSql,
  MAX_EF_SEARCH,
  planSettings,
  planSql,
  samplePercent,
  type VectorPlan,
} from './vector-search-plan.js';
import { addCounts, type Queryable, removeDocuments, storableIds, writeDocuments } from './vector-writes.js';

export { MAX_PAGE_LIMIT, MAX_TOP_K } from './vector-input.js';

export interface PostgresVectorStoreOptions {
  /**
   * Collections with at least this many chunks get an HNSW index (built once their writes pause,
   * vector-index.ts) and search it; smaller ones scan exactly (0: the index is made with the tables
   * and answers every search; Infinity: never an index).
   */
  indexMinChunks?: number;
  /** How long a collection's writes must pause before its index is built (default 5 s). */
  indexQuietMs?: number;
  /** The longest a due index build waits for writes to pause (default 10 minutes). */
  indexMaxDeferMs?: number;
  /** maintenance_work_mem of an index build (default 1200MB). */
  indexBuildMemory?: string;
  /** hnsw.ef_search of an index search (at least top K, at most 1000). */
  efSearch?: number;
  /**
   * With the index in use, a filter admitting at most this many chunks is answered exactly
   * (default FILTERED_EXACT_MAX); more use the index with the filter in its scan. Tests and the
   * benchmark force one plan or the other with it.
   */
  filteredExactMax?: number;
  /** Close the database with the store (the factory's store owns its pool). */
  ownsDb?: boolean;
}

interface HitRow {
  doc_id: string;
  chunk_index: number;
  text: string;
  metadata: Metadata;
  score: number | null;
}

interface DocumentRow {
  doc_id: string;
  content: string;
  content_hash: string;
  metadata: Metadata;
  chunk_count: number;
  updated_at: Date;
}

/** Deadlock, serialization failure: the transaction is safe to run again. */
const RETRYABLE = new Set(['40P01', '40001']);
const WRITE_ATTEMPTS = 3;

/**
 * The scale-out vector store on `url`, schema `schema`: opens a pool, applies the migrations
 * (under the advisory lock) and answers a store that closes the pool with `close()`.
 */
export async function openPostgresVectorStore(
  url: string,
  schema?: string,
  options: Omit<PostgresVectorStoreOptions, 'ownsDb'> & OpenOptions = {},
): Promise<PostgresVectorStore> {
  const db = openPostgres(url, schema, options);
  let store: PostgresVectorStore | null = null;
  try {
    await applyMigrations(db);
    await checkVectorType(db);
    store = new PostgresVectorStore(db, { ...options, ownsDb: true });
    // Indexes a stopped process left unbuilt, or a crashed build left INVALID.
    await store.indexes.resume();
  } catch (err) {
    await store?.indexes.close();
    await db.close();
    throw err;
  }
  return store;
}

/** pgvector's type must resolve on the store's search_path (the extension may live elsewhere). */
async function checkVectorType(db: PostgresDatabase): Promise<void> {
  const { rows } = await db.pool.query(
    `SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'`,
  );
  const where = rows[0]?.schema as string | undefined;
  if (where !== undefined && where !== 'public' && where !== db.schema) {
    throw new Error(
      `the pgvector extension is installed in schema '${where}', which kbsync's search_path (${db.schema}, public) does not include: run ALTER EXTENSION vector SET SCHEMA public`,
    );
  }
}

export class PostgresVectorStore implements VectorStore {
  readonly #db: PostgresDatabase;
  readonly #ownsDb: boolean;
  readonly #indexMinChunks: number;
  readonly #efSearch: number;
  readonly #filteredExactMax: number;
  /** The late HNSW builds of this store's collections (vector-index.ts). */
  readonly indexes: VectorIndexBuilder;
  /**
   * The plan that answered each vector search, by name, since this store was made (tests and the
   * benchmark read it); a fallback counts as filtered-exact only.
   */
  readonly planCounts: Record<VectorPlan, number> = {
    exact: 0,
    index: 0,
    'index-filtered': 0,
    'filtered-exact': 0,
  };

  /** The migrations must have been applied to `db` (applyMigrations); openPostgresVectorStore does. */
  constructor(db: PostgresDatabase, options: PostgresVectorStoreOptions = {}) {
    this.#db = db;
    this.#ownsDb = options.ownsDb ?? false;
    const minChunks = options.indexMinChunks ?? DEFAULT_INDEX_MIN_CHUNKS;
    if (!(minChunks >= 0)) throw new RangeError(`indexMinChunks must be 0 or more, got ${minChunks}`);
    this.#indexMinChunks = minChunks;
    const ef = options.efSearch ?? DEFAULT_EF_SEARCH;
    if (!Number.isSafeInteger(ef) || ef < 1 || ef > MAX_EF_SEARCH) {
      throw new RangeError(`efSearch must be an integer from 1 to ${MAX_EF_SEARCH}, got ${ef}`);
    }
    this.#efSearch = ef;
    const exactMax = options.filteredExactMax ?? FILTERED_EXACT_MAX;
    if (!Number.isSafeInteger(exactMax) || exactMax < 0) {
      throw new RangeError(`filteredExactMax must be a whole number, got ${exactMax}`);
    }
    this.#filteredExactMax = exactMax;
    const quietMs = options.indexQuietMs ?? DEFAULT_INDEX_QUIET_MS;
    const maxDeferMs = options.indexMaxDeferMs ?? DEFAULT_INDEX_MAX_DEFER_MS;
    for (const [name, v] of [['indexQuietMs', quietMs], ['indexMaxDeferMs', maxDeferMs]] as const) {
      if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be a whole number of ms, got ${v}`);
    }
    const memory = options.indexBuildMemory ?? DEFAULT_MAINTENANCE_WORK_MEM;
    checkWorkMem(memory);
    this.indexes = new VectorIndexBuilder(db, { minChunks, quietMs, maxDeferMs, maintenanceWorkMem: memory });
  }

  async close(): Promise<void> {
    await this.indexes.close();
    if (this.#ownsDb) await this.#db.close();
  }

  async createCollection(kbId: string, dimensions: number): Promise<void> {
    checkKbId(kbId);
    checkDimensions(dimensions);
    await this.#write(async (client) => {
      const inserted = await client.query(
        'INSERT INTO kb_collections (kb_id, dimensions) VALUES ($1, $2) ON CONFLICT (kb_id) DO NOTHING RETURNING id',
        [kbId, dimensions],
      );
      let id: number;
      if (inserted.rows.length > 0) {
        id = Number(inserted.rows[0].id);
      } else {
        const existing = await this.#lookup(client, kbId, 'FOR KEY SHARE');
        if (existing === null)
          throw conflict('Knowledge base is being dropped; try again', [`collection '${kbId}'`]);
        if (existing.dimensions !== dimensions) {
          throw conflict('Knowledge base already exists with other dimensions', [
            `collection '${kbId}' has ${existing.dimensions} dimensions, not ${dimensions}`,
          ]);
        }
        id = existing.id;
      }
      // IF NOT EXISTS: also repairs a collection whose tables were lost. The HNSW index comes
      // with the tables only when the store indexes from the first chunk (vector-index.ts).
      for (const sql of createCollectionSql(id, dimensions, this.#indexMinChunks <= 0)) await client.query(sql);
    });
  }

  async dropCollection(kbId: string): Promise<void> {
    checkKbId(kbId);
    await this.#write(async (client) => {
      const c = await this.#lookup(client, kbId, 'FOR UPDATE');
      if (c === null) return;
      const shadow = c.shadow === null ? null : await this.#lookup(client, c.shadow, 'FOR UPDATE');
      for (const target of shadow === null ? [c] : [c, shadow]) {
        await cancelIndexBuild(client, this.#db.schema, target.id);
        for (const sql of dropCollectionSql(target.id)) await client.query(sql);
        // The collection's row first: it references its shadow's.
        await client.query('DELETE FROM kb_collections WHERE id = $1', [target.id]);
      }
    });
  }

  async getContentHashes(kbId: string, ids: string[]): Promise<Map<string, string>> {
    const c = await this.#requireCollection(this.#db.pool, kbId);
    const hashes = new Map<string, string>();
    if (ids.length === 0) return hashes;
    const { rows } = await this.#read(kbId, () =>
      this.#db.pool.query(
        `SELECT doc_id, content_hash FROM ${c.tables.documents} WHERE doc_id = ANY ($1::text[])`,
        [storableIds(ids)],
      ),
    );
    for (const row of rows) hashes.set(row.doc_id, row.content_hash);
    return hashes;
  }

  async upsertDocuments(
    kbId: string,
    docs: DocumentInput[],
    metadataOnly: MetadataUpdate[] = [],
    shadow?: ShadowWrite,
  ): Promise<number> {
    checkKbId(kbId);
    const updatedAt = new Date();
    const grown: Grown = [];
    const updated = await this.#write(async (client) => {
      grown.length = 0;
      const { collection: c, shadow: s } = await this.#lockForWrite(client, kbId, shadow?.collection ?? null);
      // All checked before anything is written; a bad document fails the whole batch.
      for (const doc of docs) checkDocument(doc, c.dimensions);
      if (s !== null) for (const doc of shadow?.docs ?? []) checkDocument(doc, s.dimensions);
      const own = await writeDocuments(client, c.tables, c.dimensions, docs, metadataOnly, updatedAt);
      const theirs =
        s === null || shadow === undefined
          ? null
          : await writeDocuments(client, s.tables, s.dimensions, shadow.docs, shadow.metadataOnly, updatedAt);
      // The counts last, the collection's before its shadow's (the lock order).
      grown.push([c, await addCounts(client, c.id, own.chunks, own.tokens)]);
      if (s !== null && theirs !== null) grown.push([s, await addCounts(client, s.id, theirs.chunks, theirs.tokens)]);
      return own.updated;
    });
    this.#afterCommit(grown);
    return updated;
  }

  async deleteDocument(kbId: string, id: string): Promise<boolean> {
    return (await this.deleteDocuments(kbId, [id])) > 0;
  }

  async deleteDocuments(kbId: string, ids: string[]): Promise<number> {
    checkKbId(kbId);
    return this.#write(async (client) => {
      const { collection: c, shadow: s } = await this.#lockForWrite(client, kbId);
      if (ids.length === 0) return 0;
      const sorted = [...new Set(storableIds(ids))].sort();
      const own = await removeDocuments(client, c.tables, sorted);
      const theirs = s === null ? null : await removeDocuments(client, s.tables, sorted);
      await addCounts(client, c.id, own.chunks, own.tokens);
      if (s !== null && theirs !== null) await addCounts(client, s.id, theirs.chunks, theirs.tokens);
      return own.removed;
    });
  }

  async collectionState(kbId: string): Promise<CollectionState | null> {
    checkKbId(kbId);
    const c = await this.#lookup(this.#db.pool, kbId);
    return c === null ? null : { dimensions: c.dimensions, shadow: c.shadow, retired: c.retiredFor !== null };
  }

  async startShadow(kbId: string, shadowId: string, dimensions: number): Promise<void> {
    checkKbId(kbId);
    await this.#write((client) => shadows.startShadow(client, kbId, shadowId, dimensions, this.#indexMinChunks <= 0));
  }

  async dropShadow(kbId: string, shadowId: string): Promise<void> {
    checkKbId(kbId);
    checkKbId(shadowId);
    await this.#write((client) =>
      shadows.dropShadow(client, kbId, shadowId, (id) => cancelIndexBuild(client, this.#db.schema, id)),
    );
  }

  async copyToShadow(
    kbId: string,
    shadowId: string,
    docs: DocumentInput[],
    expected: ReadonlyMap<string, string>,
  ): Promise<number> {
    checkKbId(kbId);
    checkKbId(shadowId);
    const updatedAt = new Date();
    const done = await this.#write((client) => shadows.copyToShadow(client, kbId, shadowId, docs, expected, updatedAt));
    this.#afterCommit([[done.shadow, done.chunks]]);
    return done.inserted;
  }

  async shadowDifferences(kbId: string, shadowId: string, limit: number): Promise<ShadowDifferences> {
    checkKbId(kbId);
    checkKbId(shadowId);
    // One snapshot for both collections' lists.
    return this.#read(kbId, () =>
      inTransaction(this.#db.pool, async (client) => {
        await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
        return shadows.shadowDifferences(client, kbId, shadowId, limit);
      }),
    );
  }

  async promoteShadow(kbId: string, shadowId: string): Promise<boolean> {
    checkKbId(kbId);
    checkKbId(shadowId);
    return this.#write((client) => shadows.promoteShadow(client, kbId, shadowId));
  }

  async retiredCollections(): Promise<string[]> {
    return shadows.retiredCollections(this.#db.pool);
  }

  async getDocuments(kbId: string, ids: string[]): Promise<DocumentInput[]> {
    checkKbId(kbId);
    return this.#read(kbId, () =>
      inTransaction(this.#db.pool, async (client) => {
        await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const c = await this.#requireCollection(client, kbId);
        return readDocumentsById(client, c.tables, ids);
      }),
    );
  }

  async keyHashBuckets(kbId: string, digits: number, within: string[] | null): Promise<KeyHashBucket[]> {
    const c = await this.#requireCollection(this.#db.pool, kbId);
    return this.#read(kbId, () => keyHashBuckets(this.#db.pool, c.tables, digits, within));
  }

  async documentIdsInKeyBuckets(kbId: string, buckets: string[]): Promise<string[]> {
    const c = await this.#requireCollection(this.#db.pool, kbId);
    return this.#read(kbId, () => documentIdsInKeyBuckets(this.#db.pool, c.tables, buckets));
  }

  async documentsWithoutKeyHash(
    kbId: string,
    sourceTable: string,
    page: { after: string | null; limit: number },
  ): Promise<string[]> {
    const c = await this.#requireCollection(this.#db.pool, kbId);
    return this.#read(kbId, () => documentsWithoutKeyHash(this.#db.pool, c.tables, sourceTable, page));
  }

  async setKeyHashes(kbId: string, hashes: Array<{ id: string; keyHash: string }>): Promise<void> {
    checkKbId(kbId);
    await this.#write(async (client) => {
      // A write like any other: refused when retired, and it reaches the shadow (the same ids).
      const { collection: c, shadow: s } = await this.#lockForWrite(client, kbId);
      await setKeyHashes(client, c.tables, hashes);
      if (s !== null) await setKeyHashes(client, s.tables, hashes);
    });
  }

  async listDocuments(
    kbId: string,
    page: { limit: number; after: string | null },
  ): Promise<{ documents: StoredDocument[]; next: string | null }> {
    const c = await this.#requireCollection(this.#db.pool, kbId);
    checkPageLimit(page.limit);
    // One extra row says whether another page exists without a second COUNT query.
    const { rows } = await this.#read(kbId, () =>
      this.#db.pool.query<DocumentRow>(
        `SELECT doc_id, content, content_hash, metadata, chunk_count, updated_at FROM ${c.tables.documents}
         WHERE $1::text IS NULL OR doc_id > $1 ORDER BY doc_id LIMIT $2`,
        [page.after === null ? null : pgText(page.after), page.limit + 1],
      ),
    );
    const more = rows.length > page.limit;
    const documents = rows.slice(0, page.limit).map(toStoredDocument);
    return { documents, next: more ? (documents.at(-1)?.id ?? null) : null };
  }

  async exportDocuments(
    kbId: string,
    page: { limit: number; after: string | null },
  ): Promise<{ dimensions: number; documents: DocumentInput[]; next: string | null }> {
    checkKbId(kbId);
    checkPageLimit(page.limit);
    // One repeatable-read snapshot, so a page's documents and chunks agree even while a run writes.
    return this.#read(kbId, () =>
      inTransaction(this.#db.pool, async (client) => {
        await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const c = await this.#requireCollection(client, kbId);
        const { documents, more } = await readDocumentPage(client, c.tables, page);
        return { dimensions: c.dimensions, documents, next: more ? (documents.at(-1)?.id ?? null) : null };
      }),
    );
  }

  async counts(kbId: string): Promise<{ documents: number; chunks: number }> {
    const c = await this.#requireCollection(this.#db.pool, kbId);
    const { rows } = await this.#read(kbId, () =>
      this.#db.pool.query(
        `SELECT (SELECT count(*) FROM ${c.tables.documents}) AS documents, (SELECT count(*) FROM ${c.tables.chunks}) AS chunks`,
      ),
    );
    return { documents: Number(rows[0].documents), chunks: Number(rows[0].chunks) };
  }

  /**
   * The K nearest chunks by cosine among those the filter admits: exact below `indexMinChunks`,
   * else HNSW with an iterative scan that applies the filter while it walks, answered exactly
   * again when it may have come back short (vector-search-plan.ts).
   */
  async searchVector(
    kbId: string,
    embedding: Float32Array,
    options: { topK: number; filter?: MetadataFilter },
  ): Promise<SearchHit[]> {
    const c = await this.#requireCollection(this.#db.pool, kbId);
    checkTopK(options.topK);
    checkEmbedding(embedding, c.dimensions, 'query embedding');
    const params = new Params([vectorParam(embedding)]);
    const filter = compileMetadataFilter(options.filter, 'c.metadata', params);
    // Cosine similarity is undefined for a zero vector.
    if (isZero(embedding)) return [];
    const limit = params.add(options.topK);
    const first = choosePlan({
      chunks: c.chunks,
      dimensions: c.dimensions,
      filtered: options.filter !== undefined && Object.keys(options.filter).length > 0,
      indexMinChunks: this.#indexMinChunks,
      indexed: c.indexed,
    });
    // A collection past the threshold without its index (a load still running, a dead build).
    this.indexes.consider(c);
    let plan: VectorPlan = first === 'sample' ? 'index-filtered' : first;
    const rows = await this.#read(kbId, () =>
      inTransaction(this.#db.pool, async (client) => {
        const run = async (p: VectorPlan) => {
          await client.query(planSettings(p, options.topK, this.#efSearch));
          const sql = planSql(p, c.tables.chunks, c.dimensions, '$1', limit, filter.sql);
          return (await client.query<HitRow>(sql, params.values)).rows;
        };
        if (first === 'sample') plan = await this.#filteredPlan(client, c, options.filter!, filter.indexed);
        const found = await run(plan);
        if (!fallbackToExact(plan, found.length, options.topK, c.chunks)) return found;
        plan = 'filtered-exact';
        return run(plan);
      }),
    );
    this.planCounts[plan]++;
    // Float rounding can step a hair outside [-1, 1] for (anti)parallel vectors.
    return rows.map((r) => toHit(r, Math.min(1, Math.max(-1, r.score ?? -1))));
  }

  async searchKeyword(
    kbId: string,
    query: string,
    options: { topK: number; filter?: MetadataFilter },
  ): Promise<SearchHit[]> {
    const c = await this.#requireCollection(this.#db.pool, kbId);
    checkTopK(options.topK);
    // Validated even when the query is empty, so a bad filter fails the same way every time.
    const params = new Params();
    const phrases = keywordPhrases(query);
    params.add(phrases ?? []);
    params.add(c.id);
    const filter = compileMetadataFilter(options.filter, 'c.metadata', params);
    if (phrases === null) return [];
    const sql = keywordSearchSql(c.tables.chunks, filter.sql, params.add(options.topK), phrases.length);
    const { rows } = await this.#read(kbId, () => this.#db.pool.query<HitRow>(sql, params.values));
    return rows.map((r) => toHit(r, r.score ?? 0));
  }

  /**
   * filtered-exact when the filter is estimated, on a sample of the table's pages, to admit few
   * enough chunks to rank them all; index-filtered otherwise (vector-search-plan.ts).
   */
  async #filteredPlan(
    client: Queryable,
    c: Collection,
    filter: MetadataFilter,
    indexed: boolean,
  ): Promise<VectorPlan> {
    // Its own parameters: the search's vector and limit would be unused here.
    const own = new Params();
    const fragment = compileMetadataFilter(filter, 'c.metadata', own);
    const sql = filterEstimateSql(c.tables.chunks, own.add(samplePercent(c.chunks)), fragment.sql);
    const { rows } = await client.query(sql, own.values);
    const admitted = estimateAdmitted(Number(rows[0].seen), Number(rows[0].admitted), c.chunks);
    return admitted !== null && admitted <= exactFilterBound(this.#filteredExactMax, indexed)
      ? 'filtered-exact'
      : 'index-filtered';
  }

  async #lookup(client: Queryable, kbId: string, lock: RowLock = ''): Promise<Collection | null> {
    return lookupCollection(client, kbId, lock);
  }

  /** The collection a write goes to, and its shadow, locked (vector-collections.ts lockForWrite). */
  async #lockForWrite(
    client: Queryable,
    kbId: string,
    expectedShadow?: string | null,
  ): Promise<{ collection: Collection; shadow: Collection | null }> {
    const locked = await lockForWrite(client, kbId, expectedShadow);
    if (locked === null) throw notFound('knowledge base', kbId);
    return locked;
  }

  /**
   * After a write committed, leaving each collection with so many chunks (null: unchanged): an
   * index may now be due. Not before the commit: a build must count the chunks written.
   */
  #afterCommit(grown: Grown): void {
    for (const [c, chunks] of grown) if (chunks !== null) this.indexes.consider({ ...c, chunks });
  }

  async #requireCollection(client: Queryable, kbId: string, lock: RowLock = ''): Promise<Collection> {
    checkKbId(kbId);
    const c = await this.#lookup(client, kbId, lock);
    if (c === null) throw notFound('knowledge base', kbId);
    return c;
  }

  /** A read that may meet its collection's tables dropped since the lookup: NOT_FOUND then. */
  async #read<T>(kbId: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (sqlState(err) === '42P01') throw notFound('knowledge base', kbId);
      throw err;
    }
  }

  /** One write transaction, run again after a deadlock or serialization failure. */
  async #write<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await inTransaction(this.#db.pool, work);
      } catch (err) {
        if (attempt >= WRITE_ATTEMPTS || !RETRYABLE.has(sqlState(err) ?? '')) throw err;
      }
    }
  }
}

/** Collections a write changed, with their chunk counts after it (addCounts). */
type Grown = Array<[Collection, number | null]>;

function toHit(row: HitRow, score: number): SearchHit {
  return {
    documentId: row.doc_id,
    chunkId: `${row.doc_id}#${row.chunk_index}`,
    content: row.text,
    metadata: row.metadata,
    score,
  };
}

function toStoredDocument(row: DocumentRow): StoredDocument {
  return {
    id: row.doc_id,
    content: row.content,
    contentHash: row.content_hash,
    metadata: row.metadata,
    chunkCount: row.chunk_count,
    updatedAt: row.updated_at.toISOString(),
  };
}
