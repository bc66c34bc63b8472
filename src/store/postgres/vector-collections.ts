/**
 * The collection registry (kb_collections, migrations.ts) as the vector store reads it: one row per
 * collection, with its running counts, its rebuild links (vector-shadow.ts) and, from the catalog,
 * whether its HNSW index is there and valid (vector-index.ts builds it late, and a crashed build
 * leaves an INVALID one that no search may rely on).
 *
 * Row locks, in the order every transaction takes them (a collection before its shadow):
 * - FOR KEY SHARE: writes. Writers of one collection do not block each other.
 * - FOR UPDATE: what changes the collection itself (drop, startShadow, dropShadow, promoteShadow).
 *   It conflicts with KEY SHARE, so a write's checks (retired? which shadow?) hold until it commits.
 */
import { CollectionsChanged } from '../vector-port.js';
import { type CollectionTables, collectionTables } from './vector-schema.js';
import type { Queryable } from './vector-writes.js';

export interface Collection {
  id: number;
  kbId: string;
  dimensions: number;
  chunks: number;
  tables: CollectionTables;
  /** kb_id of the shadow every write must also reach, or null. */
  shadow: string | null;
  /** The shadow that replaced this collection (promoteShadow), or null: a non-null one refuses writes. */
  retiredFor: string | null;
  /** The HNSW index exists and is valid (searches may use it). */
  indexed: boolean;
}

export type RowLock = '' | 'FOR KEY SHARE' | 'FOR UPDATE';

interface RegistryRow {
  id: string;
  kb_id: string;
  dimensions: number;
  chunk_count: string;
  shadow: string | null;
  retired_for: string | null;
  indexed: boolean;
}

/** The index is looked up by name on the search_path (the store's schema first), never by kbId. */
const SELECT = `SELECT c.id, c.kb_id, c.dimensions, c.chunk_count, c.shadow, c.retired_for,
  coalesce((SELECT x.indisvalid AND x.indisready FROM pg_index x
            WHERE x.indexrelid = to_regclass('kb_chunks_' || c.id || '_hnsw')), false) AS indexed
  FROM kb_collections c`;

export async function lookupCollection(client: Queryable, kbId: string, lock: RowLock = ''): Promise<Collection | null> {
  const { rows } = await client.query<RegistryRow>(`${SELECT} WHERE c.kb_id = $1 ${lock === '' ? '' : `${lock} OF c`}`, [kbId]);
  const row = rows[0];
  return row === undefined ? null : toCollection(row);
}

export async function lookupCollectionById(client: Queryable, id: number): Promise<Collection | null> {
  const { rows } = await client.query<RegistryRow>(`${SELECT} WHERE c.id = $1`, [id]);
  const row = rows[0];
  return row === undefined ? null : toCollection(row);
}

function toCollection(row: RegistryRow): Collection {
  const id = Number(row.id);
  return {
    id,
    kbId: row.kb_id,
    dimensions: Number(row.dimensions),
    chunks: Number(row.chunk_count),
    tables: collectionTables(id),
    shadow: row.shadow,
    retiredFor: row.retired_for,
    indexed: row.indexed,
  };
}

/**
 * The collection a write to `kbId` goes to, and its shadow's, both locked FOR KEY SHARE: null when
 * there is no such collection. CollectionsChanged when it is retired or its shadow is not
 * `expectedShadow` (undefined: whatever it is, for writes that reach the shadow by themselves).
 */
export async function lockForWrite(
  client: Queryable,
  kbId: string,
  expectedShadow?: string | null,
): Promise<{ collection: Collection; shadow: Collection | null } | null> {
  const collection = await lookupCollection(client, kbId, 'FOR KEY SHARE');
  if (collection === null) return null;
  if (collection.retiredFor !== null) {
    throw new CollectionsChanged(`collection '${kbId}' was replaced by '${collection.retiredFor}' and takes no more writes`);
  }
  if (expectedShadow !== undefined && collection.shadow !== expectedShadow) {
    throw new CollectionsChanged(
      `collection '${kbId}' has shadow ${JSON.stringify(collection.shadow)}, the write carried ${JSON.stringify(expectedShadow)}`,
    );
  }
  if (collection.shadow === null) return { collection, shadow: null };
  const shadow = await lookupCollection(client, collection.shadow, 'FOR KEY SHARE');
  // Dropped since the row above was read (deleting it unlinks it): the write's view is stale.
  if (shadow === null && expectedShadow !== undefined) {
    throw new CollectionsChanged(`the shadow '${collection.shadow}' of collection '${kbId}' was dropped`);
  }
  return { collection, shadow };
}
