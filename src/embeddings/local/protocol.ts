/** Messages between the local provider's pool (main thread) and its workers. */

export type ToWorker =
  /** Load the model now (pool warm-up); answered with an empty result. */
  { type: 'load'; id: number } | { type: 'embed'; id: number; texts: string[] };

export type FromWorker =
  /** `data` holds `count` vectors of `dimensions` floats back to back, already L2-normalised. */
  | { type: 'result'; id: number; count: number; dimensions: number; data: Float32Array; loadMs: number }
  | { type: 'error'; id: number; message: string; stack?: string };

export interface WorkerOptions {
  /**
   * Replace `fetch` in the worker with one that fails, before the model library loads. The model
   * and vocabulary come from the npm package on disk; this turns any regression that would fetch
   * them from the internet (e.g. `initModel()` without a source) into a loud error.
   */
  blockNetwork: boolean;
  /**
   * This thread's nice value (threads/priority.ts), set when it starts: bulk workers yield the
   * CPU to the query worker and the HTTP thread (pool.ts). Linux only; ignored elsewhere.
   */
  nice?: number;
}
