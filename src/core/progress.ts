/**
 * A running run's progress (API.md "Jobs": `progress`): rows done of an estimated total, percent
 * and ETA. Pure arithmetic; sync/run-progress.ts samples the run and writes what this computes.
 */

/** What a run in progress shows; stored with the run record, null once the run has ended. */
export interface RunProgress {
  /** Rows read so far, a batch being embedded counted by the share of it already embedded. */
  rowsDone: number;
  /** Rows the run is expected to read; null when unknown (no estimate, or the estimate was passed). */
  rowsTotalEstimate: number | null;
  /** 0..100, one decimal, rounded down (100 only once every row expected is done); null without an estimate. */
  percent: number | null;
  /** Seconds left at the observed rate, one decimal; null until there is a rate (or an estimate). */
  etaSeconds: number | null;
}

/**
 * The observed rate of a run, in rows per second: an exponentially weighted average of the rate
 * between samples, seeded by the average since the start. Smoothed so one slow or quick batch
 * does not make the ETA jump, yet it follows a run that really slows down (the source's load, a
 * busy embedding model) within a few half-lives.
 */
export interface Throughput {
  /** When measuring started (ms, any monotonic clock) and the rows done then. */
  sinceMs: number;
  sinceRows: number;
  /** The previous sample. */
  lastMs: number;
  lastRows: number;
  /** Null until rows have moved. */
  rowsPerSecond: number | null;
}

/** How quickly the average forgets: a sample this old weighs half as much as a new one. */
export const RATE_HALF_LIFE_MS = 10_000;

export function startThroughput(nowMs: number, rows = 0): Throughput {
  return { sinceMs: nowMs, sinceRows: rows, lastMs: nowMs, lastRows: rows, rowsPerSecond: null };
}

/** The throughput after a sample of `rows` done at `nowMs`. */
export function observeThroughput(t: Throughput, nowMs: number, rows: number, halfLifeMs = RATE_HALF_LIFE_MS): Throughput {
  const dt = nowMs - t.lastMs;
  if (!(dt > 0)) return t;
  const next: Throughput = { ...t, lastMs: nowMs, lastRows: rows };
  if (t.rowsPerSecond === null) {
    // No rate before rows have moved: a run still reading its first batch has no ETA, rather than
    // an infinite one.
    const moved = rows - t.sinceRows;
    next.rowsPerSecond = moved > 0 ? moved / ((nowMs - t.sinceMs) / 1000) : null;
    return next;
  }
  const instant = Math.max(0, rows - t.lastRows) / (dt / 1000);
  const weight = 1 - 0.5 ** (dt / halfLifeMs);
  next.rowsPerSecond = t.rowsPerSecond + weight * (instant - t.rowsPerSecond);
  return next;
}

/**
 * The progress shown for `rowsDone` of `estimate` at `rowsPerSecond`. An estimate the run has
 * passed (rows it did not foresee, such as rows delete reconciliation found missing, or a lower
 * bound) is no longer shown: the total becomes unknown (null) rather than a percent above 100.
 */
export function runProgress(rowsDone: number, estimate: number | null, rowsPerSecond: number | null): RunProgress {
  const done = Math.max(0, Math.floor(rowsDone));
  if (estimate === null || !Number.isFinite(estimate) || estimate < done) {
    return { rowsDone: done, rowsTotalEstimate: null, percent: null, etaSeconds: null };
  }
  const total = Math.max(0, Math.ceil(estimate));
  const percent = total === 0 ? 100 : clamp((100 * done) / total, 0, 100);
  const left = total - done;
  let eta: number | null = null;
  if (left === 0) eta = 0;
  else if (rowsPerSecond !== null && rowsPerSecond > 0 && Number.isFinite(rowsPerSecond)) eta = left / rowsPerSecond;
  return {
    rowsDone: done,
    rowsTotalEstimate: total,
    percent: Math.floor(percent * 10) / 10,
    etaSeconds: eta === null ? null : Math.round(eta * 10) / 10,
  };
}

function clamp(x: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, x));
}
