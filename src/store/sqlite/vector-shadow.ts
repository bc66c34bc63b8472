/**
 * The rebuild methods of the SQLite vector store (migration 11): the link from a collection to its
 * shadow (kb_collections.shadow), the copy into it, the comparison of the two, and the swap that
 * retires the collection (kb_collections.replaced_by). A shadow is an ordinary collection (its own
 * kb_vec_/kb_fts_/index tables, its own dimensions, written by the same CollectionWriter); only the
 * link makes it one. Each method reads the link in the transaction that writes, so every check
 * guards the write it precedes. The shadow part of ordinary writes and deletes is in vector-store.ts.
 *
 * The comparison is two anti-joins on kb_documents' (collection_id, doc_id) key: one index probe
 * per document, no document loaded into JavaScript.
 */
import type Database from 'better-sqlite3';
import { conflict } from '../../core/errors.js';
import {
  CollectionsChanged,
  type CollectionState,
  type DocumentInput,
  type ShadowDifferences,
} from '../vector-port.js';
import type { Collection } from './vector-collection.js';
import { checkKbId, checkPageLimit } from './vector-input.js';
import type { CollectionWriter } from './vector-write.js';

/** In the collection (first parameter) with no document of the same id and hash in the shadow (second). */
const MISSING = `SELECT d.doc_id FROM kb_documents d
  WHERE d.collection_id = ? AND NOT EXISTS (
    SELECT 1 FROM kb_documents s WHERE s.collection_id = ? AND s.doc_id = d.doc_id AND s.content_hash = d.content_hash)`;

/** In the shadow (first parameter) with no row of the same id in the collection (second). */
const EXTRA = `SELECT s.doc_id FROM kb_documents s
  WHERE s.collection_id = ? AND NOT EXISTS (
    SELECT 1 FROM kb_documents d WHERE d.collection_id = ? AND d.doc_id = s.doc_id)`;

function prepareShadowStatements(db: Database.Database) {
  return {
    link: db.prepare('UPDATE kb_collections SET shadow = ? WHERE id = ?'),
    unlink: db.prepare('UPDATE kb_collections SET shadow = NULL WHERE id = ?'),
    /** Collections whose shadow this kb_id is (at most one; a shadow has no shadow of its own). */
    shadowOwners: db.prepare('SELECT kb_id FROM kb_collections WHERE shadow = ?').pluck(),
    unlinkShadowNamed: db.prepare('UPDATE kb_collections SET shadow = NULL WHERE shadow = ?'),
    retire: db.prepare('UPDATE kb_collections SET shadow = NULL, replaced_by = ? WHERE id = ?'),
    retired: db
      .prepare('SELECT kb_id FROM kb_collections WHERE replaced_by IS NOT NULL ORDER BY kb_id')
      .pluck(),
    contentHash: db
      .prepare('SELECT content_hash FROM kb_documents WHERE collection_id = ? AND doc_id = ?')
      .pluck(),
    missing: db.prepare(`${MISSING} ORDER BY d.doc_id LIMIT ?`).pluck(),
    extra: db.prepare(`${EXTRA} ORDER BY s.doc_id LIMIT ?`).pluck(),
    /** Collection, shadow, shadow, collection: 1 if the two differ at all. */
    differ: db.prepare(`SELECT EXISTS (${MISSING}) OR EXISTS (${EXTRA})`).pluck(),
  };
}

/** What the rebuild methods use of the store (vector-store.ts); each runs inside their transaction. */
export interface CollectionAccess {
  db: Database.Database;
  writer: CollectionWriter;
  find(kbId: string): Collection | null;
  /** NOT_FOUND when it does not exist. */
  require(kbId: string): Collection;
  /** As require, and CollectionsChanged when retired. */
  writable(kbId: string): Collection;
  /** The shadow `c` links to. */
  linkedShadow(c: Collection): Collection;
  /** createCollection's work: creates, or checks the dimensions of and repairs, a collection. */
  createOrRepair(kbId: string, dimensions: number): void;
  /** Deletes a collection's rows and tables. */
  drop(c: Collection): void;
}

/** The VectorStore rebuild methods on SQLite, each one transaction (IMMEDIATE when it writes). */
export class ShadowRebuilds {
  readonly #c: CollectionAccess;
  readonly #s: ReturnType<typeof prepareShadowStatements>;

  constructor(access: CollectionAccess) {
    this.#c = access;
    this.#s = prepareShadowStatements(access.db);
  }

  /** dropCollection of a collection that is a shadow: its collection's writes stop carrying a part for it. */
  unlinkShadowNamed(kbId: string): void {
    this.#s.unlinkShadowNamed.run(kbId);
  }

  async collectionState(kbId: string): Promise<CollectionState | null> {
    checkKbId(kbId);
    const c = this.#c.find(kbId);
    return c === null ? null : { dimensions: c.dimensions, shadow: c.shadow, retired: c.replacedBy !== null };
  }

  async startShadow(kbId: string, shadowId: string, dimensions: number): Promise<void> {
    checkKbId(kbId);
    checkKbId(shadowId);
    if (shadowId === kbId) throw new RangeError(`collection '${kbId}' cannot be its own shadow`);
    this.#c.db
      .transaction(() => {
        const c = this.#c.writable(kbId);
        if (c.shadow === shadowId) {
          // Started already (a retried start): the same shadow, repaired if its tables were lost.
          this.#c.createOrRepair(shadowId, dimensions);
          return;
        }
        if (c.shadow !== null) {
          throw new CollectionsChanged(
            `collection '${kbId}' already has shadow '${c.shadow}' (another rebuild)`,
          );
        }
        // A shadow's writes go through its collection's, which would not reach a shadow of the shadow.
        const owner = this.#s.shadowOwners.get(kbId) as string | undefined;
        if (owner !== undefined) {
          throw conflict('A shadow collection cannot have a shadow', [
            `collection '${kbId}' is the shadow of '${owner}'`,
          ]);
        }
        // Taking over an existing collection would mix its documents into the rebuild.
        if (this.#c.find(shadowId) !== null) {
          throw conflict('The shadow collection already exists', [
            `collection '${shadowId}' exists and is not the shadow of '${kbId}'`,
          ]);
        }
        this.#c.createOrRepair(shadowId, dimensions);
        this.#s.link.run(shadowId, c.id);
      })
      .immediate();
  }

  async dropShadow(kbId: string, shadowId: string): Promise<void> {
    checkKbId(kbId);
    checkKbId(shadowId);
    this.#c.db
      .transaction(() => {
        // Only a linked shadow is dropped: after a swap `shadowId` is a live collection.
        const c = this.#c.find(kbId);
        if (c === null || c.shadow !== shadowId) return;
        this.#s.unlink.run(c.id);
        const shadow = this.#c.find(shadowId);
        if (shadow !== null) this.#c.drop(shadow);
      })
      .immediate();
  }

  async copyToShadow(
    kbId: string,
    shadowId: string,
    docs: DocumentInput[],
    expected: ReadonlyMap<string, string>,
  ): Promise<number> {
    checkKbId(kbId);
    checkKbId(shadowId);
    const updatedAt = new Date().toISOString();
    return this.#c.db
      .transaction(() => {
        const c = this.#c.writable(kbId);
        if (c.shadow !== shadowId) {
          throw new CollectionsChanged(
            `'${shadowId}' is no longer the shadow of collection '${kbId}' (the rebuild ended)`,
          );
        }
        const shadow = this.#c.linkedShadow(c);
        // Both conditions read here, in the transaction that inserts: a write that reached both
        // collections after the rebuild read `expected` either moved the hash or filled the shadow.
        // One by one, so a document given twice is inserted once.
        let inserted = 0;
        for (const doc of docs) {
          const want = expected.get(doc.id);
          if (want === undefined || this.#s.contentHash.get(shadow.id, doc.id) !== undefined) continue;
          if (this.#s.contentHash.get(c.id, doc.id) !== want) continue;
          this.#c.writer.upsert(shadow, [doc], [], updatedAt);
          inserted += 1;
        }
        return inserted;
      })
      .immediate();
  }

  async shadowDifferences(kbId: string, shadowId: string, limit: number): Promise<ShadowDifferences> {
    checkPageLimit(limit);
    // One read transaction, so both lists describe the same moment.
    return this.#c.db.transaction(() => {
      const c = this.#c.require(kbId);
      const shadow = this.#c.require(shadowId);
      return {
        missing: this.#s.missing.all(c.id, shadow.id, limit) as string[],
        extra: this.#s.extra.all(shadow.id, c.id, limit) as string[],
      };
    })();
  }

  async promoteShadow(kbId: string, shadowId: string): Promise<boolean> {
    checkKbId(kbId);
    checkKbId(shadowId);
    return this.#c.db
      .transaction(() => {
        const c = this.#c.require(kbId);
        // A repeated promote (the caller died before recording the swap) answers as the first did.
        if (c.replacedBy !== null) return c.replacedBy === shadowId;
        // Not (or no longer) linked: cancelled, or never started; nothing to swap.
        if (c.shadow !== shadowId) return false;
        const shadow = this.#c.linkedShadow(c);
        // Checked in the swap's own transaction: no write can land between the check and the swap.
        if (this.#s.differ.get(c.id, shadow.id, shadow.id, c.id) !== 0) return false;
        this.#s.retire.run(shadowId, c.id);
        return true;
      })
      .immediate();
  }

  async retiredCollections(): Promise<string[]> {
    return this.#s.retired.all() as string[];
  }
}
