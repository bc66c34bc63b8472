/** Opens the embedded store file with the settings every part of kbsync relies on. */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

export function openSqliteFile(file: string): Database.Database {
  if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  // WAL lets readers (API requests) proceed while a sync run writes; NORMAL is durable across
  // process crashes (only an OS crash can lose the last commits), which is what a sync needs.
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  return db;
}
