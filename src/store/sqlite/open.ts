/** Opens the embedded store file with the settings every part of kbsync relies on. */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

/**
 * Reads of the first 2 GiB of the file (SQLite's cap in this build; it clamps larger values) come
 * from a memory map instead of a read() into SQLite's small page cache: a vector search reads the
 * same few MB of candidate index every time (6.4 MB at 100k chunks), and the copies were ~10% of
 * its time (measured on 100k real embeddings, bench/vector-index.ts). The file never shrinks (no
 * VACUUM), so a mapped page is never cut off under a reader.
 */
export const MMAP_BYTES = 2_147_418_112;

export function openSqliteFile(file: string): Database.Database {
  if (file !== ':memory:') restrictFiles(file);
  const db = new Database(file);
  // WAL lets readers (API requests) proceed while a sync run writes; NORMAL is durable across
  // process crashes (only an OS crash can lose the last commits), which is what a sync needs.
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  db.pragma(`mmap_size = ${MMAP_BYTES}`);
  return db;
}

/**
 * The store holds the job definitions and encrypted secrets: only its owner may read it. The data
 * dir is created 0700, the file 0600 before SQLite opens it (SQLite gives its -wal and -shm files
 * the database file's mode), and a store created by an older version (0644) is tightened.
 */
function restrictFiles(file: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.closeSync(fs.openSync(file, 'a', 0o600));
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    try {
      fs.chmodSync(f, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
