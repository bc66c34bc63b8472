/**
 * Every process schedules (docs/architecture.md, "Fleet"), shown with several apps on one data dir
 * in this process (each app is a member of the fleet with its own id, its own connection to the
 * store and its own scheduler): due runs spread over the processes and each tick runs once; a
 * process that stalls loses its run to another, which resumes it from the last checkpoint, and
 * the stalled one writes nothing more when it wakes; a run held by a dead process of this host
 * is taken over at once; a pause or delete through another process stops the run where it runs;
 * shutdown gives up its claims; GET /health lists the fleet. Real processes: fleet.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { ControlStore, RunRecord } from '../../src/store/port.js';
import { ManualClock } from '../../src/core/clock.js';
import { HashingEmbeddingProvider } from '../../src/embeddings/hashing/provider.js';
import type { EmbeddingProvider } from '../../src/embeddings/port.js';
import { holderIsDeadHere } from '../../src/jobs/lease.js';
import { sourcesDir, tempDir } from '../helpers/app.js';
import { type CountingProviders, jobBody, startSyncApp, type SyncTestApp } from '../helpers/sync.js';

const MIN = 60_000;
const T = Date.UTC(2031, 0, 6, 12, 0, 0);
const at = (minutes: number) => T + minutes * MIN;
const iso = (ms: number) => new Date(ms).toISOString();

const open: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!().catch(() => undefined);
});

async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A hashing provider whose calls can be held: `hold()` makes later calls wait until released;
 * `abortable` ones give up when the run's signal aborts (as real providers do), the others
 * ignore it (a batch that completes whatever happens, to reach its checkpoint).
 */
function heldProvider(abortable: boolean): CountingProviders & { holdFrom(call: number): () => void } {
  const inner = new HashingEmbeddingProvider({ dimensions: 64 });
  let gate: { promise: Promise<void>; release(): void } | null = null;
  /** Calls from this number on wait for the gate (1 = every call). */
  let from = 1;
  let waiting = 0;
  let embedded = 0;
  let calls = 0;
  const provider: EmbeddingProvider = {
    id: 'test:held',
    dimensions: () => inner.dimensions(),
    async embed(texts, options) {
      calls++;
      const held = gate;
      if (held !== null && calls >= from) {
        waiting++;
        try {
          const signal = options?.signal;
          await Promise.race([
            held.promise,
            ...(abortable && signal
              ? [new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }))]
              : []),
          ]);
        } finally {
          waiting--;
        }
      }
      embedded += texts.length;
      return inner.embed(texts, options);
    },
    close: async () => undefined,
  };
  return {
    factory: () => provider,
    embedded: () => embedded,
    failNext: () => assert.fail('not used'),
    hold() {
      return this.holdFrom(1);
    },
    holdFrom(call) {
      let release!: () => void;
      const promise = new Promise<void>((resolve) => {
        release = resolve;
      });
      const mine = { promise, release: () => release() };
      gate = mine;
      from = call;
      return () => {
        if (gate === mine) gate = null;
        mine.release();
      };
    },
    held: () => waiting,
  };
}

/** A control store whose every call waits while `closed` (a process stalled, or cut off from its store). */
function gatedStore(gate: { closed: boolean }) {
  return (store: ControlStore): ControlStore => {
    const gated = Object.create(store) as Record<string, unknown>;
    for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(store))) {
      const fn = (store as unknown as Record<string, unknown>)[name];
      if (name === 'constructor' || typeof fn !== 'function') continue;
      gated[name] = async (...args: unknown[]) => {
        while (gate.closed) await new Promise((r) => setTimeout(r, 10));
        return (fn as (...a: unknown[]) => unknown).apply(store, args);
      };
    }
    return gated as unknown as ControlStore;
  };
}

interface Member {
  t: SyncTestApp;
  id: string;
}

async function member(
  dataDir: string,
  clock: ManualClock,
  providers: CountingProviders,
  config: Record<string, unknown> = {},
  wrapStore?: (s: ControlStore) => ControlStore,
): Promise<Member> {
  const t = await startSyncApp({
    dataDir,
    clock,
    providers,
    config: { searchThreads: 0, maxConcurrentRuns: 1, leaseTtlMs: 600, ...config },
    ...(wrapStore ? { wrapStore } : {}),
  });
  open.push(() => t.close());
  return { t, id: t.app.services.fleet.id };
}

/** A SQLite source `items(id, body, updated_at)` with `rows` rows, the database `src` and knowledge bases `kb0…`. */
async function setUp(t: SyncTestApp, rows: number, kbs: number): Promise<Database.Database> {
  const file = path.join(sourcesDir(t.dataDir), 'src.db');
  const db = new Database(file);
  open.push(async () => void db.close());
  db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT, updated_at TEXT)');
  const insert = db.prepare('INSERT INTO items VALUES (?, ?, ?)');
  for (let id = 1; id <= rows; id++) insert.run(id, `item ${id}`, new Date(Date.UTC(2025, 0, 1) + id * 1000).toISOString());
  assert.equal((await t.request('POST', '/databases', { name: 'src', engine: 'sqlite', parameters: { path: file } })).status, 201);
  for (let k = 0; k < kbs; k++) assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: `kb${k}` })).status, 201);
  return db;
}

async function createJob(t: SyncTestApp, name: string, kb: string, over: Record<string, unknown> = {}): Promise<string> {
  const res = await t.request(
    'POST',
    '/jobs/create',
    jobBody({
      job_name: name,
      kb_name: kb,
      source_table: 'src.items',
      content_columns: ['body'],
      filter_column: 'updated_at',
      lookback: 0,
      batch_size: 10,
      interval: '1 HOUR',
      start_time: iso(at(0)),
      end_time: iso(at(600)),
      ...over,
    }),
  );
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.data.job_id;
}

async function runsOf(t: SyncTestApp, job: string): Promise<any[]> {
  const res = await t.request('GET', `/jobs/${job}/runs?limit=100`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return [...res.body.data.runs].reverse();
}

describe('a fleet in one process', () => {
  it('every process schedules: due runs spread over the processes with free slots, and each tick runs once', async () => {
    const dataDir = tempDir();
    const clock = new ManualClock(at(-1));
    const providers = heldProvider(false);
    const a = await member(dataDir, clock, providers);
    const b = await member(dataDir, clock, providers);
    await setUp(a.t, 30, 4);
    for (let k = 0; k < 4; k++) await createJob(a.t, `j${k}`, `kb${k}`);
    await a.t.app.services.scheduler.start();
    await b.t.app.services.scheduler.start();

    // One run slot each: with the provider held, each process holds one run; the other two due
    // jobs wait, unclaimed, for a slot.
    const release = providers.hold();
    clock.set(at(0));
    await waitFor('a run in each process', () => providers.held!() >= 2);
    const running = (await a.t.app.services.store.listRunningRuns()).map((r) => r.processId);
    assert.deepEqual(running.sort(), [a.id, b.id].sort(), 'one run in each process, not two in one');
    release();
    await waitFor('every job to have run its tick', async () => {
      const runs = await Promise.all([0, 1, 2, 3].map((k) => runsOf(a.t, `j${k}`)));
      return runs.every((r) => r.length > 0 && r.every((x) => x.status === 'succeeded'));
    });
    await a.t.app.services.scheduler.whenIdle();
    await b.t.app.services.scheduler.whenIdle();
    const all = (await Promise.all([0, 1, 2, 3].map((k) => runsOf(a.t, `j${k}`)))).flat();
    assert.equal(all.length, 4, `one run per job: ${JSON.stringify(all.map((r) => [r.job_id, r.process_id]))}`);
    assert.ok(all.every((r) => r.rows_read === 30));
    assert.equal(new Set(all.map((r) => r.process_id)).size, 2, 'both processes ran runs');
    for (let k = 0; k < 4; k++) assert.equal((await a.t.documents(`kb${k}`)).length, 30);
  });

  it('a process that stalls loses its run: another resumes it from the last checkpoint, and the stalled one writes nothing when it wakes', async () => {
    const dataDir = tempDir();
    const clock = new ManualClock(at(-1));
    const stalledStore = { closed: false };
    const slow = heldProvider(false);
    const a = await member(dataDir, clock, slow, {}, gatedStore(stalledStore));
    const fast = heldProvider(false);
    const b = await member(dataDir, clock, fast);
    await setUp(a.t, 50, 1);
    const jobId = await createJob(a.t, 'j', 'kb0');

    // a runs the tick alone (b does not schedule yet); its first batch is checkpointed, its second
    // is held in the embedding; then a stalls: no store call of a gets through.
    await a.t.app.services.scheduler.start();
    const release = slow.holdFrom(2);
    clock.set(at(0));
    await waitFor('the second batch to be in the provider', () => slow.held!() > 0);
    assert.equal((await a.t.app.services.store.getJobById(jobId))?.totals.rows_read, 10, 'the first batch is checkpointed');
    stalledStore.closed = true;
    const [run] = await b.t.app.services.store.listRunningRuns();
    assert.equal(run?.processId, a.id);

    // b's sweep finds the claim lapsed and resumes the same run from the checkpoint.
    await b.t.app.services.scheduler.start();
    await waitFor('b to finish the run', async () => (await b.t.app.services.store.getRun(jobId, run!.id))?.status === 'succeeded');
    const byB = (await b.t.app.services.store.getRun(jobId, run!.id)) as RunRecord;
    assert.equal(byB.processId, b.id, 'finished by b');
    assert.equal(byB.rowsRead, 50, 'the run read each row once: 10 by a, 40 by b from the checkpoint');
    assert.ok(fast.embedded() <= 40, `b embedded only what came after the checkpoint: ${fast.embedded()}`);

    // a wakes up: its held batch completes and reaches its checkpoint, which finds the run taken over.
    release();
    stalledStore.closed = false;
    await waitFor('a to give the run up', () => !a.t.app.services.scheduler.isRunning(jobId));
    await a.t.app.services.scheduler.whenIdle();
    const after = (await a.t.app.services.store.getRun(jobId, run!.id)) as RunRecord;
    assert.deepEqual(
      [after.status, after.processId, after.rowsRead],
      ['succeeded', b.id, 50],
      'a wrote nothing over the run b finished',
    );
    const job = await a.t.request('GET', '/jobs/j');
    assert.equal(job.body.data.status, 'scheduled');
    assert.equal(job.body.data.totals.rows_read, 50, 'no batch counted twice');
    assert.deepEqual(job.body.data.watermark.key, ['50'], 'the watermark did not move back to what a had read');
    assert.equal((await runsOf(a.t, 'j')).length, 1, 'one run for the tick');
    const docs = await a.t.documents('kb0');
    assert.equal(docs.length, 50);
    assert.equal(new Set(docs.map((d) => d.id)).size, 50);
  });

  it('a run held by a dead process of this host is resumed at once, without waiting out its claim', async () => {
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const dead = `${os.hostname()}:${Number(child.stdout)}:feedbeef`;
    assert.equal(holderIsDeadHere(dead), true);
    assert.equal(holderIsDeadHere(`${os.hostname()}:${process.pid}:x`), false, 'this process is alive');
    assert.equal(holderIsDeadHere(`other-host:${Number(child.stdout)}:x`), false, 'another host is not ours to judge');

    const dataDir = tempDir();
    const clock = new ManualClock(at(1));
    const a = await member(dataDir, clock, heldProvider(false), { leaseTtlMs: 60_000 });
    await setUp(a.t, 20, 1);
    const jobId = await createJob(a.t, 'j', 'kb0');
    // What a process killed mid-run leaves: the job running under its claim (a minute left), its run recorded.
    const store = a.t.app.services.store;
    const run: RunRecord = {
      id: 'run_0000000000000000000000000a',
      jobId,
      trigger: 'schedule',
      status: 'running',
      startedAt: at(0),
      finishedAt: null,
      rowsRead: 0,
      documentsAdded: 0,
      documentsUpdated: 0,
      documentsUnchanged: 0,
      rowsSkipped: 0,
      rowsFailed: 0,
      documentsDeleted: 0,
      chunksWritten: 0,
      watermarkStart: null,
      watermarkEnd: null,
      error: null,
      processId: dead,
    };
    await store.mutateJob(
      jobId,
      (job) => ({
        ...job,
        status: 'running',
        statusBeforeRun: 'scheduled',
        nextRunMs: at(60),
        lastRun: { id: run.id, trigger: run.trigger, status: 'running', startedAt: run.startedAt, finishedAt: null, error: null },
        runLease: { owner: dead, expiresAt: Date.now() + 60_000 },
      }),
      run,
    );
    await a.t.app.services.scheduler.start();
    await waitFor('the run to be resumed and finished', async () => (await store.getRun(jobId, run.id))?.status === 'succeeded', 20_000);
    const finished = (await store.getRun(jobId, run.id)) as RunRecord;
    assert.equal(finished.processId, a.id);
    assert.equal(finished.rowsRead, 20);
    assert.equal((await runsOf(a.t, 'j')).length, 1, 'the same run, not a new one');
  });

  it('pause, delete and run-now through another process reach the run where it runs', async () => {
    const dataDir = tempDir();
    const clock = new ManualClock(at(-1));
    const providers = heldProvider(true);
    const a = await member(dataDir, clock, providers, { leaseTtlMs: 3000, maxConcurrentRuns: 2 });
    const b = await member(dataDir, clock, providers, { leaseTtlMs: 3000 });
    await setUp(a.t, 30, 2);
    const pausedId = await createJob(a.t, 'paused', 'kb0');
    const deletedId = await createJob(a.t, 'deleted', 'kb1');
    // Only a schedules; b serves the API (its scheduler off), as a process with KBSYNC_SCHEDULER=off would.
    await a.t.app.services.scheduler.start();
    const release = providers.hold();
    clock.set(at(0));
    await waitFor('both runs to be in the provider', () => providers.held!() >= 2);

    const conflict = await b.t.request('POST', '/jobs/paused/run');
    assert.equal(conflict.status, 409, 'run-now through b sees the run a holds');

    const t0 = Date.now();
    assert.equal((await b.t.request('POST', '/jobs/paused/pause')).status, 200);
    await waitFor('a to stop the paused run', () => !a.t.app.services.scheduler.isRunning(pausedId), 30_000);
    const pauseMs = Date.now() - t0;
    const [paused] = await runsOf(a.t, 'paused');
    assert.equal(paused.status, 'cancelled', JSON.stringify(paused));
    assert.match(paused.error.message, /paused/);
    assert.equal((await a.t.request('GET', '/jobs/paused')).body.data.status, 'paused');

    assert.equal((await b.t.request('DELETE', '/jobs/deleted')).status, 200);
    await waitFor('a to stop the deleted run', () => !a.t.app.services.scheduler.isRunning(deletedId), 30_000);
    assert.equal((await a.t.app.services.store.listRunningRuns()).length, 0, 'no run left running');
    release();
    // The watch reads each run's job every third of the claim's life (1 s here): the stop takes
    // about that long, not the claim's life. A generous bound for a loaded machine.
    assert.ok(pauseMs < 10_000, `the pause reached the run in ${pauseMs} ms`);
  });

  it('shutdown gives up the claims of runs it abandons, so another process resumes them at once', async () => {
    const dataDir = tempDir();
    const clock = new ManualClock(at(-1));
    const stuck = heldProvider(false);
    const a = await member(dataDir, clock, stuck, { leaseTtlMs: 60_000, shutdownTimeoutMs: 100 });
    await setUp(a.t, 20, 1);
    const jobId = await createJob(a.t, 'j', 'kb0');
    await a.t.app.services.scheduler.start();
    const release = stuck.hold();
    clock.set(at(0));
    await waitFor('the run to be in the provider', () => stuck.held!() > 0);
    // The held batch ignores the shutdown's abort: the run is abandoned at the deadline.
    await a.t.app.services.scheduler.stop();
    const job = await a.t.app.services.store.getJobById(jobId);
    assert.equal(job?.status, 'running');
    assert.deepEqual(job?.runLease, { owner: a.id, expiresAt: 0 }, 'the claim is given up, not left to run out its minute');

    const b = await member(dataDir, clock, heldProvider(false), { leaseTtlMs: 60_000 });
    await b.t.app.services.scheduler.start();
    const [run] = await runsOf(b.t, 'j');
    await waitFor('b to finish the run', async () => (await b.t.app.services.store.getRun(jobId, run.run_id))?.status === 'succeeded', 20_000);
    assert.equal((await b.t.app.services.store.getRun(jobId, run.run_id))?.processId, b.id);
    release();
  });

  it('GET /health names the backend, this process and the live processes with the runs each holds', async () => {
    const dataDir = tempDir();
    const clock = new ManualClock(at(-1));
    const providers = heldProvider(false);
    const a = await member(dataDir, clock, providers, { leaseTtlMs: 3000 });
    const b = await member(dataDir, clock, providers, { leaseTtlMs: 3000 });
    await setUp(a.t, 10, 1);
    await createJob(a.t, 'j', 'kb0');
    await a.t.app.services.scheduler.start();
    await b.t.app.services.fleet.join();
    const release = providers.hold();
    clock.set(at(0));
    await waitFor('the run to be in the provider', () => providers.held!() > 0);
    const health = (await b.t.request('GET', '/health')).body.data;
    assert.equal(health.backend, 'sqlite');
    assert.equal(health.process_id, b.id);
    const fleet = Object.fromEntries(health.fleet.map((p: any) => [p.process_id, p]));
    assert.deepEqual(Object.keys(fleet).sort(), [a.id, b.id].sort());
    assert.equal(fleet[a.id].runs, 1);
    assert.equal(fleet[b.id].runs, 0);
    assert.equal(fleet[a.id].pid, process.pid);
    assert.equal(fleet[a.id].host, os.hostname());
    release();
    await a.t.app.services.scheduler.whenIdle();
    await b.t.close();
    const after = (await a.t.request('GET', '/health')).body.data;
    assert.deepEqual(after.fleet.map((p: any) => p.process_id), [a.id], 'a process that stopped leaves the fleet at once');
  });
});
