/**
 * Append-only numbered migrations of the embedded store. Never edit an applied one: add the next.
 * They run at start-up inside one IMMEDIATE transaction, which takes SQLite's write lock, so two
 * processes opening the same file never migrate at once.
 */
import type Database from 'better-sqlite3';

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    id: 1,
    name: 'control plane: databases, knowledge bases, jobs, runs',
    sql: `
      CREATE TABLE databases (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        name TEXT NOT NULL,
        body TEXT NOT NULL,
        UNIQUE (account_id, name)
      );
      CREATE TABLE knowledge_bases (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        name TEXT NOT NULL,
        body TEXT NOT NULL,
        UNIQUE (account_id, name)
      );
      CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        kb_name TEXT NOT NULL,
        database_name TEXT NOT NULL,
        next_run_ms INTEGER,
        body TEXT NOT NULL,
        UNIQUE (account_id, name)
      );
      CREATE INDEX jobs_due ON jobs (status, next_run_ms);
      CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        status TEXT NOT NULL,
        body TEXT NOT NULL
      );
      CREATE INDEX runs_by_job ON runs (job_id, id);
      CREATE INDEX runs_running ON runs (status) WHERE status = 'running';
    `,
  },
  {
    id: 2,
    name: 'knowledge bases: collections, documents, chunks (per-collection vec0/FTS5 tables are made per KB)',
    sql: `
      CREATE TABLE IF NOT EXISTS kb_collections (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kb_id TEXT NOT NULL UNIQUE,
        dimensions INTEGER NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS kb_documents (
        collection_id INTEGER NOT NULL,
        doc_id TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        metadata TEXT NOT NULL,
        chunk_count INTEGER NOT NULL,
        updated_at TEXT NOT NULL,
        content TEXT NOT NULL,
        UNIQUE (collection_id, doc_id)
      );
      CREATE TABLE IF NOT EXISTS kb_chunks (
        id INTEGER PRIMARY KEY,
        collection_id INTEGER NOT NULL,
        doc_id TEXT NOT NULL,
        chunk_index INTEGER NOT NULL,
        text TEXT NOT NULL,
        UNIQUE (collection_id, doc_id, chunk_index)
      );
    `,
  },
  {
    id: 3,
    name: 'leases: one scheduling process per store',
    sql: `
      CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at INTEGER NOT NULL
      );
    `,
  },
];

export function applyMigrations(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): number[] {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
  const applied: number[] = [];
  const run = db.transaction(() => {
    const done = new Set(
      (db.prepare('SELECT id FROM schema_migrations').all() as { id: number }[]).map((r) => r.id),
    );
    for (const m of migrations) {
      if (done.has(m.id)) continue;
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (id, name, applied_at) VALUES (?, ?, ?)').run(
        m.id,
        m.name,
        new Date().toISOString(),
      );
      applied.push(m.id);
    }
  });
  run.immediate();
  return applied;
}
