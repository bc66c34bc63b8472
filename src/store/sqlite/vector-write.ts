/**
 * Writing documents into one collection of the SQLite vector store: the document row, its chunk
 * rows, their vectors, keyword rows and candidate-index rows (bits and floats), and the
 * collection's chunk count, all kept in step. The caller holds the transaction; a collection's
 * own write and its shadow's part (a rebuild) go through the same code, so neither can miss a table.
 */
import type Database from 'better-sqlite3';
import { keyHashTerm } from '../../core/hash.js';
import type { DocumentInput, MetadataUpdate } from '../vector-port.js';
import { checkDocument, vectorBlob } from './vector-input.js';
import { type CollectionTables, canQuantize } from './vector-schema.js';

/** What a write needs to know of a collection. */
export interface WriteTarget {
  id: number;
  dimensions: number;
  tables: CollectionTables;
}

/** The store's per-collection statement cache (their SQL names the collection's own tables). */
export type StatementFor = (c: WriteTarget, key: string, sql: string) => Database.Statement;

export class CollectionWriter {
  readonly #s: ReturnType<typeof prepareWriteStatements>;
  readonly #statement: StatementFor;

  constructor(db: Database.Database, statement: StatementFor) {
    this.#s = prepareWriteStatements(db);
    this.#statement = statement;
  }

  /**
   * Replaces each document of `docs` with all its chunks and rewrites the metadata and hash of each
   * existing document of `metadataOnly`; answers how many of those existed.
   */
  upsert(c: WriteTarget, docs: DocumentInput[], metadataOnly: MetadataUpdate[], updatedAt: string): number {
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
    const index = this.#indexWriters(c);
    let chunkDelta = 0;
    for (const doc of docs) {
      // Checked one by one inside the transaction: a bad document late in the batch rolls back
      // the documents already written before it.
      checkDocument(doc, c.dimensions);
      chunkDelta -= this.#removeChunks(c, doc.id);
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
        const rowid = BigInt(this.#s.insertChunk.run(c.id, doc.id, chunk.index, chunk.text).lastInsertRowid);
        const blob = vectorBlob(chunk.embedding);
        insertVector.run(rowid, blob);
        insertKeywords.run(rowid, chunk.text);
        index?.insert(rowid, blob);
      }
      chunkDelta += doc.chunks.length;
    }
    if (chunkDelta !== 0) this.#s.addChunkCount.run(chunkDelta, c.id);
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
  }

  /** Deletes these documents with their chunks; answers how many existed. */
  delete(c: WriteTarget, ids: readonly string[]): number {
    let deleted = 0;
    let removed = 0;
    for (const id of ids) {
      removed += this.#removeChunks(c, id);
      deleted += this.#s.deleteDocument.run(c.id, id).changes;
    }
    if (removed > 0) this.#s.addChunkCount.run(-removed, c.id);
    return deleted;
  }

  /** Writes a chunk's sign bits and float copy (the candidate index); null without an index. */
  #indexWriters(c: WriteTarget): { insert(rowid: bigint, blob: Buffer): void } | null {
    if (!canQuantize(c.dimensions)) return null;
    const bits = this.#statement(
      c,
      'insertBits',
      `INSERT INTO ${c.tables.bits}(rowid, embedding) VALUES (?, vec_quantize_binary(vec_f32(?)))`,
    );
    const floats = this.#statement(
      c,
      'insertFloats',
      `INSERT INTO ${c.tables.floats}(id, embedding) VALUES (?, ?)`,
    );
    return {
      insert(rowid, blob) {
        bits.run(rowid, blob);
        floats.run(rowid, blob);
      },
    };
  }

  /**
   * Deletes a document's chunk rows, vectors (both index tables too) and keyword rows, keeping the
   * document row; answers how many chunks it removed.
   */
  #removeChunks(c: WriteTarget, docId: string): number {
    const ids = this.#s.chunkIdsOfDocument.all(c.id, docId) as Array<number | bigint>;
    if (ids.length === 0) return 0;
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
    const index = canQuantize(c.dimensions)
      ? {
          bits: this.#statement(c, 'deleteBits', `DELETE FROM ${c.tables.bits} WHERE rowid = ?`),
          floats: this.#statement(c, 'deleteFloats', `DELETE FROM ${c.tables.floats} WHERE id = ?`),
        }
      : null;
    for (const id of ids) {
      deleteVector.run(BigInt(id));
      deleteKeywords.run(id);
      index?.bits.run(BigInt(id));
      index?.floats.run(id);
    }
    this.#s.deleteChunksOfDocument.run(c.id, docId);
    return ids.length;
  }
}

function prepareWriteStatements(db: Database.Database) {
  return {
    addChunkCount: db.prepare('UPDATE kb_collections SET chunk_count = chunk_count + ? WHERE id = ?'),
    upsertDocument: db.prepare(
      `INSERT INTO kb_documents (collection_id, doc_id, content, content_hash, metadata, chunk_count, updated_at, key_hash, key_term)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (collection_id, doc_id) DO UPDATE SET
         content = excluded.content, content_hash = excluded.content_hash, metadata = excluded.metadata,
         chunk_count = excluded.chunk_count, updated_at = excluded.updated_at,
         key_hash = coalesce(excluded.key_hash, key_hash), key_term = coalesce(excluded.key_term, key_term)`,
    ),
    updateMetadata: db.prepare(
      `UPDATE kb_documents SET metadata = ?, content_hash = ?, updated_at = ?,
         key_hash = coalesce(?, key_hash), key_term = coalesce(?, key_term)
       WHERE collection_id = ? AND doc_id = ?`,
    ),
    deleteDocument: db.prepare('DELETE FROM kb_documents WHERE collection_id = ? AND doc_id = ?'),
    insertChunk: db.prepare(
      'INSERT INTO kb_chunks (collection_id, doc_id, chunk_index, text) VALUES (?, ?, ?, ?)',
    ),
    chunkIdsOfDocument: db.prepare('SELECT id FROM kb_chunks WHERE collection_id = ? AND doc_id = ?').pluck(),
    deleteChunksOfDocument: db.prepare('DELETE FROM kb_chunks WHERE collection_id = ? AND doc_id = ?'),
  };
}

/** A key hash's checksum term (core/hash.ts keyHashTerm), or null for a document without one. */
export function termOf(keyHash: string | undefined): number | null {
  return keyHash === undefined ? null : keyHashTerm(keyHash);
}
