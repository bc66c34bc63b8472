/**
 * The demo end to end: `kbsync demo` as a real process with the real clock and the real local
 * embedding model, the seed's create request with a start time a few seconds ahead; the job runs
 * by itself at its start time and a query finds the demo rows by meaning. A second test moves a
 * test clock through later ticks of the same demo set-up in-process.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { after, describe, it } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';
import { setUpDemo } from '../../src/demo.js';
import { startTestApp, tempDir } from '../helpers/app.js';

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '');

const seedRequest = (start: number) => ({
  job_name: 'sync_orders',
  source_table: 'orders_db.orders',
  kb_name: 'orders_kb',
  content_columns: ['product', 'description'],
  filter_column: 'created_at',
  interval: '10 MINUTES',
  start_time: iso(start),
  end_time: iso(start + 24 * 3600_000),
});

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('kbsync demo', () => {
  let child: ChildProcess | null = null;
  after(() => {
    child?.kill('SIGKILL');
  });

  it('the seed job runs by itself at its start time and the demo rows are found by meaning', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'demo'], {
      env: { ...process.env, PORT: String(port), KBSYNC_DATA_DIR: tempDir('kbsync-demo-'), LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    await until('the demo server', 60_000, async () => ((await fetch(`${base}/health`)).ok ? true : undefined));

    const start = Math.ceil((Date.now() + 4000) / 1000) * 1000;
    const created = await fetch(`${base}/jobs/create`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(seedRequest(start)),
    });
    const body = (await created.json()) as any;
    assert.equal(created.status, 201, JSON.stringify(body));
    assert.match(body.data.job_id, /^job_/);
    assert.equal(body.data.status, 'scheduled');
    assert.equal(body.data.next_run, `${iso(start)}Z`);
    const again = await fetch(`${base}/jobs/create`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(seedRequest(start)) });
    assert.equal(again.status, 409);
    assert.equal(((await again.json()) as any).error.code, 'DUPLICATE_JOB');

    // 300 rows through the local model: minutes on a loaded 2-core machine; correctness, not speed.
    const run = await until('the first scheduled run', 360_000, async () => {
      const runs = (await (await fetch(`${base}/jobs/sync_orders/runs`)).json()) as any;
      const done = runs.data.runs.find((r: { status: string }) => r.status !== 'running');
      return done;
    });
    assert.equal(run.trigger, 'schedule');
    assert.equal(run.status, 'succeeded', JSON.stringify(run.error));
    assert.ok(Date.parse(run.started_at) >= start, 'not before its start time');
    assert.ok(Date.parse(run.started_at) - start < 5000, 'at its start time');
    assert.equal(run.rows_read, 300);
    assert.equal(run.documents_added, 300);

    const job = (await (await fetch(`${base}/jobs/sync_orders`)).json()) as any;
    assert.equal(job.data.next_run, `${iso(start + 10 * 60_000)}Z`, 'the next tick is on the grid');

    const query = await fetch(`${base}/knowledge_bases/orders_kb/query`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ query: 'something to keep me warm while camping in the snow', top_k: 5 }),
    });
    const results = ((await query.json()) as any).data.results as Array<{ content: string; relevance: number }>;
    assert.equal(results.length, 5);
    // By meaning: the words of the query are not in these products' text.
    assert.ok(
      results.slice(0, 3).some((r) => /down jacket|sleeping bag|fleece/i.test(r.content)),
      JSON.stringify(results.map((r) => r.content.slice(0, 60))),
    );
  });
});

describe('demo with a test clock', () => {
  it('runs at each later tick, and only new rows are embedded', async () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1, 12, 0, 0));
    const t = await startTestApp({ clock });
    try {
      await setUpDemo(t.app);
      const start = clock.now() + 60_000;
      assert.equal((await t.request('POST', '/jobs/create', seedRequest(start))).status, 201);
      const { scheduler } = t.app.services;
      await scheduler.start();
      for (let tick = 0; tick < 3; tick++) {
        clock.set(start + tick * 10 * 60_000);
        await new Promise((r) => setImmediate(r));
        await scheduler.whenIdle();
      }
      const runs = (await t.request('GET', '/jobs/sync_orders/runs')).body.data.runs.reverse();
      assert.deepEqual(
        runs.map((r: { started_at: string; trigger: string; status: string }) => [r.started_at, r.trigger, r.status]),
        // Run times carry milliseconds (API.md, "Jobs": started_at/finished_at).
        [0, 1, 2].map((k) => [new Date(start + k * 10 * 60_000).toISOString(), 'schedule', 'succeeded']),
      );
      assert.equal(runs[0].documents_added, 300);
      assert.equal(runs[1].documents_added + runs[1].documents_updated, 0, 'nothing new, nothing re-embedded');
    } finally {
      await t.close();
    }
  });
});
