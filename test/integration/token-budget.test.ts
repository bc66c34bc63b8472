/**
 * Issue 12, "Cost": `max_tokens_per_run`. A run that would exceed it embeds up to it, checkpoints
 * and ends `succeeded` with `budget_reached: true`; the next run continues from that checkpoint.
 * A backfill is split over several runs with no row lost and none embedded twice (the counting
 * test provider sees every chunk exactly once). Real SQLite source; the hashing provider, whose
 * tokens the run counts with the tokenizer, so a run's tokens are exactly what the budget counted.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { isoIn, sourcesDir } from '../helpers/app.js';
import { startSyncApp, type SyncTestApp } from '../helpers/sync.js';

const ROWS = 2_000;
const WORDS = [
  'granite',
  'river',
  'copper',
  'maple',
  'harbor',
  'violet',
  'ember',
  'cedar',
  'quartz',
  'meadow',
  'falcon',
  'tundra',
];
const bodyOf = (i: number) =>
  Array.from({ length: 4 + ((i * 13) % 60) }, (_, k) => WORDS[(i + k * 5) % WORDS.length]).join(' ');
const stamp = (second: number) =>
  new Date(Date.UTC(2025, 0, 1) + second * 1000).toISOString().replace('T', ' ').slice(0, 19);

function makeSource(dataDir: string): string {
  const file = path.join(sourcesDir(dataDir), `budget-${Math.random().toString(36).slice(2)}.db`);
  const db = new Database(file);
  db.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, updated_at TIMESTAMP)');
  const insert = db.prepare('INSERT INTO notes VALUES (?, ?, ?)');
  db.transaction(() => {
    for (let i = 1; i <= ROWS; i++) insert.run(i, bodyOf(i), stamp(i));
  })();
  db.close();
  return file;
}

let t: SyncTestApp;

before(async () => {
  t = await startSyncApp();
  const file = makeSource(t.dataDir);
  assert.equal(
    (await t.request('POST', '/databases', { name: 'src', engine: 'sqlite', parameters: { path: file } }))
      .status,
    201,
  );
  for (const kb of ['kb', 'kb_big'])
    assert.equal(
      (
        await t.request('POST', '/knowledge_bases', {
          kb_name: kb,
          chunking: { chunk_size: 200, chunk_overlap: 20 },
        })
      ).status,
      201,
    );
});
after(() => t.close());

const jobBody = (name: string, kb: string, extra: Record<string, unknown> = {}) => ({
  job_name: name,
  source_table: 'src.notes',
  kb_name: kb,
  content_columns: ['body'],
  filter_column: 'updated_at',
  interval: 'HOURLY',
  start_time: isoIn(60),
  end_time: isoIn(600),
  // Cuts fall inside batches, not only between them.
  batch_size: 150,
  ...extra,
});

describe('max_tokens_per_run', () => {
  it('splits a backfill over several runs: none lost, none embedded twice, each run within its budget', async (ctx) => {
    // No lookback and no reconciliation: both would write rows a wrong checkpoint skipped, hiding the loss.
    assert.equal(
      (await t.request('POST', '/jobs', jobBody('notes', 'kb', { lookback: 0, deletes: 'off' }))).status,
      201,
    );
    const whole = (await t.request('POST', '/jobs/notes/estimate')).body.data;
    assert.equal(whole.documents, ROWS);
    const budget = Math.ceil(whole.tokens / 4.5);
    const patched = await t.request('PATCH', '/jobs/notes', { max_tokens_per_run: budget });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.data.max_tokens_per_run, budget);
    const planned = (await t.request('POST', '/jobs/notes/estimate')).body.data;
    assert.equal(planned.runs, 5);
    assert.equal(planned.max_tokens_per_run, budget);

    const runs: any[] = [];
    for (let i = 0; i < 20; i++) {
      const run = await t.runNow('notes');
      runs.push(run);
      assert.equal(run.status, 'succeeded', JSON.stringify(run.error));
      if (!run.budget_reached) break;
    }
    ctx.diagnostic(
      `budget ${budget} of ${whole.tokens} tokens: ${runs.length} runs of ${runs.map((r) => `${r.embedding_tokens} tokens/${r.documents_added} docs`).join(', ')}`,
    );
    assert.ok(runs.length >= 5 && runs.length <= 6, `${runs.length} runs`);
    const last = runs[runs.length - 1];
    assert.equal(last.budget_reached, false);
    for (const run of runs.slice(0, -1)) {
      assert.equal(run.budget_reached, true);
      assert.ok(run.embedding_tokens <= budget, `${run.embedding_tokens} > ${budget}`);
      // Stopped near the budget, at a row boundary: no run gives up much of it.
      assert.ok(run.embedding_tokens > budget * 0.9, `${run.embedding_tokens} of ${budget}`);
    }
    // Each run goes on exactly where the one before checkpointed, and wrote exactly the rows in
    // between (ids are 1…ROWS in filter order).
    for (let i = 1; i < runs.length; i++)
      assert.deepEqual(runs[i].watermark_start, runs[i - 1].watermark_end);
    for (const run of runs) {
      const from = run.watermark_start === null ? 0 : Number(run.watermark_start.key[0]);
      assert.equal(run.documents_added, Number(run.watermark_end.key[0]) - from, `run ${run.run_id}`);
      assert.equal(run.rows_read, run.documents_added);
    }
    assert.deepEqual(last.watermark_end?.key, [String(ROWS)]);

    // No row lost, none repeated: every chunk embedded once, every row a document once.
    const sum = (field: string) => runs.reduce((s, r) => s + r[field], 0);
    assert.equal(sum('documents_added'), ROWS);
    assert.equal(sum('documents_updated'), 0);
    assert.equal(sum('embedding_tokens'), whole.tokens);
    assert.equal(t.providers.embedded(), whole.chunks);
    const docs = await t.documents('kb');
    assert.equal(docs.length, ROWS);
    assert.equal(new Set(docs.map((d) => d.id)).size, ROWS);
    for (const i of [1, 777, ROWS])
      assert.equal(docs.find((d) => d.id === String(i))?.content, `body: ${bodyOf(i)}`);

    const job = (await t.request('GET', '/jobs/notes')).body.data;
    assert.equal(job.totals.embedding_tokens, whole.tokens);
    assert.equal(job.totals.runs_succeeded, runs.length);
    const metrics = await t.app.server.inject({ method: 'GET', url: '/metrics' });
    assert.match(metrics.body, new RegExp(`^kbsync_runs_budget_reached_total ${runs.length - 1}$`, 'm'));

    // Caught up: the next run embeds nothing and is not stopped by the budget.
    const idle = await t.runNow('notes');
    assert.equal(idle.embedding_tokens, 0);
    assert.equal(idle.budget_reached, false);
    assert.equal(t.providers.embedded(), whole.chunks);
  });

  it('a document larger than the whole budget is embedded alone, so the job never stalls; null removes the budget', async () => {
    assert.equal(
      (await t.request('POST', '/jobs', jobBody('big', 'kb_big', { max_tokens_per_run: 1 }))).status,
      201,
    );
    const first = await t.runNow('big');
    assert.equal(first.budget_reached, true);
    assert.equal(first.documents_added, 1);
    assert.ok(first.embedding_tokens > 1);
    assert.deepEqual(first.watermark_end.key, ['1']);
    const second = await t.runNow('big');
    assert.equal(second.documents_added, 1);
    assert.deepEqual(second.watermark_end.key, ['2']);

    const cleared = await t.request('PATCH', '/jobs/big', { max_tokens_per_run: null });
    assert.equal(cleared.status, 200, JSON.stringify(cleared.body));
    assert.equal(cleared.body.data.max_tokens_per_run, null);
    const rest = await t.runNow('big');
    assert.equal(rest.budget_reached, false);
    assert.equal(rest.documents_added, ROWS - 2);
    assert.equal((await t.documents('kb_big')).length, ROWS);
  });
});
