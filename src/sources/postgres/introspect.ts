/** Reads tables, columns and keys of every user schema from pg_catalog. */
import type { ColumnInfo, TableRef } from '../port.js';
import type { ResolvedColumn, ResolvedTable } from '../shared.js';
import { kindOf, type PgColumnExtra } from './sql.js';

export type PgQuery = <R>(sql: string, params: unknown[]) => Promise<R[]>;

// Relations a user can read rows from; partitions are reached through their parent.
const TABLES = `
SELECT c.oid::int8::text AS oid, n.nspname AS schema, c.relname AS name
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
  AND ($1::text IS NULL OR (n.nspname = $1 AND c.relname = $2))
ORDER BY n.nspname, c.relname`;

const COLUMNS = `
SELECT a.attrelid::int8::text AS oid, a.attname AS name,
       format_type(a.atttypid, a.atttypmod) AS type, -- char(n) must be cast as bpchar: format_type(bpchar, NULL) is 'character', i.e. char(1),
       -- which would cut a bound watermark to one character.
       CASE WHEN a.atttypid = 'bpchar'::regtype THEN 'bpchar' ELSE format_type(a.atttypid, NULL) END AS cast_type,
       bt.typname AS base, NOT a.attnotnull AS nullable
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum`;

// Unique indexes cover both UNIQUE constraints and bare CREATE UNIQUE INDEX; partial and
// expression indexes do not identify a row, INCLUDE columns are not part of the key.
const KEYS = `
SELECT i.indrelid::int8::text AS oid, i.indexrelid::int8::text AS index, i.indisprimary AS primary,
       a.attname AS column, a.attnotnull AS not_null
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = ANY($1::oid[]) AND i.indisunique AND i.indisvalid
  AND i.indpred IS NULL AND i.indexprs IS NULL AND k.ord <= i.indnkeyatts
ORDER BY i.indrelid, i.indisprimary DESC, i.indexrelid, k.ord`;

interface TableRow {
  oid: string;
  schema: string;
  name: string;
}
interface ColumnRow {
  oid: string;
  name: string;
  type: string;
  cast_type: string;
  base: string;
  nullable: boolean;
}
interface KeyRow {
  oid: string;
  index: string;
  primary: boolean;
  column: string;
  not_null: boolean;
}

/** Every user table, or only `only` (exact schema and name) when given. */
export async function introspect(
  query: PgQuery,
  only?: Required<TableRef>,
): Promise<ResolvedTable<PgColumnExtra>[]> {
  const tables = await query<TableRow>(TABLES, [only?.schema ?? null, only?.name ?? null]);
  if (tables.length === 0) return [];
  const oids = tables.map((t) => t.oid);
  const [columns, keys] = await Promise.all([query<ColumnRow>(COLUMNS, [oids]), query<KeyRow>(KEYS, [oids])]);

  return tables.map((t) => {
    const cols = new Map<string, ResolvedColumn<PgColumnExtra>>();
    const infos: ColumnInfo[] = [];
    for (const c of columns) {
      if (c.oid !== t.oid) continue;
      const info: ColumnInfo = { name: c.name, type: c.type, kind: kindOf(c.base), nullable: c.nullable };
      infos.push(info);
      cols.set(c.name, { info, extra: { castType: c.cast_type, base: c.base } });
    }
    const indexes = new Map<string, { primary: boolean; columns: string[]; allNotNull: boolean }>();
    for (const k of keys) {
      if (k.oid !== t.oid) continue;
      const idx = indexes.get(k.index) ?? { primary: k.primary, columns: [], allNotNull: true };
      idx.columns.push(k.column);
      idx.allNotNull &&= k.not_null;
      indexes.set(k.index, idx);
    }
    const all = [...indexes.values()];
    return {
      info: {
        schema: t.schema,
        name: t.name,
        columns: infos,
        primaryKey: all.find((i) => i.primary)?.columns ?? [],
        uniqueKeys: all.filter((i) => !i.primary && i.allNotNull).map((i) => i.columns),
      },
      columns: cols,
    };
  });
}
