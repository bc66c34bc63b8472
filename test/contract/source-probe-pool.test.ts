/**
 * Two parts of the source port added for cheap runs (issue 9), on real databases:
 *
 * - probe(): one statement answering what a run asks first. Its answers must equal those of the
 *   separate methods (maxPosition, countNullFilter, keyBuckets), `pastWatermark` must see ties,
 *   and the lookback fingerprint must change when a row enters, leaves or changes in the window
 *   (content, a NULL), and not when a row outside it changes. A column gone fails the statement.
 * - SourcePool: connectors of one pool share its connections (never more than its size), and
 *   cancel() stops only the cancelling connector's query; the others go on.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSourcePool } from '../../src/sources/factory.js';
import type {
  KeysetPosition,
  ProbeRequest,
  ProbeResult,
  SourceConnector,
  SourceEngine,
} from '../../src/sources/port.js';
import { SourceQueryCancelled } from '../../src/sources/port.js';
import {
  skipUnlessServer,
  type TempDatabase,
  withTempMysqlDatabase,
  withTempPostgresDatabase,
  withTempSqliteDatabase,
} from '../helpers/databases.js';

interface Fixture {
  engine: SourceEngine;
  label: string;
  server: 'postgres' | 'mysql' | null;
  create(): Promise<TempDatabase>;
  /** Table `t (id, body, ts)` with a nullable ts. */
  table: string;
  ts(second: number): string;
  /** A view whose rows take 60 s to come (null: the engine cannot be cancelled). */
  slowView: string | null;
  /** This pool's sessions on the server, counted from the test's own connection. */
  sessions: string | null;
  /** Queries on the slow view running now. */
  running: string | null;
}

const FIXTURES: Fixture[] = [
  {
    engine: 'postgres',
    label: 'PostgreSQL',
    server: 'postgres',
    create: withTempPostgresDatabase,
    table: 'CREATE TABLE t (id integer PRIMARY KEY, body text, ts timestamp(6))',
    ts: (s) => `2025-01-01 00:00:${String(s).padStart(2, '0')}.123456`,
    slowView: 'CREATE VIEW slow AS SELECT t.* FROM t, LATERAL (SELECT pg_sleep(60)) s',
    sessions:
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'kbsync'",
    running:
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE '%slow%' AND pid <> pg_backend_pid()",
  },
  {
    engine: 'mysql',
    label: 'MySQL/MariaDB',
    server: 'mysql',
    create: withTempMysqlDatabase,
    table: 'CREATE TABLE t (id INT PRIMARY KEY, body TEXT, ts DATETIME(6) NULL)',
    ts: (s) => `2025-01-01 00:00:${String(s).padStart(2, '0')}.123456`,
    slowView: 'CREATE VIEW slow AS SELECT id, body, ts FROM t WHERE SLEEP(60) = 0 AND id = 1',
    sessions:
      'SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()',
    running:
      "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND INFO LIKE '%slow%' AND ID <> CONNECTION_ID()",
  },
  {
    engine: 'sqlite',
    label: 'SQLite',
    server: null,
    create: withTempSqliteDatabase,
    table: 'CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT, ts TEXT)',
    ts: (s) => `2025-01-01 00:00:${String(s).padStart(2, '0')}.123456`,
    slowView: null,
    sessions: null,
    running: null,
  },
];

const T = { schema: null, name: 't' };

async function count(db: TempDatabase, sql: string): Promise<number> {
  const rows = (await db.exec(sql)) as Array<{ n: unknown }>;
  return Number(rows[0]?.n ?? 0);
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    assert.ok(Date.now() < until, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const fx of FIXTURES) {
  const skip = fx.server === null ? false : await skipUnlessServer(fx.server);

  describe(`probe on ${fx.label}`, { skip, timeout: 120_000 }, () => {
    async function withTable(fn: (src: SourceConnector, db: TempDatabase) => Promise<void>): Promise<void> {
      const db = await fx.create();
      const pool = createSourcePool(fx.engine, db.params);
      const src = pool.connector();
      try {
        await db.exec(fx.table);
        await fn(src, db);
      } finally {
        await src.close();
        await pool.close();
        await db.close();
      }
    }
    const insert = (db: TempDatabase, id: number, body: string | null, second: number | null) =>
      db.exec(
        `INSERT INTO t (id, body, ts) VALUES (${id}, ${body === null ? 'NULL' : `'${body}'`}, ${second === null ? 'NULL' : `'${fx.ts(second)}'`})`,
      );
    const req = (watermark: KeysetPosition | null, extra: Partial<ProbeRequest> = {}): ProbeRequest => ({
      table: T,
      filterColumn: 'ts',
      keyColumns: ['id'],
      watermark,
      columns: ['body'],
      window: null,
      keys: { softDeleteColumn: null, after: null },
      ...extra,
    });

    it('an empty table: no bound, nothing past, no keys', async () => {
      await withTable(async (src) => {
        const probe = await src.probe(req(null));
        assert.deepEqual(probe, {
          max: null,
          pastWatermark: false,
          nullFilter: 0,
          window: null,
          keys: { bucket: '', count: 0, sum: '0' },
          oldestPending: null,
        });
      });
    });

    it('answers as maxPosition, countNullFilter and keyBuckets do; sees rows past the watermark, ties included', async () => {
      await withTable(async (src, db) => {
        for (let i = 1; i <= 5; i++) await insert(db, i, `row ${i}`, i);
        await insert(db, 6, 'no time', null);
        await insert(db, 7, 'no time either', null);
        await insert(db, 8, 'tie with row 5', 5);
        const probe = await src.probe(req(null));
        assert.deepEqual(probe.max, await src.maxPosition(T, 'ts', ['id']));
        assert.deepEqual(probe.max, { filter: fx.ts(5), key: ['8'] });
        assert.equal(probe.nullFilter, await src.countNullFilter(T, 'ts'));
        assert.equal(probe.nullFilter, 2);
        const [buckets] = await src.keyBuckets({
          table: T,
          keyColumns: ['id'],
          filterColumn: 'ts',
          softDeleteColumn: null,
          after: null,
          digits: 0,
          within: null,
        });
        assert.deepEqual(probe.keys, buckets);
        assert.equal(probe.pastWatermark, true, 'no watermark: every row is past it');

        assert.equal((await src.probe(req(probe.max))).pastWatermark, false, 'at the last row: nothing past');
        // Row 8 shares row 5's filter value with a greater key: it is past (5's position).
        assert.equal((await src.probe(req({ filter: fx.ts(5), key: ['5'] }))).pastWatermark, true);
        assert.equal((await src.probe(req({ filter: fx.ts(4), key: ['4'] }))).pastWatermark, true);
        // Reconciliation's scope after a position counts only the rows after it.
        const after = await src.probe(
          req(null, { keys: { softDeleteColumn: null, after: { filter: fx.ts(3), key: ['3'] } } }),
        );
        assert.equal(after.keys?.count, 3);
      });
    });

    it('the lookback fingerprint changes when a row enters, leaves or changes in the window, not outside it', async () => {
      await withTable(async (src, db) => {
        for (let i = 1; i <= 6; i++) await insert(db, i, `row ${i}`, i);
        const watermark = { filter: fx.ts(6), key: ['6'] };
        const window = async (): Promise<NonNullable<ProbeResult['window']>> => {
          const probe = await src.probe(req(watermark, { window: { from: fx.ts(3) } }));
          assert.ok(probe.window);
          return probe.window;
        };
        const first = await window();
        assert.equal(first.count, 4, 'rows 3 to 6');
        assert.deepEqual(await window(), first, 'the same rows: the same fingerprint');

        await db.exec("UPDATE t SET body = 'changed outside' WHERE id = 1");
        assert.deepEqual(await window(), first, 'a row before the window does not count');
        await insert(db, 9, 'after the watermark', 7);
        assert.deepEqual(
          await window(),
          first,
          'a row after the watermark does not count (it is new, read anyway)',
        );

        await db.exec("UPDATE t SET body = 'changed inside' WHERE id = 4");
        const changed = await window();
        assert.equal(changed.count, 4);
        assert.notEqual(changed.sum, first.sum, 'content changed in the window');

        await db.exec("UPDATE t SET body = '' WHERE id = 4");
        const empty = await window();
        await db.exec('UPDATE t SET body = NULL WHERE id = 4');
        const nulled = await window();
        assert.notEqual(nulled.sum, empty.sum, "NULL and '' differ");

        await insert(db, 10, 'late row', 4);
        const late = await window();
        assert.equal(late.count, 5, 'a late row entered the window');

        await db.exec(`UPDATE t SET ts = '${fx.ts(1)}' WHERE id = 10`);
        assert.equal((await window()).count, 4, 'a row moved out of the window');
      });
    });

    it('names every column the job reads: one gone fails the statement', async () => {
      await withTable(async (src, db) => {
        await db.exec('ALTER TABLE t ADD COLUMN extra TEXT');
        await insert(db, 1, 'row 1', 1);
        await src.describeTable(T);
        const probe = await src.probe(req(null, { columns: ['body', 'extra'] }));
        assert.equal(probe.pastWatermark, true);
        await db.exec('ALTER TABLE t DROP COLUMN extra');
        // The description cached above still has `extra`: the server is what refuses.
        await assert.rejects(src.probe(req(null, { columns: ['body', 'extra'] })));
        assert.equal((await src.probe(req(null))).pastWatermark, true);
      });
    });
  });

  if (fx.slowView === null || fx.sessions === null || fx.running === null) continue;
  const { slowView, sessions, running } = fx;

  describe(`source pool on ${fx.label}`, { skip, timeout: 180_000 }, () => {
    it('connectors share the pool: never more connections than its size', async () => {
      const db = await fx.create();
      const pool = createSourcePool(fx.engine, db.params, {
        pool: { size: 2, idleMs: 60_000, describeMaxAgeMs: 60_000 },
      });
      try {
        await db.exec(fx.table);
        await db.exec(`INSERT INTO t (id, body, ts) VALUES (1, 'a', '${fx.ts(1)}')`);
        const connectors = Array.from({ length: 10 }, () => pool.connector());
        let peak = 0;
        const watch = setInterval(() => {
          void count(db, sessions).then((n) => {
            peak = Math.max(peak, n);
          });
        }, 5);
        try {
          for (let round = 0; round < 5; round++) {
            await Promise.all(
              connectors.map((c) =>
                c.probe({
                  table: T,
                  filterColumn: 'ts',
                  keyColumns: ['id'],
                  watermark: null,
                  columns: ['body'],
                  window: null,
                  keys: null,
                }),
              ),
            );
          }
        } finally {
          clearInterval(watch);
        }
        peak = Math.max(peak, await count(db, sessions));
        assert.ok(peak >= 1 && peak <= 2, `at most the pool's 2 connections, saw ${peak}`);
        for (const c of connectors) await c.close();
        assert.equal(pool.idleSince() !== null, true, 'no connector open: the pool is idle');
      } finally {
        await pool.close();
        await db.close();
      }
    });

    it("cancel() stops only its own connector's query; the others of the pool go on, and the cancelled connection is not reused", async () => {
      const db = await fx.create();
      const pool = createSourcePool(fx.engine, db.params, {
        pool: { size: 2, idleMs: 60_000, describeMaxAgeMs: 60_000 },
      });
      try {
        await db.exec(fx.table);
        await db.exec(`INSERT INTO t (id, body, ts) VALUES (1, 'a', '${fx.ts(1)}')`);
        await db.exec(slowView);
        const a = pool.connector();
        const b = pool.connector();
        const pending = a
          .readBatch({
            table: { schema: null, name: 'slow' },
            columns: ['body'],
            filterColumn: 'ts',
            keyColumns: ['id'],
            from: null,
            until: null,
            limit: 10,
          })
          .then(
            () => 'finished' as const,
            (e: unknown) => e,
          );
        await waitFor('the slow query to run', async () => (await count(db, running)) > 0);
        // b works meanwhile, on the pool's other connection.
        const probe = {
          table: T,
          filterColumn: 'ts',
          keyColumns: ['id'],
          watermark: null,
          columns: ['body'],
          window: null,
          keys: null,
        };
        assert.equal((await b.probe(probe)).pastWatermark, true);

        await a.cancel();
        const err = await pending;
        assert.ok(err instanceof SourceQueryCancelled, `got ${String(err)}`);
        await waitFor('the slow query to end on the server', async () => (await count(db, running)) === 0);
        await assert.rejects(
          a.probe(probe),
          SourceQueryCancelled,
          'a cancelled connector refuses later queries',
        );

        // b, and a new connector, still work; none of them was cancelled by a's cancel.
        for (let i = 0; i < 5; i++) assert.equal((await b.probe(probe)).pastWatermark, true);
        const c = pool.connector();
        assert.equal((await c.probe(probe)).pastWatermark, true);
        // The connection that ran a's query was closed, not handed back: one connection serves b and c.
        assert.ok((await count(db, sessions)) <= 1, 'the cancelled connection is gone');
        await Promise.all([a.close(), b.close(), c.close()]);
      } finally {
        await pool.close();
        await db.close();
      }
    });
  });
}
