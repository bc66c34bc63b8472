/**
 * Schedule math on the tick grid `start + k·interval` (k = 0, 1, …) while `≤ end`, all UTC epoch ms
 * (SEMANTICS.md, "Schedule"). Pure: the caller passes `now`.
 */

export interface Grid {
  startMs: number;
  endMs: number;
  intervalMs: number;
}

/** The first tick at or after `t`, or null when it would fall after the end. */
export function firstTickAtOrAfter(grid: Grid, t: number): number | null {
  if (t <= grid.startMs) return grid.startMs <= grid.endMs ? grid.startMs : null;
  const k = Math.ceil((t - grid.startMs) / grid.intervalMs);
  const tick = grid.startMs + k * grid.intervalMs;
  return tick <= grid.endMs ? tick : null;
}

/** The first tick strictly after `t`, or null. */
export function firstTickAfter(grid: Grid, t: number): number | null {
  if (t < grid.startMs) return grid.startMs <= grid.endMs ? grid.startMs : null;
  const k = Math.floor((t - grid.startMs) / grid.intervalMs) + 1;
  const tick = grid.startMs + k * grid.intervalMs;
  return tick <= grid.endMs ? tick : null;
}

/** The last tick at or before `t`, or null when `t` is before the start. */
export function lastTickAtOrBefore(grid: Grid, t: number): number | null {
  if (t < grid.startMs) return null;
  const k = Math.floor((Math.min(t, grid.endMs) - grid.startMs) / grid.intervalMs);
  return grid.startMs + k * grid.intervalMs;
}

/** Every tick of the grid (for tests and previews; a 30-day window at 1 minute is 43,201 ticks). */
export function allTicks(grid: Grid): number[] {
  const ticks: number[] = [];
  for (let t = grid.startMs; t <= grid.endMs; t += grid.intervalMs) ticks.push(t);
  return ticks;
}
