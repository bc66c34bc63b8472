/**
 * The local provider's worker pool (src/embeddings/local/pool.ts) schedules the query lane: a
 * query goes ahead of queued bulk sub-batches, bulk work never takes the query worker, bulk
 * workers are started with a lower OS priority, and a cancelled sub-batch never reaches a worker.
 * Real worker threads run a stand-in for the model (`workerScript`) that answers at once and
 * stamps each vector with the order in which the workers started their jobs (a counter shared
 * between threads) and the nice increment it was given, so the order is observed, not timed. A
 * "hold" text blocks its worker until the test opens a gate.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { afterEach, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { WorkerOptions } from '../../src/embeddings/local/protocol.js';
import {
  type PoolOptions,
  type PoolTask,
  WorkerPool,
  workerBootstrap,
} from '../../src/embeddings/local/pool.js';
import { cutSubBatches } from '../../src/embeddings/local/sub-batches.js';

const STAND_IN = `
const { parentPort, workerData } = require('node:worker_threads');
const order = new Int32Array(workerData.order);
const gate = new Int32Array(workerData.gate);
parentPort.on('message', (msg) => {
  if (msg.type === 'load') {
    parentPort.postMessage({ type: 'result', id: msg.id, count: 0, dimensions: 0, data: new Float32Array(0), loadMs: 1 });
    return;
  }
  const started = Atomics.add(order, 0, 1);
  if (msg.texts[0] === 'hold') Atomics.wait(gate, 0, 0);
  const data = new Float32Array(msg.texts.length * 2);
  for (let i = 0; i < msg.texts.length; i++) data.set([started, workerData.nice ?? 0], i * 2);
  parentPort.postMessage({ type: 'result', id: msg.id, count: msg.texts.length, dimensions: 2, data, loadMs: 1 });
});
`;

interface Harness {
  pool: WorkerPool;
  /** Lets every held job (and any later one) finish. */
  open(): void;
}

let current: Harness | undefined;

function harness(size: number, options: PoolOptions): Harness {
  const shared = { order: new SharedArrayBuffer(4), gate: new SharedArrayBuffer(4) };
  const pool = new WorkerPool(size, { blockNetwork: true, ...shared } as WorkerOptions, {
    ...options,
    workerScript: STAND_IN,
  });
  const gate = new Int32Array(shared.gate);
  current = {
    pool,
    open: () => {
      Atomics.store(gate, 0, 1);
      Atomics.notify(gate, 0);
    },
  };
  return current;
}

afterEach(async () => {
  current?.open();
  await current?.pool.close();
  current = undefined;
});

/** The position at which a worker started this task (the stand-in's stamp). */
async function startedAt(task: PoolTask): Promise<number> {
  const { vectors } = await task.promise;
  return vectors[0]![0]!;
}

describe('worker pool: the query lane', () => {
  it('a query submitted after queued bulk sub-batches starts before every one of them', async () => {
    // One worker and no reserved one: only the queue order can let the query through.
    const { pool } = harness(1, { queryWorkers: 0 });
    const bulk = Array.from({ length: 6 }, (_, i) => pool.embed([`bulk ${i}`], 'bulk'));
    const query = pool.embed(['query'], 'query');
    // bulk 0 went to the worker at once; the query is next, ahead of bulk 1–5.
    assert.deepEqual(await Promise.all([...bulk.map(startedAt), startedAt(query)]), [0, 2, 3, 4, 5, 6, 1]);
  });

  it('queries keep their own order, all ahead of bulk work', async () => {
    const { pool } = harness(1, { queryWorkers: 0 });
    const b = [pool.embed(['b0']), pool.embed(['b1'])];
    const q = [pool.embed(['q0'], 'query'), pool.embed(['q1'], 'query')];
    const b2 = pool.embed(['b2']);
    assert.deepEqual(await Promise.all([...b, ...q, b2].map(startedAt)), [0, 3, 1, 2, 4]);
  });

  it('without the lane the queue is first in, first out (the comparison the benchmark makes)', async () => {
    const { pool } = harness(1, { queryLane: false });
    const bulk = Array.from({ length: 6 }, (_, i) => pool.embed([`bulk ${i}`], 'bulk'));
    const query = pool.embed(['query'], 'query');
    assert.equal(await startedAt(query), 6);
    await Promise.all(bulk.map((t) => t.promise));
  });

  // A pool without the reserved worker would never answer (its only worker is held): the timeout
  // turns that into a failure instead of a hang.
  it('a query is answered by the query worker while bulk work holds every bulk worker', {
    timeout: 60_000,
  }, async () => {
    const h = harness(1, {});
    const held = h.pool.embed(['hold'], 'bulk');
    const waiting = h.pool.embed(['bulk 1'], 'bulk');
    let heldDone = false;
    void held.promise.then(() => (heldDone = true));
    // The only bulk worker is blocked until the gate opens, so this answer came from another.
    const { vectors } = await h.pool.embed(['query'], 'query').promise;
    assert.equal(vectors.length, 1);
    assert.equal(heldDone, false, 'the held bulk job is still running');
    assert.equal(h.pool.started, 2, 'one worker beyond size, for queries');
    assert.equal(h.pool.queryWorkersStarted, 1);
    assert.equal(vectors[0]![1], 0, 'the query worker runs at normal priority');
    // The query worker is idle now, yet the queued bulk job does not take it.
    assert.equal(h.pool.queued, 1, 'bulk work never runs on the query worker');
    h.open();
    await Promise.all([held.promise, waiting.promise]);
    assert.equal((await waiting.promise).vectors[0]![1], 10, 'bulk workers run at nice 10');
    assert.equal(h.pool.started, 2);
  });

  it('the first query starts the query worker, even when a bulk worker is free to answer it', async () => {
    const { pool } = harness(1, {});
    await pool.embed(['bulk']).promise;
    assert.equal(pool.queryWorkersStarted, 0, 'bulk work alone starts none');
    await pool.embed(['query'], 'query').promise;
    assert.equal(pool.queryWorkersStarted, 1);
  });

  it('without the lane no worker is started with a lower priority', async () => {
    const { pool } = harness(1, { queryLane: false });
    assert.equal((await pool.embed(['bulk']).promise).vectors[0]![1], 0);
  });

  it('bulk work alone never starts the query worker', async () => {
    const h = harness(2, {});
    const tasks = [
      h.pool.embed(['hold']),
      h.pool.embed(['hold']),
      h.pool.embed(['bulk 2']),
      h.pool.embed(['bulk 3']),
    ];
    assert.equal(h.pool.started, 2);
    assert.equal(h.pool.queued, 2);
    h.open();
    await Promise.all(tasks.map((t) => t.promise));
    assert.equal(h.pool.started, 2);
  });

  it('a cancelled sub-batch is withdrawn and never reaches a worker; a running one is not', async () => {
    const h = harness(1, { queryWorkers: 0 });
    const running = h.pool.embed(['hold']);
    const queued = [h.pool.embed(['b1']), h.pool.embed(['b2'])];
    assert.equal(running.cancel(), false, 'already running');
    assert.deepEqual(
      queued.map((t) => t.cancel()),
      [true, true],
    );
    assert.equal(h.pool.queued, 0);
    const after = h.pool.embed(['after']);
    h.open();
    await running.promise;
    // b1 and b2 never started: the next job is the second one the worker ever started.
    assert.equal(await startedAt(after), 1);
  });
});

/** Nice values of this process's threads (Linux: /proc/self/task/<tid>/stat, field 19). */
function threadNices(): number[] {
  return fs.readdirSync('/proc/self/task').flatMap((tid) => {
    try {
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      return [Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])];
    } catch {
      return []; // the thread ended meanwhile
    }
  });
}

describe('the real worker (worker.ts)', () => {
  const linux = os.platform() === 'linux' ? false : 'thread priorities are set on Linux only';
  it('runs at the nice value it is given, and only its own thread does', {
    skip: linux,
    timeout: 60_000,
  }, async () => {
    const base = os.getPriority();
    const want = Math.min(19, base + 7);
    assert.ok(!threadNices().includes(want), 'no thread has that priority before');
    // The model loads on the first request only, so starting the worker costs no model load.
    const worker = new Worker(workerBootstrap(), {
      eval: true,
      workerData: { blockNetwork: true, nice: want } satisfies WorkerOptions,
    });
    try {
      while (!threadNices().includes(want)) await new Promise((r) => setTimeout(r, 20));
      assert.equal(os.getPriority(), base, 'the process (main thread) keeps its priority');
      assert.equal(threadNices().filter((n) => n === want).length, 1, 'exactly one thread, the worker');
    } finally {
      await worker.terminate();
    }
  });
});

describe('cutSubBatches', () => {
  it('bounds sub-batches in texts and characters, a longer text alone, every text once', () => {
    const texts = ['aaaa', 'bb', 'cccccccccc', 'd', 'e', 'f', 'g'];
    assert.deepEqual(cutSubBatches(texts, { maxTexts: 3 }), [
      [0, 3],
      [3, 6],
      [6, 7],
    ]);
    assert.deepEqual(cutSubBatches(texts, { maxTexts: 3, maxChars: 6 }), [
      [0, 2],
      [2, 3],
      [3, 6],
      [6, 7],
    ]);
    assert.deepEqual(cutSubBatches([], { maxTexts: 3 }), []);
  });
});
