/**
 * Interval grammar of the seed: `N MINUTE(S)`, `N HOUR(S)`, `N DAY(S)`, `HOURLY`, `DAILY`,
 * `WEEKLY`, case-insensitive, N a positive integer. The 1-minute minimum follows from the units.
 */

const MINUTE = 60_000;
const UNIT_MS: Record<string, number> = { MINUTE, HOUR: 60 * MINUTE, DAY: 24 * 60 * MINUTE };
const NAMED_MS: Record<string, number> = { HOURLY: UNIT_MS.HOUR!, DAILY: UNIT_MS.DAY!, WEEKLY: 7 * UNIT_MS.DAY! };

/** Longest interval accepted; longer ones would only ever tick once in a 30-day window anyway. */
export const MAX_INTERVAL_MS = 366 * UNIT_MS.DAY!;

export type IntervalResult = { ok: true; ms: number; normalized: string } | { ok: false; reason: string };

export function parseInterval(input: string): IntervalResult {
  const text = input.trim().replace(/\s+/g, ' ').toUpperCase();
  const named = NAMED_MS[text];
  if (named !== undefined) return { ok: true, ms: named, normalized: text };
  const m = /^(\d+) (MINUTE|HOUR|DAY)S?$/.exec(text);
  if (!m) {
    return {
      ok: false,
      reason: `invalid interval format: '${input}' (use N MINUTES, N HOURS, N DAYS, HOURLY, DAILY or WEEKLY)`,
    };
  }
  const n = Number(m[1]);
  const unit = m[2]!;
  if (n < 1) return { ok: false, reason: `invalid interval: '${input}' (the minimum interval is 1 minute)` };
  const ms = n * UNIT_MS[unit]!;
  if (ms > MAX_INTERVAL_MS) return { ok: false, reason: `invalid interval: '${input}' (the maximum interval is 366 days)` };
  return { ok: true, ms, normalized: `${n} ${unit}${n === 1 ? '' : 'S'}` };
}

/**
 * Durations for `lookback`: the interval grammar plus seconds and zero ("0", "30 SECONDS",
 * "5 MINUTES"), or a plain number of seconds.
 */
export function parseDurationSeconds(input: string | number): number | null {
  if (typeof input === 'number') return Number.isInteger(input) && input >= 0 && input <= 366 * 86_400 ? input : null;
  const text = input.trim().toUpperCase();
  if (/^\d+$/.test(text)) return parseDurationSeconds(Number(text));
  const m = /^(\d+)\s+(SECOND|MINUTE|HOUR|DAY)S?$/.exec(text);
  if (!m) return null;
  const factor = { SECOND: 1, MINUTE: 60, HOUR: 3600, DAY: 86_400 }[m[2] as 'SECOND'];
  return parseDurationSeconds(Number(m[1]) * factor);
}
