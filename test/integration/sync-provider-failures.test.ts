/**
 * Sync runs against a failing embedding provider (SEMANTICS.md, "Write"): the app uses its REAL
 * provider factory and the OpenAI-compatible adapter, pointed at the in-test fake OpenAI server,
 * which fails on cue. Transient failures (5xx, 429 + Retry-After) are retried and the run loses
 * nothing; a key the API rejects is refused when the knowledge base is created, without echoing
 * it; a batch the provider rejects for good fails the run without advancing past it.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { type FakeOpenAIServer, type FakeReply, startFakeOpenAIServer } from '../helpers/fake-openai.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { assertSucceeded, createJob, getJob, listDocuments, runJob, uniqueIds } from '../helpers/sync-sources.js';

const API_KEY = 'sk-test';
const ROWS = 30;
const BATCH = 10;

let t: TestApp;
let fake: FakeOpenAIServer;
/** Scripted replies by request number (FakeReply per `n`); unlisted requests are answered normally. */
const replies = new Map<number, FakeReply>();
/** From this request number on, every request is refused (a provider refusing whatever it is sent). */
let refuseFrom: number | null = null;
/** Requests carrying an input that contains one of these are refused (a provider refusing one input). */
const refusedInputs = new Set<string>();
const refusesInput = (input: unknown) =>
  Array.isArray(input) && input.some((text) => typeof text === 'string' && [...refusedInputs].some((r) => text.includes(r)));

const serverError: FakeReply = { status: 500, body: { error: { message: 'The server had an error while processing your request.', type: 'server_error' } } };
const rateLimited: FakeReply = { status: 429, headers: { 'retry-after': '1' }, body: { error: { message: 'Rate limit reached for requests', type: 'requests', code: 'rate_limit_exceeded' } } };
const badRequest: FakeReply = { status: 400, body: { error: { message: 'This model does not accept this input (test)', type: 'invalid_request_error' } } };

/** Scripts the k-th (1-based) request from now. */
const nextRequest = (k: number, reply: FakeReply) => replies.set(fake.requests.length + k, reply);
/**
 * Refuses the k-th request from now and every one after, until `refuseFrom = null`. One refused
 * request alone is not enough: the sync isolates the documents a provider refuses (it re-sends the
 * batch in halves), and only a provider that refuses even its probe text fails the batch.
 */
const refuseAllFrom = (k: number) => {
  refuseFrom = fake.requests.length + k;
};

const embedding = (apiKey = API_KEY) => ({ provider: 'openai', base_url: fake.baseUrl, model: 'text-embedding-3-small', api_key: apiKey });

async function createOpenAIKb(name: string): Promise<void> {
  const res = await t.request('POST', '/knowledge_bases', { kb_name: name, embedding: embedding() });
  assert.equal(res.status, 201, JSON.stringify(res.body));
}

async function createItemsJob(name: string, kb: string): Promise<void> {
  await createJob(t, { job_name: name, kb_name: kb, source_table: 'shop.items', content_columns: ['name', 'body'], filter_column: 'updated_at', batch_size: BATCH });
}

/** Every row is in the knowledge base once, with its content. */
async function assertAllRows(kb: string): Promise<void> {
  const docs = await listDocuments(t, kb);
  assert.equal(uniqueIds(docs).size, ROWS, `${docs.length} documents for ${ROWS} rows`);
  for (let i = 1; i <= ROWS; i++) {
    const doc = docs.find((d) => d.id === String(i));
    assert.ok(doc, `row ${i} is missing`);
    assert.equal(doc.content, `name: item ${i}\nbody: body of item ${i}`);
  }
}

const inputsOf = (n: number) => fake.requests[n - 1]?.body?.input;

before(async () => {
  fake = await startFakeOpenAIServer({
    apiKey: API_KEY,
    script: (req) =>
      replies.get(req.n) ??
      ((refuseFrom !== null && req.n >= refuseFrom) || refusesInput(req.body?.input) ? badRequest : undefined),
  });
  try {
    // No providerFactory: the app builds its real providers from the knowledge base's configuration.
    t = await startTestApp({});
  } catch (err) {
    await fake.close();
    throw err;
  }
  const file = path.join(t.dataDir, 'sources', 'shop.db');
  const src = new Database(file);
  src.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, body TEXT, updated_at TEXT)');
  const insert = src.prepare('INSERT INTO items VALUES (?, ?, ?, ?)');
  for (let i = 1; i <= ROWS; i++) insert.run(i, `item ${i}`, `body of item ${i}`, `2025-01-01 00:00:${String(i).padStart(2, '0')}`);
  src.close();
  const res = await t.request('POST', '/databases', { name: 'shop', engine: 'sqlite', parameters: { path: file } });
  assert.equal(res.status, 201, JSON.stringify(res.body));
});

after(async () => {
  await t?.close();
  await fake?.close();
});

describe('sync with a failing OpenAI-compatible provider', () => {
  it('500 twice, then 200: the batch is retried, the run succeeds and no row is lost', { timeout: 20_000 }, async () => {
    await createOpenAIKb('kb_5xx');
    await createItemsJob('sync_5xx', 'kb_5xx');
    const n0 = fake.requests.length;
    // The second batch's request fails twice.
    nextRequest(2, serverError);
    nextRequest(3, serverError);

    const run = await runJob(t, 'sync_5xx');
    assertSucceeded(run);
    assert.equal(run.rows_read, ROWS);
    assert.equal(run.documents_added, ROWS);
    assert.equal(run.rows_failed, 0);
    assert.equal(fake.requests.length - n0, ROWS / BATCH + 2, 'one request per batch plus two retries');
    assert.deepEqual(inputsOf(n0 + 3), inputsOf(n0 + 2), 'the retry sends the same batch');
    assert.deepEqual(inputsOf(n0 + 4), inputsOf(n0 + 2), 'the retry sends the same batch');
    await assertAllRows('kb_5xx');
  });

  it('401: creating the knowledge base fails with 400 CONNECTION_FAILED, and the key is not echoed', async () => {
    const key = 'sk-wrong-0123456789-do-not-echo';
    const n0 = fake.requests.length;
    const res = await t.request('POST', '/knowledge_bases', { kb_name: 'kb_401', embedding: embedding(key) });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'CONNECTION_FAILED');
    assert.match(JSON.stringify(res.body.error), /401/);
    assert.ok(!JSON.stringify(res.body).includes(key), `the response echoes the api key: ${JSON.stringify(res.body)}`);
    assert.ok(!JSON.stringify(res.body).includes('0123456789'), 'not even a part of the key');
    assert.equal(fake.requests.length - n0, 1, 'a 401 is not retried');
    assert.equal(fake.requests[n0]!.headers.authorization, `Bearer ${key}`, 'the probe used the given key');
    assert.equal((await t.request('GET', '/knowledge_bases/kb_401')).status, 404, 'the knowledge base was not created');
    const list = await t.request('GET', '/knowledge_bases');
    assert.ok(!JSON.stringify(list.body).includes(key));
  });

  it('429 with Retry-After: 1 once: the provider waits as asked and the run succeeds', { timeout: 20_000 }, async () => {
    await createOpenAIKb('kb_429');
    await createItemsJob('sync_429', 'kb_429');
    const n0 = fake.requests.length;
    nextRequest(1, rateLimited);

    const run = await runJob(t, 'sync_429');
    assertSucceeded(run);
    assert.equal(run.documents_added, ROWS);
    assert.equal(fake.requests.length - n0, ROWS / BATCH + 1, 'one request per batch plus one retry');
    assert.deepEqual(inputsOf(n0 + 2), inputsOf(n0 + 1), 'the retry sends the same batch');
    assert.ok(run.duration_ms >= 900, `the run took ${run.duration_ms} ms: Retry-After: 1 was not honoured`);
    await assertAllRows('kb_429');
  });

  it('a batch the provider rejects fails the run without advancing past it; the next run loses nothing', { timeout: 20_000 }, async () => {
    await createOpenAIKb('kb_400');
    await createItemsJob('sync_400', 'kb_400');
    refuseAllFrom(2);

    const failed = await runJob(t, 'sync_400');
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error.code, 'SYNC_FAILED');
    assert.match(failed.error.message, /400/);
    assert.match(failed.error.message, /does not accept this input/);
    assert.equal(failed.documents_added, BATCH, 'the first batch was written');
    const job = await getJob(t, 'sync_400');
    assert.equal(job.status, 'scheduled', 'a failed run keeps the job scheduled');
    assert.deepEqual(job.watermark.key, [String(BATCH)], 'the watermark stops at the last written batch');
    assert.deepEqual(failed.watermark_end, job.watermark);
    assert.equal((await listDocuments(t, 'kb_400')).length, BATCH);

    refuseFrom = null;
    const ok = await runJob(t, 'sync_400');
    assertSucceeded(ok);
    assert.equal(ok.documents_added, ROWS - BATCH);
    assert.deepEqual(ok.watermark_start, job.watermark);
    await assertAllRows('kb_400');
  });

  it('the rows of a batch the provider rejects are counted in rows_failed', { timeout: 20_000 }, async () => {
    // SEMANTICS.md, "Write": "a row that still fails is recorded in the run (`rows_failed` with
    // the reason) and the run fails without advancing past it".
    await createOpenAIKb('kb_failed_rows');
    await createItemsJob('sync_failed_rows', 'kb_failed_rows');
    refuseAllFrom(2);

    const failed = await runJob(t, 'sync_failed_rows').finally(() => {
      refuseFrom = null;
    });
    assert.equal(failed.status, 'failed');
    assert.match(failed.error.message, /does not accept this input/);
    assert.equal(failed.rows_failed, BATCH, `rows_failed is ${failed.rows_failed}: the ${BATCH} rows of the rejected batch are not recorded`);
  });

  it('a row the provider refuses does not stop the run: the rest of its batch and the later batches are written', { timeout: 20_000 }, async () => {
    await createOpenAIKb('kb_one_refused');
    await createItemsJob('sync_one_refused', 'kb_one_refused');
    refusedInputs.add('body of item 15');
    const run = await runJob(t, 'sync_one_refused').finally(() => refusedInputs.clear());
    assertSucceeded(run);
    assert.equal(run.rows_read, ROWS);
    assert.equal(run.documents_added, ROWS - 1);
    assert.deepEqual(run.watermark_end.key, [String(ROWS)], 'the run went on to the end');
    const ids = uniqueIds(await listDocuments(t, 'kb_one_refused'));
    assert.equal(ids.size, ROWS - 1);
    assert.ok(!ids.has('15'), 'the refused row is not written');
  });

  it('a provider that refuses the key mid-way marks the job failed with what to fix; totals count the failed rows', { timeout: 20_000 }, async () => {
    await createOpenAIKb('kb_401');
    await createItemsJob('sync_401', 'kb_401');
    nextRequest(2, { status: 401, body: { error: { message: 'Incorrect API key provided', type: 'invalid_request_error' } } });

    const failed = await runJob(t, 'sync_401');
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error.code, 'PROVIDER_REFUSED');
    assert.match(failed.error.message, /401/);
    assert.ok(!failed.error.message.includes(API_KEY), 'the key is never echoed');
    const job = await getJob(t, 'sync_401');
    assert.equal(job.status, 'failed', 'a refused key cannot heal by waiting');
    assert.match(job.status_reason, /fix the knowledge base's embedding configuration/);
    assert.equal(job.totals.rows_failed, BATCH);
    assert.equal(job.totals.runs_failed, 1);
    // Once the provider accepts again (the key was rotated on its side), resume continues.
    assert.equal((await t.request('POST', '/jobs/sync_401/resume')).status, 200);
    const ok = await runJob(t, 'sync_401');
    assertSucceeded(ok);
    await assertAllRows('kb_401');
  });
});
