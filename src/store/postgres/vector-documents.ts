/**
 * Documents read back whole, with their chunks and the vectors as stored: exportDocuments' pages
 * (`kbsync store copy`) and getDocuments' chosen ids (a rebuild's repairs). Run inside a
 * repeatable-read transaction, so documents and chunks come from one snapshot.
 */
import type { DocumentInput, Metadata } from '../vector-port.js';
import { pgText } from './vector-input.js';
import type { CollectionTables } from './vector-schema.js';
import { storableIds, type Queryable } from './vector-writes.js';

interface Row {
  doc_id: string;
  content: string;
  content_hash: string;
  metadata: Metadata;
  key_hash: string | null;
}

const COLUMNS = 'doc_id, content, content_hash, metadata, key_hash';

/** Documents in id order after `after`, at most `limit`; `more` says whether another page exists. */
export async function readDocumentPage(
  client: Queryable,
  t: CollectionTables,
  page: { limit: number; after: string | null },
): Promise<{ documents: DocumentInput[]; more: boolean }> {
  // One extra row says whether another page exists without a second COUNT query.
  const { rows } = await client.query<Row>(
    `SELECT ${COLUMNS} FROM ${t.documents} WHERE $1::text IS NULL OR doc_id > $1 ORDER BY doc_id LIMIT $2`,
    [page.after === null ? null : pgText(page.after), page.limit + 1],
  );
  return { documents: await withChunks(client, t, rows.slice(0, page.limit)), more: rows.length > page.limit };
}

/** The documents of `ids` that exist, in id order. */
export async function readDocumentsById(client: Queryable, t: CollectionTables, ids: string[]): Promise<DocumentInput[]> {
  const wanted = [...new Set(storableIds(ids))];
  if (wanted.length === 0) return [];
  const { rows } = await client.query<Row>(
    `SELECT ${COLUMNS} FROM ${t.documents} WHERE doc_id = ANY ($1::text[]) ORDER BY doc_id`,
    [wanted],
  );
  return withChunks(client, t, rows);
}

async function withChunks(client: Queryable, t: CollectionTables, rows: Row[]): Promise<DocumentInput[]> {
  if (rows.length === 0) return [];
  const chunks = await client.query<{ doc_id: string; chunk_index: number; text: string; embedding: string }>(
    `SELECT doc_id, chunk_index, text, embedding::text AS embedding FROM ${t.chunks}
     WHERE doc_id = ANY($1::text[]) ORDER BY doc_id, chunk_index`,
    [rows.map((r) => r.doc_id)],
  );
  const byDoc = new Map<string, DocumentInput['chunks']>();
  for (const ch of chunks.rows) {
    const list = byDoc.get(ch.doc_id) ?? [];
    // pgvector prints each float4 in the shortest form that reads back to the same value.
    list.push({ index: ch.chunk_index, text: ch.text, embedding: Float32Array.from(JSON.parse(ch.embedding) as number[]) });
    byDoc.set(ch.doc_id, list);
  }
  return rows.map(
    (row): DocumentInput => ({
      id: row.doc_id,
      content: row.content,
      contentHash: row.content_hash,
      metadata: row.metadata,
      chunks: byDoc.get(row.doc_id) ?? [],
      ...(row.key_hash !== null ? { keyHash: row.key_hash } : {}),
    }),
  );
}
