/**
 * Changing a job while it lives: column changes refused during a run, content/filter changes
 * rebuilding documents without skipping rows, schedule changes and resumes during a run, one
 * source table per knowledge base, the active-job limit on resume.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ManualClock } from '../../src/core/clock.js';
import { jobBody, startSyncApp, type SyncTestApp } from '../helpers/sync.js';

const T = Date.UTC(2030, 0, 1, 12, 0, 0);
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '');

describe('job changes', () => {
  let t: SyncTestApp;
  let src: Database.Database;
  let clock: ManualClock;

  before(async () => {
    clock = new ManualClock(T);
    t = await startSyncApp({ clock });
    const file = path.join(t.dataDir, 'sources', 'src.db');
    src = new Database(file);
    src.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT, body TEXT, updated_at TEXT, seq INTEGER)');
    const insert = src.prepare('INSERT INTO notes VALUES (?, ?, ?, ?, ?)');
    for (let i = 1; i <= 30; i++) insert.run(i, `title ${i}`, `body ${i}`, `2025-01-01 00:00:${String(i).padStart(2, '0')}`, 100 - i);
    src.exec('CREATE TABLE other (id INTEGER PRIMARY KEY, body TEXT, ts TEXT)');
    assert.equal((await t.request('POST', '/databases', { name: 'src', engine: 'sqlite', parameters: { path: file } })).status, 201);
  });
  after(async () => {
    src.close();
    await t.close();
  });

  const kb = async (name: string) => assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: name })).status, 201);
  const job = (name: string, kbName: string, extra: Record<string, unknown> = {}) =>
    t.request('POST', '/jobs/create', jobBody({ job_name: name, kb_name: kbName, source_table: 'src.notes', content_columns: ['title'], filter_column: 'updated_at', start_time: iso(T + 3600_000), end_time: iso(T + 7200_000), ...extra }));

  it('a knowledge base receives one source table', async () => {
    await kb('one_kb');
    assert.equal((await job('first', 'one_kb')).status, 201);
    assert.equal((await job('same_table', 'one_kb')).status, 201, 'a second job on the same table is fine');
    const other = await t.request('POST', '/jobs/create', jobBody({ job_name: 'second', kb_name: 'one_kb', source_table: 'src.other', content_columns: ['body'], filter_column: 'ts' }));
    assert.equal(other.status, 400);
    assert.equal(other.body.error.code, 'INVALID_KB');
    assert.match(other.body.error.details[0], /already receives 'src\.notes' \(job 'first'\)/);
  });

  it('column changes are refused while a run is in progress; schedule changes apply to it', async () => {
    await kb('busy_kb');
    assert.equal((await job('busy', 'busy_kb', { batch_size: 5 })).status, 201);
    const release = t.providers.hold();
    assert.equal((await t.request('POST', '/jobs/busy/run')).status, 202);
    const cols = await t.request('PATCH', '/jobs/busy', { content_columns: ['body'] });
    assert.equal(cols.status, 409);
    assert.equal(cols.body.error.code, 'CONFLICT');
    assert.equal((await t.request('PATCH', '/jobs/busy', { batch_size: 10 })).status, 409);
    // The window moves to the past while the run goes on: the run ends and the job completes.
    const moved = await t.request('PATCH', '/jobs/busy', { start_time: iso(T - 7200_000), end_time: iso(T - 3600_000) });
    assert.equal(moved.status, 200, JSON.stringify(moved.body));
    release();
    await t.app.services.scheduler.whenIdle();
    const after = (await t.request('GET', '/jobs/busy')).body.data;
    assert.equal(after.status, 'completed');
    assert.equal(after.next_run, null);
    assert.equal(after.last_run.status, 'succeeded');
  });

  it('changing content columns rebuilds every document on the next run', async () => {
    await kb('rebuild_kb');
    assert.equal((await job('rebuild', 'rebuild_kb')).status, 201);
    assert.equal((await t.runNow('rebuild')).documents_added, 30);
    assert.equal((await t.request('PATCH', '/jobs/rebuild', { content_columns: ['title', 'body'] })).status, 200);
    const run = await t.runNow('rebuild');
    assert.equal(run.documents_updated, 30);
    const docs = await t.documents('rebuild_kb');
    assert.ok(docs.every((d) => /^title \d+\nbody: body \d+$/.test(d.content.replace(/^title: /, ''))), docs[0]?.content);
  });

  it('a new filter column with backfill: false does not skip rows that were never synced', async () => {
    await kb('nb_kb');
    assert.equal((await job('nobackfill', 'nb_kb', { backfill: false, lookback: 0 })).status, 201);
    assert.equal((await t.runNow('nobackfill')).rows_read, 0, 'the first run places the watermark');
    src.prepare("INSERT INTO notes VALUES (31, 'title 31', 'b', '2025-02-01 00:00:00', 1)").run();
    assert.equal((await t.request('PATCH', '/jobs/nobackfill', { filter_column: 'seq' })).status, 200);
    const run = await t.runNow('nobackfill');
    assert.equal(run.rows_read, 31, 'the next run starts over on the new column');
    assert.ok((await t.documents('nb_kb')).some((d) => d.id === '31'));
  });

  it('resume during a manual run of a paused job schedules it once the run ends', async () => {
    await kb('pr_kb');
    assert.equal((await job('paused_run', 'pr_kb')).status, 201);
    await t.request('POST', '/jobs/paused_run/pause');
    const release = t.providers.hold();
    assert.equal((await t.request('POST', '/jobs/paused_run/run')).status, 202);
    const resumed = await t.request('POST', '/jobs/paused_run/resume');
    assert.equal(resumed.status, 200);
    release();
    await t.app.services.scheduler.whenIdle();
    const after = (await t.request('GET', '/jobs/paused_run')).body.data;
    assert.equal(after.status, 'scheduled');
    assert.equal(after.next_run, `${iso(T + 3600_000)}Z`);
  });
});

describe('limits on resume', () => {
  it('resuming a failed job respects the active-job limit', async () => {
    const t = await startSyncApp({});
    try {
      const file = path.join(t.dataDir, 'sources', 'lim.db');
      const db = new Database(file);
      db.exec("CREATE TABLE a (id INTEGER PRIMARY KEY, body TEXT, ts TEXT); INSERT INTO a VALUES (1, 'x', '2025-01-01')");
      db.exec("CREATE TABLE b (id INTEGER PRIMARY KEY, body TEXT, ts TEXT); INSERT INTO b VALUES (1, 'y', '2025-01-01')");
      await t.request('POST', '/databases', { name: 'lim', engine: 'sqlite', parameters: { path: file } });
      await t.request('POST', '/knowledge_bases', { kb_name: 'ka' });
      await t.request('POST', '/knowledge_bases', { kb_name: 'kb2' });
      await t.request('POST', '/jobs/create', jobBody({ job_name: 'ja', kb_name: 'ka', source_table: 'lim.a', content_columns: ['body'], filter_column: 'ts' }));
      // Job ja fails for good: its table is dropped.
      db.exec('DROP TABLE a');
      db.close();
      assert.equal((await t.runNow('ja')).error.code, 'TABLE_MISSING');
      // The same data dir served with a limit of 1, taken by job jb.
      await t.close();
      const limited = await startSyncApp({ dataDir: t.dataDir, config: { maxActiveJobs: 1 } });
      try {
        assert.equal((await limited.request('POST', '/jobs/create', jobBody({ job_name: 'jb', kb_name: 'kb2', source_table: 'lim.b', content_columns: ['body'], filter_column: 'ts' }))).status, 201);
        const res = await limited.request('POST', '/jobs/ja/resume');
        assert.equal(res.status, 429);
        assert.equal(res.body.error.code, 'JOB_LIMIT_EXCEEDED');
        assert.equal((await limited.request('GET', '/jobs/ja')).body.data.status, 'failed');
      } finally {
        await limited.close();
      }
    } catch (err) {
      await t.close().catch(() => undefined);
      throw err;
    }
  });
});
