/**
 * VectorStore on SQLite: sqlite-vec (vec0, exact cosine KNN) for vectors, FTS5 (BM25) for keywords,
 * in the same database file as the control store. Table layout and its reasons: vector-schema.ts.
 *
 * better-sqlite3 is synchronous, so each method does its work before its promise settles; the
 * async signatures are the port's, shared with network-backed adapters.
 *
 * Writes run as BEGIN IMMEDIATE: the API server and a worker may share the file, and a deferred
 * transaction that reads first and writes later fails with SQLITE_BUSY (busy_timeout cannot help)
 * when the other process committed in between; taking the write lock up front waits instead.
 */
import type Database from 'better-sqlite3';
import * as sqliteVec from 'sqlite-vec';
import { conflict, notFound } from '../../core/errors.js';
import { keyHashTerm } from '../../core/hash.js';
import type {
  DocumentInput,
  KeyHashBucket,
  Metadata,
  MetadataFilter,
  MetadataUpdate,
  SearchHit,
  StoredDocument,
  VectorStore,
} from '../vector-port.js';
import { compileMetadataFilter, type SqlParam } from './metadata-filter.js';
import { applyMigrations } from './migrations.js';
import { type SqliteReader, SqliteReadError } from './reader.js';
import { toFtsMatchExpression } from './vector-keyword-query.js';
import {
  type CollectionTables,
  collectionTables,
  createCollectionTables,
  dropCollectionTables,
} from './vector-schema.js';

/** sqlite-vec refuses a KNN `k` above 4096; one search never needs more. */
export const MAX_TOP_K = 4096;
export const MAX_PAGE_LIMIT = 10_000;

interface Collection {
  id: number;
  dimensions: number;
  tables: CollectionTables;
}

interface HitRow {
  doc_id: string;
  chunk_index: number;
  text: string;
  metadata: string;
  score: number | null;
}

interface DocumentRow {
  doc_id: string;
  content: string;
  content_hash: string;
  metadata: string;
  chunk_count: number;
  updated_at: string;
}

/** Filter and keyword statements differ by filter shape; more shapes than this are rebuilt on demand. */
const STATEMENTS_PER_COLLECTION = 256;

export class SqliteVectorStore implements VectorStore {
  readonly #db: Database.Database;
  readonly #statementsByCollection = new Map<number, Map<string, Database.Statement>>();
  readonly #s: ReturnType<typeof prepareStatic>;
  /** Searches run here, off the event loop, when set (reader.ts); else on the main connection. */
  #reader: SqliteReader | null = null;

  constructor(db: Database.Database) {
    this.#db = db;
    loadSqliteVec(db);
    // The shared kb_ tables come with the numbered migrations (idempotent when already applied).
    applyMigrations(db);
    this.#s = prepareStatic(db);
  }

  /** Runs vector and keyword searches on reader threads (null: on the main connection). */
  useReader(reader: SqliteReader | null): void {
    this.#reader = reader;
  }

  /** A search's rows: on a reader thread when there is one, else on the main connection. */
  async #search(kbId: string, c: Collection, sql: string, params: unknown[]): Promise<HitRow[]> {
    if (this.#reader === null) return this.#statement(c, sql, sql).all(...params) as HitRow[];
    try {
      return await this.#reader.all<HitRow>(sql, params);
    } catch (err) {
      // Dropped between the lookup and the search.
      if (err instanceof SqliteReadError && /no such table/.test(err.message)) throw notFound('knowledge base', kbId);
      throw err;
    }
  }

  async createCollection(kbId: string, dimensions: number): Promise<void> {
    checkKbId(kbId);
    this.#db
      .transaction(() => {
        const existing = this.#findCollection(kbId);
        if (existing !== null) {
          if (existing.dimensions !== dimensions) {
            throw conflict('Knowledge base already exists with other dimensions', [
              `collection '${kbId}' has ${existing.dimensions} dimensions, not ${dimensions}`,
            ]);
          }
          // Repairs a collection whose virtual tables were lost (e.g. a restore of a partial file).
          createCollectionTables(this.#db, existing.id, dimensions);
          return;
        }
        const info = this.#s.insertCollection.run(kbId, dimensions, new Date().toISOString());
        createCollectionTables(this.#db, Number(info.lastInsertRowid), dimensions);
      })
      .immediate();
  }

  async dropCollection(kbId: string): Promise<void> {
    checkKbId(kbId);
    this.#db
      .transaction(() => {
        const c = this.#findCollection(kbId);
        if (c === null) return;
        this.#s.deleteCollectionChunks.run(c.id);
        this.#s.deleteCollectionDocuments.run(c.id);
        this.#s.deleteCollection.run(c.id);
        this.#statementsByCollection.delete(c.id);
        dropCollectionTables(this.#db, c.id);
      })
      .immediate();
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

  async upsertDocuments(kbId: string, docs: DocumentInput[], metadataOnly: MetadataUpdate[] = []): Promise<number> {
    checkKbId(kbId);
    const updatedAt = new Date().toISOString();
    return this.#db
      .transaction(() => {
        const c = this.#requireCollection(kbId);
        const insertVector = this.#statement(
          c,
          'insertVector',
          `INSERT INTO ${c.tables.vectors}(rowid, embedding) VALUES (?, ?)`,
        );
        const insertKeywords = this.#statement(
          c,
          'insertKeywords',
          `INSERT INTO ${c.tables.keywords}(rowid, text) VALUES (?, ?)`,
        );
        for (const doc of docs) {
          // Checked one by one inside the transaction: a bad document late in the batch rolls back
          // the documents already written before it.
          checkDocument(doc, c.dimensions);
          this.#removeChunks(c, doc.id);
          this.#s.upsertDocument.run(
            c.id,
            doc.id,
            doc.content,
            doc.contentHash,
            JSON.stringify(doc.metadata),
            doc.chunks.length,
            updatedAt,
            doc.keyHash ?? null,
            termOf(doc.keyHash),
          );
          for (const chunk of doc.chunks) {
            // vec0 accepts only an integer rowid; a JS number would bind as REAL.
            const rowid = BigInt(
              this.#s.insertChunk.run(c.id, doc.id, chunk.index, chunk.text).lastInsertRowid,
            );
            insertVector.run(rowid, vectorBlob(chunk.embedding));
            insertKeywords.run(rowid, chunk.text);
          }
        }
        let updated = 0;
        for (const item of metadataOnly) {
          updated += this.#s.updateMetadata.run(
            JSON.stringify(item.metadata),
            item.contentHash,
            updatedAt,
            item.keyHash ?? null,
            termOf(item.keyHash),
            c.id,
            item.id,
          ).changes;
        }
        return updated;
      })
      .immediate();
  }

  async deleteDocument(kbId: string, id: string): Promise<boolean> {
    checkKbId(kbId);
    return this.#db
      .transaction(() => {
        const c = this.#requireCollection(kbId);
        this.#removeChunks(c, id);
        return this.#s.deleteDocument.run(c.id, id).changes > 0;
      })
      .immediate();
  }

  async deleteDocuments(kbId: string, ids: string[]): Promise<number> {
    checkKbId(kbId);
    if (ids.length === 0) return 0;
    return this.#db
      .transaction(() => {
        const c = this.#requireCollection(kbId);
        let deleted = 0;
        for (const id of ids) {
          this.#removeChunks(c, id);
          deleted += this.#s.deleteDocument.run(c.id, id).changes;
        }
        return deleted;
      })
      .immediate();
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

  async documentsWithoutKeyHash(kbId: string, sourceTable: string, page: { after: string | null; limit: number }): Promise<string[]> {
    const c = this.#requireCollection(kbId);
    return this.#s.withoutKeyHash.all(c.id, page.after ?? '', sourceTable, page.limit) as string[];
  }

  async setKeyHashes(kbId: string, hashes: Array<{ id: string; keyHash: string }>): Promise<void> {
    checkKbId(kbId);
    this.#db
      .transaction(() => {
        const c = this.#requireCollection(kbId);
        for (const h of hashes) this.#s.setKeyHash.run(h.keyHash, termOf(h.keyHash), c.id, h.id);
      })
      .immediate();
  }

  async listDocuments(
    kbId: string,
    page: { limit: number; after: string | null },
  ): Promise<{ documents: StoredDocument[]; next: string | null }> {
    const c = this.#requireCollection(kbId);
    if (!Number.isSafeInteger(page.limit) || page.limit < 1 || page.limit > MAX_PAGE_LIMIT) {
      throw new RangeError(`page limit must be an integer from 1 to ${MAX_PAGE_LIMIT}, got ${page.limit}`);
    }
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

  async counts(kbId: string): Promise<{ documents: number; chunks: number }> {
    const c = this.#requireCollection(kbId);
    const row = this.#s.counts.get(c.id, c.id) as { documents: number; chunks: number };
    return { documents: row.documents, chunks: row.chunks };
  }

  /**
   * Exact cosine KNN. With a filter, the matching chunk rowids go to vec0 as `rowid IN (subquery)`,
   * which sqlite-vec applies *during* its scan: the K nearest among the filtered chunks, never a
   * post-filtered top K that comes back short. Measured at 100k x 512-d: about the cost of an
   * unfiltered KNN for a 1% filter and ~2.5x for a 90% one, where a `vec_distance_cosine` join
   * over the filtered chunks took 5x (each vec0 point lookup is slow).
   */
  async searchVector(
    kbId: string,
    embedding: Float32Array,
    options: { topK: number; filter?: MetadataFilter },
  ): Promise<SearchHit[]> {
    const c = this.#requireCollection(kbId);
    checkTopK(options.topK);
    checkEmbedding(embedding, c.dimensions, 'query embedding');
    const filter = compileMetadataFilter(options.filter, 'd.metadata');
    // Cosine similarity is undefined for a zero vector; sqlite-vec would rank every row NULL.
    if (isZero(embedding)) return [];
    // CROSS JOIN pins documents as the outer loop: filter each document once, then look up the
    // chunks of the few that match. Left to itself the planner walks every chunk and looks up its
    // document, which measured 1.7x slower at 100k.
    const prefilter =
      options.filter === undefined
        ? ''
        : `AND rowid IN (SELECT c.id FROM kb_documents d CROSS JOIN kb_chunks c
             ON c.collection_id = d.collection_id AND c.doc_id = d.doc_id
             WHERE d.collection_id = ? AND ${filter.sql})`;
    const sql = `
      WITH knn AS (
        SELECT rowid, distance FROM ${c.tables.vectors}
        WHERE embedding MATCH ? AND k = ? ${prefilter}
      )
      SELECT c.doc_id, c.chunk_index, c.text, d.metadata, 1 - knn.distance AS score
      FROM knn
      JOIN kb_chunks c ON c.id = knn.rowid
      JOIN kb_documents d ON d.collection_id = c.collection_id AND d.doc_id = c.doc_id
      ORDER BY knn.distance, c.id`;
    const params: SqlParam[] = options.filter === undefined ? [] : [c.id, ...filter.params];
    const rows = await this.#search(kbId, c, sql, [vectorBlob(embedding), options.topK, ...params]);
    // Float rounding can step a hair outside [-1, 1] for (anti)parallel vectors.
    return rows.map((r) => toHit(r, Math.min(1, Math.max(-1, r.score ?? -1))));
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
    const row = this.#s.getCollection.get(kbId) as { id: number; dimensions: number } | undefined;
    return row === undefined
      ? null
      : { id: row.id, dimensions: row.dimensions, tables: collectionTables(row.id) };
  }

  #requireCollection(kbId: string): Collection {
    checkKbId(kbId);
    const c = this.#findCollection(kbId);
    if (c === null) throw notFound('knowledge base', kbId);
    return c;
  }

  /** Deletes a document's chunk rows, vectors and keyword rows, keeping the document row. */
  #removeChunks(c: Collection, docId: string): void {
    const ids = this.#s.chunkIdsOfDocument.all(c.id, docId) as Array<number | bigint>;
    if (ids.length === 0) return;
    const deleteVector = this.#statement(
      c,
      'deleteVector',
      `DELETE FROM ${c.tables.vectors} WHERE rowid = ?`,
    );
    const deleteKeywords = this.#statement(
      c,
      'deleteKeywords',
      `DELETE FROM ${c.tables.keywords} WHERE rowid = ?`,
    );
    for (const id of ids) {
      deleteVector.run(BigInt(id));
      deleteKeywords.run(id);
    }
    this.#s.deleteChunksOfDocument.run(c.id, docId);
  }

  /** Per-collection statements, cached: their SQL names the collection's own virtual tables. */
  #statement(c: Collection, key: string, sql: string): Database.Statement {
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
    getCollection: db.prepare('SELECT id, dimensions FROM kb_collections WHERE kb_id = ?'),
    insertCollection: db.prepare(
      'INSERT INTO kb_collections (kb_id, dimensions, created_at) VALUES (?, ?, ?)',
    ),
    deleteCollection: db.prepare('DELETE FROM kb_collections WHERE id = ?'),
    updateMetadata: db.prepare(
      `UPDATE kb_documents SET metadata = ?, content_hash = ?, updated_at = ?,
         key_hash = coalesce(?, key_hash), key_term = coalesce(?, key_term)
       WHERE collection_id = ? AND doc_id = ?`,
    ),
    // Sums as BigInt: past ~2 million documents a sum of 32-bit terms is beyond 2^53.
    keyBuckets: db
      .prepare(
        `SELECT substr(key_hash, 1, ?) AS b, count(*) AS n, sum(key_term) AS s FROM kb_documents
         WHERE collection_id = ? AND key_hash IS NOT NULL GROUP BY substr(key_hash, 1, ?)`,
      )
      .safeIntegers(true),
    keyTotal: db
      .prepare('SELECT count(*) AS n, sum(key_term) AS s FROM kb_documents WHERE collection_id = ? AND key_hash IS NOT NULL')
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
    setKeyHash: db.prepare('UPDATE kb_documents SET key_hash = ?, key_term = ? WHERE collection_id = ? AND doc_id = ?'),
    deleteCollectionChunks: db.prepare('DELETE FROM kb_chunks WHERE collection_id = ?'),
    deleteCollectionDocuments: db.prepare('DELETE FROM kb_documents WHERE collection_id = ?'),
    upsertDocument: db.prepare(
      `INSERT INTO kb_documents (collection_id, doc_id, content, content_hash, metadata, chunk_count, updated_at, key_hash, key_term)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (collection_id, doc_id) DO UPDATE SET
         content = excluded.content, content_hash = excluded.content_hash, metadata = excluded.metadata,
         chunk_count = excluded.chunk_count, updated_at = excluded.updated_at,
         key_hash = coalesce(excluded.key_hash, key_hash), key_term = coalesce(excluded.key_term, key_term)`,
    ),
    deleteDocument: db.prepare('DELETE FROM kb_documents WHERE collection_id = ? AND doc_id = ?'),
    insertChunk: db.prepare(
      'INSERT INTO kb_chunks (collection_id, doc_id, chunk_index, text) VALUES (?, ?, ?, ?)',
    ),
    chunkIdsOfDocument: db.prepare('SELECT id FROM kb_chunks WHERE collection_id = ? AND doc_id = ?').pluck(),
    deleteChunksOfDocument: db.prepare('DELETE FROM kb_chunks WHERE collection_id = ? AND doc_id = ?'),
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
    listAfter: db.prepare(
      `SELECT doc_id, content, content_hash, metadata, chunk_count, updated_at FROM kb_documents
       WHERE collection_id = ? AND doc_id > ? ORDER BY doc_id LIMIT ?`,
    ),
  };
}

/** Loading twice is harmless but not free; the control store may already have loaded it. */
function loadSqliteVec(db: Database.Database): void {
  try {
    db.prepare('SELECT vec_version()').get();
  } catch {
    sqliteVec.load(db);
  }
}

/** A key hash's checksum term (core/hash.ts keyHashTerm), or null for a document without one. */
function termOf(keyHash: string | undefined): number | null {
  return keyHash === undefined ? null : keyHashTerm(keyHash);
}

function checkHexDigits(digits: number): void {
  if (!Number.isSafeInteger(digits) || digits < 1 || digits > 32) {
    throw new RangeError(`key-hash digits must be an integer from 1 to 32, got ${digits}`);
  }
}

function checkKbId(kbId: string): void {
  if (typeof kbId !== 'string' || kbId.length === 0 || kbId.length > 200) {
    throw new RangeError('kbId must be a non-empty string of at most 200 characters');
  }
}

function checkTopK(topK: number): void {
  if (!Number.isSafeInteger(topK) || topK < 1 || topK > MAX_TOP_K) {
    throw new RangeError(`topK must be an integer from 1 to ${MAX_TOP_K}, got ${topK}`);
  }
}

function checkDocument(doc: DocumentInput, dimensions: number): void {
  if (typeof doc.id !== 'string' || doc.id.length === 0) {
    throw new RangeError('document id must be a non-empty string');
  }
  const seen = new Set<number>();
  for (const chunk of doc.chunks) {
    if (!Number.isSafeInteger(chunk.index) || chunk.index < 0 || seen.has(chunk.index)) {
      throw new RangeError(`document '${doc.id}': chunk indexes must be distinct non-negative integers`);
    }
    seen.add(chunk.index);
    checkEmbedding(chunk.embedding, dimensions, `document '${doc.id}' chunk ${chunk.index}`);
    // A stored zero vector has no cosine distance to anything, and sqlite-vec would sort its NULL
    // distance ahead of every real neighbour.
    if (isZero(chunk.embedding)) {
      throw new RangeError(`document '${doc.id}' chunk ${chunk.index}: embedding is all zeros`);
    }
  }
}

function checkEmbedding(embedding: Float32Array, dimensions: number, what: string): void {
  if (!(embedding instanceof Float32Array)) throw new TypeError(`${what} must be a Float32Array`);
  if (embedding.length !== dimensions) {
    throw new RangeError(`${what} has ${embedding.length} dimensions; the knowledge base has ${dimensions}`);
  }
  for (const x of embedding) {
    if (!Number.isFinite(x)) throw new RangeError(`${what} contains a non-finite value`);
  }
}

function isZero(embedding: Float32Array): boolean {
  return embedding.every((x) => x === 0);
}

/** A view of exactly the array's bytes: a Float32Array may sit at an offset inside a larger buffer. */
function vectorBlob(embedding: Float32Array): Buffer {
  return Buffer.from(embedding.buffer, embedding.byteOffset, embedding.byteLength);
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
