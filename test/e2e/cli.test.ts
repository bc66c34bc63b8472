/**
 * The `kbsync` command line end to end: the real binary (`node --import tsx src/cli.ts`) against
 * a real `kbsync demo` started as a child process on a temp data dir, with the real local
 * embedding model. What a user does: paste the demo's job, list it, run one with `--wait`, query
 * the knowledge base; a failing run, a wrong API key, a server that is not there, a port in use.
 * Exit codes are the contract (docs/cli.md): 0 ok, 1 server error, 2 usage, 3 cannot connect,
 * 4 run failed, 5 port in use.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { frameOf, renderFrame } from '../../src/cli/progress.js';
import { tempDir } from '../helpers/app.js';
import { freePort, killAllServers, poll, startServer } from '../helpers/process.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `kbsync ARGS` to its end (no timing asserted; the timeout only stops a hung child). */
function kbsync(args: string[], env: Record<string, string> = {}, timeoutMs = 240_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'warn', ...env };
    // The developer's own settings must not leak into what is tested.
    if (!('KBSYNC_API_KEY' in env)) delete childEnv.KBSYNC_API_KEY;
    if (!('KBSYNC_URL' in env)) delete childEnv.KBSYNC_URL;
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
      cwd: ROOT,
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const show = (r: CliResult) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

/** The JSON body of the curl the demo prints (between -d ' and the closing '). */
function curlBody(banner: string): Record<string, unknown> {
  const match = /-d '(\{[\s\S]*?\})'/.exec(banner);
  assert.ok(match, `no curl body in:\n${banner}`);
  return JSON.parse(match[1]!) as Record<string, unknown>;
}

describe('kbsync CLI against a demo server', () => {
  let demo: ChildProcess | null = null;
  let demoStderr = '';
  let base = '';
  let dataDir = '';
  let bannerAt = 0;
  const api = (args: string[], env: Record<string, string> = {}) =>
    kbsync(args, { KBSYNC_URL: base, ...env });

  before(async () => {
    dataDir = tempDir('kbsync-cli-');
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    demo = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'demo'], {
      cwd: ROOT,
      env: {
        ...process.env,
        PORT: String(port),
        HOST: '127.0.0.1',
        KBSYNC_DATA_DIR: dataDir,
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    demo.stderr?.on('data', (d: Buffer) => {
      demoStderr += d.toString();
    });
    await poll(
      'the demo to print its start-up banner',
      async () => (demoStderr.includes('then, from another terminal') ? true : undefined),
      120_000,
      100,
    );
    bannerAt = Date.now();
  });

  after(async () => {
    demo?.kill('SIGKILL');
    await killAllServers();
  });

  it('prints one start-up line with the dashboard, the API docs and the data dir, and a curl to paste', async () => {
    const ready = demoStderr.split('\n').find((l) => l.includes(' ready on '));
    assert.ok(ready, demoStderr);
    assert.ok(ready.includes(`dashboard ${base}/`), ready);
    assert.ok(ready.includes(`API docs ${base}/docs`), ready);
    assert.ok(ready.includes(`data ${dataDir}`), ready);
    assert.throws(() => JSON.parse(ready), 'a human line, not JSON');
    assert.ok(demoStderr.includes(`curl -X POST "${base}/jobs/create"`), demoStderr);

    // Ready to paste: the printed body is the seed's, starting in the future, and the server takes it as is.
    const body = curlBody(demoStderr);
    assert.deepEqual(Object.keys(body), [
      'job_name',
      'source_table',
      'kb_name',
      'content_columns',
      'filter_column',
      'interval',
      'start_time',
      'end_time',
    ]);
    assert.equal(body.source_table, 'orders_db.orders');
    assert.match(String(body.start_time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:00$/);
    assert.ok(Date.parse(`${body.start_time}Z`) > bannerAt, `start_time ${body.start_time} is in the future`);
    const file = path.join(dataDir, 'pasted.json');
    fs.writeFileSync(file, JSON.stringify(body));
    const created = await api(['jobs', 'create', '--file', file]);
    assert.equal(created.code, 0, show(created));
    assert.match(created.stdout, /job sync_orders created \(job_\w+\): scheduled, next run /);
    // Paused at once so its scheduled run does not run beside the tests below.
    const paused = await api(['jobs', 'pause', 'sync_orders']);
    assert.equal(paused.code, 0, show(paused));
    assert.match(paused.stdout, /job sync_orders paused: paused/);
  });

  it('--help and help list every command; a wrong command is a usage error (2)', async () => {
    const help = await kbsync(['--help']);
    assert.equal(help.code, 0, show(help));
    for (const command of [
      'kbsync serve',
      'kbsync demo',
      'kbsync jobs list',
      'kbsync jobs get <job>',
      'kbsync jobs create --file <file>',
      'kbsync jobs pause <job>',
      'kbsync jobs resume <job>',
      'kbsync jobs run <job>',
      'kbsync jobs delete <job>',
      'kbsync jobs runs <job>',
      'kbsync jobs failures <job>',
      'kbsync kb list',
      'kbsync kb get <kb>',
      'kbsync kb create <kb>',
      'kbsync kb query <kb> <text>',
      'kbsync db list',
      'kbsync db add --engine <engine> <name>',
      'kbsync db tables <name>',
      'kbsync keys create --account <name>',
    ]) {
      assert.ok(help.stdout.includes(command), `${command} missing from:\n${help.stdout}`);
    }
    assert.match(help.stdout, /Exit codes: 0 ok · 1 .* 2 usage .* 3 cannot connect/s);
    const viaHelp = await kbsync(['help']);
    assert.equal(viaHelp.code, 0, show(viaHelp));
    assert.equal(viaHelp.stdout, help.stdout);
    const runHelp = await kbsync(['jobs', 'run', '--help']);
    assert.equal(runHelp.code, 0, show(runHelp));
    assert.match(runHelp.stdout, /--wait/);
    assert.match(runHelp.stdout, /--json/);
    const wrong = await kbsync(['jobz', 'list']);
    assert.equal(wrong.code, 2, show(wrong));
    assert.match(wrong.stderr, /unknown command 'jobz'/);
  });

  it('creates a job from a file, lists it, runs it with --wait to the end, and finds the down jacket', async () => {
    const file = path.join(dataDir, 'cli-job.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        job_name: 'cli_orders',
        source_table: 'orders_db.orders',
        kb_name: 'orders_kb',
        content_columns: ['product', 'description'],
        filter_column: 'created_at',
        interval: '10 MINUTES',
        start_time: '2030-06-19T18:00:00',
        end_time: '2030-06-20T18:00:00',
      }),
    );
    const created = await api(['jobs', 'create', '--file', file]);
    assert.equal(created.code, 0, show(created));
    assert.match(created.stdout, /job cli_orders created .* next run 2030-06-19T18:00:00Z/);

    const list = await api(['jobs', 'list']);
    assert.equal(list.code, 0, show(list));
    assert.match(list.stdout.split('\n')[0]!, /^NAME\s+STATUS\s+SOURCE\s+KB\s+INTERVAL/);
    assert.match(
      list.stdout,
      /cli_orders\s+scheduled\s+orders_db\.orders\s+orders_kb\s+10 MINUTES\s+2030-06-19T18:00:00Z/,
    );
    const listed = JSON.parse((await api(['jobs', 'list', '--json'])).stdout) as {
      jobs: Array<{ job_name: string; status: string }>;
    };
    assert.deepEqual(listed.jobs.map((j) => [j.job_name, j.status]).sort(), [
      ['cli_orders', 'scheduled'],
      ['sync_orders', 'paused'],
    ]);

    const run = await api(['jobs', 'run', 'cli_orders', '--wait', '--poll-ms', '200']);
    assert.equal(run.code, 0, show(run));
    assert.match(run.stdout, /run run_\w+ succeeded in .*: 300 rows read; documents 300 added/);

    // --json before the command works as well as after it.
    const job = JSON.parse((await api(['--json', 'jobs', 'get', 'cli_orders'])).stdout);
    assert.equal(job.last_run.status, 'succeeded');
    assert.equal(job.totals.rows_read, 300);
    const runs = await api(['jobs', 'runs', 'cli_orders']);
    assert.equal(runs.code, 0, show(runs));
    assert.match(runs.stdout, /run_\w+\s+manual\s+succeeded/);

    const query = ['kb', 'query', 'orders_kb', 'something warm for camping in the snow', '--top-k', '5'];
    const found = JSON.parse((await api([...query, '--json'])).stdout) as {
      mode: string;
      results: Array<{ content: string }>;
    };
    assert.equal(found.mode, 'semantic');
    assert.equal(found.results.length, 5);
    assert.ok(
      found.results.slice(0, 3).some((r) => /down jacket/i.test(r.content)),
      JSON.stringify(found.results.map((r) => r.content.slice(0, 60))),
    );
    const table = await api([...query, '--mode', 'keyword', '--top-k', '3']);
    assert.equal(table.code, 0, show(table));
    assert.match(table.stdout.split('\n')[0]!, /^#\s+RELEVANCE\s+DOCUMENT\s+CONTENT/);

    const kbs = await api(['kb', 'get', 'orders_kb']);
    assert.match(kbs.stdout, /documents:\s+300/);
    const tables = await api(['db', 'tables', 'orders_db']);
    assert.equal(tables.code, 0, show(tables));
    assert.match(tables.stdout, /orders\s+primary key: id/);
    assert.match(tables.stdout, /description\s+TEXT/);
  });

  it('a failing run exits 4 with the error and what to do; --json gives the run and the error envelope', async () => {
    const file = path.join(dataDir, 'sources', 'notes.db');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const db = new Database(file);
    db.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, updated_at TIMESTAMP)');
    db.prepare('INSERT INTO notes VALUES (1, ?, ?)').run('a note', '2025-01-01 00:00:00');
    db.close();
    for (const args of [
      ['db', 'add', 'notes', '--engine', 'sqlite', '--path', file],
      ['kb', 'create', 'notes_kb', '--description', 'notes'],
    ]) {
      const r = await api(args);
      assert.equal(r.code, 0, show(r));
    }
    const jobFile = path.join(dataDir, 'notes-job.json');
    fs.writeFileSync(
      jobFile,
      JSON.stringify({
        job_name: 'sync_notes',
        source_table: 'notes.notes',
        kb_name: 'notes_kb',
        content_columns: ['body'],
        filter_column: 'updated_at',
        interval: '1 HOUR',
        start_time: '2030-01-01T00:00:00',
        end_time: '2030-01-02T00:00:00',
      }),
    );
    assert.equal((await api(['jobs', 'create', '--file', jobFile])).code, 0);
    // The content column goes away at the source: the run cannot succeed.
    const source = new Database(file);
    source.exec('ALTER TABLE notes DROP COLUMN body');
    source.close();

    const failed = await api(['jobs', 'run', 'sync_notes', '--wait']);
    assert.equal(failed.code, 4, show(failed));
    assert.match(
      failed.stderr,
      /error COLUMN_MISSING: run run_\w+ failed: content column 'body' no longer exists/,
    );
    assert.match(failed.stderr, /kbsync jobs resume sync_notes/);

    const again = await api(['jobs', 'run', 'sync_notes', '--wait', '--json']);
    assert.equal(again.code, 4, show(again));
    const run = JSON.parse(again.stdout);
    assert.equal(run.status, 'failed');
    assert.equal(run.error.code, 'COLUMN_MISSING');
    const envelope = JSON.parse(again.stderr);
    assert.equal(envelope.success, false);
    assert.equal(envelope.error.code, 'COLUMN_MISSING');
    assert.ok(envelope.error.details.length > 0);
  });

  it('server errors exit 1 readably (code, HTTP status, details); usage 2; no server 3', async () => {
    const missing = await api(['jobs', 'get', 'no_such_job']);
    assert.equal(missing.code, 1, show(missing));
    assert.match(missing.stderr, /^error NOT_FOUND \(HTTP 404\): /m);
    assert.match(missing.stderr, /^ {2}- .*no_such_job/m);
    const missingJson = await api(['jobs', 'get', 'no_such_job', '--json']);
    assert.equal(missingJson.code, 1);
    assert.equal(missingJson.stdout, '');
    assert.equal(JSON.parse(missingJson.stderr).error.code, 'NOT_FOUND');

    const invalid = await api(['kb', 'query', 'orders_kb', 'x', '--top-k', '500']);
    assert.equal(invalid.code, 1, show(invalid));
    assert.match(invalid.stderr, /INVALID_REQUEST/);
    assert.match(invalid.stderr, /top_k must be between 1 and 100/);

    const noFile = await api(['jobs', 'create', '--file', path.join(dataDir, 'nope.json')]);
    assert.equal(noFile.code, 2, show(noFile));
    assert.match(noFile.stderr, /cannot read/);
    const badOption = await api(['kb', 'query', 'orders_kb', 'x', '--top-k', 'ten']);
    assert.equal(badOption.code, 2, show(badOption));
    const noParams = await api(['db', 'add', 'x', '--engine', 'postgres']);
    assert.equal(noParams.code, 2, show(noParams));
    // After `db add`, --url is the database's (the server's comes from KBSYNC_URL): the server
    // tries it and says why it failed.
    const unreachable = await api([
      'db',
      'add',
      'pg',
      '--engine',
      'postgres',
      '--url',
      'postgres://nobody@127.0.0.1:1/none',
    ]);
    assert.equal(unreachable.code, 1, show(unreachable));
    assert.match(unreachable.stderr, /^error CONNECTION_FAILED \(HTTP 400\)/m);

    const nobody = `http://127.0.0.1:${await freePort()}`;
    const down = await kbsync(['jobs', 'list', '--url', nobody]);
    assert.equal(down.code, 3, show(down));
    assert.match(down.stderr, /cannot connect to kbsync at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    assert.match(down.stderr, /kbsync serve/);
  });

  it('a second server on the same port says to set PORT and exits 5, without a stack', async () => {
    const port = new URL(base).port;
    const second = await kbsync(['serve'], {
      PORT: port,
      HOST: '127.0.0.1',
      KBSYNC_DATA_DIR: tempDir('kbsync-cli-port-'),
    });
    assert.equal(second.code, 5, show(second));
    assert.match(
      second.stderr,
      new RegExp(`error PORT_IN_USE: port ${port} on 127\\.0\\.0\\.1 is already in use`),
    );
    assert.match(second.stderr, /set PORT to a free port/);
    assert.doesNotMatch(second.stderr + second.stdout, /\n\s+at /, 'no stack trace');
    // The demo is untouched.
    assert.equal((await fetch(`${base}/health`)).status, 200);
  });
});

describe('kbsync CLI with authentication on', () => {
  after(() => killAllServers());

  it('a wrong API key exits 1 with UNAUTHORIZED; a key from keys create works', async () => {
    const dataDir = tempDir('kbsync-cli-auth-');
    const server = await startServer(dataDir, {
      KBSYNC_ADMIN_KEY: 'cli-test-admin-key-0123456789abcdef',
      KBSYNC_SCHEDULER: 'off',
    });
    try {
      const wrong = await kbsync([
        'jobs',
        'list',
        '--url',
        server.baseUrl,
        '--api-key',
        'kbs_not_a_real_key',
      ]);
      assert.equal(wrong.code, 1, show(wrong));
      assert.match(wrong.stderr, /^error UNAUTHORIZED \(HTTP 401\): Unauthorized/m);
      assert.match(wrong.stderr, /Authorization: Bearer/);

      const created = await kbsync(['keys', 'create', '--account', 'cli', '--json'], {
        KBSYNC_DATA_DIR: dataDir,
      });
      assert.equal(created.code, 0, show(created));
      const key = JSON.parse(created.stdout).api_key as string;
      // From the environment, the way a script would set it.
      const ok = await kbsync(['jobs', 'list', '--json'], {
        KBSYNC_URL: server.baseUrl,
        KBSYNC_API_KEY: key,
      });
      assert.equal(ok.code, 0, show(ok));
      assert.deepEqual(JSON.parse(ok.stdout).jobs, []);
    } finally {
      await server.stop();
    }
  });
});

describe('the --wait progress line', () => {
  const run = (progress: unknown, rowsRead = 0) =>
    ({ rows_read: rowsRead, progress }) as Parameters<typeof frameOf>[0];

  it("follows the run's progress when the server reports it, else counts rows read", () => {
    const line = renderFrame(
      frameOf(run({ rows_done: 420, rows_total_estimate: 1000, percent: 42, eta_seconds: 75 })),
      0,
      1000,
    );
    assert.match(line, /^█{13}░{17}\s+42% \| 420\/1,000 rows \| ETA 1 min 15 s$/);
    const noEta = renderFrame(
      frameOf(run({ rows_done: 5, rows_total_estimate: 10, percent: null, eta_seconds: null })),
      0,
      0,
    );
    assert.match(noEta, / 50% \| 5\/10 rows \| ETA -$/);
    // No progress (a server without it, or before the estimate): rows read so far.
    assert.match(renderFrame(frameOf(run(null, 1500)), 3, 12_000), /^⠸ running \| 1,500 rows read \| 12 s$/);
    assert.match(renderFrame(frameOf(run(undefined, 7)), null, 500), /^running \| 7 rows read \| 0\.5 s$/);
  });
});
