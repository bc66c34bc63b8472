/**
 * Metadata filter -> SQLite WHERE fragment over a JSON metadata column. Pure: no database here, so
 * the translation is unit-tested directly and the adapter only splices the fragment in.
 *
 * Semantics (shared by every adapter, pinned by the contract suite):
 * - several fields are ANDed; `{in, gt, gte, lt, lte}` in one object are ANDed too;
 * - equality is type-strict: the string '10' never equals the number 10, and `true` never equals 1;
 * - `null` matches a field that is JSON null or absent;
 * - `gt`/`gte`/`lt`/`lte` with a number compare numbers numerically; a non-number never matches;
 * - with a string that is an ISO 8601 date and time ('2026-01-01T10:30:00Z', '2026-01-01
 *   12:30:00+02:00'; no zone is UTC), they compare chronologically with the stored timestamps in
 *   the typed layout 'YYYY-MM-DDTHH:MM:SS[.f…]Z' (core/typed-values.ts), whatever their number of
 *   fraction digits; other values never match. Plain string order would be wrong there: it puts
 *   '…10:30:00Z' after '…10:30:00.5Z' ('Z' > '.');
 * - with any other string (a date 'YYYY-MM-DD', a code) they compare strings by byte order; a
 *   non-string never matches;
 * - `in: []` matches nothing.
 *
 * Field names are user input. They never reach the SQL text: they are validated and bound as a
 * JSON path parameter (`$."field"`). The quoted path form treats a dot as part of the key, which is
 * what flat metadata (`Record<string, scalar>`) needs.
 */
import { AppError } from '../../core/errors.js';
import { toUtcIso } from '../../core/typed-values.js';
import type { MetadataFilter, MetadataValue } from '../vector-port.js';

/** No quote or backslash can appear, so `$."<field>"` cannot be broken out of. */
export const FILTER_FIELD_PATTERN = /^[A-Za-z0-9_.\- ]{1,64}$/;
export const MAX_FILTER_FIELDS = 32;
export const MAX_IN_VALUES = 1000;

export type SqlParam = string | number;

export interface SqlFragment {
  /** A boolean SQL expression; `1` when there is nothing to filter. */
  sql: string;
  params: SqlParam[];
}

type Scalar = MetadataValue;
type Bound = string | number;
type BoundOp = 'gt' | 'gte' | 'lt' | 'lte';
type Range = { in?: Scalar[] } & { [op in BoundOp]?: Bound };

const BOUND_OPS: readonly BoundOp[] = ['gt', 'gte', 'lt', 'lte'];
const SQL_OPS: Record<BoundOp, '>' | '>=' | '<' | '<='> = { gt: '>', gte: '>=', lt: '<', lte: '<=' };
const RANGE_KEYS = new Set<string>(['in', ...BOUND_OPS]);

/**
 * Validates the whole filter first and reports every problem at once (API envelope style), then
 * translates it. `column` is a trusted SQL expression from adapter code, e.g. `d.metadata`.
 */
export function compileMetadataFilter(filter: MetadataFilter | undefined, column: string): SqlFragment {
  if (filter === undefined) return { sql: '1', params: [] };
  const problems = validateMetadataFilter(filter);
  if (problems.length > 0) {
    throw new AppError('INVALID_REQUEST', 'Invalid metadata filter', problems);
  }
  const parts: string[] = [];
  const params: SqlParam[] = [];
  for (const [field, condition] of Object.entries(filter)) {
    const fragment = fieldCondition(column, jsonPath(field), condition);
    parts.push(fragment.sql);
    params.push(...fragment.params);
  }
  if (parts.length === 0) return { sql: '1', params: [] };
  return { sql: parts.map((p) => `(${p})`).join(' AND '), params };
}

/** Readable sentences, one per problem; empty when the filter is valid. */
export function validateMetadataFilter(filter: unknown): string[] {
  if (filter === null || typeof filter !== 'object' || Array.isArray(filter)) {
    return ['filter must be an object of metadata field -> value'];
  }
  const entries = Object.entries(filter);
  const problems: string[] = [];
  if (entries.length > MAX_FILTER_FIELDS) {
    problems.push(`filter has ${entries.length} fields; at most ${MAX_FILTER_FIELDS} are allowed`);
  }
  for (const [field, condition] of entries) {
    if (!FILTER_FIELD_PATTERN.test(field)) {
      problems.push(
        `invalid filter field name: ${JSON.stringify(field.slice(0, 80))} (1-64 letters, digits, spaces, '_', '-', '.')`,
      );
      continue;
    }
    problems.push(...validateCondition(field, condition));
  }
  return problems;
}

function validateCondition(field: string, condition: unknown): string[] {
  if (isScalar(condition)) {
    return typeof condition === 'number' && !Number.isFinite(condition)
      ? [`filter '${field}': numbers must be finite`]
      : [];
  }
  if (typeof condition !== 'object' || Array.isArray(condition)) {
    return [`filter '${field}' must be a string, number, boolean, null or an object with in/gt/gte/lt/lte`];
  }
  const problems: string[] = [];
  const keys = Object.keys(condition);
  const unknown = keys.filter((k) => !RANGE_KEYS.has(k));
  if (unknown.length > 0) problems.push(`filter '${field}': unknown operator(s) ${unknown.join(', ')}`);
  const known = keys.filter((k) => RANGE_KEYS.has(k));
  if (known.length === 0 && unknown.length === 0) {
    problems.push(`filter '${field}' must use at least one of in, gt, gte, lt, lte`);
  }
  const c = condition as Record<string, unknown>;
  if ('in' in c) {
    const list = c.in;
    if (!Array.isArray(list)) {
      problems.push(`filter '${field}': in must be an array`);
    } else if (list.length > MAX_IN_VALUES) {
      problems.push(`filter '${field}': in has ${list.length} values; at most ${MAX_IN_VALUES} are allowed`);
    } else if (!list.every((v) => isScalar(v) && (typeof v !== 'number' || Number.isFinite(v)))) {
      problems.push(`filter '${field}': in values must be strings, finite numbers, booleans or null`);
    }
  }
  const present = BOUND_OPS.filter((op) => op in c);
  for (const op of present) {
    const v = c[op];
    if (!(typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)))) {
      problems.push(`filter '${field}': ${op} must be a string or a finite number`);
    }
  }
  if (new Set(present.map((op) => typeof c[op])).size > 1) {
    problems.push(`filter '${field}': ${present.join(', ')} must all be numbers or all be strings`);
  }
  return problems;
}

function isScalar(v: unknown): v is Scalar {
  return v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

function jsonPath(field: string): string {
  return `$."${field}"`;
}

function fieldCondition(column: string, path: string, condition: Scalar | Range): SqlFragment {
  if (isScalar(condition)) return equals(column, path, [condition]);
  const parts: SqlFragment[] = [];
  if (condition.in !== undefined) parts.push(equals(column, path, condition.in));
  for (const op of BOUND_OPS) {
    const value = condition[op];
    if (value !== undefined) parts.push(bound(column, path, SQL_OPS[op], value));
  }
  return {
    sql: parts.map((p) => `(${p.sql})`).join(' AND '),
    params: parts.flatMap((p) => p.params),
  };
}

/**
 * Equality with any of `values`, grouped by JSON type. json_extract's result has no column affinity,
 * so a text parameter never equals a number: strings need no guard, which saves a second JSON read
 * per row on the common filter. Numbers do need the json_type guard, because json_extract maps
 * JSON true/false to integers 1/0.
 */
function equals(column: string, path: string, values: Scalar[]): SqlFragment {
  const strings = values.filter((v): v is string => typeof v === 'string');
  const numbers = values.filter((v): v is number => typeof v === 'number');
  const booleans = new Set(values.filter((v): v is boolean => typeof v === 'boolean'));
  const hasNull = values.some((v) => v === null);
  const ors: SqlFragment[] = [];
  const extract = `json_extract(${column}, ?)`;
  const type = `json_type(${column}, ?)`;
  if (strings.length > 0) {
    ors.push({
      sql: `${extract} IN (${placeholders(strings.length)})`,
      params: [path, ...strings],
    });
  }
  if (numbers.length > 0) {
    ors.push({
      sql: `${type} IN ('integer', 'real') AND ${extract} IN (${placeholders(numbers.length)})`,
      params: [path, path, ...numbers],
    });
  }
  if (booleans.size > 0) {
    const names = [...booleans].map((b) => (b ? "'true'" : "'false'")).join(', ');
    ors.push({ sql: `${type} IN (${names})`, params: [path] });
  }
  // json_extract yields SQL NULL for both a JSON null and a missing key.
  if (hasNull) ors.push({ sql: `${extract} IS NULL`, params: [path] });
  if (ors.length === 0) return { sql: '0', params: [] };
  return { sql: ors.map((o) => `(${o.sql})`).join(' OR '), params: ors.flatMap((o) => o.params) };
}

/**
 * SQLite orders every number before every string, so ranges must not mix types. For strings that
 * costs no type lookup: `>`/`>= 'x'` already exclude numbers, and `BETWEEN '' AND 'x'` (every
 * string is >= '') excludes them from `<`/`<=`. Numbers need json_type to keep booleans (1/0) out.
 * A time bound compares sort keys (timeKeySql).
 */
function bound(column: string, path: string, op: '>' | '>=' | '<' | '<=', value: Bound): SqlFragment {
  const extract = `json_extract(${column}, ?)`;
  if (typeof value === 'string') {
    const key = timeBoundKey(value);
    if (key !== null) {
      return {
        sql: `(SELECT ${timeKeySql('v')} FROM (SELECT ${extract} AS v)) ${op} ?`,
        params: [path, key],
      };
    }
    if (op === '>' || op === '>=') return { sql: `${extract} ${op} ?`, params: [path, value] };
    if (op === '<=') return { sql: `${extract} BETWEEN '' AND ?`, params: [path, value] };
    return { sql: `${extract} >= '' AND ${extract} < ?`, params: [path, path, value] };
  }
  return {
    sql: `json_type(${column}, ?) IN ('integer', 'real') AND ${extract} ${op} ?`,
    params: [path, path, value],
  };
}

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const SECONDS_GLOB = '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][ T][0-9][0-9]:[0-9][0-9]:[0-9][0-9]';

/**
 * The sort key of a timestamp 'YYYY-MM-DD[T ]HH:MM:SS[.f…][Z]' — the typed form with `Z`, or a
 * naive one as a SQLite TEXT column often holds, read as UTC like every naive timestamp: date,
 * 'T', time, then the fraction digits without trailing zeros. Keys of equal instants are equal,
 * and byte order on keys is time order for any fraction lengths: after the fixed-width seconds,
 * digit strings without trailing zeros compare like the fractions they spell ('' < '05' < '5' =
 * '50'). NULL for a value in any other layout (another zone, no seconds, not text), which then
 * matches no bound.
 */
function timeKeySql(v: string): string {
  const seconds = `substr(${v}, 1, 10) || 'T' || substr(${v}, 12, 8)`;
  const zulu = `substr(${v}, 21, length(${v}) - 21)`;
  const naive = `substr(${v}, 21)`;
  return (
    `CASE WHEN ${v} GLOB '${SECONDS_GLOB}' OR ${v} GLOB '${SECONDS_GLOB}Z' THEN ${seconds} ` +
    `WHEN ${v} GLOB '${SECONDS_GLOB}.[0-9]*Z' AND rtrim(${zulu}, '0123456789') = '' THEN ${seconds} || rtrim(${zulu}, '0') ` +
    `WHEN ${v} GLOB '${SECONDS_GLOB}.[0-9]*' AND rtrim(${naive}, '0123456789') = '' THEN ${seconds} || rtrim(${naive}, '0') END`
  );
}

/** The same key for a bound that is an ISO 8601 date and time (converted to UTC); else null. */
export function timeBoundKey(bound: string): string | null {
  if (DATE_ONLY.test(bound)) return null;
  const iso = toUtcIso(bound);
  if (iso === null) return null;
  return iso.slice(0, 19) + (iso.length > 20 ? iso.slice(20, -1).replace(/0+$/, '') : '');
}

function placeholders(n: number): string {
  return Array.from({ length: n }, () => '?').join(', ');
}
