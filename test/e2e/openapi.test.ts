/**
 * The OpenAPI document tells the truth (issue 10, point 5). Every answer the e2e suites receive is
 * already checked against it (test/helpers/app.ts → helpers/openapi.ts); this file checks its
 * structure (operationIds, tags, descriptions, 2xx schemas, error responses, security), that its
 * examples validate and the seed's example works as "Try it out" pre-fills it, that the request
 * schemas refuse what the server refuses, and that the checker itself catches drift.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ERROR_STATUS } from '../../src/core/errors.js';
import { makeSqliteSource, startTestApp } from '../helpers/app.js';
import { OpenApiChecker } from '../helpers/openapi.js';
import { startSyncApp, type SyncTestApp } from '../helpers/sync.js';

/** The seed's example request of POST /jobs/create, copied verbatim (the seed's examples are binding). */
const SEED_REQUEST = {
  job_name: 'sync_orders',
  source_table: 'orders_db.orders',
  kb_name: 'orders_kb',
  content_columns: ['product', 'description'],
  filter_column: 'created_at',
  interval: '10 MINUTES',
  start_time: '2025-06-19T18:00:00',
  end_time: '2025-06-20T18:00:00',
};
/** The seed's example answers. */
const SEED_CREATED = {
  success: true,
  message: 'Job created successfully',
  data: {
    job_id: 'job_12345',
    job_name: 'sync_orders',
    status: 'scheduled',
    created_at: '2025-06-19T12:00:00Z',
    next_run: '2025-06-19T18:00:00Z',
  },
};
const SEED_ERROR = {
  success: false,
  error: {
    code: 'INVALID_REQUEST',
    message: 'Invalid job configuration',
    details: ['job_name is required', 'invalid interval format'],
  },
};
/** The codes of API.md's table. */
const API_MD_CODES = [
  'INVALID_REQUEST',
  'INVALID_INTERVAL',
  'INVALID_DATETIME',
  'INVALID_TABLE',
  'INVALID_KB',
  'DUPLICATE_JOB',
  'JOB_LIMIT_EXCEEDED',
  'NOT_FOUND',
  'CONFLICT',
  'DUPLICATE_DATABASE',
  'DUPLICATE_KB',
  'CONNECTION_FAILED',
  'UNAUTHORIZED',
  'STORE_UNAVAILABLE',
  'RATE_LIMITED',
  'INTERNAL_ERROR',
];

type Doc = Record<string, any>;
type Op = { path: string; method: string; op: any };

function operations(doc: Doc): Op[] {
  return Object.entries<Record<string, any>>(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({ path, method, op })),
  );
}

const jsonBody = (op: any) => op.requestBody?.content?.['application/json'];

let t: SyncTestApp;
let doc: Doc;
let checker: OpenApiChecker;

before(async () => {
  t = await startSyncApp();
  const res = await t.request('GET', '/openapi.json');
  assert.equal(res.status, 200);
  doc = res.body;
  checker = new OpenApiChecker(doc);
});
after(() => t.close());

describe('structure', () => {
  it('every operation has a unique operationId, a declared tag, a summary and a description', () => {
    const ops = operations(doc);
    assert.ok(ops.length >= 35, `${ops.length} operations`);
    const ids = ops.map(({ op }) => op.operationId);
    assert.ok(
      ids.every((id) => typeof id === 'string' && /^[a-z][A-Za-z]+$/.test(id)),
      `operationIds: ${ids}`,
    );
    assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
    const tags = new Set(doc.tags.map((tag: { name: string }) => tag.name));
    for (const { path, method, op } of ops) {
      const where = `${method.toUpperCase()} ${path}`;
      assert.ok(op.tags?.length === 1 && tags.has(op.tags[0]), `${where}: a declared tag`);
      assert.ok(op.summary?.length > 5, `${where}: summary`);
      assert.ok(op.description?.length > 20, `${where}: description`);
    }
  });

  it('every operation has one 2xx answer with its exact data shape, and error answers in the shared schema', () => {
    for (const { path, method, op } of operations(doc)) {
      const where = `${method.toUpperCase()} ${path}`;
      const statuses = Object.keys(op.responses);
      const success = statuses.filter((s) => s.startsWith('2'));
      // Creating a job with dry_run: true answers 200 with an estimate instead of 201 with the job.
      const dryRun = op.operationId === 'createJob' || op.operationId === 'createJobAlias';
      assert.deepEqual(success, dryRun ? ['200', '201'] : [success[0]], `${where}: one 2xx (${statuses})`);
      for (const status of success) {
        const ok = op.responses[status];
        if (path === '/metrics') {
          assert.ok(ok.content['text/plain'], 'metrics are text');
        } else {
          const schema = ok.content['application/json'].schema;
          assert.deepEqual(schema.required, ['success', 'message', 'data'], `${where}: the envelope`);
          assert.equal(schema.additionalProperties, false, `${where}: a closed envelope`);
          const data = schema.properties.data;
          assert.ok(
            data.$ref || (data.type === 'object' && data.properties && data.additionalProperties === false),
            `${where}: an exact data shape`,
          );
        }
      }
      const errors = statuses.filter((s) => !s.startsWith('2'));
      assert.ok(
        errors.some((s) => s.startsWith('4') || s === '503'),
        `${where}: error answers (${statuses})`,
      );
      for (const status of errors) {
        assert.deepEqual(
          op.responses[status].content['application/json'].schema,
          { $ref: '#/components/schemas/Error' },
          `${where} ${status}`,
        );
        assert.ok(op.responses[status].description.length > 10, `${where} ${status}: says when`);
      }
      if (path !== '/health') {
        for (const status of ['401', '500']) assert.ok(op.responses[status], `${where}: ${status}`);
      }
      if (method !== 'get') {
        for (const status of ['400', '413', '415'])
          assert.ok(op.responses[status], `${where}: ${status} (reads a body)`);
      }
      if (path !== '/health' && path !== '/metrics')
        assert.ok(op.responses['429']?.headers?.['Retry-After'], `${where}: 429 with Retry-After`);
    }
  });

  it('the error schema is shared and its code is the union of the codes the server uses', () => {
    const error = doc.components.schemas.Error;
    const codes: string[] = error.properties.error.properties.code.enum;
    assert.deepEqual([...codes].sort(), Object.keys(ERROR_STATUS).sort());
    for (const code of API_MD_CODES) assert.ok(codes.includes(code), `${code} of API.md`);
    assert.deepEqual(error.required, ['success', 'error']);
  });

  it('security is declared: bearer, optional without authentication; /health needs none; admin routes need a key', async () => {
    assert.deepEqual(doc.components.securitySchemes.bearerAuth.scheme, 'bearer');
    assert.deepEqual(doc.security, [{}, { bearerAuth: [] }]);
    assert.deepEqual(doc.paths['/health'].get.security, []);
    for (const { path, method, op } of operations(doc).filter((o) => o.path.startsWith('/accounts'))) {
      assert.deepEqual(op.security, [{ bearerAuth: [] }], `${method} ${path}`);
    }
    const withAuth = await startTestApp({ config: { adminKey: 'admin-key-for-tests-0123456789abcdef' } });
    try {
      await withAuth.app.server.ready();
      assert.deepEqual((withAuth.app.server.swagger() as Doc).security, [{ bearerAuth: [] }]);
    } finally {
      await withAuth.close();
    }
  });

  it('no request schema carries a default bound such as Number.MAX_SAFE_INTEGER', () => {
    const text = JSON.stringify(doc);
    assert.ok(!text.includes(String(Number.MAX_SAFE_INTEGER)), 'MAX_SAFE_INTEGER');
    assert.ok(!text.includes(String(-Number.MAX_SAFE_INTEGER)), '-MAX_SAFE_INTEGER');
  });

  it('every operation that takes a body has an example, and every example in the document validates', () => {
    let checked = 0;
    for (const { path, method, op } of operations(doc)) {
      const base = ['paths', path, method];
      const body = jsonBody(op);
      if (body) {
        assert.ok(body.example !== undefined, `${method.toUpperCase()} ${path}: an example to pre-fill`);
        const validate = checker.validator([...base, 'requestBody', 'content', 'application/json', 'schema']);
        assert.ok(
          validate(body.example),
          `${method} ${path} request example: ${JSON.stringify(validate.errors)}`,
        );
        checked++;
      }
      for (const [status, response] of Object.entries<any>(op.responses)) {
        const media = response.content?.['application/json'];
        if (media?.example === undefined) continue;
        const validate = checker.validator([
          ...base,
          'responses',
          status,
          'content',
          'application/json',
          'schema',
        ]);
        assert.ok(
          validate(media.example),
          `${method} ${path} ${status} example: ${JSON.stringify(validate.errors)}`,
        );
        checked++;
      }
    }
    assert.ok(checked >= 15, `${checked} examples`);
  });
});

describe('the seed', () => {
  it("is POST /jobs/create's example, and validates against the request schema", () => {
    for (const path of ['/jobs/create', '/jobs']) {
      const body = jsonBody(doc.paths[path].post);
      assert.deepEqual(body.example, SEED_REQUEST);
      const validate = checker.validator([
        'paths',
        path,
        'post',
        'requestBody',
        'content',
        'application/json',
        'schema',
      ]);
      assert.ok(validate(SEED_REQUEST), JSON.stringify(validate.errors));
      for (const field of Object.keys(SEED_REQUEST))
        assert.ok(body.schema.required.includes(field), `${field} is required`);
    }
  });

  it("its answers fit the document: the 201's fields are required fields of a job, the 400 is the error schema", () => {
    const job = doc.components.schemas.Job;
    for (const [field, value] of Object.entries(SEED_CREATED.data)) {
      assert.ok(job.required.includes(field), `${field} is always in a job`);
      const validate = checker.validator(['components', 'schemas', 'Job', 'properties', field]);
      assert.ok(validate(value), `${field}: ${JSON.stringify(validate.errors)}`);
    }
    assert.equal(checker.validator(['components', 'schemas', 'Error'])(SEED_ERROR), true);
    const created = doc.paths['/jobs/create'].post.responses['201'].content['application/json'];
    assert.equal(created.example.message, SEED_CREATED.message);
    for (const [field, value] of Object.entries(SEED_CREATED.data))
      assert.equal(created.example.data[field], value, field);
  });
});

describe('"Try it out" as pre-filled', () => {
  it('every pre-filled body is accepted, against a server set up like `kbsync demo`', async () => {
    const example = (path: string, method = 'post') => jsonBody(doc.paths[path][method]).example;
    assert.equal(
      (
        await t.request('POST', '/databases', {
          name: 'orders_db',
          engine: 'sqlite',
          parameters: { path: makeSqliteSource(t.dataDir) },
        })
      ).status,
      201,
    );
    assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'orders_kb' })).status, 201);

    const job = await t.request('POST', '/jobs/create', example('/jobs/create'));
    assert.equal(job.status, 201, JSON.stringify(job.body));
    // The seed's window has ended: created honestly as completed, with a warning.
    assert.equal(job.body.data.status, 'completed');
    assert.equal(job.body.data.warnings.length, 1);
    const patched = await t.request('PATCH', '/jobs/sync_orders', example('/jobs/{job}', 'patch'));
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    const estimate = await t.request('POST', '/jobs/sync_orders/estimate', example('/jobs/{job}/estimate'));
    assert.equal(estimate.status, 200, JSON.stringify(estimate.body));
    assert.equal(estimate.body.data.documents, 20);

    const kb = await t.request('POST', '/knowledge_bases/create', example('/knowledge_bases/create'));
    assert.equal(kb.status, 201, JSON.stringify(kb.body));
    const kbName = kb.body.data.kb_name;
    const docs = await t.request(
      'POST',
      `/knowledge_bases/${kbName}/documents`,
      example('/knowledge_bases/{kb}/documents'),
    );
    assert.equal(docs.status, 200, JSON.stringify(docs.body));
    const query = await t.request(
      'POST',
      `/knowledge_bases/${kbName}/query`,
      example('/knowledge_bases/{kb}/query'),
    );
    assert.equal(query.status, 200, JSON.stringify(query.body));
    assert.equal(query.body.data.results.length, 1);
  });

  it('the admin example creates an account (authentication on)', async () => {
    const admin = 'admin-key-for-tests-0123456789abcdef';
    const a = await startTestApp({ config: { adminKey: admin } });
    try {
      await a.app.server.ready();
      const body = jsonBody((a.app.server.swagger() as Doc).paths['/accounts'].post).example;
      const res = await a.request('POST', '/accounts', body, { authorization: `Bearer ${admin}` });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.match(res.body.data.api_key, /^kbs_/);
      assert.equal((await a.request('GET', '/jobs')).status, 401, 'no key');
      assert.equal(
        (await a.request('GET', '/jobs', undefined, { authorization: `Bearer ${res.body.data.api_key}` }))
          .status,
        200,
      );
      assert.equal(
        (await a.request('GET', '/accounts/nobody/keys', undefined, { authorization: `Bearer ${admin}` }))
          .status,
        404,
      );
    } finally {
      await a.close();
    }
  });
});

describe('request schemas are as strict as the server', () => {
  /** [what, body]: the schema's verdict must be the server's (201/200 accepted, 400 refused). */
  const job = (overrides: Record<string, unknown>) => ({
    ...SEED_REQUEST,
    start_time: '2030-06-19T18:00:00',
    end_time: '2030-06-20T18:00:00',
    ...overrides,
  });
  const cases: Array<[string, Record<string, unknown>]> = [
    ['the seed, in the future', job({})],
    ['interval in lower case, spaced', job({ interval: '  10   minutes ' })],
    ['interval HOURLY in mixed case', job({ interval: 'Hourly' })],
    ['interval of 1 DAY', job({ interval: '1 DAY' })],
    ['interval in seconds', job({ interval: '30 SECONDS' })],
    ['interval of 0 minutes', job({ interval: '0 MINUTES' })],
    ['interval without a unit', job({ interval: '10' })],
    ['interval as a number', job({ interval: 10 })],
    ['start_time with an offset', job({ start_time: '2030-06-19T20:00:00+02:00' })],
    ['start_time as a date', job({ start_time: '2030-06-19' })],
    ['start_time with fractions', job({ start_time: '2030-06-19T18:00:00.250Z' })],
    ['start_time in words', job({ start_time: 'tomorrow' })],
    ['start_time US style', job({ start_time: '06/19/2030 18:00' })],
    ['lookback in minutes', job({ lookback: '5 MINUTES' })],
    ['lookback in seconds', job({ lookback: 120 })],
    ['lookback in weeks', job({ lookback: '1 WEEK' })],
    ['lookback over 366 days', job({ lookback: 366 * 86_400 + 1 })],
    ['negative lookback', job({ lookback: -1 })],
    ['batch_size 0', job({ batch_size: 0 })],
    ['an unknown field', job({ conten_columns: ['product'] })],
    ['no job_name', (({ job_name: _, ...rest }) => rest)(job({}))],
    ['job_name with a space', job({ job_name: 'sync orders' })],
    ['empty content_columns', job({ content_columns: [] })],
  ];

  it('POST /jobs/create: the schema accepts exactly what the server accepts', async () => {
    assert.equal(
      (
        await t.request('POST', '/databases', {
          name: 'strict_db',
          engine: 'sqlite',
          parameters: { path: makeSqliteSource(t.dataDir) },
        })
      ).status,
      201,
    );
    const validate = checker.validator([
      'paths',
      '/jobs/create',
      'post',
      'requestBody',
      'content',
      'application/json',
      'schema',
    ]);
    let i = 0;
    for (const [what, body] of cases) {
      // Each accepted job in a knowledge base of its own (a knowledge base receives one table).
      const kb = `strict_kb_${i}`;
      assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: kb })).status, 201);
      const sent = {
        ...body,
        source_table: 'strict_db.orders',
        kb_name: kb,
        ...('job_name' in body ? { job_name: `strict_${i}` } : {}),
      };
      i++;
      const res = await t.request('POST', '/jobs/create', sent);
      assert.ok(
        res.status === 201 || res.status === 400,
        `${what}: ${res.status} ${JSON.stringify(res.body)}`,
      );
      assert.equal(
        validate(sent),
        res.status === 201,
        `${what}: schema says ${validate(sent)}, server ${res.status} ${JSON.stringify(res.body.error ?? {})}`,
      );
    }
  });

  it('PATCH /jobs/{job}: an empty body is refused by both', async () => {
    const validate = checker.validator([
      'paths',
      '/jobs/{job}',
      'patch',
      'requestBody',
      'content',
      'application/json',
      'schema',
    ]);
    assert.equal(validate({}), false, 'minProperties');
    const res = await t.request('PATCH', '/jobs/strict_0', {});
    assert.equal(res.status, 400);
    assert.deepEqual(res.body.error.details, ['body must change at least one field']);
    assert.equal(validate({ interval: '2 HOURS' }), true);
  });

  it('knowledge bases and queries: the bounds the server checks are in the schema', async () => {
    const kb = checker.validator([
      'paths',
      '/knowledge_bases/create',
      'post',
      'requestBody',
      'content',
      'application/json',
      'schema',
    ]);
    const query = checker.validator([
      'paths',
      '/knowledge_bases/{kb}/query',
      'post',
      'requestBody',
      'content',
      'application/json',
      'schema',
    ]);
    const kbCases: Array<Record<string, unknown>> = [
      { kb_name: 'ok_kb', chunking: { chunk_size: 8000, chunk_overlap: 3999 } },
      { kb_name: 'big_overlap', chunking: { chunk_size: 8000, chunk_overlap: 4000 } },
      { kb_name: '1starts_with_digit' },
      { kb_name: 'bad_provider', embedding: { provider: 'cohere' } },
    ];
    for (const body of kbCases) {
      const res = await t.request('POST', '/knowledge_bases', body);
      assert.equal(kb(body), res.status === 201, `${JSON.stringify(body)}: server ${res.status}`);
    }
    for (const body of [
      { query: 'boots' },
      { query: '   ' },
      { query: 'x', top_k: 0 },
      { query: 'x', top_k: 100 },
      { query: 'x', mode: 'fuzzy' },
    ]) {
      const res = await t.request('POST', '/knowledge_bases/ok_kb/query', body);
      assert.equal(query(body), res.status === 200, `${JSON.stringify(body)}: server ${res.status}`);
    }
  });
});

describe('the checker catches a document that lies', () => {
  it('a missing field, an extra field, an undocumented status or route all fail', async () => {
    const answer = await t.request('GET', '/jobs/strict_0');
    const real = { status: answer.status, contentType: 'application/json; charset=utf-8', body: answer.body };
    assert.deepEqual(checker.check('GET', '/jobs/strict_0', real), []);

    const lying = structuredClone(doc);
    delete lying.components.schemas.Job.properties.batch_size;
    lying.components.schemas.Job.required = lying.components.schemas.Job.required.filter(
      (f: string) => f !== 'batch_size',
    );
    assert.match(
      new OpenApiChecker(lying).check('GET', '/jobs/strict_0', real).join(),
      /additional properties/,
    );

    const missing = structuredClone(doc);
    missing.components.schemas.Job.properties.lag_seconds = { type: 'integer' };
    missing.components.schemas.Job.required.push('lag_seconds');
    assert.match(new OpenApiChecker(missing).check('GET', '/jobs/strict_0', real).join(), /lag_seconds/);

    const noStatus = structuredClone(doc);
    delete noStatus.paths['/jobs/{job}'].get.responses['200'];
    assert.match(
      new OpenApiChecker(noStatus).check('GET', '/jobs/strict_0', real).join(),
      /status 200 is not documented/,
    );

    const noRoute = structuredClone(doc);
    delete noRoute.paths['/jobs/{job}'].get;
    assert.match(
      new OpenApiChecker(noRoute).check('GET', '/jobs/strict_0', real).join(),
      /undocumented route/,
    );

    // An unknown route's 404 is the server's documented answer, not a lie.
    const unknown = await t.request('GET', '/no/such/route');
    assert.equal(unknown.status, 404);
  });
});
