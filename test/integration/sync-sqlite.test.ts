/**
 * The sync run end to end on a real SQLite source: backfill, incremental runs, unchanged rows
 * not re-embedded, updates replacing documents, NULL filter values counted, backfill: false,
 * ties across batch boundaries, and a dropped table failing the job with a readable message.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { jobBody, startSyncApp, type SyncTestApp } from '../helpers/sync.js';

let t: SyncTestApp;
let src: Database.Database;
let file: string;

before(async () => {
  t = await startSyncApp();
  file = path.join(t.dataDir, 'sources', 'shop.db');
  src = new Database(file);
  src.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, body TEXT, updated_at TEXT)');
  const insert = src.prepare('INSERT INTO items VALUES (?, ?, ?, ?)');
  for (let i = 1; i <= 250; i++) insert.run(i, `item ${i}`, `body of item ${i}`, `2025-01-01 00:00:${String(i % 60).padStart(2, '0')}.${String(i).padStart(6, '0')}`);
  insert.run(251, 'no time', 'filter value is null', null);
  assert.equal((await t.request('POST', '/databases', { name: 'shop', engine: 'sqlite', parameters: { path: file } })).status, 201);
  assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'kb' })).status, 201);
});
after(async () => {
  src.close();
  await t.close();
});

describe('sync on SQLite', () => {
  it('backfills every row once, counts NULL filter values as skipped, and records the run', async () => {
    const created = await t.request('POST', '/jobs/create', jobBody({ job_name: 'items', source_table: 'shop.items', content_columns: ['name', 'body'], filter_column: 'updated_at', batch_size: 40 }));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const run = await t.runNow('items');
    assert.equal(run.status, 'succeeded', JSON.stringify(run));
    assert.equal(run.trigger, 'manual');
    assert.equal(run.rows_read, 250);
    assert.equal(run.documents_added, 250);
    assert.equal(run.rows_skipped, 1);
    assert.equal(run.chunks_written, 250);
    assert.equal(run.watermark_start, null);
    assert.ok(run.watermark_end.filter_value.startsWith('2025-01-01 00:00:59'));
    const docs = await t.documents('kb');
    assert.equal(docs.length, 250);
    assert.equal(new Set(docs.map((d) => d.id)).size, 250);
    const doc7 = docs.find((d) => d.id === '7')!;
    assert.equal(doc7.content, 'name: item 7\nbody: body of item 7');
    assert.equal(doc7.metadata.source_table, 'shop.items');
    assert.equal(doc7.metadata.updated_at, '2025-01-01 00:00:07.000007');
    const job = await t.request('GET', '/jobs/items');
    assert.equal(job.body.data.totals.documents_added, 250);
    assert.equal(job.body.data.last_run.status, 'succeeded');
    assert.equal(job.body.data.status, 'scheduled', 'a manual run leaves the schedule as it was');
  });

  it('a second run re-reads only the lookback window and embeds nothing', async () => {
    const before = t.providers.embedded();
    const run = await t.runNow('items');
    assert.equal(run.status, 'succeeded');
    assert.equal(run.documents_added + run.documents_updated, 0);
    assert.equal(t.providers.embedded(), before, 'no embedding calls for unchanged rows');
  });

  it('an updated row replaces its document, re-embedding only that one; a new row is added', async () => {
    src.prepare("UPDATE items SET body = 'rewritten body', updated_at = '2025-01-02 00:00:00' WHERE id = 3").run();
    src.prepare("INSERT INTO items VALUES (300, 'new item', 'fresh', '2025-01-02 00:00:01')").run();
    const before = t.providers.embedded();
    const run = await t.runNow('items');
    assert.equal(run.status, 'succeeded');
    assert.equal(run.documents_updated, 1);
    assert.equal(run.documents_added, 1);
    assert.equal(t.providers.embedded() - before, 2);
    const docs = await t.documents('kb');
    assert.equal(docs.length, 251);
    assert.equal(docs.find((d) => d.id === '3')!.content, 'name: item 3\nbody: rewritten body');
    const hits = await t.request('POST', '/knowledge_bases/kb/query', { query: 'rewritten', mode: 'keyword' });
    assert.equal(hits.body.data.results[0].document_id, '3');
  });

  it('5,000 rows sharing one filter value, batch size 100: all arrive once', async () => {
    src.exec('CREATE TABLE ties (id INTEGER PRIMARY KEY, body TEXT, ts TEXT)');
    const insert = src.prepare('INSERT INTO ties VALUES (?, ?, ?)');
    src.transaction(() => {
      for (let i = 1; i <= 5000; i++) insert.run(i, `tied row ${i}`, '2025-03-01 12:00:00');
    })();
    await t.request('POST', '/knowledge_bases', { kb_name: 'ties_kb' });
    await t.request('POST', '/jobs/create', jobBody({ job_name: 'ties', kb_name: 'ties_kb', source_table: 'shop.ties', content_columns: ['body'], filter_column: 'ts', batch_size: 100 }));
    const run = await t.runNow('ties');
    assert.equal(run.status, 'succeeded', JSON.stringify(run.error));
    assert.equal(run.rows_read, 5000);
    const docs = await t.documents('ties_kb');
    assert.equal(docs.length, 5000);
    assert.equal(new Set(docs.map((d) => d.id)).size, 5000);
  });

  it('backfill: false starts from the current maximum', async () => {
    await t.request('POST', '/knowledge_bases', { kb_name: 'fresh_kb' });
    await t.request('POST', '/jobs/create', jobBody({ job_name: 'fresh', kb_name: 'fresh_kb', source_table: 'shop.items', content_columns: ['name'], filter_column: 'updated_at', backfill: false, lookback: 0 }));
    const first = await t.runNow('fresh');
    assert.equal(first.status, 'succeeded');
    assert.equal(first.rows_read, 0);
    src.prepare("INSERT INTO items VALUES (301, 'after start', 'x', '2025-02-01 00:00:00')").run();
    const second = await t.runNow('fresh');
    assert.equal(second.rows_read, 1);
    assert.deepEqual((await t.documents('fresh_kb')).map((d) => d.id), ['301']);
  });

  it('a dropped source table marks the job failed with what to fix; resume works after the fix', async () => {
    src.exec('CREATE TABLE doomed (id INTEGER PRIMARY KEY, body TEXT, ts TEXT)');
    src.prepare("INSERT INTO doomed VALUES (1, 'a', '2025-01-01')").run();
    await t.request('POST', '/knowledge_bases', { kb_name: 'doomed_kb' });
    await t.request('POST', '/jobs/create', jobBody({ job_name: 'doomed', kb_name: 'doomed_kb', source_table: 'shop.doomed', content_columns: ['body'], filter_column: 'ts' }));
    assert.equal((await t.runNow('doomed')).status, 'succeeded');
    src.exec('DROP TABLE doomed');
    const run = await t.runNow('doomed');
    assert.equal(run.status, 'failed');
    assert.equal(run.error.code, 'TABLE_MISSING');
    const job = (await t.request('GET', '/jobs/doomed')).body.data;
    assert.equal(job.status, 'failed');
    assert.match(job.status_reason, /no longer exists: restore it/);
    // The fix: the table comes back (with one more row); resume puts the job back on its grid.
    src.exec('CREATE TABLE doomed (id INTEGER PRIMARY KEY, body TEXT, ts TEXT)');
    src.prepare("INSERT INTO doomed VALUES (1, 'a', '2025-01-01'), (2, 'b', '2025-01-02')").run();
    const resumed = await t.request('POST', '/jobs/doomed/resume');
    assert.equal(resumed.body.data.status, 'scheduled');
    const after = await t.runNow('doomed');
    assert.equal(after.status, 'succeeded');
    assert.equal((await t.documents('doomed_kb')).length, 2);
  });

  it('a provider failure fails the run without advancing the watermark; the next run loses nothing', async () => {
    src.prepare("INSERT INTO items VALUES (400, 'late item', 'x', '2025-05-01 00:00:00')").run();
    const before = (await t.request('GET', '/jobs/items')).body.data.watermark;
    t.providers.failNext(1);
    const failed = await t.runNow('items');
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error.code, 'SYNC_FAILED');
    const job = (await t.request('GET', '/jobs/items')).body.data;
    assert.equal(job.status, 'scheduled', 'a transient failure keeps the job scheduled');
    assert.deepEqual(job.watermark, before);
    const ok = await t.runNow('items');
    assert.equal(ok.status, 'succeeded');
    assert.ok((await t.documents('kb')).some((d) => d.id === '400'));
  });

  it('run-now while a run is in progress is 409', async () => {
    src.prepare("INSERT INTO items VALUES (401, 'held', 'x', '2025-06-01 00:00:00')").run();
    const release = t.providers.hold();
    const first = await t.request('POST', '/jobs/items/run');
    assert.equal(first.status, 202);
    const second = await t.request('POST', '/jobs/items/run');
    assert.equal(second.status, 409);
    assert.equal(second.body.error.code, 'CONFLICT');
    assert.equal((await t.request('GET', '/jobs/items')).body.data.status, 'running');
    release();
    await t.app.services.scheduler.whenIdle();
    assert.equal((await t.request('GET', '/jobs/items')).body.data.status, 'scheduled');
  });
});
