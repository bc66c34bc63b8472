/**
 * Pause and delete stop a large run while it embeds a batch (SEMANTICS.md, "Pause"): the run
 * ends `cancelled` without waiting for the batch, the batch's queued sub-batches are never
 * embedded, nothing of it is written and the watermark covers only the batches written before;
 * a later run syncs every remaining row exactly once.
 *
 * The source is a real SQLite table of 3,000 rows. The provider embeds like the local one — in
 * sub-batches, checking the abort signal before each — but on a timer, slow enough once the test
 * says so that an unstoppable batch would take about half a minute; the bound the test waits
 * for the stop (10 s) is generous for a loaded machine and far below that.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { HashingEmbeddingProvider } from '../../src/embeddings/hashing/provider.js';
import type { EmbeddingProvider } from '../../src/embeddings/port.js';
import { sourcesDir } from '../helpers/app.js';
import { type CountingProviders, jobBody, startSyncApp, type SyncTestApp } from '../helpers/sync.js';

const ROWS = 3000;
const BATCH = 1000;
const SUB_BATCH = 32;
/** A slow sub-batch: 32 of them make a batch of 1,000 rows take ~32 s unless the run is stopped. */
const SLOW_MS = 1000;
/** How long the test waits for a stopped run to end. */
const STOP_BOUND_MS = 10_000;

/** Embeds in sub-batches like the local provider; past `slowAfter(n)` texts, each sub-batch takes SLOW_MS. */
function subBatchingProvider() {
  const inner = new HashingEmbeddingProvider({ dimensions: 32 });
  let embedded = 0;
  let slowFrom = Number.POSITIVE_INFINITY;
  let slowStarted: () => void = () => undefined;
  const provider: EmbeddingProvider = {
    id: 'test:sub-batching',
    dimensions: () => inner.dimensions(),
    async embed(texts, options = {}) {
      const out: Float32Array[] = [];
      for (let i = 0; i < texts.length; i += SUB_BATCH) {
        // Between sub-batches the call gives up as soon as its signal fires; the rest is never embedded.
        options.signal?.throwIfAborted();
        if (embedded >= slowFrom) {
          slowStarted();
          await sleep(SLOW_MS, undefined, options.signal ? { signal: options.signal } : {}).catch(() =>
            options.signal?.throwIfAborted(),
          );
          options.signal?.throwIfAborted();
        }
        const part = texts.slice(i, i + SUB_BATCH);
        out.push(...(await inner.embed(part)));
        embedded += part.length;
      }
      return out;
    },
    close: async () => undefined,
  };
  const providers: CountingProviders = {
    factory: () => provider,
    embedded: () => embedded,
    failNext: () => assert.fail('not used'),
    hold: () => assert.fail('not used'),
  };
  return {
    providers,
    /** Sub-batches after `n` more texts are slow; resolves when the first slow one starts. */
    slowAfter(n: number): Promise<void> {
      slowFrom = embedded + n;
      return new Promise((resolve) => {
        slowStarted = resolve;
      });
    },
    fast(): void {
      slowFrom = Number.POSITIVE_INFINITY;
    },
  };
}

let t: SyncTestApp;
let fake: ReturnType<typeof subBatchingProvider>;
let file: string;

before(async () => {
  fake = subBatchingProvider();
  t = await startSyncApp({ providers: fake.providers });
  file = path.join(sourcesDir(t.dataDir), 'large.db');
  const src = new Database(file);
  src.exec('CREATE TABLE tickets (id INTEGER PRIMARY KEY, title TEXT, body TEXT, updated_at TEXT)');
  const insert = src.prepare('INSERT INTO tickets VALUES (?, ?, ?, ?)');
  src.transaction(() => {
    for (let i = 1; i <= ROWS; i++) {
      // Distinct, increasing filter values: row i is the i-th in keyset order.
      const at = new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString().replace('T', ' ').slice(0, 19);
      insert.run(i, `ticket ${i}`, `the customer reported problem number ${i} with their order`, at);
    }
  })();
  src.close();
  assert.equal(
    (await t.request('POST', '/databases', { name: 'src', engine: 'sqlite', parameters: { path: file } }))
      .status,
    201,
  );
  assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'kb' })).status, 201);
});

after(async () => {
  await t.close();
});

/** Starts a manual run and waits until it embeds its second batch (the first is embedded fast and written). */
async function startAndReachSecondBatch(job: string): Promise<string> {
  const reached = fake.slowAfter(BATCH);
  const started = await t.request('POST', `/jobs/${job}/run`);
  assert.equal(started.status, 202, JSON.stringify(started.body));
  await reached;
  return started.body.data.run_id;
}

/** Waits for the scheduler to have no run, at most `ms`; true if it got there. */
async function idleWithin(ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const idle = await Promise.race([t.app.services.scheduler.whenIdle().then(() => true as const), deadline]);
  clearTimeout(timer);
  return idle;
}

describe('pause and delete during a large run', () => {
  it('pause stops the run mid-batch; nothing of that batch is written; a resumed run syncs every row exactly once', async () => {
    const created = await t.request(
      'POST',
      '/jobs/create',
      jobBody({
        job_name: 'tickets',
        source_table: 'src.tickets',
        content_columns: ['title', 'body'],
        filter_column: 'updated_at',
        batch_size: BATCH,
        lookback: 0,
      }),
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const embeddedBefore = fake.providers.embedded();
    const runId = await startAndReachSecondBatch('tickets');
    assert.equal((await t.request('POST', '/jobs/tickets/pause')).status, 200);

    const stopped = await idleWithin(STOP_BOUND_MS);
    const run = (await t.request('GET', `/jobs/tickets/runs/${runId}`)).body.data;
    assert.ok(
      stopped,
      `the run was still ${run.status} ${STOP_BOUND_MS} ms after the pause (it waited for its batch to be embedded)`,
    );
    assert.equal(run.status, 'cancelled', JSON.stringify(run));
    assert.equal(run.error?.code, 'CANCELLED');
    assert.equal(run.rows_failed, 0, 'rows of the stopped batch are not failures');

    // The batch being embedded was given up: at most the sub-batch in progress was embedded.
    const embeddedInRun = fake.providers.embedded() - embeddedBefore;
    assert.ok(
      embeddedInRun <= BATCH + SUB_BATCH,
      `the stopped batch went on being embedded (${embeddedInRun} texts in the run)`,
    );

    // Nothing half-written: exactly the first batch is in the knowledge base, and the watermark
    // is its last row.
    const job = (await t.request('GET', '/jobs/tickets')).body.data;
    assert.equal(job.status, 'paused');
    assert.equal(run.documents_added, BATCH);
    assert.equal((await t.documents('kb')).length, BATCH);
    assert.equal(job.watermark.key[0], String(BATCH));
    assert.equal(run.watermark_end.key[0], String(BATCH));

    // Resume: the next run reads only what is left, and every row ends up once.
    fake.fast();
    assert.equal((await t.request('POST', '/jobs/tickets/resume')).status, 200);
    const rest = await t.runNow('tickets');
    assert.equal(rest.status, 'succeeded', JSON.stringify(rest));
    assert.equal(rest.rows_read, ROWS - BATCH);
    assert.equal(rest.documents_added, ROWS - BATCH);
    assert.equal(rest.documents_updated, 0);
    const docs = await t.documents('kb');
    assert.equal(docs.length, ROWS);
    assert.equal(new Set(docs.map((d) => d.id)).size, ROWS, 'no document twice');
    const totals = (await t.request('GET', '/jobs/tickets')).body.data.totals;
    assert.equal(totals.documents_added, ROWS, 'each row added once over the two runs');
    assert.equal(totals.documents_updated, 0);
  });

  it('deleting the job stops its run mid-batch the same way', async () => {
    assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'kb2' })).status, 201);
    const created = await t.request(
      'POST',
      '/jobs/create',
      jobBody({
        job_name: 'doomed',
        kb_name: 'kb2',
        source_table: 'src.tickets',
        content_columns: ['title'],
        filter_column: 'updated_at',
        batch_size: BATCH,
        lookback: 0,
      }),
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await startAndReachSecondBatch('doomed');
    assert.equal((await t.request('DELETE', '/jobs/doomed')).status, 200);
    assert.ok(
      await idleWithin(STOP_BOUND_MS),
      `the run went on for ${STOP_BOUND_MS} ms after the job was deleted`,
    );
    fake.fast();
    // Only the batch written before the delete is in the knowledge base.
    assert.equal((await t.documents('kb2')).length, BATCH);
  });
});
