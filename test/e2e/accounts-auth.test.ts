/**
 * Accounts and API keys (API.md, "Accounts and keys"; issue 8, point 6): with KBSYNC_ADMIN_KEY
 * set, two accounts each own their databases, knowledge bases and jobs under the same names;
 * neither can see, change or run the other's (404), each has its own active-job limit; missing,
 * wrong and revoked keys get 401; admin routes take the admin key only; keys never reach the
 * store file; a real process binds to 0.0.0.0 with auth on and refuses to without it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { type App, createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { isoIn, makeSqliteSource, startTestApp, tempDir } from '../helpers/app.js';
import { killAllServers, startServer } from '../helpers/process.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const ADMIN = 'admin-key-for-tests-0123456789abcdef';

type Answer = { status: number; body: any; headers: Record<string, unknown> };

/** An app configured through the environment, as `kbsync serve` would be. */
async function startAuthApp(
  dataDir: string,
  sources: string,
  extra: Record<string, string> = {},
): Promise<App> {
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    KBSYNC_DATA_DIR: dataDir,
    KBSYNC_SCHEDULER: 'off',
    KBSYNC_ADMIN_KEY: ADMIN,
    KBSYNC_MAX_ACTIVE_JOBS: '3',
    // Where SQLite sources may live once sources are confined (issue 8, point 5); ignored before.
    KBSYNC_SQLITE_ROOTS: sources,
    ...extra,
  } as NodeJS.ProcessEnv);
  return createApp(config);
}

function client(app: App) {
  return async (
    method: string,
    url: string,
    key: string | null,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Answer> => {
    const res = await app.server.inject({
      method: method as 'GET',
      url,
      headers: { ...(key === null ? {} : { authorization: `Bearer ${key}` }), ...headers },
      ...(body === undefined ? {} : { payload: body as object }),
    });
    let parsed: unknown = res.body;
    try {
      parsed = res.json();
    } catch {
      // not JSON (metrics)
    }
    return { status: res.statusCode, body: parsed, headers: res.headers };
  };
}

const jobBody = (name: string, kb = 'kb', db = 'src') => ({
  job_name: name,
  source_table: `${db}.orders`,
  kb_name: kb,
  content_columns: ['product'],
  filter_column: 'created_at',
  interval: '1 HOUR',
  start_time: isoIn(60),
  end_time: isoIn(600),
});

function assertUnauthorized(res: Answer, what: string): void {
  assert.equal(res.status, 401, `${what}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.success, false, what);
  assert.equal(res.body.error.code, 'UNAUTHORIZED', what);
  assert.equal(res.headers['www-authenticate'], 'Bearer', what);
}

describe('accounts and API keys (auth on)', () => {
  const dataDir = tempDir();
  const sources = tempDir('kbsync-sources-');
  let app: App;
  let call: ReturnType<typeof client>;
  const keys: Record<'alpha' | 'bravo', string> = { alpha: '', bravo: '' };
  const ids: Record<'alpha' | 'bravo', string> = { alpha: '', bravo: '' };
  /** Every key the test saw, to look for in the store file at the end. */
  const seen: string[] = [];

  before(async () => {
    app = await startAuthApp(dataDir, sources);
    call = client(app);
  });
  after(async () => {
    await app.close();
  });

  it('/health needs no key; everything else does, and every failure looks the same', async () => {
    assert.equal((await call('GET', '/health', null)).status, 200);
    const answers = [
      await call('GET', '/jobs', null),
      await call('GET', '/jobs', 'kbs_not-a-real-key-at-all'),
      await call('GET', '/jobs', null, undefined, {
        authorization: `Basic ${Buffer.from(`x:${ADMIN}`).toString('base64')}`,
      }),
      await call('GET', '/jobs', null, undefined, { authorization: 'Bearer' }),
      await call('GET', '/databases', ''),
      await call('GET', '/no/such/route', null),
      await call('GET', '/openapi.json', null),
      await call('GET', '/metrics', null),
    ];
    for (const [i, res] of answers.entries()) assertUnauthorized(res, `request ${i}`);
    // No hint which part was wrong: the same body for every failure.
    const bodies = new Set(answers.map((a) => JSON.stringify(a.body)));
    assert.equal(bodies.size, 1, [...bodies].join('\n'));
    // The admin key is not an account's key.
    assertUnauthorized(await call('GET', '/jobs', ADMIN), 'admin key on an account route');
    assert.equal((await call('GET', '/metrics', ADMIN)).status, 200);
    assert.equal((await call('GET', '/openapi.json', ADMIN)).status, 200);
  });

  it('the admin creates accounts; each gets a kbs_ key shown once', async () => {
    assertUnauthorized(await call('POST', '/accounts', null, { name: 'alpha' }), 'anonymous');
    assertUnauthorized(await call('POST', '/accounts', `${ADMIN}x`, { name: 'alpha' }), 'wrong admin key');
    for (const name of ['alpha', 'bravo'] as const) {
      const res = await call('POST', '/accounts', ADMIN, { name });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.equal(res.body.data.name, name);
      assert.match(res.body.data.account_id, /^acct_/);
      assert.match(res.body.data.api_key, /^kbs_[A-Za-z0-9_-]{43}$/);
      assert.ok(res.body.data.api_key.startsWith(res.body.data.prefix));
      keys[name] = res.body.data.api_key;
      ids[name] = res.body.data.account_id;
      seen.push(res.body.data.api_key);
    }
    assert.notEqual(keys.alpha, keys.bravo);
    const dup = await call('POST', '/accounts', ADMIN, { name: 'alpha' });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.code, 'CONFLICT');
    const bad = await call('POST', '/accounts', ADMIN, { name: '', extra: 1 });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'INVALID_REQUEST');

    // An account's key does not open admin routes.
    assertUnauthorized(await call('GET', '/accounts', keys.alpha), 'account key on GET /accounts');
    assertUnauthorized(
      await call('POST', '/accounts', keys.alpha, { name: 'mallory' }),
      'account key on POST /accounts',
    );
    assertUnauthorized(
      await call('POST', `/accounts/${ids.alpha}/keys`, keys.alpha),
      'account key creating keys',
    );
    assertUnauthorized(
      await call('GET', `/accounts/${ids.alpha}/keys`, keys.alpha),
      'account key listing keys',
    );
    assertUnauthorized(await call('GET', '/metrics', keys.alpha), 'account key on /metrics');

    const list = await call('GET', '/accounts', ADMIN);
    assert.equal(list.status, 200);
    assert.deepEqual(
      list.body.data.accounts.map((a: { name: string }) => a.name),
      ['default', 'alpha', 'bravo'],
    );
    assert.ok(list.body.data.accounts.every((a: Record<string, unknown>) => !('api_key' in a)));
  });

  it('both accounts create a database, a knowledge base and a job with the same names', async () => {
    for (const name of ['alpha', 'bravo'] as const) {
      const key = keys[name];
      const file = makeSqliteSource(sources);
      const db = await call('POST', '/databases', key, {
        name: 'src',
        engine: 'sqlite',
        parameters: { path: file },
      });
      assert.equal(db.status, 201, `${name} database: ${JSON.stringify(db.body)}`);
      const kb = await call('POST', '/knowledge_bases', key, { kb_name: 'kb', description: `${name}'s` });
      assert.equal(kb.status, 201, `${name} kb: ${JSON.stringify(kb.body)}`);
      const job = await call('POST', '/jobs', key, jobBody('job1'));
      assert.equal(job.status, 201, `${name} job: ${JSON.stringify(job.body)}`);
    }
    // Listings show only one's own.
    for (const name of ['alpha', 'bravo'] as const) {
      const key = keys[name];
      const kbs = await call('GET', '/knowledge_bases', key);
      assert.deepEqual(
        kbs.body.data.knowledge_bases.map((k: { kb_name: string; description: string }) => [
          k.kb_name,
          k.description,
        ]),
        [['kb', `${name}'s`]],
      );
      const dbs = await call('GET', '/databases', key);
      assert.equal(dbs.body.data.databases.length, 1);
      const jobs = await call('GET', '/jobs', key);
      assert.equal(jobs.body.data.jobs.length, 1);
      assert.equal(jobs.body.data.jobs[0].job_name, 'job1');
    }
    const a = (await call('GET', '/jobs/job1', keys.alpha)).body.data.job_id;
    const b = (await call('GET', '/jobs/job1', keys.bravo)).body.data.job_id;
    assert.notEqual(a, b, 'two different jobs');
  });

  it("neither can see, change or run the other's objects: 404, never 403", async () => {
    const alpha = keys.alpha;
    assert.equal(
      (
        await call('POST', '/databases', alpha, {
          name: 'alpha_db',
          engine: 'sqlite',
          parameters: { path: makeSqliteSource(sources) },
        })
      ).status,
      201,
    );
    assert.equal((await call('POST', '/knowledge_bases', alpha, { kb_name: 'alpha_kb' })).status, 201);
    assert.equal(
      (
        await call('POST', '/knowledge_bases/alpha_kb/documents', alpha, {
          documents: [{ id: 'd1', content: 'alpha secret plans' }],
        })
      ).status,
      200,
    );
    const job = await call('POST', '/jobs', alpha, jobBody('alpha_job', 'alpha_kb', 'alpha_db'));
    assert.equal(job.status, 201, JSON.stringify(job.body));
    const alphaJobId = job.body.data.job_id;
    const alphaJob1 = (await call('GET', '/jobs/job1', alpha)).body.data.job_id;

    const bravo = keys.bravo;
    const attempts: Array<[string, string, unknown?]> = [
      ['GET', '/databases/alpha_db'],
      ['GET', '/databases/alpha_db/tables'],
      ['DELETE', '/databases/alpha_db'],
      ['GET', '/knowledge_bases/alpha_kb'],
      ['DELETE', '/knowledge_bases/alpha_kb'],
      ['GET', '/knowledge_bases/alpha_kb/documents'],
      ['POST', '/knowledge_bases/alpha_kb/documents', { documents: [{ id: 'd2', content: 'x' }] }],
      ['DELETE', '/knowledge_bases/alpha_kb/documents/d1'],
      ['POST', '/knowledge_bases/alpha_kb/query', { query: 'plans' }],
      ['GET', '/jobs/alpha_job'],
      ['GET', `/jobs/${alphaJobId}`],
      ['GET', `/jobs/${alphaJob1}`],
      ['PATCH', `/jobs/${alphaJobId}`, { batch_size: 10 }],
      ['PATCH', '/jobs/alpha_job', { batch_size: 10 }],
      ['POST', `/jobs/${alphaJobId}/run`],
      ['POST', `/jobs/${alphaJob1}/run`],
      ['POST', `/jobs/${alphaJobId}/pause`],
      ['POST', `/jobs/${alphaJobId}/resume`],
      ['GET', `/jobs/${alphaJobId}/runs`],
      ['GET', `/jobs/${alphaJobId}/failures`],
      ['POST', `/jobs/${alphaJobId}/failures/retry`],
      ['DELETE', `/jobs/${alphaJobId}`],
      ['DELETE', `/jobs/${alphaJob1}`],
    ];
    for (const [method, url, body] of attempts) {
      const res = await call(method, url, bravo, body);
      assert.equal(
        res.status,
        404,
        `${method} ${url} with bravo's key: ${res.status} ${JSON.stringify(res.body)}`,
      );
      assert.equal(res.body.error.code, 'NOT_FOUND', `${method} ${url}`);
      assert.notEqual(res.body.error.message, 'Route not found', `${method} ${url} is a real route`);
    }
    // A job of bravo's cannot target alpha's knowledge base or database either.
    const cross = await call('POST', '/jobs', bravo, jobBody('sneaky', 'alpha_kb', 'alpha_db'));
    assert.equal(cross.status, 400, JSON.stringify(cross.body));

    // Alpha's objects are untouched.
    assert.equal((await call('GET', '/databases/alpha_db', alpha)).status, 200);
    const kb = await call('GET', '/knowledge_bases/alpha_kb', alpha);
    assert.equal(kb.body.data.document_count, 1);
    const after = await call('GET', '/jobs/alpha_job', alpha);
    assert.equal(after.body.data.status, 'scheduled');
    assert.notEqual(after.body.data.batch_size, 10);
    assert.deepEqual((await call('GET', '/jobs/alpha_job/runs', alpha)).body.data.runs, []);
    assert.equal((await call('GET', '/jobs/job1', alpha)).body.data.job_id, alphaJob1);
    // And the objects created without a key (the default account) are nobody's here.
    assert.equal((await call('GET', '/jobs', alpha)).body.data.jobs.length, 2);
  });

  it('each account has its own active-job limit', async () => {
    // KBSYNC_MAX_ACTIVE_JOBS=3: alpha has 2 active jobs, bravo 1.
    assert.equal((await call('POST', '/jobs', keys.alpha, jobBody('alpha_3'))).status, 201);
    const refused = await call('POST', '/jobs', keys.alpha, jobBody('alpha_4'));
    assert.equal(refused.status, 429);
    assert.equal(refused.body.error.code, 'JOB_LIMIT_EXCEEDED');
    // Alpha being full does not stop bravo.
    assert.equal((await call('POST', '/jobs', keys.bravo, jobBody('bravo_2'))).status, 201);
    assert.equal((await call('POST', '/jobs', keys.bravo, jobBody('bravo_3'))).status, 201);
    assert.equal((await call('POST', '/jobs', keys.bravo, jobBody('bravo_4'))).status, 429);
    // Freeing one of bravo's slots frees none of alpha's.
    assert.equal((await call('DELETE', '/jobs/bravo_3', keys.bravo)).status, 200);
    assert.equal((await call('POST', '/jobs', keys.alpha, jobBody('alpha_4'))).status, 429);
    assert.equal((await call('POST', '/jobs', keys.bravo, jobBody('bravo_4'))).status, 201);
  });

  it('keys are created, listed by prefix only and revoked at once', async () => {
    const created = await call('POST', '/accounts/alpha/keys', ADMIN);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const second = created.body.data.api_key as string;
    seen.push(second);
    assert.equal(created.body.data.account_id, ids.alpha);
    assert.equal((await call('GET', '/jobs', second)).status, 200, 'a new key works at once');

    const listed = await call('GET', `/accounts/${ids.alpha}/keys`, ADMIN);
    assert.equal(listed.status, 200);
    const rows = listed.body.data.keys as Array<Record<string, unknown>>;
    assert.equal(rows.length, 2);
    for (const row of rows) {
      assert.deepEqual(Object.keys(row).sort(), ['created_at', 'key_id', 'prefix', 'revoked_at']);
      assert.equal(row.revoked_at, null);
      assert.match(String(row.prefix), /^kbs_.{8}$/);
    }
    assert.ok(!JSON.stringify(listed.body).includes(keys.alpha), 'the key itself is never listed');
    const firstId = rows.find((r) => keys.alpha.startsWith(String(r.prefix)))!.key_id as string;

    // Revoking through another account's path finds nothing.
    assert.equal((await call('DELETE', `/accounts/bravo/keys/${firstId}`, ADMIN)).status, 404);
    assert.equal((await call('DELETE', '/accounts/alpha/keys/key_nope', ADMIN)).status, 404);
    assert.equal((await call('GET', '/accounts/nobody/keys', ADMIN)).status, 404);
    assertUnauthorized(
      await call('DELETE', `/accounts/alpha/keys/${firstId}`, keys.bravo),
      'account key revoking',
    );

    assert.equal((await call('GET', '/jobs', keys.alpha)).status, 200);
    const revoked = await call('DELETE', `/accounts/alpha/keys/${firstId}`, ADMIN);
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    assert.equal(typeof revoked.body.data.revoked_at, 'string');
    assertUnauthorized(await call('GET', '/jobs', keys.alpha), 'revoked key');
    assertUnauthorized(await call('GET', '/knowledge_bases/kb', keys.alpha), 'revoked key');
    assert.equal((await call('GET', '/jobs', second)).status, 200, 'the other key still works');
    assert.equal((await call('GET', '/jobs', keys.bravo)).status, 200, "bravo's key still works");
    // Revoking again changes nothing.
    const again = await call('DELETE', `/accounts/alpha/keys/${firstId}`, ADMIN);
    assert.equal(again.body.data.revoked_at, revoked.body.data.revoked_at);
    const after = (await call('GET', '/accounts/alpha/keys', ADMIN)).body.data.keys as Array<{
      key_id: string;
      revoked_at: string | null;
    }>;
    assert.equal(after.find((k) => k.key_id === firstId)?.revoked_at, revoked.body.data.revoked_at);
  });

  it('OpenAPI declares the bearer scheme and the admin routes', async () => {
    const doc = (await call('GET', '/openapi.json', keys.bravo)).body;
    assert.deepEqual(doc.components.securitySchemes.bearerAuth, {
      type: 'http',
      scheme: 'bearer',
      description: doc.components.securitySchemes.bearerAuth.description,
    });
    assert.deepEqual(doc.security, [{ bearerAuth: [] }]);
    assert.deepEqual(doc.paths['/health'].get.security, []);
    for (const [p, m] of [
      ['/accounts', 'post'],
      ['/accounts', 'get'],
      ['/accounts/{id}/keys', 'post'],
      ['/accounts/{id}/keys', 'get'],
      ['/accounts/{id}/keys/{key_id}', 'delete'],
    ] as const) {
      const op = doc.paths[p]?.[m];
      assert.ok(op, `${m} ${p} documented`);
      assert.deepEqual(op.security, [{ bearerAuth: [] }], `${m} ${p}`);
      assert.ok(op.summary && op.tags.includes('accounts'), `${m} ${p}`);
      assert.ok(op.responses['401'], `${m} ${p} documents 401`);
    }
  });

  it('neither the API keys nor the admin key are in the store files', async () => {
    const files = () =>
      fs
        .readdirSync(dataDir)
        .filter((f) => f.startsWith('kbsync.db'))
        .map((f) => path.join(dataDir, f));
    const check = (when: string) => {
      const names = files();
      assert.ok(
        names.some((f) => f.endsWith('kbsync.db')),
        when,
      );
      for (const file of names) {
        const bytes = fs.readFileSync(file);
        for (const secret of [...seen, ADMIN]) {
          assert.equal(
            bytes.indexOf(Buffer.from(secret, 'utf8')),
            -1,
            `${when}: a key is in ${path.basename(file)}`,
          );
          // The part after the shown prefix, too.
          assert.equal(
            bytes.indexOf(Buffer.from(secret.slice(12), 'utf8')),
            -1,
            `${when}: part of a key is in ${path.basename(file)}`,
          );
        }
      }
    };
    check('while running (the -wal holds the recent writes)');
    assert.ok(
      files().some((f) => f.endsWith('-wal')),
      'the WAL was read as well',
    );
    await app.close();
    check('after close');
    app = await startAuthApp(dataDir, sources);
    call = client(app);
    assert.equal((await call('GET', '/jobs', keys.bravo)).status, 200, 'keys survive a restart (by hash)');
    assertUnauthorized(await call('GET', '/jobs', keys.alpha), 'a revoked key stays revoked after a restart');
  });
});

describe('the default account', () => {
  it('without an admin key every request is the default account and admin routes are refused', async () => {
    const t = await startTestApp();
    try {
      assert.equal((await t.request('GET', '/jobs')).status, 200);
      assert.equal((await t.request('GET', '/metrics')).status, 200);
      const res = await t.request('POST', '/accounts', { name: 'alpha' });
      assert.equal(res.status, 401);
      assert.equal(res.body.error.code, 'UNAUTHORIZED');
      assert.match(res.body.error.details[0], /KBSYNC_ADMIN_KEY/);
      assert.equal((await t.request('GET', '/accounts')).status, 401);
      const doc = (await t.request('GET', '/openapi.json')).body;
      assert.ok(doc.components.securitySchemes.bearerAuth, 'the scheme is declared');
      // Declared, and optional (`{}`: no key needed) without auth (issue 10, point 5).
      assert.deepEqual(doc.security, [{}, { bearerAuth: [] }], 'a key is optional without auth');
    } finally {
      await t.close();
    }
  });

  it('what was created without auth belongs to the account `default` once auth is on', async () => {
    const dataDir = tempDir();
    const sources = tempDir('kbsync-sources-');
    const open = await startTestApp({ dataDir });
    assert.equal(
      (await open.request('POST', '/knowledge_bases', { kb_name: 'legacy_kb', description: 'from before' }))
        .status,
      201,
    );
    await open.close();

    const app = await startAuthApp(dataDir, sources);
    const call = client(app);
    try {
      const other = (await call('POST', '/accounts', ADMIN, { name: 'newcomer' })).body.data.api_key;
      assert.equal((await call('GET', '/knowledge_bases/legacy_kb', other)).status, 404);
      assert.equal(
        (await call('POST', '/accounts', ADMIN, { name: 'default' })).status,
        409,
        'the name is taken',
      );
      const key = await call('POST', '/accounts/default/keys', ADMIN);
      assert.equal(key.status, 201);
      assert.equal(key.body.data.account_id, 'default');
      const kb = await call('GET', '/knowledge_bases/legacy_kb', key.body.data.api_key);
      assert.equal(kb.status, 200);
      assert.equal(kb.body.data.description, 'from before');
    } finally {
      await app.close();
    }
  });
});

describe('a real process', () => {
  after(() => killAllServers());

  it('binds to 0.0.0.0 with KBSYNC_ADMIN_KEY, and `kbsync keys create` makes a key it accepts', async () => {
    const dataDir = tempDir();
    const server = await startServer(dataDir, {
      HOST: '0.0.0.0',
      KBSYNC_ADMIN_KEY: ADMIN,
      KBSYNC_INSECURE_BIND: 'off',
      KBSYNC_SCHEDULER: 'off',
    });
    try {
      const get = (url: string, key?: string) =>
        fetch(`${server.baseUrl}${url}`, {
          headers: key ? { authorization: `Bearer ${key}` } : {},
          signal: AbortSignal.timeout(10_000),
        });
      assert.equal((await get('/health')).status, 200);
      const anonymous = await get('/jobs');
      assert.equal(anonymous.status, 401);
      assert.equal(((await anonymous.json()) as any).error.code, 'UNAUTHORIZED');

      const cli = spawnSync(
        process.execPath,
        ['--import', 'tsx', 'src/cli.ts', 'keys', 'create', '--account', 'ops'],
        {
          cwd: ROOT,
          env: { ...process.env, KBSYNC_DATA_DIR: dataDir },
          encoding: 'utf8',
          timeout: 60_000,
        },
      );
      assert.equal(cli.status, 0, cli.stderr);
      const key = cli.stdout.trim();
      assert.match(key, /^kbs_[A-Za-z0-9_-]{43}$/);
      assert.match(cli.stderr, /created account ops/);
      const jobs = await get('/jobs', key);
      assert.equal(jobs.status, 200, await jobs.clone().text());
      assert.deepEqual(((await jobs.json()) as any).data.jobs, []);
      const accounts = await get('/accounts', ADMIN);
      assert.equal(accounts.status, 200);
      assert.ok(
        ((await accounts.json()) as any).data.accounts.some((a: { name: string }) => a.name === 'ops'),
      );
    } finally {
      await server.stop();
    }
  });

  it('refuses a non-loopback bind without KBSYNC_ADMIN_KEY, and a short admin key', async () => {
    await assert.rejects(
      startServer(tempDir(), { HOST: '0.0.0.0', KBSYNC_ADMIN_KEY: '', KBSYNC_INSECURE_BIND: 'off' }),
      /HOST=0\.0\.0\.0 is not a loopback address.*KBSYNC_ADMIN_KEY/s,
    );
    await assert.rejects(
      startServer(tempDir(), { HOST: '0.0.0.0', KBSYNC_ADMIN_KEY: 'short', KBSYNC_INSECURE_BIND: 'off' }),
      /KBSYNC_ADMIN_KEY is too short/,
    );
  });
});
