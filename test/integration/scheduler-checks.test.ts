/**
 * Due jobs are checked before they run (issue 9; src/jobs/scheduler.ts): runs that find nothing
 * new are recorded without a run slot, so they never wait behind a long run; a job with rows to
 * read waits for a slot, then claims the job and runs in full; the scheduler still keeps one
 * timer and no run is lost. On a real SQLite source with a test clock.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ManualClock } from '../../src/core/clock.js';
import { jobBody, startSyncApp, type SyncTestApp } from '../helpers/sync.js';

const MIN = 60_000;
const T = Date.UTC(2031, 0, 6, 12, 0, 0);
const iso = (ms: number) => new Date(ms).toISOString();
const at = (minutes: number) => T + minutes * MIN;

const open: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!();
});

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

async function settle(t: SyncTestApp): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await t.app.services.scheduler.whenIdle();
    for (let j = 0; j < 3; j++) await turn();
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    assert.ok(Date.now() < until, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function runsOf(t: SyncTestApp, job: string): Promise<any[]> {
  const res = await t.request('GET', `/jobs/${job}/runs?limit=200`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return [...res.body.data.runs].reverse();
}

/** An app with one run slot, a SQLite source with tables a, b, c (10 rows each), a knowledge base per table. */
async function setUp(): Promise<{ t: SyncTestApp; clock: ManualClock; src: Database.Database }> {
  const clock = new ManualClock(at(-1));
  const t = await startSyncApp({ clock, config: { maxConcurrentRuns: 1, maxConcurrentChecks: 4 } });
  open.push(() => t.close());
  const file = path.join(t.dataDir, 'sources', 'shop.db');
  const src = new Database(file);
  open.push(() => void src.close());
  for (const table of ['a', 'b', 'c']) {
    src.exec(`CREATE TABLE ${table} (id INTEGER PRIMARY KEY, body TEXT, updated_at TIMESTAMP)`);
    const insert = src.prepare(`INSERT INTO ${table} VALUES (?, ?, ?)`);
    for (let i = 1; i <= 10; i++)
      insert.run(i, `${table} ${i}`, `2025-01-01 00:00:${String(i).padStart(2, '0')}`);
    assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: `kb_${table}` })).status, 201);
  }
  assert.equal(
    (await t.request('POST', '/databases', { name: 'shop', engine: 'sqlite', parameters: { path: file } }))
      .status,
    201,
  );
  return { t, clock, src };
}

async function createJob(t: SyncTestApp, table: string, startMs: number): Promise<void> {
  const res = await t.request(
    'POST',
    '/jobs/create',
    jobBody({
      job_name: table,
      kb_name: `kb_${table}`,
      source_table: `shop.${table}`,
      content_columns: ['body'],
      filter_column: 'updated_at',
      lookback: 0,
      interval: '1 MINUTE',
      start_time: iso(startMs),
      end_time: iso(startMs + 60 * MIN),
    }),
  );
  assert.equal(res.status, 201, JSON.stringify(res.body));
}

describe('scheduler: checks before runs', () => {
  it('runs that find nothing new do not wait for the one run slot a long run holds; a job with rows waits for it', async () => {
    const { t, clock, src } = await setUp();
    // b and c are synced first (their backfill), so their later ticks find nothing new.
    await createJob(t, 'b', at(0));
    await createJob(t, 'c', at(0));
    await t.app.services.scheduler.start();
    clock.set(at(0));
    await settle(t);
    for (const job of ['b', 'c']) assert.equal((await runsOf(t, job))[0]?.rows_read, 10);

    // a's first run is a backfill held in its embedding: it takes the only run slot.
    await createJob(t, 'a', at(1));
    const release = t.providers.hold();
    clock.set(at(1));
    await waitFor("a's run to start", async () => (await runsOf(t, 'a')).some((r) => r.status === 'running'));
    // b and c are due at the same tick: they find nothing new and are recorded meanwhile.
    await waitFor('b and c to run at 1 min', async () =>
      (await Promise.all(['b', 'c'].map(async (j) => (await runsOf(t, j)).length === 2))).every(Boolean),
    );
    for (const job of ['b', 'c']) {
      const runs = await runsOf(t, job);
      assert.equal(runs[1].status, 'succeeded');
      assert.equal(runs[1].started_at, iso(at(1)), 'on time, not after the long run');
      assert.equal(runs[1].rows_read, 0);
    }
    assert.equal((await runsOf(t, 'a'))[0].status, 'running', 'the long run still holds the slot');

    // At the next tick b has new rows: its run waits for the slot unclaimed (in a fleet, another
    // process with a free slot may claim it meanwhile), then claims the job and runs in full.
    src.prepare('INSERT INTO b VALUES (11, ?, ?)').run('b 11', '2025-01-01 00:01:00');
    clock.set(at(2));
    await waitFor('c to run at 2 min', async () => (await runsOf(t, 'c')).length === 3);
    const bId = (await t.request('GET', '/jobs/b')).body.data.job_id;
    await waitFor("b's check to find rows and wait for the slot", async () => t.app.services.scheduler.isRunning(bId));
    for (let i = 0; i < 20; i++) await turn();
    assert.equal((await runsOf(t, 'b')).length, 2, 'b waits for the run slot before it claims: no run recorded yet');
    const b = (await t.request('GET', '/jobs/b')).body.data;
    assert.equal(b.status, 'scheduled', 'not claimed while it waits: a process without a free slot takes no run');
    assert.equal(b.next_run, iso(at(2)).replace(/\.\d{3}Z$/, 'Z'), 'still due, for whichever process gets a slot first');
    assert.equal(
      (await t.request('POST', '/jobs/b/run')).status,
      409,
      'a job waiting for a slot in this process is in progress here',
    );

    clock.set(at(2) + 20_000);
    release();
    await settle(t);
    const bRuns = await runsOf(t, 'b');
    assert.equal(bRuns.length, 3);
    assert.equal(bRuns[2].status, 'succeeded');
    assert.equal(bRuns[2].rows_read, 1);
    assert.equal(
      bRuns[2].started_at,
      iso(at(2) + 20_000),
      'started when it got the slot: its duration leaves out the wait',
    );
    assert.equal((await runsOf(t, 'a'))[0].status, 'succeeded');
    assert.equal(clock.pendingTimers(), 1, 'one timer, for the next tick');
    assert.equal(await t.app.services.store.nextDueTime(), at(3));
  });

  it('what runs learnt about the lookback window is kept with the job: after a restart a quiet run is still one write', async () => {
    const { t, clock } = await setUp();
    // The default lookback of a time column (300 s): every row is in the window.
    const res = await t.request(
      'POST',
      '/jobs/create',
      jobBody({
        job_name: 'a',
        kb_name: 'kb_a',
        source_table: 'shop.a',
        content_columns: ['body'],
        filter_column: 'updated_at',
        interval: '1 MINUTE',
        start_time: iso(at(0)),
        end_time: iso(at(60)),
      }),
    );
    assert.equal(res.status, 201, JSON.stringify(res.body));
    await t.app.services.scheduler.start();
    for (const m of [0, 1]) {
      clock.set(at(m));
      await settle(t);
    }
    assert.equal((await runsOf(t, 'a'))[1].documents_unchanged, 10, 'the second run read the window once');
    const dataDir = t.dataDir;
    await t.close();

    let writes = 0;
    const clock2 = new ManualClock(at(2) - 1000);
    const t2 = await startSyncApp({
      dataDir,
      clock: clock2,
      wrapStore: (store) => {
        const mutate = store.mutateJob.bind(store);
        store.mutateJob = (...args) => {
          writes++;
          return mutate(...args);
        };
        return store;
      },
    });
    open.push(() => t2.close());
    await t2.app.services.scheduler.start();
    await settle(t2);
    writes = 0;
    clock2.set(at(2));
    await settle(t2);
    const runs = await runsOf(t2, 'a');
    assert.equal(runs.length, 3);
    assert.equal(runs[2].status, 'succeeded');
    assert.equal(runs[2].rows_read, 0, 'the window was not read again after the restart');
    assert.equal(writes, 1, 'one write of the control store');
  });

  it('nextDueTime(after) skips jobs due by then, so jobs in flight do not make the scheduler spin', async () => {
    const { t, clock } = await setUp();
    await createJob(t, 'a', at(0));
    await createJob(t, 'b', at(0) + 30_000);
    const store = t.app.services.store;
    assert.equal(await store.nextDueTime(), at(0));
    assert.equal(await store.nextDueTime(at(0)), at(0) + 30_000);
    assert.equal(await store.nextDueTime(at(0) + 30_000), null);
    await t.app.services.scheduler.start();
    clock.set(at(0));
    await settle(t);
    assert.equal(clock.pendingTimers(), 1);
    assert.equal((await runsOf(t, 'a')).length, 1);
    clock.set(at(0) + 30_000);
    await settle(t);
    assert.equal((await runsOf(t, 'b')).length, 1);
  });

  it('many jobs due on the same tick all run once; every run after the first finds nothing new', async () => {
    const { t, clock } = await setUp();
    // 40 jobs on one table share its knowledge base: they tick together.
    for (let i = 0; i < 40; i++) {
      const res = await t.request(
        'POST',
        '/jobs/create',
        jobBody({
          job_name: `j${i}`,
          kb_name: 'kb_a',
          source_table: 'shop.a',
          content_columns: ['body'],
          filter_column: 'updated_at',
          interval: '1 MINUTE',
          start_time: iso(at(0)),
          end_time: iso(at(60)),
        }),
      );
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
    await t.app.services.scheduler.start();
    for (let m = 0; m < 4; m++) {
      clock.set(at(m));
      await settle(t);
    }
    for (let i = 0; i < 40; i++) {
      const runs = await runsOf(t, `j${i}`);
      assert.deepEqual(
        runs.map((r) => r.started_at),
        [0, 1, 2, 3].map((m) => iso(at(m))),
        `j${i}: one run per tick`,
      );
      assert.ok(
        runs.every((r) => r.status === 'succeeded'),
        JSON.stringify(runs.map((r) => r.error)),
      );
      assert.ok(
        runs.slice(2).every((r) => r.rows_read === 0),
        'quiet ticks read nothing',
      );
    }
  });
});
