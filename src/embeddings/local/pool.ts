/**
 * A small pool of embedding worker threads. Workers are started on demand (up to `size`) and
 * pull jobs from a queue, so a batch cut into sub-batches spreads over every idle thread and a
 * slow sub-batch does not hold up the others. An idle worker is unref'd: a pool someone forgot to
 * close never keeps the process alive, and `close()` terminates them all.
 *
 * The query lane (bench/query-lane.ts measures it), so a search's embedding never waits behind a
 * sync's batch:
 * - Two priorities: a free worker takes the oldest `query` job before any `bulk` one. A worker is
 *   given one job at a time, so nothing is ever queued behind a running sub-batch.
 * - Two kinds of worker. `size` bulk workers run bulk jobs (and queries when the query worker is
 *   busy); one query worker (`queryWorkers`), started by the first query, runs only queries. Bulk
 *   work never takes it, so a backfill keeps the throughput of `size` threads and a search does
 *   not wait for a sub-batch to end. It costs one more copy of the model (~150 MB).
 * - Bulk workers run at a lower OS priority (`bulkNice`, KBSYNC_WORKER_NICE; Linux only), so while a search is
 *   embedded on the query worker the kernel gives it the core the bulk workers would share with
 *   it; when nothing else wants the CPU, the bulk workers get all of it. With per-session or
 *   per-container CPU groups (Linux autogroup, cgroups — containers, systemd services) this moves
 *   CPU time between kbsync's own threads only, never from kbsync to other programs.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { FromWorker, ToWorker, WorkerOptions } from './protocol.js';

export interface PoolResult {
  vectors: Float32Array[];
  /** Milliseconds the worker spent loading the model (0 until it has). */
  loadMs: number;
}

export interface PoolTask {
  promise: Promise<PoolResult>;
  /** Withdraws the task if it is still queued; true when it was. */
  cancel(): boolean;
}

/** `query`: someone is waiting for the answer (a search). `bulk`: a sync or document upload. */
export type Priority = 'query' | 'bulk';

export interface PoolOptions {
  /**
   * Default true. False: one first-in-first-out queue for every job, as before the query lane
   * (kept for the benchmark that measures what the lane costs and gains, bench/query-lane.ts).
   */
  queryLane?: boolean;
  /** Workers beyond `size` that only run queries (see above); default 1 with the lane, always 0 without. */
  queryWorkers?: number;
  /** Nice value (0–19, Linux only) of the bulk workers; default 10 with the lane, 0 without. */
  bulkNice?: number;
  /** For tests: the code a worker runs (`eval`'d) instead of the model worker. */
  workerScript?: string;
}

interface Job {
  message: ToWorker;
  resolve: (r: PoolResult) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  /** What the worker may run: `bulk` workers run anything, `query` workers only queries. */
  kind: Priority;
  job: Job | undefined;
  /** Set once the worker has exited or failed, so late events are ignored. */
  dead: boolean;
  /** Set once the worker has answered with its model loaded (a non-zero loadMs). */
  loaded: boolean;
}

export class PoolClosedError extends Error {
  constructor() {
    super('the local embedding pool is closed');
    this.name = 'PoolClosedError';
  }
}

export class WorkerPool {
  readonly size: number;
  readonly queryLane: boolean;
  /** Query workers to keep (0 once one failed to load the model: queries then only jump the queue). */
  private queryWorkers: number;
  private readonly bulkNice: number;
  private readonly slots: Slot[] = [];
  /** Waiting jobs by priority; without the lane everything waits in `bulk`. */
  private readonly queues: Record<Priority, Job[]> = { query: [], bulk: [] };
  private nextId = 1;
  private closed = false;

  constructor(
    size: number,
    private readonly workerOptions: WorkerOptions,
    private readonly options: PoolOptions = {},
  ) {
    if (!Number.isInteger(size) || size < 1)
      throw new RangeError(`pool size must be a positive integer (got ${size})`);
    this.size = size;
    this.queryLane = options.queryLane ?? true;
    this.queryWorkers = this.queryLane ? (options.queryWorkers ?? 1) : 0;
    if (!Number.isInteger(this.queryWorkers) || this.queryWorkers < 0)
      throw new RangeError(`queryWorkers must be a non-negative integer (got ${this.queryWorkers})`);
    this.bulkNice = this.queryLane ? (options.bulkNice ?? 10) : 0;
    if (!Number.isInteger(this.bulkNice) || this.bulkNice < 0 || this.bulkNice > 19)
      throw new RangeError(`bulkNice must be an integer in 0..19 (got ${this.bulkNice})`);
  }

  /** Workers started so far (they start on demand), query workers included. */
  get started(): number {
    return this.slots.length;
  }

  /** Query workers started so far. */
  get queryWorkersStarted(): number {
    return this.count('query');
  }

  /** Running workers whose model is loaded, so their next job starts at once. */
  get loaded(): number {
    return this.slots.filter((s) => s.loaded).length;
  }

  /** Jobs waiting for a worker (not those running). */
  get queued(): number {
    return this.queues.query.length + this.queues.bulk.length;
  }

  /**
   * Queues one sub-batch; `cancel()` withdraws it if no worker has picked it up yet. A `query`
   * job goes ahead of every waiting `bulk` one (behind earlier queries).
   */
  embed(texts: string[], priority: Priority = 'bulk'): PoolTask {
    return this.submit({ type: 'embed', id: this.nextId++, texts }, priority);
  }

  /** Starts every bulk worker and waits until each has loaded the model (the query worker starts on demand). */
  async warmup(): Promise<void> {
    // Submitted in one go, so each lands on a different (new or idle) worker.
    const tasks = Array.from({ length: this.size }, () =>
      this.submit({ type: 'load', id: this.nextId++ }, 'bulk'),
    );
    await Promise.all(tasks.map((t) => t.promise));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new PoolClosedError();
    for (const job of [...this.queues.query.splice(0), ...this.queues.bulk.splice(0)]) job.reject(err);
    const slots = this.slots.splice(0);
    for (const s of slots) {
      s.dead = true;
      s.job?.reject(err);
      s.job = undefined;
    }
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private submit(message: ToWorker, priority: Priority): PoolTask {
    if (this.closed) return { promise: Promise.reject(new PoolClosedError()), cancel: () => false };
    let job!: Job;
    const promise = new Promise<PoolResult>((resolve, reject) => {
      job = { message, resolve, reject };
    });
    const queue = this.queryLane ? this.queues[priority] : this.queues.bulk;
    queue.push(job);
    this.dispatch();
    const cancel = (): boolean => {
      const i = queue.indexOf(job);
      if (i < 0) return false;
      queue.splice(i, 1);
      return true;
    };
    return { promise, cancel };
  }

  private dispatch(): void {
    for (;;) {
      if (this.queues.query.length > 0) {
        // The first query starts the query worker. Until it has loaded the model, queries go to
        // whichever worker is free first (a running sub-batch usually ends before that).
        if (this.count('query') < this.queryWorkers) this.startQueryWorker();
        const slot = this.idle('query') ?? this.idle('bulk');
        if (slot) {
          this.start(slot, this.queues.query.shift()!);
          continue;
        }
        if (this.queryWorkers === 0 && this.count('bulk') < this.size) {
          this.start(this.spawn('bulk'), this.queues.query.shift()!);
          continue;
        }
      }
      if (this.queues.bulk.length === 0) return;
      const slot = this.idle('bulk') ?? (this.count('bulk') < this.size ? this.spawn('bulk') : undefined);
      if (!slot) return;
      this.start(slot, this.queues.bulk.shift()!);
    }
  }

  private idle(kind: Priority): Slot | undefined {
    return this.slots.find((s) => s.kind === kind && !s.job);
  }

  private count(kind: Priority): number {
    return this.slots.filter((s) => s.kind === kind).length;
  }

  private start(slot: Slot, job: Job): void {
    slot.job = job;
    // Busy workers keep the process alive until they answer; idle ones do not.
    slot.worker.ref();
    slot.worker.postMessage(job.message);
  }

  /** Starts a query worker and loads the model in it, so it is ready for the next query. */
  private startQueryWorker(): void {
    const giveUp = () => {
      // The model would not load there: queries go on jumping the queue, without a worker of their own.
      if (!this.closed) this.queryWorkers = 0;
    };
    this.start(this.spawn('query'), {
      message: { type: 'load', id: this.nextId++ },
      resolve: () => undefined,
      reject: giveUp,
    });
  }

  private spawn(kind: Priority): Slot {
    const workerData: WorkerOptions = {
      ...this.workerOptions,
      ...(kind === 'bulk' && this.bulkNice > 0 ? { nice: this.bulkNice } : {}),
    };
    const worker = new Worker(this.options.workerScript ?? workerBootstrap(), { eval: true, workerData });
    const slot: Slot = { worker, kind, job: undefined, dead: false, loaded: false };
    worker.on('message', (msg: FromWorker) => this.onMessage(slot, msg));
    worker.on('error', (err) => this.onDeath(slot, err));
    worker.on('exit', (code) =>
      this.onDeath(slot, new Error(`local embedding worker exited with code ${code}`)),
    );
    this.slots.push(slot);
    return slot;
  }

  private onMessage(slot: Slot, msg: FromWorker): void {
    const job = slot.job;
    if (slot.dead || !job || job.message.id !== msg.id) return;
    slot.job = undefined;
    slot.worker.unref();
    if (msg.type === 'error') {
      const e = new Error(`local embedding worker failed: ${msg.message}`);
      if (msg.stack) e.stack = `${e.message}\n    --- in worker ---\n${msg.stack}`;
      job.reject(e);
    } else {
      const vectors: Float32Array[] = [];
      for (let r = 0; r < msg.count; r++)
        vectors.push(msg.data.slice(r * msg.dimensions, (r + 1) * msg.dimensions));
      if (msg.loadMs > 0) slot.loaded = true;
      job.resolve({ vectors, loadMs: msg.loadMs });
    }
    this.dispatch();
  }

  /**
   * A worker died (an uncaught error inside TensorFlow.js kills the thread). Its job fails; the
   * worker is dropped and a fresh one is started if jobs are waiting.
   */
  private onDeath(slot: Slot, err: Error): void {
    if (slot.dead) return;
    slot.dead = true;
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    const job = slot.job;
    slot.job = undefined;
    job?.reject(new Error(`local embedding worker died: ${err.message}`, { cause: err }));
    void slot.worker.terminate();
    if (!this.closed) this.dispatch();
  }
}

let bootstrap: string | undefined;

/**
 * The code a worker starts with: a tiny CommonJS bootstrap (`eval: true`) that imports the real
 * entry next to this module, `worker.js` when running compiled code from dist/, `worker.ts` when
 * running the sources through tsx (tests, benchmarks, `npm run dev`).
 *
 * Why not `new Worker(fileUrl)`:
 * - A `.ts` entry fails on Node 20 even though workers inherit `--import tsx`: that flag's loader
 *   hooks are not active yet when the entry module is resolved ("Unknown file extension .ts").
 *   So the bootstrap registers tsx in the worker itself before importing the entry.
 * - Workers inherit the parent's execArgv, and a parent started as `node --input-type=module -e …`
 *   makes a file-based worker die with "--input-type can only be used with string input"; an
 *   eval'd worker is string input. Passing a filtered execArgv instead is no better: V8 flags such
 *   as --max-old-space-size are rejected when given explicitly.
 */
export function workerBootstrap(): string {
  if (bootstrap) return bootstrap;
  const js = new URL('./worker.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) {
    bootstrap = `import(${JSON.stringify(js.href)});`;
  } else {
    const ts = new URL('./worker.ts', import.meta.url);
    const api = import.meta.resolve('tsx/esm/api');
    bootstrap = `import(${JSON.stringify(api)}).then((tsx) => tsx.register()).then(() => import(${JSON.stringify(ts.href)}));`;
  }
  return bootstrap;
}
