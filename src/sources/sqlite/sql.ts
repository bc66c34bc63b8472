/**
 * SQLite spelling: identifier quoting, type families from declared types, how a watermark text
 * is bound back, and time arithmetic on stored text.
 */
import type Database from 'better-sqlite3';
import { keyHash } from '../../core/hash.js';
import type { ColumnKind, TableRef } from '../port.js';
import { ceilUnits, type KeysetDialect } from '../shared.js';

/** SQLite's column affinity (datatype3.html, 3.1), which decides how a comparison converts. */
export type Affinity = 'integer' | 'text' | 'blob' | 'real' | 'numeric';

export interface SqliteColumnExtra {
  affinity: Affinity;
}

/** `"a""b"`, as in standard SQL. */
export function quoteIdent(name: string): string {
  if (name.includes('\0')) throw new Error('identifier contains a NUL character');
  return `"${name.replaceAll('"', '""')}"`;
}

/** The affinity rules, in SQLite's own order. */
export function affinityOf(declared: string): Affinity {
  const t = declared.toUpperCase();
  if (t.includes('INT')) return 'integer';
  if (t.includes('CHAR') || t.includes('CLOB') || t.includes('TEXT')) return 'text';
  if (t.includes('BLOB') || t.trim() === '') return 'blob';
  if (t.includes('REAL') || t.includes('FLOA') || t.includes('DOUB')) return 'real';
  return 'numeric';
}

/**
 * A family from the declared type. SQLite has no date type, so a declared DATE/TIME name is the
 * only hint that a column holds times; it is checked before INT so `DATETIME` is a time. Nor has
 * it a boolean type: a declared BOOL/BOOLEAN column (NUMERIC affinity) holds 0/1.
 */
export function kindOf(declared: string): ColumnKind {
  const t = declared.toUpperCase().trim();
  if (t === 'BOOL' || t === 'BOOLEAN') return 'boolean';
  if (t === 'DATE') return 'date';
  if (t.includes('DATE') || t.includes('TIME')) return 'timestamp';
  if (t.includes('INT')) return 'integer';
  if (['REAL', 'FLOA', 'DOUB', 'NUMERIC', 'DECIMAL'].some((s) => t.includes(s))) return 'numeric';
  return 'text';
}

const INTEGER = /^[+-]?\d+$/;
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$|^[+-]?Infinity$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * The value to bind for a watermark text. SQLite compares by storage class (numbers sort before
 * text), so a number stored in the column must be bound as a number: a number-looking text in a
 * numeric-affinity column is always stored as a number, so parsing it back is exact. Integers
 * are bound as BigInt so keys beyond 2^53 stay exact.
 */
export function bindValue(affinity: Affinity, text: string): unknown {
  if (affinity === 'text') return text;
  if (affinity === 'blob') {
    // Tagged by textOf with the value's own storage class (see TAGGED_TEXT).
    const tag = text.slice(0, 2);
    const body = text.slice(2);
    if (tag === 't:') return body;
    if (tag === 'b:') return Buffer.from(body, 'hex');
    if (tag === 'i:') return BigInt(body);
    if (tag === 'r:') return Number(body);
  }
  if (INTEGER.test(text)) {
    const n = BigInt(text);
    if (n >= INT64_MIN && n <= INT64_MAX) return n;
  }
  if (NUMBER.test(text)) return Number(text);
  return text;
}

/** The text form: exact digits for integers (read as BigInt), shortest round-trip for reals. */
export function toText(v: unknown): string {
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return String(v);
}

/** Values as the driver returns them by default: integers as numbers, BigInt only when unsafe. */
export function toValue(v: unknown): unknown {
  if (typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) {
    return Number(v);
  }
  return v;
}

/** 'i:60', 'r:0.5', 't:60', 'b:00ff': exact text of a value plus its storage class. */
const TAGGED_TEXT = (expr: string) =>
  `CASE typeof(${expr}) WHEN 'integer' THEN 'i:' || ${expr} WHEN 'real' THEN 'r:' || printf('%!.17g', ${expr}) ` +
  `WHEN 'text' THEN 't:' || ${expr} WHEN 'blob' THEN 'b:' || hex(${expr}) END`;

export const sqliteDialect: KeysetDialect<SqliteColumnExtra> = {
  quote: quoteIdent,
  // Always the main database: a schema in the ref was checked by the connector.
  table: (ref: TableRef) => quoteIdent(ref.name),
  // The raw value; toText makes it text in JavaScript, where a BigInt keeps every digit. A column
  // without a declared type (BLOB affinity) can hold '60' as text next to 60 as a number, which
  // sort apart, so its text form carries the storage class and binds back as the same class.
  textOf: (expr, column) => (column.extra.affinity === 'blob' ? TAGGED_TEXT(expr) : expr),
  toText,
  bind: (c, value, params) => {
    params.push(bindValue(c.extra.affinity, value));
    return '?';
  },
  // SQLite turns (f, k) > (?, ?) into an index range by itself (rowvalue.html, "scrolling").
  boundLeadingColumn: false,
  limit: (n, params) => {
    params.push(n);
    return 'LIMIT ?';
  },
  // SQLite has no MD5: the connector registers these on its own connection (registerKeyHash).
  keyHash: (texts) => `kbsync_key_hash(${texts.join(', ')})`,
  hex32: (hex8) => `kbsync_hex32(${hex8})`,
  param: (value, params) => {
    params.push(value);
    return '?';
  },
};

/**
 * The functions sqliteDialect's key hashing calls, on a connection kbsync opened itself. Each
 * argument is a key column's value as the keyset reads it, turned into its text form exactly
 * as a document id is (toText), so a key hashes here as it does in the knowledge base.
 */
export function registerKeyHash(db: Database.Database): void {
  db.function('kbsync_key_hash', { deterministic: true, varargs: true, safeIntegers: true }, (...values: unknown[]) =>
    keyHash(values.map(toText)),
  );
  db.function('kbsync_hex32', { deterministic: true }, (hex: unknown) => Number.parseInt(String(hex), 16));
}

// YYYY-MM-DD, then optionally [ T]HH:MM[:SS[.fff...]] and a zone (Z or ±HH[:]MM).
const DATETIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:([ T])(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|z|[+-]\d{2}:?\d{2})?)?$/;

/**
 * `value` minus `seconds` in the layout `value` is stored in (same separator, same number of
 * fraction digits, same zone suffix), rounded down to that precision so the window is never
 * shorter. Done here rather than with SQLite's datetime(): SQLite keeps only milliseconds
 * (rounding .1235 up) and always re-formats, and stored text compares as text.
 *
 * Numbers are read as Unix time: seconds, or milliseconds when |value| >= 1e11 (year 5138 in
 * seconds). A Julian-day REAL would be misread as seconds. Returns null for text in no known
 * layout.
 */
export function subtractFromTime(value: string, seconds: number): string | null {
  if (NUMBER.test(value.trim())) {
    const n = Number(value);
    const factor = Math.abs(n) >= 1e11 ? 1000 : 1;
    if (INTEGER.test(value.trim())) return (BigInt(value.trim()) - ceilUnits(seconds * factor, 1)).toString();
    return String(n - seconds * factor);
  }
  const m = DATETIME.exec(value);
  if (m === null) return null;
  const [, y, mo, d, sep, h, mi, s, frac, zone] = m;
  const date = new Date(0);
  date.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  date.setUTCHours(Number(h ?? 0), Number(mi ?? 0), Number(s ?? 0), 0);
  // Reject 2025-02-30 and the like instead of letting Date roll them over.
  if (date.getUTCMonth() !== Number(mo) - 1 || date.getUTCDate() !== Number(d)) return null;

  const wholeSeconds = BigInt(date.getTime() / 1000);
  let result: Date;
  let fracOut = '';
  if (sep === undefined) {
    result = new Date(Number(wholeSeconds - ceilUnits(seconds, 86_400) * 86_400n) * 1000);
  } else if (s === undefined) {
    result = new Date(Number(wholeSeconds - ceilUnits(seconds, 60) * 60n) * 1000);
  } else {
    const digits = frac?.length ?? 0;
    const scale = 10n ** BigInt(digits);
    const units = wholeSeconds * scale + BigInt(frac ?? 0) - ceilUnits(seconds, 10 ** -digits);
    // Floor division, so times before 1970 keep a non-negative fraction.
    let whole = units / scale;
    let rest = units % scale;
    if (rest < 0n) {
      rest += scale;
      whole -= 1n;
    }
    result = new Date(Number(whole) * 1000);
    fracOut = digits > 0 ? `.${rest.toString().padStart(digits, '0')}` : '';
  }
  const year = result.getUTCFullYear();
  if (year < 0 || year > 9999) return null;
  const p2 = (n: number) => String(n).padStart(2, '0');
  const day = `${String(year).padStart(4, '0')}-${p2(result.getUTCMonth() + 1)}-${p2(result.getUTCDate())}`;
  if (sep === undefined) return day;
  const hm = `${p2(result.getUTCHours())}:${p2(result.getUTCMinutes())}`;
  const sec = s === undefined ? '' : `:${p2(result.getUTCSeconds())}${fracOut}`;
  return `${day}${sep}${hm}${sec}${zone ?? ''}`;
}
