/**
 * Rebuilds on the SQLite vector store, beyond the port's contract (vector-store.contract.ts):
 * migration 11 on a file written before it, the shadow's own tables, and the refusals only this
 * adapter's link makes possible to check.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { AppError } from '../../src/core/errors.js';
import { applyMigrations, MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { createCollectionTables, loadSqliteVec } from '../../src/store/sqlite/vector-schema.js';
import { SqliteVectorStore } from '../../src/store/sqlite/vector-store.js';
import { CollectionsChanged, type DocumentInput } from '../../src/store/vector-port.js';

function openTempDatabase(): { db: Database.Database; dispose(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kbsync-shadow-'));
  const db = new Database(path.join(dir, 'kbsync.db'));
  db.pragma('journal_mode = WAL');
  return {
    db,
    dispose() {
      db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function axis(i: number, dims: number): Float32Array {
  const v = new Float32Array(dims);
  v[i] = 1;
  return v;
}

function textDoc(id: string, text: string, dims: number, along = 0): DocumentInput {
  return {
    id,
    content: text,
    contentHash: `hash-${id}`,
    metadata: {},
    chunks: [{ index: 0, text, embedding: axis(along, dims) }],
  };
}

const isConflict = (e: unknown) => e instanceof AppError && e.code === 'CONFLICT';

describe('migration 11 on a store written before rebuilds existed', () => {
  it('leaves existing collections as they were: no shadow, not retired, writable, and able to start one', async () => {
    const { db, dispose } = openTempDatabase();
    try {
      applyMigrations(
        db,
        MIGRATIONS.filter((m) => m.id <= 10),
      );
      loadSqliteVec(db);
      const id = Number(
        db
          .prepare(
            "INSERT INTO kb_collections (kb_id, dimensions, created_at) VALUES ('old', 8, '2026-01-01T00:00:00Z')",
          )
          .run().lastInsertRowid,
      );
      createCollectionTables(db, id, 8);
      const before = db
        .prepare('SELECT id, kb_id, dimensions, chunk_count, created_at FROM kb_collections')
        .all();

      const store = new SqliteVectorStore(db);
      assert.deepEqual(
        db.prepare('SELECT id, kb_id, dimensions, chunk_count, created_at FROM kb_collections').all(),
        before,
      );
      assert.deepEqual(await store.collectionState('old'), { dimensions: 8, shadow: null, retired: false });
      assert.deepEqual(await store.retiredCollections(), []);
      await store.upsertDocuments('old', [textDoc('a', 'kept as before', 8)]);
      assert.deepEqual(
        (await store.searchKeyword('old', 'kept', { topK: 1 })).map((h) => h.documentId),
        ['a'],
      );
      await store.startShadow('old', 'new', 16);
      assert.equal((await store.collectionState('old'))?.shadow, 'new');
    } finally {
      dispose();
    }
  });
});

describe('SqliteVectorStore rebuilds (SQLite specifics)', () => {
  let db: Database.Database;
  let dispose: () => void;
  let store: SqliteVectorStore;

  before(() => {
    ({ db, dispose } = openTempDatabase());
    store = new SqliteVectorStore(db);
  });
  after(() => dispose());

  const kbTables = () =>
    (
      db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .pluck()
        .all() as string[]
    ).filter((n) => n.startsWith('kb_'));

  it('a shadow has its own vector, keyword and index tables, dropped with it', async () => {
    await store.createCollection('kb_tables', 4);
    const before = kbTables();
    await store.startShadow('kb_tables', 'kb_tables_shadow', 8);
    const created = kbTables().filter((n) => !before.includes(n));
    for (const prefix of ['kb_vec_', 'kb_fts_', 'kb_vbit_', 'kb_vflt_']) {
      assert.ok(
        created.some((n) => n.startsWith(prefix)),
        `${prefix}: ${created.join(', ')}`,
      );
    }
    // The write's shadow part fills the shadow's candidate index as a plain write would.
    await store.upsertDocuments('kb_tables', [textDoc('d', 'x', 4)], [], {
      collection: 'kb_tables_shadow',
      docs: [textDoc('d', 'x', 8, 5)],
      metadataOnly: [],
    });
    const shadowId = db
      .prepare("SELECT id FROM kb_collections WHERE kb_id = 'kb_tables_shadow'")
      .pluck()
      .get() as number;
    assert.equal(db.prepare(`SELECT count(*) FROM kb_vflt_${shadowId}`).pluck().get(), 1);
    assert.equal(db.prepare(`SELECT count(*) FROM kb_vbit_${shadowId}`).pluck().get(), 1);
    assert.equal(db.prepare('SELECT chunk_count FROM kb_collections WHERE id = ?').pluck().get(shadowId), 1);

    await store.dropShadow('kb_tables', 'kb_tables_shadow');
    assert.deepEqual(kbTables(), before);
    assert.equal(
      db.prepare('SELECT count(*) FROM kb_documents WHERE collection_id = ?').pluck().get(shadowId),
      0,
    );
    assert.equal(
      db.prepare('SELECT count(*) FROM kb_chunks WHERE collection_id = ?').pluck().get(shadowId),
      0,
    );
    await store.dropCollection('kb_tables');
  });

  it('refuses an existing collection as a shadow, and a shadow of a shadow', async () => {
    await store.createCollection('kb_a', 4);
    await store.createCollection('kb_b', 4);
    await store.upsertDocuments('kb_b', [textDoc('b', 'belongs to b', 4)]);
    // Taking kb_b over would mix its documents into the rebuild (and promote them).
    await assert.rejects(store.startShadow('kb_a', 'kb_b', 4), isConflict);
    assert.equal((await store.collectionState('kb_a'))?.shadow, null);
    await assert.rejects(store.startShadow('kb_a', 'kb_a', 4), RangeError);

    await store.startShadow('kb_a', 'kb_a_shadow', 4);
    await assert.rejects(store.startShadow('kb_a_shadow', 'kb_a_shadow_shadow', 4), isConflict);
    assert.equal(await store.collectionState('kb_a_shadow_shadow'), null);
    // The same shadow started again with other dimensions is not the same shadow.
    await assert.rejects(store.startShadow('kb_a', 'kb_a_shadow', 8), isConflict);
    assert.deepEqual(await store.counts('kb_b'), { documents: 1, chunks: 1 });
  });

  it('dropping the shadow itself unlinks it, so writes need no shadow part again', async () => {
    await store.createCollection('kb_c', 4);
    await store.startShadow('kb_c', 'kb_c_shadow', 4);
    await store.dropCollection('kb_c_shadow');
    assert.deepEqual(await store.collectionState('kb_c'), { dimensions: 4, shadow: null, retired: false });
    await store.upsertDocuments('kb_c', [textDoc('c', 'written alone', 4)]);
    assert.deepEqual(await store.counts('kb_c'), { documents: 1, chunks: 1 });
  });

  it('a retired collection refuses key-hash writes too', async () => {
    await store.createCollection('kb_r', 4);
    await store.upsertDocuments('kb_r', [textDoc('r', 'retiring', 4)]);
    await store.startShadow('kb_r', 'kb_r_new', 4);
    await store.copyToShadow(
      'kb_r',
      'kb_r_new',
      [textDoc('r', 'retiring', 4, 1)],
      new Map([['r', 'hash-r']]),
    );
    assert.equal(await store.promoteShadow('kb_r', 'kb_r_new'), true);
    await assert.rejects(
      store.setKeyHashes('kb_r', [{ id: 'r', keyHash: 'ab'.repeat(16) }]),
      (e) => e instanceof CollectionsChanged,
    );
    assert.deepEqual(await store.keyHashBuckets('kb_r', 0, null), []);
  });
});
