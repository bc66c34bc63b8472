/** Human output: aligned tables and `key: value` blocks. Pure string building, no I/O. */

export type Cell = string | number | boolean | null | undefined;

/** Empty, null and undefined all show as '-', so a column never looks shifted. */
export function cell(value: Cell): string {
  if (value === null || value === undefined || value === '') return '-';
  return String(value);
}

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function table(headers: string[], rows: Cell[][]): string {
  const text = rows.map((r) => headers.map((_, i) => oneLine(cell(r[i]))));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => r[i]!.length)));
  const line = (cols: string[]) =>
    cols
      .map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...text.map(line)].join('\n');
}

/** `key: value` lines, keys aligned; nested objects printed as compact JSON. */
export function keyValues(pairs: Array<[string, unknown]>): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs
    .map(([k, v]) => {
      const shown = typeof v === 'object' && v !== null ? JSON.stringify(v) : cell(v as Cell);
      return `${`${k}:`.padEnd(width + 1)} ${shown}`;
    })
    .join('\n');
}

/** Newlines and runs of spaces become one space (a cell stays on its row). */
export function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** At most `max` characters, with an ellipsis when cut. */
export function truncate(text: string, max: number): string {
  const flat = oneLine(text);
  return flat.length <= max ? flat : `${flat.slice(0, Math.max(0, max - 1))}…`;
}

/** 850 ms → "0.9 s"; 95 s → "1 min 35 s"; 2 h 5 min → "2 h 5 min". */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** 1234567 → "1,234,567" (no locale surprises in tests). */
export function count(n: number | null | undefined): string {
  if (n === null || n === undefined) return '-';
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}
