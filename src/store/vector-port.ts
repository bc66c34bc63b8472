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

/**
 * A knowledge base's collections changed since the caller read them: a rebuild started (the
 * collection now has a shadow the write did not carry), was cancelled, or swapped (the collection
 * is retired). Nothing was written; the caller reads the knowledge base again and retries.
 */
export class CollectionsChanged extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CollectionsChanged';
  }
}

/**
 * The same write for a collection's shadow (a rebuild under another model or chunking): its own
 * chunks and vectors, computed against the shadow's hashes. Applied in the transaction of the
 * collection's own write.
 */
export interface ShadowWrite {
  collection: string;
  docs: DocumentInput[];
  metadataOnly: MetadataUpdate[];
}

/** Where a collection stands in a rebuild (null from collectionState: no such collection). */
export interface CollectionState {
  dimensions: number;
  /** The shadow every write must also reach (startShadow), or null. */
  shadow: string | null;
  /** Replaced by its shadow (promoteShadow): still readable, refuses writes, dropped later. */
  retired: boolean;
}

/** How a collection and its shadow differ (promoteShadow swaps only when both lists are empty). */
export interface ShadowDifferences {
  /** In the collection but absent from the shadow or stored there with another hash. */
  missing: string[];
  /** In the shadow but no longer in the collection. */
  extra: string[];
}

export interface VectorStore {
  /** Creates the per-KB collection; idempotent. */
  createCollection(kbId: string, dimensions: number): Promise<void>;
  /** Removes the collection's documents, chunks, vectors and keyword index, and its shadow if it has one. */
  dropCollection(kbId: string): Promise<void>;
  /** Content hashes of the given ids that exist. */
  getContentHashes(kbId: string, ids: string[]): Promise<Map<string, string>>;
  /**
   * Replaces each document of `docs` and all its chunks, and the metadata and stored hash of each
   * existing document in `metadataOnly` (content, chunks and vectors unchanged); the whole call
   * is one transaction. Returns how many `metadataOnly` documents existed and were updated.
   *
   * `shadow` is written in the same transaction. Throws CollectionsChanged (writing nothing) when
   * the collection is retired, or when its shadow (collectionState) is not `shadow?.collection`.
   */
  upsertDocuments(kbId: string, docs: DocumentInput[], metadataOnly?: MetadataUpdate[], shadow?: ShadowWrite): Promise<number>;
  /** Also deletes it from the collection's shadow, in the same transaction; CollectionsChanged when retired. */
  deleteDocument(kbId: string, id: string): Promise<boolean>;
  /**
   * Deletes these documents with their chunks in one transaction, from the collection and from its
   * shadow; answers how many existed in the collection. CollectionsChanged when retired.
   */
  deleteDocuments(kbId: string, ids: string[]): Promise<number>;

  // --- Rebuilds (kb/rebuild.ts): a shadow collection filled under a new model or chunking ---
  collectionState(kbId: string): Promise<CollectionState | null>;
  /**
   * Creates collection `shadowId` with `dimensions` and links it as `kbId`'s shadow, in one
   * transaction; from then on every write to `kbId` must carry the shadow's part. Idempotent for
   * the same shadow; CollectionsChanged if `kbId` is retired or has another shadow; NOT_FOUND if
   * `kbId` does not exist.
   */
  startShadow(kbId: string, shadowId: string, dimensions: number): Promise<void>;
  /** Unlinks and drops the shadow (a cancelled or failed rebuild); idempotent. */
  dropShadow(kbId: string, shadowId: string): Promise<void>;
  /**
   * The rebuild's copy, one transaction: each document of `docs` (already re-chunked and embedded
   * for the shadow) is inserted into the shadow only if the shadow does not hold it yet and the
   * collection still holds it with the hash `expected` gives (what the rebuild read), so a write
   * that landed meanwhile (it reached both) is never overwritten with older content. Answers how
   * many were inserted. CollectionsChanged if `shadowId` is no longer `kbId`'s shadow.
   */
  copyToShadow(kbId: string, shadowId: string, docs: DocumentInput[], expected: ReadonlyMap<string, string>): Promise<number>;
  /** Documents whose content or hash differs between the collection and its shadow, at most `limit` of each kind. */
  shadowDifferences(kbId: string, shadowId: string, limit: number): Promise<ShadowDifferences>;
  /**
   * The swap, one transaction: when the shadow holds exactly the collection's documents (same ids,
   * same hashes, checked inside the transaction), `kbId` is retired (unlinked, writes refused,
   * reads still answered until dropCollection) and `shadowId` becomes a plain collection; answers
   * true. Otherwise (differences, or `shadowId` not or no longer `kbId`'s shadow) changes nothing
   * and answers false. Idempotent: true if already done (kbId retired for this very shadowId).
   */
  promoteShadow(kbId: string, shadowId: string): Promise<boolean>;
  /** Collections promoteShadow retired and dropCollection has not dropped yet (a sweep drops the unreferenced ones). */
  retiredCollections(): Promise<string[]>;
  /** These documents with their chunks and stored vectors (those that exist), for a rebuild's repairs. */
  getDocuments(kbId: string, ids: string[]): Promise<DocumentInput[]>;
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
