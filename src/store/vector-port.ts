/**
 * The vector + keyword store port: documents, their chunks, vectors (cosine) and a keyword index
 * (BM25), per knowledge base. Adapters: sqlite/ (sqlite-vec + FTS5, same file as the control store)
 * and, later, postgres/ (pgvector + tsvector). Nothing here names a driver type.
 */

export type MetadataValue = string | number | boolean | null;
export type Metadata = Record<string, MetadataValue>;

/** Metadata filter: field -> value (equality) or {in} / {gte, lte} (API.md, query `filter`). */
export type MetadataFilter = Record<
  string,
  MetadataValue | { in?: MetadataValue[]; gte?: string | number; lte?: string | number }
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
}

export interface MetadataUpdate {
  id: string;
  contentHash: string;
  metadata: Metadata;
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
  listDocuments(
    kbId: string,
    page: { limit: number; after: string | null },
  ): Promise<{ documents: StoredDocument[]; next: string | null }>;
  counts(kbId: string): Promise<{ documents: number; chunks: number }>;
  searchVector(
    kbId: string,
    embedding: Float32Array,
    options: { topK: number; filter?: MetadataFilter },
  ): Promise<SearchHit[]>;
  searchKeyword(kbId: string, query: string, options: { topK: number; filter?: MetadataFilter }): Promise<SearchHit[]>;
}
