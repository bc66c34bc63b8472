/**
 * Scheduler benchmark (issue 9): many jobs with a 1-minute interval on small PostgreSQL tables
 * that receive nothing new, the real scheduler on the real clock. Reports how many of the runs
 * due were executed, how late the runs with nothing new started and finished, the CPU each run
 * costs, and the CPU the process uses between ticks.
 *
 * Jobs are set up in steady state: one job per table is created through the API and run once
 * (its backfill), then cloned in the store with that job's watermark, so every tick measured finds
 * nothing new. Several jobs share a table and its knowledge base (a knowledge base receives one
 * table); the per-account job limit is raised by configuration (KBSYNC_MAX_ACTIVE_JOBS).
 *
 *   npx tsx bench/scheduler.ts                         10,000 jobs, 3 ticks, all due on the same second
 *   npx tsx bench/scheduler.ts --jobs 2000 --ticks 2   other sizes
 *   npx tsx bench/scheduler.ts --spread                start times spread over the minute
 *   npx tsx bench/scheduler.ts --serial 300            only the cost of one empty run: 300 jobs, one at a time
 *   npx tsx bench/scheduler.ts --no-serial             without it
 *   npx tsx bench/scheduler.ts --no-serial --spread --processes 1,3
 *                     a fleet (issue 11): the store in PostgreSQL (KBSYNC_STORE_URL), set up by this
 *                     process, then 1 and then 3 scheduling processes (`createApp` + the scheduler,
 *                     as `kbsync serve` runs it) on that one store, each size on a fresh setup;
 *                     reports the runs per process and the checks wasted (another process won)
 *   npx tsx bench/scheduler.ts --store postgres        the single in-process run on the PostgreSQL store
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { newId } from '../src/core/ids.js';
import { HashingEmbeddingProvider } from '../src/embeddings/hashing/provider.js';
import type { JobRecord } from '../src/store/port.js';
import { tempDir } from '../test/helpers/app.js';
import { type TempDatabase, withTempPostgresDatabase } from '../test/helpers/databases.js';

const MINUTE = 60_000;
const ROWS_PER_TABLE = 20;

interface Options {
  jobs: number;
  tables: number;
  ticks: number;
  spread: boolean;
  /** Only the serial phase, with this many jobs. */
  serial: number | null;
  /** Skip the serial phase. */
  noSerial: boolean;
  /** Where the control store is; a fleet needs PostgreSQL. */
  store: 'sqlite' | 'postgres';
  /** Fleet sizes to measure in turn (separate scheduling processes on one PostgreSQL store); null: in this process. */
  processes: number[] | null;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    jobs: 10_000,
    tables: 100,
    ticks: 3,
    spread: false,
    serial: null,
    noSerial: false,
    store: 'sqlite',
    processes: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => Number(argv[++i]);
    if (a === '--jobs') o.jobs = next();
    else if (a === '--tables') o.tables = next();
    else if (a === '--ticks') o.ticks = next();
    else if (a === '--spread') o.spread = true;
    else if (a === '--serial') o.serial = next();
    else if (a === '--no-serial') o.noSerial = true;
    else if (a === '--store') o.store = argv[++i] === 'postgres' ? 'postgres' : 'sqlite';
    else if (a === '--processes') o.processes = String(argv[++i]).split(',').map(Number);
    else throw new Error(`unknown argument ${a}`);
  }
  // Processes share their work through the store: one PostgreSQL store for every fleet size.
  if (o.processes !== null) o.store = 'postgres';
  return o;
}

const quantile = (sorted: number[], q: number): number =>
  sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Setup {
  app: Awaited<ReturnType<typeof createApp>>;
  dataDir: string;
  jobs: JobRecord[];
  /** What scheduling processes on this store are given (empty for SQLite in this process). */
  storeEnv: Record<string, string>;
  readRuns(): Promise<RunRow[]>;
  close(): Promise<void>;
}

const STORE_SCHEMA = 'kbsync_bench';

/**
 * `jobs` jobs over `tables` tables of ROWS_PER_TABLE rows, every one due first at `firstTick`
 * (spread: at `firstTick` plus its share of the minute), in steady state (watermark at the end).
 */
async function setUp(o: {
  jobs: number;
  tables: number;
  spread: boolean;
  firstTick: number;
  env: Record<string, string>;
  store: 'sqlite' | 'postgres';
}): Promise<Setup> {
  const db = await withTempPostgresDatabase();
  const storeDb: TempDatabase | null = o.store === 'postgres' ? await withTempPostgresDatabase() : null;
  const storeEnv: Record<string, string> = storeDb
    ? {
        KBSYNC_STORE_URL: storeDb.url,
        KBSYNC_STORE_SCHEMA: STORE_SCHEMA,
        KBSYNC_SECRET_KEY: randomBytes(32).toString('hex'),
      }
    : {};
  const values: string[] = [];
  for (let t = 0; t < o.tables; t++) {
    values.push(
      `CREATE TABLE t${t} (id int PRIMARY KEY, title text NOT NULL, body text NOT NULL, updated_at timestamptz NOT NULL);` +
        `CREATE INDEX t${t}_keyset ON t${t} (updated_at, id);` +
        `INSERT INTO t${t} SELECT g, 'item ' || g, 'text of item ' || g, timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, ${ROWS_PER_TABLE}) g;`,
    );
  }
  await db.exec(values.join('\n'));
  const dataDir = tempDir('kbsync-bench-scheduler-');
  const provider = new HashingEmbeddingProvider({ dimensions: 64 });
  const config = loadConfig(
    {
      LOG_LEVEL: 'silent',
      KBSYNC_MAX_ACTIVE_JOBS: String(o.jobs + o.tables),
      ...storeEnv,
      ...o.env,
    } as NodeJS.ProcessEnv,
    {
      dataDir,
      scheduler: false,
    },
  );
  const app = await createApp(config, { providerFactory: () => provider });
  const call = async (method: 'GET' | 'POST', url: string, payload?: object) => {
    const res = await app.server.inject({ method, url, ...(payload ? { payload } : {}) });
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.body}`);
    return res.json().data;
  };
  await call('POST', '/databases', { name: 'pg', engine: 'postgres', parameters: { url: db.url } });
  const { store, scheduler } = app.services;
  const jobs: JobRecord[] = [];
  const perTable = Math.ceil(o.jobs / o.tables);
  for (let t = 0; t < o.tables && jobs.length < o.jobs; t++) {
    await call('POST', '/knowledge_bases', { kb_name: `kb${t}` });
    const created = await call('POST', '/jobs', {
      job_name: `t${t}_0`,
      source_table: `pg.t${t}`,
      kb_name: `kb${t}`,
      content_columns: ['title', 'body'],
      filter_column: 'updated_at',
      interval: '1 MINUTE',
      start_time: new Date(o.firstTick + 10 * MINUTE).toISOString(),
      end_time: new Date(o.firstTick + 24 * 60 * MINUTE).toISOString(),
    });
    // The backfill, so every later run finds nothing new; then a run that reads the lookback
    // window once, as the first run after a backfill does (what it learns is kept with the job).
    for (let k = 0; k < 2; k++) {
      await scheduler.runNow((await store.getJobById(created.job_id))!);
      await scheduler.whenIdle();
    }
    const synced = (await store.getJobById(created.job_id))!;
    if (synced.lastRun?.status !== 'succeeded')
      throw new Error(`backfill of t${t}: ${JSON.stringify(synced.lastRun)}`);
    for (let i = 0; i < perTable && jobs.length < o.jobs; i++) {
      const n = jobs.length;
      const startMs = o.spread ? o.firstTick + Math.floor((n * MINUTE) / o.jobs) : o.firstTick;
      const now = Date.now();
      const job: JobRecord = {
        ...synced,
        id: i === 0 ? synced.id : newId('job'),
        name: `t${t}_${i}`,
        startMs,
        endMs: startMs + 24 * 60 * MINUTE,
        nextRunMs: startMs,
        status: 'scheduled',
        statusBeforeRun: null,
        lastRun: null,
        createdAt: now,
        updatedAt: now,
      };
      if (i === 0) await store.mutateJob(job.id, () => job);
      else if (!(await store.insertJob(job, Number.MAX_SAFE_INTEGER)).ok)
        throw new Error(`could not insert ${job.name}`);
      jobs.push(job);
    }
  }
  let appOpen = true;
  return {
    get app() {
      return app;
    },
    dataDir,
    jobs,
    storeEnv,
    readRuns: () => (storeDb ? readPostgresRuns(storeDb.url) : Promise.resolve(readRuns(dataDir))),
    async close() {
      if (appOpen) await app.close();
      appOpen = false;
      await db.close();
      await storeDb?.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
    // Closed before a fleet starts, so only the scheduling processes are on the store.
    async closeApp() {
      if (appOpen) await app.close();
      appOpen = false;
    },
  } as Setup & { closeApp(): Promise<void> };
}

interface RunRow {
  jobId: string;
  trigger: string;
  status: string;
  startedAt: number;
  finishedAt: number | null;
  rowsRead: number;
  documentsAdded: number;
  documentsUpdated: number;
  documentsDeleted?: number;
  processId?: string;
}

/** Nothing new: no document added, updated or deleted (a run may still re-read its lookback window). */
const nothingNew = (r: RunRow) =>
  r.status === 'succeeded' && r.documentsAdded + r.documentsUpdated + (r.documentsDeleted ?? 0) === 0;

async function readPostgresRuns(url: string): Promise<RunRow[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(`SELECT body FROM ${STORE_SCHEMA}.runs`);
    return rows
      .map((r) => (typeof r.body === 'string' ? JSON.parse(r.body) : r.body) as RunRow)
      .filter((r) => r.trigger !== 'manual');
  } finally {
    await client.end();
  }
}

function readRuns(dataDir: string): RunRow[] {
  const db = new Database(path.join(dataDir, 'kbsync.db'), { readonly: true });
  try {
    return (db.prepare('SELECT body FROM runs').all() as { body: string }[])
      .map((r) => JSON.parse(r.body) as RunRow)
      .filter((r) => r.trigger !== 'manual');
  } finally {
    db.close();
  }
}

/** The next whole minute at least `leadMs` away. */
function nextMinute(leadMs: number): number {
  return Math.ceil((Date.now() + leadMs) / MINUTE) * MINUTE;
}

/**
 * All jobs due at once, one run and one check at a time: the cost of one run with nothing new,
 * end to end. Measured at the second tick (the first run after a start computes what later runs
 * remember, like the lookback window's start).
 */
async function serialPhase(jobs: number, store: 'sqlite' | 'postgres'): Promise<void> {
  const warmTick = nextMinute(20_000);
  const firstTick = warmTick + MINUTE;
  const tables = Math.max(1, Math.ceil(jobs / 100));
  const s = await setUp({
    jobs,
    tables,
    spread: false,
    firstTick: warmTick,
    env: { KBSYNC_MAX_CONCURRENT_RUNS: '1', KBSYNC_MAX_CONCURRENT_CHECKS: '1' },
    store,
  });
  try {
    await s.app.services.scheduler.start();
    while (Date.now() < firstTick) await sleep(50);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let runs: RunRow[] = [];
    for (;;) {
      runs = (await s.readRuns()).filter((r) => r.status !== 'running' && r.startedAt >= firstTick);
      if (runs.length >= jobs || performance.now() - t0 > 10 * MINUTE) break;
      await sleep(200);
    }
    const wall = Math.max(...runs.map((r) => r.finishedAt ?? 0)) - firstTick;
    const cpu = process.cpuUsage(cpu0);
    await s.app.services.scheduler.stop();
    const failed = runs.filter((r) => r.status !== 'succeeded').length;
    console.log(
      '\nserial: every job due at once, one at a time (KBSYNC_MAX_CONCURRENT_RUNS=1, KBSYNC_MAX_CONCURRENT_CHECKS=1), second tick',
    );
    console.table([
      {
        jobs,
        'runs done': runs.length,
        failed,
        'wall ms per empty run': Number((wall / runs.length).toFixed(2)),
        'process CPU ms per empty run': Number(((cpu.user + cpu.system) / 1000 / runs.length).toFixed(2)),
      },
    ]);
  } finally {
    await s.close();
  }
}

/** `jobs` jobs for `ticks` ticks on the real clock. */
async function scalePhase(o: Options): Promise<void> {
  const setupStarted = performance.now();
  // Setup of 10,000 jobs takes a while; the first tick is far enough ahead for it.
  const firstTick = nextMinute(Math.max(30_000, o.jobs * 10));
  const s = await setUp({
    jobs: o.jobs,
    tables: o.tables,
    spread: o.spread,
    firstTick,
    env: {},
    store: o.store,
  });
  const setupSeconds = (performance.now() - setupStarted) / 1000;
  if (Date.now() > firstTick - 5_000)
    throw new Error(`setup took ${setupSeconds.toFixed(0)} s, past the first tick; use fewer jobs`);
  try {
    const samples: Array<{ at: number; cpu: number }> = [];
    const sample = () => {
      const c = process.cpuUsage();
      samples.push({ at: Date.now(), cpu: (c.user + c.system) / 1000 });
    };
    const sampler = setInterval(sample, 250);
    await s.app.services.scheduler.start();
    // The ticks measured are those due before `endAt`; runs get a few seconds more to start.
    const endAt = firstTick + o.ticks * MINUTE - 1_000;
    const GRACE_MS = 5_000;
    while (Date.now() < endAt + GRACE_MS) await sleep(250);
    sample();
    clearInterval(sampler);
    await s.app.services.scheduler.stop();

    const byJob = new Map(s.jobs.map((j) => [j.id, j]));
    const all = (await s.readRuns()).filter(
      (r) => r.startedAt >= firstTick && r.startedAt < endAt + GRACE_MS,
    );
    const dueOf = (job: JobRecord) => Math.max(0, Math.ceil((endAt - job.startMs) / MINUTE));
    const due = s.jobs.reduce((n, j) => n + dueOf(j), 0);
    // A job runs at most once per tick due (a late run makes up for a tick, not for two).
    const perJob = new Map<string, number>();
    for (const r of all) perJob.set(r.jobId, (perJob.get(r.jobId) ?? 0) + 1);
    const executed = [...perJob].reduce((n, [id, k]) => n + Math.min(k, dueOf(byJob.get(id)!)), 0);
    const runs = all.filter((r) => r.startedAt < endAt);
    const tickOf = (r: RunRow) => {
      const job = byJob.get(r.jobId)!;
      return job.startMs + Math.floor((r.startedAt - job.startMs) / MINUTE) * MINUTE;
    };
    const empty = runs.filter(nothingNew);
    const start = empty.map((r) => r.startedAt - tickOf(r)).sort((a, b) => a - b);
    const finish = empty
      .filter((r) => r.finishedAt !== null)
      .map((r) => r.finishedAt! - tickOf(r))
      .sort((a, b) => a - b);
    // Idle: from one second after the last run of a tick ended to one second before the next
    // tick (with spread start times there is no such window).
    const idle: number[] = [];
    for (let k = 0; k < o.ticks - 1 && !o.spread; k++) {
      const tick = firstTick + k * MINUTE;
      const next = tick + MINUTE;
      const ended = runs
        .filter((r) => r.startedAt >= tick && r.startedAt < next)
        .map((r) => r.finishedAt ?? next);
      const from = Math.max(...ended, tick) + 1_000;
      const to = next - 1_000;
      if (to - from < 5_000) continue;
      const inWindow = samples.filter((x) => x.at >= from && x.at <= to);
      if (inWindow.length < 2) continue;
      const a = inWindow[0]!;
      const b = inWindow[inWindow.length - 1]!;
      idle.push((b.cpu - a.cpu) / (b.at - a.at));
    }
    const total =
      samples.length > 1
        ? samples[samples.length - 1]!.cpu - samples.find((x) => x.at >= firstTick)!.cpu
        : Number.NaN;
    console.log(
      `\n${o.jobs} jobs on ${o.tables} tables, ${o.store === 'postgres' ? 'PostgreSQL store, ' : ''}1-minute interval, ${o.spread ? 'start times spread over the minute' : 'all due on the same second'}, ${o.ticks} ticks (setup ${setupSeconds.toFixed(0)} s)`,
    );
    console.table([
      {
        'ticks due': due,
        'runs executed': executed,
        'executed / due': Number((executed / due).toFixed(3)),
        failed: runs.filter((r) => r.status === 'failed').length,
        'runs with nothing new': empty.length,
        'process CPU ms per run': Number((total / Math.max(1, all.length)).toFixed(2)),
      },
    ]);
    console.table([
      {
        'runs with nothing new': 'start lateness ms',
        p50: quantile(start, 0.5),
        p99: quantile(start, 0.99),
        max: start.at(-1) ?? Number.NaN,
      },
      {
        'runs with nothing new': 'finish lateness ms',
        p50: quantile(finish, 0.5),
        p99: quantile(finish, 0.99),
        max: finish.at(-1) ?? Number.NaN,
      },
    ]);
    console.log(
      idle.length > 0
        ? `idle CPU between ticks: ${idle.map((x) => `${(x * 100).toFixed(2)}%`).join(', ')} of one core`
        : 'idle CPU between ticks: no idle window (the ticks left no quiet time)',
    );
  } finally {
    await s.close();
  }
}

/** Runs executed ÷ ticks due and lateness of the runs with nothing new, over the ticks before `endAt`. */
function tally(jobs: JobRecord[], all: RunRow[], endAt: number) {
  const byJob = new Map(jobs.map((j) => [j.id, j]));
  const dueOf = (job: JobRecord) => Math.max(0, Math.ceil((endAt - job.startMs) / MINUTE));
  const due = jobs.reduce((n, j) => n + dueOf(j), 0);
  const perJob = new Map<string, number>();
  for (const r of all) perJob.set(r.jobId, (perJob.get(r.jobId) ?? 0) + 1);
  // A job runs at most once per tick due (runs in the grace after `endAt` may make up for late ones).
  const executed = [...perJob].reduce((n, [id, k]) => n + Math.min(k, dueOf(byJob.get(id)!)), 0);
  const runs = all.filter((r) => r.startedAt < endAt);
  // Runs beyond the ticks due before `endAt`: a tick run twice (across the fleet), were there any.
  const perJobBefore = new Map<string, number>();
  for (const r of runs) perJobBefore.set(r.jobId, (perJobBefore.get(r.jobId) ?? 0) + 1);
  const extra = [...perJobBefore].reduce((n, [id, k]) => n + Math.max(0, k - dueOf(byJob.get(id)!)), 0);
  const tickOf = (r: RunRow) => {
    const job = byJob.get(r.jobId)!;
    return job.startMs + Math.floor((r.startedAt - job.startMs) / MINUTE) * MINUTE;
  };
  const empty = runs.filter(nothingNew);
  const start = empty.map((r) => r.startedAt - tickOf(r)).sort((a, b) => a - b);
  const finish = empty
    .filter((r) => r.finishedAt !== null)
    .map((r) => r.finishedAt! - tickOf(r))
    .sort((a, b) => a - b);
  return { due, executed, extra, runs, empty, start, finish };
}

interface WorkerReport {
  processId: string;
  cpuMs: number;
  wastedChecks: number;
}

/** A scheduling process of the fleet: this file with `--worker`, its output read line by line. */
function startWorker(
  env: Record<string, string>,
  firstTick: number,
): { child: ChildProcess; ready: Promise<void>; report: Promise<WorkerReport> } {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), '--worker', String(firstTick)],
    {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  let out = '';
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => {
    onReady = resolve;
  });
  child.stdout!.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    if (out.includes('ready\n')) onReady();
  });
  const report = new Promise<WorkerReport>((resolve, reject) => {
    child.on('exit', (code) => {
      const line = out.trim().split('\n').at(-1) ?? '';
      if (code === 0 && line.startsWith('{')) resolve(JSON.parse(line) as WorkerReport);
      else reject(new Error(`worker exited ${code}: ${out.slice(-2000)}`));
    });
  });
  return { child, ready, report };
}

/** In a worker: the app on the store of the environment, scheduling until told to stop on stdin. */
async function worker(firstTick: number): Promise<void> {
  const dataDir = tempDir('kbsync-bench-fleet-');
  const provider = new HashingEmbeddingProvider({ dimensions: 64 });
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent' }, { dataDir, scheduler: false });
  const app = await createApp(config, { providerFactory: () => provider });
  const { scheduler } = app.services;
  await scheduler.start();
  let cpuAtTick = process.cpuUsage();
  setTimeout(() => (cpuAtTick = process.cpuUsage()), Math.max(0, firstTick - Date.now()));
  process.stdout.write('ready\n');
  await new Promise<void>((resolve) =>
    process.stdin.on('data', (d) => d.toString().includes('stop') && resolve()),
  );
  const cpu = process.cpuUsage(cpuAtTick);
  await scheduler.stop();
  const report: WorkerReport = {
    processId: scheduler.fleet.id,
    cpuMs: (cpu.user + cpu.system) / 1000,
    wastedChecks: scheduler.stats().wastedChecks,
  };
  await app.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

/** `processes` scheduling processes on one PostgreSQL store for `ticks` ticks on the real clock. */
async function fleetPhase(o: Options, processes: number): Promise<void> {
  const setupStarted = performance.now();
  // Room for the setup and for the processes to start (tsx compiles each).
  const firstTick = nextMinute(Math.max(30_000, o.jobs * 10) + 20_000);
  const s = (await setUp({
    jobs: o.jobs,
    tables: o.tables,
    spread: o.spread,
    firstTick,
    env: {},
    store: 'postgres',
  })) as Setup & {
    closeApp(): Promise<void>;
  };
  const workers: Array<ReturnType<typeof startWorker>> = [];
  try {
    await s.closeApp();
    const env = { ...s.storeEnv, KBSYNC_MAX_ACTIVE_JOBS: String(o.jobs + o.tables) };
    for (let i = 0; i < processes; i++) workers.push(startWorker(env, firstTick));
    await Promise.all(workers.map((w) => w.ready));
    const setupSeconds = (performance.now() - setupStarted) / 1000;
    if (Date.now() > firstTick - 2_000)
      throw new Error(`setup took ${setupSeconds.toFixed(0)} s, past the first tick; use fewer jobs`);
    const endAt = firstTick + o.ticks * MINUTE - 1_000;
    const GRACE_MS = 5_000;
    const load0 = os.loadavg()[0]!;
    while (Date.now() < endAt + GRACE_MS) await sleep(250);
    const load1 = os.loadavg()[0]!;
    for (const w of workers) w.child.stdin!.write('stop\n');
    const reports = await Promise.all(workers.map((w) => w.report));

    const all = (await s.readRuns()).filter(
      (r) => r.startedAt >= firstTick && r.startedAt < endAt + GRACE_MS,
    );
    const t = tally(s.jobs, all, endAt);
    const cpuMs = reports.reduce((n, r) => n + r.cpuMs, 0);
    const wasted = reports.reduce((n, r) => n + r.wastedChecks, 0);
    console.log(
      `\n${processes} process(es) on one PostgreSQL store: ${o.jobs} jobs on ${o.tables} tables, 1-minute interval, ${o.spread ? 'start times spread over the minute' : 'all due on the same second'}, ${o.ticks} ticks (setup ${setupSeconds.toFixed(0)} s; load average ${load0.toFixed(1)} → ${load1.toFixed(1)})`,
    );
    console.table([
      {
        processes,
        'ticks due': t.due,
        'runs executed': t.executed,
        'executed / due': Number((t.executed / t.due).toFixed(3)),
        'second runs of a tick': t.extra,
        failed: t.runs.filter((r) => r.status === 'failed').length,
        'runs with nothing new': t.empty.length,
        'wasted checks': wasted,
        'CPU ms per run (all processes)': Number((cpuMs / Math.max(1, all.length)).toFixed(2)),
      },
    ]);
    console.table([
      {
        'runs with nothing new': 'start lateness ms',
        p50: quantile(t.start, 0.5),
        p99: quantile(t.start, 0.99),
        max: t.start.at(-1) ?? Number.NaN,
      },
      {
        'runs with nothing new': 'finish lateness ms',
        p50: quantile(t.finish, 0.5),
        p99: quantile(t.finish, 0.99),
        max: t.finish.at(-1) ?? Number.NaN,
      },
    ]);
    console.table(
      reports.map((r, i) => ({
        process: i + 1,
        runs: all.filter((x) => x.processId === r.processId).length,
        'wasted checks': r.wastedChecks,
        'CPU s': Number((r.cpuMs / 1000).toFixed(1)),
      })),
    );
  } finally {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    await s.close();
  }
}

const argv = process.argv.slice(2);
if (argv[0] === '--worker') {
  await worker(Number(argv[1]));
  process.exit(0);
}
const options = parseArgs(argv);
console.log(
  `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, load average ${os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}`,
);
if (options.serial !== null) await serialPhase(options.serial, options.store);
else {
  if (!options.noSerial) await serialPhase(300, options.store);
  if (options.processes === null) await scalePhase(options);
  else for (const n of options.processes) await fleetPhase(options, n);
}
process.exit(0);
