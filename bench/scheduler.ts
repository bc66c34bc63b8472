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
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { newId } from '../src/core/ids.js';
import { HashingEmbeddingProvider } from '../src/embeddings/hashing/provider.js';
import type { JobRecord } from '../src/store/port.js';
import { tempDir } from '../test/helpers/app.js';
import { withTempPostgresDatabase } from '../test/helpers/databases.js';

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
}

function parseArgs(argv: string[]): Options {
  const o: Options = { jobs: 10_000, tables: 100, ticks: 3, spread: false, serial: null, noSerial: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => Number(argv[++i]);
    if (a === '--jobs') o.jobs = next();
    else if (a === '--tables') o.tables = next();
    else if (a === '--ticks') o.ticks = next();
    else if (a === '--spread') o.spread = true;
    else if (a === '--serial') o.serial = next();
    else if (a === '--no-serial') o.noSerial = true;
    else throw new Error(`unknown argument ${a}`);
  }
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
  close(): Promise<void>;
}

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
}): Promise<Setup> {
  const db = await withTempPostgresDatabase();
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
    { LOG_LEVEL: 'silent', KBSYNC_MAX_ACTIVE_JOBS: String(o.jobs + o.tables), ...o.env } as NodeJS.ProcessEnv,
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
  return {
    app,
    dataDir,
    jobs,
    async close() {
      await app.close();
      await db.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
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
}

/** Nothing new: no document added, updated or deleted (a run may still re-read its lookback window). */
const nothingNew = (r: RunRow) =>
  r.status === 'succeeded' && r.documentsAdded + r.documentsUpdated + (r.documentsDeleted ?? 0) === 0;

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
async function serialPhase(jobs: number): Promise<void> {
  const warmTick = nextMinute(20_000);
  const firstTick = warmTick + MINUTE;
  const tables = Math.max(1, Math.ceil(jobs / 100));
  const s = await setUp({
    jobs,
    tables,
    spread: false,
    firstTick: warmTick,
    env: { KBSYNC_MAX_CONCURRENT_RUNS: '1', KBSYNC_MAX_CONCURRENT_CHECKS: '1' },
  });
  try {
    await s.app.services.scheduler.start();
    while (Date.now() < firstTick) await sleep(50);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let runs: RunRow[] = [];
    for (;;) {
      runs = readRuns(s.dataDir).filter((r) => r.status !== 'running' && r.startedAt >= firstTick);
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
  const s = await setUp({ jobs: o.jobs, tables: o.tables, spread: o.spread, firstTick, env: {} });
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
    const all = readRuns(s.dataDir).filter((r) => r.startedAt >= firstTick && r.startedAt < endAt + GRACE_MS);
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
      `\n${o.jobs} jobs on ${o.tables} tables, 1-minute interval, ${o.spread ? 'start times spread over the minute' : 'all due on the same second'}, ${o.ticks} ticks (setup ${setupSeconds.toFixed(0)} s)`,
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

const options = parseArgs(process.argv.slice(2));
console.log(`${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`);
if (options.serial !== null) await serialPhase(options.serial);
else {
  if (!options.noSerial) await serialPhase(300);
  await scalePhase(options);
}
process.exit(0);
