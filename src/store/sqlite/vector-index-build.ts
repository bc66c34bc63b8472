/**
 * Builds a collection's candidate index (kb_vbit_<n>, kb_vflt_<n>; see vector-schema.ts) from the
 * float vectors it already stores, for knowledge bases created before the index existed
 * (migration 9): nothing is embedded again.
 *
 * The floats are read from vec0's own shadow tables, a chunk of 1024 vectors at a time, because
 * reading them through the virtual table (`SELECT rowid, embedding FROM kb_vec_<n>`) is one point
 * lookup per vector, each re-opening a 2 MB blob (~0.3 ms: five minutes at 1M chunks). The layout
 * (sqlite-vec 0.1.x: `_rowids(rowid, id, chunk_id, chunk_offset)`, `_vector_chunks00(rowid,
 * vectors)` with `chunk_size x dimensions` float32 values per row) is checked first; anything
 * unexpected falls back to the slow, layout-free read, so a later sqlite-vec can only make the
 * migration slower, never wrong. Both ways must find every chunk of kb_chunks, or the build throws
 * and the migration rolls back.
 */
import type Database from 'better-sqlite3';
import {
  type CollectionTables,
  canQuantize,
  collectionTables,
  createCollectionTables,
} from './vector-schema.js';

export interface IndexBuildResult {
  collectionId: number;
  vectors: number;
  /** How the floats were read: vec0's shadow tables, or one point lookup per vector. */
  read: 'shadow' | 'virtual-table' | 'none';
}

export function buildCandidateIndex(
  db: Database.Database,
  collectionId: number,
  dimensions: number,
  options: { read?: 'virtual-table' } = {},
): IndexBuildResult {
  if (!canQuantize(dimensions)) return { collectionId, vectors: 0, read: 'none' };
  const t = collectionTables(collectionId);
  if (!tableExists(db, t.vectors)) return { collectionId, vectors: 0, read: 'none' };
  createCollectionTables(db, collectionId, dimensions);
  // A second build (a repaired collection) starts from scratch.
  db.exec(`DELETE FROM ${t.floats}`);
  db.exec(`DELETE FROM ${t.bits}`);
  const insert = db.prepare(`INSERT INTO ${t.floats} (id, embedding) VALUES (?, ?)`);
  // Tests take the slow way on purpose, to check both ways give the same index.
  const viaShadow = options.read !== 'virtual-table' && shadowLayoutUsable(db, t, dimensions);
  const read = viaShadow
    ? copyFromShadowTables(db, t, dimensions, insert)
    : copyThroughVirtualTable(db, t, collectionId, insert);
  // vec0 takes integer rowids only; CAST keeps a REAL from ever reaching it.
  db.exec(
    `INSERT INTO ${t.bits} (rowid, embedding) SELECT CAST(id AS INTEGER), vec_quantize_binary(vec_f32(embedding)) FROM ${t.floats} ORDER BY id`,
  );
  const expected = db
    .prepare('SELECT count(*) FROM kb_chunks WHERE collection_id = ?')
    .pluck()
    .get(collectionId) as number;
  const missing = db
    .prepare(
      `SELECT count(*) FROM kb_chunks c WHERE c.collection_id = ? AND NOT EXISTS (SELECT 1 FROM ${t.floats} f WHERE f.id = c.id)`,
    )
    .pluck()
    .get(collectionId) as number;
  if (missing > 0 || read !== expected) {
    throw new Error(
      `building the vector index of collection ${collectionId}: read ${read} vectors for ${expected} chunks (${missing} chunks without a vector)`,
    );
  }
  return { collectionId, vectors: read, read: viaShadow ? 'shadow' : 'virtual-table' };
}

function tableExists(db: Database.Database, name: string): boolean {
  return db.prepare('SELECT 1 FROM sqlite_master WHERE name = ?').get(name) !== undefined;
}

function shadowLayoutUsable(db: Database.Database, t: CollectionTables, dimensions: number): boolean {
  try {
    const cols = (table: string) =>
      (db.prepare('SELECT name FROM pragma_table_info(?)').pluck().all(table) as string[]).join(',');
    if (cols(`${t.vectors}_rowids`) !== 'rowid,id,chunk_id,chunk_offset') return false;
    if (cols(`${t.vectors}_vector_chunks00`) !== 'rowid,vectors') return false;
    // Every stored vector blob holds whole vectors of this collection's size.
    const bad = db
      .prepare(`SELECT count(*) FROM ${t.vectors}_vector_chunks00 WHERE length(vectors) % ? != 0`)
      .pluck()
      .get(dimensions * 4) as number;
    return bad === 0;
  } catch {
    return false;
  }
}

/** better-sqlite3 runs no statement while another iterates, so positions are read a page at a time. */
const PAGE = 8192;

function copyFromShadowTables(
  db: Database.Database,
  t: CollectionTables,
  dimensions: number,
  insert: Database.Statement,
): number {
  const bytes = dimensions * 4;
  const positions = db
    .prepare(
      `SELECT rowid, chunk_id, chunk_offset FROM ${t.vectors}_rowids
       WHERE rowid > ? AND chunk_id IS NOT NULL ORDER BY rowid LIMIT ?`,
    )
    .raw()
    .safeIntegers(true);
  const chunkBlob = db.prepare(`SELECT vectors FROM ${t.vectors}_vector_chunks00 WHERE rowid = ?`).pluck();
  // Rowid order is insertion order, so consecutive rows mostly share a chunk; a few are kept for
  // slots reused after deletes.
  const chunks = new Map<bigint, Buffer>();
  let after = -1n;
  let n = 0;
  for (;;) {
    const page = positions.all(after, PAGE) as Array<[bigint, bigint, bigint]>;
    for (const [rowid, chunkId, offset] of page) {
      let blob = chunks.get(chunkId);
      if (blob === undefined) {
        blob = chunkBlob.get(chunkId) as Buffer | undefined;
        if (blob === undefined) throw new Error(`vec0 row ${rowid} names a missing chunk ${chunkId}`);
        if (chunks.size >= 8) chunks.delete(chunks.keys().next().value!);
        chunks.set(chunkId, blob);
      }
      const start = Number(offset) * bytes;
      if (start + bytes > blob.length)
        throw new Error(`vec0 row ${rowid} points outside its chunk ${chunkId}`);
      insert.run(rowid, blob.subarray(start, start + bytes));
      n++;
    }
    if (page.length < PAGE) return n;
    after = page.at(-1)![0];
  }
}

function copyThroughVirtualTable(
  db: Database.Database,
  t: CollectionTables,
  collectionId: number,
  insert: Database.Statement,
): number {
  const ids = db
    .prepare('SELECT id FROM kb_chunks WHERE collection_id = ? ORDER BY id')
    .pluck()
    .safeIntegers(true)
    .all(collectionId) as bigint[];
  const vector = db.prepare(`SELECT embedding FROM ${t.vectors} WHERE rowid = ?`).pluck();
  let n = 0;
  for (const id of ids) {
    const embedding = vector.get(id) as Buffer | undefined;
    if (embedding === undefined) continue;
    insert.run(id, embedding);
    n++;
  }
  return n;
}
