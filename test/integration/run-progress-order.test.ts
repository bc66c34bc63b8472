/**
 * A progress write never lands after a newer checkpoint (sync/run-sync.ts: progress writes and
 * checkpoints of a run go through one chain). Staged deterministically with a real SQLite store
 * and source: the control store holds the run's first progress write (one counting rows of a
 * batch still being embedded) until the store gets another write — the batch's checkpoint —
 * which it then lets through first, as a slow store or a network would if nothing serialised
 * them. With the chain the checkpoint only starts once the progress write is done (the store lets
 * the held write go after a grace period); without it, the run record would go back to older
 * counters after the checkpoint's.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { HashingEmbeddingProvider } from '../../src/embeddings/hashing/provider.js';
import type { EmbeddingProvider } from '../../src/embeddings/port.js';
import type { ControlStore, RunRecord } from '../../src/store/port.js';
import { sourcesDir } from '../helpers/app.js';
import { type CountingProviders, jobBody, startSyncApp, type SyncTestApp } from '../helpers/sync.js';

const ROWS = 200;
const BATCH = 100;
/** How long the store holds the progress write when no other write comes (the chain's case). */
const GRACE_MS = 1_500;

/** Run records as the store applied them, in order. */
const applied: Array<{ rowsRead: number; progressRows: number | null }> = [];
let progressHeld: () => void = () => undefined;
const progressWriteHeld = new Promise<void>((resolve) => {
  progressHeld = resolve;
});

/** Holds the first progress write of a batch in flight until another write came (and went first). */
function reorderingStore(store: ControlStore): ControlStore {
  const inner = store.mutateJob.bind(store);
  let held = false;
  let releaseHeld: (() => void) | null = null;
  store.mutateJob = async (id, change, run, options) => {
    const apply = async () => {
      const stored = await inner(id, change, run, options);
      if (run) applied.push({ rowsRead: run.rowsRead, progressRows: run.progress?.rowsDone ?? null });
      return stored;
    };
    if (run && !held && isInBatchProgress(run)) {
      held = true;
      const other = new Promise<void>((resolve) => {
        releaseHeld = resolve;
      });
      progressHeld();
      await Promise.race([other, sleep(GRACE_MS)]);
      releaseHeld = null;
      return apply();
    }
    if (releaseHeld !== null) {
      // Another write while the progress write is held: this one reaches the store first.
      const result = await apply();
      (releaseHeld as () => void)();
      return result;
    }
    return apply();
  };
  return store;
}

/** A progress write, not a checkpoint: it counts rows of a batch not checkpointed yet. */
function isInBatchProgress(run: RunRecord): boolean {
  return run.status === 'running' && run.progress != null && run.progress.rowsDone > run.rowsRead;
}

/** Embeds half of the first batch, reports it, and finishes only once that progress write is in flight. */
function stagedProvider(): CountingProviders {
  const inner = new HashingEmbeddingProvider({ dimensions: 32 });
  let calls = 0;
  const provider: EmbeddingProvider = {
    id: 'test:staged',
    dimensions: () => inner.dimensions(),
    async embed(texts, options = {}) {
      calls++;
      if (calls === 1) {
        options.onProgress?.(Math.floor(texts.length / 2));
        // The run's progress timer does not keep a process alive (a server's sockets do): this does.
        const alive = setInterval(() => undefined, 100);
        await progressWriteHeld.finally(() => clearInterval(alive));
      }
      const vectors = await inner.embed(texts);
      options.onProgress?.(texts.length);
      return vectors;
    },
    close: async () => undefined,
  };
  return {
    factory: () => provider,
    embedded: () => 0,
    failNext: () => assert.fail('not used'),
    hold: () => assert.fail('not used'),
  };
}

let t: SyncTestApp;

before(async () => {
  t = await startSyncApp({ providers: stagedProvider(), wrapStore: reorderingStore });
  const file = path.join(sourcesDir(t.dataDir), 'notes.db');
  const src = new Database(file);
  src.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, updated_at TEXT)');
  const insert = src.prepare('INSERT INTO notes VALUES (?, ?, ?)');
  for (let i = 1; i <= ROWS; i++) insert.run(i, `note ${i}`, `2025-01-01 00:00:${String(i % 60).padStart(2, '0')}.${String(i).padStart(3, '0')}`);
  src.close();
  assert.equal((await t.request('POST', '/databases', { name: 'src', engine: 'sqlite', parameters: { path: file } })).status, 201);
  assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'kb' })).status, 201);
});

after(async () => {
  await t?.close();
});

describe('progress writes and checkpoints', () => {
  it('a progress write held in flight never lands after the checkpoint that follows it', { timeout: 60_000 }, async () => {
    const created = await t.request(
      'POST',
      '/jobs/create',
      jobBody({ job_name: 'notes', source_table: 'src.notes', content_columns: ['body'], filter_column: 'updated_at', batch_size: BATCH }),
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    applied.length = 0;
    const run = await t.runNow('notes');
    assert.equal(run.status, 'succeeded', JSON.stringify(run));
    assert.equal(run.rows_read, ROWS);

    const staged = applied.findIndex((w) => w.progressRows !== null && w.progressRows > w.rowsRead);
    assert.ok(staged >= 0, `the progress write inside the first batch was made: ${JSON.stringify(applied)}`);
    for (let i = 1; i < applied.length; i++) {
      assert.ok(
        applied[i]!.rowsRead >= applied[i - 1]!.rowsRead,
        `the stored run's rows_read went back from ${applied[i - 1]!.rowsRead} to ${applied[i]!.rowsRead}: ${JSON.stringify(applied)}`,
      );
    }
    const stored = await t.app.services.store.getRun(created.body.data.job_id, run.run_id);
    assert.equal(stored?.rowsRead, ROWS);
    assert.equal(stored?.progress, null);
  });
});
