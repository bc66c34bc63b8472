/**
 * Deletes (SEMANTICS.md, "Deletes"), on PostgreSQL, MariaDB and SQLite sources: rows deleted at
 * the source leave the knowledge base at the next run (found by key-hash reconciliation, no
 * triggers), `deletes: "off"` keeps them, soft-deleted rows leave and come back, a key deleted
 * and inserted again comes back with its new content, and live writers end with exactly one
 * current document per row.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { DEFAULT_ACCOUNT } from '../../src/api/server.js';
import type { TempDatabase } from '../helpers/databases.js';
import type { SyncTestApp } from '../helpers/sync.js';
import { jobBody } from '../helpers/sync.js';
import {
  assertSucceeded,
  createJob,
  createKb,
  getJob,
  insertRows,
  mysqlKit,
  postgresKit,
  type SourceKit,
  skipUnlessSource,
  sqliteKit,
  startSourceApp,
  stopRunningJobs,
  uniqueIds,
} from '../helpers/sync-sources.js';

const TIMEOUT = 60_000;
const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** Boolean column type and its true/false values as bound parameters. */
const BOOL: Record<SourceKit['engine'], string> = { postgres: 'boolean', mysql: 'BOOLEAN', sqlite: 'BOOLEAN' };

for (const kit of [postgresKit, mysqlKit, sqliteKit]) {
  const skip = await skipUnlessSource(kit);
  describe(`deletes on ${kit.label}`, { skip }, () => {
    let t: SyncTestApp;
    let db: TempDatabase;
    const q = kit.q;
    const p = kit.p;
    const exec = (sql: string, params?: unknown[]) => db.exec(sql, params);

    before(async () => {
      ({ t, db } = await startSourceApp(kit));
    });
    afterEach(async () => {
      if (t) await stopRunningJobs(t);
    });
    after(async () => {
      await t?.close();
      await db?.close();
    });

    /** The KB as id -> content. */
    const contents = async (kb: string) => new Map((await t.documents(kb)).map((d) => [d.id, d.content]));

    it('5 deleted rows are gone after the next run and never found by a query; with deletes "off" they stay', { timeout: TIMEOUT }, async () => {
      await exec(`CREATE TABLE ${q('items')} (id ${kit.t.int} PRIMARY KEY, body ${kit.t.text}, updated_at ${kit.t.ts6})`);
      await insertRows(kit, db, 'items', ['id', 'body', 'updated_at'], Array.from({ length: 40 }, (_, k) => [k + 1, `item ${k + 1} zebracorn${k + 1}`, `2025-01-01 00:00:${pad(k)}`]));
      await createKb(t, 'items_kb');
      await createKb(t, 'items_keep_kb');
      const created = await createJob(t, { job_name: 'items', kb_name: 'items_kb', source_table: 'src.items', content_columns: ['body'], filter_column: 'updated_at', batch_size: 7, lookback: 0 });
      assert.equal(created.deletes, 'reconcile', 'reconcile is the default');
      await createJob(t, { job_name: 'items_keep', kb_name: 'items_keep_kb', source_table: 'src.items', content_columns: ['body'], filter_column: 'updated_at', deletes: 'off' });
      assertSucceeded(await t.runNow('items'));
      assertSucceeded(await t.runNow('items_keep'));
      assert.equal((await t.documents('items_kb')).length, 40);

      const gone = [3, 11, 12, 27, 40];
      await exec(`DELETE FROM ${q('items')} WHERE id IN (${gone.join(', ')})`);
      const run = await t.runNow('items');
      assertSucceeded(run);
      assert.equal(run.documents_deleted, 5);
      assert.equal(run.rows_read, 0, 'nothing new to read: the deletes were found without reading rows');
      const ids = uniqueIds(await t.documents('items_kb'));
      assert.equal(ids.size, 35);
      for (const id of gone) assert.ok(!ids.has(String(id)), `row ${id} was deleted at the source`);
      for (const id of gone) {
        const res = await t.request('POST', '/knowledge_bases/items_kb/query', { query: `zebracorn${id}`, mode: 'keyword', top_k: 10 });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.ok(!res.body.data.results.some((r: { document_id: string }) => r.document_id === String(id)), `query finds deleted row ${id}`);
      }
      const job = await getJob(t, 'items');
      assert.equal(job.totals.documents_deleted, 5);
      const metrics = await t.request('GET', '/metrics');
      assert.match(String(metrics.body), /kbsync_documents_total\{outcome="deleted"\} [1-9]/);

      // A run with nothing deleted deletes nothing, and settles it with one aggregate.
      const again = await t.runNow('items');
      assertSucceeded(again);
      assert.equal(again.documents_deleted, 0);
      assert.deepEqual({ rounds: again.reconcile.rounds, aggregates: again.reconcile.source_aggregates, keys: again.reconcile.source_keys }, { rounds: 1, aggregates: 1, keys: 0 });

      const keep = await t.runNow('items_keep');
      assertSucceeded(keep);
      assert.equal(keep.documents_deleted, 0);
      assert.equal((await t.documents('items_keep_kb')).length, 40, 'deletes: off keeps the documents of deleted rows');
    });

    it('composite keys: deleted keys leave, their neighbours stay; a key deleted and inserted again comes back with its new content', { timeout: TIMEOUT }, async () => {
      await exec(`CREATE TABLE ${q('lines')} (order_id ${kit.t.int} NOT NULL, line ${kit.t.int} NOT NULL, body ${kit.t.text}, updated_at ${kit.t.ts6}, PRIMARY KEY (order_id, line))`);
      const rows: unknown[][] = [];
      for (let o = 1; o <= 12; o++) for (let l = 1; l <= 12; l++) rows.push([o, l, `order ${o} line ${l}`, '2025-02-01 00:00:00']);
      await insertRows(kit, db, 'lines', ['order_id', 'line', 'body', 'updated_at'], rows);
      await createKb(t, 'lines_kb');
      await createJob(t, { job_name: 'lines', kb_name: 'lines_kb', source_table: 'src.lines', content_columns: ['body'], filter_column: 'updated_at', batch_size: 50, lookback: 0 });
      assertSucceeded(await t.runNow('lines'));
      assert.equal((await t.documents('lines_kb')).length, 144);

      // (1, 12) and (11, 2) would collide in a key joined without a separator.
      await exec(`DELETE FROM ${q('lines')} WHERE (order_id = 1 AND line = 12) OR (order_id = 7 AND line = 7) OR (order_id = 5 AND line = 5)`);
      // Deleted and inserted again with new content (and, as writers do, a new filter value).
      await exec(`DELETE FROM ${q('lines')} WHERE order_id = 3 AND line = 4`);
      await insertRows(kit, db, 'lines', ['order_id', 'line', 'body', 'updated_at'], [[3, 4, 'order 3 line 4, re-inserted', '2025-02-02 00:00:00']]);
      const run = await t.runNow('lines');
      assertSucceeded(run);
      assert.equal(run.documents_deleted, 3);
      assert.equal(run.documents_updated, 1);
      const docs = await contents('lines_kb');
      assert.equal(docs.size, 141);
      assert.ok(!docs.has(JSON.stringify(['1', '12'])));
      assert.ok(!docs.has(JSON.stringify(['7', '7'])));
      assert.ok(docs.has(JSON.stringify(['11', '2'])));
      assert.equal(docs.get(JSON.stringify(['3', '4'])), 'body: order 3 line 4, re-inserted');

      // Re-inserted after its document was removed, with an OLD filter value the incremental read
      // cannot see: reconciliation finds the key missing and brings the row back.
      await insertRows(kit, db, 'lines', ['order_id', 'line', 'body', 'updated_at'], [[5, 5, 'order 5 line 5, back', '2025-01-15 00:00:00']]);
      const back = await t.runNow('lines');
      assertSucceeded(back);
      assert.equal(back.documents_added, 1);
      assert.equal((await contents('lines_kb')).get(JSON.stringify(['5', '5'])), 'body: order 5 line 5, back');

      // Should the two sides ever hash a key differently, no document is lost: a key is gone only
      // when no differing bucket of the source holds it, and then only after a lookup by key.
      const kb = await t.app.services.store.getKnowledgeBase(DEFAULT_ACCOUNT, 'lines_kb');
      const id = JSON.stringify(['11', '2']);
      await t.app.services.vectors.setKeyHashes(kb!.id, [{ id, keyHash: 'f'.repeat(32) }]);
      const mismatch = await t.runNow('lines');
      assertSucceeded(mismatch);
      assert.ok(mismatch.reconcile.source_keys > 0, 'the sides differed, so keys were compared');
      assert.equal(mismatch.documents_deleted, 0);
      assert.equal((await contents('lines_kb')).get(id), 'body: order 11 line 2');
    });

    it('soft delete: a marked row disappears and comes back when unmarked, with or without a new filter value', { timeout: TIMEOUT }, async () => {
      await exec(`CREATE TABLE ${q('posts')} (id ${kit.t.int} PRIMARY KEY, body ${kit.t.text}, updated_at ${kit.t.ts6}, deleted_at ${kit.t.ts6} NULL, is_deleted ${BOOL[kit.engine]} NOT NULL)`);
      await insertRows(kit, db, 'posts', ['id', 'body', 'updated_at', 'deleted_at', 'is_deleted'], Array.from({ length: 10 }, (_, k) => [k + 1, `post ${k + 1}`, `2025-03-01 00:00:0${k}`, null, 0]));
      await createKb(t, 'posts_kb');
      await createKb(t, 'posts_flag_kb');
      const refused = await t.request('POST', '/jobs/create', jobBody({ job_name: 'posts_typo', kb_name: 'posts_kb', source_table: 'src.posts', content_columns: ['body'], filter_column: 'updated_at', soft_delete_column: 'Deleted_At' }));
      assert.equal(refused.status, 400, JSON.stringify(refused.body));
      assert.match(JSON.stringify(refused.body.error.details), /soft_delete_column 'Deleted_At' does not exist.*did you mean 'deleted_at'/);
      await createJob(t, { job_name: 'posts', kb_name: 'posts_kb', source_table: 'src.posts', content_columns: ['body'], filter_column: 'updated_at', soft_delete_column: 'deleted_at', lookback: 0 });
      const flagged = await createJob(t, { job_name: 'posts_flag', kb_name: 'posts_flag_kb', source_table: 'src.posts', content_columns: ['body'], filter_column: 'updated_at', soft_delete_column: 'is_deleted', deletes: 'off', lookback: 0 });
      assert.equal(flagged.soft_delete_column, 'is_deleted');
      assertSucceeded(await t.runNow('posts'));
      assertSucceeded(await t.runNow('posts_flag'));
      assert.equal((await t.documents('posts_kb')).length, 10);

      // Marked with a new filter value: the incremental read sees the mark.
      await exec(`UPDATE ${q('posts')} SET deleted_at = ${p(1)}, is_deleted = TRUE, updated_at = ${p(2)} WHERE id = 4`, ['2025-03-02 00:00:00', '2025-03-02 00:00:00']);
      // Marked without touching the filter column: reconciliation sees it.
      await exec(`UPDATE ${q('posts')} SET deleted_at = ${p(1)}, is_deleted = TRUE WHERE id = 8`, ['2025-03-02 00:00:00']);
      const run = await t.runNow('posts');
      assertSucceeded(run);
      assert.equal(run.documents_deleted, 2);
      assert.deepEqual([...(await contents('posts_kb')).keys()].sort(), ['1', '10', '2', '3', '5', '6', '7', '9']);
      // deletes: "off" still honours the soft-delete mark of a row it reads.
      const flagRun = await t.runNow('posts_flag');
      assertSucceeded(flagRun);
      assert.equal(flagRun.documents_deleted, 1, 'the row read with its mark is removed; reconciliation is off');
      assert.ok(!(await contents('posts_flag_kb')).has('4'));

      // Unmarked: one with a new filter value, one without.
      await exec(`UPDATE ${q('posts')} SET deleted_at = NULL, is_deleted = FALSE, body = ${p(1)}, updated_at = ${p(2)} WHERE id = 4`, ['post 4, restored', '2025-03-03 00:00:00']);
      await exec(`UPDATE ${q('posts')} SET deleted_at = NULL, is_deleted = FALSE WHERE id = 8`);
      const back = await t.runNow('posts');
      assertSucceeded(back);
      assert.equal(back.documents_deleted, 0);
      const docs = await contents('posts_kb');
      assert.equal(docs.size, 10);
      assert.equal(docs.get('4'), 'body: post 4, restored');
      assert.equal(docs.get('8'), 'body: post 8');
      assertSucceeded(await t.runNow('posts_flag'));
      assert.equal((await contents('posts_flag_kb')).get('4'), 'body: post 4, restored');

      // The mark column dropped: the job fails with what to fix, like any missing column.
      await exec(`ALTER TABLE ${q('posts')} DROP COLUMN is_deleted`);
      const dropped = await t.runNow('posts_flag');
      assert.equal(dropped.status, 'failed');
      assert.equal(dropped.error.code, 'COLUMN_MISSING');
      assert.match(dropped.error.message, /soft-delete column 'is_deleted' no longer exists/);
    });

    it('all rows deleted: the knowledge base is emptied; backfill: false compares only the rows after its start', { timeout: TIMEOUT }, async () => {
      await exec(`CREATE TABLE ${q('temp')} (id ${kit.t.int} PRIMARY KEY, body ${kit.t.text}, updated_at ${kit.t.ts6})`);
      await insertRows(kit, db, 'temp', ['id', 'body', 'updated_at'], Array.from({ length: 6 }, (_, k) => [k + 1, `old ${k + 1}`, `2025-01-01 00:00:0${k}`]));
      await createKb(t, 'temp_kb');
      await createKb(t, 'temp_new_kb');
      await createJob(t, { job_name: 'temp', kb_name: 'temp_kb', source_table: 'src.temp', content_columns: ['body'], filter_column: 'updated_at' });
      await createJob(t, { job_name: 'temp_new', kb_name: 'temp_new_kb', source_table: 'src.temp', content_columns: ['body'], filter_column: 'updated_at', backfill: false, lookback: 0 });
      assertSucceeded(await t.runNow('temp'));
      assertSucceeded(await t.runNow('temp_new'));
      assert.equal((await t.documents('temp_new_kb')).length, 0, 'backfill: false skips the rows already there');
      await insertRows(kit, db, 'temp', ['id', 'body', 'updated_at'], [[7, 'new 7', '2025-01-02 00:00:00'], [8, 'new 8', '2025-01-02 00:00:01']]);
      const newRun = await t.runNow('temp_new');
      assertSucceeded(newRun);
      assert.equal(newRun.documents_added, 2);
      assert.deepEqual([...(await contents('temp_new_kb')).keys()].sort(), ['7', '8'], 'reconciliation does not pull in the skipped rows');

      await exec(`DELETE FROM ${q('temp')} WHERE id = 8`);
      const again = await t.runNow('temp_new');
      assertSucceeded(again);
      assert.equal(again.documents_deleted, 1);
      assert.deepEqual([...(await contents('temp_new_kb')).keys()], ['7']);

      await exec(`DELETE FROM ${q('temp')}`);
      const run = await t.runNow('temp');
      assertSucceeded(run);
      assert.equal(run.documents_deleted, 6, 'the six rows this job synced');
      assert.equal((await t.documents('temp_kb')).length, 0);
    });

    it('documents synced before key hashes were stored are reconciled too; a documents-API document is never touched', { timeout: TIMEOUT }, async () => {
      await exec(`CREATE TABLE ${q('old')} (id ${kit.t.int} PRIMARY KEY, body ${kit.t.text}, updated_at ${kit.t.ts6})`);
      await insertRows(kit, db, 'old', ['id', 'body', 'updated_at'], Array.from({ length: 30 }, (_, k) => [k + 1, `old ${k + 1}`, `2025-06-01 00:00:${pad(k)}`]));
      await createKb(t, 'old_kb');
      await createJob(t, { job_name: 'old', kb_name: 'old_kb', source_table: 'src.old', content_columns: ['body'], filter_column: 'updated_at', lookback: 0 });
      assertSucceeded(await t.runNow('old'));
      // Written through the documents API, even with metadata that looks synced from another table.
      const api = await t.request('POST', '/knowledge_bases/old_kb/documents', {
        documents: [{ id: 'manual-note', content: 'written by hand', metadata: { row_key: '9999', source_table: 'elsewhere.t' } }],
      });
      assert.equal(api.status, 200, JSON.stringify(api.body));
      // As a store from before key hashes: none of the synced documents has one.
      const store = new Database(path.join(t.dataDir, 'kbsync.db'));
      store.exec('UPDATE kb_documents SET key_hash = NULL, key_term = NULL');
      store.close();

      await exec(`DELETE FROM ${q('old')} WHERE id IN (4, 17)`);
      const run = await t.runNow('old');
      assertSucceeded(run);
      assert.equal(run.documents_deleted, 2);
      const ids = uniqueIds(await t.documents('old_kb'));
      assert.equal(ids.size, 29);
      assert.ok(ids.has('manual-note'));
      assert.ok(!ids.has('4') && !ids.has('17'));
    });

    it('live writers insert, update, delete and re-insert while runs repeat: the end state is exactly one current document per row', { timeout: 120_000 }, async () => {
      await exec(`CREATE TABLE ${q('live')} (id ${kit.t.int} PRIMARY KEY, body ${kit.t.text}, updated_at ${kit.nowType})`);
      await createKb(t, 'live_kb');
      await createJob(t, { job_name: 'live', kb_name: 'live_kb', source_table: 'src.live', content_columns: ['body'], filter_column: 'updated_at', batch_size: 20 });
      const writer = await kit.connect(db.url);
      // A seeded generator: the same sequence of operations on every engine and every run of the test.
      let seed = 7;
      const rand = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        // The high bits: a linear congruential generator's low bits alternate.
        return Math.floor((seed / 2 ** 31) * n);
      };
      let stop = false;
      let ops = 0;
      const writes = (async () => {
        while (!stop || ops < 300) {
          const id = rand(120) + 1;
          const op = rand(4);
          if (op === 0) {
            await writer.query(`DELETE FROM ${q('live')} WHERE id = ${p(1)}`, [id]);
          } else {
            // Insert, update or re-insert a deleted key, with a new body each time.
            await writer.query(`DELETE FROM ${q('live')} WHERE id = ${p(1)}`, [id]);
            await writer.query(`INSERT INTO ${q('live')} (id, body, updated_at) VALUES (${p(1)}, ${p(2)}, ${kit.now})`, [id, `row ${id} version ${ops}`]);
          }
          ops++;
          if (ops >= 600) break;
          if (ops % 10 === 0) await new Promise((r) => setTimeout(r, rand(5)));
        }
      })();
      try {
        for (let i = 0; i < 8; i++) assertSucceeded(await t.runNow('live'));
      } finally {
        stop = true;
        await writes;
        await writer.end();
      }
      // After the writers stop, one run settles it.
      assertSucceeded(await t.runNow('live'));
      const source = new Map(
        ((await exec(`SELECT id, body FROM ${q('live')}`)) as Array<{ id: unknown; body: string }>).map((r) => [String(r.id), `body: ${r.body}`]),
      );
      const docs = await t.documents('live_kb');
      uniqueIds(docs);
      assert.deepEqual(new Map(docs.map((d) => [d.id, d.content])), source, 'the knowledge base mirrors the table');
      const settled = await t.runNow('live');
      assertSucceeded(settled);
      assert.equal(settled.documents_added + settled.documents_updated + settled.documents_deleted, 0, 'a further run changes nothing');
    });
  });
}
