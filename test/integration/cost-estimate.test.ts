/**
 * Issue 12, "Cost": every run records the tokens and requests it sent to the embedding provider,
 * job and knowledge-base totals sum them, /metrics exports them, and POST /jobs/{job}/estimate
 * answers what the next run would embed without calling the provider.
 *
 * The app uses its real providers: the OpenAI-compatible adapter against the in-test fake peer
 * (which bills `usage` as OpenAI does, in cl100k tokens, and counts what it served), and — for a
 * provider that reports no usage — the fake with `usage` left out and the hashing test provider.
 * The source is a real SQLite file of 10,000 rows.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { embeddingCost } from '../../src/core/cost.js';
import { isoIn, sourcesDir, startTestApp, type TestApp } from '../helpers/app.js';
import { type FakeOpenAIServer, startFakeOpenAIServer } from '../helpers/fake-openai.js';
import { startSyncApp, type SyncTestApp } from '../helpers/sync.js';

const ROWS = 10_000;
const PRICE = 0.02;
const WORDS = [
  'waterproof',
  'lightweight',
  'jacket',
  'merino',
  'boots',
  'tent',
  'stove',
  'lantern',
  'trail',
  'alpine',
  'insulated',
  'breathable',
  'ripstop',
  'nylon',
  'down',
  'fleece',
  'carbon',
  'poles',
  'summit',
  'valley',
];

/** Body text of varied length (5 to ~125 words), so some documents make several chunks. */
function bodyOf(i: number, salt = ''): string {
  const n = 5 + ((i * 37) % 120);
  return Array.from({ length: n }, (_, k) => WORDS[(i * 7 + k * 3) % WORDS.length]).join(' ') + salt;
}

const stamp = (second: number) =>
  new Date(Date.UTC(2025, 0, 1) + second * 1000).toISOString().replace('T', ' ').slice(0, 19);

/** A SQLite source `items` of `rows` rows, one second apart. */
function makeSource(dataDir: string, rows: number): string {
  const file = path.join(sourcesDir(dataDir), `items-${Math.random().toString(36).slice(2)}.db`);
  const db = new Database(file);
  db.exec(
    'CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT, body TEXT, category TEXT, updated_at TIMESTAMP)',
  );
  const insert = db.prepare('INSERT INTO items VALUES (?, ?, ?, ?, ?)');
  db.transaction(() => {
    for (let i = 1; i <= rows; i++) insert.run(i, `item ${i}`, bodyOf(i), `cat${i % 7}`, stamp(i));
  })();
  db.close();
  return file;
}

const job = (name: string, kb: string, extra: Record<string, unknown> = {}) => ({
  job_name: name,
  source_table: 'shop.items',
  kb_name: kb,
  content_columns: ['title', 'body'],
  metadata_columns: ['category'],
  filter_column: 'updated_at',
  interval: 'HOURLY',
  start_time: isoIn(60),
  end_time: isoIn(60 * 24),
  ...extra,
});

async function runNow(t: TestApp, name: string): Promise<any> {
  const started = await t.request('POST', `/jobs/${name}/run`);
  assert.equal(started.status, 202, JSON.stringify(started.body));
  await t.app.services.scheduler.whenIdle();
  const run = await t.request('GET', `/jobs/${name}/runs/${started.body.data.run_id}`);
  assert.equal(run.body.data.status, 'succeeded', JSON.stringify(run.body.data.error));
  return run.body.data;
}

async function estimate(t: TestApp, name: string, body?: unknown): Promise<any> {
  const res = await t.request('POST', `/jobs/${name}/estimate`, body);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.data;
}

/** Within 5% of the tokens the run then used (the acceptance bound). */
function assertClose(estimated: number, used: number, what: string): void {
  assert.ok(used > 0, `${what}: the run used tokens`);
  assert.ok(
    Math.abs(estimated - used) <= 0.05 * used,
    `${what}: estimated ${estimated}, the run used ${used}`,
  );
}

function metric(text: string, name: string): number {
  const m = text.match(new RegExp(`^${name} (\\d+(?:\\.\\d+)?(?:e\\+\\d+)?)$`, 'm'));
  assert.ok(m, `${name} in /metrics`);
  return Number(m[1]);
}

describe('a 10,000-row table through an OpenAI-compatible provider that reports usage', () => {
  let t: TestApp;
  let fake: FakeOpenAIServer;
  let file: string;
  const runs: any[] = [];

  before(async () => {
    fake = await startFakeOpenAIServer();
    t = await startTestApp({});
    file = makeSource(t.dataDir, ROWS);
    assert.equal(
      (await t.request('POST', '/databases', { name: 'shop', engine: 'sqlite', parameters: { path: file } }))
        .status,
      201,
    );
    const kb = await t.request('POST', '/knowledge_bases', {
      kb_name: 'kb',
      embedding: {
        provider: 'openai',
        base_url: fake.baseUrl,
        model: 'text-embedding-3-small',
        api_key: 'sk-test',
        price_per_million_tokens: PRICE,
      },
      chunking: { chunk_size: 300, chunk_overlap: 30 },
    });
    assert.equal(kb.status, 201, JSON.stringify(kb.body));
    assert.equal(kb.body.data.embedding.price_per_million_tokens, PRICE);
    assert.deepEqual(kb.body.data.totals, { embedding_tokens: 0, embedding_requests: 0, cost: 0 });
    assert.equal((await t.request('POST', '/jobs', job('items_sync', 'kb'))).status, 201);
  });
  after(async () => {
    await t?.close();
    await fake?.close();
  });

  it('the estimate of the backfill matches the tokens the run then used, and never calls the provider', async (ctx) => {
    const servedBefore = fake.served();
    const requestsBefore = fake.requests.length;
    const t0 = performance.now();
    const e = await estimate(t, 'items_sync');
    const estimateMs = Math.round(performance.now() - t0);
    assert.equal(fake.requests.length, requestsBefore, 'the estimate sent nothing to the provider');
    assert.equal(e.rows, ROWS);
    assert.equal(e.documents, ROWS);
    assert.equal(e.documents_unchanged, 0);
    assert.ok(e.chunks > ROWS, `${e.chunks} chunks: long bodies make several`);
    assert.equal(e.complete, true);
    assert.equal(e.limited_by, null);
    assert.equal(e.tokenizer, 'cl100k_base');
    assert.equal(e.price_per_million_tokens, PRICE);
    assert.equal(e.cost, embeddingCost(e.tokens, PRICE));
    assert.equal(e.runs, 1);
    assert.equal(e.dry_run, false);

    const tokensBefore = fake.tokensServed();
    const run = await runNow(t, 'items_sync');
    runs.push(run);
    assert.equal(run.documents_added, ROWS);
    assert.equal(run.chunks_written, e.chunks, 'the estimate chunked as the run did');
    assertClose(e.tokens, run.embedding_tokens, 'backfill');
    ctx.diagnostic(
      `backfill: estimated ${e.tokens} tokens (${e.chunks} chunks) in ${estimateMs} ms; the run used ${run.embedding_tokens} in ${run.embedding_requests} requests (${run.duration_ms} ms)`,
    );
    // The run records what the provider billed, request by request.
    assert.equal(run.embedding_tokens, fake.tokensServed() - tokensBefore);
    assert.equal(run.embedding_requests, fake.served() - servedBefore);
    assert.equal(run.budget_reached, false);
  });

  it('after changes, unchanged documents cost nothing: the estimate matches the next run', async (ctx) => {
    const db = new Database(file);
    db.transaction(() => {
      // 400 rows change their text, 300 only their metadata, 250 are new; all move past the watermark.
      const later = (i: number) => stamp(ROWS + 1000 + i);
      for (let i = 1; i <= 400; i++)
        db.prepare('UPDATE items SET body = ?, updated_at = ? WHERE id = ?').run(
          bodyOf(i, ' revised'),
          later(i),
          i * 20,
        );
      for (let i = 1; i <= 300; i++)
        db.prepare('UPDATE items SET category = ?, updated_at = ? WHERE id = ?').run(
          'moved',
          later(500 + i),
          i * 20 + 3,
        );
      for (let i = 1; i <= 250; i++)
        db.prepare('INSERT INTO items VALUES (?, ?, ?, ?, ?)').run(
          ROWS + i,
          `item ${ROWS + i}`,
          bodyOf(ROWS + i),
          'new',
          later(900 + i),
        );
    })();
    db.close();

    const requestsBefore = fake.requests.length;
    const e = await estimate(t, 'items_sync');
    assert.equal(fake.requests.length, requestsBefore, 'the estimate sent nothing to the provider');
    assert.equal(e.documents, 650, 'changed text (400) and new rows (250)');
    // The 300 metadata-only rows, and the unchanged rows of the lookback window the run re-reads.
    assert.ok(e.documents_unchanged >= 300, `${e.documents_unchanged} unchanged`);
    assert.equal(e.rows, 950 + e.documents_unchanged - 300);
    assert.equal(e.complete, true);

    const run = await runNow(t, 'items_sync');
    runs.push(run);
    assert.equal(run.documents_added, 250);
    assert.equal(run.documents_updated, 700);
    assertClose(e.tokens, run.embedding_tokens, 'incremental');
    ctx.diagnostic(`incremental: estimated ${e.tokens} tokens, the run used ${run.embedding_tokens}`);
  });

  it('with nothing new, the estimate embeds nothing', async () => {
    const e = await estimate(t, 'items_sync');
    assert.equal(e.documents, 0);
    assert.equal(e.chunks, 0);
    assert.equal(e.tokens, 0);
    assert.equal(e.cost, 0);
    assert.equal(e.runs, 0);
  });

  it('job and knowledge-base totals sum the runs; /metrics exports the counters', async () => {
    const tokens = runs.reduce((s, r) => s + r.embedding_tokens, 0);
    const requests = runs.reduce((s, r) => s + r.embedding_requests, 0);
    assert.ok(tokens > 0 && requests > 0);
    const j = await t.request('GET', '/jobs/items_sync');
    assert.equal(j.body.data.totals.embedding_tokens, tokens);
    assert.equal(j.body.data.totals.embedding_requests, requests);
    const kb = await t.request('GET', '/knowledge_bases/kb');
    assert.deepEqual(kb.body.data.totals, {
      embedding_tokens: tokens,
      embedding_requests: requests,
      cost: embeddingCost(tokens, PRICE),
    });
    const list = await t.request('GET', '/knowledge_bases');
    assert.equal(list.body.data.knowledge_bases[0].totals.embedding_tokens, tokens);
    const metrics = await t.app.server.inject({ method: 'GET', url: '/metrics' });
    assert.equal(metric(metrics.body, 'kbsync_embedding_tokens_total'), tokens);
    assert.equal(metric(metrics.body, 'kbsync_embedding_requests_total'), requests);
    assert.equal(metric(metrics.body, 'kbsync_runs_budget_reached_total'), 0);
  });

  it('max_rows bounds the reading: the answer says it is a lower bound', async () => {
    assert.equal(
      (await t.request('PATCH', '/jobs/items_sync', { content_columns: ['body', 'title'] })).status,
      200,
    );
    const e = await estimate(t, 'items_sync', { max_rows: 1200 });
    assert.equal(e.rows, 1200);
    assert.equal(e.complete, false);
    assert.equal(e.limited_by, 'max_rows');
    assert.equal(e.max_rows, 1200);
    assert.equal(e.documents, 1200, 'a new column order changes every document');
    const whole = await estimate(t, 'items_sync');
    assert.equal(whole.rows, ROWS + 250);
    assert.equal(whole.complete, true);
    assert.ok(whole.tokens > e.tokens);
  });
});

describe('providers that report no usage: tokens are counted with the tokenizer', () => {
  it('an OpenAI-compatible server without `usage`: the run counts what it sent, as the server counts it', async () => {
    const fake = await startFakeOpenAIServer({ usage: 'none' });
    const t = await startTestApp({});
    try {
      const file = makeSource(t.dataDir, 300);
      assert.equal(
        (
          await t.request('POST', '/databases', {
            name: 'shop',
            engine: 'sqlite',
            parameters: { path: file },
          })
        ).status,
        201,
      );
      const kb = await t.request('POST', '/knowledge_bases', {
        kb_name: 'kb',
        embedding: { provider: 'openai', base_url: fake.baseUrl, model: 'text-embedding-3-small' },
        chunking: { chunk_size: 300, chunk_overlap: 30 },
      });
      assert.equal(kb.status, 201, JSON.stringify(kb.body));
      assert.equal(kb.body.data.totals.cost, null, 'no price, no cost');
      assert.equal((await t.request('POST', '/jobs', job('j', 'kb', { batch_size: 100 }))).status, 201);
      const e = await estimate(t, 'j');
      assert.equal(e.cost, null);
      const tokensBefore = fake.tokensServed();
      const servedBefore = fake.served();
      const run = await runNow(t, 'j');
      assert.equal(run.embedding_tokens, fake.tokensServed() - tokensBefore);
      assert.equal(run.embedding_requests, fake.served() - servedBefore);
      assert.equal(run.embedding_tokens, e.tokens);
    } finally {
      await t.close();
      await fake.close();
    }
  });

  it('a local-style provider (hashing): the run and the estimate count the same tokens; the estimate embeds nothing', async () => {
    const t: SyncTestApp = await startSyncApp();
    try {
      const file = makeSource(t.dataDir, 500);
      assert.equal(
        (
          await t.request('POST', '/databases', {
            name: 'shop',
            engine: 'sqlite',
            parameters: { path: file },
          })
        ).status,
        201,
      );
      assert.equal(
        (
          await t.request('POST', '/knowledge_bases', {
            kb_name: 'kb',
            chunking: { chunk_size: 300, chunk_overlap: 30 },
          })
        ).status,
        201,
      );
      assert.equal(
        (await t.request('POST', '/jobs', job('j', 'kb', { batch_size: 200, lookback: 0 }))).status,
        201,
      );
      const e = await estimate(t, 'j');
      assert.equal(t.providers.embedded(), 0, 'the estimate embedded nothing');
      assert.equal(e.rows, 500);
      const run = await runNow(t, 'j');
      assert.equal(run.embedding_tokens, e.tokens);
      assert.equal(t.providers.embedded(), e.chunks);
      // One embed call per batch of 200 rows: 3 batches.
      assert.equal(run.embedding_requests, 3);
      // lookback 0 and nothing new: nothing to read, nothing to embed.
      const again = await estimate(t, 'j');
      assert.deepEqual(
        [
          again.rows,
          again.documents,
          again.documents_unchanged,
          again.chunks,
          again.tokens,
          again.runs,
          again.complete,
        ],
        [0, 0, 0, 0, 0, 0, true],
      );
    } finally {
      await t.close();
    }
  });
});
