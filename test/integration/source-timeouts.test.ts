/**
 * Bounded source work (issue 8, point 2; SEMANTICS.md "One configuration per run"): a source
 * table locked in another session makes the run fail with SOURCE_TIMEOUT within the configured
 * lock timeout; pause, delete and shutdown cancel the query in flight (pg_cancel_backend,
 * KILL QUERY), so a blocked run ends at once; another job on another table runs meanwhile.
 * Run on PostgreSQL (LOCK TABLE … ACCESS EXCLUSIVE) and MySQL/MariaDB (LOCK TABLES … WRITE).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TempDatabase } from '../helpers/databases.js';
import { startSyncApp, type SyncTestApp } from '../helpers/sync.js';
import {
  assertSucceeded,
  createJob,
  createKb,
  getJob,
  insertRows,
  mysqlKit,
  postgresKit,
  type SourceKit,
  type SourceSession,
  skipUnlessSource,
  startSourceApp,
} from '../helpers/sync-sources.js';

/** How each engine locks a table against readers in another session, and sees a reader waiting. */
interface Locker {
  lock(session: SourceSession, table: string): Promise<void>;
  unlock(session: SourceSession): Promise<void>;
  /** Sessions waiting for a lock on `table`, counted from the test's own connection. */
  waiting(db: TempDatabase, table: string): Promise<number>;
}

const LOCKERS: Record<'postgres' | 'mysql', Locker> = {
  postgres: {
    async lock(session, table) {
      await session.query('BEGIN');
      await session.query(`LOCK TABLE "${table}" IN ACCESS EXCLUSIVE MODE`);
    },
    unlock: async (session) => void (await session.query('ROLLBACK')),
    async waiting(db, table) {
      const rows = (await db.exec(
        `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
         WHERE NOT l.granted AND c.relname = $1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
        [table],
      )) as Array<{ n: number }>;
      return Number(rows[0]?.n ?? 0);
    },
  },
  mysql: {
    lock: async (session, table) => void (await session.query(`LOCK TABLES \`${table}\` WRITE`)),
    unlock: async (session) => void (await session.query('UNLOCK TABLES')),
    async waiting(db) {
      const rows = (await db.exec(
        "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND STATE LIKE 'Waiting for table%'",
      )) as Array<{ n: unknown }>;
      return Number(rows[0]?.n ?? 0);
    },
  },
};

/** Polls `check` every 50 ms until it holds; fails after `ms` with `what`. */
async function waitFor(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function runOf(t: SyncTestApp, job: string, runId: string): Promise<any> {
  const res = await t.request('GET', `/jobs/${job}/runs/${runId}`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.data;
}

async function startRun(t: SyncTestApp, job: string): Promise<string> {
  const res = await t.request('POST', `/jobs/${job}/run`);
  assert.equal(res.status, 202, JSON.stringify(res.body));
  return res.body.data.run_id;
}

/** Tables `locked` and `free` with `rows` rows each; a knowledge base and a job per table. */
async function setUpTables(kit: SourceKit, t: SyncTestApp, db: TempDatabase, rows = 20): Promise<void> {
  const q = kit.q;
  for (const table of ['locked', 'free']) {
    await db.exec(`CREATE TABLE ${q(table)} (id ${kit.t.int} PRIMARY KEY, body ${kit.t.text}, updated_at ${kit.t.ts6})`);
    await insertRows(
      kit,
      db,
      table,
      ['id', 'body', 'updated_at'],
      Array.from({ length: rows }, (_, i) => [i + 1, `${table} row ${i + 1}`, `2025-01-01 00:00:${String(i).padStart(2, '0')}`]),
    );
    await createKb(t, `${table}_kb`);
    await createJob(t, {
      job_name: table,
      kb_name: `${table}_kb`,
      source_table: `src.${table}`,
      content_columns: ['body'],
      filter_column: 'updated_at',
      lookback: 0,
    });
  }
}

/** More rows in `locked`, so a run after the first has something to read. */
async function addRows(kit: SourceKit, db: TempDatabase, from: number, count: number): Promise<void> {
  await insertRows(
    kit,
    db,
    'locked',
    ['id', 'body', 'updated_at'],
    Array.from({ length: count }, (_, i) => [from + i, `late row ${from + i}`, `2025-01-02 00:00:${String(i).padStart(2, '0')}`]),
  );
}

for (const kit of [postgresKit, mysqlKit]) {
  const skip = await skipUnlessSource(kit);
  const locker = LOCKERS[kit.engine as 'postgres' | 'mysql'];

  describe(`bounded source work on ${kit.label}`, { skip, timeout: 120_000 }, () => {
    describe('lock timeout', () => {
      let t: SyncTestApp;
      let db: TempDatabase;
      before(async () => {
        ({ t, db } = await startSourceApp(kit, { config: { sourceLockTimeoutMs: 1_000, sourceStatementTimeoutMs: 30_000 } }));
        await setUpTables(kit, t, db);
      });
      after(async () => {
        await t?.close().catch(() => undefined);
        await db?.close();
      });

      it('a table locked in another session: the run fails with SOURCE_TIMEOUT within the configured time, and the job stays scheduled', async () => {
        const session = await kit.connect(db.url);
        let held = false;
        try {
          await locker.lock(session, 'locked');
          held = true;
          const started = Date.now();
          const runId = await startRun(t, 'locked');
          await waitFor('the run to end', async () => (await runOf(t, 'locked', runId)).status !== 'running', 30_000);
          const elapsed = Date.now() - started;
          const run = await runOf(t, 'locked', runId);
          assert.equal(run.status, 'failed', JSON.stringify(run));
          assert.equal(run.error?.code, 'SOURCE_TIMEOUT', JSON.stringify(run.error));
          assert.match(run.error.message, /locked/, 'names the table');
          assert.match(run.error.message, /lock timeout \(1000 ms\)/, 'names the timeout');
          assert.match(run.error.message, /KBSYNC_SOURCE_LOCK_TIMEOUT_MS/, 'says what to change');
          // The configured 1 s, with a wide margin for a loaded machine (more than 5 × 1 s + 5 s);
          // the lock is still held, so nothing but the lock timeout can have ended the run.
          assert.ok(elapsed < 15_000, `the run ended ${elapsed} ms after it started, the lock timeout is 1000 ms`);
          assert.equal(run.rows_read, 0);
          const job = await getJob(t, 'locked');
          assert.equal(job.status, 'scheduled', 'a timeout is not permanent: the next tick tries again');
          assert.equal(job.watermark, null);
        } finally {
          if (held) await locker.unlock(session);
          await session.end();
        }
        // Without the lock the same job syncs.
        const runId = await startRun(t, 'locked');
        await waitFor('the run to end', async () => (await runOf(t, 'locked', runId)).status !== 'running');
        assertSucceeded(await runOf(t, 'locked', runId));
      });
    });

    describe('pause, delete and shutdown of a blocked run', () => {
      let t: SyncTestApp;
      let db: TempDatabase;
      before(async () => {
        // A lock timeout far beyond the bounds asserted: only the cancel can end these runs in time.
        // And a shutdown timeout as long, so the shutdown test's bound can be generous too.
        ({ t, db } = await startSourceApp(kit, { config: { sourceLockTimeoutMs: 60_000, sourceStatementTimeoutMs: 120_000, shutdownTimeoutMs: 60_000, maxConcurrentRuns: 2 } }));
        await setUpTables(kit, t, db);
      });
      after(async () => {
        await t?.close().catch(() => undefined);
        await db?.close();
      });

      it('pause stops a run blocked on a lock (cancelled, well within its lock timeout); another job runs meanwhile; the watermark stays', async () => {
        const first = await startRun(t, 'locked');
        await waitFor('the first run', async () => (await runOf(t, 'locked', first)).status !== 'running');
        assertSucceeded(await runOf(t, 'locked', first));
        const watermark = (await getJob(t, 'locked')).watermark;
        assert.ok(watermark, 'the first run placed a watermark');
        await addRows(kit, db, 1000, 5);

        const session = await kit.connect(db.url);
        let held = false;
        try {
          await locker.lock(session, 'locked');
          held = true;
          const blocked = await startRun(t, 'locked');
          await waitFor('the run to wait for the lock', async () => (await locker.waiting(db, 'locked')) > 0);

          // Another job, another table: it runs to the end while the first is blocked.
          const other = await startRun(t, 'free');
          await waitFor('the other job to finish', async () => (await runOf(t, 'free', other)).status !== 'running');
          assertSucceeded(await runOf(t, 'free', other));
          assert.equal((await runOf(t, 'locked', blocked)).status, 'running', 'the first run is still blocked');

          const paused = Date.now();
          const res = await t.request('POST', '/jobs/locked/pause');
          assert.equal(res.status, 200, JSON.stringify(res.body));
          await waitFor('the paused run to end', async () => (await runOf(t, 'locked', blocked)).status !== 'running', 45_000);
          const elapsed = Date.now() - paused;
          // The bound is 2 s; asserted as 5 × 2 s + 5 s for a loaded machine, still long
          // before the lock (held until the finally) or its 60 s timeout could have ended it.
          assert.ok(elapsed < 15_000, `the run ended ${elapsed} ms after the pause`);
          const run = await runOf(t, 'locked', blocked);
          assert.equal(run.status, 'cancelled', JSON.stringify(run));
          assert.equal(run.error?.code, 'CANCELLED');
          assert.match(run.error.message, /paused/);
          assert.equal(run.rows_read, 0);
          const job = await getJob(t, 'locked');
          assert.equal(job.status, 'paused');
          assert.deepEqual(job.watermark, watermark, 'the watermark stays where the last checkpoint left it');
          assert.equal(t.app.services.scheduler.isRunning(job.job_id), false);
        } finally {
          if (held) await locker.unlock(session);
          await session.end();
        }

        // Resumed without the lock, the job reads the rows it had not reached.
        assert.equal((await t.request('POST', '/jobs/locked/resume')).status, 200);
        const again = await startRun(t, 'locked');
        await waitFor('the run after resume', async () => (await runOf(t, 'locked', again)).status !== 'running');
        const run = await runOf(t, 'locked', again);
        assertSucceeded(run);
        assert.equal(run.rows_read, 5);
      });

      it('delete stops a run blocked on a lock at once', async () => {
        const jobId = (await getJob(t, 'locked')).job_id;
        await addRows(kit, db, 2000, 3);
        const session = await kit.connect(db.url);
        let held = false;
        try {
          await locker.lock(session, 'locked');
          held = true;
          await startRun(t, 'locked');
          await waitFor('the run to wait for the lock', async () => (await locker.waiting(db, 'locked')) > 0);
          assert.equal((await t.request('DELETE', '/jobs/locked')).status, 200);
          const deleted = Date.now();
          await waitFor('the run of the deleted job to end', async () => !t.app.services.scheduler.isRunning(jobId), 45_000);
          const elapsed = Date.now() - deleted;
          // As for pause: 5 × 2 s + 5 s, against a 60 s lock timeout.
          assert.ok(elapsed < 15_000, `the run ended ${elapsed} ms after the delete, with the lock still held`);
          assert.equal(await locker.waiting(db, 'locked'), 0, 'no query of the deleted job waits any more');
        } finally {
          if (held) await locker.unlock(session);
          await session.end();
        }
      });

      it('shutdown cancels a blocked run instead of waiting for the lock; the next start finds the job scheduled', async () => {
        await createJob(t, {
          job_name: 'locked2',
          kb_name: 'locked_kb',
          source_table: 'src.locked',
          content_columns: ['body'],
          filter_column: 'updated_at',
          lookback: 0,
        });
        const session = await kit.connect(db.url);
        let held = false;
        const dataDir = t.dataDir;
        try {
          await locker.lock(session, 'locked');
          held = true;
          const runId = await startRun(t, 'locked2');
          await waitFor('the run to wait for the lock', async () => (await locker.waiting(db, 'locked')) > 0);
          const closing = Date.now();
          await t.close();
          const elapsed = Date.now() - closing;
          // The shutdown timeout and the lock timeout are 60 s here; the cancel makes it a matter
          // of milliseconds, asserted as 5 × 2 s + 5 s for a loaded machine.
          assert.ok(elapsed < 15_000, `shutdown took ${elapsed} ms with the lock still held`);
          assert.equal(await locker.waiting(db, 'locked'), 0, 'no query waits after shutdown');

          const reopened = await startSyncApp({ dataDir });
          t = reopened;
          const run = await runOf(t, 'locked2', runId);
          assert.equal(run.status, 'cancelled', JSON.stringify(run));
          assert.equal((await getJob(t, 'locked2')).status, 'scheduled');
        } finally {
          if (held) await locker.unlock(session);
          await session.end();
        }
      });
    });
  });
}
