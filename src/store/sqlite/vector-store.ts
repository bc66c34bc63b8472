/**
 * VectorStore on SQLite: sqlite-vec for vectors (vec0 exact cosine KNN, and a binary-quantized
 * candidate index with exact rescoring above a size threshold: vector-search-plan.ts), FTS5 (BM25)
 * for keywords, in the same database file as the control store. Table layout and its reasons:
 * vector-schema.ts.
 *
 * better-sqlite3 is synchronous, so each method does its work before its promise settles; the
 * async signatures are the port's, shared with network-backed adapters.
 *
 * Writes run as BEGIN IMMEDIATE: the API server and a worker may share the file, and a deferred
 * transaction that reads first and writes later fails with SQLITE_BUSY (busy_timeout cannot help)
 * when the other process committed in between; taking the write lock up front waits instead.
 */
import type Database from 'better-sqlite3';
import { conflict, notFound } from '../../core/errors.js';
import {
  CollectionsChanged,
  type CollectionState,
  type DocumentInput,
  type KeyHashBucket,
  type Metadata,
  type MetadataFilter,
  type MetadataUpdate,
  type SearchHit,
  type ShadowDifferences,
  type ShadowWrite,
  type StoredDocument,
  type VectorStore,
} from '../vector-port.js';
import { compileMetadataFilter } from './metadata-filter.js';
import { applyMigrations } from './migrations.js';
import { type SqliteReader, SqliteReadError } from './reader.js';
import { buildCandidateIndex } from './vector-index-build.js';
import {
  checkEmbedding,
  checkHexDigits,
  checkKbId,
  checkPageLimit,
  checkTopK,
  isZero,
  vectorBlob,
} from './vector-input.js';
import { toFtsMatchExpression } from './vector-keyword-query.js';
import {
  canQuantize,
  collectionTables,
  createCollectionTables,
  dropCollectionTables,
  loadSqliteVec,
} from './vector-schema.js';
import { type HitRow, type SqliteVectorStoreOptions, VectorSearch } from './vector-search.js';
import type { VectorPlan } from './vector-search-plan.js';
import type { Collection } from './vector-collection.js';
import { ShadowRebuilds } from './vector-shadow.js';
import { CollectionWriter, termOf } from './vector-write.js';

export { MAX_PAGE_LIMIT, MAX_TOP_K } from './vector-input.js';

export type { SqliteVectorStoreOptions };

interface DocumentRow {
  doc_id: string;
  content: string;
  content_hash: string;
  metadata: string;
  chunk_count: number;
  updated_at: string;
}

type ExportRow = DocumentRow & { key_hash: string | null };

/** Filter and keyword statements differ by filter shape; more shapes than this are rebuilt on demand. */
const STATEMENTS_PER_COLLECTION = 256;

export class SqliteVectorStore implements VectorStore {
  readonly #db: Database.Database;
  readonly #statementsByCollection = new Map<number, Map<string, Database.Statement>>();
  readonly #s: ReturnType<typeof prepareStatic>;
  readonly #rebuilds: ShadowRebuilds;
  readonly #writer: CollectionWriter;
  /** Searches run here, off the event loop, when set (reader.ts); else on the main connection. */
  #reader: SqliteReader | null = null;
  readonly #vectorSearch: VectorSearch;

  constructor(db: Database.Database, options: SqliteVectorStoreOptions = {}) {
    this.#db = db;
    loadSqliteVec(db);
    // The shared kb_ tables come with the numbered migrations (idempotent when already applied).
    applyMigrations(db);
    this.#s = prepareStatic(db);
    this.#writer = new CollectionWriter(db, (c, key, sql) => this.#statement(c, key, sql));
    this.#rebuilds = new ShadowRebuilds({
      db,
      writer: this.#writer,
      find: (kbId) => this.#findCollection(kbId),
      require: (kbId) => this.#requireCollection(kbId),
      writable: (kbId) => this.#writableCollection(kbId),
      linkedShadow: (c) => this.#linkedShadow(c),
      createOrRepair: (kbId, dimensions) => this.#createOrRepair(kbId, dimensions),
      drop: (c) => this.#drop(c),
    });
    this.#vectorSearch = new VectorSearch(options);
  }

  /** Runs vector and keyword searches on reader threads (null: on the main connection). */
  useReader(reader: SqliteReader | null): void {
    this.#reader = reader;
  }

  /** A search's rows: on a reader thread when there is one, else on the main connection. */
  async #search<T = HitRow>(kbId: string, c: Collection, sql: string, params: unknown[]): Promise<T[]> {
    if (this.#reader === null) return this.#statement(c, sql, sql).all(...params) as T[];
    try {
      return await this.#reader.all<T>(sql, params);
    } catch (err) {
      // Dropped between the lookup and the search.
      if (err instanceof SqliteReadError && /no such table/.test(err.message))
        throw notFound('knowledge base', kbId);
      throw err;
    }
  }

  async createCollection(kbId: string, dimensions: number): Promise<void> {
    checkKbId(kbId);
    this.#db.transaction(() => this.#createOrRepair(kbId, dimensions)).immediate();
  }

  /** createCollection's work; the caller holds the transaction. */
  #createOrRepair(kbId: string, dimensions: number): void {
    const existing = this.#findCollection(kbId);
    if (existing !== null) {
      if (existing.dimensions !== dimensions) {
        throw conflict('Knowledge base already exists with other dimensions', [
          `collection '${kbId}' has ${existing.dimensions} dimensions, not ${dimensions}`,
        ]);
      }
      // Repairs a collection whose virtual tables were lost (e.g. a restore of a partial file);
      // a lost candidate index is rebuilt from the float vectors.
      const indexLost = canQuantize(dimensions) && !this.#tableExists(existing.tables.floats);
      createCollectionTables(this.#db, existing.id, dimensions);
      if (indexLost) buildCandidateIndex(this.#db, existing.id, dimensions);
      return;
    }
    const info = this.#s.insertCollection.run(kbId, dimensions, new Date().toISOString());
    createCollectionTables(this.#db, Number(info.lastInsertRowid), dimensions);
  }

  async dropCollection(kbId: string): Promise<void> {
    checkKbId(kbId);
    this.#db
      .transaction(() => {
        const c = this.#findCollection(kbId);
        if (c === null) return;
        const shadow = c.shadow === null ? null : this.#findCollection(c.shadow);
        if (shadow !== null) this.#drop(shadow);
        // Dropped while it is itself a shadow: its collection's writes stop carrying a part for it.
        this.#rebuilds.unlinkShadowNamed(kbId);
        this.#drop(c);
      })
      .immediate();
  }

  /** Deletes one collection's rows and tables; the caller holds the transaction. */
  #drop(c: Collection): void {
    this.#s.deleteCollectionChunks.run(c.id);
    this.#s.deleteCollectionDocuments.run(c.id);
    this.#s.deleteCollection.run(c.id);
    this.#statementsByCollection.delete(c.id);
    this.#vectorSearch.forget(c.id);
    dropCollectionTables(this.#db, c.id);
  }

  async getContentHashes(kbId: string, ids: string[]): Promise<Map<string, string>> {
    const c = this.#requireCollection(kbId);
    const hashes = new Map<string, string>();
    if (ids.length === 0) return hashes;
    // One JSON array parameter instead of `IN (?, ?, …)`, so no host-parameter limit applies.
    const rows = this.#s.contentHashes.all(c.id, JSON.stringify(ids)) as Array<{
      doc_id: string;
      content_hash: string;
    }>;
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
    const updatedAt = new Date().toISOString();
    return this.#db
      .transaction(() => {
        const c = this.#writableCollection(kbId);
        // Read in the write's own transaction: a rebuild that started, was cancelled or swapped
        // since the caller read the knowledge base is seen here, before anything is written.
        if (c.shadow !== (shadow?.collection ?? null)) {
          throw new CollectionsChanged(
            c.shadow === null
              ? `collection '${kbId}' has no shadow '${shadow?.collection}' (a rebuild ended)`
              : `collection '${kbId}' has shadow '${c.shadow}', which the write did not carry (a rebuild started)`,
          );
        }
        const updated = this.#writer.upsert(c, docs, metadataOnly, updatedAt);
        if (shadow !== undefined) {
          this.#writer.upsert(this.#linkedShadow(c), shadow.docs, shadow.metadataOnly, updatedAt);
        }
        return updated;
      })
      .immediate();
  }

  async deleteDocument(kbId: string, id: string): Promise<boolean> {
    return (await this.deleteDocuments(kbId, [id])) > 0;
  }

  async deleteDocuments(kbId: string, ids: string[]): Promise<number> {
    checkKbId(kbId);
    if (ids.length === 0) return 0;
    return this.#db
      .transaction(() => {
        const c = this.#writableCollection(kbId);
        const deleted = this.#writer.delete(c, ids);
        if (c.shadow !== null) this.#writer.delete(this.#linkedShadow(c), ids);
        return deleted;
      })
      .immediate();
  }

  // --- Rebuilds: a shadow collection linked to its collection (vector-shadow.ts) ---

  collectionState(kbId: string): Promise<CollectionState | null> {
    return this.#rebuilds.collectionState(kbId);
  }

  startShadow(kbId: string, shadowId: string, dimensions: number): Promise<void> {
    return this.#rebuilds.startShadow(kbId, shadowId, dimensions);
  }

  dropShadow(kbId: string, shadowId: string): Promise<void> {
    return this.#rebuilds.dropShadow(kbId, shadowId);
  }

  copyToShadow(
    kbId: string,
    shadowId: string,
    docs: DocumentInput[],
    expected: ReadonlyMap<string, string>,
  ): Promise<number> {
    return this.#rebuilds.copyToShadow(kbId, shadowId, docs, expected);
  }

  shadowDifferences(kbId: string, shadowId: string, limit: number): Promise<ShadowDifferences> {
    return this.#rebuilds.shadowDifferences(kbId, shadowId, limit);
  }

  promoteShadow(kbId: string, shadowId: string): Promise<boolean> {
    return this.#rebuilds.promoteShadow(kbId, shadowId);
  }

  retiredCollections(): Promise<string[]> {
    return this.#rebuilds.retiredCollections();
  }

  async keyHashBuckets(kbId: string, digits: number, within: string[] | null): Promise<KeyHashBucket[]> {
    const c = this.#requireCollection(kbId);
    if (digits === 0 && within === null) {
      const total = this.#s.keyTotal.get(c.id) as { n: bigint; s: bigint | null };
      return total.n === 0n ? [] : [{ bucket: '', count: Number(total.n), sum: String(total.s) }];
    }
    checkHexDigits(digits);
    const width = within?.[0]?.length ?? 0;
    // Prefix ranges [p, p + 'g') walk the (collection_id, key_hash) index; hex digits sort below 'g'.
    const rows = (
      within === null
        ? this.#s.keyBuckets.all(digits, c.id, digits)
        : this.#s.keyBucketsWithin.all(digits, JSON.stringify(within), c.id, width)
    ) as Array<{ b: string; n: bigint; s: bigint }>;
    return rows.map((r) => ({ bucket: r.b, count: Number(r.n), sum: String(r.s) }));
  }

  async documentIdsInKeyBuckets(kbId: string, buckets: string[]): Promise<string[]> {
    const c = this.#requireCollection(kbId);
    if (buckets.length === 0) return [];
    // [''] is the one bucket of every key.
    if (!(buckets.length === 1 && buckets[0] === '')) checkHexDigits(buckets[0]!.length);
    return this.#s.idsInKeyBuckets.all(JSON.stringify(buckets), c.id, buckets[0]!.length) as string[];
  }

  async documentsWithoutKeyHash(
    kbId: string,
    sourceTable: string,
    page: { after: string | null; limit: number },
  ): Promise<string[]> {
    const c = this.#requireCollection(kbId);
    return this.#s.withoutKeyHash.all(c.id, page.after ?? '', sourceTable, page.limit) as string[];
  }

  async setKeyHashes(kbId: string, hashes: Array<{ id: string; keyHash: string }>): Promise<void> {
    checkKbId(kbId);
    this.#db
      .transaction(() => {
        const c = this.#writableCollection(kbId);
        for (const h of hashes) this.#s.setKeyHash.run(h.keyHash, termOf(h.keyHash), c.id, h.id);
      })
      .immediate();
  }

  async listDocuments(
    kbId: string,
    page: { limit: number; after: string | null },
  ): Promise<{ documents: StoredDocument[]; next: string | null }> {
    const c = this.#requireCollection(kbId);
    checkPageLimit(page.limit);
    // One extra row says whether another page exists without a second COUNT query.
    const rows = (
      page.after === null
        ? this.#s.listFirst.all(c.id, page.limit + 1)
        : this.#s.listAfter.all(c.id, page.after, page.limit + 1)
    ) as DocumentRow[];
    const more = rows.length > page.limit;
    const documents = rows.slice(0, page.limit).map(toStoredDocument);
    return { documents, next: more ? (documents.at(-1)?.id ?? null) : null };
  }

  async exportDocuments(
    kbId: string,
    page: { limit: number; after: string | null },
  ): Promise<{ dimensions: number; documents: DocumentInput[]; next: string | null }> {
    const c = this.#requireCollection(kbId);
    checkPageLimit(page.limit);
    // One read transaction, so a page's documents and chunks agree even while a run writes.
    return this.#db.transaction(() => {
      const rows = this.#s.exportPage.all(c.id, page.after, page.after, page.limit + 1) as ExportRow[];
      const documents = rows.slice(0, page.limit).map((row) => this.#toDocumentInput(c, row));
      return {
        dimensions: c.dimensions,
        documents,
        next: rows.length > page.limit ? (documents.at(-1)?.id ?? null) : null,
      };
    })();
  }

  async getDocuments(kbId: string, ids: string[]): Promise<DocumentInput[]> {
    const c = this.#requireCollection(kbId);
    if (ids.length === 0) return [];
    return this.#db.transaction(() => {
      const rows = this.#s.documentsById.all(c.id, JSON.stringify(ids)) as ExportRow[];
      return rows.map((row) => this.#toDocumentInput(c, row));
    })();
  }

  /** A stored document with its chunks and the vectors bit for bit, as a write would take it back. */
  #toDocumentInput(c: Collection, row: ExportRow): DocumentInput {
    const chunksOf = this.#statement(
      c,
      'exportChunks',
      `SELECT ch.chunk_index, ch.text, v.embedding FROM kb_chunks ch JOIN ${c.tables.vectors} v ON v.rowid = ch.id
       WHERE ch.collection_id = ? AND ch.doc_id = ? ORDER BY ch.chunk_index`,
    );
    const chunks = (
      chunksOf.all(c.id, row.doc_id) as Array<{ chunk_index: number; text: string; embedding: Buffer }>
    ).map((ch) => ({
      index: ch.chunk_index,
      text: ch.text,
      // Copied out of the driver's buffer: it may be reused by the next row.
      embedding: new Float32Array(new Uint8Array(ch.embedding).buffer),
    }));
    return {
      id: row.doc_id,
      content: row.content,
      contentHash: row.content_hash,
      metadata: JSON.parse(row.metadata) as Metadata,
      chunks,
      ...(row.key_hash !== null ? { keyHash: row.key_hash } : {}),
    };
  }

  async counts(kbId: string): Promise<{ documents: number; chunks: number }> {
    const c = this.#requireCollection(kbId);
    const row = this.#s.counts.get(c.id, c.id) as { documents: number; chunks: number };
    return { documents: row.documents, chunks: row.chunks };
  }

  /**
   * The K nearest chunks by cosine, among those the filter admits. Small collections scan exactly;
   * from `indexMinChunks` chunks on, the binary-quantized candidate index answers, rescored
   * exactly; a filter is applied during either scan (never a post-filtered top K that comes back
   * short), and one that admits few chunks ranks exactly those. Plans, costs and the reasons for
   * their limits: vector-search-plan.ts.
   */
  async searchVector(
    kbId: string,
    embedding: Float32Array,
    options: { topK: number; filter?: MetadataFilter },
  ): Promise<SearchHit[]> {
    const c = this.#requireCollection(kbId);
    checkTopK(options.topK);
    checkEmbedding(embedding, c.dimensions, 'query embedding');
    const filter =
      options.filter === undefined ? undefined : compileMetadataFilter(options.filter, 'd.metadata');
    // Cosine similarity is undefined for a zero vector; sqlite-vec would rank every row NULL.
    if (isZero(embedding)) return [];
    const rows = await this.#vectorSearch.search(
      c,
      vectorBlob(embedding),
      options.topK,
      filter,
      (sql, params) => this.#search(kbId, c, sql, params),
    );
    // Float rounding can step a hair outside [-1, 1] for (anti)parallel vectors.
    return rows.map((r) => toHit(r, Math.min(1, Math.max(-1, r.score ?? -1))));
  }

  /** The plan that answered each vector search since this store was made (tests and the benchmark). */
  get planCounts(): Readonly<Record<VectorPlan, number>> {
    return this.#vectorSearch.planCounts;
  }

  /** Index searches run a second time without a Hamming bound (too few candidates within it). */
  get unboundedReruns(): number {
    return this.#vectorSearch.unboundedReruns;
  }

  /** Index searches run a second time with a wider Hamming bound (the first held too few candidates). */
  get widenedBounds(): number {
    return this.#vectorSearch.widenedBounds;
  }

  async searchKeyword(
    kbId: string,
    query: string,
    options: { topK: number; filter?: MetadataFilter },
  ): Promise<SearchHit[]> {
    const c = this.#requireCollection(kbId);
    checkTopK(options.topK);
    // Validated even when the query is empty, so a bad filter fails the same way every time.
    const filter = compileMetadataFilter(options.filter, 'd.metadata');
    const match = toFtsMatchExpression(query);
    if (match === null) return [];
    const sql = `
      SELECT c.doc_id, c.chunk_index, c.text, d.metadata, bm25(${c.tables.keywords}) AS score
      FROM ${c.tables.keywords}
      JOIN kb_chunks c ON c.id = ${c.tables.keywords}.rowid
      JOIN kb_documents d ON d.collection_id = c.collection_id AND d.doc_id = c.doc_id
      WHERE ${c.tables.keywords} MATCH ? AND ${filter.sql}
      ORDER BY score, c.id
      LIMIT ?`;
    const rows = await this.#search(kbId, c, sql, [match, ...filter.params, options.topK]);
    // bm25() is lower-is-better; the port wants higher-is-better.
    return rows.map((r) => toHit(r, -(r.score ?? 0)));
  }

  #findCollection(kbId: string): Collection | null {
    const row = this.#s.getCollection.get(kbId) as
      | {
          id: number;
          dimensions: number;
          chunk_count: number;
          shadow: string | null;
          replaced_by: string | null;
        }
      | undefined;
    return row === undefined
      ? null
      : {
          id: row.id,
          dimensions: row.dimensions,
          chunks: row.chunk_count,
          tables: collectionTables(row.id),
          shadow: row.shadow,
          replacedBy: row.replaced_by,
        };
  }

  /** The collection a write goes to, inside the write's transaction: it exists and is not retired. */
  #writableCollection(kbId: string): Collection {
    const c = this.#requireCollection(kbId);
    if (c.replacedBy !== null) {
      throw new CollectionsChanged(
        `collection '${kbId}' was replaced by '${c.replacedBy}' (a rebuild swapped it)`,
      );
    }
    return c;
  }

  /** The shadow `c` links to; dropCollection and dropShadow clear a link with its shadow, so it exists. */
  #linkedShadow(c: Collection): Collection {
    const shadow = c.shadow === null ? null : this.#findCollection(c.shadow);
    if (shadow === null)
      throw new Error(`collection ${c.id} links to shadow '${String(c.shadow)}', which does not exist`);
    return shadow;
  }

  #tableExists(name: string): boolean {
    return this.#s.tableExists.get(name) !== undefined;
  }

  #requireCollection(kbId: string): Collection {
    checkKbId(kbId);
    const c = this.#findCollection(kbId);
    if (c === null) throw notFound('knowledge base', kbId);
    return c;
  }

  /** Per-collection statements, cached: their SQL names the collection's own virtual tables. */
  #statement(c: { id: number }, key: string, sql: string): Database.Statement {
    let cache = this.#statementsByCollection.get(c.id);
    if (cache === undefined) {
      cache = new Map();
      this.#statementsByCollection.set(c.id, cache);
    }
    let statement = cache.get(key);
    if (statement === undefined) {
      if (cache.size >= STATEMENTS_PER_COLLECTION) cache.clear();
      statement = this.#db.prepare(sql);
      cache.set(key, statement);
    }
    return statement;
  }
}

function prepareStatic(db: Database.Database) {
  return {
    getCollection: db.prepare(
      'SELECT id, dimensions, chunk_count, shadow, replaced_by FROM kb_collections WHERE kb_id = ?',
    ),
    tableExists: db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"),
    insertCollection: db.prepare(
      'INSERT INTO kb_collections (kb_id, dimensions, created_at) VALUES (?, ?, ?)',
    ),
    deleteCollection: db.prepare('DELETE FROM kb_collections WHERE id = ?'),
    // Sums as BigInt: past ~2 million documents a sum of 32-bit terms is beyond 2^53.
    keyBuckets: db
      .prepare(
        `SELECT substr(key_hash, 1, ?) AS b, count(*) AS n, sum(key_term) AS s FROM kb_documents
         WHERE collection_id = ? AND key_hash IS NOT NULL GROUP BY substr(key_hash, 1, ?)`,
      )
      .safeIntegers(true),
    keyTotal: db
      .prepare(
        'SELECT count(*) AS n, sum(key_term) AS s FROM kb_documents WHERE collection_id = ? AND key_hash IS NOT NULL',
      )
      .safeIntegers(true),
    keyBucketsWithin: db
      .prepare(
        `SELECT substr(d.key_hash, 1, ?) AS b, count(*) AS n, sum(d.key_term) AS s
       FROM json_each(?) AS p CROSS JOIN kb_documents d
       WHERE d.collection_id = ? AND d.key_hash >= p.value AND d.key_hash < p.value || 'g'
         AND length(p.value) = ?
       GROUP BY 1`,
      )
      .safeIntegers(true),
    idsInKeyBuckets: db
      .prepare(
        `SELECT d.doc_id FROM json_each(?) AS p CROSS JOIN kb_documents d
         WHERE d.collection_id = ? AND d.key_hash >= p.value AND d.key_hash < p.value || 'g' AND length(p.value) = ?`,
      )
      .pluck(),
    withoutKeyHash: db
      .prepare(
        // INDEXED BY: left to itself the planner walks the (collection_id, doc_id) key for
        // `doc_id > ?`, a scan of the whole collection when nothing is left to fill.
        `SELECT doc_id FROM kb_documents INDEXED BY kb_documents_without_key_hash
         WHERE collection_id = ? AND key_hash IS NULL AND doc_id > ?
           AND json_extract(metadata, '$.source_table') = ? AND json_extract(metadata, '$.row_key') IS NOT NULL
         ORDER BY doc_id LIMIT ?`,
      )
      .pluck(),
    setKeyHash: db.prepare(
      'UPDATE kb_documents SET key_hash = ?, key_term = ? WHERE collection_id = ? AND doc_id = ?',
    ),
    deleteCollectionChunks: db.prepare('DELETE FROM kb_chunks WHERE collection_id = ?'),
    deleteCollectionDocuments: db.prepare('DELETE FROM kb_documents WHERE collection_id = ?'),
    contentHashes: db.prepare(
      `SELECT doc_id, content_hash FROM kb_documents
       WHERE collection_id = ? AND doc_id IN (SELECT value FROM json_each(?))`,
    ),
    counts: db.prepare(
      `SELECT (SELECT count(*) FROM kb_documents WHERE collection_id = ?) AS documents,
              (SELECT count(*) FROM kb_chunks WHERE collection_id = ?) AS chunks`,
    ),
    listFirst: db.prepare(
      `SELECT doc_id, content, content_hash, metadata, chunk_count, updated_at FROM kb_documents
       WHERE collection_id = ? ORDER BY doc_id LIMIT ?`,
    ),
    exportPage: db.prepare(
      `SELECT doc_id, content, content_hash, metadata, chunk_count, updated_at, key_hash FROM kb_documents
       WHERE collection_id = ? AND (? IS NULL OR doc_id > ?) ORDER BY doc_id LIMIT ?`,
    ),
    documentsById: db.prepare(
      `SELECT doc_id, content, content_hash, metadata, chunk_count, updated_at, key_hash FROM kb_documents
       WHERE collection_id = ? AND doc_id IN (SELECT value FROM json_each(?)) ORDER BY doc_id`,
    ),
    listAfter: db.prepare(
      `SELECT doc_id, content, content_hash, metadata, chunk_count, updated_at FROM kb_documents
       WHERE collection_id = ? AND doc_id > ? ORDER BY doc_id LIMIT ?`,
    ),
  };
}

function toHit(row: HitRow, score: number): SearchHit {
  return {
    documentId: row.doc_id,
    chunkId: `${row.doc_id}#${row.chunk_index}`,
    content: row.text,
    metadata: JSON.parse(row.metadata) as Metadata,
    score,
  };
}

function toStoredDocument(row: DocumentRow): StoredDocument {
  return {
    id: row.doc_id,
    content: row.content,
    contentHash: row.content_hash,
    metadata: JSON.parse(row.metadata) as Metadata,
    chunkCount: row.chunk_count,
    updatedAt: row.updated_at,
  };
}
