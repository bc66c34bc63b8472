/**
 * The statements of the vector store's writes, each run inside the store's write transaction
 * (vector-store.ts holds the transaction, the registry lock and the order of steps).
 *
 * Lock order, so concurrent writers of one knowledge base neither deadlock often nor miscount:
 * document rows first, in id order (INSERT … ON CONFLICT over sorted rows, or lockDocuments),
 * then their chunks, then the registry row's counts (addCounts, always last). Under READ
 * COMMITTED each later statement sees what a writer it waited for committed, so the chunks
 * deleted and counted are the ones really stored.
 */
import type pg from 'pg';
import { keyHashTerm } from '../../core/hash.js';
import type { DocumentInput, MetadataUpdate } from '../vector-port.js';
import { pgMetadata, pgText } from './vector-input.js';
import { type CollectionTables, vectorArrayParam } from './vector-schema.js';

export type Queryable = Pick<pg.PoolClient, 'query'>;

/**
 * Vector components per chunk INSERT statement (2,000 chunks at 512 dimensions, 244 at 8,192): one
 * statement's vector parameter stays near 16 MB, far below the server's 1 GB limit on a value.
 */
const CHUNK_FLOATS = 1_024_000;

/** The last version of each id, in id order (so concurrent batches lock rows in one order). */
export function lastById<T extends { id: string }>(items: T[]): T[] {
  const byId = new Map<string, T>();
  for (const item of items) byId.set(item.id, item);
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * The ids that can name a stored document: one PostgreSQL cannot store (a NUL, an unpaired
 * surrogate) was refused on the way in, so it matches nothing, and mapping it (pgText) could make
 * it match another document.
 */
export function storableIds(ids: string[]): string[] {
  return ids.filter((id) => pgText(id) === id);
}

/** A key hash's checksum term (core/hash.ts keyHashTerm), or null for a document without one. */
export function termOf(keyHash: string | undefined): number | null {
  return keyHash === undefined ? null : keyHashTerm(keyHash);
}

/** Locks existing document rows in id order; waits for writers holding any of them. */
export async function lockDocuments(
  client: Queryable,
  t: CollectionTables,
  sortedIds: string[],
): Promise<string[]> {
  const { rows } = await client.query(
    `SELECT doc_id FROM ${t.documents} WHERE doc_id = ANY ($1::text[]) ORDER BY doc_id FOR UPDATE`,
    [sortedIds],
  );
  return rows.map((r) => r.doc_id as string);
}

/** $1-$8 of a document-row INSERT over unnest: one array per column, then the write's time. */
function documentRowParams(docs: DocumentInput[], updatedAt: Date): unknown[] {
  return [
    docs.map((d) => d.id),
    docs.map((d) => pgText(d.content)),
    docs.map((d) => d.contentHash),
    docs.map((d) => JSON.stringify(pgMetadata(d.metadata))),
    docs.map((d) => d.chunks.length),
    docs.map((d) => d.keyHash ?? null),
    docs.map((d) => termOf(d.keyHash)),
    updatedAt,
  ];
}

/**
 * Inserts or replaces document rows (sorted by id); a key hash left out keeps the stored one.
 * Answers the ids that were already stored (replaced, not inserted): only those can have chunks.
 */
export async function upsertDocumentRows(
  client: Queryable,
  t: CollectionTables,
  docs: DocumentInput[],
  updatedAt: Date,
): Promise<Set<string>> {
  // xmax is 0 on a row this statement inserted and set (our lock) on one it updated: the usual
  // way to tell the two arms of ON CONFLICT DO UPDATE apart in one round trip.
  const { rows } = await client.query(
    `INSERT INTO ${t.documents} AS d (doc_id, content, content_hash, metadata, chunk_count, key_hash, key_term, updated_at)
     SELECT u.*, $8::timestamptz
     FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::int[], $6::text[], $7::bigint[]) AS u
     ON CONFLICT (doc_id) DO UPDATE SET
       content = excluded.content, content_hash = excluded.content_hash, metadata = excluded.metadata,
       chunk_count = excluded.chunk_count, updated_at = excluded.updated_at,
       key_hash = coalesce(excluded.key_hash, d.key_hash), key_term = coalesce(excluded.key_term, d.key_term)
     RETURNING d.doc_id, d.xmax <> '0'::xid AS existed`,
    documentRowParams(docs, updatedAt),
  );
  return new Set(rows.filter((r) => r.existed === true).map((r) => r.doc_id as string));
}

/** Deletes the chunks of these documents; answers how many, and their words. */
export async function deleteChunks(
  client: Queryable,
  t: CollectionTables,
  ids: string[],
): Promise<{ chunks: number; tokens: number }> {
  const { rows } = await client.query(
    `WITH d AS (DELETE FROM ${t.chunks} WHERE doc_id = ANY ($1::text[]) RETURNING tokens)
     SELECT count(*) AS n, coalesce(sum(tokens), 0) AS t FROM d`,
    [ids],
  );
  return { chunks: Number(rows[0].n), tokens: Number(rows[0].t) };
}

/**
 * Inserts the documents' chunks in one statement per CHUNK_FLOATS of vectors: each column is one
 * array parameter (unnest), the vectors one binary `vector[]` (vectorArrayParam). A VALUES row of
 * five parameters per chunk cost more to send, parse and plan than to insert (issue 11). Each
 * chunk gets a copy of its document's metadata (vector-schema.ts says why).
 */
export async function insertChunks(
  client: Queryable,
  t: CollectionTables,
  dimensions: number,
  docs: DocumentInput[],
): Promise<{ chunks: number; tokens: number }> {
  const rows = docs.flatMap((d) => {
    const metadata = JSON.stringify(pgMetadata(d.metadata));
    return d.chunks.map((chunk) => ({ doc: d.id, chunk, metadata }));
  });
  const total = { chunks: 0, tokens: 0 };
  if (rows.length === 0) return total;
  const oid = await vectorTypeOid(client);
  const perStatement = Math.max(1, Math.floor(CHUNK_FLOATS / dimensions));
  for (let start = 0; start < rows.length; start += perStatement) {
    const part = rows.slice(start, start + perStatement);
    const { rows: result } = await client.query(
      `WITH i AS (
         INSERT INTO ${t.chunks} (doc_id, chunk_index, text, metadata, embedding)
         SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::jsonb[], $5::vector(${dimensions})[])
         RETURNING tokens)
       SELECT count(*) AS n, coalesce(sum(tokens), 0) AS t FROM i`,
      [
        part.map((x) => x.doc),
        part.map((x) => x.chunk.index),
        part.map((x) => pgText(x.chunk.text)),
        part.map((x) => x.metadata),
        vectorArrayParam(
          part.map((x) => x.chunk.embedding),
          oid,
        ),
      ],
    );
    total.chunks += Number(result[0].n);
    total.tokens += Number(result[0].t);
  }
  return total;
}

/**
 * The OID of pgvector's type as the store's SQL resolves `vector`, which a binary array parameter
 * must name. Looked up once per connection (a connection reaches one database); the type cannot
 * change under a live collection, since dropping the extension drops every vector column with it.
 */
const vectorOids = new WeakMap<Queryable, Promise<number>>();
export function vectorTypeOid(client: Queryable): Promise<number> {
  let oid = vectorOids.get(client);
  if (oid === undefined) {
    oid = client.query("SELECT 'vector'::regtype::oid AS oid").then(({ rows }) => Number(rows[0].oid));
    // A failed look-up (an aborted transaction) is not remembered: the next write asks again.
    oid.catch(() => vectorOids.delete(client));
    vectorOids.set(client, oid);
  }
  return oid;
}

/**
 * Sets the metadata and stored hash of existing documents (sorted by id, their rows locked) and the
 * metadata copies on their chunks; answers how many documents existed.
 */
export async function updateMetadata(
  client: Queryable,
  t: CollectionTables,
  updates: MetadataUpdate[],
  updatedAt: Date,
): Promise<number> {
  const { rows } = await client.query(
    `WITH u AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::text[], $5::bigint[])
         AS u(id, content_hash, metadata, key_hash, key_term)
     ), d AS (
       UPDATE ${t.documents} d SET metadata = u.metadata, content_hash = u.content_hash, updated_at = $6,
         key_hash = coalesce(u.key_hash, d.key_hash), key_term = coalesce(u.key_term, d.key_term)
       FROM u WHERE d.doc_id = u.id RETURNING 1
     ), c AS (
       UPDATE ${t.chunks} c SET metadata = u.metadata FROM u WHERE c.doc_id = u.id RETURNING 1
     )
     SELECT count(*) AS n FROM d`,
    [
      updates.map((u) => u.id),
      updates.map((u) => u.contentHash),
      updates.map((u) => JSON.stringify(pgMetadata(u.metadata))),
      updates.map((u) => u.keyHash ?? null),
      updates.map((u) => termOf(u.keyHash)),
      updatedAt,
    ],
  );
  return Number(rows[0].n);
}

/**
 * The last statement of a write: the registry row is locked from here to the commit only. Also
 * stamps the write's time (the clock's, near the commit, not the transaction's start), which an
 * HNSW build waits to be a few seconds old (vector-index.ts). Answers the new chunk count, or null
 * when nothing changed.
 */
export async function addCounts(
  client: Queryable,
  collectionId: number,
  chunks: number,
  tokens: number,
): Promise<number | null> {
  if (chunks === 0 && tokens === 0) return null;
  const { rows } = await client.query(
    `UPDATE kb_collections SET chunk_count = chunk_count + $1, token_count = token_count + $2, written_at = clock_timestamp()
     WHERE id = $3 RETURNING chunk_count`,
    [chunks, tokens, collectionId],
  );
  return rows[0] === undefined ? null : Number(rows[0].chunk_count);
}

/** A change in a collection's chunks and words, to add to its registry row (addCounts). */
export interface CountChange {
  chunks: number;
  tokens: number;
}

/**
 * The document part of upsertDocuments in one collection (checked by the caller): replaces `docs`
 * with their chunks and sets the metadata of the existing `metadataOnly` documents. Answers how
 * many of those existed, and the change in chunks and words.
 */
export async function writeDocuments(
  client: Queryable,
  t: CollectionTables,
  dimensions: number,
  docs: DocumentInput[],
  metadataOnly: MetadataUpdate[],
  updatedAt: Date,
): Promise<CountChange & { updated: number }> {
  const latest = lastById(docs);
  let added = { chunks: 0, tokens: 0 };
  let removed = { chunks: 0, tokens: 0 };
  if (latest.length > 0) {
    // Locks the document rows (in id order) before their chunks are replaced. A row inserted just
    // now has no chunks (they reference it, and a writer of the same id waits for this one), so
    // only replaced documents' chunks are looked for: a backfill's batch skips the DELETE.
    const existed = await upsertDocumentRows(client, t, latest, updatedAt);
    if (existed.size > 0) removed = await deleteChunks(client, t, [...existed]);
    added = await insertChunks(client, t, dimensions, latest);
  }
  // An id PostgreSQL cannot store names no stored document: nothing to update.
  const updates = lastById(metadataOnly.filter((u) => storableIds([u.id]).length === 1));
  let updated = 0;
  if (updates.length > 0) {
    // Locked first, so the chunk copies are set on the chunks a writer in flight leaves.
    await lockDocuments(
      client,
      t,
      updates.map((u) => u.id),
    );
    updated = await updateMetadata(client, t, updates, updatedAt);
  }
  return { updated, chunks: added.chunks - removed.chunks, tokens: added.tokens - removed.tokens };
}

/** Deletes these documents (sorted, storable ids) and their chunks; answers how many existed, and the change. */
export async function removeDocuments(
  client: Queryable,
  t: CollectionTables,
  sortedIds: string[],
): Promise<CountChange & { removed: number }> {
  // The document rows first: an upsert of one of them in flight finishes before its chunks
  // are counted and deleted here, so the counts subtracted are the ones stored.
  // Only the rows locked here are deleted: a document another transaction inserted meanwhile was
  // invisible to the lock (and to the chunk delete) and becomes visible to a later statement;
  // deleting its row would leave its chunks behind (a foreign-key error). Its insert counts as
  // after this delete, as it would have had it committed a moment later.
  const locked = await lockDocuments(client, t, sortedIds);
  if (locked.length === 0) return { removed: 0, chunks: 0, tokens: 0 };
  const gone = await deleteChunks(client, t, locked);
  const { rowCount } = await client.query(`DELETE FROM ${t.documents} WHERE doc_id = ANY ($1::text[])`, [locked]);
  return { removed: rowCount ?? 0, chunks: -gone.chunks, tokens: -gone.tokens };
}

/**
 * Inserts the document rows (sorted by id) that the collection does not hold yet, leaving those it
 * holds as they are (a rebuild's copy, vector-shadow.ts); answers the ids inserted.
 */
export async function insertNewDocumentRows(
  client: Queryable,
  t: CollectionTables,
  docs: DocumentInput[],
  updatedAt: Date,
): Promise<Set<string>> {
  const { rows } = await client.query(
    `INSERT INTO ${t.documents} (doc_id, content, content_hash, metadata, chunk_count, key_hash, key_term, updated_at)
     SELECT u.*, $8::timestamptz
     FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::int[], $6::text[], $7::bigint[]) AS u
     ON CONFLICT (doc_id) DO NOTHING RETURNING doc_id`,
    documentRowParams(docs, updatedAt),
  );
  return new Set(rows.map((r) => r.doc_id as string));
}
