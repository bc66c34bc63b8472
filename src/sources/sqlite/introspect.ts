/** Reads tables, columns and keys of the main database through SQLite's pragma functions. */
import type Database from 'better-sqlite3';
import type { ColumnInfo } from '../port.js';
import type { ResolvedColumn, ResolvedTable } from '../shared.js';
import { affinityOf, kindOf, type SqliteColumnExtra } from './sql.js';

// table_list leaves out virtual tables' shadow tables; sqlite_* names are SQLite's own.
const TABLES = `
SELECT name FROM pragma_table_list
WHERE schema = 'main' AND type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
ORDER BY name`;

// hidden = 1 marks a virtual table's hidden column; generated columns (2, 3) are readable.
const COLUMNS = `
SELECT name, type, "notnull" AS not_null, pk FROM pragma_table_xinfo(?, 'main')
WHERE hidden <> 1 ORDER BY cid`;

// A partial index does not make rows unique; an expression part (cid -2) is not a column.
const UNIQUE_INDEXES = `
SELECT name FROM pragma_index_list(?, 'main') WHERE "unique" = 1 AND origin <> 'pk' AND partial = 0 ORDER BY name`;
const INDEX_COLUMNS = `SELECT name, cid FROM pragma_index_info(?, 'main') ORDER BY seqno`;

interface ColumnRow {
  name: string;
  type: string;
  not_null: number | bigint;
  pk: number | bigint;
}

export function introspect(db: Database.Database, onlyName?: string): ResolvedTable<SqliteColumnExtra>[] {
  // SQLite matches names without regard to ASCII case; describeTable is exact, so compare here.
  const names = (db.prepare(TABLES).pluck().all() as string[]).filter(
    (n) => onlyName === undefined || n === onlyName,
  );
  const columnsOf = db.prepare(COLUMNS);
  const indexesOf = db.prepare(UNIQUE_INDEXES).pluck();
  const partsOf = db.prepare(INDEX_COLUMNS);

  return names.map((name) => {
    const rows = columnsOf.all(name) as ColumnRow[];
    const pkRows = rows.filter((r) => Number(r.pk) > 0).sort((a, b) => Number(a.pk) - Number(b.pk));
    const primaryKey = pkRows.map((r) => r.name);
    const cols = new Map<string, ResolvedColumn<SqliteColumnExtra>>();
    const infos: ColumnInfo[] = rows.map((r) => {
      // A lone INTEGER PRIMARY KEY is the rowid and can never be NULL, though not declared so.
      const rowid = primaryKey.length === 1 && primaryKey[0] === r.name && r.type.toUpperCase() === 'INTEGER';
      const info: ColumnInfo = {
        name: r.name,
        type: r.type,
        kind: kindOf(r.type),
        nullable: Number(r.not_null) === 0 && !rowid,
      };
      cols.set(r.name, { info, extra: { affinity: affinityOf(r.type) } });
      return info;
    });
    const uniqueKeys: string[][] = [];
    for (const index of indexesOf.all(name) as string[]) {
      const parts = partsOf.all(index) as { name: string | null; cid: number | bigint }[];
      if (parts.some((p) => p.name === null || Number(p.cid) < 0)) continue;
      const columns = parts.map((p) => p.name!);
      if (columns.every((c) => cols.get(c)?.info.nullable === false)) uniqueKeys.push(columns);
    }
    return { info: { schema: null, name, columns: infos, primaryKey, uniqueKeys }, columns: cols };
  });
}
