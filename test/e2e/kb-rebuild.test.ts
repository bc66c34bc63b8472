/**
 * Issue 12, "Model or chunking change with a shadow rebuild", over HTTP with two fake
 * OpenAI-compatible providers of different dimensions (the real provider adapter, real SQLite
 * store and source): queries answer from the old model for the whole rebuild, the new provider
 * embeds each document once, the swap moves queries to the new model, a job syncing during the
 * rebuild loses nothing, a chunking-only change embeds only chunks whose text changed, and a
 * cancel leaves the knowledge base as it was.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { DEFAULT_ACCOUNT } from '../../src/api/server.js';
import { sourcesDir, startTestApp, type TestApp } from '../helpers/app.js';
import { type FakeOpenAIServer, startFakeOpenAIServer } from '../helpers/fake-openai.js';
import { skipUnlessPgvector, type TempDatabase, withTempPostgresDatabase } from '../helpers/pgvector.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every input text a fake provider was sent, in order. */
function inputs(server: FakeOpenAIServer): string[] {
  return server.requests.flatMap((r) => (Array.isArray(r.body?.input) ? (r.body.input as string[]) : []));
}

function countOf(texts: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const x of texts) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}

const WORDS = 'amber basil cedar delta ember fjord garnet harbor indigo juniper kestrel lagoon meadow nectar onyx pebble quartz raven saffron tundra umber velvet willow xenon yarrow zephyr'.split(' ');
/** A distinct text per row: a few words picked by the number, and the number itself. */
const body = (i: number, version = 1) =>
  `item ${i} v${version} ${WORDS[i % 26]} ${WORDS[Math.floor(i / 26) % 26]} ${WORDS[Math.floor(i / 676) % 26]} note ${(i * 7919) % 10007}`;

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const pgSkip = await skipUnlessPgvector();

// The same tests on the embedded store and on PostgreSQL + pgvector (KBSYNC_STORE_URL).
for (const backend of ['sqlite', 'postgres'] as const) {
const skip = backend === 'postgres' ? pgSkip : false;
describe(`rebuilds on the ${backend} store`, { skip }, () => {
let t: TestApp;
let a: FakeOpenAIServer;
let b: FakeOpenAIServer;
let database: TempDatabase | null = null;
/** Milliseconds each of provider B's answers is held back (slows the rebuild so it can be watched). */
let bDelayMs = 40;
/** While set, provider A holds a request whose input contains HOLD-ME until it resolves. */
let holdA: Promise<void> | null = null;
let heldA = false;

async function rebuildOf(kb: string): Promise<any> {
  const res = await t.request('GET', `/knowledge_bases/${kb}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.data.rebuild;
}

const kbBody = (name: string, server: FakeOpenAIServer, model: string, dimensions: number, chunking?: object) => ({
  kb_name: name,
  embedding: { provider: 'openai', base_url: server.baseUrl, model, dimensions, api_key: 'sk-test' },
  ...(chunking ? { chunking } : {}),
});

before(async () => {
  if (skip) return;
  database = backend === 'postgres' ? await withTempPostgresDatabase() : null;
  a = await startFakeOpenAIServer({
    apiKey: 'sk-test',
    script: async (req) => {
      const input = req.body?.input;
      if (holdA && Array.isArray(input) && input.some((x) => String(x).includes('HOLD-ME'))) {
        heldA = true;
        await holdA;
      }
      return undefined;
    },
  });
  b = await startFakeOpenAIServer({
    apiKey: 'sk-test',
    script: async () => {
      await sleep(bDelayMs);
      return undefined;
    },
  });
  t = await startTestApp({
    rebuilds: { pollMs: 200, pageSize: 50, dropGraceMs: 300, leaseMs: 5_000, retryBaseMs: 20 },
    ...(database ? { config: { storeUrl: database.url, storeSchema: 'kbsync_rebuild' } } : {}),
  });
});
after(async () => {
  await t?.close();
  await a?.close();
  await b?.close();
  await database?.close();
});

describe('changing the model of a knowledge base of 2,000 documents', () => {
  const ROWS = 2000;
  let source: Database.Database;

  it('answers every query from the old model during the rebuild, embeds each document once with the new one, swaps, and loses nothing synced meanwhile', async () => {
    const file = path.join(sourcesDir(t.dataDir), 'rebuild-source.db');
    source = new Database(file);
    source.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, updated_at TEXT NOT NULL)');
    const insert = source.prepare('INSERT INTO notes (id, body, updated_at) VALUES (?, ?, ?)');
    source.transaction(() => {
      for (let i = 1; i <= ROWS; i++) insert.run(i, body(i), '2025-01-01T00:00:00Z');
    })();
    assert.equal((await t.request('POST', '/databases', { name: 'src', engine: 'sqlite', parameters: { path: file } })).status, 201);
    const created = await t.request('POST', '/knowledge_bases', kbBody('notes_kb', a, 'model-a', 256));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const job = await t.request('POST', '/jobs', {
      job_name: 'notes_sync',
      source_table: 'src.notes',
      kb_name: 'notes_kb',
      content_columns: ['body'],
      filter_column: 'updated_at',
      interval: 'HOURLY',
      start_time: '2099-01-01T00:00:00',
      end_time: '2099-01-02T00:00:00',
    });
    assert.equal(job.status, 201, JSON.stringify(job.body));
    const runNow = async () => {
      const started = await t.request('POST', '/jobs/notes_sync/run');
      assert.equal(started.status, 202, JSON.stringify(started.body));
      await t.app.services.scheduler.whenIdle();
      return (await t.request('GET', `/jobs/notes_sync/runs/${started.body.data.run_id}`)).body.data;
    };
    const first = await runNow();
    assert.equal(first.status, 'succeeded', JSON.stringify(first));
    assert.equal(first.documents_added, ROWS);

    const bBefore = inputs(b).length;
    const patched = await t.request('PATCH', '/knowledge_bases/notes_kb', {
      embedding: { provider: 'openai', base_url: b.baseUrl, model: 'model-b', dimensions: 384, api_key: 'sk-test' },
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.data.rebuild.status, 'running');
    assert.equal(patched.body.data.rebuild.documents_total, ROWS);
    assert.equal(patched.body.data.embedding.model, 'model-a', 'the knowledge base keeps its model until the swap');
    assert.equal(patched.body.data.rebuild.embedding.model, 'model-b');
    assert.equal(JSON.stringify(patched.body).includes('sk-test'), false, 'the key never shows');
    const again = await t.request('PATCH', '/knowledge_bases/notes_kb', { chunking: { chunk_size: 500, chunk_overlap: 50 } });
    assert.equal(again.status, 409, 'a second change waits for the first');
    assert.equal(again.body.error.code, 'CONFLICT');

    // Queries for the whole rebuild, each for one document's text, marked with a unique prefix
    // so the provider that embedded it can be told.
    const queries: Array<{ text: string; id: string; statusBefore: string; statusAfter: string }> = [];
    let done = false;
    const querying = (async () => {
      let n = 0;
      while (!done) {
        // Rows 31+ (the first 30 change during the test).
        const i = 31 + ((n * 613) % (ROWS - 30));
        const text = `q${n++} ${body(i)}`;
        const statusBefore = (await rebuildOf('notes_kb')).status;
        const res = await t.request('POST', '/knowledge_bases/notes_kb/query', { query: text, top_k: 3 });
        assert.equal(res.status, 200, `query during the rebuild: ${JSON.stringify(res.body)}`);
        const ids = res.body.data.results.map((r: { document_id: string }) => r.document_id);
        assert.ok(ids.includes(String(i)), `the query for row ${i} finds it: ${ids}`);
        const statusAfter = (await rebuildOf('notes_kb')).status;
        queries.push({ text, id: String(i), statusBefore, statusAfter });
      }
    })();
    // An assertion failing in the loop is reported when the loop is awaited, not as unhandled.
    querying.catch(() => undefined);

    // Meanwhile the source moves: 150 new rows and 30 changed ones, synced while the rebuild runs.
    await waitFor('the rebuild to have copied some documents', async () => ((await rebuildOf('notes_kb')).documents_done > 0 ? true : undefined));
    source.transaction(() => {
      for (let i = ROWS + 1; i <= ROWS + 150; i++) insert.run(i, body(i), '2025-02-01T00:00:00Z');
      for (let i = 1; i <= 30; i++) source.prepare('UPDATE notes SET body = ?, updated_at = ? WHERE id = ?').run(body(i, 2), '2025-02-01T00:00:00Z', i);
    })();
    const during = await runNow();
    assert.equal(during.status, 'succeeded', JSON.stringify(during));
    assert.equal(during.documents_added, 150);
    assert.equal(during.documents_updated, 30);
    assert.equal((await rebuildOf('notes_kb')).status, 'running', 'the sync ran while the rebuild was still running');
    // The run wrote its new rows into the new index too, with model B, in the same transaction:
    // the copy can only have seen them after that write, which had already put them there.
    const bNow = new Set(inputs(b));
    for (let i = ROWS + 1; i <= ROWS + 150; i++) assert.ok(bNow.has(`body: ${body(i)}`), `row ${i} reached the new index with the sync`);

    const finished = await waitFor('the rebuild to finish', async () => {
      const r = await rebuildOf('notes_kb');
      return r.status === 'running' || r.status === 'swapping' ? undefined : r;
    });
    done = true;
    await querying;
    assert.equal(finished.status, 'succeeded', JSON.stringify(finished));
    assert.ok(finished.documents_done >= ROWS, JSON.stringify(finished));

    // Queries during the rebuild were answered by model A (and only A).
    const aTexts = new Set(inputs(a));
    const bTexts = new Set(inputs(b));
    const whileRunning = queries.filter((q) => q.statusBefore === 'running' && q.statusAfter === 'running');
    assert.ok(whileRunning.length >= 3, `queries answered while it ran: ${whileRunning.length}`);
    for (const q of whileRunning) {
      assert.ok(aTexts.has(q.text), `model A embedded the query '${q.text}'`);
      assert.ok(!bTexts.has(q.text), `model B did not embed the query '${q.text}'`);
    }

    // The knowledge base now: model B, every source row exactly once with its latest text.
    const kb = (await t.request('GET', '/knowledge_bases/notes_kb')).body.data;
    assert.equal(kb.embedding.model, 'model-b');
    assert.equal(kb.embedding.dimensions, 384);
    assert.equal(kb.embedding.base_url, b.baseUrl);
    assert.equal(kb.document_count, ROWS + 150);
    const docs: Array<{ id: string; content: string }> = [];
    for (let cursor: string | null = null; ; ) {
      const page: any = await t.request('GET', `/knowledge_bases/notes_kb/documents?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      docs.push(...page.body.data.documents);
      cursor = page.body.data.next_cursor;
      if (!cursor) break;
    }
    const rows = source.prepare('SELECT id, body FROM notes ORDER BY id').all() as Array<{ id: number; body: string }>;
    assert.equal(docs.length, rows.length);
    const byId = new Map(docs.map((d) => [d.id, d.content]));
    for (const row of rows) assert.equal(byId.get(String(row.id)), `body: ${row.body}`, `row ${row.id} as it is now`);

    // Model B embedded each document's text once: no text twice, and every final text once.
    const bDocs = inputs(b).slice(bBefore).filter((x) => !/^q\d+ /.test(x) && x !== 'kbsync probe');
    const seen = countOf(bDocs);
    for (const [text, n] of seen) assert.equal(n, 1, `model B embedded '${text}' ${n} times`);
    for (const d of docs) assert.equal(seen.get(d.content), 1, `model B embedded document ${d.id} once`);

    // After the swap a query is embedded by model B, and finds its document.
    const aCount = inputs(a).length;
    const res = await t.request('POST', '/knowledge_bases/notes_kb/query', { query: `after ${body(77)}`, top_k: 1 });
    assert.equal(res.status, 200);
    assert.equal(res.body.data.results[0].document_id, '77', 'found with model B');
    assert.ok(inputs(b).includes(`after ${body(77)}`));
    assert.equal(inputs(a).length, aCount, 'model A is not asked any more');

    // A later sync writes with model B only.
    source.prepare('UPDATE notes SET body = ?, updated_at = ? WHERE id = ?').run(body(5, 3), '2025-03-01T00:00:00Z', 5);
    const later = await runNow();
    assert.equal(later.documents_updated, 1);
    assert.ok(inputs(b).includes(`body: ${body(5, 3)}`));
    assert.equal(inputs(a).length, aCount);
    assert.equal((await t.request('DELETE', '/jobs/notes_sync')).status, 200);
    source.close();
  });
});

describe('a chunking change alone', () => {
  it('embeds only the chunks whose text changed, and keeps answering', async () => {
    assert.equal((await t.request('POST', '/knowledge_bases', kbBody('chunks_kb', a, 'model-a', 256, { chunk_size: 200, chunk_overlap: 0 }))).status, 201);
    // Short documents fit one chunk under both settings; long ones are split differently.
    const short = Array.from({ length: 40 }, (_, i) => ({ id: `s${i}`, content: `short note ${i} ${WORDS[i % 26]}` }));
    const long = Array.from({ length: 10 }, (_, i) => ({
      id: `l${i}`,
      content: Array.from({ length: 12 }, (_, k) => `Paragraph ${k} of long ${i}: ${WORDS[(i + k) % 26]} ${WORDS[(i * k) % 26]} and more words here.`).join(' '),
    }));
    const up = await t.request('POST', '/knowledge_bases/chunks_kb/documents', { documents: [...short, ...long] });
    assert.equal(up.status, 200, JSON.stringify(up.body));
    const before = inputs(a).length;
    const patched = await t.request('PATCH', '/knowledge_bases/chunks_kb', { chunking: { chunk_size: 400, chunk_overlap: 40 } });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.data.rebuild.status, 'running');
    const finished = await waitFor('the chunking rebuild', async () => {
      const r = await rebuildOf('chunks_kb');
      return r.status === 'running' || r.status === 'swapping' ? undefined : r;
    });
    assert.equal(finished.status, 'succeeded', JSON.stringify(finished));
    const sent = inputs(a).slice(before).filter((x) => x !== 'kbsync probe');
    for (const s of short) assert.ok(!sent.includes(s.content), `short document ${s.id} kept its vector`);
    assert.ok(sent.length > 0, 'the long documents were re-chunked and embedded');
    for (const text of sent) assert.ok(/^Paragraph/.test(text) || / Paragraph /.test(text), `only long documents' chunks: '${text.slice(0, 40)}'`);
    const kb = (await t.request('GET', '/knowledge_bases/chunks_kb')).body.data;
    assert.deepEqual(kb.chunking, { chunk_size: 400, chunk_overlap: 40 });
    assert.equal(kb.document_count, 50);
    const q = await t.request('POST', '/knowledge_bases/chunks_kb/query', { query: short[7]!.content, top_k: 1 });
    assert.equal(q.body.data.results[0].document_id, 's7');
  });
});

describe('races with the start of a rebuild', () => {
  it('a write that was embedding when the rebuild started is redone with the new index, not lost', async () => {
    assert.equal((await t.request('POST', '/knowledge_bases', kbBody('race_kb', a, 'model-a', 256))).status, 201);
    const docs = Array.from({ length: 40 }, (_, i) => ({ id: `r${i}`, content: body(i + 7000) }));
    assert.equal((await t.request('POST', '/knowledge_bases/race_kb/documents', { documents: docs })).status, 200);
    let release!: () => void;
    holdA = new Promise<void>((resolve) => {
      release = resolve;
    });
    heldA = false;
    // A documents-API write embedding with model A when the rebuild starts: it was computed for
    // the current index only, the store refuses it (the shadow is linked), and it is redone.
    const write = t.request('POST', '/knowledge_bases/race_kb/documents', { documents: [{ id: 'held', content: 'HOLD-ME held write' }] });
    await waitFor('the write to be embedding', async () => (heldA ? true : undefined), 30_000);
    const patched = await t.request('PATCH', '/knowledge_bases/race_kb', {
      embedding: { provider: 'openai', base_url: b.baseUrl, model: 'model-b', dimensions: 384, api_key: 'sk-test' },
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    holdA = null;
    release();
    const res = await write;
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.data.added, 1);
    const end = await waitFor('the rebuild', async () => {
      const r = await rebuildOf('race_kb');
      return r.status === 'running' || r.status === 'swapping' ? undefined : r;
    });
    assert.equal(end.status, 'succeeded', JSON.stringify(end));
    const kb = (await t.request('GET', '/knowledge_bases/race_kb')).body.data;
    assert.equal(kb.embedding.model, 'model-b');
    assert.equal(kb.document_count, 41, 'the held write is in the new index');
    const q = await t.request('POST', '/knowledge_bases/race_kb/query', { query: 'a HOLD-ME held write', top_k: 1 });
    assert.equal(q.body.data.results[0].document_id, 'held');
    assert.equal(inputs(b).filter((x) => x === 'HOLD-ME held write').length, 1, 'model B embedded it once');
  });

  it('a shadow left linked by a cancel cut short does not block writes or the next change', async () => {
    assert.equal((await t.request('POST', '/knowledge_bases', kbBody('left_kb', a, 'model-a', 256))).status, 201);
    const docs = Array.from({ length: 20 }, (_, i) => ({ id: `x${i}`, content: body(i + 8000) }));
    assert.equal((await t.request('POST', '/knowledge_bases/left_kb/documents', { documents: docs })).status, 200);
    bDelayMs = 400;
    const patched = await t.request('PATCH', '/knowledge_bases/left_kb', {
      embedding: { provider: 'openai', base_url: b.baseUrl, model: 'model-b', dimensions: 384, api_key: 'sk-test' },
    });
    assert.equal(patched.status, 200);
    // The cancel's first half only (as if the process died before dropping the shadow).
    const record = await t.app.services.kbs.get(DEFAULT_ACCOUNT, 'left_kb');
    assert.ok(await t.app.services.store.transitionRebuild(record.id, ['running'], 'cancelled', { finishedAt: Date.now(), error: null }));
    assert.equal((await t.app.services.vectors.collectionState(record.collection))?.shadow, record.rebuild?.collection);
    bDelayMs = 40;
    const write = await t.request('POST', '/knowledge_bases/left_kb/documents', { documents: [{ id: 'after', content: 'written after the cut-short cancel' }] });
    assert.equal(write.status, 200, JSON.stringify(write.body));
    const again = await t.request('PATCH', '/knowledge_bases/left_kb', { chunking: { chunk_size: 700, chunk_overlap: 70 } });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    const end = await waitFor('the next rebuild', async () => {
      const r = await rebuildOf('left_kb');
      return r.status === 'running' || r.status === 'swapping' ? undefined : r;
    });
    assert.equal(end.status, 'succeeded', JSON.stringify(end));
    assert.equal((await t.request('GET', '/knowledge_bases/left_kb')).body.data.document_count, 21);
  });
});

describe('cancel and validation', () => {
  it('a cancel drops the shadow and leaves the knowledge base as it was; another change may follow', async () => {
    const created = await t.request('POST', '/knowledge_bases', kbBody('cancel_kb', a, 'model-a', 256));
    assert.equal(created.status, 201);
    const docs = Array.from({ length: 300 }, (_, i) => ({ id: `d${i}`, content: body(i + 5000) }));
    assert.equal((await t.request('POST', '/knowledge_bases/cancel_kb/documents', { documents: docs })).status, 200);
    bDelayMs = 400;
    const patched = await t.request('PATCH', '/knowledge_bases/cancel_kb', {
      embedding: { provider: 'openai', base_url: b.baseUrl, model: 'model-b', dimensions: 384, api_key: 'sk-test' },
    });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    const cancelled = await t.request('POST', '/knowledge_bases/cancel_kb/rebuild/cancel');
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
    assert.equal(cancelled.body.data.rebuild.status, 'cancelled');
    assert.equal(cancelled.body.data.embedding.model, 'model-a');
    const record = await t.app.services.kbs.get(DEFAULT_ACCOUNT, 'cancel_kb');
    assert.equal((await t.app.services.vectors.collectionState(record.collection))?.shadow, null, 'the shadow is unlinked');
    assert.ok(record.rebuild);
    assert.equal(await t.app.services.vectors.collectionState(record.rebuild.collection), null, 'and dropped');
    bDelayMs = 40;
    const twice = await t.request('POST', '/knowledge_bases/cancel_kb/rebuild/cancel');
    assert.equal(twice.status, 409);
    assert.equal(twice.body.error.code, 'CONFLICT');
    // Writes after the cancel go to the current collection only, and queries use model A.
    assert.equal((await t.request('POST', '/knowledge_bases/cancel_kb/documents', { documents: [{ id: 'late', content: 'late arrival text' }] })).status, 200);
    await sleep(600); // the worker's step in flight notices the cancel and stops
    const bAfter = inputs(b).length;
    const q = await t.request('POST', '/knowledge_bases/cancel_kb/query', { query: body(5007), top_k: 1 });
    assert.equal(q.body.data.results[0].document_id, 'd7');
    assert.equal(inputs(b).length, bAfter, 'model B is not asked after the cancel');
    const kb = (await t.request('GET', '/knowledge_bases/cancel_kb')).body.data;
    assert.equal(kb.document_count, 301);
    assert.equal(kb.rebuild.status, 'cancelled');
    // A new change may start after a cancel, and completes.
    const retry = await t.request('PATCH', '/knowledge_bases/cancel_kb', { chunking: { chunk_size: 600, chunk_overlap: 60 } });
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    const end = await waitFor('the second rebuild', async () => {
      const r = await rebuildOf('cancel_kb');
      return r.status === 'running' || r.status === 'swapping' ? undefined : r;
    });
    assert.equal(end.status, 'succeeded');
    assert.equal((await t.request('GET', '/knowledge_bases/cancel_kb')).body.data.document_count, 301);
  });

  it('refuses an empty or invalid change with readable details, and an unknown knowledge base with 404', async () => {
    const empty = await t.request('PATCH', '/knowledge_bases/cancel_kb', {});
    assert.equal(empty.status, 400);
    assert.equal(empty.body.error.code, 'INVALID_REQUEST');
    const local = await t.request('PATCH', '/knowledge_bases/cancel_kb', { embedding: { provider: 'local', model: 'x' } });
    assert.equal(local.status, 400);
    assert.ok(local.body.error.details.some((d: string) => /embedding.model does not apply to provider local/.test(d)), JSON.stringify(local.body));
    const overlap = await t.request('PATCH', '/knowledge_bases/cancel_kb', { chunking: { chunk_size: 100, chunk_overlap: 60 } });
    assert.equal(overlap.status, 400);
    const unknown = await t.request('PATCH', '/knowledge_bases/cancel_kb', { colour: 'blue' });
    assert.equal(unknown.status, 400);
    const missing = await t.request('PATCH', '/knowledge_bases/nope', { description: 'x' });
    assert.equal(missing.status, 404);
    const noCancel = await t.request('POST', '/knowledge_bases/nope/rebuild/cancel');
    assert.equal(noCancel.status, 404);
    const described = await t.request('PATCH', '/knowledge_bases/cancel_kb', { description: 'now described' });
    assert.equal(described.status, 200);
    assert.equal(described.body.data.description, 'now described');
    // No rebuild for a description: the latest rebuild stays what it was.
    assert.equal(described.body.data.rebuild.status, 'succeeded');
    const startedAt = described.body.data.rebuild.started_at;
    // The same model with a price: written at once, no rebuild, the key kept.
    const sameModel = { provider: 'openai', base_url: a.baseUrl, model: 'model-a', dimensions: 256 };
    const priced = await t.request('PATCH', '/knowledge_bases/cancel_kb', { embedding: { ...sameModel, price_per_million_tokens: 0.5 } });
    assert.equal(priced.status, 200, JSON.stringify(priced.body));
    assert.equal(priced.body.data.embedding.price_per_million_tokens, 0.5);
    assert.equal(priced.body.data.rebuild.started_at, startedAt, 'no new rebuild');
    const q = await t.request('POST', '/knowledge_bases/cancel_kb/query', { query: body(5009), top_k: 1 });
    assert.equal(q.status, 200, 'the key was kept');
    // A wrong key for the same model is refused by the probe, and nothing changes.
    const wrong = await t.request('PATCH', '/knowledge_bases/cancel_kb', { embedding: { ...sameModel, api_key: 'sk-wrong' } });
    assert.equal(wrong.status, 400, JSON.stringify(wrong.body));
    assert.equal(wrong.body.error.code, 'CONNECTION_FAILED');
    assert.equal(JSON.stringify(wrong.body).includes('sk-wrong'), false, 'the key is not echoed');
    assert.equal((await t.request('POST', '/knowledge_bases/cancel_kb/query', { query: body(5009), top_k: 1 })).status, 200);
  });
});
});
}
