/** MySQL / MariaDB spelling: identifier quoting, type families, casts and the keyset dialect. */
import type { ColumnKind, TableRef } from '../port.js';
import type { KeysetDialect } from '../shared.js';

/** What binding a value needs beyond the port's ColumnInfo. */
export interface MysqlColumnExtra {
  /** information_schema DATA_TYPE, lower case, e.g. `datetime`. */
  dataType: string;
  /** The expression a bound text is compared through, e.g. `CAST(? AS DATETIME(6))`. */
  bindExpr: string;
  /** Fractional-second digits of a DATETIME/TIMESTAMP column (0..6). */
  fsp: number;
  /** DECIMAL precision and scale, when the column is DECIMAL. */
  precision: number;
  scale: number;
}

/** `` `a``b` ``: the only character to escape inside a backtick-quoted identifier is the backtick. */
export function quoteIdent(name: string): string {
  if (name.includes('\0')) throw new Error('identifier contains a NUL character');
  return `\`${name.replaceAll('`', '``')}\``;
}

const INTEGERS = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint', 'year']);
const TEXTS = new Set([
  'char',
  'varchar',
  'tinytext',
  'text',
  'mediumtext',
  'longtext',
  // Not ENUM or SET: they sort by member position but compare as strings, so a keyset on them
  // would disagree with its own ORDER BY. They are 'other' and refused as filter columns.
  'json',
]);

export function kindOf(dataType: string, columnType: string): ColumnKind {
  if (dataType === 'datetime' || dataType === 'timestamp') return 'timestamp';
  if (dataType === 'date') return 'date';
  // BOOLEAN is an alias of TINYINT(1); MySQL has no other boolean type.
  if (columnType === 'tinyint(1)') return 'boolean';
  if (INTEGERS.has(dataType)) return 'integer';
  if (dataType === 'decimal' || dataType === 'float' || dataType === 'double') return 'numeric';
  if (TEXTS.has(dataType)) return 'text';
  return 'other';
}

/**
 * How a watermark text is turned back into the column's type before comparing. Without a cast,
 * MySQL compares an integer column with a string as doubles (big keys collide) and a DATETIME
 * with a string only when it guesses right; a cast to the column's own type compares exactly
 * and still lets the index be used. Every number inlined here comes from the catalog.
 */
export function bindExprOf(dataType: string, columnType: string, precision: number, scale: number): string {
  switch (dataType) {
    case 'datetime':
    case 'timestamp':
      return 'CAST(? AS DATETIME(6))';
    case 'date':
      return 'CAST(? AS DATE)';
    case 'time':
      return 'CAST(? AS TIME(6))';
    case 'decimal':
      return `CAST(? AS DECIMAL(${int(precision)}, ${int(scale)}))`;
    case 'float':
      // MariaDB prints a FLOAT with 6 significant digits (10006.25 -> '10006.2'), so its text
      // goes through DOUBLE (textOf), which is exact, and the bound value comes back the same way.
      return 'CAST(? AS DOUBLE)';
    case 'double':
      return 'CAST(? AS DOUBLE)';
    default:
      if (INTEGERS.has(dataType))
        return columnType.includes('unsigned') ? 'CAST(? AS UNSIGNED)' : 'CAST(? AS SIGNED)';
      return '?';
  }
}

function int(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`unexpected catalog number ${String(n)}`);
  return n;
}

export const mysqlDialect: KeysetDialect<MysqlColumnExtra> = {
  quote: quoteIdent,
  // Always the connected database: a schema in the ref was checked by the connector.
  table: (ref: TableRef) => quoteIdent(ref.name),
  // CAST(... AS CHAR) keeps DATETIME(6) microseconds, DECIMAL scale and BIGINT digits; the
  // session time zone is UTC so a TIMESTAMP reads the same on every connection.
  textOf: (expr, column) =>
    column.extra.dataType === 'float' ? `CAST(CAST(${expr} AS DOUBLE) AS CHAR)` : `CAST(${expr} AS CHAR)`,
  toText: (v) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v)),
  bind: (c, value, params) => {
    params.push(value);
    return c.extra.bindExpr;
  },
  boundLeadingColumn: true,
  // Prepared statements do not take LIMIT ? reliably on every server; n is a checked integer.
  limit: (n) => `LIMIT ${int(n)}`,
};
