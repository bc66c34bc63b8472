/**
 * A collection of the SQLite vector store as its methods see it: one kb_collections row (read in
 * the transaction that uses it) and the names of its per-collection tables.
 */
import type { CollectionTables } from './vector-schema.js';

export interface Collection {
  id: number;
  dimensions: number;
  /** Chunks stored (kb_collections.chunk_count, kept in step with every write). */
  chunks: number;
  tables: CollectionTables;
  /** kb_id of the shadow every write must also reach (a rebuild), or null (migration 11). */
  shadow: string | null;
  /** kb_id of the shadow that replaced this collection: non-null means retired (writes refused). */
  replacedBy: string | null;
}
