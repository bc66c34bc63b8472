/**
 * GET /jobs/{job}/failures and POST /jobs/{job}/failures/retry over HTTP (API.md, "Failed rows").
 * The failures are recorded through the control store, as a run records them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_ACCOUNT } from '../../src/api/server.js';
import type { JobRecord } from '../../src/store/port.js';
import { makeSqliteSource } from '../helpers/app.js';
import { jobBody, type SyncTestApp, startSyncApp } from '../helpers/sync.js';

let t: SyncTestApp;
const T0 = Date.UTC(2031, 0, 15, 8, 30, 0, 250);

async function createJob(name: string, kb = 'kb'): Promise<JobRecord> {
  const res = await t.request(
    'POST',
    '/jobs',
    jobBody({ job_name: name, kb_name: kb, source_table: 'orders_db.orders', content_columns: ['product', 'description'], filter_column: 'created_at' }),
  );
  assert.equal(res.status, 201, JSON.stringify(res.body));
  const job = await t.app.services.store.getJob(DEFAULT_ACCOUNT, name);
  assert.ok(job);
  return job;
}

before(async () => {
  t = await startSyncApp();
  const source = makeSqliteSource(t.dataDir);
  const db = await t.request('POST', '/databases', { name: 'orders_db', engine: 'sqlite', parameters: { path: source } });
  assert.equal(db.status, 201, JSON.stringify(db.body));
  const kb = await t.request('POST', '/knowledge_bases', { kb_name: 'kb' });
  assert.equal(kb.status, 201, JSON.stringify(kb.body));
});

after(async () => {
  await t?.close();
});

describe('GET /jobs/{job}/failures', () => {
  it('lists nothing for a job without failures', async () => {
    await createJob('no_failures');
    const res = await t.request('GET', '/jobs/no_failures/failures');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.success, true);
    assert.deepEqual(res.body.data, { failures: [], next_cursor: null });
  });

  it('lists the failed rows by document id, with key, reason, times and attempts; pages with the cursor', async () => {
    const job = await createJob('with_failures');
    const store = t.app.services.store;
    await store.recordFailures(
      job.id,
      [
        { docId: '7', key: ['7'], reason: 'content has 2000001 characters; the limit is 1000000 (KBSYNC_MAX_DOCUMENT_CHARS)' },
        { docId: '12', key: ['12'], reason: 'the embedding provider refused this document: embedding API rejected the request (400): no' },
        { docId: '3', key: ['3'], reason: 'refused' },
      ],
      T0,
    );
    await store.recordFailures(job.id, [{ docId: '7', key: ['7'], reason: 'still too long' }], T0 + 60_000);

    const res = await t.request('GET', `/jobs/${job.id}/failures`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const { failures, next_cursor } = res.body.data;
    assert.equal(next_cursor, null);
    assert.deepEqual(
      failures.map((f: { document_id: string }) => f.document_id),
      ['12', '3', '7'],
      'ordered by document id (as text)',
    );
    assert.deepEqual(failures[2], {
      document_id: '7',
      key: ['7'],
      reason: 'still too long',
      first_failed_at: '2031-01-15T08:30:00Z',
      last_failed_at: '2031-01-15T08:31:00Z',
      attempts: 2,
    });

    const first = await t.request('GET', '/jobs/with_failures/failures?limit=2');
    assert.equal(first.status, 200);
    assert.equal(first.body.data.failures.length, 2);
    assert.ok(first.body.data.next_cursor);
    const second = await t.request('GET', `/jobs/with_failures/failures?limit=2&cursor=${encodeURIComponent(first.body.data.next_cursor)}`);
    assert.deepEqual(
      second.body.data.failures.map((f: { document_id: string }) => f.document_id),
      ['7'],
    );
    assert.equal(second.body.data.next_cursor, null);
  });

  it('404 NOT_FOUND for an unknown job; 400 for a bad limit', async () => {
    const res = await t.request('GET', '/jobs/nope/failures');
    assert.equal(res.status, 404, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'NOT_FOUND');
    const bad = await t.request('GET', '/jobs/with_failures/failures?limit=0');
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.equal(bad.body.error.code, 'INVALID_REQUEST');
  });
});

describe('POST /jobs/{job}/failures/retry', () => {
  it('409 CONFLICT when the job has no failed rows', async () => {
    await createJob('nothing_to_retry');
    const res = await t.request('POST', '/jobs/nothing_to_retry/failures/retry');
    assert.equal(res.status, 409, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'CONFLICT');
    assert.match(res.body.error.details[0], /no failed rows/);
  });

  it('404 NOT_FOUND for an unknown job', async () => {
    const res = await t.request('POST', '/jobs/nope/failures/retry');
    assert.equal(res.status, 404, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'NOT_FOUND');
  });

  it('202 with the run, started as a manual run asked to retry the failed rows', async () => {
    const job = await createJob('retry_me');
    await t.app.services.store.recordFailures(job.id, [{ docId: '4', key: ['4'], reason: 'refused' }], T0);
    const scheduler = t.app.services.scheduler;
    const seen: Array<{ retryFailures?: boolean } | undefined> = [];
    const original = scheduler.runNow.bind(scheduler);
    // Observes what the job service asks of the scheduler (the option reaches the run there).
    (scheduler as { runNow: (job: JobRecord, options?: { retryFailures?: boolean }) => ReturnType<typeof original> }).runNow = (
      j,
      options,
    ) => {
      seen.push(options);
      return original(j);
    };
    try {
      const res = await t.request('POST', '/jobs/retry_me/failures/retry');
      assert.equal(res.status, 202, JSON.stringify(res.body));
      assert.match(res.body.data.run_id, /^run_/);
      assert.equal(res.body.data.job_id, job.id);
      assert.equal(res.body.data.trigger, 'manual');
      assert.deepEqual(seen, [{ retryFailures: true }]);
      await scheduler.whenIdle();
    } finally {
      (scheduler as { runNow: unknown }).runNow = original;
    }
  });

  it('409 CONFLICT while a run is in progress', async () => {
    // A knowledge base of its own, so the run has documents to embed and waits at the held provider.
    const kb = await t.request('POST', '/knowledge_bases', { kb_name: 'kb_busy' });
    assert.equal(kb.status, 201, JSON.stringify(kb.body));
    const job = await createJob('busy', 'kb_busy');
    await t.app.services.store.recordFailures(job.id, [{ docId: '4', key: ['4'], reason: 'refused' }], T0);
    const release = t.providers.hold();
    try {
      const started = await t.request('POST', '/jobs/busy/run');
      assert.equal(started.status, 202, JSON.stringify(started.body));
      const res = await t.request('POST', '/jobs/busy/failures/retry');
      assert.equal(res.status, 409, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'CONFLICT');
    } finally {
      release();
      await t.app.services.scheduler.whenIdle();
    }
  });
});

describe('OpenAPI', () => {
  it('documents both routes with their responses', async () => {
    const res = await t.request('GET', '/openapi.json');
    assert.equal(res.status, 200);
    const list = res.body.paths['/jobs/{job}/failures']?.get;
    const retry = res.body.paths['/jobs/{job}/failures/retry']?.post;
    assert.ok(list, 'GET /jobs/{job}/failures is documented');
    assert.ok(retry, 'POST /jobs/{job}/failures/retry is documented');
    // Besides the statuses every route shares (401, 429, 500, 503: test/e2e/openapi.test.ts).
    for (const status of ['200', '400', '404']) assert.ok(list.responses[status], `list documents ${status}`);
    for (const status of ['202', '404', '409']) assert.ok(retry.responses[status], `retry documents ${status}`);
  });
});
