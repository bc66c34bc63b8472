/**
 * The connector side of bounded source work (SourceConnector.cancel, SourceLimits): a query
 * slower than the statement timeout rejects with SourceTimeoutError; cancel() stops the query in
 * flight with SourceQueryCancelled and refuses every later query. The slow query is a view that
 * sleeps (pg_sleep, SLEEP), on real servers.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSourceConnector } from '../../src/sources/factory.js';
import { SourceQueryCancelled, SourceTimeoutError } from '../../src/sources/port.js';
import { isTransientSourceError } from '../../src/sync/errors.js';
import {
  skipUnlessServer,
  type TempDatabase,
  withTempMysqlDatabase,
  withTempPostgresDatabase,
  withTempSqliteDatabase,
} from '../helpers/databases.js';

const ENGINES = [
  {
    engine: 'postgres' as const,
    label: 'PostgreSQL',
    create: withTempPostgresDatabase,
    setup: [
      'CREATE TABLE t (id integer PRIMARY KEY, body text, ts timestamp)',
      "INSERT INTO t VALUES (1, 'a', '2025-01-01 00:00:00')",
      'CREATE VIEW slow AS SELECT t.* FROM t, LATERAL (SELECT pg_sleep(60)) s',
    ],
    /** Queries on `slow` running now, seen from the test's own connection. */
    running: "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE '%slow%' AND pid <> pg_backend_pid()",
  },
  {
    engine: 'mysql' as const,
    label: 'MySQL/MariaDB',
    create: withTempMysqlDatabase,
    setup: [
      'CREATE TABLE t (id INT PRIMARY KEY, body TEXT, ts DATETIME(6))',
      "INSERT INTO t VALUES (1, 'a', '2025-01-01 00:00:00')",
      // Per row (a constant SLEEP may be folded away): 60 s for the one row.
      'CREATE VIEW slow AS SELECT id, body, ts FROM t WHERE SLEEP(t.id * 60) = 0',
    ],
    running: "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND INFO LIKE '%slow%' AND ID <> CONNECTION_ID()",
  },
];

const slow = { schema: null, name: 'slow' };

for (const fx of ENGINES) {
  const skip = await skipUnlessServer(fx.engine);
  // The slow view sleeps 60 s: far longer than any bound asserted below, so only a working
  // timeout or cancel can end its queries in time, however loaded the machine.
  describe(`source limits on ${fx.label}`, { skip, timeout: 180_000 }, () => {
    async function withDb(fn: (db: TempDatabase) => Promise<void>): Promise<void> {
      const db = await fx.create();
      try {
        for (const sql of fx.setup) await db.exec(sql);
        await fn(db);
      } finally {
        await db.close();
      }
    }

    it('a query over the statement timeout rejects with SourceTimeoutError (statement), not retried', async () => {
      await withDb(async (db) => {
        const src = createSourceConnector(fx.engine, db.params, { limits: { statementTimeoutMs: 1_000, lockTimeoutMs: 1_000 } });
        try {
          const err = await src.maxPosition(slow, 'ts', ['id']).then(
            () => assert.fail('the sleeping query should time out'),
            (e: unknown) => e,
          );
          assert.ok(err instanceof SourceTimeoutError, `got ${String(err)}`);
          assert.equal(err.kind, 'statement');
          assert.equal(err.code, 'SOURCE_TIMEOUT');
          assert.match(err.message, /statement timeout \(1000 ms\).*KBSYNC_SOURCE_STATEMENT_TIMEOUT_MS/);
          assert.equal(isTransientSourceError(err), false);
          // The connector still works after a timeout.
          assert.equal(await src.countNullFilter({ schema: null, name: 't' }, 'ts'), 0);
        } finally {
          await src.close();
        }
      });
    });

    it('cancel() stops the query in flight and refuses later queries', async () => {
      await withDb(async (db) => {
        const src = createSourceConnector(fx.engine, db.params, { limits: { statementTimeoutMs: 60_000, lockTimeoutMs: 60_000 } });
        try {
          await src.describeTable(slow); // introspection done: the next query is the sleeping one
          const pending = src.maxPosition(slow, 'ts', ['id']).then(
            () => 'finished' as const,
            (e: unknown) => e,
          );
          // In flight: the server shows it running (no guess at how long that takes).
          const deadline = Date.now() + 30_000;
          while (Number(((await db.exec(fx.running)) as Array<{ n: unknown }>)[0]?.n ?? 0) === 0) {
            assert.ok(Date.now() < deadline, 'the sleeping query never showed up on the server');
            await new Promise((r) => setTimeout(r, 20));
          }
          const started = Date.now();
          await src.cancel();
          const err = await pending;
          assert.ok(err instanceof SourceQueryCancelled, `got ${String(err)}`);
          // Long before the 60 s sleep would have ended on its own (a cancel takes milliseconds).
          assert.ok(Date.now() - started < 30_000, `the query ended ${Date.now() - started} ms after cancel()`);
          assert.equal(Number(((await db.exec(fx.running)) as Array<{ n: unknown }>)[0]?.n ?? 0), 0, 'nothing runs on the server any more');
          await assert.rejects(src.countNullFilter({ schema: null, name: 't' }, 'ts'), SourceQueryCancelled);
          assert.equal(isTransientSourceError(new SourceQueryCancelled()), false);
        } finally {
          await src.close();
        }
      });
    });
  });
}

describe('source limits on SQLite', () => {
  it('cancel() refuses later queries (nothing is ever in flight: queries are synchronous)', async () => {
    const db = await withTempSqliteDatabase();
    const src = createSourceConnector('sqlite', db.params, { limits: { statementTimeoutMs: 1_000, lockTimeoutMs: 1_000 } });
    try {
      await db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, ts TEXT); INSERT INTO t VALUES (1, '2025-01-01')");
      assert.equal(await src.countNullFilter({ schema: null, name: 't' }, 'ts'), 0);
      await src.cancel();
      await assert.rejects(src.countNullFilter({ schema: null, name: 't' }, 'ts'), SourceQueryCancelled);
    } finally {
      await src.close();
      await db.close();
    }
  });

  it('a write lock held past the busy timeout rejects with SourceTimeoutError (lock)', async () => {
    const db = await withTempSqliteDatabase();
    const src = createSourceConnector('sqlite', db.params, { limits: { statementTimeoutMs: 1_000, lockTimeoutMs: 200 } });
    try {
      // Rollback journal (not WAL): a writer's EXCLUSIVE lock keeps readers out.
      await db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, ts TEXT); INSERT INTO t VALUES (1, '2025-01-01')");
      assert.equal(await src.countNullFilter({ schema: null, name: 't' }, 'ts'), 0);
      await db.exec("BEGIN EXCLUSIVE; INSERT INTO t VALUES (2, '2025-01-02')");
      try {
        const err = await src.countNullFilter({ schema: null, name: 't' }, 'ts').then(
          () => assert.fail('the read should wait out the busy timeout'),
          (e: unknown) => e,
        );
        assert.ok(err instanceof SourceTimeoutError, `got ${String(err)}`);
        assert.equal(err.kind, 'lock');
        assert.equal(err.timeoutMs, 200);
      } finally {
        await db.exec('ROLLBACK');
      }
    } finally {
      await src.close();
      await db.close();
    }
  });
});
