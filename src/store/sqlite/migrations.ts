/**
 * Append-only numbered migrations of the embedded store. Never edit an applied one: add the next.
 * They run at start-up inside one IMMEDIATE transaction, which takes SQLite's write lock, so two
 * processes opening the same file never migrate at once.
 */
import type Database from 'better-sqlite3';
import { buildCandidateIndex } from './vector-index-build.js';
import { loadSqliteVec } from './vector-schema.js';

export interface Migration {
  id: number;
  name: string;
  sql: string;
  /** Work SQL alone cannot do (per-collection tables), run after `sql` in the same transaction. */
  up?: (db: Database.Database) => void;
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
  {
    id: 4,
    name: 'knowledge bases: key hash of synced documents, for delete reconciliation',
    sql: `
      ALTER TABLE kb_documents ADD COLUMN key_hash TEXT;
      ALTER TABLE kb_documents ADD COLUMN key_term INTEGER;
      CREATE INDEX kb_documents_by_key_hash ON kb_documents (collection_id, key_hash, key_term)
        WHERE key_hash IS NOT NULL;
      -- Finding documents synced before key hashes existed must not scan a large collection.
      CREATE INDEX kb_documents_without_key_hash ON kb_documents (collection_id) WHERE key_hash IS NULL;
    `,
  },
  {
    id: 5,
    name: 'job failures: rows a run could not sync, by document id',
    sql: `
      CREATE TABLE job_failures (
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        doc_id TEXT NOT NULL,
        key TEXT NOT NULL,
        reason TEXT NOT NULL,
        first_failed_at INTEGER NOT NULL,
        last_failed_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        PRIMARY KEY (job_id, doc_id)
      ) WITHOUT ROWID;
    `,
  },
  {
    id: 6,
    name: 'typed metadata: the next run of each job re-reads its rows (metadata-only updates, nothing re-embedded)',
    // Synced metadata used to be the source's text ("75.00", "2026-01-01 15:00:00+00"); it is typed
    // now (core/typed-values.ts). Without a watermark the next run re-reads every row, and a row
    // whose content is unchanged gets its typed metadata without embedding (kb/engine.ts
    // documentHash). `started` stays, so a backfill: false job does not skip rows. Such a job goes
    // back to the position its first run placed (runs.body watermarkEnd), so the rows it never
    // synced stay out: found as the first run with an end position, which started from none and
    // read nothing, with no later run started from none (the watermark was reset since, so every
    // row was read). A job without a watermark re-reads everything anyway.
    sql: `
      UPDATE jobs SET body = json_set(body, '$.watermark', json((
        SELECT json_extract(f.body, '$.watermarkEnd') FROM runs f
        WHERE json_extract(jobs.body, '$.backfill') = 0
          AND f.id = (SELECT r.id FROM runs r
                      WHERE r.job_id = jobs.id AND json_type(r.body, '$.watermarkEnd') = 'object'
                      ORDER BY r.id LIMIT 1)
          AND json_type(f.body, '$.watermarkStart') = 'null'
          AND json_extract(f.body, '$.rowsRead') = 0
          AND NOT EXISTS (SELECT 1 FROM runs l
                          WHERE l.job_id = jobs.id AND l.id > f.id
                            AND json_type(l.body, '$.watermarkStart') IS NOT 'object')
      )))
      WHERE json_type(body, '$.watermark') = 'object';
      -- Delete reconciliation (sync/run-sync.ts) compares a backfill: false job's rows from the
      -- position its first run started from: the position just restored, or none (every row is
      -- re-read when it is not known).
      UPDATE jobs SET body = json_set(body, '$.reconcileFrom', json_object(
          'filterColumn', json_extract(body, '$.filterColumn'),
          'position', json(json_extract(body, '$.watermark'))))
      WHERE json_extract(body, '$.backfill') = 0 AND json_extract(body, '$.started') = 1
        AND json_type(body, '$.reconcileFrom') IS NULL;
    `,
  },
  {
    id: 8,
    name: 'accounts and API keys (hashes only); the account `default` owns what existed before',
    // Objects carry their account id since migration 1; everything created without
    // authentication belongs to the account whose id and name are `default` (api/server.ts
    // DEFAULT_ACCOUNT). Keys are stored as SHA-256 hashes with a display prefix, never in clear.
    sql: `
      CREATE TABLE accounts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
      );
      CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        key_hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
      );
      CREATE INDEX api_keys_by_account ON api_keys (account_id, id);
      INSERT INTO accounts (id, name, created_at)
        VALUES ('default', 'default', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
    `,
  },
  {
    id: 9,
    name: 'vector index: binary-quantized candidates (kb_vbit_<n>) and float copies for rescoring (kb_vflt_<n>), built from the stored vectors',
    // chunk_count lets a search choose between the exact scan and the index without counting
    // (store/sqlite/vector-search-plan.ts); the store keeps it in step with every write.
    sql: `
      ALTER TABLE kb_collections ADD COLUMN chunk_count INTEGER NOT NULL DEFAULT 0;
      UPDATE kb_collections SET chunk_count = (SELECT count(*) FROM kb_chunks c WHERE c.collection_id = kb_collections.id);
    `,
    up(db) {
      // The control store may migrate before the vector store has loaded sqlite-vec.
      loadSqliteVec(db);
      const collections = db.prepare('SELECT id, dimensions FROM kb_collections ORDER BY id').all() as Array<{
        id: number;
        dimensions: number;
      }>;
      for (const c of collections) buildCandidateIndex(db, c.id, c.dimensions);
    },
  },
  {
    id: 10,
    name: "webhook deliveries: a job's events for its webhook_url, claimed by one process at a time",
    sql: `
      CREATE TABLE webhook_deliveries (
        id TEXT PRIMARY KEY,
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        event TEXT NOT NULL,
        url TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        last_error TEXT,
        created_at INTEGER NOT NULL,
        delivered_at INTEGER,
        next_attempt_at INTEGER NOT NULL,
        claimed_by TEXT,
        claimed_until INTEGER
      );
      CREATE INDEX webhook_deliveries_by_job ON webhook_deliveries (job_id, id);
      CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
    `,
  },
  {
    id: 11,
    name: 'knowledge bases: rebuilds, a shadow collection linked to its collection, and retired collections',
    // `shadow`: kb_id of the collection every write must also reach while a rebuild fills it.
    // `replaced_by`: kb_id of the shadow that replaced this collection (promoteShadow); non-null
    // means retired (writes refused, reads answered until it is dropped), and naming the successor
    // lets a repeated promote answer true for the same swap only. Both NULL for every existing
    // collection, so nothing about them changes.
    sql: `
      ALTER TABLE kb_collections ADD COLUMN shadow TEXT;
      ALTER TABLE kb_collections ADD COLUMN replaced_by TEXT;
    `,
  },
  {
    id: 12,
    name: "knowledge bases: the collection they read and write, and their latest rebuild (store/kb-rows.ts)",
    // Every existing knowledge base reads and writes the collection named by its id and never had a
    // rebuild. The collection is backfilled; a NULL one (written by a process of the previous
    // version during an upgrade) still reads as the id. Claims look only at active rebuilds, so
    // the partial index stays as small as the rebuilds going on.
    sql: `
      ALTER TABLE knowledge_bases ADD COLUMN collection TEXT;
      UPDATE knowledge_bases SET collection = id;
      ALTER TABLE knowledge_bases ADD COLUMN rebuild TEXT;
      ALTER TABLE knowledge_bases ADD COLUMN rebuild_status TEXT;
      ALTER TABLE knowledge_bases ADD COLUMN rebuild_owner TEXT;
      ALTER TABLE knowledge_bases ADD COLUMN rebuild_lease_expires_at INTEGER;
      ALTER TABLE knowledge_bases ADD COLUMN rebuild_documents_done INTEGER;
      ALTER TABLE knowledge_bases ADD COLUMN rebuild_documents_total INTEGER;
      ALTER TABLE knowledge_bases ADD COLUMN rebuild_cursor TEXT;
      ALTER TABLE knowledge_bases ADD COLUMN rebuild_finished_at INTEGER;
      ALTER TABLE knowledge_bases ADD COLUMN rebuild_error TEXT;
      CREATE INDEX knowledge_bases_rebuilding ON knowledge_bases (id) WHERE rebuild_status IN ('running', 'swapping');
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
      m.up?.(db);
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
