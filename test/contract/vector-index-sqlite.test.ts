/**
 * The SQLite store's binary-quantized candidate index (store/sqlite/vector-search-plan.ts), beside
 * the contract suite that vector-store.test.ts also runs with the index on:
 * - on a small clustered set it answers what the exact scan answers (ids and scores);
 * - an update or delete leaves no chunk behind in the index tables, and searches never see one;
 * - a selective filter still returns every matching chunk, with the filter in the index's scan or
 *   ranked exactly, however far the matches are from the query;
 * - migration 9 builds the index of a knowledge base written before it existed, from the stored
 *   vectors (both ways of reading them), and the chunk count the plans use.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { applyMigrations, MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { buildCandidateIndex } from '../../src/store/sqlite/vector-index-build.js';
import { collectionTables, loadSqliteVec } from '../../src/store/sqlite/vector-schema.js';
import { SqliteVectorStore } from '../../src/store/sqlite/vector-store.js';
import type { DocumentInput, SearchHit } from '../../src/store/vector-port.js';

const DIMS = 64;
const dirs: string[] = [];
const dbs: Database.Database[] = [];

function openFile(file?: string): { db: Database.Database; file: string } {
  const f = file ?? path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kbsync-vindex-')), 'kbsync.db');
  if (file === undefined) dirs.push(path.dirname(f));
  const db = new Database(f);
  db.pragma('journal_mode = WAL');
  dbs.push(db);
  return { db, file: f };
}

after(() => {
  for (const db of dbs) if (db.open) db.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function normalised(v: Float32Array): Float32Array {
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

/** `count` unit vectors around `clusters` random centres (noise well below the centres' spread). */
function clustered(count: number, clusters: number, seed: number): Float32Array[] {
  const random = rng(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const centres = Array.from({ length: clusters }, () => Float32Array.from({ length: DIMS }, gauss));
  return Array.from({ length: count }, (_, i) => {
    const c = centres[i % clusters]!;
    return normalised(c.map((x) => x + 0.35 * gauss()));
  });
}

function docsOf(
  vectors: Float32Array[],
  metadata: (i: number) => Record<string, string | number> = () => ({}),
): DocumentInput[] {
  return vectors.map((embedding, i) => ({
    id: `d${String(i).padStart(5, '0')}`,
    content: `text ${i}`,
    contentHash: `h${i}`,
    metadata: metadata(i),
    chunks: [{ index: 0, text: `text ${i}`, embedding }],
  }));
}

const summary = (hits: SearchHit[]) => hits.map((h) => `${h.chunkId} ${h.score.toFixed(6)}`);

/** Rows of a collection's index tables (sign bits and float copies), by chunk id. */
function indexRows(db: Database.Database, collectionId: number): { bits: number[]; floats: number[] } {
  const t = collectionTables(collectionId);
  return {
    bits: db.prepare(`SELECT rowid FROM ${t.bits}_rowids ORDER BY rowid`).pluck().all() as number[],
    floats: db.prepare(`SELECT id FROM ${t.floats} ORDER BY id`).pluck().all() as number[],
  };
}

function collectionId(db: Database.Database, kb: string): number {
  return db.prepare('SELECT id FROM kb_collections WHERE kb_id = ?').pluck().get(kb) as number;
}

describe('vector index (SQLite)', () => {
  it('on a clustered set, the index answers what the exact scan answers', async () => {
    const { db } = openFile();
    const indexed = new SqliteVectorStore(db, { indexMinChunks: 0 });
    const exact = new SqliteVectorStore(db, { indexMinChunks: Number.POSITIVE_INFINITY });
    await indexed.createCollection('kb', DIMS);
    // Queries from the same clusters, never inserted.
    const all = clustered(3040, 60, 7);
    const queries = all.splice(3000);
    await indexed.upsertDocuments('kb', docsOf(all));
    for (const [i, q] of queries.entries()) {
      for (const topK of [1, 10, 25]) {
        const a = await indexed.searchVector('kb', q, { topK });
        const b = await exact.searchVector('kb', q, { topK });
        assert.equal(a.length, topK);
        assert.deepEqual(summary(a), summary(b), `query ${i}, top ${topK}`);
      }
    }
    assert.equal(indexed.planCounts.index, queries.length * 3);
    assert.equal(exact.planCounts.exact, queries.length * 3);
    assert.equal(indexed.planCounts.exact, 0);
  });

  it('the Hamming scan is bounded by recent radii, and run again unbounded when the bound holds too few', async () => {
    const { db } = openFile();
    const store = new SqliteVectorStore(db, { indexMinChunks: 0 });
    await store.createCollection('kb', DIMS);
    // Clusters of 200: a query in one finds its 100 candidates inside it, at small distances.
    const all = clustered(3015, 15, 4);
    const queries = all.splice(3000);
    await store.upsertDocuments('kb', docsOf(all));
    const fresh = () => new SqliteVectorStore(db, { indexMinChunks: 0 });
    for (const q of queries) {
      // A new store has no radii, so its scans are never bounded: the bound changes nothing.
      assert.deepEqual(
        summary(await store.searchVector('kb', q, { topK: 10 })),
        summary(await fresh().searchVector('kb', q, { topK: 10 })),
      );
    }
    // A query between the clusters has its 100th candidate beyond every radius seen: run again.
    const reruns = store.unboundedReruns;
    const far = normalised(Float32Array.from({ length: DIMS }, (_, i) => Math.sin(i * 7.3)));
    assert.deepEqual(
      summary(await store.searchVector('kb', far, { topK: 10 })),
      summary(await fresh().searchVector('kb', far, { topK: 10 })),
    );
    assert.equal(store.unboundedReruns, reruns + 1);
  });

  it('a broad filter is applied to the candidates (post-filter) and answers as the exact scan', async () => {
    const { db } = openFile();
    const indexed = new SqliteVectorStore(db, { indexMinChunks: 0 });
    const exact = new SqliteVectorStore(db, { indexMinChunks: Number.POSITIVE_INFINITY });
    await indexed.createCollection('kb', DIMS);
    const all = clustered(3040, 60, 17);
    const queries = all.splice(3000);
    // bucket 0 is every 7th chunk, across all clusters: the filter does not empty a neighbourhood.
    await indexed.upsertDocuments(
      'kb',
      docsOf(all, (i) => ({ bucket: i % 7 })),
    );
    for (const [i, q] of queries.entries()) {
      const filter = { bucket: { gte: 1 } };
      const a = await indexed.searchVector('kb', q, { topK: 10, filter });
      assert.equal(a.length, 10);
      assert.ok(a.every((h) => h.metadata.bucket !== 0));
      assert.deepEqual(
        summary(a),
        summary(await exact.searchVector('kb', q, { topK: 10, filter })),
        `query ${i}`,
      );
    }
    assert.equal(indexed.planCounts['index-postfilter'], queries.length, JSON.stringify(indexed.planCounts));

    // A filter that excludes the query's own cluster leaves only far chunks, ranked poorly by sign
    // bits: the post-filtered candidates are not trusted, and the answer is the exact one.
    const [q] = queries;
    const cluster = 3000 % 60;
    const elsewhere = new SqliteVectorStore(db, { indexMinChunks: 0 });
    await elsewhere.upsertDocuments(
      'kb',
      docsOf(all, (i) => ({ bucket: i % 7, cluster: i % 60 })),
    );
    const filter = { cluster: { in: Array.from({ length: 60 }, (_, i) => i).filter((i) => i !== cluster) } };
    assert.deepEqual(
      summary(await elsewhere.searchVector('kb', q!, { topK: 10, filter })),
      summary(await exact.searchVector('kb', q!, { topK: 10, filter })),
    );
    assert.equal(elsewhere.planCounts['index-postfilter'], 0, JSON.stringify(elsewhere.planCounts));
  });

  it('updates and deletes leave no chunk in the index, and searches never return one', async () => {
    const { db } = openFile();
    const store = new SqliteVectorStore(db, { indexMinChunks: 0 });
    await store.createCollection('kb', DIMS);
    const vectors = clustered(400, 8, 3);
    await store.upsertDocuments('kb', docsOf(vectors));
    const id = collectionId(db, 'kb');
    const chunkIds = () =>
      db.prepare('SELECT id FROM kb_chunks WHERE collection_id = ? ORDER BY id').pluck().all(id) as number[];
    const count = () =>
      db.prepare('SELECT chunk_count FROM kb_collections WHERE id = ?').pluck().get(id) as number;
    assert.deepEqual(indexRows(db, id), { bits: chunkIds(), floats: chunkIds() });
    assert.equal(count(), 400);

    // The nearest chunk to vectors[5] is d00005 itself; delete it, then it must be gone from the answer.
    const before = await store.searchVector('kb', vectors[5]!, { topK: 3 });
    assert.equal(before[0]!.documentId, 'd00005');
    assert.equal(await store.deleteDocument('kb', 'd00005'), true);
    assert.equal(await store.deleteDocuments('kb', ['d00013', 'd00021', 'missing']), 2);
    assert.deepEqual(indexRows(db, id), { bits: chunkIds(), floats: chunkIds() });
    assert.equal(count(), 397);
    const after = await store.searchVector('kb', vectors[5]!, { topK: 50 });
    assert.ok(!after.some((h) => ['d00005', 'd00013', 'd00021'].includes(h.documentId)));

    // An update moves d00006 next to a query far from every cluster, in two chunks: the old vector
    // is gone, the new ones are found.
    const lonely = normalised(Float32Array.from({ length: DIMS }, (_, i) => (i % 2 === 0 ? 1 : -1)));
    const [doc] = docsOf([lonely]);
    await store.upsertDocuments('kb', [
      {
        ...doc!,
        id: 'd00006',
        chunks: [
          { index: 0, text: 'moved', embedding: lonely },
          {
            index: 1,
            text: 'moved too',
            embedding: normalised(lonely.map((x, i) => x + (i === 0 ? 0.3 : 0))),
          },
        ],
      },
    ]);
    assert.deepEqual(indexRows(db, id), { bits: chunkIds(), floats: chunkIds() });
    assert.equal(count(), 398);
    const moved = await store.searchVector('kb', lonely, { topK: 2 });
    assert.deepEqual(
      moved.map((h) => h.chunkId),
      ['d00006#0', 'd00006#1'],
    );
    const old = await store.searchVector('kb', vectors[6]!, { topK: 5 });
    assert.ok(!old.some((h) => h.documentId === 'd00006'), JSON.stringify(old.map((h) => h.chunkId)));

    await store.dropCollection('kb');
    const leftovers = db
      .prepare("SELECT name FROM sqlite_master WHERE name LIKE 'kb_vbit_%' OR name LIKE 'kb_vflt_%'")
      .pluck()
      .all();
    assert.deepEqual(leftovers, []);
  });

  for (const [plan, options] of [
    ['index-filtered', { forceFilterPlan: 'index-filtered' }],
    ['filtered-exact', { forceFilterPlan: 'filtered-exact' }],
    ['filtered-exact', {}],
    ['index-filtered', { filteredExactMax: 0 }],
  ] as const) {
    it(`a selective filter returns every matching chunk (${plan}, ${JSON.stringify(options)})`, async () => {
      const { db } = openFile();
      const store = new SqliteVectorStore(db, { indexMinChunks: 0, ...options });
      await store.createCollection('kb', DIMS);
      // 1500 chunks near the query; 7 "rare" ones on the far side, and 150 "uncommon" ones in
      // another cluster: the 100 Hamming candidates of an unfiltered search contain none of them.
      const near = clustered(1500, 1, 11);
      const query = near[0]!;
      const far = Array.from({ length: 7 }, (_, i) =>
        normalised(query.map((x, j) => -x + (j === i ? 0.2 : 0))),
      );
      const other = clustered(150, 1, 12);
      await store.upsertDocuments('kb', [
        ...docsOf(near, () => ({ group: 'common' })),
        ...docsOf(far, () => ({ group: 'rare' })).map((d) => ({ ...d, id: `rare-${d.id}` })),
        ...docsOf(other, () => ({ group: 'uncommon' })).map((d) => ({ ...d, id: `uncommon-${d.id}` })),
      ]);
      const rare = await store.searchVector('kb', query, { topK: 10, filter: { group: 'rare' } });
      assert.equal(rare.length, 7);
      assert.ok(rare.every((h) => h.metadata.group === 'rare'));
      const uncommon = await store.searchVector('kb', query, { topK: 10, filter: { group: 'uncommon' } });
      assert.equal(uncommon.length, 10);
      assert.ok(uncommon.every((h) => h.metadata.group === 'uncommon'));
      const exact = new SqliteVectorStore(db, { indexMinChunks: Number.POSITIVE_INFINITY });
      assert.deepEqual(
        summary(rare),
        summary(await exact.searchVector('kb', query, { topK: 10, filter: { group: 'rare' } })),
      );
      assert.deepEqual(
        summary(uncommon),
        summary(await exact.searchVector('kb', query, { topK: 10, filter: { group: 'uncommon' } })),
      );
      assert.equal(store.planCounts[plan], 2, JSON.stringify(store.planCounts));
    });
  }
});

/** The kb_ tables as they were at migration 8, written the way that version wrote them. */
function writeVersion8Store(db: Database.Database, vectors: Float32Array[]): void {
  applyMigrations(
    db,
    MIGRATIONS.filter((m) => m.id <= 8),
  );
  loadSqliteVec(db);
  db.prepare(
    "INSERT INTO kb_collections (kb_id, dimensions, created_at) VALUES ('old', ?, '2026-01-01T00:00:00Z')",
  ).run(DIMS);
  const id = collectionId(db, 'old');
  db.exec(`CREATE VIRTUAL TABLE kb_vec_${id} USING vec0(embedding float[${DIMS}] distance_metric=cosine)`);
  db.exec(
    `CREATE VIRTUAL TABLE kb_fts_${id} USING fts5(text, content='', contentless_delete=1, tokenize="porter unicode61 remove_diacritics 2")`,
  );
  const doc = db.prepare(
    `INSERT INTO kb_documents (collection_id, doc_id, content, content_hash, metadata, chunk_count, updated_at)
     VALUES (?, ?, ?, ?, ?, 1, '2026-01-01T00:00:00Z')`,
  );
  const chunk = db.prepare(
    'INSERT INTO kb_chunks (collection_id, doc_id, chunk_index, text) VALUES (?, ?, 0, ?)',
  );
  const vec = db.prepare(`INSERT INTO kb_vec_${id} (rowid, embedding) VALUES (?, ?)`);
  db.transaction(() => {
    vectors.forEach((v, i) => {
      doc.run(id, `d${i}`, `text ${i}`, `h${i}`, JSON.stringify({ n: i }));
      const rowid = BigInt(chunk.run(id, `d${i}`, `text ${i}`).lastInsertRowid);
      vec.run(rowid, Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    });
    // Deleted rows leave holes in vec0's chunks: the build must skip them.
    for (let i = 0; i < vectors.length; i += 9) {
      const rowid = db
        .prepare('SELECT id FROM kb_chunks WHERE collection_id = ? AND doc_id = ?')
        .pluck()
        .get(id, `d${i}`) as number;
      db.prepare(`DELETE FROM kb_vec_${id} WHERE rowid = ?`).run(BigInt(rowid));
      db.prepare('DELETE FROM kb_chunks WHERE id = ?').run(rowid);
      db.prepare('DELETE FROM kb_documents WHERE collection_id = ? AND doc_id = ?').run(id, `d${i}`);
    }
  })();
}

describe('migration 9 builds the index of an existing knowledge base', () => {
  it('from the stored vectors: the index answers as the exact scan, and writes keep it in step', async () => {
    const { db, file } = openFile();
    const vectors = clustered(2520, 40, 21);
    const queries = vectors.splice(2500);
    writeVersion8Store(db, vectors);
    db.close();

    // Opening the store file with this version migrates it.
    const { db: reopened } = openFile(file);
    const store = new SqliteVectorStore(reopened, { indexMinChunks: 0 });
    const id = collectionId(reopened, 'old');
    const chunkIds = reopened
      .prepare('SELECT id FROM kb_chunks WHERE collection_id = ? ORDER BY id')
      .pluck()
      .all(id) as number[];
    assert.equal(chunkIds.length, 2500 - Math.ceil(2500 / 9));
    assert.deepEqual(indexRows(reopened, id), { bits: chunkIds, floats: chunkIds });
    assert.equal(
      reopened.prepare('SELECT chunk_count FROM kb_collections WHERE id = ?').pluck().get(id),
      chunkIds.length,
    );
    // Each float copy is the stored vector, byte for byte.
    const mismatched = reopened
      .prepare(
        `SELECT count(*) FROM kb_vflt_${id} f WHERE f.embedding != (SELECT embedding FROM kb_vec_${id} v WHERE v.rowid = f.id)`,
      )
      .pluck()
      .get();
    assert.equal(mismatched, 0);

    const exact = new SqliteVectorStore(reopened, { indexMinChunks: Number.POSITIVE_INFINITY });
    for (const q of queries) {
      assert.deepEqual(
        summary(await store.searchVector('old', q, { topK: 10 })),
        summary(await exact.searchVector('old', q, { topK: 10 })),
      );
    }
    assert.equal(store.planCounts.index, 20);
    await store.deleteDocument('old', 'd1');
    await store.upsertDocuments(
      'old',
      docsOf([vectors[1]!]).map((d) => ({ ...d, id: 'new' })),
    );
    const [hit] = await store.searchVector('old', vectors[1]!, { topK: 1 });
    assert.equal(hit?.documentId, 'new');
    assert.equal(
      reopened.prepare('SELECT chunk_count FROM kb_collections WHERE id = ?').pluck().get(id),
      chunkIds.length,
    );
  });

  it('reading the vectors through the virtual table gives the same index as reading its shadow tables', () => {
    const { db: a } = openFile();
    const { db: b } = openFile();
    const vectors = clustered(1200, 10, 8);
    for (const db of [a, b]) writeVersion8Store(db, vectors);
    const id = collectionId(a, 'old');
    assert.deepEqual(buildCandidateIndex(a, id, DIMS), {
      collectionId: id,
      vectors: 1200 - 134,
      read: 'shadow',
    });
    assert.deepEqual(buildCandidateIndex(b, id, DIMS, { read: 'virtual-table' }), {
      collectionId: id,
      vectors: 1200 - 134,
      read: 'virtual-table',
    });
    const dump = (db: Database.Database) =>
      db.prepare(`SELECT id, hex(embedding) AS e FROM kb_vflt_${id} ORDER BY id`).all();
    assert.deepEqual(dump(a), dump(b));
    const bits = (db: Database.Database) =>
      db.prepare(`SELECT rowid, hex(embedding) AS e FROM kb_vbit_${id} ORDER BY rowid`).all();
    assert.deepEqual(bits(a), bits(b));
  });
});
