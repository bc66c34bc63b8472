/**
 * One synced row becomes one document (API.md, "Knowledge bases"): id from the primary key,
 * content from the content columns as `column: value` lines, metadata with the source table,
 * the key, the filter value and any metadata columns. Pure.
 */

export type MetadataValue = string | number | boolean | null;

export interface RowDocumentSpec {
  sourceTable: string;
  contentColumns: string[];
  metadataColumns: string[];
  filterColumn: string;
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

function metadataValue(value: unknown): MetadataValue {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'bigint') {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(value) : value.toString();
  }
  return valueToText(value);
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
  for (const column of spec.metadataColumns) metadata[column] = metadataValue(row.values[column]);
  // The filter value is kept in the source's full-precision text form (never a rounded Date).
  metadata[spec.filterColumn] = row.filter;
  metadata.source_table = spec.sourceTable;
  metadata.row_key = documentIdFromKey(row.key);
  return { id: documentIdFromKey(row.key), content: lines.join('\n'), metadata };
}
