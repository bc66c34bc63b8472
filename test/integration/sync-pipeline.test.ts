/**
 * The sync run's pipeline (docs/semantics.md, "Checkpoint per batch, after the write"): batch N+1
 * is embedded while batch N is written and checkpointed, yet batches are written and checkpointed
 * one at a time and in order, and a batch whose predecessor failed is never written nor counted as
 * failed. The source is a real SQLite table; the store is the real embedded one, its write held or
 * failed from the outside (the method wrapped, the store itself untouched).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { VectorStore } from '../../src/store/vector-port.js';
import { sourcesDir } from '../helpers/app.js';
import { jobBody, startSyncApp, type SyncTestApp } from '../helpers/sync.js';

const ROWS = 300;
const BATCH = 100;

let t: SyncTestApp;
/** What the wrapped store write does before writing (default: nothing). */
let beforeStoreWrite: (firstId: string) => Promise<void> = async () => undefined;
/** The first document id of each store write, in the order the writes happened. */
let writes: string[] = [];

before(async () => {
  t = await startSyncApp();
  const vectors = t.app.services.vectors as VectorStore;
  const write = vectors.upsertDocuments.bind(vectors);
  vectors.upsertDocuments = async (kbId, docs, metadataOnly, shadow) => {
    const firstId = docs[0]?.id ?? '';
    await beforeStoreWrite(firstId);
    const n = await write(kbId, docs, metadataOnly, shadow);
    writes.push(firstId);
    return n;
  };
  const file = path.join(sourcesDir(t.dataDir), 'pipeline.db');
  const src = new Database(file);
  src.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT, updated_at TEXT)');
  const insert = src.prepare('INSERT INTO items VALUES (?, ?, ?)');
  src.transaction(() => {
    for (let i = 1; i <= ROWS; i++) {
      const at = new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString().replace('T', ' ').slice(0, 19);
      insert.run(i, `item ${i} of the pipeline table`, at);
    }
  })();
  src.close();
  const db = await t.request('POST', '/databases', { name: 'src', engine: 'sqlite', parameters: { path: file } });
  assert.equal(db.status, 201, JSON.stringify(db.body));
});

after(async () => {
  await t.close();
});

async function createJob(name: string, kb: string): Promise<void> {
  assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: kb })).status, 201);
  const created = await t.request(
    'POST',
    '/jobs/create',
    jobBody({
      job_name: name,
      kb_name: kb,
      source_table: 'src.items',
      content_columns: ['body'],
      filter_column: 'updated_at',
      batch_size: BATCH,
      lookback: 0,
    }),
  );
  assert.equal(created.status, 201, JSON.stringify(created.body));
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('sync pipeline', () => {
  it('embeds batch N+1 while batch N is written, and writes and checkpoints the batches in order', async () => {
    await createJob('overlap', 'kb_overlap');
    writes = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let holding = 0;
    beforeStoreWrite = async (firstId) => {
      if (firstId !== '1') return;
      holding++;
      await held;
    };
    const embeddedBefore = t.providers.embedded();
    const started = await t.request('POST', '/jobs/overlap/run');
    assert.equal(started.status, 202, JSON.stringify(started.body));
    await until('batch 1 to reach the store', () => holding === 1);
    // Batch 2 is embedded while batch 1's write is held...
    await until('batch 2 to be embedded', () => t.providers.embedded() - embeddedBefore >= 2 * BATCH);
    // ...but neither it nor batch 3 goes further: nothing written, nothing checkpointed, batch 3 not embedded.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(t.providers.embedded() - embeddedBefore, 2 * BATCH, 'at most two batches in flight');
    assert.deepEqual(writes, []);
    const during = (await t.request('GET', '/jobs/overlap')).body.data;
    assert.equal(during.watermark, null, 'no checkpoint before batch 1 is written');
    assert.equal(during.totals.rows_read, 0);
    assert.equal((await t.documents('kb_overlap')).length, 0);

    release();
    beforeStoreWrite = async () => undefined;
    await t.app.services.scheduler.whenIdle();
    const run = (await t.request('GET', `/jobs/overlap/runs/${started.body.data.run_id}`)).body.data;
    assert.equal(run.status, 'succeeded', JSON.stringify(run));
    assert.equal(run.rows_read, ROWS);
    assert.equal(run.documents_added, ROWS);
    assert.deepEqual(writes, ['1', '101', '201'], 'one write per batch, in keyset order');
    assert.equal(t.providers.embedded() - embeddedBefore, ROWS, 'every row embedded once');
    const docs = await t.documents('kb_overlap');
    assert.equal(new Set(docs.map((d) => d.id)).size, ROWS);
  });

  it('a batch whose write fails: the next batch, already embedded, is never written nor counted failed; the next run syncs every row once', async () => {
    await createJob('failing', 'kb_failing');
    writes = [];
    const embeddedBefore = t.providers.embedded();
    beforeStoreWrite = async (firstId) => {
      if (firstId !== '1') return;
      // Fails only once batch 2 is embedded and waiting for this write.
      await until('batch 2 to be embedded', () => t.providers.embedded() - embeddedBefore >= 2 * BATCH);
      throw new Error('disk unavailable (test)');
    };
    const failed = await t.runNow('failing');
    beforeStoreWrite = async () => undefined;
    assert.equal(failed.status, 'failed', JSON.stringify(failed));
    assert.equal(failed.rows_failed, BATCH, 'only the batch whose write failed counts its rows as failed');
    assert.equal(failed.rows_read, 0);
    assert.equal(failed.watermark_end, null);
    assert.deepEqual(writes, [], 'batch 2 was not written after batch 1 failed');
    assert.equal((await t.documents('kb_failing')).length, 0);

    // A store error is transient: the job stays scheduled and the next run goes on from its watermark.
    assert.equal((await t.request('GET', '/jobs/failing')).body.data.status, 'scheduled');
    const next = await t.runNow('failing');
    assert.equal(next.status, 'succeeded', JSON.stringify(next));
    assert.equal(next.rows_read, ROWS);
    assert.equal(next.documents_added, ROWS);
    const docs = await t.documents('kb_failing');
    assert.equal(docs.length, ROWS);
    assert.equal(new Set(docs.map((d) => d.id)).size, ROWS, 'no document twice');
    assert.deepEqual(writes, ['1', '101', '201']);
  });
});
