/**
 * A blocked run never holds a run slot past its timeout (issue 8, point 2; SEMANTICS.md "Bounded
 * source work"): with two slots, two scheduled runs stuck on tables locked in another session
 * take both; a third job whose tick comes due meanwhile starts as soon as their lock timeout
 * ends them, and syncs. Before source timeouts existed, that third job waited as long as the
 * lock was held (forever, for a forgotten transaction).
 *
 * Ticks are driven by a ManualClock (nothing depends on the machine's "now"); the lock timeouts
 * are real time on the source server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';
import type { TempDatabase } from '../helpers/databases.js';
import type { SyncTestApp } from '../helpers/sync.js';
import {
  assertSucceeded,
  createJob,
  createKb,
  insertRows,
  mysqlKit,
  postgresKit,
  type SourceSession,
  skipUnlessSource,
  startSourceApp,
} from '../helpers/sync-sources.js';

const MIN = 60_000;
const T = Date.UTC(2031, 0, 6, 12, 0, 0);
const local = (ms: number) => new Date(ms).toISOString().slice(0, 19);
const LOCK_TIMEOUT_MS = 1_500;

const LOCK: Record<'postgres' | 'mysql', { lock(s: SourceSession, tables: string[]): Promise<void>; unlock(s: SourceSession): Promise<void> }> = {
  postgres: {
    async lock(s, tables) {
      await s.query('BEGIN');
      for (const table of tables) await s.query(`LOCK TABLE "${table}" IN ACCESS EXCLUSIVE MODE`);
    },
    unlock: async (s) => void (await s.query('ROLLBACK')),
  },
  mysql: {
    lock: async (s, tables) => void (await s.query(`LOCK TABLES ${tables.map((t) => `\`${t}\` WRITE`).join(', ')}`)),
    unlock: async (s) => void (await s.query('UNLOCK TABLES')),
  },
};

async function waitFor(what: string, check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function runsOf(t: SyncTestApp, job: string): Promise<any[]> {
  const res = await t.request('GET', `/jobs/${job}/runs`);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body.data.runs;
}

for (const kit of [postgresKit, mysqlKit]) {
  const skip = await skipUnlessSource(kit);
  const locker = LOCK[kit.engine as 'postgres' | 'mysql'];

  describe(`blocked runs and run slots on ${kit.label}`, { skip, timeout: 180_000 }, () => {
    let t: SyncTestApp;
    let db: TempDatabase;
    const clock = new ManualClock(T - MIN);
    before(async () => {
      ({ t, db } = await startSourceApp(kit, {
        clock,
        config: { sourceLockTimeoutMs: LOCK_TIMEOUT_MS, sourceStatementTimeoutMs: 60_000, maxConcurrentRuns: 2 },
      }));
      const q = kit.q;
      for (const table of ['locked_a', 'locked_b', 'free']) {
        await db.exec(`CREATE TABLE ${q(table)} (id ${kit.t.int} PRIMARY KEY, body ${kit.t.text}, updated_at ${kit.t.ts6})`);
        await insertRows(
          kit,
          db,
          table,
          ['id', 'body', 'updated_at'],
          Array.from({ length: 10 }, (_, i) => [i + 1, `${table} row ${i + 1}`, `2025-01-01 00:00:${String(i).padStart(2, '0')}`]),
        );
        await createKb(t, `${table}_kb`);
      }
      // The locked jobs tick at T (daily, so never again in this test); the free job at T + 1 min.
      for (const table of ['locked_a', 'locked_b']) {
        await createJob(t, {
          job_name: table,
          kb_name: `${table}_kb`,
          source_table: `src.${table}`,
          content_columns: ['body'],
          filter_column: 'updated_at',
          lookback: 0,
          interval: 'DAILY',
          start_time: local(T),
          end_time: local(T + 2 * 24 * 60 * MIN),
        });
      }
      await createJob(t, {
        job_name: 'free',
        kb_name: 'free_kb',
        source_table: 'src.free',
        content_columns: ['body'],
        filter_column: 'updated_at',
        lookback: 0,
        interval: 'DAILY',
        start_time: local(T + MIN),
        end_time: local(T + 2 * 24 * 60 * MIN),
      });
    });
    after(async () => {
      await t?.close().catch(() => undefined);
      await db?.close();
    });

    it('two runs blocked on locks take both slots; a job due meanwhile starts once their lock timeout ends them', async () => {
      const session = await kit.connect(db.url);
      let held = false;
      try {
        await locker.lock(session, ['locked_a', 'locked_b']);
        held = true;
        await t.app.services.scheduler.start();
        clock.set(T);
        await waitFor('both locked jobs to be running', async () => {
          const running = await Promise.all(['locked_a', 'locked_b'].map(async (j) => (await runsOf(t, j)).some((r) => r.status === 'running')));
          return running.every(Boolean);
        });
        assert.equal(t.app.services.scheduler.isRunning((await t.request('GET', '/jobs/free')).body.data.job_id), false);

        // The free job's tick comes due while both slots are held by blocked runs.
        clock.set(T + MIN);
        await waitFor('the free job to run', async () => (await runsOf(t, 'free')).some((r) => r.status !== 'running'));
        const [freeRun] = await runsOf(t, 'free');
        assertSucceeded(freeRun);
        assert.equal(freeRun.rows_read, 10);

        // The blocked runs ended by their lock timeout (the lock is still held), not by the lock going away.
        for (const job of ['locked_a', 'locked_b']) {
          const [run] = await runsOf(t, job);
          assert.equal(run.status, 'failed', JSON.stringify(run));
          assert.equal(run.error?.code, 'SOURCE_TIMEOUT', JSON.stringify(run.error));
          const body = (await t.request('GET', `/jobs/${job}`)).body.data;
          assert.equal(body.status, 'scheduled', 'a timeout is not permanent');
        }
      } finally {
        if (held) await locker.unlock(session);
        await session.end();
      }
    });
  });
}
