/**
 * Pure rules of a job's schedule: interval, window and the status/next_run they give at `now`.
 */
import type { Problem } from './errors.js';
import { parseInterval } from './interval.js';
import { firstTickAtOrAfter, type Grid } from './schedule.js';
import { parseIsoTime } from './time.js';

export const MAX_WINDOW_MS = 30 * 24 * 60 * 60 * 1000;

export interface ScheduleInput {
  interval?: string;
  start_time?: string;
  end_time?: string;
}

export interface CheckedSchedule {
  interval?: { ms: number; normalized: string };
  startMs?: number;
  endMs?: number;
}

/** Checks whichever of interval/start/end are given; pushes INVALID_INTERVAL / INVALID_DATETIME problems. */
export function checkSchedule(input: ScheduleInput, problems: Problem[]): CheckedSchedule {
  const out: CheckedSchedule = {};
  if (input.interval !== undefined) {
    const r = parseInterval(input.interval);
    if (r.ok) out.interval = { ms: r.ms, normalized: r.normalized };
    else problems.push({ code: 'INVALID_INTERVAL', detail: r.reason });
  }
  for (const field of ['start_time', 'end_time'] as const) {
    const text = input[field];
    if (text === undefined) continue;
    const ms = parseIsoTime(text);
    if (ms === null) {
      problems.push({
        code: 'INVALID_DATETIME',
        detail: `${field} is not a valid ISO 8601 time: '${text}' (e.g. 2025-06-19T18:00:00 or 2025-06-19T18:00:00Z)`,
      });
    } else if (field === 'start_time') out.startMs = ms;
    else out.endMs = ms;
  }
  return out;
}

/** End after start, window at most 30 days. */
export function checkWindow(startMs: number, endMs: number, problems: Problem[]): void {
  if (endMs <= startMs) {
    problems.push({ code: 'INVALID_DATETIME', detail: 'end_time must be after start_time' });
  } else if (endMs - startMs > MAX_WINDOW_MS) {
    const days = ((endMs - startMs) / 86_400_000).toFixed(1).replace(/\.0$/, '');
    problems.push({
      code: 'INVALID_DATETIME',
      detail: `the job window is ${days} days; the maximum job duration is 30 days`,
    });
  }
}

export interface Placement {
  status: 'scheduled' | 'completed';
  nextRunMs: number | null;
  warning: string | null;
}

/** Where a (re)scheduled job stands at `now`: its next tick, or completed when none is left. */
export function placeOnGrid(grid: Grid, now: number): Placement {
  if (grid.endMs < now) {
    return {
      status: 'completed',
      nextRunMs: null,
      warning: 'end_time is in the past: the job is completed and will never run',
    };
  }
  // The start itself when it is still ahead, else the first tick at or after now.
  const next = firstTickAtOrAfter(grid, now);
  if (next === null) {
    return {
      status: 'completed',
      nextRunMs: null,
      warning: 'no tick of the schedule is left before end_time: the job is completed and will never run',
    };
  }
  return { status: 'scheduled', nextRunMs: next, warning: null };
}
