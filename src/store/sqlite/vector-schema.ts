/**
 * Tables of the SQLite vector store. They live in the same file as the control store, so every
 * name starts with `kb_`. The shared tables are created by migration 2 (migrations.ts); the
 * per-collection virtual tables below are created and dropped with their knowledge base.
 *
 * - kb_collections: one row per knowledge base. Its integer id (AUTOINCREMENT, so never reused
 *   after a drop) names the per-collection virtual tables; the kbId string only ever travels as a
 *   bound parameter.
 * - kb_documents / kb_chunks: plain tables shared by all collections. A chunk's INTEGER PRIMARY KEY
 *   is the rowid of its vector and of its keyword-index row. `content` is the last column of
 *   kb_documents on purpose: a filter scan reads `metadata`, and SQLite reaches a column only by
 *   walking past the ones before it, overflow pages of long content included.
 * - kb_vec_<n>: a sqlite-vec vec0 table per collection, `float[dims] distance_metric=cosine`. Per
 *   collection rather than per dimension because each KB has its own dimensions anyway, a KNN scan
 *   then reads only that KB's vectors, and dropping a KB is a DROP TABLE instead of a large DELETE.
 * - kb_fts_<n>: an FTS5 table per collection, so BM25's document frequencies are those of the KB
 *   being searched, not of every KB in the file. Contentless (`content=''`) because the text already
 *   lives in kb_chunks; `contentless_delete=1` (SQLite >= 3.43) allows plain DELETE by rowid.
 *   Tokenizer: unicode61 (diacritics folded) behind the porter stemmer, so "boots", "booted" and
 *   "boot" are one term; codes like `SKU-4471-B` still split into `sku 4471 b` (porter leaves
 *   tokens under 3 characters alone; a plural-looking part is stemmed, `GR-12S` -> `gr 12`, the
 *   same way in the query). FTS5 keeps a table's tokenizer for its life, so collections created
 *   before the stemmer keep plain unicode61 until re-created; the keyword query works with both.
 * - kb_vbit_<n>: the binary-quantized candidate index (migration 9), a vec0 `bit[dims]` table of the
 *   sign bits of each vector (vec_quantize_binary), 32x smaller than the floats: a Hamming KNN over
 *   it finds candidates at a fraction of the cost of the exact cosine scan, and the candidates are
 *   rescored exactly (vector-search-plan.ts). Only for dimensions divisible by 8 (a bit vector is
 *   whole bytes); other collections search exactly.
 * - kb_vflt_<n>: a plain copy of each float vector (INTEGER PRIMARY KEY = chunk id), because the
 *   rescoring reads ~100-400 vectors by rowid and a vec0 point lookup is slow (it re-opens the
 *   chunk's 2 MB vector blob and walks its overflow pages: ~0.2-0.4 ms each, measured, against a
 *   few microseconds for a b-tree row). It doubles the bytes stored per vector; it also answers a
 *   selective metadata filter exactly, by rowid, without scanning every vector.
 *   Both are written and deleted with the chunk, in the same transaction as kb_vec_<n>.
 */
import type Database from 'better-sqlite3';
import * as sqliteVec from 'sqlite-vec';

/** sqlite-vec caps vec0 columns at 8192 dimensions. */
export const MAX_DIMENSIONS = 8192;


export interface CollectionTables {
  vectors: string;
  keywords: string;
  /** vec0 bit[dims]: sign bits of each vector, the candidate index. */
  bits: string;
  /** Plain table (id INTEGER PRIMARY KEY, embedding BLOB): float vectors read by rowid for rescoring. */
  floats: string;
}

/** Table names come from the registry's integer id only; anything else is a bug, so throw. */
export function collectionTables(collectionId: number): CollectionTables {
  if (!Number.isSafeInteger(collectionId) || collectionId <= 0) {
    throw new Error(`invalid collection id: ${String(collectionId)}`);
  }
  return {
    vectors: `kb_vec_${collectionId}`,
    keywords: `kb_fts_${collectionId}`,
    bits: `kb_vbit_${collectionId}`,
    floats: `kb_vflt_${collectionId}`,
  };
}

/** A bit vector is whole bytes: collections of other dimensions have no candidate index. */
export function canQuantize(dimensions: number): boolean {
  return dimensions % 8 === 0;
}

export function createCollectionTables(
  db: Database.Database,
  collectionId: number,
  dimensions: number,
): void {
  if (!Number.isSafeInteger(dimensions) || dimensions < 1 || dimensions > MAX_DIMENSIONS) {
    throw new RangeError(`dimensions must be an integer from 1 to ${MAX_DIMENSIONS}, got ${dimensions}`);
  }
  const t = collectionTables(collectionId);
  db.exec(
    `CREATE VIRTUAL TABLE IF NOT EXISTS ${t.vectors} USING vec0(embedding float[${dimensions}] distance_metric=cosine)`,
  );
  db.exec(
    `CREATE VIRTUAL TABLE IF NOT EXISTS ${t.keywords} USING fts5(text, content='', contentless_delete=1, tokenize="porter unicode61 remove_diacritics 2")`,
  );
  if (canQuantize(dimensions)) createIndexTables(db, t, dimensions);
}

function createIndexTables(db: Database.Database, t: CollectionTables, dimensions: number): void {
  db.exec(`CREATE VIRTUAL TABLE IF NOT EXISTS ${t.bits} USING vec0(embedding bit[${dimensions}])`);
  db.exec(`CREATE TABLE IF NOT EXISTS ${t.floats} (id INTEGER PRIMARY KEY, embedding BLOB NOT NULL)`);
}

export function dropCollectionTables(db: Database.Database, collectionId: number): void {
  const t = collectionTables(collectionId);
  db.exec(`DROP TABLE IF EXISTS ${t.vectors}`);
  db.exec(`DROP TABLE IF EXISTS ${t.keywords}`);
  db.exec(`DROP TABLE IF EXISTS ${t.bits}`);
  db.exec(`DROP TABLE IF EXISTS ${t.floats}`);
}

/** Loads sqlite-vec into a connection once: loading again is harmless but not free. */
export function loadSqliteVec(db: Database.Database): void {
  try {
    db.prepare('SELECT vec_version()').get();
  } catch {
    sqliteVec.load(db);
  }
}
