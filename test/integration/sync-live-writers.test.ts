/**
 * Runs repeat while the source is written to (SEMANTICS.md, "Incremental read": keyset
 * watermark, late rows and lookback). Concurrent writers on their own connections insert rows,
 * update rows (moving updated_at to now()), and commit some rows LATE: a transaction stamps a row
 * with now() and stays open across a run or two before committing, so the row becomes visible
 * with a filter value already behind the watermark. The job's lookback ('10 MINUTES') covers
 * that delay (one or two runs) with room to spare on however slow a machine. When the writers stop and one last run ends, the knowledge base must hold exactly
 * one document per source row, each with the row's current content, and nothing else.
 *
 * A control job on the same table with lookback 0 and deletes "off" (reconciliation would heal
 * them by key) shows the late commits really happened: the
 * rows that committed behind its watermark never reach its knowledge base.
 *
 * On SQLite (one writer at a time, WAL) the late transaction holds the write lock while it is
 * open, so the other writers wait on their busy timeout meanwhile; the sync engine still reads
 * through its own read-only connection.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { TempDatabase } from '../helpers/databases.js';
import type { SyncTestApp } from '../helpers/sync.js';
import {
  assertSucceeded,
  createJob,
  createKb,
  getJob,
  micros,
  mysqlKit,
  postgresKit,
  skipUnlessSource,
  startSourceApp,
  type SourceSession,
  sqliteKit,
  uniqueIds,
} from '../helpers/sync-sources.js';

/**
 * Main runs while the writers write: at least RUNS, and more until the writers have done what the
 * scenario needs (a loaded machine gets fewer writes in between two runs), at most MAX_RUNS.
 */
const RUNS = 20;
const MAX_RUNS = 200;
const INITIAL_ROWS = 200;
const LOOKBACK_MS = 10 * 60_000;

for (const kit of [postgresKit, mysqlKit, sqliteKit]) {
  const skip = await skipUnlessSource(kit);
  describe(`sync under live writers on ${kit.label}`, { skip }, () => {
    let t: SyncTestApp;
    let db: TempDatabase;
    const sessions: SourceSession[] = [];
    const q = kit.q;
    const p = kit.p;

    before(async () => {
      ({ t, db } = await startSourceApp(kit));
    });
    after(async () => {
      for (const s of sessions) await s.end().catch(() => undefined);
      await t?.close();
      await db?.close();
    });

    const session = async () => {
      const s = await kit.connect(db.url);
      sessions.push(s);
      return s;
    };

    it('inserts, updates and late commits during repeated runs: in the end one document per row, each current', { timeout: 300_000 }, async (ctx) => {
      await db.exec(`CREATE TABLE ${q('live')} (id ${kit.t.int} PRIMARY KEY, body ${kit.t.text} NOT NULL, updated_at ${kit.nowType} NOT NULL)`);
      await db.exec(`CREATE INDEX ${q('live_updated')} ON ${q('live')} (updated_at, id)`);
      // The initial rows share one timestamp (one statement): ties from the start.
      const init = await session();
      const initial = Array.from({ length: INITIAL_ROWS }, (_, k) => k + 1);
      await init.query(
        `INSERT INTO ${q('live')} (id, body, updated_at) VALUES ${initial.map((_, k) => `(${p(2 * k + 1)}, ${p(2 * k + 2)}, ${kit.now})`).join(', ')}`,
        initial.flatMap((id) => [id, `initial ${id}`]),
      );

      await createKb(t, 'live_kb');
      await createKb(t, 'control_kb');
      await createJob(t, { job_name: 'live', kb_name: 'live_kb', source_table: 'src.live', content_columns: ['body'], filter_column: 'updated_at', lookback: '10 MINUTES', batch_size: 50 });
      // deletes: off, because reconciliation would find the late rows by their keys and heal them.
      await createJob(t, { job_name: 'control', kb_name: 'control_kb', source_table: 'src.live', content_columns: ['body'], filter_column: 'updated_at', lookback: 0, batch_size: 50, deletes: 'off' });
      assertSucceeded(await t.runNow('live'));
      assertSucceeded(await t.runNow('control'));

      let nextId = INITIAL_ROWS + 1;
      let stop = false;
      let runsDone = 0;
      const stats = { inserts: 0, updates: 0, lateCommits: 0 };
      /** Late inserts that committed behind the control job's watermark: lost without lookback. */
      const behindControl: number[] = [];
      /** Longest a late transaction stayed open: the lookback must cover it. */
      let longestHoldMs = 0;
      const enough = () =>
        stats.inserts > 20 && stats.updates > 20 && stats.lateCommits >= 3 && behindControl.length >= 1;
      const pause = () => sleep(2 + Math.floor(Math.random() * 12));
      const pick = () => initial[Math.floor(Math.random() * initial.length)]!;

      const inserter = async () => {
        const s = await session();
        while (!stop) {
          const id = nextId++;
          await s.query(`INSERT INTO ${q('live')} (id, body, updated_at) VALUES (${p(1)}, ${p(2)}, ${kit.now})`, [id, `inserted ${id}`]);
          stats.inserts++;
          await pause();
        }
      };
      // Updaters touch only the initial rows, so a late-inserted row keeps its late timestamp.
      const updater = async (name: string) => {
        const s = await session();
        let n = 0;
        while (!stop) {
          const id = pick();
          await s.query(`UPDATE ${q('live')} SET body = ${p(1)}, updated_at = ${kit.now} WHERE id = ${p(2)}`, [`updated ${id} by ${name} #${++n}`, id]);
          stats.updates++;
          await pause();
        }
      };
      const lateCommitter = async () => {
        const s = await session();
        let n = 0;
        while (!stop) {
          n++;
          await s.query('BEGIN');
          if (kit.singleWriter) {
            // The transaction's time is taken at BEGIN, its write lock only at its first write: one
            // run later, after the other writers have committed rows stamped after it, and no
            // sooner than 150 ms (SQLite's busy handler sleeps up to 100 ms at a time), so the
            // writers this transaction blocked last time get their turn.
            const firstWrite = runsDone + 1;
            const notBefore = Date.now() + 150;
            while ((runsDone < firstWrite || Date.now() < notBefore) && !stop) await sleep(5);
          }
          const id = nextId++;
          await s.query(`INSERT INTO ${q('live')} (id, body, updated_at) VALUES (${p(1)}, ${p(2)}, ${kit.now})`, [id, `late insert ${id}`]);
          // A late update too: the row's new timestamp is older than its commit.
          const other = pick();
          await s.query(`UPDATE ${q('live')} SET body = ${p(1)}, updated_at = ${kit.now} WHERE id = ${p(2)}`, [`late update ${other} #${n}`, other]);
          const [stamped] = await s.query(`SELECT ${kit.timeText('updated_at')} AS u FROM ${q('live')} WHERE id = ${p(1)}`, [id]);
          const stampedAt = Date.now();
          // Hold the transaction open across one or two main runs.
          const target = runsDone + 1 + (n % 2);
          while (runsDone < target && !stop) await sleep(5);
          const control = (await getJob(t, 'control')).watermark;
          await s.query('COMMIT');
          longestHoldMs = Math.max(longestHoldMs, Date.now() - stampedAt);
          stats.lateCommits++;
          if (control !== null && micros(String(stamped!.u)) < micros(control.filter_value)) behindControl.push(id);
        }
      };

      const writers = [inserter(), updater('a'), updater('b'), lateCommitter()];
      const started = Date.now();
      try {
        // Counted, not timed: runs go on until the writers have done enough between them.
        while (runsDone < RUNS || (!enough() && runsDone < MAX_RUNS)) {
          assertSucceeded(await t.runNow('live'));
          runsDone++;
          assertSucceeded(await t.runNow('control'));
          await sleep(60);
        }
      } finally {
        stop = true;
        await Promise.all(writers);
      }
      const elapsed = Date.now() - started;
      // The premise, not a speed: a late row older than the lookback is lost by design.
      assert.ok(longestHoldMs < LOOKBACK_MS - 60_000, `a late transaction stayed open ${longestHoldMs} ms: longer than the lookback can cover`);

      const last = await t.runNow('live');
      assertSucceeded(last);
      assertSucceeded(await t.runNow('control'));

      ctx.diagnostic(`${runsDone + 1} runs in ${elapsed} ms (late transactions open up to ${longestHoldMs} ms); ${stats.inserts} inserts, ${stats.updates} updates, ${stats.lateCommits} late commits (${behindControl.length} behind the control watermark)`);
      // The scenario really happened.
      assert.ok(stats.inserts > 20, `only ${stats.inserts} inserts in ${runsDone} runs`);
      assert.ok(stats.updates > 20, `only ${stats.updates} updates`);
      assert.ok(stats.lateCommits >= 3, `only ${stats.lateCommits} late commits`);
      assert.ok(behindControl.length >= 1, 'no transaction committed behind the watermark');

      // Exactly one document per row, each with the row's current content and filter value.
      const rows = (await db.exec(`SELECT id, body, ${kit.timeText('updated_at')} AS u FROM ${q('live')} ORDER BY id`)) as Array<{ id: unknown; body: string; u: string }>;
      const docs = await t.documents('live_kb');
      const ids = uniqueIds(docs);
      assert.equal(docs.length, rows.length, `${docs.length} documents for ${rows.length} rows`);
      const byId = new Map(docs.map((d) => [d.id, d]));
      const stale: string[] = [];
      for (const row of rows) {
        const doc = byId.get(String(row.id));
        assert.ok(doc, `row ${String(row.id)} (${row.body}) has no document`);
        if (doc.content !== `body: ${row.body}` || micros(String(doc.metadata.updated_at)) !== micros(row.u)) {
          stale.push(`${String(row.id)}: document '${doc.content}' @ ${String(doc.metadata.updated_at)}, row '${row.body}' @ ${row.u}`);
        }
      }
      assert.deepEqual(stale, [], 'documents that do not match their row');
      assert.deepEqual(ids, new Set(rows.map((r) => String(r.id))));

      // Without lookback, the rows that committed behind the watermark are lost.
      const controlIds = new Set((await t.documents('control_kb')).map((d) => d.id));
      assert.deepEqual(
        behindControl.filter((id) => controlIds.has(String(id))),
        [],
        'a lookback-0 job cannot have read a row that committed behind its watermark (the scenario is not what this test thinks)',
      );
    });
  });
}
