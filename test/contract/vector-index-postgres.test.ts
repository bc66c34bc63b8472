/**
 * The PostgreSQL store's late HNSW index (vector-index.ts) and what only this adapter can show of
 * rebuilds (vector-shadow.ts): the index appears once a collection passes the threshold and its
 * writes pause, built once across processes, searched only while valid, and rebuilt after a build
 * died; a swap racing writes leaves the two collections equal.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openPostgres } from '../../src/store/postgres/open.js';
import { openPostgresVectorStore, PostgresVectorStore } from '../../src/store/postgres/vector-store.js';
import { CollectionsChanged, type DocumentInput } from '../../src/store/vector-port.js';
import { skipUnlessPgvector, type TempDatabase, withTempPostgresDatabase } from '../helpers/pgvector.js';

const skip = await skipUnlessPgvector();
const SCHEMA = 'kbsync_index';
const DIMS = 8;

function vector(i: number): Float32Array {
  const v = new Float32Array(DIMS);
  for (let d = 0; d < DIMS; d++) v[d] = Math.sin(i * 0.37 + d * 1.3) + (d === i % DIMS ? 2 : 0);
  return v;
}

function docs(from: number, count: number, hash = 'h'): DocumentInput[] {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k;
    const id = `d${String(i).padStart(5, '0')}`;
    return { id, content: `doc ${i}`, contentHash: `${hash}${i}`, metadata: { i }, chunks: [{ index: 0, text: `doc ${i}`, embedding: vector(i) }] };
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('PostgreSQL vector store: late HNSW index and rebuild races', { skip }, () => {
  let database: TempDatabase;
  const stores: PostgresVectorStore[] = [];
  before(async () => {
    database = await withTempPostgresDatabase();
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await database.close();
  });

  async function open(options: ConstructorParameters<typeof PostgresVectorStore>[1] = {}) {
    const store = await openPostgresVectorStore(database.url, SCHEMA, { max: 3, ...options });
    stores.push(store);
    return store;
  }

  /** The collection's HNSW indexes, each with its validity. */
  async function hnsw(kb: string): Promise<Array<{ name: string; valid: boolean }>> {
    return (await database.exec(
      `SELECT i.relname AS name, x.indisvalid AS valid FROM ${SCHEMA}.kb_collections c
       JOIN pg_class t ON t.relname = 'kb_chunks_' || c.id AND t.relnamespace = '${SCHEMA}'::regnamespace
       JOIN pg_index x ON x.indrelid = t.oid JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am a ON a.oid = i.relam
       WHERE c.kb_id = $1 AND a.amname = 'hnsw'`,
      [kb],
    )) as Array<{ name: string; valid: boolean }>;
  }

  it('no index below the threshold (exact scans); past it, one index built after the writes, then searched', async () => {
    const store = await open({ indexMinChunks: 100, indexQuietMs: 0 });
    await store.createCollection('kb_late', DIMS);
    await store.upsertDocuments('kb_late', docs(0, 99));
    await store.indexes.settled();
    assert.deepEqual(await hnsw('kb_late'), []);
    const before = await store.searchVector('kb_late', vector(5), { topK: 3 });
    assert.equal(before[0]?.documentId, 'd00005');
    assert.equal(store.planCounts.exact, 1);

    await store.upsertDocuments('kb_late', docs(99, 60));
    await store.indexes.settled();
    assert.deepEqual(await hnsw('kb_late'), [{ name: 'kb_chunks_1_hnsw', valid: true }]);
    assert.equal(store.indexes.built, 1);
    assert.equal(store.indexes.lastError, null);
    const hits = await store.searchVector('kb_late', vector(120), { topK: 3 });
    assert.equal(hits[0]?.documentId, 'd00120');
    assert.equal(store.planCounts.index, 1, JSON.stringify(store.planCounts));
    // Later writes are maintained by the index; no second build.
    await store.upsertDocuments('kb_late', docs(159, 10));
    await store.indexes.settled();
    assert.equal(store.indexes.built, 1);
  });

  it('waits while the writes go on, then builds once they pause', async () => {
    const store = await open({ indexMinChunks: 50, indexQuietMs: 3000 });
    await store.createCollection('kb_busy', DIMS);
    const started = Date.now();
    let next = 0;
    let lastWrite = Date.now();
    let paused = false;
    // A load that never pauses 3 s: the index must not appear during it. On a machine so loaded
    // that two writes end up 2.5 s apart, the pause is real and a build may start: from then on
    // only the outcome is checked (the test must not depend on the machine's speed).
    while (Date.now() - started < 4500) {
      const now = Date.now();
      if (now - lastWrite > 2500) paused = true;
      lastWrite = now;
      await store.upsertDocuments('kb_busy', docs(next, 20));
      next += 20;
      if (!paused) assert.deepEqual(await hnsw('kb_busy'), [], `built during the load, after ${Date.now() - started} ms`);
      await sleep(200);
    }
    await store.indexes.settled();
    const [index] = await hnsw('kb_busy');
    assert.equal(index?.valid, true);
    assert.equal(store.indexes.built, 1);
  });

  it('two processes past the threshold build the index once', async () => {
    const a = await open({ indexMinChunks: 40, indexQuietMs: 0 });
    const b = new PostgresVectorStore(openPostgres(database.url, SCHEMA, { max: 3 }), {
      indexMinChunks: 40,
      indexQuietMs: 0,
      ownsDb: true,
    });
    stores.push(b);
    await a.createCollection('kb_two', DIMS);
    await Promise.all([a.upsertDocuments('kb_two', docs(0, 30)), b.upsertDocuments('kb_two', docs(30, 30))]);
    // Each store saw the collection past the threshold after its write (or searches it now).
    await Promise.all([a.searchVector('kb_two', vector(1), { topK: 1 }), b.searchVector('kb_two', vector(1), { topK: 1 })]);
    await Promise.all([a.indexes.settled(), b.indexes.settled()]);
    assert.equal((await hnsw('kb_two')).length, 1);
    assert.equal(a.indexes.built + b.indexes.built, 1);
  });

  it('an INVALID index (a build that died) is never searched, and is rebuilt at the next start or write', async () => {
    const store = await open({ indexMinChunks: 30, indexQuietMs: 0 });
    await store.createCollection('kb_dead', DIMS);
    await store.upsertDocuments('kb_dead', docs(0, 40));
    await store.indexes.settled();
    const [index] = await hnsw('kb_dead');
    assert.equal(index?.valid, true);
    // What CREATE INDEX CONCURRENTLY leaves when its process dies mid-build.
    const invalidate = () =>
      database.exec(`UPDATE pg_index SET indisvalid = false WHERE indexrelid = '${SCHEMA}.${index!.name}'::regclass`);
    await invalidate();

    // A process that only reads: exact answers while it is invalid; its start finds and rebuilds it.
    const reader = await open({ indexMinChunks: 30, indexQuietMs: 0, indexMaxDeferMs: 0 });
    await reader.indexes.settled();
    assert.deepEqual(await hnsw('kb_dead'), [{ name: index!.name, valid: true }]);
    assert.equal(reader.indexes.built, 1);

    // The same found at the next write of a running process.
    await invalidate();
    const exactBefore = store.planCounts.exact;
    const hits = await store.searchVector('kb_dead', vector(7), { topK: 2 });
    assert.equal(hits[0]?.documentId, 'd00007');
    assert.equal(store.planCounts.exact, exactBefore + 1, 'an invalid index must not be planned on');
    await store.upsertDocuments('kb_dead', docs(40, 1));
    await store.indexes.settled();
    assert.deepEqual(await hnsw('kb_dead'), [{ name: index!.name, valid: true }]);
  });

  it('a shadow filled past the threshold gets its own index; dropping the collection drops both', async () => {
    const store = await open({ indexMinChunks: 30, indexQuietMs: 0 });
    await store.createCollection('kb_src', DIMS);
    await store.upsertDocuments('kb_src', docs(0, 35));
    await store.startShadow('kb_src', 'kb_src_next', DIMS);
    const expected = await store.getContentHashes('kb_src', docs(0, 35).map((d) => d.id));
    assert.equal(await store.copyToShadow('kb_src', 'kb_src_next', docs(0, 35), expected), 35);
    await store.indexes.settled();
    assert.equal((await hnsw('kb_src_next'))[0]?.valid, true);
    await store.dropCollection('kb_src');
    assert.equal(await store.collectionState('kb_src_next'), null);
  });

  it('a swap racing writes that carry the shadow: each write lands in both or in neither, and the two stay equal', async () => {
    const store = await open();
    const other = await open();
    for (let round = 0; round < 4; round++) {
      const kb = `kb_swap_${round}`;
      const sh = `${kb}_next`;
      await store.createCollection(kb, DIMS);
      await store.upsertDocuments(kb, docs(0, 5));
      await store.startShadow(kb, sh, DIMS);
      const expected = await store.getContentHashes(kb, docs(0, 5).map((d) => d.id));
      await store.copyToShadow(kb, sh, docs(0, 5), expected);
      const writes = Array.from({ length: 8 }, (_, w) =>
        (w % 2 ? other : store)
          .upsertDocuments(kb, docs(100 + w, 1), [], { collection: sh, docs: docs(100 + w, 1), metadataOnly: [] })
          .then(
            () => 'written' as const,
            (e: unknown) => {
              if (e instanceof CollectionsChanged) return 'refused' as const;
              throw e;
            },
          ),
      );
      const [promoted, ...outcomes] = await Promise.all([other.promoteShadow(kb, sh), ...writes]);
      assert.equal(promoted, true);
      const written = docs(100, 8).filter((_, w) => outcomes[w] === 'written').map((d) => d.id);
      const refused = docs(100, 8).filter((_, w) => outcomes[w] === 'refused').map((d) => d.id);
      assert.equal(written.length + refused.length, 8);
      assert.deepEqual([...(await store.getContentHashes(sh, written)).keys()].sort(), written);
      assert.deepEqual([...(await store.getContentHashes(kb, refused)).keys()], []);
      assert.deepEqual([...(await store.getContentHashes(sh, refused)).keys()], []);
      assert.deepEqual(await store.shadowDifferences(kb, sh, 100), { missing: [], extra: [] });
      assert.deepEqual(await store.collectionState(kb), { dimensions: DIMS, shadow: null, retired: true });
    }
  });
});
