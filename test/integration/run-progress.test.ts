/**
 * Live progress of a run (API.md "Jobs": `progress`), read the way a user reads it: through the
 * HTTP API, while a 3,000-row run works with the local embedding model (provider 'local', one
 * worker thread), from a real SQLite table.
 *
 * While the run works, `progress` on the run (GET /jobs/{job}/runs/{run_id}) and on the job
 * (GET /jobs/{job}) must move at least three times — also inside a batch, while it is embedded
 * (batches of 1,000 rows, so a value that is not a multiple of 1,000 can only come from a batch
 * being embedded) — with `rows_total_estimate` the table's 3,000 rows and `eta_seconds` falling;
 * once the run has ended, progress is null in the answers and in the stored run record.
 *
 * No timing assumption: the test counts what it saw, however long the run takes. The run only
 * has to last a few of the server's one-second progress writes: 3,000 short texts on one thread
 * of the model take several seconds even on a fast idle machine (it embeds ~300 short texts a
 * second per thread at best) and a minute or more on a loaded one.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { sourcesDir, startTestApp, type TestApp } from '../helpers/app.js';
import { jobBody } from '../helpers/sync.js';

const ROWS = 3000;
const BATCH = 1000;

interface Progress {
  rows_done: number;
  rows_total_estimate: number | null;
  percent: number | null;
  eta_seconds: number | null;
}

let t: TestApp;

before(async () => {
  t = await startTestApp({ config: { localEmbeddingThreads: 1 } });
  const file = path.join(sourcesDir(t.dataDir), 'tickets.db');
  const src = new Database(file);
  src.exec('CREATE TABLE tickets (id INTEGER PRIMARY KEY, title TEXT, body TEXT, updated_at TEXT)');
  const insert = src.prepare('INSERT INTO tickets VALUES (?, ?, ?, ?)');
  const topics = ['a late delivery', 'a damaged parcel', 'a wrong size', 'a refund', 'a missing invoice', 'a broken zip'];
  src.transaction(() => {
    for (let i = 1; i <= ROWS; i++) {
      const at = new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString().replace('T', ' ').slice(0, 19);
      const topic = topics[i % topics.length];
      insert.run(i, `ticket ${i} about ${topic}`, `Customer ${i} wrote about ${topic} on order ${10_000 + i}.`, at);
    }
  })();
  src.close();
  assert.equal((await t.request('POST', '/databases', { name: 'src', engine: 'sqlite', parameters: { path: file } })).status, 201);
  assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'kb' })).status, 201);
});

after(async () => {
  await t?.close();
});

describe('live progress of a run', () => {
  it('moves at least three times while a 3,000-row run embeds with the local model, inside batches too; ETA falls; null once done', {
    timeout: 600_000,
  }, async (ctx) => {
    const created = await t.request(
      'POST',
      '/jobs/create',
      jobBody({ job_name: 'tickets', source_table: 'src.tickets', content_columns: ['title'], filter_column: 'updated_at', batch_size: BATCH }),
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const started = await t.request('POST', '/jobs/tickets/run');
    assert.equal(started.status, 202, JSON.stringify(started.body));
    const runId: string = started.body.data.run_id;
    const t0 = Date.now();

    // Everything seen while the run was running, from the run and from the job.
    const seen: Progress[] = [];
    let jobProgressSeen = 0;
    let run: any;
    for (let poll = 0; ; poll++) {
      run = (await t.request('GET', `/jobs/tickets/runs/${runId}`)).body.data;
      if (run.status !== 'running') break;
      if (run.progress !== null) seen.push(run.progress);
      if (poll % 2 === 0) {
        const job = (await t.request('GET', '/jobs/tickets')).body.data;
        if (job.status === 'running' && job.progress !== null) {
          jobProgressSeen++;
          assert.deepEqual(job.last_run.progress, job.progress, 'the job shows its running run progress in both places');
          assert.equal(job.progress.rows_total_estimate ?? ROWS, ROWS);
        }
      }
      await sleep(150);
    }
    assert.equal(run.status, 'succeeded', JSON.stringify(run));
    assert.equal(run.rows_read, ROWS);

    const done = [...new Set(seen.map((p) => p.rows_done))];
    const summary = JSON.stringify(seen.map((p) => [p.rows_done, p.percent, p.eta_seconds]));
    ctx.diagnostic(`run took ${Date.now() - t0} ms; ${seen.length} polls saw progress, ${done.length} distinct rows_done: ${done.join(', ')}`);
    assert.ok(done.length >= 3, `progress moved at least three times while running: ${summary}`);
    assert.ok(
      done.some((n) => n > 0 && n < ROWS && n % BATCH !== 0),
      `rows_done moved inside a batch, while it was embedded (not only at checkpoints): ${summary}`,
    );
    for (let i = 1; i < seen.length; i++) {
      assert.ok(seen[i]!.rows_done >= seen[i - 1]!.rows_done, `rows_done never goes back: ${summary}`);
    }
    for (const p of seen) {
      // The bounded count on the SQLite source is exact: the table's rows past the (empty) watermark.
      assert.equal(p.rows_total_estimate, ROWS, `the estimate is the table's rows: ${JSON.stringify(p)}`);
      assert.ok(p.percent !== null && p.percent >= 0 && p.percent <= 100, JSON.stringify(p));
      assert.ok(Math.abs(p.percent - (100 * p.rows_done) / ROWS) <= 0.1, `percent of rows done: ${JSON.stringify(p)}`);
    }
    const etas = seen.map((p) => p.eta_seconds).filter((e): e is number => e !== null);
    assert.ok(
      etas.some((e, i) => i > 0 && e < etas[i - 1]!),
      `eta_seconds fell at least once: ${summary}`,
    );
    assert.ok(jobProgressSeen >= 1, 'GET /jobs/{job} showed the progress of its running run');

    // Ended: null in every answer, and in the stored record any other process reads.
    assert.equal(run.progress, null);
    const job = (await t.request('GET', '/jobs/tickets')).body.data;
    assert.equal(job.progress, null);
    assert.equal(job.last_run.progress, null);
    const stored = await t.app.services.store.getRun(job.job_id, runId);
    assert.equal(stored?.progress, null, 'the stored run record has no progress once the run ended');
    const history = (await t.request('GET', '/jobs/tickets/runs')).body.data.runs;
    assert.equal(history[0].progress, null);
  });
});
