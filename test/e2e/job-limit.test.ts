/** 100 active jobs per account (configurable): the 101st is refused with 429 JOB_LIMIT_EXCEEDED. */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { isoIn, makeSqliteSource, startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;

const body = (name: string, overrides: Record<string, unknown> = {}) => ({
  job_name: name,
  source_table: 'src.orders',
  kb_name: 'kb',
  content_columns: ['product'],
  filter_column: 'created_at',
  interval: '1 HOUR',
  start_time: isoIn(60),
  end_time: isoIn(600),
  ...overrides,
});

before(async () => {
  t = await startTestApp();
  await t.request('POST', '/databases', { name: 'src', engine: 'sqlite', parameters: { path: makeSqliteSource(t.dataDir) } });
  await t.request('POST', '/knowledge_bases', { kb_name: 'kb' });
});
after(() => t.close());

it('the default limit is 100 active jobs; the 101st is refused; completed jobs do not count', async () => {
  for (let i = 0; i < 100; i++) {
    const res = await t.request('POST', '/jobs/create', body(`job_${i}`));
    assert.equal(res.status, 201, `job ${i}: ${JSON.stringify(res.body)}`);
  }
  const refused = await t.request('POST', '/jobs/create', body('job_100'));
  assert.equal(refused.status, 429);
  assert.equal(refused.body.error.code, 'JOB_LIMIT_EXCEEDED');
  assert.match(refused.body.error.details[0], /100 active jobs/);

  // Paused jobs still count.
  await t.request('POST', '/jobs/job_0/pause');
  assert.equal((await t.request('POST', '/jobs/create', body('job_100'))).status, 429);

  // A job whose window already ended is completed, not active: accepted.
  const done = await t.request('POST', '/jobs/create', body('done', { start_time: '2025-01-01T00:00:00', end_time: '2025-01-02T00:00:00' }));
  assert.equal(done.status, 201);
  assert.equal(done.body.data.status, 'completed');

  // Deleting one frees a slot.
  await t.request('DELETE', '/jobs/job_1');
  assert.equal((await t.request('POST', '/jobs/create', body('job_100'))).status, 201);
});
