/**
 * Claims raced by several schedulers (SEMANTICS.md "Scale-out": each tick runs exactly once
 * across the fleet): four apps on one store in this process, every store call of each delayed at
 * random, tick after tick on a shared test clock. Every scheduler checks every due job; only one
 * claim of a tick may win (the guarded transaction in Scheduler.claim), and only one record of a
 * quiet tick (recordNothingNew). The race is shown to happen: checks are wasted on ticks another
 * process won.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, it } from 'node:test';
import Database from 'better-sqlite3';
import { ManualClock } from '../../src/core/clock.js';
import type { ControlStore, RunRecord } from '../../src/store/port.js';
import { sourcesDir, tempDir } from '../helpers/app.js';
import { countingHashingProviders, jobBody, startSyncApp, type SyncTestApp } from '../helpers/sync.js';

const MIN = 60_000;
const T = Date.UTC(2031, 0, 6, 12, 0, 0);
const at = (minutes: number) => T + minutes * MIN;
const APPS = 4;
const BUSY = 8;
const QUIET = 4;
const ROUNDS = 20;

const open: Array<() => Promise<void>> = [];
after(async () => {
  while (open.length > 0) await open.pop()!().catch(() => undefined);
});

/** Every store call waits 0-3 ms first, so the processes' checks and claims interleave differently each time. */
function jittered(store: ControlStore): ControlStore {
  const out = Object.create(store) as Record<string, unknown>;
  for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(store))) {
    const fn = (store as unknown as Record<string, unknown>)[name];
    if (name === 'constructor' || typeof fn !== 'function') continue;
    out[name] = async (...args: unknown[]) => {
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 4)));
      return (fn as (...a: unknown[]) => unknown).apply(store, args);
    };
  }
  return out as unknown as ControlStore;
}

async function until(what: string, check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

it(`${APPS} schedulers on one store, ${ROUNDS} ticks of ${BUSY + QUIET} jobs with random delays: never two runs of one tick`, { timeout: 240_000 }, async (t) => {
  const dataDir = tempDir();
  const clock = new ManualClock(at(-1));
  const providers = countingHashingProviders();
  const apps: SyncTestApp[] = [];
  for (let i = 0; i < APPS; i++) {
    const app = await startSyncApp({
      dataDir,
      clock,
      providers,
      config: { searchThreads: 0, maxConcurrentRuns: 2, leaseTtlMs: 60_000 },
      wrapStore: jittered,
    });
    open.push(() => app.close());
    apps.push(app);
  }
  const [first] = apps as [SyncTestApp];
  const file = path.join(sourcesDir(dataDir), 'src.db');
  const src = new Database(file);
  open.push(async () => void src.close());
  src.exec('CREATE TABLE busy (id INTEGER PRIMARY KEY, body TEXT, ts TEXT); CREATE TABLE quiet (id INTEGER PRIMARY KEY, body TEXT, ts TEXT)');
  const add = (table: string, id: number) => src.prepare(`INSERT INTO ${table} VALUES (?, ?, ?)`).run(id, `${table} ${id}`, new Date(Date.UTC(2025, 0, 1) + id * 1000).toISOString());
  for (let id = 1; id <= 5; id++) {
    add('busy', id);
    add('quiet', id);
  }
  assert.equal((await first.request('POST', '/databases', { name: 'src', engine: 'sqlite', parameters: { path: file } })).status, 201);
  const jobs: Array<{ id: string; kb: string; busy: boolean }> = [];
  for (let k = 0; k < BUSY + QUIET; k++) {
    const busy = k < BUSY;
    const kb = `kb${k}`;
    assert.equal((await first.request('POST', '/knowledge_bases', { kb_name: kb })).status, 201);
    const res = await first.request(
      'POST',
      '/jobs/create',
      jobBody({
        job_name: `j${k}`,
        kb_name: kb,
        source_table: busy ? 'src.busy' : 'src.quiet',
        content_columns: ['body'],
        filter_column: 'ts',
        lookback: 0,
        interval: '1 MINUTE',
        start_time: new Date(at(0)).toISOString(),
        end_time: new Date(at(ROUNDS + 5)).toISOString(),
      }),
    );
    assert.equal(res.status, 201, JSON.stringify(res.body));
    jobs.push({ id: res.body.data.job_id, kb, busy });
  }
  for (const app of apps) await app.app.services.scheduler.start();

  const store = first.app.services.store;
  const runsOf = async (jobId: string): Promise<RunRecord[]> => (await store.listRuns(jobId, { limit: 1000, cursor: null })).items;
  let rows = 5;
  for (let round = 0; round < ROUNDS; round++) {
    // New rows for the busy jobs (their ticks run in full); the quiet ones find nothing after the first.
    add('busy', ++rows);
    clock.set(at(round));
    await until(`every job to run tick ${round}`, async () =>
      (await Promise.all(jobs.map(async (j) => (await runsOf(j.id)).filter((r) => r.status !== 'running').length >= round + 1))).every(Boolean),
    );
    for (const app of apps) await app.app.services.scheduler.whenIdle();
  }

  const wasted = apps.reduce((sum, app) => sum + app.app.services.scheduler.stats().wastedChecks, 0);
  const byProcess = new Map<string, number>();
  for (const job of jobs) {
    const runs = await runsOf(job.id);
    const ticks = runs.map((r) => r.startedAt).sort((a, b) => a - b);
    assert.deepEqual(
      ticks,
      Array.from({ length: ROUNDS }, (_, r) => at(r)),
      `job ${job.kb}: one run per tick, each at its tick: ${JSON.stringify(runs.slice(0, 8).map((r) => [new Date(r.startedAt).toISOString(), r.processId, r.status]))}…`,
    );
    assert.ok(runs.every((r) => r.status === 'succeeded'), JSON.stringify(runs.map((r) => [r.status, r.error])));
    for (const r of runs) byProcess.set(r.processId ?? '?', (byProcess.get(r.processId ?? '?') ?? 0) + 1);
    const docs = await first.documents(job.kb);
    assert.equal(docs.length, job.busy ? rows : 5, `${job.kb}: one document per source row`);
    assert.equal(new Set(docs.map((d) => d.id)).size, docs.length);
  }
  // The race was real: processes checked ticks another process won.
  t.diagnostic(`fleet race: ${ROUNDS * (BUSY + QUIET)} ticks, runs by process ${JSON.stringify([...byProcess.values()])}, wasted checks ${wasted}`);
  assert.ok(wasted > 0, 'some checks lost the race (otherwise this test shows nothing)');
  assert.ok(byProcess.size > 1, 'runs were spread over the processes');
});
