/**
 * Typed metadata (API.md, "Knowledge bases"): a synced value in the JSON type its source column
 * has, whatever text form the driver handed over. Pure.
 *
 * - integers: JSON numbers; beyond 2^53 the exact decimal text (a double would round it);
 * - decimals and floats: JSON numbers when a double holds the value exactly, i.e. when the shortest
 *   round-trip text of Number(x) is the canonical decimal of x (75.00 -> 75, 0.1 -> 0.1); else the
 *   source's text ('12345678901234567.5' stays a string);
 * - booleans: true/false (MySQL TINYINT(1) and SQLite BOOLEAN hold 0/1);
 * - timestamps: ISO 8601 in UTC with `Z` and every stored fraction digit
 *   ('2026-01-01 15:00:00.123+02' -> '2026-01-01T13:00:00.123Z'); a naive timestamp is UTC;
 * - dates: 'YYYY-MM-DD';
 * - NULL: null.
 *
 * A value that does not fit its column's kind (text in an untyped SQLite column, a MySQL zero
 * date, PostgreSQL 'infinity', a Unix-time number in a SQLite time column) is kept as it came.
 */
import type { ColumnKind } from '../sources/port.js';
import type { MetadataValue } from './documents.js';

export function typedValue(kind: ColumnKind, raw: unknown): MetadataValue {
  if (raw === null || raw === undefined) return null;
  switch (kind) {
    case 'integer':
      return typedInteger(raw);
    case 'numeric':
      return typedDecimal(raw);
    case 'boolean':
      return typedBoolean(raw);
    case 'timestamp':
    case 'timestamptz':
      return typedTimestamp(raw);
    case 'date':
      return typedDate(raw);
    default:
      return plainValue(raw);
  }
}

/** The type-agnostic form (a driver's own JavaScript type): for text and other columns. */
export function plainValue(raw: unknown): MetadataValue {
  if (raw === null || raw === undefined) return null;
  if (typeof raw === 'number') return Number.isFinite(raw) ? noNegativeZero(raw) : String(raw);
  if (typeof raw === 'boolean' || typeof raw === 'string') return raw;
  if (typeof raw === 'bigint') return bigintValue(raw);
  // Date, buffers and objects as documents.ts valueToText writes them.
  if (raw instanceof Date) return Number.isNaN(raw.getTime()) ? '' : raw.toISOString();
  if (Buffer.isBuffer(raw) || raw instanceof Uint8Array) return `<${raw.length} bytes>`;
  if (typeof raw === 'object')
    return JSON.stringify(raw, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  return String(raw);
}

const INTEGER_TEXT = /^[+-]?\d+$/;
const DECIMAL_TEXT = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

function typedInteger(raw: unknown): MetadataValue {
  if (typeof raw === 'string' && INTEGER_TEXT.test(raw)) return bigintValue(BigInt(raw));
  if (typeof raw === 'string') return typedDecimal(raw);
  return plainValue(raw);
}

function typedDecimal(raw: unknown): MetadataValue {
  if (typeof raw !== 'string') return plainValue(raw);
  const exact = canonicalDecimal(raw);
  if (exact === null) return raw;
  const n = Number(raw);
  if (!Number.isFinite(n)) return raw;
  const back = canonicalDecimal(String(n));
  if (back === null || !sameDecimal(exact, back)) return raw;
  return noNegativeZero(n);
}

function bigintValue(v: bigint): number | string {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
    ? noNegativeZero(Number(v))
    : v.toString();
}

/** JSON has no negative zero worth keeping: -0 and 0 are one value. */
function noNegativeZero(n: number): number {
  return n === 0 ? 0 : n;
}

/** value = ±0.digits × 10^exponent, digits without leading or trailing zeros ('' for zero). */
interface Decimal {
  negative: boolean;
  digits: string;
  exponent: number;
}

export function canonicalDecimal(text: string): Decimal | null {
  const m = DECIMAL_TEXT.exec(text);
  if (m === null) return null;
  const [, sign, int = '', frac = '', exp] = m;
  if (int === '' && frac === '') return null;
  let exponent = int.length + (exp === undefined ? 0 : Number(exp));
  if (!Number.isSafeInteger(exponent)) return null;
  let digits = int + frac;
  const leading = digits.length - digits.replace(/^0+/, '').length;
  digits = digits.slice(leading).replace(/0+$/, '');
  exponent -= leading;
  if (digits === '') return { negative: false, digits: '', exponent: 0 };
  return { negative: sign === '-', digits, exponent };
}

function sameDecimal(a: Decimal, b: Decimal): boolean {
  return a.negative === b.negative && a.digits === b.digits && a.exponent === b.exponent;
}

function typedBoolean(raw: unknown): MetadataValue {
  if (typeof raw === 'boolean') return raw;
  if (raw === 0 || raw === 0n) return false;
  if (raw === 1 || raw === 1n) return true;
  if (typeof raw === 'string') {
    const t = raw.trim().toLowerCase();
    if (t === '0' || t === 'false') return false;
    if (t === '1' || t === 'true') return true;
  }
  return plainValue(raw);
}

// YYYY-MM-DD, optionally [T ]HH:MM[:SS[.fff...]] and a zone: Z, ±HH, ±HH:MM, ±HHMM, ±HH:MM:SS.
const TIMESTAMP_TEXT =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(?: ?(?:([Zz])|([+-])(\d{2})(?::?(\d{2})(?::?(\d{2}))?)?))?)?$/;

/**
 * '2026-01-01 15:00:00.123+02' -> '2026-01-01T13:00:00.123Z': the UTC instant of a timestamp text
 * (no zone: UTC), with the fraction digits as written. Null when `text` is not a valid date and
 * time in that layout (or lands outside years 0000-9999). A date alone is its UTC midnight.
 */
export function toUtcIso(text: string): string | null {
  const m = TIMESTAMP_TEXT.exec(text);
  if (m === null) return null;
  const [, y, mo, d, h = '00', mi = '00', s = '00', frac, z, sign, oh, om, os] = m;
  const ms = utcMillis(Number(y), Number(mo), Number(d), Number(h), Number(mi), Number(s));
  if (ms === null) return null;
  let offsetSeconds = 0;
  if (z === undefined && sign !== undefined) {
    const hours = Number(oh);
    const minutes = Number(om ?? 0);
    const seconds = Number(os ?? 0);
    if (hours > 23 || minutes > 59 || seconds > 59) return null;
    offsetSeconds = (sign === '-' ? -1 : 1) * (hours * 3600 + minutes * 60 + seconds);
  }
  const utc = new Date(ms - offsetSeconds * 1000);
  const year = utc.getUTCFullYear();
  if (year < 0 || year > 9999) return null;
  const p2 = (n: number) => String(n).padStart(2, '0');
  const day = `${String(year).padStart(4, '0')}-${p2(utc.getUTCMonth() + 1)}-${p2(utc.getUTCDate())}`;
  const time = `${p2(utc.getUTCHours())}:${p2(utc.getUTCMinutes())}:${p2(utc.getUTCSeconds())}`;
  return `${day}T${time}${frac === undefined ? '' : `.${frac}`}Z`;
}

/** Milliseconds since the epoch of valid fields (no roll-over of 2025-02-30 or 24:00), else null. */
function utcMillis(y: number, mo: number, d: number, h: number, mi: number, s: number): number | null {
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return null;
  const date = new Date(0);
  // setUTCFullYear, not Date.UTC: Date.UTC reads years 0-99 as 1900-1999.
  date.setUTCFullYear(y, mo - 1, d);
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) return null;
  date.setUTCHours(h, mi, s, 0);
  return date.getTime();
}

function typedTimestamp(raw: unknown): MetadataValue {
  if (typeof raw === 'string') return toUtcIso(raw) ?? raw;
  return plainValue(raw);
}

/** Every engine's date text is already 'YYYY-MM-DD' (invalid ones, e.g. '0000-00-00', stay as they are). */
function typedDate(raw: unknown): MetadataValue {
  if (typeof raw === 'string') return raw;
  if (raw instanceof Date && !Number.isNaN(raw.getTime())) return raw.toISOString().slice(0, 10);
  return plainValue(raw);
}
