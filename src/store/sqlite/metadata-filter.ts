/**
 * Metadata filter -> SQLite WHERE fragment over a JSON metadata column. Pure: no database here, so
 * the translation is unit-tested directly and the adapter only splices the fragment in.
 *
 * Semantics (shared by every adapter, pinned by the contract suite):
 * - several fields are ANDed; `{in, gte, lte}` in one object are ANDed too;
 * - equality is type-strict: the string '10' never equals the number 10, and `true` never equals 1;
 * - `null` matches a field that is JSON null or absent;
 * - `gte`/`lte` compare numbers as numbers and strings as strings (byte order, which is
 *   chronological for ISO 8601 timestamps written in one format, e.g. all UTC with `Z`); a value of
 *   the other type never matches a range;
 * - `in: []` matches nothing.
 *
 * Field names are user input. They never reach the SQL text: they are validated and bound as a
 * JSON path parameter (`$."field"`). The quoted path form treats a dot as part of the key, which is
 * what flat metadata (`Record<string, scalar>`) needs.
 */
import { AppError } from '../../core/errors.js';
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
type Range = { in?: Scalar[]; gte?: string | number; lte?: string | number };

const RANGE_KEYS = new Set(['in', 'gte', 'lte']);

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
    return [`filter '${field}' must be a string, number, boolean, null or an object with in/gte/lte`];
  }
  const problems: string[] = [];
  const keys = Object.keys(condition);
  const unknown = keys.filter((k) => !RANGE_KEYS.has(k));
  if (unknown.length > 0) problems.push(`filter '${field}': unknown operator(s) ${unknown.join(', ')}`);
  const known = keys.filter((k) => RANGE_KEYS.has(k));
  if (known.length === 0 && unknown.length === 0) {
    problems.push(`filter '${field}' must use at least one of in, gte, lte`);
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
  const bounds: Array<'gte' | 'lte'> = ['gte', 'lte'];
  for (const op of bounds) {
    if (!(op in c)) continue;
    const v = c[op];
    if (!(typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)))) {
      problems.push(`filter '${field}': ${op} must be a string or a finite number`);
    }
  }
  if ('gte' in c && 'lte' in c && typeof c.gte !== typeof c.lte) {
    problems.push(`filter '${field}': gte and lte must both be numbers or both be strings`);
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
  if (condition.gte !== undefined) parts.push(bound(column, path, '>=', condition.gte));
  if (condition.lte !== undefined) parts.push(bound(column, path, '<=', condition.lte));
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
 * costs no type lookup: `>= 'x'` already excludes numbers, and `BETWEEN '' AND 'x'` (every string
 * is >= '') excludes them from `<=`. Numbers need json_type to keep booleans (1/0) out.
 */
function bound(column: string, path: string, op: '>=' | '<=', value: string | number): SqlFragment {
  const extract = `json_extract(${column}, ?)`;
  if (typeof value === 'string') {
    return op === '>='
      ? { sql: `${extract} >= ?`, params: [path, value] }
      : { sql: `${extract} BETWEEN '' AND ?`, params: [path, value] };
  }
  return {
    sql: `json_type(${column}, ?) IN ('integer', 'real') AND ${extract} ${op} ?`,
    params: [path, path, value],
  };
}

function placeholders(n: number): string {
  return Array.from({ length: n }, () => '?').join(', ');
}
