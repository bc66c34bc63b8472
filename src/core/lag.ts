/**
 * Freshness (API.md "Cost and freshness"): how far a job's knowledge base is behind its source.
 * `lag_seconds` = now − the filter value of the oldest row not yet synced, 0 when caught up.
 *
 * A measurement is taken by a source probe (the first row past the watermark in keyset order, an
 * index-backed LIMIT 1) and stored with the job as the epoch time of that row's filter value, so
 * the lag keeps growing between measurements (a paused job's included) without another query.
 * A filter column that is not a time (an integer id, text) has no distance in seconds: such a job
 * is 0 when caught up and `null` when behind (`lag_behind: true` still says it is behind).
 */
import type { ColumnKind } from '../sources/port.js';
import { parseIsoTime } from './time.js';

/** A measurement of a job's lag, kept on the job record (JSON body; absent: never measured). */
export interface LagMeasurement {
  /** Whether a row lay past the watermark when measured. */
  behind: boolean;
  /** Epoch ms of the oldest unsynced row's filter value; null when caught up or not a time. */
  oldestMs: number | null;
  /** When it was measured (epoch ms). */
  measuredAt: number;
}

/** Kinds whose values are points in time. */
const TIME_KINDS: ReadonlySet<ColumnKind> = new Set(['timestamptz', 'timestamp', 'date']);

/**
 * Epoch ms of a filter value in the source's text form, or null when it is not a time.
 * Times without a zone are UTC: every source session runs in UTC (sources/{postgres,mysql}/pool.ts).
 * SQLite time columns may hold Unix numbers (seconds, or ms when that large), as lookback reads them.
 */
export function filterValueMs(kind: ColumnKind | undefined, text: string): number | null {
  if (kind === undefined || !TIME_KINDS.has(kind)) return null;
  const t = text.trim();
  if (/^-?\d+(\.\d+)?$/.test(t)) {
    const n = Number(t);
    if (!Number.isFinite(n)) return null;
    return Math.abs(n) >= 1e11 ? Math.round(n) : Math.round(n * 1000);
  }
  return parseIsoTime(t);
}

/** The measurement a probe gives: `oldestPending` is the first filter value past the watermark. */
export function measureLag(kind: ColumnKind | undefined, oldestPending: string | null, measuredAt: number): LagMeasurement {
  if (oldestPending === null) return { behind: false, oldestMs: null, measuredAt };
  return { behind: true, oldestMs: filterValueMs(kind, oldestPending), measuredAt };
}

/** Caught up as of `measuredAt` (a run that read up to its bound). */
export function caughtUp(measuredAt: number): LagMeasurement {
  return { behind: false, oldestMs: null, measuredAt };
}

/**
 * Seconds behind at `now`: 0 when caught up, null when behind on a column that is not a time, or
 * never measured. Whole seconds, never negative (a filter value in the future is not "behind").
 */
export function lagSeconds(lag: LagMeasurement | undefined | null, now: number): number | null {
  if (lag == null) return null;
  if (!lag.behind) return 0;
  if (lag.oldestMs === null) return null;
  return Math.max(0, Math.floor((now - lag.oldestMs) / 1000));
}

/**
 * Whether a job's lag alert stands after a measurement (`job.lagging`, jobs/webhooks.ts): lag past
 * `alertSeconds` raises it, lag back at or under it clears it, so each crossing alerts once. An
 * unknown lag (never measured, or not a time) leaves it as it was; no threshold: never.
 */
export function lagAlertStands(alertSeconds: number | null | undefined, lag: LagMeasurement | undefined | null, wasAlerted: boolean, now: number): boolean {
  if (alertSeconds == null) return false;
  const seconds = lagSeconds(lag, now);
  if (seconds === null) return wasAlerted;
  return seconds > alertSeconds;
}
