/**
 * Metadata filter -> PostgreSQL WHERE fragment over a JSONB metadata column. Pure, like its SQLite
 * twin (sqlite/metadata-filter.ts), whose validation and semantics it shares: the contract suite
 * pins them on both backends.
 *
 * - equality with a string, number or boolean is JSONB containment, `metadata @> {"f": v}`: JSONB
 *   compares type-strictly ('10' is not 10, true is not 1, 10 equals 10.0) and a GIN
 *   (jsonb_path_ops) index on the column can answer it;
 * - `null` matches a JSON null or an absent field;
 * - a number bound compares JSON numbers (a type check first, because JSONB orders every number
 *   after every string and null);
 * - a string bound that is an ISO 8601 date and time compares sort keys (timeKeySql), the same keys
 *   as on SQLite; any other string bound compares text by byte order (COLLATE "C", SQLite's BINARY),
 *   never in the database's locale.
 *
 * Field names and values never reach the SQL text: they are bound parameters.
 */
import { AppError } from '../../core/errors.js';
import { timeBoundKey, validateMetadataFilter } from '../sqlite/metadata-filter.js';
import type { MetadataFilter, MetadataValue } from '../vector-port.js';
import { pgText } from './vector-input.js';

export interface PgFragment {
  /** A boolean SQL expression; `TRUE` when there is nothing to filter. */
  sql: string;
  /**
   * Some condition is an equality with strings, numbers or booleans (`in` included, without null):
   * the GIN (jsonb_path_ops) index on metadata finds the chunks it admits, the other conditions
   * are checked on those only.
   */
  indexed: boolean;
}

type Bound = string | number;
type BoundOp = 'gt' | 'gte' | 'lt' | 'lte';
const BOUND_OPS: readonly BoundOp[] = ['gt', 'gte', 'lt', 'lte'];
const SQL_OPS: Record<BoundOp, string> = { gt: '>', gte: '>=', lt: '<', lte: '<=' };

/** Collects bound parameters and answers their placeholders ($n), for a statement built in parts. */
export class Params {
  readonly values: unknown[] = [];
  constructor(first: unknown[] = []) {
    this.values.push(...first);
  }
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/**
 * Validates the whole filter (every problem at once, as INVALID_REQUEST), then translates it.
 * `column` is a trusted SQL expression from adapter code, e.g. `c.metadata`.
 */
export function compileMetadataFilter(
  filter: MetadataFilter | undefined,
  column: string,
  params: Params,
): PgFragment {
  if (filter === undefined) return { sql: 'TRUE', indexed: false };
  const problems = validateMetadataFilter(filter);
  if (problems.length > 0) throw new AppError('INVALID_REQUEST', 'Invalid metadata filter', problems);
  const parts: string[] = [];
  let indexed = false;
  for (const [field, condition] of Object.entries(filter)) {
    if (condition === null || typeof condition !== 'object') {
      parts.push(equals(column, field, [condition], params));
      indexed ||= condition !== null;
      continue;
    }
    if (condition.in !== undefined) {
      parts.push(equals(column, field, condition.in, params));
      indexed ||= !condition.in.includes(null);
    }
    for (const op of BOUND_OPS) {
      const value = condition[op];
      if (value !== undefined) parts.push(bound(column, field, SQL_OPS[op], value, params));
    }
  }
  if (parts.length === 0) return { sql: 'TRUE', indexed: false };
  return { sql: parts.map((p) => `(${p})`).join(' AND '), indexed };
}

function equals(column: string, field: string, values: MetadataValue[], params: Params): string {
  const ors: string[] = [];
  // Strings as they were stored (vector-input.ts pgText), so a value with a NUL still matches.
  const scalars = values.filter((v) => v !== null).map((v) => (typeof v === 'string' ? pgText(v) : v));
  if (scalars.length === 1) {
    ors.push(`${column} @> ${params.add(JSON.stringify({ [field]: scalars[0] }))}::jsonb`);
  } else if (scalars.length > 1) {
    ors.push(`${column} @> ANY (${params.add(scalars.map((v) => JSON.stringify({ [field]: v })))}::jsonb[])`);
  }
  if (values.includes(null)) {
    const f = params.add(field);
    ors.push(`coalesce(${column} -> ${f}, 'null'::jsonb) = 'null'::jsonb`);
  }
  return ors.length === 0 ? 'FALSE' : ors.map((o) => `(${o})`).join(' OR ');
}

function bound(column: string, field: string, op: string, value: Bound, params: Params): string {
  const f = params.add(field);
  if (typeof value === 'number') {
    return `jsonb_typeof(${column} -> ${f}) = 'number' AND ${column} -> ${f} ${op} ${params.add(JSON.stringify(value))}::jsonb`;
  }
  const key = timeBoundKey(value);
  if (key !== null) return `${timeKeySql(`(${column} ->> ${f})`)} ${op} ${params.add(key)}::text COLLATE "C"`;
  return `jsonb_typeof(${column} -> ${f}) = 'string' AND (${column} ->> ${f}) COLLATE "C" ${op} ${params.add(pgText(value))}::text COLLATE "C"`;
}

/** 'YYYY-MM-DD[T ]HH:MM:SS[.f…][Z]' with ASCII digits only ([0-9]: `\d` follows the locale). */
const TIMESTAMP_RE = '^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?Z?$';

/**
 * The sort key of a stored timestamp, as sqlite/metadata-filter.ts timeKeySql builds it: date, 'T',
 * time, then the fraction digits without trailing zeros; NULL for any other layout (or a value
 * that is not a string: `->>` of a number is its digits, which the pattern refuses).
 */
export function timeKeySql(v: string): string {
  return (
    `(CASE WHEN ${v} ~ '${TIMESTAMP_RE}' ` +
    `THEN substr(${v}, 1, 10) || 'T' || substr(${v}, 12, 8) || rtrim(coalesce(substring(${v} from '[.]([0-9]+)'), ''), '0') END) COLLATE "C"`
  );
}
