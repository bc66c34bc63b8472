/**
 * The vector + keyword store port: documents, their chunks, vectors (cosine) and a keyword index
 * (BM25), per knowledge base. Adapters: sqlite/ (sqlite-vec + FTS5, same file as the control store)
 * and, later, postgres/ (pgvector + tsvector). Nothing here names a driver type.
 */

export type MetadataValue = string | number | boolean | null;
export type Metadata = Record<string, MetadataValue>;

/**
 * Metadata filter: field -> value (equality) or {in, gt, gte, lt, lte} (API.md, query `filter`).
 * Bounds compare numbers numerically and ISO 8601 times chronologically (sqlite/metadata-filter.ts).
 */
export type MetadataFilter = Record<
  string,
  | MetadataValue
  | {
      in?: MetadataValue[];
      gt?: string | number;
      gte?: string | number;
      lt?: string | number;
      lte?: string | number;
    }
>;

export interface ChunkInput {
  index: number;
  text: string;
  embedding: Float32Array;
}

export interface DocumentInput {
  id: string;
  content: string;
  contentHash: string;
  metadata: Metadata;
  chunks: ChunkInput[];
  /**
   * MD5 of the source key (core/hash.ts keyHash) for a document synced from a table row; absent
   * for documents written through the documents API, which delete reconciliation never touches.
   */
  keyHash?: string;
}

export interface MetadataUpdate {
  id: string;
  contentHash: string;
  metadata: Metadata;
  /** As DocumentInput.keyHash; fills it in for a document stored before key hashes existed. */
  keyHash?: string;
}

/** Synced documents whose key hash starts with `bucket` (delete reconciliation). */
export interface KeyHashBucket {
  bucket: string;
  count: number;
  /** Sum of the keys' hash terms (core/hash.ts keyHashTerm), as decimal digits. */
  sum: string;
}

export interface StoredDocument {
  id: string;
  content: string;
  contentHash: string;
  metadata: Metadata;
  chunkCount: number;
  updatedAt: string;
}

export interface SearchHit {
  documentId: string;
  chunkId: string;
  content: string;
  metadata: Metadata;
  /** Raw score of the search kind: cosine similarity in [-1, 1] for vectors, BM25 (higher is better) for keywords. */
  score: number;
}

export interface VectorStore {
  /** Creates the per-KB collection; idempotent. */
  createCollection(kbId: string, dimensions: number): Promise<void>;
  /** Removes the collection's documents, chunks, vectors and keyword index. */
  dropCollection(kbId: string): Promise<void>;
  /** Content hashes of the given ids that exist. */
  getContentHashes(kbId: string, ids: string[]): Promise<Map<string, string>>;
  /**
   * Replaces each document of `docs` and all its chunks, and the metadata and stored hash of each
   * existing document in `metadataOnly` (content, chunks and vectors unchanged); the whole call
   * is one transaction. Returns how many `metadataOnly` documents existed and were updated.
   */
  upsertDocuments(kbId: string, docs: DocumentInput[], metadataOnly?: MetadataUpdate[]): Promise<number>;
  deleteDocument(kbId: string, id: string): Promise<boolean>;
  /** Deletes these documents with their chunks in one transaction; answers how many existed. */
  deleteDocuments(kbId: string, ids: string[]): Promise<number>;
  /**
   * Synced documents (those with a key hash) grouped by the first `digits` hex digits of their
   * key hash, only under the prefixes `within` when given: the knowledge base's side of delete
   * reconciliation, answered from an index.
   */
  keyHashBuckets(kbId: string, digits: number, within: string[] | null): Promise<KeyHashBucket[]>;
  /** Ids of the synced documents whose key hash starts with one of `buckets` (all of one length). */
  documentIdsInKeyBuckets(kbId: string, buckets: string[]): Promise<string[]>;
  /**
   * Documents synced from `sourceTable` before key hashes were stored (their metadata names the
   * table and a `row_key`; they have no key hash), in id order after `after`, at most `limit`.
   * `setKeyHashes` fills them in.
   */
  documentsWithoutKeyHash(kbId: string, sourceTable: string, page: { after: string | null; limit: number }): Promise<string[]>;
  setKeyHashes(kbId: string, hashes: Array<{ id: string; keyHash: string }>): Promise<void>;
  listDocuments(
    kbId: string,
    page: { limit: number; after: string | null },
  ): Promise<{ documents: StoredDocument[]; next: string | null }>;
  counts(kbId: string): Promise<{ documents: number; chunks: number }>;
  /**
   * Documents with their chunks and the vectors as stored, in id order after `after`, at most
   * `limit` (`kbsync store copy`: a copy never re-embeds). The collection's dimensions come along.
   */
  exportDocuments(
    kbId: string,
    page: { limit: number; after: string | null },
  ): Promise<{ dimensions: number; documents: DocumentInput[]; next: string | null }>;
  searchVector(
    kbId: string,
    embedding: Float32Array,
    options: { topK: number; filter?: MetadataFilter },
  ): Promise<SearchHit[]>;
  searchKeyword(kbId: string, query: string, options: { topK: number; filter?: MetadataFilter }): Promise<SearchHit[]>;
}
