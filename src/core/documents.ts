/**
 * One synced row becomes one document (API.md, "Knowledge bases"): id from the primary key,
 * content from the content columns as `column: value` lines, metadata with the source table,
 * the key, the filter value and any metadata columns, typed by their column kinds
 * (core/typed-values.ts). Pure.
 */
import type { ColumnKind } from '../sources/port.js';
import { plainValue, typedValue } from './typed-values.js';

export type MetadataValue = string | number | boolean | null;

export interface RowDocumentSpec {
  sourceTable: string;
  contentColumns: string[];
  metadataColumns: string[];
  filterColumn: string;
  /**
   * Kinds of the metadata columns and the filter column (from the introspected table), which
   * type their metadata: numbers, booleans, UTC ISO timestamps. A column without a kind here
   * keeps the driver's own type, and the filter value its source text.
   */
  columnKinds?: Readonly<Record<string, ColumnKind>>;
}

export interface RowDocument {
  id: string;
  content: string;
  metadata: Record<string, MetadataValue>;
}

/**
 * Document id from key values in their text form. A single key is its value ("17"); a composite
 * key is a JSON array ('["17","3"]') so no separator inside a value can make two keys collide.
 */
export function documentIdFromKey(key: readonly string[]): string {
  return key.length === 1 ? key[0]! : JSON.stringify(key);
}

/** A readable, stable text form of a driver value. */
export function valueToText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? '' : value.toISOString();
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `<${value.length} bytes>`;
  if (typeof value === 'object') return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  return String(value);
}

export function buildRowDocument(
  spec: RowDocumentSpec,
  row: { key: readonly string[]; filter: string; values: Record<string, unknown> },
): RowDocument {
  const lines: string[] = [];
  for (const column of spec.contentColumns) {
    const text = valueToText(row.values[column]).trim();
    if (text !== '') lines.push(`${column}: ${text}`);
  }
  const metadata: Record<string, MetadataValue> = {};
  const kinds = spec.columnKinds;
  const kindOf = (column: string): ColumnKind | undefined =>
    kinds !== undefined && Object.hasOwn(kinds, column) ? kinds[column] : undefined;
  for (const column of spec.metadataColumns) {
    const kind = kindOf(column);
    const value = row.values[column];
    metadata[column] = kind === undefined ? plainValue(value) : typedValue(kind, value);
  }
  // The filter value is typed from the source's full-precision text form (never a rounded Date).
  const filterKind = kindOf(spec.filterColumn);
  metadata[spec.filterColumn] = filterKind === undefined ? row.filter : typedValue(filterKind, row.filter);
  metadata.source_table = spec.sourceTable;
  metadata.row_key = documentIdFromKey(row.key);
  return { id: documentIdFromKey(row.key), content: lines.join('\n'), metadata };
}
