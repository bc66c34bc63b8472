/**
 * Where docs/api.md and the server disagreed (issue 10, point 6), the server now does what the
 * docs say, or the docs say what the server does: a JSON body sent as text/plain is 415; a
 * document's `updated_at` carries milliseconds; a local knowledge base names its model and 512
 * dimensions; an exact keyword match has a relevance above 0, also in a one-document knowledge
 * base; query-string errors read like body errors.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isoIn, makeSqliteSource, startTestApp, type TestApp } from '../helpers/app.js';
import { startSyncApp, type SyncTestApp } from '../helpers/sync.js';

let t: SyncTestApp;

before(async () => {
  t = await startSyncApp();
  assert.equal(
    (
      await t.request('POST', '/databases', {
        name: 'src',
        engine: 'sqlite',
        parameters: { path: makeSqliteSource(t.dataDir) },
      })
    ).status,
    201,
  );
  assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'kb' })).status, 201);
  const job = await t.request('POST', '/jobs', {
    job_name: 'j',
    source_table: 'src.orders',
    kb_name: 'kb',
    content_columns: ['product'],
    filter_column: 'created_at',
    interval: 'HOURLY',
    start_time: isoIn(60),
    end_time: isoIn(600),
  });
  assert.equal(job.status, 201);
});
after(() => t.close());

async function raw(method: string, url: string, payload: string, contentType: string | null) {
  const res = await t.app.server.inject({
    method: method as 'POST',
    url,
    payload,
    headers: contentType === null ? {} : { 'content-type': contentType },
  });
  return { status: res.statusCode, body: res.json() };
}

describe('content types', () => {
  it('a JSON body sent as text/plain is 415 INVALID_REQUEST, as documented', async () => {
    for (const type of [
      'text/plain',
      'text/plain; charset=utf-8',
      'application/x-www-form-urlencoded',
      'application/xml',
    ]) {
      const res = await raw('POST', '/jobs/create', JSON.stringify({ job_name: 'x' }), type);
      assert.equal(res.status, 415, `${type}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, 'INVALID_REQUEST');
      assert.match(res.body.error.details[0], /Content-Type: application\/json/);
    }
  });

  it('an empty body with another content type is no body: action routes still work', async () => {
    const paused = await raw('POST', '/jobs/j/pause', '', 'text/plain');
    assert.equal(paused.status, 200, JSON.stringify(paused.body));
    const resumed = await raw('POST', '/jobs/j/resume', '', 'application/x-www-form-urlencoded');
    assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
  });
});

describe('documents', () => {
  it("a document's updated_at carries milliseconds (docs/api.md says so)", async () => {
    const res = await t.request('POST', '/knowledge_bases/kb/documents', {
      documents: [{ id: 'a', content: 'alpha' }],
    });
    assert.equal(res.status, 200);
    const docs = (await t.request('GET', '/knowledge_bases/kb/documents')).body.data.documents;
    assert.match(docs[0].updated_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    await t.request('DELETE', '/knowledge_bases/kb/documents/a');
  });
});

describe('a local knowledge base', () => {
  it('reports its model and its 512 dimensions', async () => {
    // The real local provider: creating a knowledge base does not load the model.
    const local: TestApp = await startTestApp();
    try {
      const created = await local.request('POST', '/knowledge_bases', { kb_name: 'local_kb' });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      for (const res of [created, await local.request('GET', '/knowledge_bases/local_kb')]) {
        assert.equal(res.body.data.embedding.provider, 'local');
        assert.equal(res.body.data.embedding.model, 'universal-sentence-encoder-lite');
        assert.equal(res.body.data.embedding.dimensions, 512);
      }
      const listed = (await local.request('GET', '/knowledge_bases')).body.data.knowledge_bases;
      assert.equal(listed[0].embedding.dimensions, 512);
    } finally {
      await local.close();
    }
  });
});

describe('keyword relevance', () => {
  it('an exact match in a one-document knowledge base is above 0', async () => {
    assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'single' })).status, 201);
    const content = 'Packable goose-down jacket rated to minus ten degrees';
    await t.request('POST', '/knowledge_bases/single/documents', { documents: [{ id: 'jacket', content }] });
    for (const query of [content, 'jacket', 'goose-down jacket']) {
      const res = await t.request('POST', '/knowledge_bases/single/query', { query, mode: 'keyword' });
      assert.equal(res.body.data.results.length, 1, query);
      assert.ok(
        res.body.data.results[0].relevance >= 0.1,
        `${query}: relevance ${res.body.data.results[0].relevance}`,
      );
    }
  });

  it('a word in every document still ranks below a rarer one, and both are above 0', async () => {
    assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'pair' })).status, 201);
    await t.request('POST', '/knowledge_bases/pair/documents', {
      documents: [
        { id: 'one', content: 'warm jacket for winter' },
        { id: 'two', content: 'light jacket for summer' },
        { id: 'three', content: 'jacket with a hood' },
      ],
    });
    const res = await t.request('POST', '/knowledge_bases/pair/query', {
      query: 'winter jacket',
      mode: 'keyword',
    });
    const results = res.body.data.results as Array<{ document_id: string; relevance: number }>;
    assert.equal(results[0]!.document_id, 'one', 'the document with the rarer word first');
    assert.ok(
      results.every((r) => r.relevance > 0),
      JSON.stringify(results),
    );
    assert.ok(results[0]!.relevance > results[1]!.relevance);
  });
});

describe('query strings', () => {
  it('errors read like body errors: the parameter first, then what it must be and what it got', async () => {
    const res = await t.request('GET', `/jobs?status=sleeping&limit=0&foo=1&cursor=${'c'.repeat(201)}`);
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'INVALID_REQUEST');
    assert.deepEqual(res.body.error.details.sort(), [
      'cursor must be at most 200 characters (pass next_cursor as it came)',
      "limit must be a whole number from 1 to 200, got '0'",
      "status must be one of scheduled, running, paused, completed, failed, got 'sleeping'",
      'unknown query parameter: foo',
    ]);
    const twice = await t.request('GET', '/jobs/j/runs?limit=1&limit=2');
    assert.deepEqual(twice.body.error.details, ['limit must be given once']);
    const kb = await t.request('GET', `/jobs?kb_name=${'k'.repeat(64)}`);
    assert.deepEqual(kb.body.error.details, ['kb_name must be at most 63 characters']);
    for (const detail of [...res.body.error.details, ...twice.body.error.details]) {
      assert.doesNotMatch(detail, /Invalid option|Too big|expected|Unrecognized/, 'no library wording');
    }
  });
});
