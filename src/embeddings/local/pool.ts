/**
 * A small pool of embedding worker threads. Workers are started on demand (up to `size`) and
 * pull jobs from one queue, so a batch cut into sub-batches spreads over every idle thread and a
 * slow sub-batch does not hold up the others. An idle worker is unref'd: a pool someone forgot to
 * close never keeps the process alive, and `close()` terminates them all.
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

interface Job {
  message: ToWorker;
  resolve: (r: PoolResult) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  job: Job | undefined;
  /** Set once the worker has exited or failed, so late events are ignored. */
  dead: boolean;
}

export class PoolClosedError extends Error {
  constructor() {
    super('the local embedding pool is closed');
    this.name = 'PoolClosedError';
  }
}

export class WorkerPool {
  readonly size: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;

  constructor(
    size: number,
    private readonly workerOptions: WorkerOptions,
  ) {
    if (!Number.isInteger(size) || size < 1)
      throw new RangeError(`pool size must be a positive integer (got ${size})`);
    this.size = size;
  }

  /** Workers started so far (they start on demand). */
  get started(): number {
    return this.slots.length;
  }

  /** Queues one sub-batch; `cancel()` withdraws it if no worker has picked it up yet. */
  embed(texts: string[]): PoolTask {
    return this.submit({ type: 'embed', id: this.nextId++, texts });
  }

  /** Starts every worker and waits until each has loaded the model. */
  async warmup(): Promise<void> {
    // Submitted in one go, so each lands on a different (new or idle) worker.
    const tasks = Array.from({ length: this.size }, () => this.submit({ type: 'load', id: this.nextId++ }));
    await Promise.all(tasks.map((t) => t.promise));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new PoolClosedError();
    for (const job of this.queue.splice(0)) job.reject(err);
    const slots = this.slots.splice(0);
    for (const s of slots) {
      s.dead = true;
      s.job?.reject(err);
      s.job = undefined;
    }
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private submit(message: ToWorker): PoolTask {
    if (this.closed) return { promise: Promise.reject(new PoolClosedError()), cancel: () => false };
    let job!: Job;
    const promise = new Promise<PoolResult>((resolve, reject) => {
      job = { message, resolve, reject };
    });
    this.queue.push(job);
    this.dispatch();
    const cancel = (): boolean => {
      const i = this.queue.indexOf(job);
      if (i < 0) return false;
      this.queue.splice(i, 1);
      return true;
    };
    return { promise, cancel };
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => !s.job);
      if (!slot && this.slots.length < this.size) slot = this.spawn();
      if (!slot) return;
      const job = this.queue.shift()!;
      slot.job = job;
      // Busy workers keep the process alive until they answer; idle ones do not.
      slot.worker.ref();
      slot.worker.postMessage(job.message);
    }
  }

  private spawn(): Slot {
    const worker = new Worker(workerBootstrap(), { eval: true, workerData: this.workerOptions });
    const slot: Slot = { worker, job: undefined, dead: false };
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
