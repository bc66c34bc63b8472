/**
 * The knowledge base's side of delete reconciliation on PostgreSQL: synced documents' key hashes,
 * grouped by prefix (count and sum of hash terms), the ids under a prefix, and documents synced
 * before key hashes existed. Statements over a collection's document table; the store wraps them
 * (collection lookup, NOT_FOUND when the table vanished).
 *
 * Prefix ranges [p, p || 'g') walk the partial index on key_hash: hex digits sort below 'g' in the
 * column's "C" collation. Sums are numeric in SQL and decimal strings here: past ~2 million
 * documents a sum of 32-bit terms is beyond 2^53.
 */
import type { KeyHashBucket } from '../vector-port.js';
import { checkHexDigits, pgText } from './vector-input.js';
import type { CollectionTables } from './vector-schema.js';
import { type Queryable, termOf } from './vector-writes.js';

export async function keyHashBuckets(
  db: Queryable,
  t: CollectionTables,
  digits: number,
  within: string[] | null,
): Promise<KeyHashBucket[]> {
  if (digits === 0 && within === null) {
    const { rows } = await db.query(
      `SELECT count(*) AS n, sum(key_term) AS s FROM ${t.documents} WHERE key_hash IS NOT NULL`,
    );
    const n = Number(rows[0].n);
    return n === 0 ? [] : [{ bucket: '', count: n, sum: String(rows[0].s) }];
  }
  checkHexDigits(digits);
  const { rows } =
    within === null
      ? await db.query(
          `SELECT substr(key_hash, 1, $1) AS b, count(*) AS n, sum(key_term) AS s FROM ${t.documents}
           WHERE key_hash IS NOT NULL GROUP BY 1 ORDER BY 1`,
          [digits],
        )
      : await db.query(
          `SELECT substr(d.key_hash, 1, $1) AS b, count(*) AS n, sum(d.key_term) AS s
           FROM unnest($2::text[]) AS p(prefix) JOIN ${t.documents} d
             ON d.key_hash >= p.prefix COLLATE "C" AND d.key_hash < (p.prefix || 'g') COLLATE "C"
           WHERE length(p.prefix) = $3
           GROUP BY 1 ORDER BY 1`,
          [digits, within, within[0]?.length ?? 0],
        );
  return rows.map((r) => ({ bucket: r.b as string, count: Number(r.n), sum: String(r.s) }));
}

/** Ids of synced documents under any of `buckets` (all of one length; [''] is every key). */
export async function documentIdsInKeyBuckets(
  db: Queryable,
  t: CollectionTables,
  buckets: string[],
): Promise<string[]> {
  if (buckets.length === 0) return [];
  if (!(buckets.length === 1 && buckets[0] === '')) checkHexDigits(buckets[0]!.length);
  const { rows } = await db.query(
    `SELECT d.doc_id FROM unnest($1::text[]) AS p(prefix) JOIN ${t.documents} d
       ON d.key_hash >= p.prefix COLLATE "C" AND d.key_hash < (p.prefix || 'g') COLLATE "C"
     WHERE length(p.prefix) = $2`,
    [buckets, buckets[0]!.length],
  );
  return rows.map((r) => r.doc_id as string);
}

/**
 * Documents of `sourceTable` without a key hash and with a row key, in id order after `after`. A
 * JSON null row_key counts as none, as json_extract's NULL does on SQLite. The partial index on
 * doc_id WHERE key_hash IS NULL keeps this from scanning a collection with nothing left to fill.
 */
export async function documentsWithoutKeyHash(
  db: Queryable,
  t: CollectionTables,
  sourceTable: string,
  page: { after: string | null; limit: number },
): Promise<string[]> {
  const { rows } = await db.query(
    `SELECT doc_id FROM ${t.documents}
     WHERE key_hash IS NULL AND doc_id > $1
       AND metadata -> 'source_table' = to_jsonb($2::text)
       AND coalesce(metadata -> 'row_key', 'null'::jsonb) <> 'null'::jsonb
     ORDER BY doc_id LIMIT $3`,
    [page.after ?? '', pgText(sourceTable), page.limit],
  );
  return rows.map((r) => r.doc_id as string);
}

/** Fills in key hashes (in id order, as every write locks documents). */
export async function setKeyHashes(
  db: Queryable,
  t: CollectionTables,
  hashes: Array<{ id: string; keyHash: string }>,
): Promise<void> {
  if (hashes.length === 0) return;
  const sorted = [...hashes].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  await db.query(
    `UPDATE ${t.documents} d SET key_hash = u.key_hash, key_term = u.key_term
     FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(id, key_hash, key_term) WHERE d.doc_id = u.id`,
    [sorted.map((h) => h.id), sorted.map((h) => h.keyHash), sorted.map((h) => termOf(h.keyHash))],
  );
}
