/**
 * ISO 8601 parsing and formatting for the API. A time without an offset is UTC (API.md,
 * "Envelope"); responses use RFC 3339 UTC with `Z` at second precision, except times the service
 * measures itself (a run's `started_at` and `finished_at`), which carry milliseconds.
 */

const ISO_RE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/i;

/** Epoch milliseconds of an ISO 8601 date or date-time, or null when it is not one. */
export function parseIsoTime(text: string): number | null {
  const m = ISO_RE.exec(text.trim());
  if (!m) return null;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', offset] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day > daysInMonth) return null;
  const ms = frac ? Math.floor(Number(`0.${frac}`) * 1000) : 0;
  let time = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  if (offset && offset.toUpperCase() !== 'Z') {
    const sign = offset.startsWith('-') ? -1 : 1;
    const digits = offset.slice(1).replace(':', '');
    const oh = Number(digits.slice(0, 2));
    const om = digits.length > 2 ? Number(digits.slice(2, 4)) : 0;
    if (oh > 23 || om > 59) return null;
    time -= sign * (oh * 60 + om) * 60_000;
  }
  // Date.UTC maps years 0-99 to 1900-1999; such dates are not useful schedules anyway.
  if (year < 1970 || year > 9999) return null;
  return time;
}

/** RFC 3339 UTC with `Z`, second precision: "2025-06-19T18:00:00Z". */
export function formatTime(epochMs: number): string {
  return new Date(epochMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export const formatTimeOrNull = (epochMs: number | null): string | null =>
  epochMs === null ? null : formatTime(epochMs);

/**
 * RFC 3339 UTC with `Z` and always three fraction digits: "2025-06-19T18:00:00.250Z". For times
 * the service measures (runs start and end within the same second, and lateness is in ms).
 */
export function formatMeasuredTime(epochMs: number): string {
  return new Date(epochMs).toISOString();
}

export const formatMeasuredTimeOrNull = (epochMs: number | null): string | null =>
  epochMs === null ? null : formatMeasuredTime(epochMs);
