/**
 * Checks a job's `source_table` and columns against the introspected schema of the real table.
 * Every identifier that reaches SQL later comes from here, spelled as the database spells it.
 */
import type { Problem } from '../core/errors.js';
import type { DatabaseService } from '../databases/service.js';
import type { ColumnInfo, ColumnKind, TableInfo } from '../sources/port.js';
import type { DatabaseRecord } from '../store/port.js';

export interface ResolvedSource {
  database: DatabaseRecord;
  table: TableInfo;
  keyColumns: string[];
}

const ORDERABLE: readonly ColumnKind[] = ['timestamptz', 'timestamp', 'date', 'integer', 'numeric', 'text'];
export const TIME_KINDS: readonly ColumnKind[] = ['timestamptz', 'timestamp', 'date'];

/** Splits "db.table" / "db.schema.table"; null when malformed. */
export function splitSourceTable(sourceTable: string): { database: string; rest: string } | null {
  const dot = sourceTable.indexOf('.');
  if (dot <= 0 || dot === sourceTable.length - 1) return null;
  return { database: sourceTable.slice(0, dot), rest: sourceTable.slice(dot + 1) };
}

export async function resolveSourceTable(
  databases: DatabaseService,
  accountId: string,
  sourceTable: string,
  problems: Problem[],
): Promise<ResolvedSource | null> {
  const invalid = (detail: string) => {
    problems.push({ code: 'INVALID_TABLE', detail });
    return null;
  };
  const split = splitSourceTable(sourceTable);
  if (!split) return invalid(`source_table must be in the format database.table, got '${sourceTable}'`);
  const database = await databases.list(accountId).then((all) => all.find((d) => d.name === split.database));
  if (!database) return invalid(`database '${split.database}' is not registered (see POST /databases/create)`);

  let schema: string | null = null;
  let name = split.rest;
  if (database.engine === 'postgres') {
    const dot = split.rest.indexOf('.');
    if (dot > 0) {
      schema = split.rest.slice(0, dot);
      name = split.rest.slice(dot + 1);
    } else {
      schema = typeof database.parameters.schema === 'string' ? database.parameters.schema : 'public';
    }
  }
  try {
    return await databases.withConnector(database, async (connector) => {
      let table = await connector.describeTable({ schema, name });
      if (!table) {
        // Forgive case only when it is unambiguous: `orders` for a table created as "Orders".
        const matches = (await connector.listTables()).filter(
          (t) => t.name.toLowerCase() === name.toLowerCase() && (schema === null || t.schema === schema),
        );
        table = matches.length === 1 ? matches[0]! : null;
      }
      if (!table) return invalid(`table '${split.rest}' does not exist in database '${database.name}'`);
      const keyColumns = table.primaryKey.length > 0 ? table.primaryKey : (table.uniqueKeys[0] ?? []);
      if (keyColumns.length === 0) {
        return invalid(
          `table '${split.rest}' has no primary key or NOT NULL unique key, so its rows cannot be identified; add one`,
        );
      }
      // Rows are read in order on (filter, key...): a key column the source cannot order by
      // consistently (the adapter says why) would skip rows.
      const unorderable = table.columns.filter((c) => keyColumns.includes(c.name) && c.unorderable !== undefined);
      if (unorderable.length > 0) {
        const which = table.primaryKey.length > 0 ? 'primary key' : 'unique key';
        return invalid(
          unorderable
            .map((c) => `${which} column '${c.name}' of table '${split.rest}' has type ${c.type}, which cannot be synced: ${c.unorderable}`)
            .join('; '),
        );
      }
      return { database, table, keyColumns };
    });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return invalid(`database '${database.name}' is unreachable: ${reason}`);
  }
}

export function findColumn(table: TableInfo, name: string): ColumnInfo | undefined {
  return table.columns.find((c) => c.name === name);
}

/** "column 'Product' does not exist in orders_db.orders (did you mean 'product'?)" */
export function checkColumn(
  table: TableInfo,
  sourceTable: string,
  field: string,
  name: string,
  problems: Problem[],
): ColumnInfo | undefined {
  const column = findColumn(table, name);
  if (column) return column;
  const near = table.columns.find((c) => c.name.toLowerCase() === name.toLowerCase());
  problems.push({
    code: 'INVALID_REQUEST',
    detail: `${field} '${name}' does not exist in ${sourceTable}${near ? ` (did you mean '${near.name}'?)` : ''}`,
  });
  return undefined;
}

export function checkFilterColumn(
  table: TableInfo,
  sourceTable: string,
  name: string,
  problems: Problem[],
): ColumnInfo | undefined {
  const column = checkColumn(table, sourceTable, 'filter_column', name, problems);
  if (column?.unorderable !== undefined) {
    problems.push({
      code: 'INVALID_REQUEST',
      detail: `filter_column '${name}' has type ${column.type}, which cannot order rows: ${column.unorderable} (use a timestamp, date, number or text column)`,
    });
    return undefined;
  }
  if (column && !ORDERABLE.includes(column.kind)) {
    problems.push({
      code: 'INVALID_REQUEST',
      detail: `filter_column '${name}' has type ${column.type}, which cannot order rows (use a timestamp, date, number or text column)`,
    });
    return undefined;
  }
  return column;
}
