/**
 * Cheap runs (issue 9) on real PostgreSQL, MySQL/MariaDB and SQLite sources, with the real
 * scheduler on a test clock:
 *
 * - one pool per registered database, kept across runs (the same pool object; on PostgreSQL the
 *   server never shows more sessions than the pool's size), closed when the database is deleted;
 * - a scheduled run with nothing new costs one source query (counted at the port by a counting
 *   decorator around every connector, and on PostgreSQL at the driver, statement by statement)
 *   and one write of the control store, and is recorded like any run (started_at/finished_at
 *   with milliseconds, next_run on the grid);
 * - the guarantees still hold through that path (SEMANTICS.md): a late row inside the lookback
 *   window, a row changed inside it, a deleted row and a NULL-filter row are all seen by the next
 *   scheduled run, though nothing lies past the watermark;
 * - the cached table description: a dropped column fails the job with COLUMN_MISSING; a renamed
 *   one too, and after a PATCH the job syncs again; on PostgreSQL a changed column type (the cached
 *   description binds the watermark with the old type) is read again and the run succeeds.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { ManualClock } from '../../src/core/clock.js';
import { createSourcePool } from '../../src/sources/factory.js';
import type { SourceConnector, SourcePool } from '../../src/sources/port.js';
import type { ControlStore } from '../../src/store/port.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import type { TempDatabase } from '../helpers/databases.js';
import { countingHashingProviders } from '../helpers/sync.js';
import {
  assertSucceeded,
  mysqlKit,
  postgresKit,
  type SourceKit,
  skipUnlessSource,
  sqliteKit,
} from '../helpers/sync-sources.js';

const MIN = 60_000;
/** Far from any real "now"; 250 ms past the minute, so run times show their milliseconds. */
const T = Date.UTC(2031, 0, 6, 12, 0, 0) + 250;
const at = (minutes: number) => T + minutes * MIN;
const local = (ms: number) => new Date(ms).toISOString().slice(0, 23);

/** Every port method but cancel and close, as the counting decorator names them. */
type Call = string;

/** A connector that records every call reaching the source (a cached describe is named as such). */
function counting(inner: SourceConnector, calls: Call[]): SourceConnector {
  const record =
    <A extends unknown[], R>(name: string, fn: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> => {
      calls.push(name);
      return fn(...args);
    };
  return {
    engine: inner.engine,
    ping: record('ping', () => inner.ping()),
    listTables: record('listTables', () => inner.listTables()),
    describeTable: (ref, options) => {
      calls.push(options?.cached ? 'describeTable(cached)' : 'describeTable');
      return inner.describeTable(ref, options);
    },
    probe: record('probe', (req) => inner.probe(req)),
    readBatch: record('readBatch', (req) => inner.readBatch(req)),
    maxPosition: record('maxPosition', (t, f, k) => inner.maxPosition(t, f, k)),
    countNullFilter: record('countNullFilter', (t, f) => inner.countNullFilter(t, f)),
    lookbackFrom: record('lookbackFrom', (t, f, v, s) => inner.lookbackFrom(t, f, v, s)),
    keyBuckets: record('keyBuckets', (req) => inner.keyBuckets(req)),
    keysInBuckets: record('keysInBuckets', (req) => inner.keysInBuckets(req)),
    readByKeys: record('readByKeys', (req) => inner.readByKeys(req)),
    cancel: () => inner.cancel(),
    close: () => inner.close(),
  };
}

/** Writes a run could make (the scheduling lease's renewals, on a timer of their own, are not counted). */
const STORE_WRITES = [
  'insertDatabase',
  'deleteDatabase',
  'insertKnowledgeBase',
  'deleteKnowledgeBase',
  'insertJob',
  'mutateJob',
  'deleteJob',
  'insertRun',
  'updateRun',
  'recordFailures',
  'clearFailures',
] as const;

/** Counts the control store's writing calls. */
function countWrites(store: ControlStore, writes: string[]): ControlStore {
  for (const name of STORE_WRITES) {
    const fn = (store[name] as (...args: unknown[]) => Promise<unknown>).bind(store);
    (store as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
      writes.push(name);
      return fn(...args);
    };
  }
  return store;
}

/**
 * Statements the PostgreSQL driver sends for kbsync's pools (application_name 'kbsync') to
 * `database`, counted on pg.Client itself: nothing a connector does can hide from it.
 */
const pgStatements: { database: string | null; sql: string[] } = { database: null, sql: [] };
const originalQuery = pg.Client.prototype.query;
pg.Client.prototype.query = function (
  this: pg.Client & { connectionParameters?: { database?: string; application_name?: string } },
  ...args: unknown[]
) {
  const params = this.connectionParameters;
  if (
    pgStatements.database !== null &&
    params?.database === pgStatements.database &&
    params.application_name === 'kbsync'
  ) {
    const first = args[0] as string | { text?: string };
    pgStatements.sql.push(typeof first === 'string' ? first : (first?.text ?? '?'));
  }
  return (originalQuery as (...a: unknown[]) => unknown).apply(this, args);
} as typeof pg.Client.prototype.query;
after(() => {
  pg.Client.prototype.query = originalQuery;
});

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Env {
  t: TestApp;
  db: TempDatabase;
  clock: ManualClock;
  calls: Call[];
  writes: string[];
  pools: Array<{ pool: SourcePool; closed: boolean }>;
}

async function settle(env: Env): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await env.t.app.services.scheduler.whenIdle();
    for (let j = 0; j < 3; j++) await turn();
  }
}

/** Moves the clock to `minutes` (a tick) and lets its run finish; returns that run. */
async function tick(env: Env, minutes: number): Promise<any> {
  env.clock.set(at(minutes));
  await settle(env);
  const runs = (await env.t.request('GET', '/jobs/items/runs?limit=1')).body.data.runs;
  assert.equal(
    runs[0]?.started_at,
    new Date(at(minutes)).toISOString(),
    `a run of the tick at ${minutes} min: ${JSON.stringify(runs[0])}`,
  );
  return runs[0];
}

/** The calls, statements and store writes of what `fn` does. */
async function measure<T>(
  env: Env,
  fn: () => Promise<T>,
): Promise<{ result: T; calls: Call[]; sql: string[]; writes: string[] }> {
  env.calls.length = 0;
  env.writes.length = 0;
  pgStatements.sql = [];
  const result = await fn();
  return { result, calls: [...env.calls], sql: [...pgStatements.sql], writes: [...env.writes] };
}

async function sessions(kit: SourceKit, db: TempDatabase): Promise<number> {
  const sql =
    kit.engine === 'postgres'
      ? "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'kbsync'"
      : 'SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()';
  return Number(((await db.exec(sql)) as Array<{ n: unknown }>)[0]?.n ?? 0);
}

for (const kit of [postgresKit, mysqlKit, sqliteKit]) {
  const skip = await skipUnlessSource(kit);
  const q = kit.q;
  const ts = (second: number) =>
    `2025-01-01 00:00:${String(Math.floor(second)).padStart(2, '0')}.${String(Math.round((second % 1) * 1e6)).padStart(6, '0')}`;

  describe(`cheap runs on ${kit.label}`, { skip, timeout: 120_000 }, () => {
    let env: Env;
    before(async () => {
      const db = await kit.create();
      const calls: Call[] = [];
      const writes: string[] = [];
      const pools: Env['pools'] = [];
      const clock = new ManualClock(at(-1));
      const t = await startTestApp({
        clock,
        providerFactory: countingHashingProviders().factory,
        sync: { retryBaseMs: 5, readAttempts: 3 },
        sourcePoolFactory: (engine, params) => {
          const pool = createSourcePool(engine, params);
          const entry = { pool, closed: false };
          pools.push(entry);
          return {
            engine,
            connector: () => counting(pool.connector(), calls),
            idleSince: () => pool.idleSince(),
            close: async () => {
              entry.closed = true;
              await pool.close();
            },
          };
        },
        wrapStore: (store) => countWrites(store, writes),
      });
      env = { t, db, clock, calls, writes, pools };
      if (kit.engine === 'postgres') pgStatements.database = new URL(db.url).pathname.slice(1);
      const ok = async (method: string, url: string, body?: unknown) => {
        const res = await t.request(method, url, body);
        assert.ok(res.status < 300, `${method} ${url}: ${JSON.stringify(res.body)}`);
        return res.body.data;
      };
      await ok('POST', '/databases', { name: 'src', engine: kit.engine, parameters: db.params });
      // The connection test at registration has a pool of its own, closed at once: not counted.
      assert.ok(pools.every((p) => p.closed));
      pools.length = 0;
      await db.exec(
        `CREATE TABLE ${q('items')} (id ${kit.t.int} PRIMARY KEY, body ${kit.t.text}, other ${kit.t.text}, updated_at ${kit.t.ts6} NULL)`,
      );
      for (let i = 1; i <= 10; i++) {
        await db.exec(
          `INSERT INTO ${q('items')} (id, body, other, updated_at) VALUES (${i}, 'row ${i}', 'x', '${ts(i)}')`,
        );
      }
      await ok('POST', '/knowledge_bases', { kb_name: 'kb' });
      // Default lookback (300 s for a time column): every row is inside the window of the watermark.
      await ok('POST', '/jobs/create', {
        job_name: 'items',
        kb_name: 'kb',
        source_table: 'src.items',
        content_columns: ['body'],
        filter_column: 'updated_at',
        interval: '1 MINUTE',
        start_time: local(at(0)),
        end_time: local(at(120)),
      });
      await t.app.services.scheduler.start();
      await settle(env);
    });
    after(async () => {
      pgStatements.database = null;
      await env?.t.close().catch(() => undefined);
      await env?.db.close();
    });

    it('a run with nothing new: one source query, one store write, milliseconds in its times; the pool is the same one', async () => {
      assertSucceeded(await tick(env, 0));
      // The first run after the backfill reads the lookback window once (its start is computed then).
      const second = await tick(env, 1);
      assertSucceeded(second);
      assert.equal(second.documents_unchanged, 10);

      const m = await measure(env, () => tick(env, 2));
      const run = m.result;
      assertSucceeded(run);
      assert.equal(run.trigger, 'schedule');
      assert.equal(run.rows_read, 0);
      assert.deepEqual(m.calls, ['describeTable(cached)', 'probe'], 'the cached description, then one query');
      if (kit.engine === 'postgres')
        assert.equal(m.sql.length, 1, `one statement on the wire: ${JSON.stringify(m.sql)}`);
      assert.deepEqual(m.writes, ['mutateJob'], 'one write of the control store');
      assert.match(run.started_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.250Z$/);
      assert.match(run.finished_at, /\.\d{3}Z$/);
      assert.ok(run.duration_ms >= 0);
      const job = (await env.t.request('GET', '/jobs/items')).body.data;
      assert.equal(
        job.next_run,
        new Date(at(3)).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        'next_run on the grid, whole seconds as before',
      );
      assert.equal(job.last_run.run_id, run.run_id);
      assert.equal(job.last_run.started_at, run.started_at);
      assert.equal(job.status, 'scheduled');
      assert.equal(job.totals.runs_succeeded, 3);

      for (let k = 3; k < 8; k++) {
        const again = await measure(env, () => tick(env, k));
        assertSucceeded(again.result);
        assert.equal(again.calls.filter((c) => c !== 'describeTable(cached)').length, 1);
        assert.deepEqual(again.writes, ['mutateJob']);
      }
      assert.equal(env.pools.length, 1, 'one pool for the database across every run');
      assert.equal(env.pools[0]!.pool.idleSince() !== null, true, 'every connector was closed');
      if (kit.server !== null) {
        const n = await sessions(kit, env.db);
        assert.ok(n >= 1 && n <= 4, `the pool's connections stay open between runs, at most its size: ${n}`);
      }
    });

    it('late, changed, deleted and NULL-filter rows are seen by the next scheduled run, though nothing is past the watermark', async () => {
      // A late row: committed with a filter value inside the window, behind the watermark.
      await env.db.exec(
        `INSERT INTO ${q('items')} (id, body, other, updated_at) VALUES (11, 'late row', 'x', '${ts(5.5)}')`,
      );
      const late = await tick(env, 8);
      assertSucceeded(late);
      assert.equal(late.documents_added, 1, JSON.stringify(late));
      assert.equal((await tick(env, 9)).rows_read, 0, 'then quiet again');

      // A row changed inside the window without a new filter value.
      await env.db.exec(`UPDATE ${q('items')} SET body = 'row 3, changed' WHERE id = 3`);
      const changed = await tick(env, 10);
      assert.equal(changed.documents_updated, 1, JSON.stringify(changed));

      // A column the job does not read changes: nothing to do.
      await env.db.exec(`UPDATE ${q('items')} SET other = 'y' WHERE id = 4`);
      const m = await measure(env, () => tick(env, 11));
      assert.equal(m.result.rows_read, 0);
      assert.deepEqual(m.writes, ['mutateJob']);

      // A deleted row (reconciliation's totals differ).
      await env.db.exec(`DELETE FROM ${q('items')} WHERE id = 2`);
      const deleted = await tick(env, 12);
      assert.equal(deleted.documents_deleted, 1, JSON.stringify(deleted));

      // A row without a filter value is counted as skipped, by a run that still costs one query.
      await env.db.exec(
        `INSERT INTO ${q('items')} (id, body, other, updated_at) VALUES (12, 'no time', 'x', NULL)`,
      );
      const skipped = await measure(env, () => tick(env, 13));
      assert.equal(skipped.result.rows_skipped, 1);
      assert.equal(skipped.result.rows_read, 0);
      assert.deepEqual(skipped.writes, ['mutateJob']);
      assert.equal((await env.t.request('GET', '/jobs/items')).body.data.totals.rows_skipped, 1);

      // A new row past the watermark: a full run.
      await env.db.exec(
        `INSERT INTO ${q('items')} (id, body, other, updated_at) VALUES (13, 'new row', 'x', '${ts(30)}')`,
      );
      const fresh = await tick(env, 14);
      assert.equal(fresh.documents_added, 1);
      const docs = (await env.t.request('GET', '/knowledge_bases/kb/documents?limit=100')).body.data
        .documents as Array<{ id: string; content: string }>;
      assert.deepEqual(docs.map((d) => d.id).sort(), [
        '1',
        '10',
        '11',
        '13',
        '3',
        '4',
        '5',
        '6',
        '7',
        '8',
        '9',
      ]);
      assert.equal(docs.find((d) => d.id === '3')?.content, 'body: row 3, changed');
    });

    it('the cached description: a dropped column fails the job with COLUMN_MISSING; a renamed one too, and after a PATCH it syncs again', async () => {
      await env.db.exec(`ALTER TABLE ${q('items')} ADD COLUMN note ${kit.t.text}`);
      // No lookback: no window fingerprint names the columns; the probe itself must.
      const patched = await env.t.request('PATCH', '/jobs/items', {
        metadata_columns: ['note'],
        lookback: 0,
      });
      assert.equal(patched.status, 200, JSON.stringify(patched.body));
      assertSucceeded(await tick(env, 15));
      assertSucceeded(await tick(env, 16));
      assert.equal((await tick(env, 17)).rows_read, 0, 'quiet, with the description cached');

      await env.db.exec(`ALTER TABLE ${q('items')} DROP COLUMN note`);
      const dropped = await tick(env, 18);
      assert.equal(dropped.status, 'failed', JSON.stringify(dropped));
      assert.equal(dropped.error.code, 'COLUMN_MISSING');
      assert.match(dropped.error.message, /metadata column 'note' no longer exists/);
      const failed = (await env.t.request('GET', '/jobs/items')).body.data;
      assert.equal(failed.status, 'failed');

      // Renamed: the same, until the job names the new column.
      await env.db.exec(`ALTER TABLE ${q('items')} ADD COLUMN note ${kit.t.text}`);
      assert.equal((await env.t.request('POST', '/jobs/items/resume')).status, 200);
      assertSucceeded(await tick(env, 19));
      await env.db.exec(`ALTER TABLE ${q('items')} RENAME COLUMN note TO remark`);
      const renamed = await tick(env, 20);
      assert.equal(renamed.error?.code, 'COLUMN_MISSING', JSON.stringify(renamed));
      assert.equal(
        (await env.t.request('PATCH', '/jobs/items', { metadata_columns: ['remark'] })).status,
        200,
      );
      assert.equal((await env.t.request('POST', '/jobs/items/resume')).status, 200);
      assertSucceeded(await tick(env, 21));
    });

    if (kit.engine === 'postgres') {
      it("a changed column type: the run's query fails with the cached description, which is read again, and the run succeeds", async () => {
        assertSucceeded(await tick(env, 22));
        assertSucceeded(await tick(env, 23));
        // The watermark is bound as `timestamp without time zone`, which a text column cannot be compared with.
        await env.db.exec(`ALTER TABLE ${q('items')} ALTER COLUMN updated_at TYPE text`);
        await env.db.exec(
          `INSERT INTO ${q('items')} (id, body, other, updated_at) VALUES (14, 'after the type change', 'x', '${ts(40)}')`,
        );
        const m = await measure(env, () => tick(env, 24));
        assertSucceeded(m.result);
        assert.equal(m.result.documents_added, 1);
        assert.ok(
          m.calls.includes('describeTable'),
          `the description was read again: ${JSON.stringify(m.calls)}`,
        );
      });
    }

    it('deleting the database closes its pool and its connections', async () => {
      assert.equal((await env.t.request('DELETE', '/jobs/items')).status, 200);
      await settle(env);
      assert.equal(env.pools.length, 1);
      assert.equal(env.pools[0]!.closed, false);
      const res = await env.t.request('DELETE', '/databases/src');
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(env.pools[0]!.closed, true, 'closed with the database');
      if (kit.server !== null) {
        const until = Date.now() + 20_000;
        while ((await sessions(kit, env.db)) > 0) {
          assert.ok(Date.now() < until, 'the connections of a deleted database close');
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    });
  });
}
