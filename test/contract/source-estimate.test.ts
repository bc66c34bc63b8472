/**
 * SourceConnector.estimateRows (sources/estimate.ts) on real PostgreSQL, MySQL/MariaDB and SQLite:
 * the rows of a run's keyset range, counted exactly up to the limit (NULL filter values left out,
 * ties on the filter value split by the key as the reads split them); past the limit, the
 * planner's estimate for the range (PostgreSQL, MySQL/MariaDB: never below what was counted,
 * and of the right size) or the limit as a lower estimate (SQLite, which has no statistics).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSourcePool } from '../../src/sources/factory.js';
import {
  type KeysetPosition,
  type RowEstimateRequest,
  type SourceConnector,
  type SourceEngine,
  SourceQueryCancelled,
} from '../../src/sources/port.js';
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
  /** `t (id, body, ts)` with a nullable ts and an index on (ts, id), and a quoted odd name. */
  table: string[];
  /** Fills `t` with ids 1..n: ts = minute id/10 (ten rows per value), NULL for ids divisible by 100. */
  fill(n: number): string[];
  /** Refreshes planner statistics (none for SQLite). */
  analyze: string | null;
  /** What the estimate is based on past the limit. */
  beyond: 'statistics' | 'at_least';
}

/** Ten rows share each filter value: minute ⌊id/10⌋ of 2025-01-01, as each engine writes a time. */
const minute = (id: number) => Math.floor(id / 10);
const tsText = (id: number) => `2025-01-01 ${String(Math.floor(minute(id) / 60)).padStart(2, '0')}:${String(minute(id) % 60).padStart(2, '0')}:00.000000`;

const FIXTURES: Fixture[] = [
  {
    engine: 'postgres',
    label: 'PostgreSQL',
    server: 'postgres',
    create: withTempPostgresDatabase,
    table: ['CREATE TABLE t (id integer PRIMARY KEY, body text, ts timestamp(6))', 'CREATE INDEX t_ts ON t (ts, id)'],
    fill: (n) => [
      `INSERT INTO t SELECT g, 'row ' || g, CASE WHEN g % 100 = 0 THEN NULL ELSE timestamp '2025-01-01' + (g / 10) * interval '1 minute' END FROM generate_series(1, ${n}) g`,
    ],
    analyze: 'ANALYZE t',
    beyond: 'statistics',
  },
  {
    engine: 'mysql',
    label: 'MySQL/MariaDB',
    server: 'mysql',
    create: withTempMysqlDatabase,
    table: ['CREATE TABLE t (id INT PRIMARY KEY, body TEXT, ts DATETIME(6) NULL, KEY t_ts (ts, id))'],
    fill: (n) => [
      'SET SESSION max_recursive_iterations = 1000000',
      `INSERT INTO t WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ${n}) ` +
        "SELECT n, CONCAT('row ', n), IF(n % 100 = 0, NULL, TIMESTAMPADD(MINUTE, n DIV 10, '2025-01-01')) FROM g",
    ],
    analyze: 'ANALYZE TABLE t',
    beyond: 'statistics',
  },
  {
    engine: 'sqlite',
    label: 'SQLite',
    server: null,
    create: withTempSqliteDatabase,
    table: ['CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT, ts TEXT)', 'CREATE INDEX t_ts ON t (ts, id)'],
    fill: (n) => [
      `WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ${n}) ` +
        `INSERT INTO t SELECT n, 'row ' || n, CASE WHEN n % 100 = 0 THEN NULL ELSE ` +
        `printf('2025-01-01 %02d:%02d:00.000000', (n / 10) / 60, (n / 10) % 60) END FROM g`,
    ],
    analyze: null,
    beyond: 'at_least',
  },
];

const ROWS = 2000;
/** Rows 1..ROWS with a filter value (every hundredth is NULL). */
const withFilter = (from: number, to: number) => {
  let n = 0;
  for (let id = from; id <= to; id++) if (id % 100 !== 0) n++;
  return n;
};
const at = (id: number): KeysetPosition => ({ filter: tsText(id), key: [String(id)] });

for (const fx of FIXTURES) {
  const skip = fx.server === null ? false : await skipUnlessServer(fx.server);

  describe(`estimateRows on ${fx.label}`, { skip, timeout: 120_000 }, () => {
    async function withTable(fn: (src: SourceConnector, db: TempDatabase) => Promise<void>): Promise<void> {
      const db = await fx.create();
      const pool = createSourcePool(fx.engine, db.params);
      const src = pool.connector();
      try {
        for (const sql of [...fx.table, ...fx.fill(ROWS)]) await db.exec(sql);
        if (fx.analyze) await db.exec(fx.analyze);
        await fn(src, db);
      } finally {
        await src.close();
        await pool.close();
        await db.close();
      }
    }
    const req = (after: KeysetPosition | null, until: KeysetPosition | null, limit: number): RowEstimateRequest => ({
      table: { schema: null, name: 't' },
      filterColumn: 'ts',
      keyColumns: ['id'],
      after,
      until,
      limit,
    });
    const estimate = (src: SourceConnector, r: RowEstimateRequest) => {
      assert.ok(src.estimateRows, `the ${fx.label} connector estimates rows`);
      return src.estimateRows(r);
    };

    it('counts the range exactly up to the limit: NULL filters left out, ties split by the key', async () => {
      await withTable(async (src) => {
        assert.deepEqual(await estimate(src, req(null, null, 100_000)), { rows: withFilter(1, ROWS), basis: 'counted' });
        // After row 1234 (in the middle of ten rows sharing its filter value) up to row 1777 inclusive.
        assert.deepEqual(await estimate(src, req(at(1234), at(1777), 100_000)), { rows: withFilter(1235, 1777), basis: 'counted' });
        // A run with nothing new: past the last row.
        assert.deepEqual(await estimate(src, req(at(ROWS - 1), at(ROWS - 1), 10)), { rows: 0, basis: 'counted' });
        // Exactly the limit is still an exact count.
        const exact = withFilter(1001, 1100);
        assert.deepEqual(await estimate(src, req(at(1000 - 1), at(1100), exact)), { rows: exact, basis: 'counted' });
      });
    });

    it(`past the limit: ${fx.beyond === 'statistics' ? "the planner's estimate for the range, never below what was counted" : 'the limit as a lower estimate'}`, async (ctx) => {
      await withTable(async (src) => {
        const truth = withFilter(501, ROWS);
        const got = await estimate(src, req(at(500), null, 100));
        ctx.diagnostic(`${got.basis}: ${got.rows} for ${truth} rows`);
        assert.equal(got.basis, fx.beyond, JSON.stringify(got));
        if (fx.beyond === 'at_least') {
          assert.equal(got.rows, 101, 'one past the limit: more rows than the limit');
        } else {
          // A planner estimate, not a count: of the right size (the range is 3/4 of the table).
          assert.ok(got.rows >= 101 && got.rows >= truth / 3 && got.rows <= truth * 3, `estimate ${got.rows} for ${truth} rows`);
        }
      });
    });

    it('refuses a limit that is not a positive integer, and a cancelled connector', async () => {
      await withTable(async (src) => {
        for (const limit of [0, -1, 1.5, Number.NaN]) {
          await assert.rejects(estimate(src, req(null, null, limit)), /limit must be a positive integer/);
        }
        await src.cancel();
        await assert.rejects(estimate(src, req(null, null, 10)), SourceQueryCancelled);
      });
    });
  });
}
