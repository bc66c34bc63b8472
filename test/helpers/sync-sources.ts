/**
 * Sync tests against real PostgreSQL, MySQL/MariaDB and SQLite sources: one suite, written once,
 * run per engine (STYLE.md 4). A `SourceKit` says how an engine spells what the tests need
 * (quoting, placeholders, column types, `now()`); the suite itself only talks SQL through it and
 * HTTP through the app.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, afterEach, before, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { parseMysqlUrl } from '../../src/sources/mysql/connector.js';
import type { TestApp } from './app.js';
import {
  type ServerKind,
  skipUnlessServer,
  type TempDatabase,
  withTempMysqlDatabase,
  withTempPostgresDatabase,
  withTempSqliteDatabase,
} from './databases.js';
import { jobBody, startSyncApp, type SyncTestApp } from './sync.js';

/* ------------------------------------------------------------------------------------------ */
/* Engines                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/** A filter-column type to sync by, with the values its rows get (ordered by `i`). */
export interface FilterKindCase {
  /** Short name, used in table and job names. */
  name: string;
  /** Column type in the engine's DDL. */
  type: string;
  /** The i-th value (i >= 1, increasing with i) as a literal the engine accepts for `type`. */
  value(i: number): string;
  /** The lookback the job gets when none is given (SEMANTICS.md: a few minutes for time columns, else 0). */
  defaultLookback: number;
  /** Text filter columns refuse a lookback > 0. */
  text?: boolean;
  /** The job may instead be refused at creation, with a 400 naming filter_column. */
  refusable?: boolean;
  /** A known bug this kind shows: the case runs and reports as a failing TODO until it is fixed. */
  todo?: string;
}

/** A separate connection for a writer (its own session, its own transactions). */
export interface SourceSession {
  query(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  end(): Promise<void>;
}

export interface SourceKit {
  engine: 'postgres' | 'mysql' | 'sqlite';
  /** The server the engine needs; null for an engine without one (SQLite), which never skips. */
  server: ServerKind | null;
  label: string;
  create(): Promise<TempDatabase>;
  /** Quotes an identifier. */
  q(name: string): string;
  /** The n-th (1-based) bind placeholder. */
  p(n: number): string;
  /** Column types. */
  t: { int: string; bigint: string; text: string; ts6: string; char8: string };
  /** Microsecond-precision time columns for the precision test, and how a UTC literal is written for each. */
  precisionColumns: Array<{ name: string; type: string; literal(utcText: string): string }>;
  /** Every filter-column kind the engine must support. */
  filterKinds: FilterKindCase[];
  /** A current-time expression with microseconds, evaluated like `now()` (transaction or statement start). */
  now: string;
  /** A time column type that `now` can be stored in with microseconds. */
  nowType: string;
  /** Text form of a time column, read in UTC, for comparing with a watermark. */
  timeText(expr: string): string;
  /** Opens a new session on `url`, in UTC. */
  connect(url: string): Promise<SourceSession>;
  /**
   * One writer at a time (SQLite): a transaction holding the write lock blocks every other
   * writer, so nothing else commits while it is open. The live-writers test then starts its late
   * transaction (and its clock) one run before its first write, as an application does when it
   * works between BEGIN and its first statement; otherwise no row could commit behind the
   * watermark.
   */
  singleWriter?: boolean;
}

/** The `skip` option for a suite on `kit`: a reason when its server is unreachable, else false. */
export async function skipUnlessSource(kit: SourceKit): Promise<string | false> {
  return kit.server === null ? false : skipUnlessServer(kit.server);
}

/** A broken watermark can make a run loop forever; fail instead of hanging. */
const TEST_TIMEOUT_MS = 20_000;

const pad = (n: number, width = 2) => String(n).padStart(width, '0');
const BIG = 9_007_199_254_740_993n; // 2^53 + 1: a JavaScript number cannot hold it

export const postgresKit: SourceKit = {
  engine: 'postgres',
  server: 'postgres',
  label: 'PostgreSQL',
  create: withTempPostgresDatabase,
  q: (name) => `"${name.replaceAll('"', '""')}"`,
  p: (n) => `$${n}`,
  t: { int: 'integer', bigint: 'bigint', text: 'text', ts6: 'timestamp(6)', char8: 'char(8)' },
  precisionColumns: [
    { name: 'ts', type: 'timestamp(6) without time zone', literal: (s) => s },
    { name: 'tstz', type: 'timestamptz', literal: (s) => `${s}+00` },
  ],
  filterKinds: [
    { name: 'date', type: 'date', value: (i) => `2025-01-${pad(i)}`, defaultLookback: 300 },
    { name: 'int', type: 'integer', value: (i) => String(i * 10), defaultLookback: 0 },
    { name: 'bigint', type: 'bigint', value: (i) => String(BIG + BigInt(i) * 2n), defaultLookback: 0 },
    { name: 'numeric', type: 'numeric(12,4)', value: (i) => `1.${pad(i, 4)}`, defaultLookback: 0 },
    { name: 'float', type: 'double precision', value: (i) => String(i * 0.1), defaultLookback: 0 },
    // Exactly representable in single precision, with 7 significant digits.
    { name: 'real', type: 'real', value: (i) => `${10_000 + i}.25`, defaultLookback: 0 },
    { name: 'text', type: 'text', value: (i) => `k-${pad(i, 3)}`, defaultLookback: 0, text: true },
    { name: 'varchar', type: 'varchar(40)', value: (i) => `v-${pad(i, 3)}`, defaultLookback: 0, text: true },
    { name: 'char', type: 'char(8)', value: (i) => `c-${pad(i, 3)}`, defaultLookback: 0, text: true },
    { name: 'ts', type: 'timestamp without time zone', value: (i) => `2025-01-01 00:00:${pad(i)}.123456`, defaultLookback: 300 },
    { name: 'tstz', type: 'timestamp with time zone', value: (i) => `2025-01-01 00:00:${pad(i)}.654321+00`, defaultLookback: 300 },
  ],
  now: 'now()',
  nowType: 'timestamptz',
  timeText: (expr) => `${expr}::text`,
  async connect(url) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
    client.on('error', () => {});
    await client.connect();
    await client.query("SET TIME ZONE 'UTC'");
    return {
      query: async (sql, params) => (await client.query(sql, params)).rows,
      end: () => client.end(),
    };
  },
};

export const mysqlKit: SourceKit = {
  engine: 'mysql',
  server: 'mysql',
  label: 'MySQL/MariaDB',
  create: async () => {
    const db = await withTempMysqlDatabase();
    // TIMESTAMP literals are read in the session zone; the connector's sessions are UTC too.
    await db.exec("SET time_zone = '+00:00'");
    return db;
  },
  q: (name) => `\`${name.replaceAll('`', '``')}\``,
  p: () => '?',
  t: { int: 'INT', bigint: 'BIGINT', text: 'TEXT', ts6: 'DATETIME(6)', char8: 'CHAR(8)' },
  precisionColumns: [
    { name: 'ts', type: 'DATETIME(6) NULL', literal: (s) => s },
    { name: 'tstz', type: 'TIMESTAMP(6) NULL', literal: (s) => s },
  ],
  filterKinds: [
    { name: 'datetime', type: 'DATETIME(6)', value: (i) => `2025-01-01 00:00:${pad(i)}.123456`, defaultLookback: 300 },
    { name: 'datetime0', type: 'DATETIME', value: (i) => `2025-01-01 00:00:${pad(i)}`, defaultLookback: 300 },
    { name: 'date', type: 'DATE', value: (i) => `2025-01-${pad(i)}`, defaultLookback: 300 },
    { name: 'int', type: 'INT', value: (i) => String(i * 10), defaultLookback: 0 },
    { name: 'bigint', type: 'BIGINT', value: (i) => String(BIG + BigInt(i) * 2n), defaultLookback: 0 },
    { name: 'decimal', type: 'DECIMAL(12,4)', value: (i) => `1.${pad(i, 4)}`, defaultLookback: 0 },
    { name: 'double', type: 'DOUBLE', value: (i) => String(i * 0.1), defaultLookback: 0 },
    // Exactly representable in single precision, with 7 significant digits.
    { name: 'float', type: 'FLOAT', value: (i) => `${10_000 + i}.25`, defaultLookback: 0 },
    { name: 'varchar', type: 'VARCHAR(40)', value: (i) => `v-${pad(i, 3)}`, defaultLookback: 0, text: true },
    { name: 'char', type: 'CHAR(8)', value: (i) => `c-${pad(i, 3)}`, defaultLookback: 0, text: true },
    // An ENUM orders by member position, not alphabetically: members listed in i order, named so
    // that their alphabetical order is the reverse.
    // Refusing it as a filter column (as PostgreSQL enums are) is as good as syncing it right.
    { name: 'enum', type: `ENUM(${Array.from({ length: 9 }, (_, k) => `'e-${99 - (k + 1)}'`).join(', ')})`, value: (i) => `e-${99 - i}`, defaultLookback: 0, text: true, refusable: true },
  ],
  now: 'NOW(6)',
  nowType: 'DATETIME(6)',
  timeText: (expr) => `CAST(${expr} AS CHAR)`,
  async connect(url) {
    const target = parseMysqlUrl(url);
    const conn = await mysql.createConnection({
      host: target.host ?? '127.0.0.1',
      port: target.port ?? 3306,
      user: target.user,
      password: target.password,
      database: target.database,
      dateStrings: true,
      supportBigNumbers: true,
      connectTimeout: 5_000,
    });
    conn.on('error', () => {});
    await conn.query("SET time_zone = '+00:00'");
    return {
      query: async (sql, params) => {
        const [rows] = await conn.query(sql, params);
        return Array.isArray(rows) ? (rows as Record<string, unknown>[]) : [];
      },
      end: () => conn.end(),
    };
  },
};

/**
 * Microseconds since the epoch at one instant of the process-wide monotonic clock: every SQLite
 * writer adds `process.hrtime` to this one origin, so all writers share one microsecond clock.
 */
const CLOCK_ORIGIN_US = BigInt(Date.now()) * 1000n - process.hrtime.bigint() / 1000n;

/**
 * A SQLite writer runs in its own thread with its own connection: better-sqlite3 is synchronous,
 * so a writer waiting out another's write lock (the busy timeout) would otherwise stop the whole
 * event loop, the lock holder and the sync run included. `now_us()` is `now()` with microseconds
 * in the 'YYYY-MM-DD HH:MM:SS.ffffff' text SQLite stores (its own 'now' has milliseconds): taken
 * once per statement, or once per transaction at BEGIN, like PostgreSQL's now().
 */
const SQLITE_WRITER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path, { timeout: workerData.busyTimeoutMs });
const nowText = () => {
  const us = workerData.originUs + process.hrtime.bigint() / 1000n;
  const iso = new Date(Number(us / 1000n)).toISOString();
  return iso.slice(0, 10) + ' ' + iso.slice(11, 19) + '.' + String(us % 1000000n).padStart(6, '0');
};
let stamp = null;
db.function('now_us', () => (stamp ??= nowText()));
parentPort.on('message', (msg) => {
  if (msg === null) {
    db.close();
    parentPort.close();
    return;
  }
  try {
    if (!db.inTransaction) stamp = null;
    const stmt = db.prepare(msg.sql);
    const rows = stmt.reader ? stmt.all(...msg.params) : (stmt.run(...msg.params), []);
    if (db.inTransaction && stamp === null) stamp = nowText();
    parentPort.postMessage({ rows });
  } catch (err) {
    parentPort.postMessage({ error: { message: String(err && err.message), code: err && err.code } });
  }
});
`;

/**
 * Longer than a late transaction holds the write lock (one or two runs, seconds each on a loaded
 * machine), short enough to fail well within the test's timeout.
 */
const SQLITE_BUSY_TIMEOUT_MS = 60_000;

function sqliteWriter(path: string): Promise<SourceSession> {
  const worker = new Worker(SQLITE_WRITER, {
    eval: true,
    workerData: {
      driver: createRequire(import.meta.url).resolve('better-sqlite3'),
      path,
      busyTimeoutMs: SQLITE_BUSY_TIMEOUT_MS,
      originUs: CLOCK_ORIGIN_US,
    },
  });
  type Pending = { resolve(rows: Record<string, unknown>[]): void; reject(err: Error): void };
  const pending: Pending[] = [];
  let gone: Error | null = null;
  const fail = (err: Error) => {
    gone ??= err;
    for (const p of pending.splice(0)) p.reject(err);
  };
  worker.on('message', (m: { rows?: Record<string, unknown>[]; error?: { message: string; code?: string } }) => {
    const p = pending.shift();
    if (p === undefined) return;
    if (m.error) p.reject(Object.assign(new Error(m.error.message), { code: m.error.code }));
    else p.resolve(m.rows ?? []);
  });
  worker.on('error', fail);
  const exited = new Promise<void>((resolve) =>
    worker.once('exit', () => {
      fail(new Error('SQLite writer thread has exited'));
      resolve();
    }),
  );
  return Promise.resolve({
    query: (sql, params = []) =>
      new Promise((resolve, reject) => {
        if (gone) return reject(gone);
        pending.push({ resolve, reject });
        worker.postMessage({ sql, params });
      }),
    async end() {
      worker.postMessage(null);
      await exited;
    },
  });
}

export const sqliteKit: SourceKit = {
  engine: 'sqlite',
  server: null,
  label: 'SQLite',
  create: async () => {
    const db = await withTempSqliteDatabase();
    // WAL: the engine's read-only connection reads while a writer's transaction is open.
    await db.exec('PRAGMA journal_mode = WAL');
    return db;
  },
  q: (name) => `"${name.replaceAll('"', '""')}"`,
  p: () => '?',
  // Declared types only decide affinity and the column kind: times are text ('TIMESTAMP' has
  // NUMERIC affinity, which keeps text that is not a number as text).
  t: { int: 'INTEGER', bigint: 'BIGINT', text: 'TEXT', ts6: 'TIMESTAMP', char8: 'CHAR(8)' },
  precisionColumns: [
    { name: 'ts', type: 'TIMESTAMP', literal: (s) => s },
    // ISO 8601 with a zone, as Python's isoformat() writes it: SQLite has no zoned type, so the
    // zone is part of the text, and lookback must keep that layout.
    { name: 'tstz', type: 'TIMESTAMPTZ', literal: (s) => `${s.replace(' ', 'T')}+00:00` },
  ],
  filterKinds: [
    { name: 'date', type: 'DATE', value: (i) => `2025-01-${pad(i)}`, defaultLookback: 300 },
    { name: 'datetime', type: 'DATETIME', value: (i) => `2025-01-01 00:00:${pad(i)}.123456`, defaultLookback: 300 },
    { name: 'tsz', type: 'TIMESTAMP WITH TIME ZONE', value: (i) => `2025-01-01T00:00:${pad(i)}.654321Z`, defaultLookback: 300 },
    { name: 'int', type: 'INTEGER', value: (i) => String(i * 10), defaultLookback: 0 },
    { name: 'bigint', type: 'BIGINT', value: (i) => String(BIG + BigInt(i) * 2n), defaultLookback: 0 },
    { name: 'numeric', type: 'NUMERIC(12,4)', value: (i) => `1.${pad(i, 4)}`, defaultLookback: 0 },
    // NUMERIC affinity stores 5 as an INTEGER and 2.5 as a REAL: one column, two storage classes.
    { name: 'mixed', type: 'DECIMAL', value: (i) => String(i * 2.5), defaultLookback: 0 },
    { name: 'real', type: 'REAL', value: (i) => String(i * 0.1), defaultLookback: 0 },
    { name: 'float', type: 'FLOAT', value: (i) => `${10_000 + i}.25`, defaultLookback: 0 },
    { name: 'text', type: 'TEXT', value: (i) => `k-${pad(i, 3)}`, defaultLookback: 0, text: true },
    { name: 'varchar', type: 'VARCHAR(40)', value: (i) => `v-${pad(i, 3)}`, defaultLookback: 0, text: true },
    { name: 'char', type: 'CHAR(8)', value: (i) => `c-${pad(i, 3)}`, defaultLookback: 0, text: true },
    // No declared type (BLOB affinity, kind text): SQLite stores every value as given, so text
    // that looks like a number stays TEXT, and TEXT sorts after every number.
    {
      name: 'untyped',
      type: '',
      value: (i) => String(i * 10),
      defaultLookback: 0,
      text: true,
    },
  ],
  now: 'now_us()',
  nowType: 'TIMESTAMP',
  timeText: (expr) => `CAST(${expr} AS TEXT)`,
  // withTempSqliteDatabase's URL is `file:` and the path as is.
  connect: (url) => sqliteWriter(url.replace(/^file:/, '')),
  singleWriter: true,
};

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/** Multi-row INSERT in chunks, values bound as parameters. */
export async function insertRows(
  kit: SourceKit,
  db: { exec(sql: string, params?: unknown[]): Promise<unknown[]> },
  table: string,
  columns: string[],
  rows: unknown[][],
): Promise<void> {
  for (let i = 0; i < rows.length; i += 500) {
    const params: unknown[] = [];
    const tuples = rows.slice(i, i + 500).map(
      (row) =>
        `(${row
          .map((v) => {
            params.push(v);
            return kit.p(params.length);
          })
          .join(', ')})`,
    );
    await db.exec(`INSERT INTO ${kit.q(table)} (${columns.map(kit.q).join(', ')}) VALUES ${tuples.join(', ')}`, params);
  }
}

/**
 * Microseconds since the epoch of a timestamp text form ('2025-01-01 00:00:00.000123',
 * optionally with an offset '+00', '+00:00' or 'Z'); exact, no Date rounding.
 */
export function micros(text: string): bigint {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(?:(Z)|([+-])(\d{2})(?::?(\d{2}))?)?$/.exec(text.trim());
  assert.ok(m, `not a timestamp text with at most microseconds: ${JSON.stringify(text)}`);
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  let us = BigInt(ms) * 1000n + BigInt((m[7] ?? '').padEnd(6, '0'));
  if (m[9] !== undefined) {
    const offset = (BigInt(Number(m[10])) * 60n + BigInt(Number(m[11] ?? '0'))) * 60_000_000n;
    us += m[9] === '+' ? -offset : offset;
  }
  return us;
}

/** 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC) for microseconds since the epoch. */
export function microsText(us: bigint): string {
  const ms = us / 1000n;
  const iso = new Date(Number(ms)).toISOString(); // whole milliseconds only: exact
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}.${pad(Number(us % 1_000_000n), 6)}`;
}

export type Doc = { id: string; content: string; metadata: Record<string, unknown> };

/** POST /jobs/{job}/run on any test app, wait until the scheduler is idle, return the run. */
export async function runJob(t: TestApp, job: string): Promise<any> {
  const started = await t.request('POST', `/jobs/${job}/run`);
  assert.equal(started.status, 202, JSON.stringify(started.body));
  await t.app.services.scheduler.whenIdle();
  const run = await t.request('GET', `/jobs/${job}/runs/${started.body.data.run_id}`);
  assert.equal(run.status, 200, JSON.stringify(run.body));
  return run.body.data;
}

/** Every document of a knowledge base (all pages), on any test app. */
export async function listDocuments(t: TestApp, kb: string): Promise<Doc[]> {
  const all: Doc[] = [];
  let cursor: string | null = null;
  do {
    const res: { status: number; body: any } = await t.request(
      'GET',
      `/knowledge_bases/${kb}/documents?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    all.push(...res.body.data.documents);
    cursor = res.body.data.next_cursor;
  } while (cursor);
  return all;
}

export async function createKb(t: TestApp, kb: string, extra: Record<string, unknown> = {}): Promise<void> {
  const res = await t.request('POST', '/knowledge_bases', { kb_name: kb, ...extra });
  assert.equal(res.status, 201, JSON.stringify(res.body));
}

export async function createJob(t: TestApp, overrides: Record<string, unknown>): Promise<any> {
  const res = await t.request('POST', '/jobs/create', jobBody(overrides));
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.data;
}

export async function getJob(t: TestApp, job: string): Promise<any> {
  const res = await t.request('GET', `/jobs/${job}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.data;
}

/** Pauses every running job and waits until their runs have stopped. */
export async function stopRunningJobs(t: TestApp): Promise<void> {
  const res = await t.request('GET', '/jobs?status=running&limit=200');
  for (const job of res.body?.data?.jobs ?? []) await t.request('POST', `/jobs/${job.job_name}/pause`);
  await t.app.services.scheduler.whenIdle();
}

export function assertSucceeded(run: any): void {
  assert.equal(run.status, 'succeeded', `run ${run.run_id} ${run.status}: ${JSON.stringify(run.error)}`);
}

/** Document ids, asserting they are unique. */
export function uniqueIds(docs: Doc[]): Set<string> {
  const ids = new Set(docs.map((d) => d.id));
  assert.equal(ids.size, docs.length, `${docs.length - ids.size} duplicate document ids`);
  return ids;
}

/* ------------------------------------------------------------------------------------------ */
/* The suite                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/**
 * Registers the sync suite for one engine: ties across batches, microsecond precision, every
 * filter-column kind, composite keys with awkward names, updates, a dropped table, NULL filters.
 */
/** A fresh source database of `kit` and a sync app with it registered as `src`. */
export async function startSourceApp(
  kit: SourceKit,
  options: Parameters<typeof startSyncApp>[0] = {},
): Promise<{ t: SyncTestApp; db: TempDatabase }> {
  const db = await kit.create();
  let t: SyncTestApp;
  try {
    t = await startSyncApp(options);
  } catch (err) {
    await db.close();
    throw err;
  }
  const res = await t.request('POST', '/databases', { name: 'src', engine: kit.engine, parameters: db.params });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return { t, db };
}

export async function defineSourceSyncSuite(kit: SourceKit): Promise<void> {
  const skip = await skipUnlessSource(kit);
  describe(`sync on ${kit.label}`, { skip }, () => {
    let t: SyncTestApp;
    let db: TempDatabase;
    const q = kit.q;
    const exec = (sql: string, params?: unknown[]) => db.exec(sql, params);
    const count = async (table: string, where = '1=1') =>
      Number(((await exec(`SELECT COUNT(*) AS n FROM ${q(table)} WHERE ${where}`)) as Array<{ n: unknown }>)[0]!.n);

    before(async () => {
      ({ t, db } = await startSourceApp(kit));
    });
    // A test that timed out may leave a run going (a broken watermark can loop forever); pausing
    // stops it at its next batch, so the tests after it are not held up by it.
    afterEach(async () => {
      if (t) await stopRunningJobs(t);
    });
    after(async () => {
      await t?.close();
      await db?.close();
    });

    it('5,000 rows sharing one filter value, batch size 100: all arrive, once', { timeout: TEST_TIMEOUT_MS }, async () => {
      await exec(`CREATE TABLE ${q('ties')} (id ${kit.t.int} PRIMARY KEY, body ${kit.t.text}, created_at ${kit.t.ts6})`);
      const rows = Array.from({ length: 5000 }, (_, i) => [i + 1, `tied row ${i + 1}`, '2025-03-01 12:00:00']);
      await insertRows(kit, db, 'ties', ['id', 'body', 'created_at'], rows);
      await createKb(t, 'ties_kb');
      await createJob(t, { job_name: 'ties', kb_name: 'ties_kb', source_table: 'src.ties', content_columns: ['body'], filter_column: 'created_at', batch_size: 100 });

      const run = await t.runNow('ties');
      assertSucceeded(run);
      assert.equal(run.rows_read, 5000);
      assert.equal(run.documents_added, 5000);
      const docs = await t.documents('ties_kb');
      assert.equal(docs.length, 5000);
      const ids = uniqueIds(docs);
      for (let i = 1; i <= 5000; i++) assert.ok(ids.has(String(i)), `row ${i} is missing`);
      assert.equal(docs.find((d) => d.id === '4321')!.content, 'body: tied row 4321');

      // The next run (lookback re-reads the tie) adds and re-embeds nothing.
      const embedded = t.providers.embedded();
      const again = await t.runNow('ties');
      assertSucceeded(again);
      assert.equal(again.documents_added + again.documents_updated, 0);
      assert.equal(t.providers.embedded(), embedded);
      assert.equal((await t.documents('ties_kb')).length, 5000);
    });

    it('microsecond filter values: batch boundaries between microseconds skip and repeat nothing; the watermark keeps microseconds', { timeout: TEST_TIMEOUT_MS }, async () => {
      const base = micros('2025-01-01 00:00:00');
      const cols = kit.precisionColumns;
      await exec(
        `CREATE TABLE ${q('prec')} (id ${kit.t.int} PRIMARY KEY, body ${kit.t.text}, ${cols.map((c) => `${q(c.name)} ${c.type}`).join(', ')})`,
      );
      // Row i at base + i µs; ids run against time order, so a rounded watermark would land on
      // the wrong side of many rows.
      const wave1 = Array.from({ length: 300 }, (_, k) => ({ id: 1000 - (k + 1), us: base + BigInt(k + 1) }));
      const rowOf = (r: { id: number; us: bigint }) => [r.id, `row ${r.id} at ${r.us}`, ...cols.map((c) => c.literal(microsText(r.us)))];
      await insertRows(kit, db, 'prec', ['id', 'body', ...cols.map((c) => c.name)], wave1.map(rowOf));

      const jobs: Array<{ job: string; kb: string; column: string; lookback: boolean }> = [];
      for (const c of cols) {
        for (const lookback of [false, true]) {
          const job = `prec_${c.name}_${lookback ? 'lb' : 'nolb'}`;
          await createKb(t, `${job}_kb`);
          await createJob(t, {
            job_name: job,
            kb_name: `${job}_kb`,
            source_table: 'src.prec',
            content_columns: ['body'],
            filter_column: c.name,
            batch_size: 7,
            ...(lookback ? {} : { lookback: 0 }),
          });
          jobs.push({ job, kb: `${job}_kb`, column: c.name, lookback });
        }
      }

      const last1 = wave1[wave1.length - 1]!;
      for (const j of jobs) {
        const run = await t.runNow(j.job);
        assertSucceeded(run);
        assert.equal(run.rows_read, 300, `${j.job}: rows read`);
        assert.equal(run.documents_added, 300, `${j.job}: documents added`);
        assert.equal(uniqueIds(await t.documents(j.kb)).size, 300, j.job);
        const job = await getJob(t, j.job);
        assert.equal(micros(job.watermark.filter_value), last1.us, `${j.job}: watermark ${job.watermark.filter_value} keeps microseconds`);
        assert.deepEqual(job.watermark.key, [String(last1.id)]);
        assert.deepEqual(run.watermark_end, job.watermark);
      }

      // Wave 2, right after the watermark: ties with it (greater keys), then one row per µs,
      // keys alternating below and above every key seen so far.
      const wave2 = [
        ...Array.from({ length: 5 }, (_, k) => ({ id: 3001 + k, us: last1.us })),
        ...Array.from({ length: 55 }, (_, k) => ({ id: k % 2 === 0 ? k + 1 : 5000 + k, us: last1.us + BigInt(k + 1) })),
      ];
      await insertRows(kit, db, 'prec', ['id', 'body', ...cols.map((c) => c.name)], wave2.map(rowOf));
      const expected = new Set([...wave1, ...wave2].map((r) => String(r.id)));
      const last2 = wave2[wave2.length - 1]!;
      for (const j of jobs) {
        const run = await t.runNow(j.job);
        assertSucceeded(run);
        assert.equal(run.documents_added, wave2.length, `${j.job}: exactly the new rows are added`);
        assert.equal(run.documents_updated, 0, `${j.job}: nothing updated`);
        // Without lookback only the new rows are read; with it, also the window before the watermark.
        assert.equal(run.rows_read, j.lookback ? 300 + wave2.length : wave2.length, `${j.job}: rows read`);
        if (j.lookback) assert.equal(run.documents_unchanged, 300);
        const docs = await t.documents(j.kb);
        assert.deepEqual(uniqueIds(docs), expected, `${j.job}: one document per row`);
        const job = await getJob(t, j.job);
        assert.equal(micros(job.watermark.filter_value), last2.us, `${j.job}: watermark ${job.watermark.filter_value}`);
        assert.deepEqual(job.watermark.key, [String(last2.id)]);
        // And nothing new: a third run without lookback reads nothing at all.
        const third = await t.runNow(j.job);
        assertSucceeded(third);
        assert.equal(third.documents_added + third.documents_updated, 0, j.job);
        if (!j.lookback) assert.equal(third.rows_read, 0, `${j.job}: third run reads nothing`);
      }
    });

    for (const kind of kit.filterKinds) {
      const title = `filter column of type ${kind.type || '(none declared)'}: backfill, then an incremental run with new and updated rows`;
      it(title, { timeout: TEST_TIMEOUT_MS, ...(kind.todo ? { todo: kind.todo } : {}) }, async () => {
        const table = `kind_${kind.name}`;
        const job = `kind_${kind.name}`;
        const kb = `kind_${kind.name}_kb`;
        await exec(`CREATE TABLE ${q(table)} (id ${kit.t.int} PRIMARY KEY, body ${kit.t.text}, f ${kind.type})`);
        // 12 rows, values in pairs (ties), ids against value order.
        await insertRows(
          kit,
          db,
          table,
          ['id', 'body', 'f'],
          Array.from({ length: 12 }, (_, k) => [100 - k, `${kind.name} row ${100 - k}`, kind.value(Math.ceil((k + 1) / 2))]),
        );
        await createKb(t, kb);
        if (kind.text) {
          const refused = await t.request('POST', '/jobs/create', jobBody({ job_name: `${job}_lb`, kb_name: kb, source_table: `src.${table}`, content_columns: ['body'], filter_column: 'f', lookback: '60 SECONDS' }));
          assert.equal(refused.status, 400, JSON.stringify(refused.body));
          assert.match(JSON.stringify(refused.body.error), kind.refusable ? /lookback|filter_column/ : /lookback/);
        }
        const res = await t.request('POST', '/jobs/create', jobBody({ job_name: job, kb_name: kb, source_table: `src.${table}`, content_columns: ['body'], filter_column: 'f', batch_size: 5 }));
        if (kind.refusable && res.status === 400) {
          assert.match(JSON.stringify(res.body.error), /filter_column/);
          return;
        }
        assert.equal(res.status, 201, JSON.stringify(res.body));
        const created = res.body.data;
        assert.equal(created.lookback, kind.defaultLookback, 'default lookback for this kind');

        const first = await t.runNow(job);
        assertSucceeded(first);
        assert.equal(first.rows_read, 12);
        assert.equal(first.documents_added, 12);
        assert.equal(uniqueIds(await t.documents(kb)).size, 12);
        const w1 = (await getJob(t, job)).watermark;
        assert.ok(w1 !== null, 'the watermark is set');
        assert.deepEqual(w1.key, ['90'], 'the watermark is the last row in (filter, key) order');

        // Four new rows after the watermark (two pairs of ties) and one row moved forward.
        await insertRows(kit, db, table, ['id', 'body', 'f'], [
          [1, `${kind.name} new 1`, kind.value(7)],
          [2, `${kind.name} new 2`, kind.value(7)],
          [3, `${kind.name} new 3`, kind.value(8)],
          [4, `${kind.name} new 4`, kind.value(8)],
        ]);
        await exec(`UPDATE ${q(table)} SET body = ${kit.p(1)}, f = ${kit.p(2)} WHERE id = 100`, [`${kind.name} row 100 rewritten`, kind.value(9)]);
        const second = await t.runNow(job);
        assertSucceeded(second);
        assert.equal(second.documents_added, 4);
        assert.equal(second.documents_updated, 1);
        if (kind.defaultLookback === 0) assert.equal(second.rows_read, 5, 'without lookback only the new positions are read');
        const docs = await t.documents(kb);
        assert.equal(uniqueIds(docs).size, 16);
        assert.equal(docs.find((d) => d.id === '100')!.content, `body: ${kind.name} row 100 rewritten`);
        assert.equal(docs.find((d) => d.id === '3')!.content, `body: ${kind.name} new 3`);
        const w2 = (await getJob(t, job)).watermark;
        assert.deepEqual(w2.key, ['100']);
        assert.notEqual(w2.filter_value, w1.filter_value);

        const third = await t.runNow(job);
        assertSucceeded(third);
        assert.equal(third.documents_added + third.documents_updated, 0);
        if (kind.defaultLookback === 0) assert.equal(third.rows_read, 0);
        assert.deepEqual((await getJob(t, job)).watermark, w2, 'a run with nothing new keeps the watermark');
      });
    }

    it('a fixed-length text primary key (CHAR(8)) with ties in the filter column: every row once', { timeout: TEST_TIMEOUT_MS }, async () => {
      await exec(`CREATE TABLE ${q('skus')} (sku ${kit.t.char8} NOT NULL PRIMARY KEY, body ${kit.t.text}, updated_at ${kit.t.ts6})`);
      const sku = (i: number) => `sku-${pad(i, 4)}`;
      // Three timestamps, 40 rows each: every batch boundary falls inside a tie, on the key.
      const rows = Array.from({ length: 120 }, (_, k) => [sku(k + 1), `product ${sku(k + 1)}`, `2025-04-01 00:00:0${k % 3}`]);
      await insertRows(kit, db, 'skus', ['sku', 'body', 'updated_at'], rows);
      await createKb(t, 'skus_kb');
      await createJob(t, { job_name: 'skus', kb_name: 'skus_kb', source_table: 'src.skus', content_columns: ['body'], filter_column: 'updated_at', batch_size: 7, lookback: 0 });
      const run = await t.runNow('skus');
      assertSucceeded(run);
      assert.equal(run.rows_read, rows.length);
      assert.equal(run.documents_added, rows.length);
      const docs = await t.documents('skus_kb');
      assert.deepEqual(uniqueIds(docs), new Set(rows.map((r) => String(r[0]))));
      assert.deepEqual((await getJob(t, 'skus')).watermark.key, [sku(120)]);
      await insertRows(kit, db, 'skus', ['sku', 'body', 'updated_at'], [[sku(121), 'new product', '2025-04-01 00:00:02']]);
      const next = await t.runNow('skus');
      assertSucceeded(next);
      assert.equal(next.rows_read, 1, 'only the new row is read');
      assert.equal(next.documents_added, 1);
    });

    it('composite primary key and awkward names: one document per key, stable across runs', { timeout: TEST_TIMEOUT_MS }, async () => {
      const table = 'Order Items';
      await exec(
        `CREATE TABLE ${q(table)} (order_id ${kit.t.int} NOT NULL, line ${kit.t.int} NOT NULL, ${q('select')} ${kit.t.text}, ${q('Updated At')} ${kit.t.ts6}, PRIMARY KEY (order_id, line))`,
      );
      // Orders 1..12 × lines 1..12: (1, 12) and (11, 2) would collide in a key joined without a separator.
      const rows: unknown[][] = [];
      for (let o = 1; o <= 12; o++) {
        for (let l = 1; l <= 12; l++) rows.push([o, l, `order ${o} line ${l}`, `2025-02-01 00:00:0${(o * l) % 3}`]);
      }
      await insertRows(kit, db, table, ['order_id', 'line', 'select', 'Updated At'], rows);
      await createKb(t, 'items_kb');
      const created = await createJob(t, { job_name: 'order_items', kb_name: 'items_kb', source_table: `src.${table}`, content_columns: ['select'], metadata_columns: ['order_id'], filter_column: 'Updated At', batch_size: 10 });
      assert.deepEqual(created.key_columns, ['order_id', 'line']);

      const first = await t.runNow('order_items');
      assertSucceeded(first);
      assert.equal(first.rows_read, rows.length);
      assert.equal(first.documents_added, rows.length);
      const docs = await t.documents('items_kb');
      const ids = uniqueIds(docs);
      assert.equal(ids.size, rows.length);
      const byId = new Map(docs.map((d) => [d.id, d]));
      for (const [o, l, text] of rows) {
        const doc = byId.get(JSON.stringify([String(o), String(l)]));
        assert.ok(doc, `no document for key (${o}, ${l})`);
        assert.equal(doc.content, `select: ${text}`);
        assert.equal(doc.metadata.order_id, o);
      }

      const embedded = t.providers.embedded();
      const second = await t.runNow('order_items');
      assertSucceeded(second);
      assert.equal(second.documents_added, 0);
      assert.equal(second.documents_updated, 0);
      assert.equal(t.providers.embedded(), embedded, 'nothing re-embedded');
      assert.deepEqual(new Set((await t.documents('items_kb')).map((d) => d.id)), ids, 'the same ids after a re-run');
    });

    it('an update moving updated_at forward replaces the document without adding one', { timeout: TEST_TIMEOUT_MS }, async () => {
      await exec(`CREATE TABLE ${q('notes')} (id ${kit.t.int} PRIMARY KEY, body ${kit.t.text}, updated_at ${kit.t.ts6})`);
      await insertRows(kit, db, 'notes', ['id', 'body', 'updated_at'], Array.from({ length: 20 }, (_, k) => [k + 1, `note ${k + 1}`, `2025-01-01 00:00:${pad(k)}.000001`]));
      await createKb(t, 'notes_kb');
      await createJob(t, { job_name: 'notes', kb_name: 'notes_kb', source_table: 'src.notes', content_columns: ['body'], filter_column: 'updated_at', batch_size: 6 });
      assertSucceeded(await t.runNow('notes'));
      const before = await t.documents('notes_kb');
      assert.equal(before.find((d) => d.id === '7')!.content, 'body: note 7');

      await exec(`UPDATE ${q('notes')} SET body = ${kit.p(1)}, updated_at = ${kit.p(2)} WHERE id = 7`, ['note 7, rewritten', '2025-01-01 00:01:00.000002']);
      const embedded = t.providers.embedded();
      const run = await t.runNow('notes');
      assertSucceeded(run);
      assert.equal(run.documents_updated, 1);
      assert.equal(run.documents_added, 0);
      assert.equal(t.providers.embedded() - embedded, 1, 'only the changed row is embedded');
      const after = await t.documents('notes_kb');
      assert.equal(uniqueIds(after).size, 20);
      assert.equal(after.find((d) => d.id === '7')!.content, 'body: note 7, rewritten');
      assert.equal(micros(String(after.find((d) => d.id === '7')!.metadata.updated_at)), micros('2025-01-01 00:01:00.000002'), 'metadata keeps the new filter value');
      for (const d of after.filter((x) => x.id !== '7')) assert.equal(d.content, before.find((b) => b.id === d.id)!.content);
    });

    it('a dropped source table fails the job with a readable reason; after restoring it, resume and run succeed', { timeout: TEST_TIMEOUT_MS }, async () => {
      const ddl = `CREATE TABLE ${q('doomed')} (id ${kit.t.int} PRIMARY KEY, body ${kit.t.text}, ts ${kit.t.ts6})`;
      await exec(ddl);
      await insertRows(kit, db, 'doomed', ['id', 'body', 'ts'], [[1, 'first', '2025-01-01 00:00:00']]);
      await createKb(t, 'doomed_kb');
      await createJob(t, { job_name: 'doomed', kb_name: 'doomed_kb', source_table: 'src.doomed', content_columns: ['body'], filter_column: 'ts' });
      assertSucceeded(await t.runNow('doomed'));

      await exec(`DROP TABLE ${q('doomed')}`);
      const failed = await t.runNow('doomed');
      assert.equal(failed.status, 'failed');
      assert.equal(failed.error.code, 'TABLE_MISSING');
      const job = await getJob(t, 'doomed');
      assert.equal(job.status, 'failed');
      assert.match(job.status_reason, /doomed/);
      assert.match(job.status_reason, /no longer exists/);
      assert.equal(job.next_run, null);

      await exec(ddl);
      await insertRows(kit, db, 'doomed', ['id', 'body', 'ts'], [
        [1, 'first', '2025-01-01 00:00:00'],
        [2, 'second', '2025-01-02 00:00:00'],
      ]);
      const resumed = await t.request('POST', '/jobs/doomed/resume');
      assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
      assert.equal(resumed.body.data.status, 'scheduled');
      assert.equal(resumed.body.data.status_reason, null);
      const ok = await t.runNow('doomed');
      assertSucceeded(ok);
      assert.equal(ok.documents_added, 1);
      const docs = await t.documents('doomed_kb');
      assert.deepEqual(docs.map((d) => d.id).sort(), ['1', '2']);
    });

    it('rows whose filter value is NULL are counted as skipped, and synced once they get one', { timeout: TEST_TIMEOUT_MS }, async () => {
      await exec(`CREATE TABLE ${q('nullable')} (id ${kit.t.int} PRIMARY KEY, body ${kit.t.text}, ts ${kit.t.ts6} NULL)`);
      await insertRows(kit, db, 'nullable', ['id', 'body', 'ts'], Array.from({ length: 14 }, (_, k) => [k + 1, `row ${k + 1}`, k % 3 === 0 ? null : `2025-01-01 00:00:${pad(k)}`]));
      const nulls = await count('nullable', 'ts IS NULL');
      await createKb(t, 'nullable_kb');
      await createJob(t, { job_name: 'nullable', kb_name: 'nullable_kb', source_table: 'src.nullable', content_columns: ['body'], filter_column: 'ts', batch_size: 4 });
      const run = await t.runNow('nullable');
      assertSucceeded(run);
      assert.equal(run.rows_skipped, nulls);
      assert.equal(run.rows_read, 14 - nulls);
      assert.equal((await t.documents('nullable_kb')).length, 14 - nulls);
      assert.equal((await getJob(t, 'nullable')).totals.rows_skipped, nulls);

      await exec(`UPDATE ${q('nullable')} SET ts = ${kit.p(1)} WHERE id IN (1, 4)`, ['2025-01-02 00:00:00']);
      const next = await t.runNow('nullable');
      assertSucceeded(next);
      assert.equal(next.rows_skipped, nulls - 2);
      assert.equal(next.documents_added, 2);
      assert.equal((await t.documents('nullable_kb')).length, 16 - nulls);
    });
  });
}
