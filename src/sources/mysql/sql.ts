/** MySQL / MariaDB spelling: identifier quoting, type families, casts and the keyset dialect. */
import type { ColumnKind, TableRef } from '../port.js';
import { type KeysetDialect, md5KeyHash } from '../shared.js';

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
  /** An integer type declared UNSIGNED (a bound negative number would wrap around). */
  unsigned: boolean;
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

/**
 * Byte strings. Their text form is hex (`LOWER(HEX(x))`, bound back through `UNHEX(?)`): read
 * through CAST(... AS CHAR) every byte that is not UTF-8 would become `?`, so distinct keys would
 * merge and a watermark would no longer sort where its row does.
 */
const BINARIES = new Set(['binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob']);

/**
 * Why rows cannot be read in keyset order on a column of this type, or undefined when they can.
 * ENUM sorts by member position in ORDER BY but compares with a bound value as a string, so
 * `(k) > (?)` and `ORDER BY k` disagree and rows are skipped; SET likewise (by its bit value).
 */
export function unorderableReason(dataType: string): string | undefined {
  if (dataType === 'enum' || dataType === 'set') {
    return `MySQL sorts an ${dataType.toUpperCase()} by its member position but compares it as text, so rows cannot be read in order on it`;
  }
  return undefined;
}

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
    case 'bit':
      // Read as its number (textOf), compared as one: a BIT value compares numerically.
      return 'CAST(? AS UNSIGNED)';
    default:
      if (BINARIES.has(dataType)) return 'UNHEX(?)';
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
  // session time zone is UTC so a TIMESTAMP reads the same on every connection. Byte strings are
  // hex and BIT its number: as CHAR, their bytes that are not UTF-8 would read as `?`.
  textOf: (expr, column) => {
    const t = column.extra.dataType;
    if (t === 'float') return `CAST(CAST(${expr} AS DOUBLE) AS CHAR)`;
    if (BINARIES.has(t)) return `LOWER(HEX(${expr}))`;
    if (t === 'bit') return `CAST(${expr} + 0 AS CHAR)`;
    return `CAST(${expr} AS CHAR)`;
  },
  toText: (v) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v)),
  bind: (c, value, params) => {
    params.push(value);
    return c.extra.bindExpr;
  },
  boundLeadingColumn: true,
  // Prepared statements do not take LIMIT ? reliably on every server; n is a checked integer.
  limit: (n) => `LIMIT ${int(n)}`,
  // `x IS NULL` also matches zero dates ('0000-00-00') on a NOT NULL DATE/DATETIME column (an
  // ODBC compatibility rule); `x <=> NULL` is true for a real NULL only.
  isNull: (expr) => `${expr} <=> NULL`,
  keyHash: md5KeyHash('MD5', 'CHAR_LENGTH'),
  hex32: (hex8) => `CAST(CONV(${hex8}, 16, 10) AS UNSIGNED)`,
  param: (value, params) => {
    params.push(value);
    return '?';
  },
};
