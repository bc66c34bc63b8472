/**
 * The Jobs API over HTTP (fastify.inject) against a real SQLite source: the seed's request and
 * response, every error code with its status and details, and the management routes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isoIn, makeSqliteSource, startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;

const seedBody = (overrides: Record<string, unknown> = {}) => ({
  job_name: 'sync_orders',
  source_table: 'orders_db.orders',
  kb_name: 'orders_kb',
  content_columns: ['product', 'description'],
  filter_column: 'created_at',
  interval: '10 MINUTES',
  start_time: isoIn(60),
  end_time: isoIn(60 + 24 * 60),
  ...overrides,
});

async function expectError(body: unknown, status: number, code: string, detailPattern: RegExp) {
  const res = await t.request('POST', '/jobs/create', body);
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.equal(res.body.success, false);
  assert.equal(res.body.error.code, code, JSON.stringify(res.body));
  assert.ok(
    res.body.error.details.some((d: string) => detailPattern.test(d)),
    `no detail matches ${detailPattern}: ${JSON.stringify(res.body.error.details)}`,
  );
  return res.body.error;
}

before(async () => {
  t = await startTestApp();
  const source = makeSqliteSource(t.dataDir);
  const db = await t.request('POST', '/databases/create', { name: 'orders_db', engine: 'sqlite', parameters: { path: source } });
  assert.equal(db.status, 201, JSON.stringify(db.body));
  const kb = await t.request('POST', '/knowledge_bases/create', { kb_name: 'orders_kb' });
  assert.equal(kb.status, 201, JSON.stringify(kb.body));
});

after(async () => {
  await t.close();
});

describe('POST /jobs/create', () => {
  it('creates the seed job: 201, job_ id, scheduled, next_run = start in UTC with Z', async () => {
    const body = seedBody();
    const res = await t.request('POST', '/jobs/create', body);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.success, true);
    assert.equal(res.body.message, 'Job created successfully');
    const data = res.body.data;
    assert.match(data.job_id, /^job_[0-9a-z]+$/);
    assert.equal(data.job_name, 'sync_orders');
    assert.equal(data.status, 'scheduled');
    assert.match(data.created_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    assert.equal(data.next_run, `${body.start_time}Z`);
    assert.deepEqual(data.content_columns, ['product', 'description']);
    assert.equal(data.watermark, null);
    assert.deepEqual(data.key_columns, ['id']);
  });

  it('refuses the same name again with 409 DUPLICATE_JOB', async () => {
    await expectError(seedBody(), 409, 'DUPLICATE_JOB', /sync_orders/);
  });

  it('accepts every interval format, case-insensitive, singular and plural', async () => {
    const formats = ['5 MINUTES', '30 minutes', '1 MINUTE', '1 HOUR', '6 HOURS', '1 day', '7 DAYS', 'HOURLY', 'daily', 'Weekly', '2 Hour'];
    for (const [i, interval] of formats.entries()) {
      const res = await t.request('POST', '/jobs/create', seedBody({ job_name: `interval_${i}`, interval }));
      assert.equal(res.status, 201, `${interval}: ${JSON.stringify(res.body)}`);
      await t.request('DELETE', `/jobs/interval_${i}`);
    }
  });

  it('converts offsets to UTC', async () => {
    const res = await t.request('POST', '/jobs/create', seedBody({ job_name: 'offset', start_time: '2099-06-19T20:00:00+02:00', end_time: '2099-06-20T20:00:00+02:00' }));
    assert.equal(res.status, 201);
    assert.equal(res.body.data.next_run, '2099-06-19T18:00:00Z');
    assert.equal(res.body.data.start_time, '2099-06-19T18:00:00Z');
    await t.request('DELETE', '/jobs/offset');
  });

  it('a start in the past gives the next tick of the grid after now', async () => {
    const start = Date.now() - 25 * 60_000 - 30_000; // 25.5 minutes ago
    const startIso = new Date(Math.floor(start / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const res = await t.request('POST', '/jobs/create', seedBody({ job_name: 'past_start', start_time: startIso, end_time: isoIn(600) }));
    assert.equal(res.status, 201);
    const next = Date.parse(res.body.data.next_run);
    const startMs = Date.parse(startIso);
    assert.equal((next - startMs) % (10 * 60_000), 0, 'next_run is on the grid');
    assert.ok(next >= Date.now() - 1000 && next - Date.now() <= 10 * 60_000, 'next_run is the first tick after now');
    await t.request('DELETE', '/jobs/past_start');
  });

  it('a window that already ended is accepted as completed with next_run null and a warning', async () => {
    const res = await t.request('POST', '/jobs/create', seedBody({ job_name: 'old', start_time: '2025-06-19T18:00:00', end_time: '2025-06-20T18:00:00' }));
    assert.equal(res.status, 201);
    assert.equal(res.body.data.status, 'completed');
    assert.equal(res.body.data.next_run, null);
    assert.ok(res.body.data.warnings.some((w: string) => /never run/.test(w)));
    await t.request('DELETE', '/jobs/old');
  });

  describe('INVALID_REQUEST', () => {
    it('missing fields: one detail per field', async () => {
      const err = await expectError({ source_table: 'orders_db.orders' }, 400, 'INVALID_REQUEST', /^job_name is required$/);
      for (const f of ['kb_name', 'content_columns', 'filter_column', 'interval', 'start_time', 'end_time']) {
        assert.ok(err.details.includes(`${f} is required`), `${f}: ${JSON.stringify(err.details)}`);
      }
    });
    it('wrong types', async () => {
      await expectError(seedBody({ job_name: 'types', content_columns: 'product' }), 400, 'INVALID_REQUEST', /content_columns must be an array, got string/);
      await expectError(seedBody({ job_name: 42 }), 400, 'INVALID_REQUEST', /job_name must be a string, got number/);
    });
    it('unknown field', async () => {
      const { content_columns, ...rest } = seedBody({ job_name: 'typo' });
      await expectError({ ...rest, conten_columns: content_columns }, 400, 'INVALID_REQUEST', /^unknown field: conten_columns$/);
    });
    it('missing content column, with a suggestion for a case mistake', async () => {
      await expectError(seedBody({ job_name: 'cols', content_columns: ['product', 'Description'] }), 400, 'INVALID_REQUEST', /content_columns 'Description' does not exist in orders_db\.orders \(did you mean 'description'\?\)/);
      await expectError(seedBody({ job_name: 'cols', filter_column: 'nope' }), 400, 'INVALID_REQUEST', /filter_column 'nope' does not exist/);
    });
    it('a body that is not an object', async () => {
      await expectError([1, 2], 400, 'INVALID_REQUEST', /JSON object/);
    });
    it('problems of several kinds give INVALID_REQUEST with every detail', async () => {
      const err = await expectError(seedBody({ job_name: 'mixed', interval: '5 SECONDS', kb_name: 'nope' }), 400, 'INVALID_REQUEST', /invalid interval format: '5 SECONDS'/);
      assert.ok(err.details.some((d: string) => /knowledge base 'nope' does not exist/.test(d)));
    });
  });

  describe('INVALID_TABLE', () => {
    it('unknown database', async () => {
      await expectError(seedBody({ job_name: 'tbl', source_table: 'nodb.orders' }), 400, 'INVALID_TABLE', /database 'nodb' is not registered/);
    });
    it('unknown table', async () => {
      await expectError(seedBody({ job_name: 'tbl', source_table: 'orders_db.nope' }), 400, 'INVALID_TABLE', /table 'nope' does not exist in database 'orders_db'/);
    });
    it('malformed name', async () => {
      await expectError(seedBody({ job_name: 'tbl', source_table: 'orders' }), 400, 'INVALID_TABLE', /format database\.table/);
      await expectError(seedBody({ job_name: 'tbl', source_table: '.orders' }), 400, 'INVALID_TABLE', /format database\.table/);
    });
    it('a table without a key to identify rows', async () => {
      await expectError(seedBody({ job_name: 'tbl', source_table: 'orders_db.nokey', content_columns: ['a'], filter_column: 'b' }), 400, 'INVALID_TABLE', /no primary key/);
    });
  });

  it('INVALID_KB when the knowledge base does not exist', async () => {
    await expectError(seedBody({ job_name: 'kb', kb_name: 'missing_kb' }), 400, 'INVALID_KB', /knowledge base 'missing_kb' does not exist/);
  });

  describe('INVALID_INTERVAL', () => {
    for (const interval of ['5 SECONDS', '0 MINUTES', 'EVERY TUESDAY', '1.5 HOURS', '-5 MINUTES', '']) {
      it(`'${interval}'`, async () => {
        await expectError(seedBody({ job_name: 'iv', interval }), 400, interval === '' ? 'INVALID_REQUEST' : 'INVALID_INTERVAL', /interval/);
      });
    }
  });

  describe('INVALID_DATETIME', () => {
    it('bad format', async () => {
      await expectError(seedBody({ job_name: 'dt', start_time: '19/06/2025 18:00' }), 400, 'INVALID_DATETIME', /start_time is not a valid ISO 8601 time/);
      await expectError(seedBody({ job_name: 'dt', end_time: '2025-02-30T00:00:00' }), 400, 'INVALID_DATETIME', /end_time is not a valid ISO 8601 time/);
    });
    it('end before start', async () => {
      await expectError(seedBody({ job_name: 'dt', start_time: isoIn(120), end_time: isoIn(60) }), 400, 'INVALID_DATETIME', /end_time must be after start_time/);
    });
    it('a 31-day window', async () => {
      await expectError(seedBody({ job_name: 'dt', start_time: isoIn(60), end_time: isoIn(60 + 31 * 24 * 60) }), 400, 'INVALID_DATETIME', /maximum job duration is 30 days/);
    });
    it('exactly 30 days is allowed', async () => {
      const res = await t.request('POST', '/jobs/create', seedBody({ job_name: 'thirty', start_time: isoIn(60), end_time: isoIn(60 + 30 * 24 * 60) }));
      assert.equal(res.status, 201);
      await t.request('DELETE', '/jobs/thirty');
    });
  });
});

describe('job management', () => {
  it('gets a job by id and by name; 404 for an unknown one', async () => {
    const byName = await t.request('GET', '/jobs/sync_orders');
    assert.equal(byName.status, 200);
    const byId = await t.request('GET', `/jobs/${byName.body.data.job_id}`);
    assert.equal(byId.body.data.job_name, 'sync_orders');
    const missing = await t.request('GET', '/jobs/nope');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'NOT_FOUND');
  });

  it('lists with filters and cursor pagination', async () => {
    for (const n of ['page_a', 'page_b', 'page_c']) {
      assert.equal((await t.request('POST', '/jobs', seedBody({ job_name: n }))).status, 201);
    }
    await t.request('POST', '/jobs/page_b/pause');
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: { body: any } = await t.request('GET', `/jobs?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      assert.ok(res.body.data.jobs.length <= 2);
      seen.push(...res.body.data.jobs.map((j: { job_name: string }) => j.job_name));
      cursor = res.body.data.next_cursor;
    } while (cursor);
    assert.equal(new Set(seen).size, seen.length, 'no job twice across pages');
    for (const n of ['sync_orders', 'page_a', 'page_b', 'page_c']) assert.ok(seen.includes(n));
    const paused = await t.request('GET', '/jobs?status=paused');
    assert.deepEqual(paused.body.data.jobs.map((j: { job_name: string }) => j.job_name), ['page_b']);
    const byKb = await t.request('GET', '/jobs?kb_name=other_kb');
    assert.deepEqual(byKb.body.data.jobs, []);
    const bad = await t.request('GET', '/jobs?status=sleeping');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'INVALID_REQUEST');
    for (const n of ['page_a', 'page_b', 'page_c']) await t.request('DELETE', `/jobs/${n}`);
  });

  it('pause keeps the job, clears next_run; resume puts it back on the grid', async () => {
    const paused = await t.request('POST', '/jobs/sync_orders/pause');
    assert.equal(paused.status, 200);
    assert.equal(paused.body.data.status, 'paused');
    assert.equal(paused.body.data.next_run, null);
    const resumed = await t.request('POST', '/jobs/sync_orders/resume');
    assert.equal(resumed.body.data.status, 'scheduled');
    assert.equal(resumed.body.data.next_run, resumed.body.data.start_time);
  });

  it('patch validates like create and resets the watermark when the filter column changes', async () => {
    const bad = await t.request('PATCH', '/jobs/sync_orders', { interval: 'EVERY TUESDAY' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'INVALID_INTERVAL');
    const unknown = await t.request('PATCH', '/jobs/sync_orders', { job_name: 'renamed' });
    assert.equal(unknown.body.error.code, 'INVALID_REQUEST');
    const badCol = await t.request('PATCH', '/jobs/sync_orders', { content_columns: ['ghost'] });
    assert.equal(badCol.status, 400);
    assert.match(badCol.body.error.details[0], /ghost/);
    const lb = await t.request('PATCH', '/jobs/sync_orders', { lookback: '2 MINUTES' });
    assert.equal(lb.body.data.lookback, 120);
    const cols = await t.request('PATCH', '/jobs/sync_orders', { content_columns: ['product'] });
    assert.equal(cols.body.data.lookback, 120, 'changing other columns keeps an explicit lookback');
    assert.deepEqual(cols.body.data.content_columns, ['product']);
    const ok = await t.request('PATCH', '/jobs/sync_orders', { interval: 'hourly', filter_column: 'id' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.data.interval, 'HOURLY');
    assert.equal(ok.body.data.filter_column, 'id');
    assert.equal(ok.body.data.lookback, 0, 'the default lookback follows the new (integer) column');
  });

  it('runs list is empty before any run; run-now answers honestly', async () => {
    const runs = await t.request('GET', '/jobs/sync_orders/runs');
    assert.equal(runs.status, 200);
    assert.deepEqual(runs.body.data.runs, []);
    const missingRun = await t.request('GET', '/jobs/sync_orders/runs/run_nope');
    assert.equal(missingRun.status, 404);
  });

  it('delete frees the name', async () => {
    assert.equal((await t.request('POST', '/jobs/create', seedBody({ job_name: 'temp' }))).status, 201);
    const del = await t.request('DELETE', '/jobs/temp');
    assert.equal(del.status, 200);
    assert.equal((await t.request('GET', '/jobs/temp')).status, 404);
    assert.equal((await t.request('POST', '/jobs/create', seedBody({ job_name: 'temp' }))).status, 201);
    await t.request('DELETE', '/jobs/temp');
  });

  it('a database or knowledge base used by a job cannot be deleted (409)', async () => {
    const db = await t.request('DELETE', '/databases/orders_db');
    assert.equal(db.status, 409);
    assert.equal(db.body.error.code, 'CONFLICT');
    const kb = await t.request('DELETE', '/knowledge_bases/orders_kb');
    assert.equal(kb.status, 409);
    assert.equal(kb.body.error.code, 'CONFLICT');
  });
});
