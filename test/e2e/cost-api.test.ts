/**
 * Issue 12, "Cost", over HTTP: the new fields are validated with readable details (400
 * INVALID_REQUEST, never a 500), `dry_run: true` answers the estimate and creates nothing, and the
 * estimate route answers 404 / 400 as documented. Every answer is also checked against
 * /openapi.json by the test app.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isoIn, makeSqliteSource } from '../helpers/app.js';
import { startSyncApp, type SyncTestApp } from '../helpers/sync.js';

let t: SyncTestApp;

const job = (extra: Record<string, unknown> = {}) => ({
  job_name: 'orders_sync',
  source_table: 'src.orders',
  kb_name: 'kb',
  content_columns: ['product', 'description'],
  filter_column: 'created_at',
  interval: 'HOURLY',
  start_time: isoIn(60),
  end_time: isoIn(600),
  ...extra,
});

/** A 400 INVALID_REQUEST whose details include one matching `detail`. */
function assertInvalid(res: { status: number; body: any }, detail: RegExp): void {
  assert.equal(res.status, 400, JSON.stringify(res.body));
  assert.equal(res.body.error.code, 'INVALID_REQUEST');
  assert.ok(
    res.body.error.details.some((d: string) => detail.test(d)),
    `${detail} in ${JSON.stringify(res.body.error.details)}`,
  );
}

before(async () => {
  t = await startSyncApp();
  const src = await t.request('POST', '/databases', {
    name: 'src',
    engine: 'sqlite',
    parameters: { path: makeSqliteSource(t.dataDir) },
  });
  assert.equal(src.status, 201);
  assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'kb' })).status, 201);
});
after(() => t.close());

describe('validation', () => {
  it('max_tokens_per_run must be a positive whole number or null, on create and PATCH', async () => {
    assertInvalid(
      await t.request('POST', '/jobs', job({ max_tokens_per_run: -5 })),
      /^max_tokens_per_run must be at least 1$/,
    );
    assertInvalid(
      await t.request('POST', '/jobs', job({ max_tokens_per_run: 0 })),
      /^max_tokens_per_run must be at least 1$/,
    );
    assertInvalid(
      await t.request('POST', '/jobs', job({ max_tokens_per_run: 2.5 })),
      /^max_tokens_per_run must be an int, got number$/,
    );
    assertInvalid(
      await t.request('POST', '/jobs', job({ max_tokens_per_run: '1000' })),
      /^max_tokens_per_run must be a number, got string$/,
    );
    const created = await t.request('POST', '/jobs', job({ max_tokens_per_run: 5000 }));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.data.max_tokens_per_run, 5000);
    assertInvalid(
      await t.request('PATCH', '/jobs/orders_sync', { max_tokens_per_run: -1 }),
      /^max_tokens_per_run must be at least 1$/,
    );
    const stored = await t.request('GET', '/jobs/orders_sync');
    assert.equal(stored.body.data.max_tokens_per_run, 5000, 'a refused PATCH changed nothing');
    assert.equal(stored.body.data.totals.embedding_tokens, 0);
    assert.equal(stored.body.data.totals.embedding_requests, 0);
    assert.equal((await t.request('DELETE', '/jobs/orders_sync')).status, 200);
  });

  it('a job without a budget shows max_tokens_per_run null', async () => {
    const created = await t.request('POST', '/jobs', job({ job_name: 'plain' }));
    assert.equal(created.status, 201);
    assert.equal(created.body.data.max_tokens_per_run, null);
    assert.equal((await t.request('DELETE', '/jobs/plain')).status, 200);
  });

  it('embedding.price_per_million_tokens must be a number ≥ 0', async () => {
    assertInvalid(
      await t.request('POST', '/knowledge_bases', {
        kb_name: 'p1',
        embedding: { provider: 'local', price_per_million_tokens: '0.02' },
      }),
      /^embedding\.price_per_million_tokens must be a number, got string$/,
    );
    assertInvalid(
      await t.request('POST', '/knowledge_bases', {
        kb_name: 'p2',
        embedding: { provider: 'local', price_per_million_tokens: -0.5 },
      }),
      /^embedding\.price_per_million_tokens must be at least 0$/,
    );
    assert.equal((await t.request('GET', '/knowledge_bases/p1')).status, 404, 'nothing created');
    const ok = await t.request('POST', '/knowledge_bases', {
      kb_name: 'priced',
      embedding: { provider: 'local', price_per_million_tokens: 0 },
    });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    assert.equal(ok.body.data.embedding.price_per_million_tokens, 0);
    assert.deepEqual(ok.body.data.totals, { embedding_tokens: 0, embedding_requests: 0, cost: 0 });
    const unpriced = await t.request('GET', '/knowledge_bases/kb');
    assert.equal(unpriced.body.data.embedding.price_per_million_tokens, null);
    assert.equal(unpriced.body.data.totals.cost, null);
  });
});

describe('POST /jobs/{job}/estimate', () => {
  it('answers 404 for an unknown job and 400 for a bad body', async () => {
    const missing = await t.request('POST', '/jobs/nope/estimate');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'NOT_FOUND');
    assert.equal((await t.request('POST', '/jobs', job({ job_name: 'est' }))).status, 201);
    assertInvalid(
      await t.request('POST', '/jobs/est/estimate', { max_rows: 0 }),
      /^max_rows must be a whole number from 1 to 1000000$/,
    );
    assertInvalid(
      await t.request('POST', '/jobs/est/estimate', { max_rows: 'all' }),
      /^max_rows must be a number, got string$/,
    );
    assertInvalid(await t.request('POST', '/jobs/est/estimate', { maxrows: 5 }), /^unknown field: maxrows$/);
  });

  it('answers for the job, with or without a body, and embeds nothing', async () => {
    const plain = await t.request('POST', '/jobs/est/estimate');
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    assert.equal(plain.body.data.rows, 20);
    assert.equal(plain.body.data.documents, 20);
    assert.equal(plain.body.data.cost, null);
    const bounded = await t.request('POST', '/jobs/est/estimate', { max_rows: 5 });
    assert.equal(bounded.body.data.rows, 5);
    assert.equal(bounded.body.data.complete, false);
    assert.equal(t.providers.embedded(), 0);
    const run = await t.runNow('est');
    assert.equal(run.embedding_tokens, plain.body.data.tokens);
    assert.equal(run.budget_reached, false);
    assert.equal((await t.request('DELETE', '/jobs/est')).status, 200);
  });
});

describe('dry_run on create', () => {
  it('answers the estimate (200) and creates nothing', async () => {
    const res = await t.request(
      'POST',
      '/jobs/create',
      job({ job_name: 'dry', dry_run: true, max_tokens_per_run: 100 }),
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.message, 'Dry run: nothing was created');
    const e = res.body.data;
    assert.equal(e.dry_run, true);
    assert.equal(e.job_name, 'dry');
    // The table's rows are in the knowledge base already (the estimate job above synced them).
    assert.equal(e.rows, 20);
    assert.equal(e.documents, 0);
    assert.equal(e.documents_unchanged, 20);
    assert.equal(e.max_tokens_per_run, 100);
    assert.equal((await t.request('GET', '/jobs/dry')).status, 404, 'nothing was created');
    assert.equal((await t.request('GET', '/jobs')).body.data.jobs.length, 0);
  });

  it('counts what a new knowledge base would embed; backfill: false embeds nothing in its first run', async () => {
    assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'fresh' })).status, 201);
    const embeddedBefore = t.providers.embedded();
    const fresh = await t.request('POST', '/jobs', job({ job_name: 'dry', kb_name: 'fresh', dry_run: true }));
    assert.equal(fresh.status, 200);
    assert.equal(fresh.body.data.documents, 20);
    assert.ok(fresh.body.data.tokens > 0);
    assert.equal(fresh.body.data.runs, 1);
    const later = await t.request(
      'POST',
      '/jobs',
      job({ job_name: 'dry', kb_name: 'fresh', dry_run: true, backfill: false }),
    );
    assert.equal(later.status, 200);
    assert.deepEqual([later.body.data.rows, later.body.data.documents, later.body.data.tokens], [0, 0, 0]);
    assert.equal(t.providers.embedded(), embeddedBefore, 'a dry run embeds nothing');
  });

  it('is validated like a create: a bad job, a taken name or a bad dry_run are refused', async () => {
    const bad = await t.request(
      'POST',
      '/jobs',
      job({ job_name: 'dry', interval: '5 SECONDS', dry_run: true }),
    );
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'INVALID_INTERVAL');
    assertInvalid(
      await t.request('POST', '/jobs', job({ dry_run: 'yes' })),
      /^dry_run must be a boolean, got string$/,
    );
    assert.equal((await t.request('POST', '/jobs', job({ job_name: 'taken' }))).status, 201);
    const dup = await t.request('POST', '/jobs', job({ job_name: 'taken', dry_run: true }));
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.code, 'DUPLICATE_JOB');
    // dry_run: false is a plain create.
    const real = await t.request(
      'POST',
      '/jobs',
      job({ job_name: 'real', kb_name: 'fresh', dry_run: false }),
    );
    assert.equal(real.status, 201, JSON.stringify(real.body));
  });
});
