/**
 * The scheduler against its promises (SEMANTICS.md, "Schedule"), on a real SQLite source with a
 * test clock: runs land exactly on the tick grid and the job completes after the last tick; ticks
 * missed while no scheduler was up collapse into one `catch_up` run; a run longer than the
 * interval never overlaps the next and the ticks it spans coalesce into one run; pause keeps the
 * watermark and resume continues on the grid; pause or delete during a run stops it at the next
 * batch boundary; an idle scheduler holds one timer and does not poll.
 *
 * Time moves only when a test moves the ManualClock. Runs do real async I/O, so every move is
 * followed by `settle()` (the scheduler's whenIdle plus a few event-loop turns).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ManualClock } from '../../src/core/clock.js';
import { type CountingProviders, jobBody, startSyncApp, type SyncTestApp } from '../helpers/sync.js';

const MIN = 60_000;
/** A Monday noon, far from any real "now", so nothing in a test depends on the machine's clock. */
const T = Date.UTC(2031, 0, 6, 12, 0, 0);
const iso = (ms: number) => new Date(ms).toISOString();
/** How the API prints a time (RFC 3339 UTC, second precision). */
const api = (ms: number) => iso(ms).replace(/\.\d{3}Z$/, 'Z');
/** How the API prints a time it measured itself, a run's started_at and finished_at (with milliseconds). */
const measured = (ms: number) => iso(ms);
const at = (minutes: number) => T + minutes * MIN;

interface Env {
  t: SyncTestApp;
  clock: ManualClock;
  src: Database.Database;
  dataDir: string;
}

/** Apps and source handles opened by the current test; closed after it whatever happened. */
const open: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (open.length > 0) {
    try {
      await open.pop()!();
    } catch {
      // already closed by the test
    }
  }
});

/** Appends `n` rows; ids and updated_at grow together, so keyset order is id order. */
function insertRows(src: Database.Database, n: number): void {
  const first = ((src.prepare('SELECT MAX(id) AS m FROM items').get() as { m: number | null }).m ?? 0) + 1;
  const insert = src.prepare('INSERT INTO items (id, name, body, updated_at) VALUES (?, ?, ?, ?)');
  src.transaction(() => {
    for (let id = first; id < first + n; id++) {
      const ts = new Date(Date.UTC(2025, 0, 1) + id * 1000).toISOString().replace('T', ' ').replace('Z', '');
      insert.run(id, `item ${id}`, `body of item ${id}`, ts);
    }
  })();
}

async function openApp(
  clock: ManualClock,
  dataDir?: string,
  providers?: CountingProviders,
): Promise<SyncTestApp> {
  const t = await startSyncApp({
    clock,
    ...(dataDir ? { dataDir } : {}),
    ...(providers ? { providers } : {}),
  });
  let closed = false;
  const close = t.close;
  t.close = async () => {
    if (closed) return;
    closed = true;
    await close();
  };
  open.push(() => t.close());
  return t;
}

/** A fresh app (clock at `clockAt`), a SQLite source `shop.items` with `rows` rows and a knowledge base `kb`. */
async function setUp(clockAt: number, rows = 30): Promise<Env> {
  const clock = new ManualClock(clockAt);
  const t = await openApp(clock);
  const file = path.join(t.dataDir, 'sources', 'shop.db');
  const src = new Database(file);
  open.push(() => void src.close());
  src.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, body TEXT, updated_at TEXT)');
  insertRows(src, rows);
  assert.equal(
    (await t.request('POST', '/databases', { name: 'shop', engine: 'sqlite', parameters: { path: file } }))
      .status,
    201,
  );
  assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'kb' })).status, 201);
  return { t, clock, src, dataDir: t.dataDir };
}

/** A job on shop.items: every 10 minutes from T to T+60min by default, lookback off, batches of 10. */
async function createJob(t: SyncTestApp, overrides: Record<string, unknown> = {}): Promise<any> {
  const res = await t.request(
    'POST',
    '/jobs/create',
    jobBody({
      job_name: 'tick',
      source_table: 'shop.items',
      content_columns: ['name', 'body'],
      filter_column: 'updated_at',
      lookback: 0,
      batch_size: 10,
      interval: '10 MINUTES',
      start_time: iso(T),
      end_time: iso(at(60)),
      ...overrides,
    }),
  );
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.data;
}

async function getJob(t: SyncTestApp, name = 'tick'): Promise<any> {
  const res = await t.request('GET', `/jobs/${name}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.data;
}

/** The job's runs, oldest first. */
async function runsOf(t: SyncTestApp, name = 'tick'): Promise<any[]> {
  const res = await t.request('GET', `/jobs/${name}/runs?limit=200`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return [...res.body.data.runs].reverse();
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Waits until no run and no tick is in progress, twice over a few event-loop turns. */
async function settle(t: SyncTestApp): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await t.app.services.scheduler.whenIdle();
    for (let j = 0; j < 3; j++) await turn();
  }
}

/** Moves the clock to `target` in steps (a minute by default), settling after each step. */
async function stepTo(
  env: { t: SyncTestApp; clock: ManualClock },
  target: number,
  step = MIN,
): Promise<void> {
  while (env.clock.now() < target) {
    env.clock.set(Math.min(env.clock.now() + step, target));
    await settle(env.t);
  }
}

/**
 * Polls `check` (without moving the clock) until it holds; for states reached by real async I/O.
 * The limit only turns a state never reached into a failure: generous, for a loaded machine.
 */
async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Waits until the run's first batch has reached the held provider: the run is running and a batch
 * is in flight. Waiting for the job's status alone is a race: a pause or stop that lands between
 * the run's start and its first batch stops it before any row, not at the first batch boundary.
 */
async function untilHeld(t: SyncTestApp): Promise<void> {
  await waitFor('a batch of the run to reach the (held) provider', () => t.providers.held!() > 0);
}

const startedAt = (runs: any[]) => runs.map((r) => r.started_at);
const triggers = (runs: any[]) => runs.map((r) => r.trigger);

describe('scheduler: the tick grid', () => {
  it('a 10-minute job over one hour runs exactly at its 7 ticks, then completes with next_run null', async () => {
    const env = await setUp(at(-5));
    const created = await createJob(env.t);
    assert.equal(created.status, 'scheduled');
    assert.equal(created.next_run, api(T));
    await env.t.app.services.scheduler.start();
    await settle(env.t);
    assert.equal((await runsOf(env.t)).length, 0, 'nothing runs before start_time');

    // Minute by minute to well past the end: one run per tick, none in between, none after the end.
    const seen: string[] = [];
    while (env.clock.now() < at(75)) {
      env.clock.advance(MIN);
      await settle(env.t);
      const runs = await runsOf(env.t);
      const expected = Math.min(7, Math.max(0, Math.floor((env.clock.now() - T) / (10 * MIN)) + 1));
      assert.equal(
        runs.length,
        expected,
        `at ${api(env.clock.now())}: runs ${JSON.stringify(startedAt(runs))}`,
      );
      for (const r of runs) if (!seen.includes(r.started_at)) seen.push(r.started_at);
    }
    const runs = await runsOf(env.t);
    assert.deepEqual(
      startedAt(runs),
      [0, 10, 20, 30, 40, 50, 60].map((m) => measured(at(m))),
    );
    assert.deepEqual(seen, startedAt(runs));
    assert.ok(
      runs.every((r) => r.trigger === 'schedule'),
      JSON.stringify(triggers(runs)),
    );
    assert.ok(
      runs.every((r) => r.status === 'succeeded'),
      JSON.stringify(runs.map((r) => [r.status, r.error])),
    );
    assert.equal(runs[0].rows_read, 30, 'the first tick backfills');
    assert.ok(
      runs.slice(1).every((r) => r.rows_read === 0),
      'later ticks find nothing new',
    );
    const job = await getJob(env.t);
    assert.equal(job.status, 'completed');
    assert.equal(job.next_run, null);
    assert.equal(job.totals.runs_succeeded, 7);
    assert.equal(env.clock.pendingTimers(), 0, 'a completed job leaves no timer behind');
  });

  it('next_run moves tick by tick while the job is scheduled', async () => {
    const env = await setUp(at(-1));
    await createJob(env.t);
    await env.t.app.services.scheduler.start();
    await stepTo(env, at(0));
    assert.equal((await getJob(env.t)).next_run, api(at(10)));
    await stepTo(env, at(15));
    assert.equal((await getJob(env.t)).next_run, api(at(20)));
    await stepTo(env, at(60));
    const job = await getJob(env.t);
    assert.equal(job.status, 'completed');
    assert.equal(job.next_run, null);
  });

  it('a job created with a future start_time wakes the scheduler and runs at exactly start_time', async () => {
    const env = await setUp(at(0));
    await env.t.app.services.scheduler.start();
    await settle(env.t);
    assert.equal(env.clock.pendingTimers(), 0, 'no job: no timer');
    // Start 7 min 30 s ahead, off the minute grid of the steps below.
    const start = at(7.5);
    await createJob(env.t, { start_time: iso(start), end_time: iso(start + 60 * MIN) });
    await settle(env.t);
    assert.equal(env.clock.pendingTimers(), 1, 'the new job armed a timer');
    await stepTo(env, start - 1000);
    assert.equal((await runsOf(env.t)).length, 0, 'nothing before start_time');
    env.clock.set(start);
    await settle(env.t);
    const runs = await runsOf(env.t);
    assert.deepEqual(startedAt(runs), [measured(start)]);
    assert.equal(runs[0].trigger, 'schedule');
    assert.equal(runs[0].status, 'succeeded');
    assert.equal((await getJob(env.t)).next_run, api(start + 10 * MIN));
  });
});

describe('scheduler: downtime', () => {
  it('ticks missed while the scheduler was stopped collapse into one catch_up run; the grid continues', async () => {
    const env = await setUp(at(-1));
    await createJob(env.t, { end_time: iso(at(120)) });
    const scheduler = env.t.app.services.scheduler;
    await scheduler.start();
    await stepTo(env, at(1));
    assert.deepEqual(startedAt(await runsOf(env.t)), [measured(at(0))]);

    await scheduler.stop();
    assert.equal(env.clock.pendingTimers(), 0, 'a stopped scheduler holds no timer');
    await stepTo(env, at(35)); // T+10, T+20, T+30 pass with no scheduler
    assert.equal((await runsOf(env.t)).length, 1);

    await scheduler.start();
    await settle(env.t);
    let runs = await runsOf(env.t);
    assert.deepEqual(triggers(runs), ['schedule', 'catch_up'], 'one catch_up run, not a burst of three');
    assert.equal(runs[1].started_at, measured(at(35)));
    assert.equal(runs[1].status, 'succeeded');
    assert.equal((await getJob(env.t)).next_run, api(at(40)), 'back on the grid');

    await stepTo(env, at(39));
    assert.equal((await runsOf(env.t)).length, 2);
    await stepTo(env, at(50));
    runs = await runsOf(env.t);
    assert.deepEqual(startedAt(runs), [measured(at(0)), measured(at(35)), measured(at(40)), measured(at(50))]);
    assert.deepEqual(triggers(runs), ['schedule', 'catch_up', 'schedule', 'schedule']);
  });

  it('after a restart on the same data dir (new process, new clock) the missed ticks make one catch_up run', async () => {
    const env = await setUp(at(-1));
    await createJob(env.t, { end_time: iso(at(120)) });
    await env.t.app.services.scheduler.start();
    await stepTo(env, at(1));
    assert.equal((await runsOf(env.t)).length, 1);
    await env.t.close();

    insertRows(env.src, 5); // written while the service is down
    const clock = new ManualClock(at(35));
    const t = await openApp(clock, env.dataDir);
    const before = await getJob(t);
    assert.equal(before.status, 'scheduled');
    assert.equal(before.next_run, api(at(10)), 'the first tick not yet run');
    await t.app.services.scheduler.start();
    await settle(t);
    let runs = await runsOf(t);
    assert.deepEqual(triggers(runs), ['schedule', 'catch_up']);
    assert.equal(runs[1].started_at, measured(at(35)));
    assert.equal(runs[1].status, 'succeeded', JSON.stringify(runs[1].error));
    assert.equal(runs[1].rows_read, 5, 'the catch_up run syncs what arrived during the downtime');
    assert.deepEqual(runs[1].watermark_start, runs[0].watermark_end);
    assert.equal((await getJob(t)).next_run, api(at(40)));

    await stepTo({ t, clock }, at(45));
    runs = await runsOf(t);
    assert.deepEqual(startedAt(runs), [measured(at(0)), measured(at(35)), measured(at(40))]);
    assert.equal(runs[2].trigger, 'schedule');
    assert.equal((await t.documents('kb')).length, 35);
  });
});

describe('scheduler: one run at a time', () => {
  it('a run longer than the interval does not overlap the next; the ticks it spans coalesce into one run', async () => {
    const env = await setUp(at(-1), 50);
    await createJob(env.t);
    const scheduler = env.t.app.services.scheduler;
    await scheduler.start();
    await settle(env.t);

    const release = env.t.providers.hold();
    env.clock.set(at(0));
    await untilHeld(env.t);
    // Two more ticks (T+10, T+20) pass while the first run is held.
    for (const m of [5, 10, 15, 20, 25]) {
      env.clock.set(at(m));
      for (let i = 0; i < 20; i++) await turn();
    }
    let runs = await runsOf(env.t);
    assert.equal(runs.length, 1, JSON.stringify(startedAt(runs)));
    assert.equal(runs[0].status, 'running');
    assert.equal((await getJob(env.t)).status, 'running');
    const manual = await env.t.request('POST', '/jobs/tick/run');
    assert.equal(manual.status, 409, JSON.stringify(manual.body));
    assert.equal(manual.body.error.code, 'CONFLICT');

    release();
    await settle(env.t);
    runs = await runsOf(env.t);
    assert.deepEqual(
      startedAt(runs),
      [measured(at(0)), measured(at(25))],
      'exactly one run follows right after, not two',
    );
    assert.deepEqual(triggers(runs), ['schedule', 'schedule']);
    assert.ok(
      runs.every((r) => r.status === 'succeeded'),
      JSON.stringify(runs.map((r) => r.status)),
    );
    assert.ok(Date.parse(runs[1].started_at) >= Date.parse(runs[0].finished_at), 'no overlap');
    assert.equal(runs[0].rows_read, 50);
    assert.equal((await getJob(env.t)).next_run, api(at(30)), 'the grid continues');

    await stepTo(env, at(29));
    assert.equal((await runsOf(env.t)).length, 2);
    await stepTo(env, at(30));
    assert.deepEqual(startedAt(await runsOf(env.t)), [measured(at(0)), measured(at(25)), measured(at(30))]);
    assert.equal((await env.t.documents('kb')).length, 50);
  });

  it('run-now between ticks is a manual run and leaves the grid alone', async () => {
    const env = await setUp(at(-1));
    await createJob(env.t);
    await env.t.app.services.scheduler.start();
    await stepTo(env, at(3));
    const manual = await env.t.runNow('tick');
    assert.equal(manual.trigger, 'manual');
    assert.equal(manual.status, 'succeeded');
    assert.equal(manual.started_at, measured(at(3)));
    const job = await getJob(env.t);
    assert.equal(job.status, 'scheduled');
    assert.equal(job.next_run, api(at(10)), 'run-now leaves the grid alone');
    await stepTo(env, at(10));
    assert.deepEqual(triggers(await runsOf(env.t)), ['schedule', 'manual', 'schedule']);
  });
});

describe('scheduler: pause, resume, delete', () => {
  it('pause keeps the watermark and clears next_run; no run while paused; resume continues on the grid', async () => {
    const env = await setUp(at(-1));
    await createJob(env.t, { end_time: iso(at(120)) });
    await env.t.app.services.scheduler.start();
    await stepTo(env, at(3));
    const afterFirst = await getJob(env.t);
    assert.ok(afterFirst.watermark, 'the first run placed a watermark');

    const paused = await env.t.request('POST', '/jobs/tick/pause');
    assert.equal(paused.status, 200, JSON.stringify(paused.body));
    assert.equal(paused.body.data.status, 'paused');
    assert.equal(paused.body.data.next_run, null);
    assert.deepEqual(paused.body.data.watermark, afterFirst.watermark);
    await settle(env.t);
    assert.equal(env.clock.pendingTimers(), 0, 'a paused job arms no timer');

    insertRows(env.src, 5);
    await stepTo(env, at(35)); // T+10, T+20, T+30 pass while paused
    assert.equal((await runsOf(env.t)).length, 1, 'no run while paused');
    const stillPaused = await getJob(env.t);
    assert.equal(stillPaused.status, 'paused');
    assert.deepEqual(stillPaused.watermark, afterFirst.watermark);

    const resumed = await env.t.request('POST', '/jobs/tick/resume');
    assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
    assert.equal(resumed.body.data.status, 'scheduled');
    assert.equal(resumed.body.data.next_run, api(at(40)), 'the first tick at or after now');
    await settle(env.t);
    assert.equal((await runsOf(env.t)).length, 1, 'resume does not run the ticks missed while paused');

    await stepTo(env, at(40));
    const runs = await runsOf(env.t);
    assert.deepEqual(startedAt(runs), [measured(at(0)), measured(at(40))]);
    assert.equal(runs[1].trigger, 'schedule');
    assert.deepEqual(
      runs[1].watermark_start,
      afterFirst.watermark,
      'the run after resume starts from the kept watermark',
    );
    assert.equal(runs[1].rows_read, 5, 'only the rows that arrived while paused');

    // Resuming exactly on a tick runs that tick.
    await stepTo(env, at(41));
    assert.equal((await env.t.request('POST', '/jobs/tick/pause')).status, 200);
    await stepTo(env, at(50));
    const onTick = await env.t.request('POST', '/jobs/tick/resume');
    assert.equal(onTick.body.data.next_run, api(at(50)));
    await settle(env.t);
    assert.deepEqual(startedAt(await runsOf(env.t)), [measured(at(0)), measured(at(40)), measured(at(50))]);
    assert.equal((await getJob(env.t)).next_run, api(at(60)));
    assert.equal((await env.t.documents('kb')).length, 35);
  });

  it('pausing during a run stops it at once, giving up the batch being embedded (cancelled); the job stays paused and resumes from there', async () => {
    const env = await setUp(at(-1), 50);
    await createJob(env.t, { end_time: iso(at(120)) });
    await env.t.app.services.scheduler.start();
    await settle(env.t);

    const release = env.t.providers.hold();
    env.clock.set(at(0));
    await untilHeld(env.t);
    const paused = await env.t.request('POST', '/jobs/tick/pause');
    assert.equal(paused.status, 200, JSON.stringify(paused.body));
    assert.equal(paused.body.data.status, 'paused');
    release();
    await settle(env.t);

    let runs = await runsOf(env.t);
    assert.equal(runs.length, 1);
    assert.equal(runs[0].status, 'cancelled', JSON.stringify(runs[0]));
    assert.equal(runs[0].error?.code, 'CANCELLED');
    // The first batch was being embedded when the pause came: it is given up, not written.
    assert.equal(runs[0].rows_read, 0, 'nothing of the batch in flight was written');
    assert.equal(runs[0].rows_failed, 0, 'a stopped batch is not a failure');
    assert.ok(runs[0].finished_at);
    const job = await getJob(env.t);
    assert.equal(job.status, 'paused');
    assert.equal(job.next_run, null);
    assert.deepEqual(job.watermark, runs[0].watermark_end, 'the watermark covers only what was written');
    assert.equal(job.watermark, null);
    assert.equal((await env.t.documents('kb')).length, 0);
    assert.equal(env.t.app.services.scheduler.isRunning(job.job_id), false);

    await stepTo(env, at(25));
    assert.equal((await runsOf(env.t)).length, 1, 'nothing runs while paused');
    assert.equal((await env.t.request('POST', '/jobs/tick/resume')).body.data.next_run, api(at(30)));
    await stepTo(env, at(30));
    runs = await runsOf(env.t);
    assert.equal(runs.length, 2);
    assert.equal(runs[1].status, 'succeeded');
    assert.deepEqual(runs[1].watermark_start, runs[0].watermark_end);
    assert.equal(runs[1].rows_read, 50, 'every row, from the watermark the paused run left');
    const docs = await env.t.documents('kb');
    assert.equal(docs.length, 50);
    assert.equal(new Set(docs.map((d) => d.id)).size, 50);
  });

  it('deleting a job during a run stops the run (gone with the job), without errors; the scheduler goes on', async () => {
    const env = await setUp(at(-1), 50);
    const created = await createJob(env.t);
    const errors: unknown[] = [];
    const logger = env.t.app.logger as unknown as { error: (...args: unknown[]) => void };
    logger.error = (...args: unknown[]) => void errors.push(args);
    await env.t.app.services.scheduler.start();
    await settle(env.t);

    const release = env.t.providers.hold();
    env.clock.set(at(0));
    await untilHeld(env.t);
    const deleted = await env.t.request('DELETE', '/jobs/tick');
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
    release();
    await settle(env.t);

    assert.equal(env.t.app.services.scheduler.isRunning(created.job_id), false, 'the run stopped');
    assert.equal((await env.t.request('GET', '/jobs/tick')).status, 404);
    assert.equal((await env.t.request('GET', '/jobs/tick/runs')).status, 404);
    assert.equal((await env.t.app.services.store.listRunningRuns()).length, 0, 'no run left running');
    assert.deepEqual(errors, []);
    assert.ok((await env.t.documents('kb')).length <= 10, 'nothing written after the batch in flight');

    // The scheduler is not wedged: a new job with the same name runs on its grid.
    await createJob(env.t, { start_time: iso(at(5)), end_time: iso(at(65)) });
    await stepTo(env, at(5));
    const runs = await runsOf(env.t);
    assert.deepEqual(startedAt(runs), [measured(at(5))]);
    assert.equal(runs[0].status, 'succeeded', JSON.stringify(runs[0].error));
    assert.deepEqual(errors, []);
  });

  it('a manual run of a paused job interrupted by shutdown leaves the job paused after the restart', async () => {
    const env = await setUp(at(-1), 50);
    await createJob(env.t, { end_time: iso(at(120)) });
    await env.t.app.services.scheduler.start();
    await stepTo(env, at(3));
    assert.equal((await env.t.request('POST', '/jobs/tick/pause')).status, 200);
    insertRows(env.src, 30);

    const release = env.t.providers.hold();
    const manual = await env.t.request('POST', '/jobs/tick/run');
    assert.equal(manual.status, 202, JSON.stringify(manual.body));
    await untilHeld(env.t);
    // Shutdown: the scheduler asks the run to stop, then the held batch completes.
    const stopping = env.t.app.services.scheduler.stop();
    release();
    await stopping;
    await env.t.close();

    const clock = new ManualClock(at(35));
    const t = await openApp(clock, env.dataDir);
    const job = await getJob(t);
    assert.equal(job.status, 'paused', 'the user paused this job; a shutdown must not resume it');
    assert.equal(job.next_run, null);
    await t.app.services.scheduler.start();
    await stepTo({ t, clock }, at(50));
    assert.deepEqual(triggers(await runsOf(t)), ['schedule', 'manual'], 'no run of a paused job');
  });
});

describe('scheduler: shutdown during a run', () => {
  /** Starts the job's tick at T with embedding held, then stops the scheduler mid-run (graceful shutdown). */
  async function stopMidRun(env: Env): Promise<void> {
    await env.t.app.services.scheduler.start();
    await settle(env.t);
    const release = env.t.providers.hold();
    env.clock.set(at(0));
    await untilHeld(env.t);
    const stopping = env.t.app.services.scheduler.stop();
    release();
    await stopping;
  }

  it('a run stopped by shutdown is recorded cancelled (not failed) and the next start finishes it from the checkpoint', async () => {
    const env = await setUp(at(-1), 50);
    await createJob(env.t, { end_time: iso(at(120)) });
    await stopMidRun(env);

    const [stopped] = await runsOf(env.t);
    assert.equal(
      stopped.status,
      'cancelled',
      `shutdown is not a sync failure: ${JSON.stringify({ status: stopped.status, error: stopped.error })}`,
    );
    assert.equal(stopped.error?.code, 'CANCELLED');
    const job = await getJob(env.t);
    assert.equal(job.totals.runs_failed, 0, 'a shutdown does not count as a failed run');
    assert.equal(job.status, 'scheduled');
    assert.equal(job.next_run, api(at(0)), 'due again at once, so the next start finishes what is left');

    env.clock.set(at(3));
    await env.t.app.services.scheduler.start();
    await settle(env.t);
    const runs = await runsOf(env.t);
    assert.deepEqual(triggers(runs), ['schedule', 'catch_up']);
    assert.equal(runs[1].started_at, measured(at(3)));
    assert.deepEqual(runs[1].watermark_start, stopped.watermark_end);
    assert.equal(runs[0].rows_read + runs[1].rows_read, 50);
    assert.equal((await env.t.documents('kb')).length, 50);
  });

  it("shutdown during the last tick's run does not complete the job with rows missing", async () => {
    const env = await setUp(at(-1), 50);
    // A single tick: T (the next one, T+10, is after end_time).
    await createJob(env.t, { start_time: iso(at(0)), end_time: iso(at(5)) });
    await stopMidRun(env);
    await env.t.close();

    const clock = new ManualClock(at(30));
    const t = await openApp(clock, env.dataDir);
    const before = await getJob(t);
    assert.notEqual(
      before.status,
      'completed',
      `the only run was cut short by a shutdown: ${JSON.stringify({ status: before.status, last_run: before.last_run })}`,
    );
    await t.app.services.scheduler.start();
    await settle(t);
    assert.equal((await t.documents('kb')).length, 50, 'every row synced once the service is back');
    const job = await getJob(t);
    assert.equal(job.status, 'completed');
    assert.equal(job.next_run, null);
  });
});

describe('scheduler: idle', () => {
  it('with no due job the scheduler holds at most one timer and does not poll', async () => {
    const env = await setUp(at(-120));
    const scheduler = env.t.app.services.scheduler;
    const store = env.t.app.services.store;
    let lookups = 0;
    const listDueJobs = store.listDueJobs.bind(store);
    const nextDueTime = store.nextDueTime.bind(store);
    store.listDueJobs = (...args) => {
      lookups++;
      return listDueJobs(...args);
    };
    store.nextDueTime = () => {
      lookups++;
      return nextDueTime();
    };

    await scheduler.start();
    await settle(env.t);
    assert.equal(env.clock.pendingTimers(), 0, 'no job: no timer at all');
    await createJob(env.t);
    await createJob(env.t, { job_name: 'later', start_time: iso(at(30)), end_time: iso(at(90)) });
    await settle(env.t);
    assert.equal(env.clock.pendingTimers(), 1, 'one timer, for the earliest due tick');

    lookups = 0;
    await stepTo(env, at(-1)); // 119 minutes with nothing due
    assert.ok(env.clock.pendingTimers() <= 1);
    assert.equal(lookups, 0, 'the scheduler slept: no lookups while nothing was due');
    assert.equal((await runsOf(env.t)).length, 0);

    await stepTo(env, at(0));
    assert.equal((await runsOf(env.t)).length, 1);
    assert.equal(env.clock.pendingTimers(), 1, 'after the run: one timer again');
    assert.ok(lookups <= 6, `a tick costs a few lookups, got ${lookups}`);

    // Paused jobs arm nothing.
    await env.t.request('POST', '/jobs/tick/pause');
    await env.t.request('POST', '/jobs/later/pause');
    await settle(env.t);
    assert.equal(env.clock.pendingTimers(), 0);
  });
});
