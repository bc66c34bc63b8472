/**
 * Bad input gets a clear 4xx, never a 500: malformed JSON, wrong content type, huge bodies,
 * unknown routes, and hundreds of random bodies on every write route (property-based).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { isoIn, makeSqliteSource, startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;

before(async () => {
  t = await startTestApp({ config: { bodyLimitBytes: 64 * 1024 } });
  await t.request('POST', '/databases', { name: 'src', engine: 'sqlite', parameters: { path: makeSqliteSource(t.dataDir) } });
  await t.request('POST', '/knowledge_bases', { kb_name: 'kb' });
  await t.request('POST', '/jobs', {
    job_name: 'existing',
    source_table: 'src.orders',
    kb_name: 'kb',
    content_columns: ['product'],
    filter_column: 'created_at',
    interval: 'HOURLY',
    start_time: isoIn(60),
    end_time: isoIn(600),
  });
});
after(() => t.close());

async function raw(method: string, url: string, payload: string, contentType = 'application/json') {
  const res = await t.app.server.inject({ method: method as 'POST', url, payload, headers: { 'content-type': contentType } });
  return { status: res.statusCode, body: res.json() };
}

describe('transport errors', () => {
  it('malformed JSON is 400 INVALID_REQUEST', async () => {
    const res = await raw('POST', '/jobs/create', '{"job_name": ');
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'INVALID_REQUEST');
    assert.match(res.body.error.details[0], /not valid JSON/);
  });
  it('a non-JSON content type is 415 INVALID_REQUEST', async () => {
    const res = await raw('POST', '/jobs/create', 'job_name=x', 'application/x-www-form-urlencoded');
    assert.equal(res.status, 415);
    assert.equal(res.body.error.code, 'INVALID_REQUEST');
  });
  it('an oversized body is 413 INVALID_REQUEST', async () => {
    const res = await raw('POST', '/jobs/create', JSON.stringify({ job_name: 'x'.repeat(100_000) }));
    assert.equal(res.status, 413);
    assert.equal(res.body.error.code, 'INVALID_REQUEST');
  });
  it('an unknown route is 404 NOT_FOUND in the envelope', async () => {
    const res = await raw('GET', '/nope', '');
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, 'NOT_FOUND');
  });
  it('an empty body on an action route is fine', async () => {
    const res = await raw('POST', '/jobs/existing/pause', '');
    assert.equal(res.status, 200);
    assert.equal(res.body.data.status, 'paused');
  });
});

const WRITE_ROUTES: Array<[string, string]> = [
  ['POST', '/jobs/create'],
  ['POST', '/jobs'],
  ['PATCH', '/jobs/existing'],
  ['POST', '/databases/create'],
  ['POST', '/knowledge_bases/create'],
  ['POST', '/jobs/existing/pause'],
  ['POST', '/jobs/existing/resume'],
];

const fieldNames = fc.constantFrom(
  'job_name', 'source_table', 'kb_name', 'content_columns', 'filter_column', 'interval', 'start_time', 'end_time',
  'backfill', 'lookback', 'metadata_columns', 'batch_size', 'name', 'engine', 'parameters', 'embedding', 'chunking',
  'description', '__proto__', 'constructor', 'x',
);
const values = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 4 }),
  fc.constantFrom('10 MINUTES', 'src.orders', 'kb', '2099-01-01T00:00:00', 'created_at', 'product', 'sqlite', 'postgres', '-1 DAYS', 'src.', '.orders', '\u0000', '{}', '9'.repeat(400)),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string(), fc.integer(), fc.constant(null)), { maxKeys: 4 }),
);
const bodies = fc.oneof(
  fc.dictionary(fieldNames, values, { maxKeys: 10 }),
  fc.jsonValue({ maxDepth: 3 }),
  fc.anything({ maxDepth: 2 }).map((v) => {
    try {
      return JSON.parse(JSON.stringify(v) ?? 'null') as unknown;
    } catch {
      return null;
    }
  }),
);

describe('random bodies on every write route never give a 5xx', () => {
  for (const [method, url] of WRITE_ROUTES) {
    it(`${method} ${url}`, async () => {
      await fc.assert(
        fc.asyncProperty(bodies, async (body) => {
          const res = await raw(method, url, JSON.stringify(body));
          assert.ok(res.status < 500, `${res.status} for ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
          if (res.status >= 400) {
            assert.equal(res.body.success, false);
            assert.equal(typeof res.body.error.code, 'string');
            assert.ok(Array.isArray(res.body.error.details));
          }
        }),
        { numRuns: 150 },
      );
    });
  }

  it('random bytes as the body never give a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 200 }), async (text) => {
        const res = await raw('POST', '/jobs/create', text);
        assert.ok(res.status < 500, `${res.status} for ${JSON.stringify(text)}`);
      }),
      { numRuns: 200 },
    );
  });
});

describe('operations', () => {
  it('GET /metrics speaks Prometheus text with jobs by status and HTTP requests by route', async () => {
    const res = await t.app.server.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /text\/plain/);
    const jobs = [...res.body.matchAll(/^kbsync_jobs\{status="(\w+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])] as const);
    assert.deepEqual(jobs.map(([s]) => s).sort(), ['completed', 'failed', 'paused', 'running', 'scheduled']);
    const listed = (await t.request('GET', '/jobs')).body.data.jobs.length;
    assert.equal(jobs.reduce((n, [, c]) => n + c, 0), listed);
    assert.match(res.body, /kbsync_http_requests_total\{method="POST",route="\/jobs\/create",status="400"\} \d+/);
    assert.match(res.body, /kbsync_process_cpu_user_seconds_total/);
  });
  it('GET /health reports the store', async () => {
    const res = await t.request('GET', '/health');
    assert.equal(res.status, 200);
    assert.equal(res.body.data.store, 'ok');
  });
});
