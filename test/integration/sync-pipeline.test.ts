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
import type { EmbeddingProvider } from '../../src/embeddings/port.js';
import { createSourceConnector } from '../../src/sources/factory.js';
import type { SourceConnector } from '../../src/sources/port.js';
import type { VectorStore } from '../../src/store/vector-port.js';
import { sourcesDir } from '../helpers/app.js';
import { type CountingProviders, countingHashingProviders, jobBody, startSyncApp, type SyncTestApp } from '../helpers/sync.js';

const ROWS = 300;
const BATCH = 100;

/**
 * The hashing provider, counting texts, that holds a call embedding `holdText` until released or
 * until its signal aborts (as the real providers stop: the local pool between sub-batches, the
 * HTTP provider its request).
 */
function holdingProviders(): CountingProviders & { holdCallWith(text: string): { started: Promise<void> }; release(): void; aborted(): number } {
  const inner = countingHashingProviders();
  const provider = inner.factory({} as never) as EmbeddingProvider;
  let holdText: string | null = null;
  let started: () => void = () => undefined;
  let release: () => void = () => undefined;
  let aborted = 0;
  const holding: EmbeddingProvider = {
    id: provider.id,
    dimensions: () => provider.dimensions(),
    async embed(texts, options) {
      if (holdText !== null && texts.some((x) => x.includes(holdText!))) {
        started();
        await new Promise<void>((resolve, reject) => {
          release = resolve;
          options?.signal?.addEventListener('abort', () => {
            aborted++;
            reject(options.signal?.reason ?? new Error('aborted'));
          });
        });
      }
      return provider.embed(texts, options);
    },
    close: async () => undefined,
  };
  return {
    ...inner,
    factory: () => holding,
    holdCallWith(text) {
      holdText = text;
      return {
        started: new Promise<void>((resolve) => {
          started = resolve;
        }),
      };
    },
    release() {
      holdText = null;
      release();
    },
    aborted: () => aborted,
  };
}

const providers = holdingProviders();
let t: SyncTestApp;
/** What the wrapped store write does before writing (default: nothing). */
let beforeStoreWrite: (firstId: string, contents: Map<string, string>) => Promise<void> = async () => undefined;
/** The first document id of each store write, in the order the writes happened. */
let writes: string[] = [];
/** Called before each source batch read, with its number since `reads` was last reset. */
let beforeRead: (n: number) => void = () => undefined;
let reads = 0;
let file = '';

before(async () => {
  t = await startSyncApp({
    providers,
    // The real connector; its reads announced first, so a test can change the source between two.
    connectorFactory: (engine, params) => {
      const real = createSourceConnector(engine, params);
      const connector: SourceConnector = Object.create(real);
      connector.readBatch = (request) => {
        beforeRead(++reads);
        return real.readBatch(request);
      };
      return connector;
    },
  });
  const vectors = t.app.services.vectors as VectorStore;
  const write = vectors.upsertDocuments.bind(vectors);
  vectors.upsertDocuments = async (kbId, docs, metadataOnly, shadow) => {
    const firstId = docs[0]?.id ?? '';
    await beforeStoreWrite(firstId, new Map(docs.map((d) => [d.id, d.content])));
    const n = await write(kbId, docs, metadataOnly, shadow);
    writes.push(firstId);
    return n;
  };
  file = path.join(sourcesDir(t.dataDir), 'pipeline.db');
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

async function createJob(name: string, kb: string, table = 'items', filterColumn = 'updated_at'): Promise<void> {
  assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: kb })).status, 201);
  const created = await t.request(
    'POST',
    '/jobs/create',
    jobBody({
      job_name: name,
      kb_name: kb,
      source_table: `src.${table}`,
      content_columns: ['body'],
      filter_column: filterColumn,
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

  it('a batch whose write fails while the next is being embedded: that embedding is given up at once', async () => {
    await createJob('given_up', 'kb_given_up');
    writes = [];
    // Batch 2's embed call is held (until its signal aborts); batch 1's write fails meanwhile.
    const held = providers.holdCallWith('item 101 of the pipeline table');
    beforeStoreWrite = async (firstId) => {
      if (firstId !== '1') return;
      await held.started;
      throw new Error('disk unavailable (test)');
    };
    const abortedBefore = providers.aborted();
    try {
      // Never released: the run can only end if batch 2's embedding is given up.
      const failed = await t.runNow('given_up');
      assert.equal(failed.status, 'failed', JSON.stringify(failed));
      assert.equal(failed.rows_failed, BATCH, 'batch 2 is not counted failed');
      assert.equal(providers.aborted() - abortedBefore, 1, "batch 2's embed call was aborted");
      assert.deepEqual(writes, []);
    } finally {
      beforeStoreWrite = async () => undefined;
      providers.release();
    }
    const next = await t.runNow('given_up');
    assert.equal(next.status, 'succeeded', JSON.stringify(next));
    assert.equal(new Set((await t.documents('kb_given_up')).map((d) => d.id)).size, ROWS);
  });

  it('a row read again by the next batch (its filter value moved meanwhile) is written as that batch read it', async () => {
    const src = new Database(file);
    src.exec('CREATE TABLE moving (id INTEGER PRIMARY KEY, body TEXT, v INTEGER)');
    const insert = src.prepare('INSERT INTO moving VALUES (?, ?, ?)');
    for (let i = 1; i <= BATCH; i++) insert.run(i, `original ${i}`, i);
    src.close();
    await createJob('moving', 'kb_moving', 'moving', 'v');
    assert.equal((await t.runNow('moving')).status, 'succeeded');

    // Row 5 changes (read by batch 1), then changes back with a later filter value before batch 2
    // is read: batch 2 holds its original content again, and must be judged after batch 1 wrote.
    const change = new Database(file);
    change.prepare('UPDATE moving SET body = ?, v = ? WHERE id = 5').run('changed', 150);
    const more = change.prepare('INSERT INTO moving VALUES (?, ?, ?)');
    for (let i = BATCH + 1; i <= 3 * BATCH; i++) more.run(i, `new ${i}`, i);
    change.close();
    reads = 0;
    beforeRead = (n) => {
      if (n !== 2) return;
      const back = new Database(file);
      back.prepare('UPDATE moving SET body = ?, v = ? WHERE id = 5').run('original 5', 250);
      back.close();
    };
    const embeddedBefore = t.providers.embedded();
    beforeStoreWrite = async (_firstId, contents) => {
      if (!contents.get('5')?.includes('changed')) return;
      // Held until batch 2 is embedded (only possible if it did not wait for this write), at most 2 s.
      const deadline = Date.now() + 2000;
      while (t.providers.embedded() - embeddedBefore < 2 * BATCH - 1 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    try {
      const run = await t.runNow('moving');
      assert.equal(run.status, 'succeeded', JSON.stringify(run));
    } finally {
      beforeStoreWrite = async () => undefined;
      beforeRead = () => undefined;
    }
    const five = (await t.documents('kb_moving')).find((d) => d.id === '5');
    assert.match(five?.content ?? '', /original 5/, 'the document holds what the source holds');
  });
});
