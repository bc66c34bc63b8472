/**
 * Rebuilds on PostgreSQL (kb/rebuild.ts drives them): a collection's shadow is another collection,
 * of any dimensions, linked by kb_collections.shadow; promoteShadow retires the collection
 * (kb_collections.retired_for) in favour of it. Each function runs inside one transaction the store
 * opens, and takes the collection's registry row FOR UPDATE before it checks the link, so a
 * concurrent write (FOR KEY SHARE, vector-collections.ts) either committed before the check or
 * sees the link as changed. See vector-port.ts for what each promises.
 */
import { conflict, notFound } from '../../core/errors.js';
import { CollectionsChanged, type DocumentInput, type ShadowDifferences } from '../vector-port.js';
import { type Collection, lockForWrite, lookupCollection } from './vector-collections.js';
import { checkDocument, checkKbId } from './vector-input.js';
import { checkDimensions, createCollectionSql, dropCollectionSql } from './vector-schema.js';
import {
  addCounts,
  insertChunks,
  insertNewDocumentRows,
  lastById,
  type Queryable,
  storableIds,
} from './vector-writes.js';

export async function startShadow(
  client: Queryable,
  kbId: string,
  shadowId: string,
  dimensions: number,
  withVectorIndex: boolean,
): Promise<void> {
  checkKbId(shadowId);
  checkDimensions(dimensions);
  if (shadowId === kbId) throw new RangeError(`collection '${kbId}' cannot be its own shadow`);
  const c = await lookupCollection(client, kbId, 'FOR UPDATE');
  if (c === null) throw notFound('knowledge base', kbId);
  if (c.retiredFor !== null) throw new CollectionsChanged(`collection '${kbId}' is retired`);
  if (c.shadow === shadowId) {
    const s = await lookupCollection(client, shadowId);
    if (s !== null && s.dimensions !== dimensions) {
      throw conflict('Shadow collection already exists with other dimensions', [
        `collection '${shadowId}' has ${s.dimensions} dimensions, not ${dimensions}`,
      ]);
    }
    return;
  }
  if (c.shadow !== null) throw new CollectionsChanged(`collection '${kbId}' already has the shadow '${c.shadow}'`);
  const inserted = await client.query(
    'INSERT INTO kb_collections (kb_id, dimensions) VALUES ($1, $2) ON CONFLICT (kb_id) DO NOTHING RETURNING id',
    [shadowId, dimensions],
  );
  // An existing collection is never taken over as a shadow: dropShadow would drop it.
  if (inserted.rows.length === 0) throw conflict('A collection with the shadow\'s name already exists', [`collection '${shadowId}'`]);
  const id = Number(inserted.rows[0]!.id);
  for (const sql of createCollectionSql(id, dimensions, withVectorIndex)) await client.query(sql);
  await client.query('UPDATE kb_collections SET shadow = $2 WHERE id = $1', [c.id, shadowId]);
}

/**
 * Only a linked shadow is dropped: an unlinked one may be the collection that replaced `kbId`.
 * `beforeDrop` runs just before its tables are dropped (the store cancels its index build there).
 */
export async function dropShadow(
  client: Queryable,
  kbId: string,
  shadowId: string,
  beforeDrop: (collectionId: number) => Promise<void>,
): Promise<void> {
  const c = await lookupCollection(client, kbId, 'FOR UPDATE');
  if (c === null || c.shadow !== shadowId) return;
  const s = await lookupCollection(client, shadowId, 'FOR UPDATE');
  await client.query('UPDATE kb_collections SET shadow = NULL WHERE id = $1', [c.id]);
  if (s === null) return;
  await beforeDrop(s.id);
  for (const sql of dropCollectionSql(s.id)) await client.query(sql);
  await client.query('DELETE FROM kb_collections WHERE id = $1', [s.id]);
}

/** Answers how many documents were inserted into the shadow, and the shadow (for its index). */
export async function copyToShadow(
  client: Queryable,
  kbId: string,
  shadowId: string,
  docs: DocumentInput[],
  expected: ReadonlyMap<string, string>,
  updatedAt: Date,
): Promise<{ inserted: number; shadow: Collection; chunks: number | null }> {
  const locked = await lockForWrite(client, kbId);
  if (locked === null) throw notFound('knowledge base', kbId);
  const { collection: c, shadow: s } = locked;
  if (c.shadow !== shadowId || s === null) {
    throw new CollectionsChanged(`'${shadowId}' is not the shadow of collection '${kbId}'`);
  }
  for (const doc of docs) checkDocument(doc, s.dimensions);
  const candidates = lastById(docs).filter((d) => storableIds([d.id]).length === 1 && expected.has(d.id));
  if (candidates.length === 0) return { inserted: 0, shadow: s, chunks: null };
  // The collection's rows, locked in id order: a write of one of them in flight (it reaches the
  // shadow too) commits first and its hash then differs from `expected`; a write after this one
  // waits, and replaces what is copied here.
  const { rows } = await client.query(
    `SELECT doc_id, content_hash FROM ${c.tables.documents} WHERE doc_id = ANY ($1::text[]) ORDER BY doc_id FOR SHARE`,
    [candidates.map((d) => d.id)],
  );
  const held = new Map(rows.map((r) => [r.doc_id as string, r.content_hash as string]));
  const current = candidates.filter((d) => held.get(d.id) === expected.get(d.id));
  if (current.length === 0) return { inserted: 0, shadow: s, chunks: null };
  const inserted = await insertNewDocumentRows(client, s.tables, current, updatedAt);
  const added = await insertChunks(
    client,
    s.tables,
    s.dimensions,
    current.filter((d) => inserted.has(d.id)),
  );
  const chunks = await addCounts(client, s.id, added.chunks, added.tokens);
  return { inserted: inserted.size, shadow: s, chunks };
}

/** Differences between two collections' documents (ids and hashes), at most `limit` of each kind. */
export async function differences(
  client: Queryable,
  c: Collection,
  s: Collection,
  limit: number,
): Promise<ShadowDifferences> {
  const missing = await client.query(
    `SELECT k.doc_id FROM ${c.tables.documents} k LEFT JOIN ${s.tables.documents} s ON s.doc_id = k.doc_id
     WHERE s.doc_id IS NULL OR s.content_hash <> k.content_hash ORDER BY k.doc_id LIMIT $1`,
    [limit],
  );
  const extra = await client.query(
    `SELECT s.doc_id FROM ${s.tables.documents} s
     WHERE NOT EXISTS (SELECT 1 FROM ${c.tables.documents} k WHERE k.doc_id = s.doc_id) ORDER BY s.doc_id LIMIT $1`,
    [limit],
  );
  return {
    missing: missing.rows.map((r) => r.doc_id as string),
    extra: extra.rows.map((r) => r.doc_id as string),
  };
}

export async function shadowDifferences(
  client: Queryable,
  kbId: string,
  shadowId: string,
  limit: number,
): Promise<ShadowDifferences> {
  if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError(`limit must be a whole number, got ${limit}`);
  const c = await lookupCollection(client, kbId);
  if (c === null) throw notFound('knowledge base', kbId);
  const s = await lookupCollection(client, shadowId);
  if (s === null) throw notFound('knowledge base', shadowId);
  return differences(client, c, s, limit);
}

export async function promoteShadow(client: Queryable, kbId: string, shadowId: string): Promise<boolean> {
  const c = await lookupCollection(client, kbId, 'FOR UPDATE');
  if (c === null) return false;
  if (c.retiredFor !== null) return c.retiredFor === shadowId;
  if (c.shadow !== shadowId) return false;
  // Also locked, so no write straight to the shadow lands between the comparison and the swap.
  const s = await lookupCollection(client, shadowId, 'FOR UPDATE');
  if (s === null) return false;
  const diff = await differences(client, c, s, 1);
  if (diff.missing.length > 0 || diff.extra.length > 0) return false;
  await client.query('UPDATE kb_collections SET retired_for = $2, shadow = NULL WHERE id = $1', [c.id, shadowId]);
  return true;
}

export async function retiredCollections(client: Queryable): Promise<string[]> {
  const { rows } = await client.query(
    'SELECT kb_id FROM kb_collections WHERE retired_for IS NOT NULL ORDER BY kb_id COLLATE "C"',
  );
  return rows.map((r) => r.kb_id as string);
}
