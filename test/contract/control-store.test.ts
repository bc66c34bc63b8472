/**
 * Runs the ControlStore contract against the SQLite adapter, each test in a fresh temp file, then
 * checks what only the SQLite adapter can show: its migration ledger, re-opening a file, and two
 * connections (two stores, as two processes would have) on one file.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import { newId } from '../../src/core/ids.js';
import { EMPTY_TOTALS, type JobRecord } from '../../src/store/port.js';
import { SqliteControlStore } from '../../src/store/sqlite/control-store.js';
import { applyMigrations, MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { openSqliteFile } from '../../src/store/sqlite/open.js';
import { controlStoreContract, dbRecord, kbRecord, rebuildRecord } from './control-store.contract.js';

function tempFile(): { file: string; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kbsync-control-'));
  return {
    file: path.join(dir, 'kbsync.db'),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

controlStoreContract('sqlite', async () => {
  const { file, remove } = tempFile();
  const store = new SqliteControlStore(openSqliteFile(file), { ownsDb: true });
  return {
    store,
    close: async () => {
      await store.close();
      remove();
    },
  };
});

const T0 = Date.UTC(2031, 0, 15, 8, 30, 0);

function job(accountId: string, name: string, over: Partial<JobRecord> = {}): JobRecord {
  return {
    id: newId('job'),
    accountId,
    name,
    databaseName: 'db',
    tableSchema: null,
    tableName: 'items',
    sourceTable: 'db.items',
    kbName: 'kb',
    contentColumns: ['body'],
    metadataColumns: [],
    filterColumn: 'updated_at',
    keyColumns: ['id'],
    interval: '1h',
    intervalMs: 3_600_000,
    startMs: T0,
    endMs: T0 + 86_400_000,
    backfill: true,
    lookbackSeconds: 0,
    batchSize: 100,
    status: 'scheduled',
    statusBeforeRun: null,
    statusReason: null,
    nextRunMs: T0,
    watermark: null,
    started: false,
    totals: { ...EMPTY_TOTALS },
    lastRun: null,
    createdAt: T0,
    updatedAt: T0,
    ...over,
  };
}

describe('SqliteControlStore (SQLite specifics)', () => {
  /** Connections and temp dirs opened by the current test; closed after it whatever happened. */
  const cleanup: Array<() => void> = [];
  afterEach(() => {
    while (cleanup.length > 0) cleanup.pop()!();
  });

  function freshFile(): string {
    const { file, remove } = tempFile();
    cleanup.unshift(remove); // removed last, after every connection on it is closed
    return file;
  }

  function open(file: string): Database.Database {
    const db = openSqliteFile(file);
    cleanup.push(() => {
      if (db.open) db.close();
    });
    return db;
  }

  const ledger = (db: Database.Database) =>
    db.prepare('SELECT id, name, applied_at FROM schema_migrations ORDER BY id').all() as Array<{
      id: number;
      name: string;
      applied_at: string;
    }>;

  it('records every migration in schema_migrations', () => {
    const db = open(freshFile());
    new SqliteControlStore(db);
    const rows = ledger(db);
    assert.deepEqual(
      rows.map((r) => [r.id, r.name]),
      MIGRATIONS.map((m) => [m.id, m.name]),
    );
    for (const r of rows)
      assert.ok(!Number.isNaN(Date.parse(r.applied_at)), `applied_at parses: ${r.applied_at}`);
    const tables = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
      .pluck()
      .all() as string[];
    for (const t of ['databases', 'knowledge_bases', 'jobs', 'runs']) assert.ok(tables.includes(t), t);
  });

  it('re-opening the same file applies nothing twice and keeps the data', async () => {
    const file = freshFile();
    const first = open(file);
    const store = new SqliteControlStore(first, { ownsDb: true });
    const before = ledger(first);
    const j = job('acct', 'kept');
    await registerTargets(store);
    assert.deepEqual(await store.insertJob(j, 5), { ok: true });
    await store.close();
    assert.equal(first.open, false, 'ownsDb: close closes the connection');

    const again = open(file);
    const reopened = new SqliteControlStore(again); // would throw if a CREATE TABLE ran again
    assert.deepEqual(applyMigrations(again), [], 'nothing left to apply');
    assert.deepEqual(ledger(again), before, 'the ledger is unchanged, applied_at included');
    assert.deepEqual(await reopened.getJobById(j.id), j);
    await reopened.close();
    assert.equal(again.open, true, 'without ownsDb, close leaves the connection to its owner');
  });

  it('a later migration applies once, and only the new one', () => {
    const db = open(freshFile());
    new SqliteControlStore(db);
    const extra = [
      ...MIGRATIONS,
      { id: 10_000, name: 'test: one more table', sql: 'CREATE TABLE contract_extra (x INTEGER)' },
    ];
    assert.deepEqual(applyMigrations(db, extra), [10_000]);
    assert.deepEqual(applyMigrations(db, extra), []);
    assert.deepEqual(
      ledger(db).map((r) => r.id),
      [...MIGRATIONS.map((m) => m.id), 10_000],
    );
  });

  it('two stores on one file (two connections) see each other’s writes', async () => {
    const file = freshFile();
    const one = new SqliteControlStore(open(file));
    const two = new SqliteControlStore(open(file)); // the second finds the schema already migrated
    assert.equal(ledger(open(file)).length, MIGRATIONS.length);

    const j = job('acct', 'shared');
    await registerTargets(one);
    assert.deepEqual(await one.insertJob(j, 5), { ok: true });
    assert.deepEqual(await two.getJob('acct', 'shared'), j);
    assert.deepEqual(await two.insertJob(job('acct', 'shared'), 5), { ok: false, reason: 'duplicate' });

    const moved = await two.mutateJob(j.id, (cur) => ({ ...cur, status: 'paused', nextRunMs: null }));
    assert.deepEqual(await one.getJobById(j.id), moved);
    assert.equal(await one.nextDueTime(), null);

    const run = {
      id: newId('run'),
      jobId: j.id,
      trigger: 'manual' as const,
      status: 'running' as const,
      startedAt: T0,
      finishedAt: null,
      rowsRead: 0,
      documentsAdded: 0,
      documentsUpdated: 0,
      documentsUnchanged: 0,
      rowsSkipped: 0,
      rowsFailed: 0,
      chunksWritten: 0,
      watermarkStart: null,
      watermarkEnd: null,
      error: null,
    };
    await one.insertRun(run);
    assert.deepEqual(await two.listRunningRuns(), [run]);
    assert.equal(await two.deleteJob(j.id), true);
    assert.equal(await one.getRun(j.id, run.id), null, 'the cascade is visible on the other connection');
    assert.deepEqual(await one.listRunningRuns(), []);

    assert.equal(
      await one.insertDatabase({
        id: newId('db'),
        accountId: 'acct',
        name: 'd',
        engine: 'sqlite',
        parameters: {},
        secret: null,
        createdAt: T0,
      }),
      'ok',
    );
    assert.equal((await two.getDatabase('acct', 'd'))?.name, 'd');
    assert.equal(await two.deleteDatabase('acct', 'd'), true);
    assert.deepEqual((await one.listDatabases('acct')).map((d) => d.name), ['db'], 'only the jobs’ database is left');
  });

  it('two connections together never exceed the active-job limit or lose a mutateJob update', async () => {
    const file = freshFile();
    const stores = [new SqliteControlStore(open(file)), new SqliteControlStore(open(file))];
    await registerTargets(stores[0]!);
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) => stores[i % 2]!.insertJob(job('acct', `burst_${i}`), 6)),
    );
    assert.equal(outcomes.filter((o) => o.ok).length, 6);
    assert.equal(await stores[0]!.countActiveJobs('acct'), 6);
    assert.equal(await stores[1]!.countActiveJobs('acct'), 6);

    const target = (await stores[0]!.listJobs('acct', { limit: 1, cursor: null })).items[0]!;
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        stores[i % 2]!.mutateJob(target.id, (cur) => ({
          ...cur,
          totals: { ...cur.totals, rows_read: cur.totals.rows_read + 1 },
        })),
      ),
    );
    assert.equal((await stores[1]!.getJobById(target.id))?.totals.rows_read, 30);
  });
});

const CLAIMER = new URL('../helpers/sqlite-rebuild-claimer.ts', import.meta.url).href;

describe('SqliteControlStore: rebuild claims from processes racing on one file', () => {
  it('six threads (a connection each) claim one rebuild at once: exactly one wins, every round', { timeout: 60_000 }, async () => {
    const { file, remove } = tempFile();
    const store = new SqliteControlStore(openSqliteFile(file), { ownsDb: true });
    const gate = new SharedArrayBuffer(4);
    const workers = Array.from(
      { length: 6 },
      // An eval'd entry that registers tsx before importing the TypeScript module: on Node 20 a
      // worker does not run the parent's `--import tsx`.
      (_, i) =>
        new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(CLAIMER)}); })`, {
          eval: true,
          workerData: { file, owner: `proc_${i}`, gate },
        }),
    );
    const next = (w: Worker) =>
      new Promise<unknown>((resolve, reject) => {
        const fail = (err: Error) => {
          w.off('message', ok);
          reject(err);
        };
        const ok = (m: unknown) => {
          w.off('error', fail);
          resolve(m);
        };
        w.once('message', ok);
        w.once('error', fail);
      });
    try {
      for (let round = 1; round <= 8; round++) {
        const kb = kbRecord('acct', `kb_${round}`);
        assert.equal(await store.insertKnowledgeBase(kb), 'ok');
        assert.equal(await store.startRebuild('acct', kb.name, rebuildRecord()), 'ok');
        const ready = workers.map(next);
        for (const w of workers) w.postMessage({ round, now: T0 + round });
        await Promise.all(ready);
        const answers = workers.map(next) as Array<Promise<{ won: string | null }>>;
        Atomics.store(new Int32Array(gate), 0, round);
        Atomics.notify(new Int32Array(gate), 0);
        const won = (await Promise.all(answers)).map((a) => a.won).filter((id) => id !== null);
        assert.deepEqual(won, [kb.id], `round ${round}`);
        const owner = (await store.getKnowledgeBaseById(kb.id))?.rebuild?.owner;
        assert.match(owner ?? '', new RegExp(`^proc_\\d_${round}$`));
        assert.equal(await store.transitionRebuild(kb.id, ['running'], 'cancelled', {}), true);
      }
    } finally {
      for (const w of workers) w.postMessage('close');
      await Promise.all(workers.map((w) => new Promise((resolve) => w.once('exit', resolve))));
      await store.close();
      remove();
    }
  });
});

/** The knowledge base and database that job() points at: a job's targets must exist when it is inserted. */
async function registerTargets(store: SqliteControlStore): Promise<void> {
  assert.equal(await store.insertKnowledgeBase(kbRecord('acct', 'kb')), 'ok');
  assert.equal(await store.insertDatabase(dbRecord('acct', 'db')), 'ok');
}
