/**
 * Knowledge bases over HTTP: documents upsert by id (unchanged content is not re-embedded),
 * paging, delete, the three query modes, counts, and bad input answered with 4xx details.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSyncApp, type SyncTestApp } from '../helpers/sync.js';

let t: SyncTestApp;

const DOCS = [
  { id: 'boots', content: 'Waterproof leather hiking boots with a grippy sole. Product code SKU-4471-B.', metadata: { price: 129, category: 'footwear', added: '2025-01-05' } },
  { id: 'tent', content: 'Two-person freestanding tent for three-season camping.', metadata: { price: 249, category: 'camping', added: '2025-02-10' } },
  { id: 'stove', content: 'Compact gas camping stove that boils water in four minutes.', metadata: { price: 59, category: 'camping', added: '2025-03-15' } },
  { id: 'lamp', content: 'Rechargeable LED headlamp with a red night mode. Product code SKU-1200-L.', metadata: { price: 39, category: 'lighting', added: '2025-04-20' } },
];

before(async () => {
  t = await startSyncApp();
  assert.equal((await t.request('POST', '/knowledge_bases/create', { kb_name: 'shop', chunking: { chunk_size: 200, chunk_overlap: 20 } })).status, 201);
});
after(() => t.close());

describe('documents', () => {
  it('upserts, counts, and does not re-embed unchanged documents', async () => {
    const first = await t.request('POST', '/knowledge_bases/shop/documents', { documents: DOCS });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual(first.body.data, { added: 4, updated: 0, unchanged: 0, chunks_written: 4 });
    const embedded = t.providers.embedded();
    const again = await t.request('POST', '/knowledge_bases/shop/documents', { documents: DOCS });
    assert.deepEqual(again.body.data, { added: 0, updated: 0, unchanged: 4, chunks_written: 0 });
    assert.equal(t.providers.embedded(), embedded, 'no embedding call the second time');
    const kb = await t.request('GET', '/knowledge_bases/shop');
    assert.equal(kb.body.data.document_count, 4);
    assert.equal(kb.body.data.chunk_count, 4);
  });

  it('changing one document re-embeds only that one; metadata-only changes embed nothing', async () => {
    const embedded = t.providers.embedded();
    const changed = DOCS.map((d) => (d.id === 'tent' ? { ...d, content: `${d.content} Now with a porch.` } : d));
    const res = await t.request('POST', '/knowledge_bases/shop/documents', { documents: changed });
    assert.deepEqual(res.body.data, { added: 0, updated: 1, unchanged: 3, chunks_written: 1 });
    assert.equal(t.providers.embedded() - embedded, 1);
    const meta = changed.map((d) => (d.id === 'stove' ? { ...d, metadata: { ...d.metadata, price: 49 } } : d));
    const res2 = await t.request('POST', '/knowledge_bases/shop/documents', { documents: meta });
    assert.deepEqual(res2.body.data, { added: 0, updated: 1, unchanged: 3, chunks_written: 0 });
    assert.equal(t.providers.embedded() - embedded, 1, 'metadata change: no embedding');
    const hit = await t.request('POST', '/knowledge_bases/shop/query', { query: 'stove', mode: 'keyword', filter: { price: 49 } });
    assert.equal(hit.body.data.results[0].document_id, 'stove');
  });

  it('a long document is split into chunks that all point to it', async () => {
    const long = Array.from({ length: 30 }, (_, i) => `Sentence number ${i} about trail running shoes and their cushioning.`).join(' ');
    const res = await t.request('POST', '/knowledge_bases/shop/documents', { documents: [{ id: 'long', content: long }] });
    assert.ok(res.body.data.chunks_written > 5);
    const hits = await t.request('POST', '/knowledge_bases/shop/query', { query: 'Sentence number 17', mode: 'keyword', top_k: 3 });
    assert.ok(hits.body.data.results.every((r: { document_id: string }) => r.document_id === 'long'));
  });

  it('pages through documents and deletes one', async () => {
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const res: { body: any } = await t.request('GET', `/knowledge_bases/shop/documents?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      ids.push(...res.body.data.documents.map((d: { id: string }) => d.id));
      cursor = res.body.data.next_cursor;
    } while (cursor);
    assert.deepEqual(ids.sort(), ['boots', 'lamp', 'long', 'stove', 'tent']);
    assert.equal((await t.request('DELETE', '/knowledge_bases/shop/documents/long')).status, 200);
    assert.equal((await t.request('DELETE', '/knowledge_bases/shop/documents/long')).status, 404);
    const hits = await t.request('POST', '/knowledge_bases/shop/query', { query: 'Sentence number 17', mode: 'keyword' });
    assert.ok(hits.body.data.results.every((r: { document_id: string }) => r.document_id !== 'long'), 'its chunks are gone too');
  });
});

describe('query', () => {
  it('keyword search finds an exact product code first', async () => {
    const res = await t.request('POST', '/knowledge_bases/shop/query', { query: 'SKU-1200-L', mode: 'keyword' });
    assert.equal(res.body.data.results[0].document_id, 'lamp');
  });

  it('results are sorted with relevance in [0, 1]; top_k and min_relevance are honoured', async () => {
    for (const mode of ['semantic', 'keyword', 'hybrid']) {
      const res = await t.request('POST', '/knowledge_bases/shop/query', { query: 'camping stove for boiling water', mode, top_k: 3 });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const rel = res.body.data.results.map((r: { relevance: number }) => r.relevance);
      assert.ok(rel.length > 0 && rel.length <= 3, mode);
      assert.ok(rel.every((x: number) => x >= 0 && x <= 1), mode);
      assert.deepEqual(rel, [...rel].sort((a: number, b: number) => b - a), mode);
      assert.equal(res.body.data.results[0].document_id, 'stove', mode);
      const strict = await t.request('POST', '/knowledge_bases/shop/query', { query: 'camping stove for boiling water', mode, min_relevance: rel[0] });
      assert.ok(strict.body.data.results.every((r: { relevance: number }) => r.relevance >= rel[0]));
    }
  });

  it('metadata filters: equality, in, ranges on numbers and ISO dates', async () => {
    const q = (filter: unknown) => t.request('POST', '/knowledge_bases/shop/query', { query: 'camping gear boots headlamp tent stove', mode: 'keyword', top_k: 10, filter });
    const ids = async (filter: unknown) => (await q(filter)).body.data.results.map((r: { document_id: string }) => r.document_id).sort();
    assert.deepEqual(await ids({ category: 'camping' }), ['stove', 'tent']);
    assert.deepEqual(await ids({ category: { in: ['footwear', 'lighting'] } }), ['boots', 'lamp']);
    assert.deepEqual(await ids({ price: { gte: 100 } }), ['boots', 'tent']);
    assert.deepEqual(await ids({ added: { gte: '2025-02-01', lte: '2025-03-31' } }), ['stove', 'tent']);
  });

  describe('bad input is 400 with details', () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['empty query', { query: '   ' }, /query must not be empty/],
      ['missing query', {}, /query is required/],
      ['top_k 0', { query: 'x', top_k: 0 }, /top_k must be between 1 and 100/],
      ['top_k 1000', { query: 'x', top_k: 1000 }, /top_k must be between 1 and 100/],
      ['unknown mode', { query: 'x', mode: 'fuzzy' }, /mode must be semantic, keyword or hybrid/],
      ['filter with an object value of unknown shape', { query: 'x', filter: { price: { between: [1, 2] } } }, /unknown field|filter/],
      ['filter with a malformed field name', { query: 'x', filter: { 'a"); DROP': 1 } }, /filter|field/i],
      ['unknown field', { query: 'x', topk: 3 }, /unknown field: topk/],
    ];
    for (const [name, body, detail] of cases) {
      it(name, async () => {
        const res = await t.request('POST', '/knowledge_bases/shop/query', body);
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.equal(res.body.error.code, 'INVALID_REQUEST');
        assert.ok(res.body.error.details.some((d: string) => detail.test(d)), JSON.stringify(res.body.error.details));
      });
    }
    it('a document without id', async () => {
      const res = await t.request('POST', '/knowledge_bases/shop/documents', { documents: [{ content: 'x' }] });
      assert.equal(res.status, 400);
      assert.ok(res.body.error.details.includes('documents[0].id is required'), JSON.stringify(res.body.error.details));
    });
    it('a 10 MB document is refused by the documented limit, with nothing written', async () => {
      const before = (await t.request('GET', '/knowledge_bases/shop')).body.data.document_count;
      const res = await t.request('POST', '/knowledge_bases/shop/documents', { documents: [{ id: 'huge', content: 'a '.repeat(5 * 1024 * 1024) }] });
      assert.equal(res.status, 400, JSON.stringify(res.body).slice(0, 300));
      assert.match(res.body.error.details[0], /the limit is 1000000 \(KBSYNC_MAX_DOCUMENT_CHARS\)/);
      assert.equal((await t.request('GET', '/knowledge_bases/shop')).body.data.document_count, before);
    });
    it('an unknown knowledge base is 404', async () => {
      const res = await t.request('POST', '/knowledge_bases/nope/query', { query: 'x' });
      assert.equal(res.status, 404);
      assert.equal(res.body.error.code, 'NOT_FOUND');
    });
  });
});

describe('knowledge base lifecycle', () => {
  it('duplicate names are 409; delete removes vectors and keyword index', async () => {
    assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'shop' })).body.error.code, 'DUPLICATE_KB');
    assert.equal((await t.request('DELETE', '/knowledge_bases/shop')).status, 200);
    assert.equal((await t.request('POST', '/knowledge_bases/shop/query', { query: 'boots' })).status, 404);
    // Re-created under the same name it starts empty.
    await t.request('POST', '/knowledge_bases', { kb_name: 'shop' });
    const kb = await t.request('GET', '/knowledge_bases/shop');
    assert.equal(kb.body.data.document_count, 0);
    const hits = await t.request('POST', '/knowledge_bases/shop/query', { query: 'SKU-1200-L', mode: 'keyword' });
    assert.deepEqual(hits.body.data.results, []);
  });

  it('invalid configurations are refused with details', async () => {
    const bad = await t.request('POST', '/knowledge_bases', { kb_name: 'x', embedding: { provider: 'local', api_key: 'k' }, chunking: { chunk_size: 100, chunk_overlap: 80 } });
    assert.equal(bad.status, 400);
    assert.ok(bad.body.error.details.some((d: string) => /api_key does not apply/.test(d)));
    assert.ok(bad.body.error.details.some((d: string) => /chunk_overlap must be less than half/.test(d)));
    const name = await t.request('POST', '/knowledge_bases', { kb_name: 'bad name!' });
    assert.equal(name.status, 400);
  });
});
