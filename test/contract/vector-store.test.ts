/**
 * Runs the VectorStore contract against the SQLite adapter (sqlite-vec + FTS5) in a temp file,
 * then checks what only the SQLite adapter can show: its tables, and that ids never reach SQL text.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { applyMigrations } from '../../src/store/sqlite/migrations.js';
import { SqliteVectorStore } from '../../src/store/sqlite/vector-store.js';
import { vectorStoreKeysContract } from './vector-store-keys.contract.js';
import { vectorStoreContract } from './vector-store.contract.js';

function openTempDatabase(): { db: Database.Database; dispose(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kbsync-vector-'));
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

vectorStoreContract('sqlite', async () => {
  const { db, dispose } = openTempDatabase();
  return { store: new SqliteVectorStore(db), close: async () => dispose() };
});

vectorStoreKeysContract('sqlite', async () => {
  const { db, dispose } = openTempDatabase();
  return { store: new SqliteVectorStore(db), close: async () => dispose() };
});

// The same contract with the binary-quantized candidate index answering every vector search
// (threshold 0): filters as the store chooses (post-filtered candidates, else the next plans), and
// each filtered plan forced. The index must not change what the port promises; the plans actually
// taken are checked below.
const indexedRuns = {
  auto: { forced: undefined, stores: [] as SqliteVectorStore[] },
  'index-filtered': { forced: 'index-filtered', stores: [] as SqliteVectorStore[] },
  'filtered-exact': { forced: 'filtered-exact', stores: [] as SqliteVectorStore[] },
} as const;
for (const [name, run] of Object.entries(indexedRuns)) {
  vectorStoreContract(`sqlite, vector index on (filters: ${name})`, async () => {
    const { db, dispose } = openTempDatabase();
    const store = new SqliteVectorStore(db, {
      indexMinChunks: 0,
      ...(run.forced === undefined ? {} : { forceFilterPlan: run.forced }),
    });
    run.stores.push(store);
    return { store, close: async () => dispose() };
  });
}

describe('the contract runs above took the index plans', () => {
  it('index for unfiltered searches, the filtered plans each run allows; exact only without bit vectors', () => {
    for (const [name, run] of Object.entries(indexedRuns)) {
      const counts = run.stores.map((s) => s.planCounts);
      const sum = (plan: keyof SqliteVectorStore['planCounts']) => counts.reduce((n, c) => n + c[plan], 0);
      const show = `${name}: ${JSON.stringify(counts)}`;
      assert.ok(sum('index') > 0, show);
      if (run.forced === undefined) {
        assert.ok(sum('index-postfilter') > 0, show);
      } else {
        assert.ok(sum(run.forced) > 0, show);
        assert.equal(sum('index-postfilter'), 0, show);
      }
      // One contract search is in a 4-dimension collection: half a byte has no bit vector, so exact.
      assert.ok(sum('exact') <= 1, show);
    }
  });
});

describe('SqliteVectorStore (SQLite specifics)', () => {
  let db: Database.Database;
  let dispose: () => void;
  let store: SqliteVectorStore;

  before(() => {
    ({ db, dispose } = openTempDatabase());
    store = new SqliteVectorStore(db);
  });
  after(() => dispose());

  const tableNames = () =>
    (
      db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .pluck()
        .all() as string[]
    ).filter((n) => n.startsWith('kb_'));

  it('its own tables are all kb_-prefixed (beside the control plane), and a second store on the same connection is harmless', async () => {
    const again = new SqliteVectorStore(db);
    await again.createCollection('kb_01HSPECIFIC', 4);
    const all = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[];
    // Everything the numbered migrations make for the control plane, on a fresh file.
    const fresh = new Database(':memory:');
    applyMigrations(fresh);
    const controlPlane = fresh.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all() as string[];
    fresh.close();
    assert.ok(
      all.every((n) => n.startsWith('kb_') || controlPlane.includes(n)),
      all.join(', '),
    );
    assert.ok(all.includes('kb_vec_1') || all.some((n) => /^kb_vec_\d+$/.test(n)));
    await again.dropCollection('kb_01HSPECIFIC');
  });

  it('dropCollection drops the virtual tables and their shadow tables', async () => {
    const before = tableNames();
    await store.createCollection('kb_drop_me', 4);
    const created = tableNames().filter((n) => !before.includes(n));
    assert.ok(created.some((n) => /^kb_vec_\d+$/.test(n)));
    assert.ok(created.some((n) => /^kb_fts_\d+$/.test(n)));
    await store.upsertDocuments('kb_drop_me', [
      {
        id: 'd',
        content: 'x',
        contentHash: 'h',
        metadata: {},
        chunks: [{ index: 0, text: 'x', embedding: new Float32Array([1, 0, 0, 0]) }],
      },
    ]);
    await store.dropCollection('kb_drop_me');
    assert.deepEqual(tableNames(), before);
    const leftovers = db
      .prepare(
        'SELECT (SELECT count(*) FROM kb_collections WHERE kb_id = ?) + (SELECT count(*) FROM kb_documents WHERE doc_id = ?)',
      )
      .pluck()
      .get('kb_drop_me', 'd');
    assert.equal(leftovers, 0);
  });

  it('a hostile kbId is only ever data', async () => {
    const kbId = 'kb_x"; DROP TABLE kb_documents; --';
    await store.createCollection(kbId, 4);
    await store.upsertDocuments(kbId, [
      {
        id: "'); DELETE FROM kb_chunks; --",
        content: 'payload',
        contentHash: 'h',
        metadata: { "'": '"' },
        chunks: [{ index: 0, text: 'payload', embedding: new Float32Array([0, 1, 0, 0]) }],
      },
    ]);
    assert.deepEqual(await store.counts(kbId), { documents: 1, chunks: 1 });
    assert.ok(tableNames().includes('kb_documents'));
    assert.ok(
      tableNames().every((n) => /^kb_[a-z_]+(\d+)?(_[a-z0-9_]+)?$/.test(n)),
      tableNames().join(', '),
    );
    await store.dropCollection(kbId);
  });

  it('embeddings stored from a Float32Array view at an offset round-trip exactly', async () => {
    await store.createCollection('kb_views', 4);
    const backing = new Float32Array([9, 9, 0, 0, 1, 0, 9, 9]);
    const view = backing.subarray(2, 6); // [0, 0, 1, 0]
    await store.upsertDocuments('kb_views', [
      {
        id: 'v',
        content: 'v',
        contentHash: 'h',
        metadata: {},
        chunks: [{ index: 0, text: 'v', embedding: view }],
      },
    ]);
    const [hit] = await store.searchVector('kb_views', new Float32Array([0, 0, 1, 0]), { topK: 1 });
    assert.ok(hit && Math.abs(hit.score - 1) < 1e-6);
    await store.dropCollection('kb_views');
  });
});
