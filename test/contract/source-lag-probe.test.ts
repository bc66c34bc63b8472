/**
 * Freshness (issue 12): the probe also answers the filter value of the oldest row not yet synced
 * — the first row past the watermark in keyset order — on every engine, ties on the filter value
 * included, and core/lag.ts turns it into the epoch time lag is counted from (every source session
 * is UTC, so a time without a zone reads as UTC).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { filterValueMs } from '../../src/core/lag.js';
import { createSourcePool } from '../../src/sources/factory.js';
import type { KeysetPosition, ProbeRequest, SourceConnector, SourceEngine } from '../../src/sources/port.js';
import {
  skipUnlessServer,
  type TempDatabase,
  withTempMysqlDatabase,
  withTempPostgresDatabase,
  withTempSqliteDatabase,
} from '../helpers/databases.js';

interface Fixture {
  label: string;
  engine: SourceEngine;
  server: 'postgres' | 'mysql' | null;
  create(): Promise<TempDatabase>;
  table: string;
}

const FIXTURES: Fixture[] = [
  {
    label: 'PostgreSQL timestamptz',
    engine: 'postgres',
    server: 'postgres',
    create: withTempPostgresDatabase,
    table: 'CREATE TABLE t (id integer PRIMARY KEY, body text, ts timestamptz)',
  },
  {
    label: 'PostgreSQL timestamp',
    engine: 'postgres',
    server: 'postgres',
    create: withTempPostgresDatabase,
    table: 'CREATE TABLE t (id integer PRIMARY KEY, body text, ts timestamp(3))',
  },
  {
    label: 'MySQL/MariaDB DATETIME',
    engine: 'mysql',
    server: 'mysql',
    create: withTempMysqlDatabase,
    table: 'CREATE TABLE t (id INT PRIMARY KEY, body TEXT, ts DATETIME(3) NULL)',
  },
  {
    label: 'SQLite TIMESTAMP',
    engine: 'sqlite',
    server: null,
    create: withTempSqliteDatabase,
    table: 'CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT, ts TIMESTAMP)',
  },
];

const T = { schema: null, name: 't' };
const req = (watermark: KeysetPosition | null): ProbeRequest => ({
  table: T,
  filterColumn: 'ts',
  keyColumns: ['id'],
  watermark,
  columns: ['body'],
  window: null,
  keys: null,
});

for (const fx of FIXTURES) {
  const skip = fx.server === null ? false : await skipUnlessServer(fx.server);
  describe(`oldest unsynced row on ${fx.label}`, { skip, timeout: 60_000 }, () => {
    it('is the first row past the watermark in keyset order (ties included), null when none', async () => {
      const db = await fx.create();
      const pool = createSourcePool(fx.engine, db.params);
      const src: SourceConnector = pool.connector();
      try {
        await db.exec(fx.table);
        assert.equal((await src.probe(req(null))).oldestPending, null, 'an empty table: nothing pending');
        // Inserted out of order, so "oldest" cannot come from insertion order.
        await db.exec("INSERT INTO t (id, body, ts) VALUES (3, 'c', '2025-03-01 12:00:00.250')");
        await db.exec("INSERT INTO t (id, body, ts) VALUES (1, 'a', '2025-01-01 00:00:00.500')");
        await db.exec("INSERT INTO t (id, body, ts) VALUES (2, 'b', '2025-02-01 06:30:00')");
        await db.exec("INSERT INTO t (id, body, ts) VALUES (4, 'tie with 2', '2025-02-01 06:30:00')");
        await db.exec("INSERT INTO t (id, body, ts) VALUES (5, 'no time', NULL)");

        const all = await src.probe(req(null));
        assert.ok(all.oldestPending);
        assert.equal(filterValueMs('timestamptz', all.oldestPending), Date.UTC(2025, 0, 1, 0, 0, 0, 500), all.oldestPending);

        const first = all.max!; // the greatest position: row 3
        assert.equal((await src.probe(req(first))).oldestPending, null, 'at the last row: caught up');

        // After row 1: row 2 (its tie, row 4, comes after it by key).
        const afterOne = await src.probe(req({ filter: all.oldestPending, key: ['1'] }));
        assert.equal(filterValueMs('timestamptz', afterOne.oldestPending!), Date.UTC(2025, 1, 1, 6, 30));
        // After row 2: row 4 shares its filter value, so the oldest pending value is the same.
        const afterTwo = await src.probe(req({ filter: afterOne.oldestPending!, key: ['2'] }));
        assert.equal(afterTwo.oldestPending, afterOne.oldestPending, 'the tie is still pending');
        const afterFour = await src.probe(req({ filter: afterOne.oldestPending!, key: ['4'] }));
        assert.equal(filterValueMs('timestamptz', afterFour.oldestPending!), Date.UTC(2025, 2, 1, 12, 0, 0, 250));
      } finally {
        await src.close();
        await pool.close();
        await db.close();
      }
    });
  });
}
