/**
 * Tables of the PostgreSQL vector store, in the kbsync schema. kb_collections (migrations.ts) is
 * the registry; each knowledge base gets two tables of its own, named by the registry's integer id
 * (an identity, never reused after a drop), so a kbId only ever travels as a bound parameter.
 *
 * Why a table per knowledge base rather than one table partitioned by it:
 * - a `vector(n)` column has one dimension and knowledge bases differ (512 local, 1536 OpenAI, …);
 *   an HNSW index needs the typed column (an untyped `vector` cannot be indexed, and a partitioned
 *   parent would force one untyped column on every partition);
 * - each HNSW graph then holds one knowledge base's vectors only, so a search never walks another
 *   one's neighbours and a filter-free search needs no `WHERE kb = …` the graph cannot apply;
 * - dropping a knowledge base is DROP TABLE, not a large DELETE and a vacuum.
 * The cost is catalog entries per knowledge base (two tables, five indexes), fine for thousands.
 *
 * - kb_docs_<n>: one row per document; `doc_id` and `key_hash` are COLLATE "C" so paging and key
 *   ranges follow byte order (SQLite's BINARY), whatever the database's locale.
 * - kb_chunks_<n>: one row per chunk, with its vector, its keyword vector (a generated tsvector
 *   over kbsync_keyword_text, GIN-indexed), its word count for BM25, and a copy of its document's
 *   metadata: a filter is then evaluated on the row the HNSW scan returns, which lets pgvector's
 *   iterative scan filter while it walks the graph (a join would be applied after the scan).
 *   Metadata changes rewrite a document's few chunk rows. The foreign key to the document has no
 *   ON DELETE CASCADE on purpose: chunks are deleted by the store, which counts them (a cascade
 *   would remove chunks the running counts never hear of).
 *
 * Vector index by dimensions: HNSW on `vector` up to 2000 (pgvector's limit), on a `halfvec` cast
 * up to 4000 (the column keeps full precision; scores are computed from it), none above (exact
 * scans only). Cosine distance (`vector_cosine_ops`); m and ef_construction below.
 *
 * The HNSW index is not made with the tables: a collection gets it once it holds the store's
 * `indexMinChunks` (10,000 by default; below that every search is an exact scan anyway), built by
 * vector-index.ts with CREATE INDEX CONCURRENTLY after a bulk load pauses. Maintaining the graph on
 * every insert from the first chunk made a backfill 30 times slower than into SQLite (issue 11);
 * one build over the loaded rows costs a fraction of that. A store whose threshold is 0 makes it
 * with the tables, still empty. Searches use it only while it is valid (collectionLookupSql), so a
 * collection between the threshold and the build's end, or with an INVALID index a crashed build
 * left, is scanned exactly. Collections created before this keep the index they were made with.
 */

import os from 'node:os';

export const MAX_DIMENSIONS = 8192;
/**
 * HNSW graph parameters. ef_construction 128, twice pgvector's default: on real local-model
 * embeddings (templated shop texts, tightly clustered) the default graph left some queries in the
 * wrong neighbourhood whatever ef_search (recall@10 at 100k: 0.937 at ef_search 200 with 64, 0.964
 * with 128, 0.967 with 200 at nearly twice the build time of 128; m 24 or 32 did not help more per
 * second of build). bench/pgvector.ts measures it.
 */
export const HNSW_M = 16;
export const HNSW_EF_CONSTRUCTION = 128;
export const HNSW_MAX_VECTOR_DIMENSIONS = 2000;
export const HNSW_MAX_HALFVEC_DIMENSIONS = 4000;

export interface CollectionTables {
  documents: string;
  chunks: string;
}

/** Table names come from the registry's integer id only; anything else is a bug, so throw. */
export function collectionTables(collectionId: number): CollectionTables {
  if (!Number.isSafeInteger(collectionId) || collectionId <= 0) {
    throw new Error(`invalid collection id: ${String(collectionId)}`);
  }
  return { documents: `kb_docs_${collectionId}`, chunks: `kb_chunks_${collectionId}` };
}

export type IndexKind = 'vector' | 'halfvec' | 'none';

export function indexKind(dimensions: number): IndexKind {
  if (dimensions <= HNSW_MAX_VECTOR_DIMENSIONS) return 'vector';
  if (dimensions <= HNSW_MAX_HALFVEC_DIMENSIONS) return 'halfvec';
  return 'none';
}

/**
 * The distance expression the HNSW index answers (the same text as the index's, or the planner
 * does not use it), for a query vector parameter `param`.
 */
export function indexedDistanceSql(dimensions: number, param: string): string {
  // The parameter is a vector (vectorParam's binary form) in every use, then cast.
  return indexKind(dimensions) === 'halfvec'
    ? `c.embedding::halfvec(${dimensions}) <=> (${param}::vector(${dimensions}))::halfvec(${dimensions})`
    : `c.embedding <=> ${param}::vector(${dimensions})`;
}

export function checkDimensions(dimensions: number): void {
  if (!Number.isSafeInteger(dimensions) || dimensions < 1 || dimensions > MAX_DIMENSIONS) {
    throw new RangeError(`dimensions must be an integer from 1 to ${MAX_DIMENSIONS}, got ${dimensions}`);
  }
}

/** The HNSW index's name: vector-index.ts checks and builds it by this name, searches test its validity. */
export function vectorIndexName(collectionId: number): string {
  return `${collectionTables(collectionId).chunks}_hnsw`;
}

/**
 * The DDL of a collection's tables and indexes; IF NOT EXISTS, so it also repairs a lost one. The
 * HNSW index only with `withVectorIndex` (a store that indexes from the first chunk); otherwise
 * vector-index.ts builds it later.
 */
export function createCollectionSql(collectionId: number, dimensions: number, withVectorIndex = false): string[] {
  checkDimensions(dimensions);
  const t = collectionTables(collectionId);
  return [
    `CREATE TABLE IF NOT EXISTS ${t.documents} (
      doc_id text COLLATE "C" PRIMARY KEY,
      content_hash text NOT NULL,
      metadata jsonb NOT NULL,
      chunk_count integer NOT NULL,
      updated_at timestamptz NOT NULL,
      key_hash text COLLATE "C",
      key_term bigint,
      content text NOT NULL
    )`,
    // Delete reconciliation walks key-hash prefixes; the term rides along for the sums.
    `CREATE INDEX IF NOT EXISTS ${t.documents}_key_hash ON ${t.documents} (key_hash) INCLUDE (key_term) WHERE key_hash IS NOT NULL`,
    // Finding documents synced before key hashes existed must not scan a large collection.
    `CREATE INDEX IF NOT EXISTS ${t.documents}_without_key_hash ON ${t.documents} (doc_id) WHERE key_hash IS NULL`,
    `CREATE TABLE IF NOT EXISTS ${t.chunks} (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      doc_id text COLLATE "C" NOT NULL REFERENCES ${t.documents} (doc_id),
      chunk_index integer NOT NULL,
      text text NOT NULL,
      metadata jsonb NOT NULL,
      embedding vector(${dimensions}) NOT NULL,
      tsv tsvector GENERATED ALWAYS AS (to_tsvector('kbsync_english', kbsync_keyword_text(text))) STORED,
      tokens integer GENERATED ALWAYS AS (kbsync_keyword_tokens(text)) STORED,
      UNIQUE (doc_id, chunk_index)
    ) WITH (toast_tuple_target = 8160)`,
    // pgvector gives its type EXTERNAL storage: past 2 kB a row's vector went to the TOAST table,
    // and an exact scan fetched every one from there (4-6x slower at 512 dimensions, measured).
    // MAIN keeps it in the row unless the row cannot fit a page, and the raised TOAST target keeps
    // a 512-d chunk's text and keyword vector in the row too.
    `ALTER TABLE ${t.chunks} ALTER COLUMN embedding SET STORAGE MAIN`,
    ...((withVectorIndex ? vectorIndexSql(collectionId, dimensions) : null) ?? []),
    `CREATE INDEX IF NOT EXISTS ${t.chunks}_tsv ON ${t.chunks} USING gin (tsv)`,
    // Equality filters (`metadata @> {...}`), for the exact plan of a selective filter.
    `CREATE INDEX IF NOT EXISTS ${t.chunks}_metadata ON ${t.chunks} USING gin (metadata jsonb_path_ops)`,
  ];
}

/**
 * The HNSW index of a collection, or null for dimensions no HNSW index takes. `concurrently`: CREATE
 * INDEX CONCURRENTLY (outside a transaction), which lets writes go on during the build.
 */
export function vectorIndexSql(
  collectionId: number,
  dimensions: number,
  ifNotExists = true,
  concurrently = false,
): string[] | null {
  const t = collectionTables(collectionId);
  const kind = indexKind(dimensions);
  if (kind === 'none') return null;
  const column =
    kind === 'halfvec'
      ? `(embedding::halfvec(${dimensions})) halfvec_cosine_ops`
      : 'embedding vector_cosine_ops';
  return [
    `CREATE INDEX ${concurrently ? 'CONCURRENTLY ' : ''}${ifNotExists ? 'IF NOT EXISTS ' : ''}${vectorIndexName(collectionId)} ON ${t.chunks} USING hnsw (${column}) WITH (m = ${HNSW_M}, ef_construction = ${HNSW_EF_CONSTRUCTION})`,
  ];
}

export function dropCollectionSql(collectionId: number): string[] {
  const t = collectionTables(collectionId);
  return [`DROP TABLE IF EXISTS ${t.chunks}`, `DROP TABLE IF EXISTS ${t.documents}`];
}

/**
 * A vector as a bound parameter in pgvector's binary form (int16 dimensions, int16 unused, then
 * float4 big-endian): the driver sends a Buffer in binary format and the server reads it with
 * vector_recv. Exact, and ten times cheaper on both sides than the text form, whose formatting
 * (JavaScript) and parsing (strtof per component) dominated writing and searching.
 */
export function vectorParam(embedding: Float32Array): Buffer {
  const out = Buffer.allocUnsafe(4 + 4 * embedding.length);
  out.writeInt16BE(embedding.length, 0);
  out.writeInt16BE(0, 2);
  writeFloatsBE(out, 4, embedding);
  return out;
}

/**
 * Vectors as one binary `vector[]` parameter (array_recv's format: 1 dimension, no NULLs, the
 * element type's OID, the length and lower bound 1, then each element's byte length and
 * vectorParam's bytes), so a batch of chunks is one parameter the server reads without parsing
 * text. `oid` is pgvector's type in the database written to (array_recv refuses any other).
 */
export function vectorArrayParam(embeddings: Float32Array[], oid: number): Buffer {
  let size = 20;
  for (const e of embeddings) size += 8 + 4 * e.length;
  const out = Buffer.allocUnsafe(size);
  let at = out.writeInt32BE(1, 0);
  at = out.writeInt32BE(0, at);
  at = out.writeUInt32BE(oid, at);
  at = out.writeInt32BE(embeddings.length, at);
  at = out.writeInt32BE(1, at);
  for (const e of embeddings) {
    at = out.writeInt32BE(4 + 4 * e.length, at);
    at = out.writeInt16BE(e.length, at);
    at = out.writeInt16BE(0, at);
    at = writeFloatsBE(out, at, e);
  }
  return out;
}

const LITTLE_ENDIAN = os.endianness() === 'LE';

/** The floats big-endian at `at`: a copy of their bytes, swapped in place (native, unlike writeFloatBE per float). */
function writeFloatsBE(out: Buffer, at: number, floats: Float32Array): number {
  const end = at + 4 * floats.length;
  Buffer.from(floats.buffer, floats.byteOffset, floats.byteLength).copy(out, at);
  if (LITTLE_ENDIAN) out.subarray(at, end).swap32();
  return end;
}
