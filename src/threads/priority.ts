/**
 * Worker threads that do bulk CPU work (searches, local embeddings) run at a lower scheduling
 * priority than the main thread, which answers every HTTP request. On Linux the nice value is a
 * per-thread attribute and `setpriority(PRIO_PROCESS, 0, n)` (os.setPriority(n)) sets it for the
 * calling thread only; so when the CPU is saturated, the kernel gives the event loop its turn
 * first and /health or a 429 is answered at once instead of after a time slice of search work.
 * Elsewhere (or without permission) it is a no-op: priority is a help, never a requirement.
 */
import os from 'node:os';

/** Call from inside a worker thread. */
export function lowerThisThreadPriority(nice: number): void {
  if (!(nice > 0) || process.platform !== 'linux') return;
  try {
    os.setPriority(Math.min(19, Math.floor(nice)));
  } catch {
    // not permitted here: run at the default priority
  }
}
