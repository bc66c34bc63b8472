/**
 * Runs the VectorStore contract against the PostgreSQL adapter (pgvector + tsvector), each run in a
 * fresh database dropped afterwards: once with its default plans (exact scans at this size), once
 * with the HNSW index answering every vector search. Then what only this adapter can show: its
 * tables, its migrations under concurrent start-up, text PostgreSQL cannot store, wide vectors.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { AppError } from '../../src/core/errors.js';
import { applyMigrations, MIGRATIONS, type PgMigration } from '../../src/store/postgres/migrations.js';
import { openPostgres } from '../../src/store/postgres/open.js';
import { openPostgresVectorStore, PostgresVectorStore } from '../../src/store/postgres/vector-store.js';
import { SqliteVectorStore } from '../../src/store/sqlite/vector-store.js';
import type { DocumentInput } from '../../src/store/vector-port.js';
import { skipUnlessPgvector, type TempDatabase, withTempPostgresDatabase } from '../helpers/pgvector.js';
import { vectorStoreKeysContract } from './vector-store-keys.contract.js';
import { vectorStoreContract } from './vector-store.contract.js';

const skip = await skipUnlessPgvector();

/** A store on a fresh database; close() closes the pool and drops the database. */
async function tempStore(options: ConstructorParameters<typeof PostgresVectorStore>[1] = {}) {
  const database = await withTempPostgresDatabase();
  try {
    const store = await openPostgresVectorStore(database.url, 'kbsync_test', { ...options, max: 4 });
    return {
      store,
      database,
      close: async () => {
        await store.close();
        await database.close();
      },
    };
  } catch (err) {
    await database.close();
    throw err;
  }
}

describe('PostgreSQL vector store', { skip }, () => {
  vectorStoreContract('postgres', tempStore);
  vectorStoreKeysContract('postgres', tempStore);

  // The HNSW index answers every vector search (threshold 0), a filter applied once in the index's
  // iterative scan and once ranked exactly from its sample: neither may change what the port
  // promises. The plans actually taken are checked below.
  const indexed: Record<string, PostgresVectorStore[]> = { 'index-filtered': [], 'filtered-exact': [] };
  for (const [name, filteredExactMax] of [
    ['index-filtered', 0],
    ['filtered-exact', Number.MAX_SAFE_INTEGER - 1],
  ] as const) {
    vectorStoreContract(`postgres, HNSW index on (filters: ${name})`, async () => {
      const handle = await tempStore({ indexMinChunks: 0, filteredExactMax });
      indexed[name]!.push(handle.store);
      return handle;
    });
  }

  describe('the index runs above took the index plans', () => {
    it('index for unfiltered searches, the filtered plan each run forced, exact never', (t) => {
      for (const [name, stores] of Object.entries(indexed)) {
        const counts = stores.map((s) => s.planCounts);
        t.diagnostic(`${name}: ${JSON.stringify(counts)}`);
        const sum = (plan: keyof PostgresVectorStore['planCounts']) => counts.reduce((n, c) => n + c[plan], 0);
        assert.ok(sum('index') > 0, `${name}: ${JSON.stringify(counts)}`);
        assert.ok(sum(name as 'index-filtered' | 'filtered-exact') > 0, `${name}: ${JSON.stringify(counts)}`);
        assert.equal(sum('exact'), 0, `${name}: ${JSON.stringify(counts)}`);
      }
      // Forced exact filters never touch the index.
      assert.equal(indexed['filtered-exact']!.reduce((n, s) => n + s.planCounts['index-filtered'], 0), 0);
    });
  });

  describe('PostgresVectorStore (PostgreSQL specifics)', () => {
    let database: TempDatabase;
    let store: PostgresVectorStore;
    before(async () => {
      ({ store, database } = await tempStore());
    });
    after(async () => {
      await store.close();
      await database.close();
    });

    const tables = async (): Promise<string[]> =>
      (
        (await database.exec(
          "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'kbsync_test' ORDER BY 1",
        )) as Array<{ t: string }>
      ).map((r) => r.t);

    /** What the migrations make: the control store's tables (one migration list, as on SQLite) and the vector registry. */
    const BASE_TABLES = [
      'accounts',
      'api_keys',
      'databases',
      'job_failures',
      'jobs',
      'kb_collections',
      'knowledge_bases',
      'leases',
      'runs',
      'schema_migrations',
      'webhook_deliveries',
    ];

    it('keeps everything in its schema: the registry, then two tables per knowledge base, dropped with it', async () => {
      const before = await tables();
      assert.deepEqual(before, BASE_TABLES);
      await store.createCollection('kb_a', 4);
      const made = (await tables()).filter((t) => !before.includes(t));
      assert.equal(made.length, 2, made.join(', '));
      assert.ok(
        made.every((t) => /^kb_(docs|chunks)_\d+$/.test(t)),
        made.join(', '),
      );
      const indexes = (await database.exec(
        `SELECT indexdef AS d FROM pg_indexes WHERE schemaname = 'kbsync_test' AND tablename LIKE 'kb_chunks_%'`,
      )) as Array<{ d: string }>;
      // No HNSW index yet: it is built once the collection holds indexMinChunks chunks
      // (vector-index-postgres.test.ts); a store with threshold 0 makes it here (the wide-vector test).
      assert.ok(!indexes.some((i) => /USING hnsw/.test(i.d)), JSON.stringify(indexes));
      assert.ok(indexes.some((i) => /USING gin \(tsv\)/.test(i.d)));
      await store.dropCollection('kb_a');
      assert.deepEqual(await tables(), before);
      // The extension lives in public, not in the kbsync schema a DROP SCHEMA would take with it.
      const [ext] = (await database.exec(
        "SELECT n.nspname AS s FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE extname = 'vector'",
      )) as Array<{ s: string }>;
      assert.equal(ext?.s, 'public');
    });

    it('a hostile kbId and document id are only ever data', async () => {
      const kbId = 'kb_x"; DROP TABLE kb_collections; --';
      await store.createCollection(kbId, 4);
      await store.upsertDocuments(kbId, [
        {
          id: "'); DELETE FROM kb_collections; --",
          content: 'payload',
          contentHash: 'h',
          metadata: { "'": '"' },
          chunks: [{ index: 0, text: 'payload', embedding: new Float32Array([0, 1, 0, 0]) }],
        },
      ]);
      assert.deepEqual(await store.counts(kbId), { documents: 1, chunks: 1 });
      const [hit] = await store.searchVector(kbId, new Float32Array([0, 1, 0, 0]), { topK: 1 });
      assert.deepEqual(hit?.metadata, { "'": '"' });
      await store.dropCollection(kbId);
      assert.deepEqual(await tables(), BASE_TABLES);
    });

    it('stores NULs and unpaired surrogates as U+FFFD (SQLite keeps them), and a filter with one still matches', async () => {
      await store.createCollection('kb_nul', 4);
      await store.upsertDocuments('kb_nul', [
        {
          id: 'n',
          content: 'a\u0000b',
          contentHash: 'h',
          metadata: { code: 'x\u0000y', 'k\u0000': '\ud800' },
          chunks: [{ index: 0, text: 'nul\u0000here', embedding: new Float32Array([1, 0, 0, 0]) }],
        },
      ]);
      const [doc] = (await store.listDocuments('kb_nul', { limit: 1, after: null })).documents;
      assert.equal(doc?.content, 'a\ufffdb');
      assert.deepEqual(doc?.metadata, { code: 'x\ufffdy', 'k\ufffd': '\ufffd' });
      const hits = await store.searchVector('kb_nul', new Float32Array([1, 0, 0, 0]), {
        topK: 1,
        filter: { code: 'x\u0000y' },
      });
      assert.deepEqual(
        hits.map((h) => h.content),
        ['nul\ufffdhere'],
      );
      assert.equal((await store.searchKeyword('kb_nul', 'nul', { topK: 1 })).length, 1);
      // An id must round-trip exactly, so one PostgreSQL cannot store is refused, not altered.
      await assert.rejects(
        store.upsertDocuments('kb_nul', [
          { id: 'bad\u0000id', content: 'x', contentHash: 'h', metadata: {}, chunks: [] },
        ]),
        /cannot store/,
      );
      // Such an id names nothing: it never reaches (or is mapped onto) another document's id.
      await store.upsertDocuments('kb_nul', [
        { id: 'bad\ufffdid', content: 'x', contentHash: 'h-fffd', metadata: {}, chunks: [] },
      ]);
      assert.deepEqual(await store.getContentHashes('kb_nul', ['bad\u0000id']), new Map());
      assert.equal(
        await store.upsertDocuments('kb_nul', [], [{ id: 'bad\u0000id', contentHash: 'x', metadata: {} }]),
        0,
      );
      assert.equal(await store.deleteDocuments('kb_nul', ['bad\u0000id']), 0);
      assert.equal((await store.getContentHashes('kb_nul', ['bad\ufffdid'])).get('bad\ufffdid'), 'h-fffd');
      await store.dropCollection('kb_nul');
    });

    it('indexes up to 2000 dimensions as vector, up to 4000 as halfvec, and scans wider ones exactly', async () => {
      const cases: Array<[number, RegExp | null]> = [
        [2000, /USING hnsw \(embedding vector_cosine_ops\)/],
        [3072, /USING hnsw \(\(\(embedding\)::halfvec\(3072\)\) halfvec_cosine_ops\)/],
        [4100, null],
      ];
      const indexed = new PostgresVectorStore(openPostgres(database.url, 'kbsync_test', { max: 2 }), {
        indexMinChunks: 0,
        ownsDb: true,
      });
      try {
        for (const [dims, pattern] of cases) {
          const kb = `kb_wide_${dims}`;
          await indexed.createCollection(kb, dims);
          const defs = (
            (await database.exec(
              `SELECT i.indexdef AS d FROM pg_indexes i JOIN kbsync_test.kb_collections c ON i.tablename = 'kb_chunks_' || c.id
               WHERE i.schemaname = 'kbsync_test' AND c.kb_id = $1`,
              [kb],
            )) as Array<{ d: string }>
          ).map((r) => r.d);
          const hnsw = defs.filter((d) => d.includes('USING hnsw'));
          if (pattern === null) assert.deepEqual(hnsw, []);
          else assert.ok(hnsw.length === 1 && pattern.test(hnsw[0]!), hnsw.join('\n'));
          // Nearest first, exact cosine scores, whichever way the collection is searched.
          const at = (i: number) => {
            const v = new Float32Array(dims);
            v[i] = 1;
            v[i + 1] = 0.001 * (i + 1);
            return v;
          };
          await indexed.upsertDocuments(
            kb,
            [0, 1, 2].map((i) => ({
              id: `d${i}`,
              content: `d${i}`,
              contentHash: 'h',
              metadata: {},
              chunks: [{ index: 0, text: `d${i}`, embedding: at(i * 10) }],
            })),
          );
          const hits = await indexed.searchVector(kb, at(10), { topK: 3 });
          assert.equal(hits[0]?.documentId, 'd1');
          assert.ok(Math.abs(hits[0]!.score - 1) < 1e-6, String(hits[0]?.score));
          await indexed.dropCollection(kb);
        }
        assert.ok(
          indexed.planCounts.index >= 2 && indexed.planCounts.exact >= 1,
          JSON.stringify(indexed.planCounts),
        );
      } finally {
        await indexed.close();
      }
    });

    it('a keyword score is BM25 as SQLite FTS5 computes it (k1 1.2, b 0.75), not ts_rank', async () => {
      const v = new Float32Array([1, 0, 0, 0]);
      const texts = [
        'walrus tusk ivory',
        'seal flipper',
        'otter whisker',
        'walrus walrus colony on ice',
        'otter, otter and an otter-like seal',
      ];
      const docs = texts.map((text, i) => ({
        id: `t${i}`,
        content: text,
        contentHash: 'h',
        metadata: {},
        chunks: [{ index: 0, text, embedding: v }],
      }));
      await store.createCollection('kb_bm25', 4);
      await store.upsertDocuments('kb_bm25', docs);
      // N = 5 chunks of 3 + 2 + 2 + 5 + 7 = 19 words. "otter" is in 2 chunks: idf = ln(3.5 / 2.5);
      // in "otter whisker" (2 words) once.
      const otter = await store.searchKeyword('kb_bm25', 'otter', { topK: 5 });
      const idf = Math.log(3.5 / 2.5);
      const expected = (idf * (1 * 2.2)) / (1 + 1.2 * (0.25 + (0.75 * 2) / (19 / 5)));
      assert.equal(otter[1]?.documentId, 't2');
      assert.ok(Math.abs(otter[1]!.score - expected) < 1e-9, `${otter[1]?.score} vs ${expected}`);
      // The same numbers as FTS5 on the same chunks, query by query.
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kbsync-bm25-'));
      const sqlite = new SqliteVectorStore(new Database(path.join(dir, 'kb.db')));
      try {
        await sqlite.createCollection('kb_bm25', 4);
        await sqlite.upsertDocuments('kb_bm25', docs);
        for (const q of [
          'otter',
          'walrus',
          'seal otter',
          'walrus colony',
          '"otter like"',
          'ivory tusk whisker',
        ]) {
          const pgHits = await store.searchKeyword('kb_bm25', q, { topK: 5 });
          const liteHits = await sqlite.searchKeyword('kb_bm25', q, { topK: 5 });
          assert.deepEqual(
            pgHits.map((h) => h.documentId),
            liteHits.map((h) => h.documentId),
            q,
          );
          for (const [i, h] of pgHits.entries()) {
            assert.ok(
              Math.abs(h.score - liteHits[i]!.score) < 1e-9,
              `${q}: ${h.score} vs ${liteHits[i]!.score}`,
            );
          }
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
      await store.dropCollection('kb_bm25');
    });

    it('answers NOT_FOUND, not a driver error, when the tables vanish under a lookup', async () => {
      await store.createCollection('kb_vanish', 4);
      const [row] = (await database.exec(
        "SELECT id FROM kbsync_test.kb_collections WHERE kb_id = 'kb_vanish'",
      )) as Array<{ id: string }>;
      await database.exec(`DROP TABLE kbsync_test.kb_chunks_${row!.id}, kbsync_test.kb_docs_${row!.id}`);
      await assert.rejects(store.counts('kb_vanish'), (e) => e instanceof AppError && e.code === 'NOT_FOUND');
      // createCollection repairs it.
      await store.createCollection('kb_vanish', 4);
      assert.deepEqual(await store.counts('kb_vanish'), { documents: 0, chunks: 0 });
      await store.dropCollection('kb_vanish');
    });
  });

  describe('several processes writing one knowledge base', () => {
    let database: TempDatabase;
    let stores: PostgresVectorStore[];
    before(async () => {
      database = await withTempPostgresDatabase();
      const first = await openPostgresVectorStore(database.url, 'kbsync_test', { max: 3 });
      stores = [first, new PostgresVectorStore(openPostgres(database.url, 'kbsync_test', { max: 3 }), { ownsDb: true })];
    });
    after(async () => {
      await Promise.all(stores.map((s) => s.close()));
      await database.close();
    });

    const docOf = (id: string, chunks: number, round: number): DocumentInput => ({
      id,
      content: `${id} ${round}`,
      contentHash: `h${round}`,
      metadata: { round },
      chunks: Array.from({ length: chunks }, (_, i) => ({
        index: i,
        text: `${id} round ${round} part ${i} ${'word '.repeat(i + round)}`,
        embedding: new Float32Array([1, i + 1, round + 1, 0.5]),
      })),
    });

    it('overlapping upserts and deletes from two pools keep the running chunk and word counts exact', async () => {
      await stores[0]!.createCollection('kb_race', 4);
      const ids = Array.from({ length: 12 }, (_, i) => `d${String(i).padStart(2, '0')}`);
      for (let round = 0; round < 8; round++) {
        // Each store writes every document, in opposite orders, with different chunk counts,
        // while a third call deletes some: the writes overlap on the same rows.
        await Promise.all([
          stores[0]!.upsertDocuments('kb_race', ids.map((id, i) => docOf(id, 1 + ((i + round) % 3), round))),
          stores[1]!.upsertDocuments('kb_race', [...ids].reverse().map((id, i) => docOf(id, 1 + ((i + round + 1) % 4), round + 100))),
          stores[round % 2]!.deleteDocuments('kb_race', ids.filter((_, i) => (i + round) % 5 === 0)),
        ]);
      }
      const [registry] = (await database.exec(
        "SELECT chunk_count::int AS chunks, token_count::int AS tokens FROM kbsync_test.kb_collections WHERE kb_id = 'kb_race'",
      )) as Array<{ chunks: number; tokens: number }>;
      const { chunks } = await stores[0]!.counts('kb_race');
      const [actual] = (await database.exec(
        `SELECT count(*)::int AS chunks, coalesce(sum(tokens), 0)::int AS tokens FROM kbsync_test.kb_chunks_${await collectionId('kb_race')}`,
      )) as Array<{ chunks: number; tokens: number }>;
      assert.equal(actual?.chunks, chunks);
      assert.deepEqual({ chunks: registry?.chunks, tokens: registry?.tokens }, actual);
    });

    it('a drop while writes are in flight: each write lands before it or answers NOT_FOUND, never a driver error', async () => {
      for (let attempt = 0; attempt < 5; attempt++) {
        const kb = `kb_drop_race_${attempt}`;
        await stores[0]!.createCollection(kb, 4);
        const writes = Array.from({ length: 6 }, (_, w) =>
          stores[w % 2]!.upsertDocuments(kb, Array.from({ length: 20 }, (_, i) => docOf(`w${w}-${i}`, 2, w))).then(
            () => 'written',
            (e: unknown) => (e instanceof AppError && e.code === 'NOT_FOUND' ? 'not found' : e),
          ),
        );
        const drop = stores[1]!.dropCollection(kb);
        const outcomes = await Promise.all([...writes, drop.then(() => 'dropped')]);
        for (const o of outcomes) assert.ok(typeof o === 'string', `unexpected: ${String(o)}`);
        await assert.rejects(stores[0]!.counts(kb), (e) => e instanceof AppError && e.code === 'NOT_FOUND');
        assert.equal(await collectionId(kb), null);
      }
    });

    async function collectionId(kb: string): Promise<number | null> {
      const [row] = (await database.exec('SELECT id::int AS id FROM kbsync_test.kb_collections WHERE kb_id = $1', [kb])) as Array<{
        id: number;
      }>;
      return row?.id ?? null;
    }
  });

  describe('migrations', () => {
    let database: TempDatabase;
    before(async () => {
      database = await withTempPostgresDatabase();
    });
    after(async () => database.close());

    it('five processes starting at once on a fresh schema apply each migration exactly once', async () => {
      // Each migration also appends to a log: the log shows how often it really ran, whatever
      // schema_migrations says. The sleep keeps the first migrator inside its transaction while the
      // others arrive.
      const logged: PgMigration[] = [
        {
          id: 1,
          name: 'log table',
          sql: 'CREATE TABLE migration_log (id integer NOT NULL, pid integer NOT NULL); SELECT pg_sleep(0.3)',
        },
        ...[2, 3, 4].map((id) => ({
          id,
          name: `step ${id}`,
          sql: `INSERT INTO migration_log VALUES (${id}, pg_backend_pid()); SELECT pg_sleep(0.05)`,
        })),
      ];
      const dbs = Array.from({ length: 5 }, () => openPostgres(database.url, 'kbsync_race', { max: 1 }));
      try {
        const applied = await Promise.all(dbs.map((db) => applyMigrations(db, logged)));
        const log = (await database.exec(
          'SELECT id, count(*)::int AS n FROM kbsync_race.migration_log GROUP BY id ORDER BY id',
        )) as Array<{
          id: number;
          n: number;
        }>;
        assert.deepEqual(
          log,
          [2, 3, 4].map((id) => ({ id, n: 1 })),
        );
        // One process applied all four; the others found them applied.
        assert.deepEqual(applied.map((a) => a.length).sort(), [0, 0, 0, 0, 4]);
        const recorded = (await database.exec(
          'SELECT id FROM kbsync_race.schema_migrations ORDER BY id',
        )) as Array<{ id: number }>;
        assert.deepEqual(
          recorded.map((r) => r.id),
          [1, 2, 3, 4],
        );
        // A later start applies only what is new.
        assert.deepEqual(
          await applyMigrations(dbs[0]!, [
            ...logged,
            { id: 5, name: 'step 5', sql: 'INSERT INTO migration_log VALUES (5, 0)' },
          ]),
          [5],
        );
      } finally {
        await Promise.all(dbs.map((db) => db.close()));
      }
    });

    it('a failing migration leaves nothing applied, and the next start applies all of it', async () => {
      const db = openPostgres(database.url, 'kbsync_fail', { max: 1 });
      try {
        const failing: PgMigration[] = [
          { id: 1, name: 'ok', sql: 'CREATE TABLE t1 (x int)' },
          { id: 2, name: 'bad', sql: 'CREATE TABLE t2 (x int); SELECT 1 / 0' },
        ];
        await assert.rejects(applyMigrations(db, failing), /division by zero/);
        const left = (await database.exec(
          "SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'kbsync_fail' AND table_name IN ('t1', 't2')",
        )) as Array<{ n: number }>;
        assert.equal(left[0]?.n, 0);
        assert.deepEqual(
          await applyMigrations(db, [failing[0]!, { id: 2, name: 'fixed', sql: 'CREATE TABLE t2 (x int)' }]),
          [1, 2],
        );
      } finally {
        await db.close();
      }
    });

    it('the real migrations apply once from several pools, and a second store on the schema is harmless', async () => {
      const dbs = Array.from({ length: 3 }, () => openPostgres(database.url, 'kbsync_real', { max: 1 }));
      try {
        const applied = await Promise.all(dbs.map((db) => applyMigrations(db)));
        assert.deepEqual(applied.flat().sort(), MIGRATIONS.map((m) => m.id).sort());
        const a = new PostgresVectorStore(dbs[0]!);
        const b = new PostgresVectorStore(dbs[1]!);
        await Promise.all([a.createCollection('kb_shared', 4), b.createCollection('kb_shared', 4)]);
        const [row] = (await database.exec(
          "SELECT count(*)::int AS n FROM kbsync_real.kb_collections WHERE kb_id = 'kb_shared'",
        )) as Array<{
          n: number;
        }>;
        assert.equal(row?.n, 1);
      } finally {
        await Promise.all(dbs.map((db) => db.close()));
      }
    });

    it('refuses a schema name that is not a plain lower-case identifier', () => {
      for (const bad of ['Kbsync', 'kb-sync', '1kb', 'kb sync', 'a'.repeat(64), '', 'kb;drop']) {
        assert.throws(() => openPostgres('postgres://x@127.0.0.1/x', bad), RangeError, bad);
      }
    });
  });
});
