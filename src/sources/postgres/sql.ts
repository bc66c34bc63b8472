/** PostgreSQL spelling: identifier quoting, type families and the keyset dialect. */
import type { ColumnKind, TableRef } from '../port.js';
import { type KeysetDialect, md5KeyHash } from '../shared.js';

/** What binding a value needs beyond the port's ColumnInfo. */
export interface PgColumnExtra {
  /**
   * The column's type without its modifier (`format_type(oid, NULL)`), e.g. `timestamp without
   * time zone` for `timestamp(3)`: a watermark is cast back to it, and a modifier could round it.
   */
  castType: string;
  /** pg_type.typname of the column's (domain-resolved) base type, e.g. `bytea`. */
  base: string;
}

/** `"a""b"`: the only character to escape inside a quoted PostgreSQL identifier is `"`. */
export function quoteIdent(name: string): string {
  if (name.includes('\0')) throw new Error('identifier contains a NUL character');
  return `"${name.replaceAll('"', '""')}"`;
}

/** Family of a (domain-resolved) base type name from pg_type.typname. */
export function kindOf(typname: string): ColumnKind {
  switch (typname) {
    case 'timestamptz':
      return 'timestamptz';
    case 'timestamp':
      return 'timestamp';
    case 'date':
      return 'date';
    case 'int2':
    case 'int4':
    case 'int8':
      return 'integer';
    case 'numeric':
    case 'float4':
    case 'float8':
      return 'numeric';
    case 'text':
    case 'varchar':
    case 'bpchar':
    case 'name':
    case 'citext':
      return 'text';
    case 'bool':
      return 'boolean';
    default:
      return 'other';
  }
}

export const pgDialect: KeysetDialect<PgColumnExtra> = {
  quote: quoteIdent,
  table: (ref: TableRef) => `${quoteIdent(ref.schema ?? 'public')}.${quoteIdent(ref.name)}`,
  // ::text is the exact form (microseconds, big integers, numeric scale); the session runs in
  // UTC with DateStyle ISO so a timestamptz reads the same on every connection. A bytea's ::text
  // follows bytea_output ('\x00ff' or escaped octets; both cast back exactly through ::bytea),
  // so it is spelled in hex here: document ids do not change with a server setting.
  textOf: (expr, column) =>
    column.extra.base === 'bytea' ? `(E'\\\\x' || encode(${expr}, 'hex'))` : `${expr}::text`,
  toText: (v) => String(v),
  bind: (c, value, params) => {
    params.push(value);
    // castType comes from format_type() in the catalog, which quotes what needs quoting.
    return `$${params.length}::${c.extra.castType}`;
  },
  boundLeadingColumn: false,
  limit: (n, params) => {
    params.push(n);
    return `LIMIT $${params.length}`;
  },
  keyHash: md5KeyHash('md5', 'length'),
  // bit(32) -> bigint reads the 32 bits as an unsigned number.
  hex32: (hex8) => `('x' || ${hex8})::bit(32)::bigint`,
  param: (value, params) => {
    params.push(value);
    return `$${params.length}::text`;
  },
};
