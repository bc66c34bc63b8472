/** Reads tables, columns and keys of the connected database from information_schema. */
import type { ColumnInfo } from '../port.js';
import type { ResolvedColumn, ResolvedTable } from '../shared.js';
import { bindExprOf, kindOf, type MysqlColumnExtra, unorderableReason } from './sql.js';

export type MysqlQuery = <R>(sql: string, params: unknown[]) => Promise<R[]>;

// information_schema compares names case-insensitively on MariaDB, so `= ?` may return a table
// whose name differs in case; exact matching is done in JavaScript.
const TABLES = `
SELECT TABLE_NAME AS name FROM information_schema.TABLES
WHERE TABLE_SCHEMA = DATABASE() AND (? IS NULL OR TABLE_NAME = ?)
ORDER BY TABLE_NAME`;

const COLUMNS = `
SELECT TABLE_NAME AS tbl, COLUMN_NAME AS name, LOWER(DATA_TYPE) AS data_type, LOWER(COLUMN_TYPE) AS column_type,
       IS_NULLABLE AS is_nullable, NUMERIC_PRECISION AS num_precision, NUMERIC_SCALE AS num_scale,
       DATETIME_PRECISION AS fsp
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = DATABASE() AND (? IS NULL OR TABLE_NAME = ?)
ORDER BY TABLE_NAME, ORDINAL_POSITION`;

// Functional index parts (MySQL 8) have no COLUMN_NAME and cannot identify a row.
const KEYS = `
SELECT TABLE_NAME AS tbl, INDEX_NAME AS idx, COLUMN_NAME AS col
FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = DATABASE() AND NON_UNIQUE = 0 AND (? IS NULL OR TABLE_NAME = ?)
ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX`;

interface ColumnRow {
  tbl: string;
  name: string;
  data_type: string;
  column_type: string;
  is_nullable: string;
  num_precision: number | string | null;
  num_scale: number | string | null;
  fsp: number | string | null;
}

export async function introspect(
  query: MysqlQuery,
  onlyName?: string,
): Promise<ResolvedTable<MysqlColumnExtra>[]> {
  const p = [onlyName ?? null, onlyName ?? null];
  const [tables, columns, keys] = await Promise.all([
    query<{ name: string }>(TABLES, p),
    query<ColumnRow>(COLUMNS, p),
    query<{ tbl: string; idx: string; col: string | null }>(KEYS, p),
  ]);
  const names = tables.map((t) => str(t.name)).filter((n) => onlyName === undefined || n === onlyName);

  return names.map((name) => {
    const cols = new Map<string, ResolvedColumn<MysqlColumnExtra>>();
    const infos: ColumnInfo[] = [];
    for (const c of columns) {
      if (str(c.tbl) !== name) continue;
      const dataType = str(c.data_type);
      const columnType = str(c.column_type);
      const precision = Number(c.num_precision ?? 0);
      const scale = Number(c.num_scale ?? 0);
      const info: ColumnInfo = {
        name: str(c.name),
        type: columnType,
        kind: kindOf(dataType, columnType),
        nullable: str(c.is_nullable) === 'YES',
      };
      const unorderable = unorderableReason(dataType);
      if (unorderable !== undefined) info.unorderable = unorderable;
      infos.push(info);
      cols.set(info.name, {
        info,
        extra: {
          dataType,
          bindExpr: bindExprOf(dataType, columnType, precision, scale),
          fsp: Number(c.fsp ?? 0),
          precision,
          scale,
          unsigned: /\bunsigned\b/.test(columnType),
        },
      });
    }
    const indexes = new Map<string, { columns: string[]; usable: boolean }>();
    for (const k of keys) {
      if (str(k.tbl) !== name) continue;
      const idx = indexes.get(str(k.idx)) ?? { columns: [], usable: true };
      if (k.col === null) idx.usable = false;
      else idx.columns.push(str(k.col));
      indexes.set(str(k.idx), idx);
    }
    const notNull = (c: string): boolean => cols.get(c)?.info.nullable === false;
    return {
      info: {
        schema: null,
        name,
        columns: infos,
        primaryKey: indexes.get('PRIMARY')?.columns ?? [],
        uniqueKeys: [...indexes.entries()]
          .filter(([n, i]) => n !== 'PRIMARY' && i.usable && i.columns.every(notNull))
          .map(([, i]) => i.columns),
      },
      columns: cols,
    };
  });
}

// Some servers hand information_schema text back as binary strings.
function str(v: unknown): string {
  return Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
}
