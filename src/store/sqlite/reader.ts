/**
 * Read queries off the event loop (issue 8: a 10,000-character keyword query was 0.7 s of
 * main-thread work, during which /health could not answer). better-sqlite3 is synchronous, so a
 * search run on the main connection blocks every other request; SqliteReader runs the searches'
 * SQL on worker threads, each with its own read-only connection to the same file (WAL: readers
 * see every committed write and never block the writer). Threads start on first use; an idle
 * one is unref'd, so it never keeps the process alive.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

interface Pending {
  id: number;
  sql: string;
  params: unknown[];
  resolve: (rows: unknown[]) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  job: Pending | undefined;
  dead: boolean;
}

/** An SQLite error from a reader thread, with SQLite's code (SQLITE_ERROR, ...). */
export class SqliteReadError extends Error {
  constructor(
    message: string,
    readonly code: string | null,
  ) {
    super(message);
    this.name = 'SqliteReadError';
  }
}

export class SqliteReader {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly file: string,
    readonly threads: number,
    /** Nice value of the reader threads (threads/priority.ts); 0 = the main thread's. */
    private readonly nice = 0,
  ) {
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`reader threads must be a positive integer (got ${threads})`);
  }

  /** Runs one SELECT on a reader thread; resolves with its rows. */
  all<T = unknown>(sql: string, params: unknown[]): Promise<T[]> {
    if (this.closed) return Promise.reject(new Error('the SQLite reader is closed'));
    return new Promise<T[]>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, sql, params, resolve: resolve as (rows: unknown[]) => void, reject });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new Error('the SQLite reader is closed');
    for (const p of this.queue.splice(0)) p.reject(err);
    const slots = this.slots.splice(0);
    for (const s of slots) {
      s.dead = true;
      s.job?.reject(err);
    }
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => !s.job);
      if (!slot && this.slots.length < this.threads) slot = this.spawn();
      if (!slot) return;
      const job = this.queue.shift()!;
      slot.job = job;
      slot.worker.ref();
      slot.worker.postMessage({ id: job.id, sql: job.sql, params: job.params });
    }
  }

  private spawn(): Slot {
    const worker = new Worker(bootstrap(), { eval: true, workerData: { file: this.file, nice: this.nice } });
    const slot: Slot = { worker, job: undefined, dead: false };
    worker.on('message', (msg: { id: number; rows?: unknown[]; error?: { message: string; code: string | null } }) => {
      const job = slot.job;
      if (slot.dead || !job || job.id !== msg.id) return;
      slot.job = undefined;
      worker.unref();
      if (msg.error) job.reject(new SqliteReadError(msg.error.message, msg.error.code));
      else job.resolve(msg.rows ?? []);
      this.dispatch();
    });
    const onDeath = (err: Error) => {
      if (slot.dead) return;
      slot.dead = true;
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      slot.job?.reject(new Error(`SQLite reader thread died: ${err.message}`, { cause: err }));
      slot.job = undefined;
      void worker.terminate();
      if (!this.closed) this.dispatch();
    };
    worker.on('error', onDeath);
    worker.on('exit', (code) => onDeath(new Error(`exited with code ${code}`)));
    this.slots.push(slot);
    return slot;
  }
}

let code: string | undefined;

/** The worker's entry: read-worker.js next to this module in dist/, read-worker.ts through tsx (see local/pool.ts). */
function bootstrap(): string {
  if (code) return code;
  const js = new URL('./read-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) {
    code = `import(${JSON.stringify(js.href)});`;
  } else {
    const ts = new URL('./read-worker.ts', import.meta.url);
    const api = import.meta.resolve('tsx/esm/api');
    code = `import(${JSON.stringify(api)}).then((tsx) => tsx.register()).then(() => import(${JSON.stringify(ts.href)}));`;
  }
  return code;
}
