/**
 * Issue 12, "Freshness", over HTTP: `lag_seconds` is 0 after a run, grows while rows are inserted
 * and the job is paused (GET /jobs/{job} measures it with one source query), falls back to the
 * stored measurement when the source cannot answer; `GET /jobs?stale_after=` filters on the
 * stored lag and validates its value; /metrics exports `kbsync_job_lag_seconds` per job.
 * Every answer is also checked against /openapi.json by the test app.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { makeSqliteSource } from '../helpers/app.js';
import { jobBody, startSyncApp, type SyncTestApp } from '../helpers/sync.js';

let t: SyncTestApp;
let file: string;

/** SQLite's TIMESTAMP text, `secondsAgo` before now (UTC, as every source session reads times). */
const ago = (secondsAgo: number) => new Date(Date.now() - secondsAgo * 1000).toISOString().replace('T', ' ').slice(0, 19);

function insert(id: number, createdAt: string): void {
  const db = new Database(file);
  try {
    db.prepare('INSERT INTO orders (id, product, description, created_at) VALUES (?, ?, ?, ?)').run(id, `p${id}`, `d${id}`, createdAt);
  } finally {
    db.close();
  }
}

before(async () => {
  t = await startSyncApp();
  file = makeSqliteSource(t.dataDir, 5);
  assert.equal((await t.request('POST', '/databases', { name: 'src', engine: 'sqlite', parameters: { path: file } })).status, 201);
  assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'kb' })).status, 201);
});
after(() => t.close());

describe('lag_seconds', () => {
  it('is null before any measurement', async () => {
    const created = await t.request(
      'POST',
      '/jobs',
      jobBody({ job_name: 'fresh', source_table: 'src.orders', content_columns: ['product', 'description'], filter_column: 'created_at' }),
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.data.lag_seconds, null);
    assert.equal(created.body.data.lag_measured_at, null);
  });

  it('is 0 after a run, and grows while rows are inserted and the job is paused', async () => {
    const run = await t.runNow('fresh');
    assert.equal(run.status, 'succeeded', JSON.stringify(run));
    const synced = (await t.request('GET', '/jobs/fresh')).body.data;
    assert.equal(synced.lag_seconds, 0);
    assert.equal(synced.lag_behind, false);
    assert.ok(synced.lag_measured_at);
    const listed = (await t.request('GET', '/jobs')).body.data.jobs.find((j: any) => j.job_name === 'fresh');
    assert.equal(listed.lag_seconds, 0, 'the stored measurement (the run wrote it) says caught up');

    assert.equal((await t.request('POST', '/jobs/fresh/pause')).status, 200);
    insert(101, ago(3600));
    const behind = (await t.request('GET', '/jobs/fresh')).body.data;
    assert.equal(behind.status, 'paused');
    assert.equal(behind.lag_behind, true);
    // An hour behind; the upper bound only guards against nonsense (a slow machine adds seconds).
    assert.ok(behind.lag_seconds >= 3600 && behind.lag_seconds < 3600 + 600, JSON.stringify(behind));

    // A row older still: the oldest unsynced row is now two hours old.
    insert(102, ago(7200));
    const further = (await t.request('GET', '/jobs/fresh')).body.data;
    assert.ok(further.lag_seconds >= 7200 && further.lag_seconds < 7200 + 600, JSON.stringify(further));

    // Resumed and run: caught up again.
    assert.equal((await t.request('POST', '/jobs/fresh/resume')).status, 200);
    assert.equal((await t.runNow('fresh')).status, 'succeeded');
    assert.equal((await t.request('GET', '/jobs/fresh')).body.data.lag_seconds, 0);
  });

  it('is the stored measurement, with its time, when the source cannot answer', async () => {
    const before = (await t.request('GET', '/jobs/fresh')).body.data;
    const db = new Database(file);
    db.exec('ALTER TABLE orders RENAME TO orders_gone');
    db.close();
    try {
      const res = await t.request('GET', '/jobs/fresh');
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.data.lag_seconds, 0, 'the last run said caught up');
      assert.equal(res.body.data.lag_measured_at, (await t.request('GET', '/jobs')).body.data.jobs.find((j: any) => j.job_name === 'fresh').lag_measured_at);
      assert.ok(Date.parse(res.body.data.lag_measured_at) <= Date.parse(before.lag_measured_at));
    } finally {
      const again = new Database(file);
      again.exec('ALTER TABLE orders_gone RENAME TO orders');
      again.close();
    }
  });
});

describe('GET /jobs?stale_after=', () => {
  it('lists only jobs whose stored lag is more than the given seconds', async () => {
    // A budget stops the first run after a few rows (dated 2025): the job stays far behind. (A
    // knowledge base of its own: in `kb` the documents exist already and cost no tokens.)
    assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'kb2' })).status, 201);
    const created = await t.request(
      'POST',
      '/jobs',
      jobBody({
        job_name: 'behind',
        kb_name: 'kb2',
        source_table: 'src.orders',
        content_columns: ['product', 'description'],
        filter_column: 'created_at',
        max_tokens_per_run: 1,
      }),
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const run = await t.runNow('behind');
    assert.equal(run.budget_reached, true, JSON.stringify(run));
    const stale = await t.request('GET', '/jobs?stale_after=600');
    assert.equal(stale.status, 200);
    assert.deepEqual(
      stale.body.data.jobs.map((j: any) => j.job_name),
      ['behind'],
    );
    assert.ok(stale.body.data.jobs[0].lag_seconds > 600);
    const all = await t.request('GET', '/jobs?stale_after=0');
    assert.deepEqual(all.body.data.jobs.map((j: any) => j.job_name), ['behind'], 'a caught-up job (lag 0) is not behind by more than 0');
  });

  it('refuses a value that is not a whole number of seconds ≥ 0 with 400 INVALID_REQUEST', async () => {
    for (const bad of ['-1', 'abc', '1.5', '', '99999999999']) {
      const res = await t.request('GET', `/jobs?stale_after=${encodeURIComponent(bad)}`);
      assert.equal(res.status, 400, `${bad}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'INVALID_REQUEST');
      assert.match(res.body.error.details.join('\n'), /stale_after must be a whole number of seconds/);
    }
  });
});

describe('/metrics', () => {
  it('exports kbsync_job_lag_seconds per job', async () => {
    const res = await t.app.server.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    const line = (name: string) => res.body.split('\n').find((l) => l.startsWith(`kbsync_job_lag_seconds{job="${name}"`));
    assert.match(line('fresh') ?? '', / 0$/, res.body.slice(0, 0));
    const behind = Number((line('behind') ?? '').split(' ').pop());
    assert.ok(behind > 600, String(line('behind')));
  });
});
