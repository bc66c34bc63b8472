/**
 * A PATCH racing a run (issue 8, point 1), replayed 200 times with random delays on PostgreSQL:
 * a run works on the configuration it started with, a change of what runs read is refused (409)
 * while one is in progress — decided inside the transaction that writes — and a stale checkpoint
 * cancels the run without writing. At the end no row is lost, the job is not failing, and every
 * document is built from the job's current content columns.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { TempDatabase } from '../helpers/databases.js';
import type { SyncTestApp } from '../helpers/sync.js';
import { assertSucceeded, createJob, createKb, getJob, insertRows, postgresKit, skipUnlessSource, startSourceApp, uniqueIds } from '../helpers/sync-sources.js';

const skip = await skipUnlessSource(postgresKit);
let t: SyncTestApp;
let db: TempDatabase;

before(async () => {
  if (skip) return;
  ({ t, db } = await startSourceApp(postgresKit));
});
after(async () => {
  await t?.close();
  await db?.close();
});

const ROUNDS = 200;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it(`PATCH (columns, filter column) racing run-now, ${ROUNDS} times with random delays: no row lost, no job failing, no mixed documents`, { skip, timeout: 240_000 }, async (ctx) => {
  await db.exec('CREATE TABLE items (id integer PRIMARY KEY, title text, body text, created_at timestamptz, updated_at timestamptz)');
  let next = 0;
  const addRows = async (n: number) => {
    const rows = Array.from({ length: n }, () => {
      next++;
      // created_at runs against updated_at, so the two filter columns order rows differently.
      return [next, `title ${next}`, `body ${next}`, `2025-01-01 00:00:00+00`, `2025-01-01 00:00:00+00`];
    });
    await insertRows(postgresKit, db, 'items', ['id', 'title', 'body', 'created_at', 'updated_at'], rows);
    await db.exec(`UPDATE items SET created_at = timestamptz '2026-01-01' - id * interval '1 second', updated_at = timestamptz '2025-01-01' + id * interval '1 second' WHERE id > $1`, [next - n]);
  };
  await addRows(100);
  await createKb(t, 'race_kb');
  await createJob(t, { job_name: 'race', kb_name: 'race_kb', source_table: 'src.items', content_columns: ['title'], filter_column: 'updated_at', lookback: 0, batch_size: 30 });

  const outcomes = { patched: 0, patchedWhileRunning: 0, patchRefused: 0, runs: 0, runRefused: 0 };
  let seed = 11;
  // The high bits of a linear congruential generator (its low bits alternate).
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return Math.floor((seed / 2 ** 31) * n);
  };
  for (let i = 0; i < ROUNDS; i++) {
    // New rows every round, so every run embeds something; embedding is held while the requests
    // race, so a run that started stays in progress until both have been answered.
    await addRows(2);
    const release = t.providers.hold();
    const before = await getJob(t, 'race');
    const patch =
      rand(2) === 0
        ? { content_columns: before.content_columns[0] === 'title' ? ['body'] : ['title'] }
        : { filter_column: before.filter_column === 'updated_at' ? 'created_at' : 'updated_at', lookback: 0 };
    // A PATCH introspects the source before it writes (a few ms): sent first, it races a run-now
    // sent 0-24 ms later, which claims the job before or after the PATCH writes; a run-now sent
    // first is raced by a PATCH 0-39 ms later.
    const runFirst = rand(2) === 0;
    const delay = runFirst ? rand(40) : rand(25);
    const run = async () => {
      const res = await t.request('POST', '/jobs/race/run');
      if (res.status === 202) outcomes.runs++;
      else {
        assert.equal(res.status, 409, JSON.stringify(res.body));
        outcomes.runRefused++;
      }
    };
    const change = async () => {
      const res = await t.request('PATCH', '/jobs/race', patch);
      if (res.status === 200) {
        outcomes.patched++;
        if (res.body.data.status === 'running') outcomes.patchedWhileRunning++;
      }
      else {
        assert.equal(res.status, 409, JSON.stringify(res.body));
        outcomes.patchRefused++;
      }
    };
    try {
      await Promise.all(runFirst ? [run(), sleep(delay).then(change)] : [change(), sleep(delay).then(run)]);
    } finally {
      release();
    }
    await t.app.services.scheduler.whenIdle();
    // One run with nothing racing it must bring the knowledge base in line with the job as it is
    // now: a run that had written its own watermark over a PATCH's reset would leave rows unread.
    const settle = await t.runNow('race');
    assertSucceeded(settle);
    const job = await getJob(t, 'race');
    assert.equal(job.status, 'scheduled', `round ${i}: the job is ${job.status}`);
    const column = job.content_columns[0] as 'title' | 'body';
    const docs = await t.documents('race_kb');
    assert.equal(uniqueIds(docs).size, next, `round ${i}: every row has its document (${next} rows)`);
    for (const d of docs) {
      assert.equal(d.content, `${column}: ${column} ${d.id}`, `round ${i}: document ${d.id} is built from the current content columns`);
    }
  }
  ctx.diagnostic(JSON.stringify(outcomes));
  assert.ok(outcomes.patched > 0 && outcomes.patchRefused > 0 && outcomes.runs > 0, 'both outcomes of the race happened');
});
