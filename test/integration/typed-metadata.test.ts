/**
 * Typed metadata (issue 7, API.md "Knowledge bases"): synced metadata keeps the source's types on
 * PostgreSQL, MySQL/MariaDB and SQLite, so numeric, boolean and time filters return exactly the
 * matching rows; and knowledge bases synced before (text metadata) get typed metadata from the
 * next run after migration 6, with nothing re-embedded.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { applyMigrations, MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import type { TempDatabase } from '../helpers/databases.js';
import { startSyncApp, type SyncTestApp } from '../helpers/sync.js';
import {
  assertSucceeded,
  createJob,
  createKb,
  getJob,
  insertRows,
  micros,
  mysqlKit,
  postgresKit,
  type SourceKit,
  skipUnlessSource,
  sqliteKit,
  startSourceApp,
  stopRunningJobs,
} from '../helpers/sync-sources.js';

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

interface Product {
  id: number;
  price: string;
  inStock: boolean;
  /** The instant, in UTC. */
  utc: string;
  /** How each engine stores it: offsets on PostgreSQL, naive UTC on MariaDB, several layouts on SQLite. */
  literal: Record<SourceKit['engine'], string>;
}

/**
 * Chosen so a text comparison gives other answers: '1200.00' <= '150' as text, '9.99' > '150',
 * '…10:30:00.5Z' < '…10:30:00Z' in byte order, and offsets that move a row across midnight.
 */
const PRODUCTS: Product[] = [
  {
    id: 1,
    price: '75.00',
    inStock: true,
    utc: '2026-01-01T10:29:59.999999Z',
    literal: {
      postgres: '2026-01-01 12:29:59.999999+02',
      mysql: '2026-01-01 10:29:59.999999',
      sqlite: '2026-01-01T10:29:59.999999',
    },
  },
  {
    id: 2,
    price: '150.00',
    inStock: false,
    utc: '2026-01-01T10:30:00Z',
    literal: {
      postgres: '2026-01-01 02:30:00-08',
      mysql: '2026-01-01 10:30:00',
      sqlite: '2026-01-01 10:30:00',
    },
  },
  {
    id: 3,
    price: '1200.00',
    inStock: true,
    utc: '2026-01-02T00:00:00Z',
    literal: {
      postgres: '2026-01-02 05:30:00+05:30',
      mysql: '2026-01-02 00:00:00',
      sqlite: '2026-01-02 05:30:00+05:30',
    },
  },
  {
    id: 4,
    price: '99.50',
    inStock: true,
    utc: '2026-01-01T10:30:00.5Z',
    literal: {
      postgres: '2026-01-01 10:30:00.5+00',
      mysql: '2026-01-01 10:30:00.5',
      sqlite: '2026-01-01T10:30:00.5Z',
    },
  },
  {
    id: 5,
    price: '200.00',
    inStock: false,
    utc: '2026-01-03T08:00:00.123456Z',
    literal: {
      postgres: '2026-01-03 08:00:00.123456+00',
      mysql: '2026-01-03 08:00:00.123456',
      sqlite: '2026-01-03 08:00:00.123456',
    },
  },
  {
    id: 6,
    price: '9.99',
    inStock: true,
    utc: '2025-12-31T23:00:00Z',
    literal: { postgres: '2026-01-01 00:00:00+01', mysql: '2025-12-31 23:00:00', sqlite: '2025-12-31 23:00' },
  },
  {
    id: 7,
    price: '100.00',
    inStock: false,
    utc: '2026-01-01T10:00:00Z',
    literal: {
      postgres: '2026-01-01 10:00:00+00',
      mysql: '2026-01-01 10:00:00',
      sqlite: '2026-01-01T10:00:00.000Z',
    },
  },
];

/** Filters of the issue, with the rows they must return computed from the data. */
const FILTERS: Array<{ filter: Record<string, unknown>; matches(p: Product): boolean }> = [
  { filter: { price: { lte: 150 } }, matches: (p) => Number(p.price) <= 150 },
  {
    filter: { price: { gte: 100, lte: 200 } },
    matches: (p) => Number(p.price) >= 100 && Number(p.price) <= 200,
  },
  { filter: { price: { gt: 75, lt: 1200 } }, matches: (p) => Number(p.price) > 75 && Number(p.price) < 1200 },
  {
    filter: { updated_at: { gte: '2026-01-02T00:00:00Z' } },
    matches: (p) => micros(p.utc) >= micros('2026-01-02T00:00:00Z'),
  },
  {
    filter: { updated_at: { lt: '2026-01-01T10:30:00+00:00' } },
    matches: (p) => micros(p.utc) < micros('2026-01-01T10:30:00Z'),
  },
  {
    filter: { updated_at: { gt: '2026-01-01 12:30:00+02:00', lte: '2026-01-02 00:00:00' } },
    matches: (p) =>
      micros(p.utc) > micros('2026-01-01T10:30:00Z') && micros(p.utc) <= micros('2026-01-02T00:00:00Z'),
  },
  { filter: { in_stock: true }, matches: (p) => p.inStock },
  { filter: { in_stock: false, price: { lt: 150 } }, matches: (p) => !p.inStock && Number(p.price) < 150 },
];

const DDL: Record<SourceKit['engine'], string> = {
  postgres:
    'CREATE TABLE products (id integer PRIMARY KEY, name text, description text, price numeric(10,2), in_stock boolean, updated_at timestamptz)',
  mysql:
    'CREATE TABLE products (id INT PRIMARY KEY, name VARCHAR(100), description TEXT, price DECIMAL(10,2), in_stock TINYINT(1), updated_at DATETIME(6))',
  // SQLite stores the times as text; the declared type is what makes the column a time.
  sqlite:
    'CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, description TEXT, price DECIMAL(10,2), in_stock BOOLEAN, updated_at DATETIME)',
};

function rowsOf(kit: SourceKit): unknown[][] {
  return PRODUCTS.map((p) => [
    p.id,
    `product ${p.id}`,
    `catalogue item number ${p.id}`,
    p.price,
    kit.engine === 'postgres' ? p.inStock : p.inStock ? 1 : 0,
    p.literal[kit.engine],
  ]);
}

async function query(
  t: SyncTestApp,
  kb: string,
  filter: Record<string, unknown>,
  mode: string,
): Promise<string[]> {
  const res = await t.request('POST', `/knowledge_bases/${kb}/query`, {
    query: 'catalogue item',
    mode,
    top_k: 100,
    filter,
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return [
    ...new Set<string>(res.body.data.results.map((r: { document_id: string }) => r.document_id)),
  ].sort();
}

function assertTyped(docs: Array<{ id: string; metadata: Record<string, unknown> }>): void {
  assert.equal(docs.length, PRODUCTS.length);
  for (const p of PRODUCTS) {
    const doc = docs.find((d) => d.id === String(p.id));
    assert.ok(doc, `document ${p.id}`);
    const m = doc.metadata;
    assert.equal(typeof m.price, 'number', `price of ${p.id}: ${JSON.stringify(m.price)}`);
    assert.equal(m.price, Number(p.price));
    assert.equal(typeof m.in_stock, 'boolean', `in_stock of ${p.id}: ${JSON.stringify(m.in_stock)}`);
    assert.equal(m.in_stock, p.inStock);
    assert.equal(typeof m.updated_at, 'string');
    assert.match(m.updated_at as string, ISO_UTC);
    assert.equal(micros(m.updated_at as string), micros(p.utc), `updated_at of ${p.id}: ${m.updated_at}`);
  }
}

async function defineTypedMetadataSuite(kit: SourceKit): Promise<void> {
  const skip = await skipUnlessSource(kit);
  describe(`typed metadata on ${kit.label}`, { skip }, () => {
    let t: SyncTestApp;
    let db: TempDatabase;

    before(async () => {
      ({ t, db } = await startSourceApp(kit));
      await db.exec(DDL[kit.engine]);
      await insertRows(
        kit,
        db,
        'products',
        ['id', 'name', 'description', 'price', 'in_stock', 'updated_at'],
        rowsOf(kit),
      );
    });
    afterEach(async () => {
      if (t) await stopRunningJobs(t);
    });
    after(async () => {
      await t?.close();
      await db?.close();
    });

    it('numbers, booleans and UTC times: filters return exactly the matching rows', async () => {
      await createKb(t, 'typed_kb');
      await createJob(t, {
        job_name: 'typed',
        kb_name: 'typed_kb',
        source_table: 'src.products',
        content_columns: ['name', 'description'],
        metadata_columns: ['price', 'in_stock'],
        filter_column: 'updated_at',
      });
      const run = await t.runNow('typed');
      assertSucceeded(run);
      assert.equal(run.documents_added, PRODUCTS.length);
      assertTyped(await t.documents('typed_kb'));

      for (const { filter, matches } of FILTERS) {
        const expected = PRODUCTS.filter(matches)
          .map((p) => String(p.id))
          .sort();
        for (const mode of ['keyword', 'semantic']) {
          assert.deepEqual(
            await query(t, 'typed_kb', filter, mode),
            expected,
            `${mode} ${JSON.stringify(filter)}`,
          );
        }
      }
    });

    it('a knowledge base synced with text metadata is typed by the next run after migration 6, nothing re-embedded', async () => {
      await createKb(t, 'legacy_kb');
      await createJob(t, {
        job_name: 'legacy',
        kb_name: 'legacy_kb',
        source_table: 'src.products',
        content_columns: ['name', 'description'],
        metadata_columns: ['price', 'in_stock'],
        filter_column: 'updated_at',
      });
      assertSucceeded(await t.runNow('legacy'));
      const watermark = (await getJob(t, 'legacy')).watermark;
      assert.ok(watermark);

      // The documents as a version before typed metadata left them: the same content, the
      // source's text in the metadata (only the metadata changes: no embedding).
      const synced = await t.documents('legacy_kb');
      const embeddedBefore = t.providers.embedded();
      const legacy = synced.map((d) => {
        const p = PRODUCTS.find((x) => String(x.id) === d.id)!;
        return {
          id: d.id,
          content: d.content,
          metadata: {
            ...d.metadata,
            price: p.price,
            in_stock: p.inStock ? 1 : 0,
            updated_at: p.literal[kit.engine],
          },
        };
      });
      const put = await t.request('POST', '/knowledge_bases/legacy_kb/documents', { documents: legacy });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      assert.equal(put.body.data.updated, PRODUCTS.length);
      assert.equal(t.providers.embedded(), embeddedBefore, 'a metadata-only change embeds nothing');
      assert.deepEqual(
        await query(t, 'legacy_kb', { price: { lte: 150 } }, 'keyword'),
        [],
        'text metadata never matches a number',
      );

      // Upgrade: the store is reopened without migration 6 applied yet.
      const { dataDir, providers } = t;
      await t.close();
      const file = path.join(dataDir, 'kbsync.db');
      assert.ok(fs.existsSync(file));
      const raw = new Database(file);
      raw.prepare('DELETE FROM schema_migrations WHERE id = 6').run();
      raw.close();
      t = await startSyncApp({ dataDir, providers });
      assert.equal((await getJob(t, 'legacy')).watermark, null, 'migration 6 reset the watermark');

      const run = await t.runNow('legacy');
      assertSucceeded(run);
      assert.equal(run.rows_read, PRODUCTS.length, 'every row is read again');
      assert.equal(run.documents_added, 0);
      assert.equal(run.documents_updated, PRODUCTS.length);
      assert.equal(t.providers.embedded(), embeddedBefore, 'nothing re-embedded');
      assertTyped(await t.documents('legacy_kb'));
      assert.deepEqual((await getJob(t, 'legacy')).watermark, watermark, 'the watermark is back at the end');
      assert.deepEqual(
        await query(t, 'legacy_kb', { price: { lte: 150 } }, 'keyword'),
        PRODUCTS.filter((p) => Number(p.price) <= 150)
          .map((p) => String(p.id))
          .sort(),
      );
    });
  });
}

describe('migration 6 (re-type synced metadata by the next run)', () => {
  const P = { filter: '2026-01-01 00:00:00', key: ['10'] };
  const W = { filter: '2026-01-05 00:00:00', key: ['99'] };
  const W2 = { filter: '2026-01-06 00:00:00', key: ['7'] };
  type RunBody = { status?: string; watermarkStart: unknown; watermarkEnd: unknown; rowsRead: number };

  function migrate(jobs: Array<{ backfill: boolean; watermark: unknown; runs: RunBody[] }>): unknown[] {
    const dir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'kbsync-m6-'));
    const db = new Database(path.join(dir, 'kbsync.db'));
    try {
      applyMigrations(
        db,
        MIGRATIONS.filter((m) => m.id < 6),
      );
      const insertJob = db.prepare(
        `INSERT INTO jobs (id, account_id, name, status, kb_name, database_name, next_run_ms, body)
         VALUES (?, 'acct', ?, 'scheduled', 'kb', 'src', NULL, ?)`,
      );
      const insertRun = db.prepare('INSERT INTO runs (id, job_id, status, body) VALUES (?, ?, ?, ?)');
      jobs.forEach((j, i) => {
        const id = `job_${i}`;
        insertJob.run(
          id,
          `j${i}`,
          JSON.stringify({
            id,
            name: `j${i}`,
            backfill: j.backfill,
            watermark: j.watermark,
            started: true,
            batchSize: 500,
            filterColumn: 'updated_at',
          }),
        );
        j.runs.forEach((r, k) => {
          insertRun.run(
            `run_${i}_${String(k).padStart(3, '0')}`,
            id,
            r.status ?? 'succeeded',
            JSON.stringify({ id: `run_${i}_${k}`, ...r }),
          );
        });
      });
      assert.ok(applyMigrations(db).includes(6));
      const bodies = db.prepare('SELECT body FROM jobs ORDER BY id').pluck().all() as string[];
      return bodies.map((b) => {
        const job = JSON.parse(b);
        assert.equal(job.started, true, 'started is kept');
        assert.equal(job.batchSize, 500, 'the rest of the job is kept');
        // A backfill: false job's reconciliation starts where its rows start: the same position.
        if (job.backfill) assert.equal(job.reconcileFrom, undefined);
        else assert.deepEqual(job.reconcileFrom, { filterColumn: 'updated_at', position: job.watermark });
        return job.watermark;
      });
    } finally {
      db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  it('backfill: true jobs start over; backfill: false jobs go back to their first position; no watermark stays none', () => {
    const placement: RunBody = { watermarkStart: null, watermarkEnd: P, rowsRead: 0 };
    const got = migrate([
      // 0: backfill true: everything again.
      { backfill: true, watermark: W, runs: [{ watermarkStart: null, watermarkEnd: W, rowsRead: 90 }] },
      // 1: backfill false: back to where the first run placed it (rows before were never synced).
      {
        backfill: false,
        watermark: W,
        runs: [placement, { watermarkStart: P, watermarkEnd: W, rowsRead: 5 }],
      },
      // 2: backfill false, runs that failed before placing it.
      {
        backfill: false,
        watermark: W,
        runs: [
          { status: 'failed', watermarkStart: null, watermarkEnd: null, rowsRead: 0 },
          placement,
          { watermarkStart: P, watermarkEnd: P, rowsRead: 0 },
          { watermarkStart: P, watermarkEnd: W, rowsRead: 5 },
        ],
      },
      // 3: backfill false, the watermark was reset since (a PATCH of the columns): every row was read.
      {
        backfill: false,
        watermark: W2,
        runs: [
          placement,
          { watermarkStart: P, watermarkEnd: W, rowsRead: 5 },
          { watermarkStart: null, watermarkEnd: W2, rowsRead: 120 },
        ],
      },
      // 4: backfill false, placed on an empty table: later runs read from the beginning.
      {
        backfill: false,
        watermark: W,
        runs: [
          { watermarkStart: null, watermarkEnd: null, rowsRead: 0 },
          { watermarkStart: null, watermarkEnd: W, rowsRead: 8 },
        ],
      },
      // 5: no watermark (never run, or reset): the next run reads everything anyway.
      { backfill: false, watermark: null, runs: [] },
      // 6: no runs on record: start over.
      { backfill: false, watermark: W, runs: [] },
    ]);
    assert.deepEqual(got, [null, P, P, null, null, null, null]);
  });
});

for (const kit of [postgresKit, mysqlKit, sqliteKit]) await defineTypedMetadataSuite(kit);
