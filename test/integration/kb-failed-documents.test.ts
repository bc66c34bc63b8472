/**
 * The knowledge-base engine's sink isolates the documents that cannot be written (API.md, "Failed
 * rows"): through the app's REAL OpenAI-compatible provider and the in-test fake server, a document
 * the provider refuses, or one over KBSYNC_MAX_DOCUMENT_CHARS, is reported in `failed` and the
 * rest of the batch is written. A provider that refuses everything, or refuses the key, still
 * fails the batch, and the documents API keeps failing the whole request.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { DEFAULT_ACCOUNT } from '../../src/api/server.js';
import type { RowDocument } from '../../src/core/documents.js';
import { EmbeddingProviderError } from '../../src/embeddings/errors.js';
import type { KnowledgeBaseRecord } from '../../src/store/port.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { type FakeOpenAIServer, type FakeReply, type RecordedRequest, startFakeOpenAIServer } from '../helpers/fake-openai.js';

const API_KEY = 'sk-test-failed-documents';
const MAX_CHARS = 1000;

let t: TestApp;
let fake: FakeOpenAIServer;
/** Inputs containing one of these are refused with 400. */
const refused = new Set<string>();
/** When set, every request gets this reply. */
let everything: FakeReply | null = null;

const refusal: FakeReply = { status: 400, body: { error: { message: 'Input refused by the moderation policy (test)', type: 'invalid_request_error' } } };

function script(req: RecordedRequest): FakeReply | undefined {
  if (everything) return everything;
  const input = req.body?.input;
  const texts = Array.isArray(input) ? input : [input];
  return texts.some((text) => typeof text === 'string' && [...refused].some((r) => text.includes(r))) ? refusal : undefined;
}

let kbCount = 0;
async function newKb(): Promise<{ name: string; record: KnowledgeBaseRecord }> {
  const name = `kb_failed_${++kbCount}`;
  const res = await t.request('POST', '/knowledge_bases', {
    kb_name: name,
    embedding: { provider: 'openai', base_url: fake.baseUrl, model: 'text-embedding-3-small', api_key: API_KEY },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  const record = await t.app.services.store.getKnowledgeBase(DEFAULT_ACCOUNT, name);
  assert.ok(record);
  return { name, record };
}

const doc = (id: string, content = `content of document ${id}`): RowDocument => ({ id, content, metadata: { n: Number(id) } });
const docs = (n: number) => Array.from({ length: n }, (_, i) => doc(String(i + 1)));

async function documentIds(kb: string): Promise<string[]> {
  const res = await t.request('GET', `/knowledge_bases/${kb}/documents?limit=200`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return (res.body.data.documents as Array<{ id: string }>).map((d) => d.id).sort((a, b) => Number(a) - Number(b));
}

/** Every text the fake server was sent from request `from` (0-based) on. */
const sentSince = (from: number) =>
  fake.requests.slice(from).flatMap((r) => (Array.isArray(r.body?.input) ? (r.body.input as unknown[]) : [r.body?.input]));

before(async () => {
  fake = await startFakeOpenAIServer({ apiKey: API_KEY, script });
  try {
    t = await startTestApp({ config: { maxDocumentChars: MAX_CHARS } });
  } catch (err) {
    await fake.close();
    throw err;
  }
});

after(async () => {
  await t?.close();
  await fake?.close();
});

beforeEach(() => {
  refused.clear();
  everything = null;
});

describe('KnowledgeBaseEngine.upsertDocuments isolates documents that cannot be written', () => {
  it('a batch the provider takes whole: one request, nothing failed', async () => {
    const { name, record } = await newKb();
    const n0 = fake.requests.length;
    const tokens0 = fake.tokensServed();
    const counts = await t.app.services.engine.upsertDocuments(record, docs(8));
    // With what the provider billed for it (its `usage`).
    const billed = fake.tokensServed() - tokens0;
    assert.ok(billed > 0);
    assert.deepEqual(counts, { added: 8, updated: 0, unchanged: 0, chunksWritten: 8, embeddingTokens: billed, embeddingRequests: 1 });
    assert.equal(fake.requests.length - n0, 1);
    assert.equal((await documentIds(name)).length, 8);
  });

  it('one document the provider refuses is reported with the provider’s reason; the others are written', async () => {
    const { name, record } = await newKb();
    refused.add('document 5');
    const counts = await t.app.services.engine.upsertDocuments(record, docs(12));
    assert.equal(counts.added, 11);
    assert.equal(counts.chunksWritten, 11);
    assert.equal(counts.failed?.length, 1);
    const [failure] = counts.failed;
    assert.equal(failure?.id, '5');
    assert.match(failure.reason, /refused this document/);
    assert.match(failure.reason, /400/);
    assert.match(failure.reason, /moderation policy \(test\)/);
    assert.ok(!failure.reason.includes(API_KEY), 'no secret in the reason');
    assert.deepEqual(await documentIds(name), ['1', '2', '3', '4', '6', '7', '8', '9', '10', '11', '12']);
  });

  it('several refused documents in one batch are all found, in a bounded number of requests', async () => {
    const { name, record } = await newKb();
    // Distinct markers ('document 3' would also match 'document 30').
    for (const id of ['3', '17', '18', '31']) refused.add(`refuse-me-${id}.`);
    const batch = docs(32).map((d) => (['3', '17', '18', '31'].includes(d.id) ? doc(d.id, `refuse-me-${d.id}.`) : d));
    const n0 = fake.requests.length;
    const counts = await t.app.services.engine.upsertDocuments(record, batch);
    assert.deepEqual(
      (counts.failed ?? []).map((f) => f.id).sort((a, b) => Number(a) - Number(b)),
      ['3', '17', '18', '31'],
    );
    assert.equal(counts.added, 28);
    const ids = await documentIds(name);
    assert.equal(ids.length, 28);
    for (const id of ['3', '17', '18', '31']) assert.ok(!ids.includes(id));
    // Whole batch + probe + bisection: far fewer than one request per document pair.
    assert.ok(fake.requests.length - n0 <= 2 + 4 * 2 * Math.log2(32), `${fake.requests.length - n0} requests`);
  });

  it('a document over KBSYNC_MAX_DOCUMENT_CHARS fails without being embedded', async () => {
    const { name, record } = await newKb();
    const long = doc('2', `z${'long text '.repeat(200)}`);
    const n0 = fake.requests.length;
    const counts = await t.app.services.engine.upsertDocuments(record, [doc('1'), long, doc('3')]);
    assert.deepEqual(counts.failed, [
      { id: '2', reason: `content has ${long.content.length} characters; the limit is ${MAX_CHARS} (KBSYNC_MAX_DOCUMENT_CHARS)` },
    ]);
    assert.equal(counts.added, 2);
    assert.ok(!sentSince(n0).some((text) => typeof text === 'string' && text.startsWith('zlong')), 'the long document was never sent');
    assert.deepEqual(await documentIds(name), ['1', '3']);
  });

  it('a batch of only failing documents writes nothing and reports them all', async () => {
    const { name, record } = await newKb();
    refused.add('document 1');
    const counts = await t.app.services.engine.upsertDocuments(record, [doc('1'), doc('2', 'x'.repeat(MAX_CHARS + 1))]);
    assert.equal(counts.added + counts.updated + counts.unchanged, 0);
    assert.deepEqual((counts.failed ?? []).map((f) => f.id).sort(), ['1', '2']);
    assert.deepEqual(await documentIds(name), []);
  });

  it('an updated document the provider refuses keeps its previous version; unchanged ones are not re-sent', async () => {
    const { name, record } = await newKb();
    await t.app.services.engine.upsertDocuments(record, docs(4));
    refused.add('new text of 2');
    const n0 = fake.requests.length;
    const counts = await t.app.services.engine.upsertDocuments(record, [doc('1'), doc('2', 'new text of 2'), doc('3', 'new text of 3'), doc('4')]);
    assert.equal(counts.unchanged, 2);
    assert.equal(counts.updated, 1);
    assert.deepEqual((counts.failed ?? []).map((f) => f.id), ['2']);
    assert.ok(!sentSince(n0).includes('content of document 1'), 'an unchanged document is not re-embedded');
    const res = await t.request('GET', `/knowledge_bases/${name}/documents?limit=10`);
    const two = (res.body.data.documents as Array<{ id: string; content: string }>).find((d) => d.id === '2');
    assert.equal(two?.content, 'content of document 2');
  });

  it('a provider that refuses even the probe text fails the batch with its reason, writing nothing', async () => {
    const { name, record } = await newKb();
    everything = { status: 400, body: { error: { message: 'dimensions is not supported by this model (test)' } } };
    const n0 = fake.requests.length;
    await assert.rejects(t.app.services.engine.upsertDocuments(record, docs(10)), (err: unknown) => {
      assert.ok(err instanceof EmbeddingProviderError);
      assert.equal(err.status, 400);
      assert.match(err.message, /dimensions is not supported/);
      return true;
    });
    assert.equal(fake.requests.length - n0, 2, 'the batch and the probe, no bisection');
    everything = null;
    assert.deepEqual(await documentIds(name), []);
  });

  for (const status of [401, 403, 404]) {
    it(`${status} is the configuration's fault: the batch fails at once, nothing is isolated`, async () => {
      const { name, record } = await newKb();
      everything = { status, body: { error: { message: `refused with ${status} (test)` } } };
      const n0 = fake.requests.length;
      await assert.rejects(t.app.services.engine.upsertDocuments(record, docs(6)), (err: unknown) => {
        assert.ok(err instanceof EmbeddingProviderError);
        assert.equal(err.status, status);
        return true;
      });
      assert.equal(fake.requests.length - n0, 1, 'no probe, no bisection');
      everything = null;
      assert.deepEqual(await documentIds(name), []);
    });
  }

  it('the documents API still fails the whole request when the provider refuses one document', async () => {
    const { name } = await newKb();
    refused.add('document 2');
    const res = await t.request('POST', `/knowledge_bases/${name}/documents`, {
      documents: [1, 2, 3].map((i) => ({ id: String(i), content: `content of document ${i}` })),
    });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'CONNECTION_FAILED');
    assert.match(res.body.error.details[0], /moderation policy/);
    assert.deepEqual(await documentIds(name), []);
  });
});
