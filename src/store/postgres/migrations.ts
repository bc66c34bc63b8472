/**
 * Append-only numbered migrations of the PostgreSQL store, in its own schema. Never edit an
 * applied one: add the next. The control store appends its own to MIGRATIONS (one list, one
 * schema_migrations table, as on SQLite), and every process runs `applyMigrations` at start-up.
 *
 * All pending migrations run in one transaction that first takes a transaction-scoped advisory
 * lock, so N processes starting together migrate once: the first applies, the others wait on the
 * lock and then find everything applied (READ COMMITTED: the statement after the lock sees the
 * first one's commit). PostgreSQL DDL is transactional, so a failing migration leaves nothing
 * half-done. The lock key is one constant per database, not per schema: creating the pgvector
 * extension is database-wide, and two schemas migrating at once must not race on it.
 */
import type { PostgresDatabase } from './open.js';
import { sqlState } from './open.js';

/** What a migration's `up` may use: a query on the migrating transaction's connection. */
export interface MigrationClient {
  query(sql: string, params?: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
}

export interface PgMigration {
  id: number;
  name: string;
  /** Statements run with search_path = the kbsync schema, then public. */
  sql?: string;
  /** Work SQL alone cannot do, run after `sql` in the same transaction. */
  up?: (client: MigrationClient, schema: string) => Promise<void>;
}

/** 'kbsync' in ASCII: the advisory lock every kbsync migration in a database takes. */
export const MIGRATION_LOCK_KEY = 0x6b6273796e63n;

/**
 * The keyword text of a chunk or query: diacritics removed (NFD, then combining marks dropped) and
 * every run of punctuation, symbols and white space turned into one space. Written as explicit
 * code-point ranges because `[[:alnum:]]` depends on the database's LC_CTYPE: under the C locale it
 * knows no letter beyond ASCII and would erase every non-English word. So 'SKU-4471-B' indexes as
 * the words sku 4471 b, as SQLite's unicode61 tokenizer splits it (store/sqlite/vector-schema.ts).
 */
const KEYWORD_TEXT_SQL = String.raw`regexp_replace(
  regexp_replace(normalize(t, NFD), '[\u0300-\u036f]', '', 'g'),
  '[\u0001-\u002f\u003a-\u0040\u005b-\u0060\u007b-\u00bf\u00d7\u00f7\u2000-\u206f\u2190-\u23ff\u2500-\u27bf\u3000-\u303f\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65\U0001f000-\U0001faff]+',
  ' ', 'g')`;

export const MIGRATIONS: readonly PgMigration[] = [
  {
    id: 1,
    name: 'pgvector extension (database-wide; needs a superuser or an existing extension)',
    async up(client) {
      const encoding = await client.query(
        'SELECT pg_encoding_to_char(encoding) AS e FROM pg_database WHERE datname = current_database()',
      );
      if (encoding.rows[0]?.e !== 'UTF8') {
        throw new Error(
          `the kbsync store needs a UTF8 database (this one is ${String(encoding.rows[0]?.e)}): create it with ENCODING 'UTF8'`,
        );
      }
      const installed = await client.query("SELECT 1 FROM pg_extension WHERE extname = 'vector'");
      if (installed.rows.length > 0) return;
      try {
        // Into public, where every kbsync connection's search_path finds it (open.ts).
        await client.query('CREATE EXTENSION vector SCHEMA public');
      } catch (err) {
        const state = sqlState(err);
        const why =
          state === '42501'
            ? 'permission denied'
            : state === '0A000' || state === '58P01'
              ? 'not installed on the server'
              : String((err as Error).message);
        throw new Error(
          `the pgvector extension is missing (${why}): install pgvector 0.8 or later on the server and run CREATE EXTENSION vector SCHEMA public as a superuser, then start kbsync again`,
          { cause: err },
        );
      }
    },
  },
  {
    id: 2,
    name: 'vector store: collection registry, keyword search configuration and functions',
    // kb_collections keeps a running chunk and token count per knowledge base: the vector plan and
    // BM25 (average chunk length) read them instead of counting. Per-collection tables are made
    // with their knowledge base (vector-schema.ts).
    //
    // kbsync_english: English snowball stemming with no stop words. Stop words are dropped from
    // the query only (vector-keyword-query.ts), as on SQLite: the index keeps every word so a
    // quoted phrase or a code such as SKU-4471-A ("a" is an English stop word) still matches exactly.
    sql: `
      CREATE TABLE kb_collections (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        kb_id text NOT NULL UNIQUE,
        dimensions integer NOT NULL,
        chunk_count bigint NOT NULL DEFAULT 0,
        token_count bigint NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TEXT SEARCH DICTIONARY kbsync_english_stem (TEMPLATE = pg_catalog.snowball, LANGUAGE = english);
      CREATE TEXT SEARCH CONFIGURATION kbsync_english (COPY = pg_catalog.english);
      ALTER TEXT SEARCH CONFIGURATION kbsync_english
        ALTER MAPPING FOR asciiword, word, numword, asciihword, hword, numhword, hword_asciipart, hword_part, hword_numpart
        WITH kbsync_english_stem;
      CREATE FUNCTION kbsync_keyword_text(t text) RETURNS text
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$ SELECT ${KEYWORD_TEXT_SQL} $$;
      -- Words in a chunk (BM25's document length); the expression is repeated rather than calling
      -- kbsync_keyword_text, whose name would resolve through the caller's search_path.
      CREATE FUNCTION kbsync_keyword_tokens(t text) RETURNS integer
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$ SELECT CASE WHEN btrim(k) = '' THEN 0 ELSE cardinality(regexp_split_to_array(btrim(k), ' ')) END
              FROM (SELECT ${KEYWORD_TEXT_SQL} AS k) s $$;
      CREATE AGGREGATE kbsync_tsquery_or(tsquery) (SFUNC = pg_catalog.tsquery_or, STYPE = tsquery);
    `,
  },
  {
    id: 3,
    name: 'control plane: databases, knowledge bases, jobs, runs, failed rows, leases, accounts and API keys',
    // The SQLite store's tables (its migrations 1, 3, 5 and 8) in one step. Each record is a row
    // with the columns queries filter and sort on, plus its whole body as `json` — not `jsonb`,
    // which refuses NUL and unpaired surrogates: a watermark holds a source's key text verbatim and
    // must come back byte for byte (nothing queries inside a body). Identifiers and names are
    // COLLATE "C", so ids (time-ordered), names and cursors sort by bytes, as on SQLite. Times are
    // epoch ms (bigint).
    sql: `
      CREATE TABLE databases (
        id text COLLATE "C" PRIMARY KEY,
        account_id text COLLATE "C" NOT NULL,
        name text COLLATE "C" NOT NULL,
        body json NOT NULL,
        UNIQUE (account_id, name)
      );
      CREATE TABLE knowledge_bases (
        id text COLLATE "C" PRIMARY KEY,
        account_id text COLLATE "C" NOT NULL,
        name text COLLATE "C" NOT NULL,
        body json NOT NULL,
        UNIQUE (account_id, name)
      );
      CREATE TABLE jobs (
        id text COLLATE "C" PRIMARY KEY,
        account_id text COLLATE "C" NOT NULL,
        name text COLLATE "C" NOT NULL,
        status text NOT NULL,
        kb_name text COLLATE "C" NOT NULL,
        database_name text COLLATE "C" NOT NULL,
        next_run_ms bigint,
        body json NOT NULL,
        UNIQUE (account_id, name)
      );
      CREATE INDEX jobs_by_account ON jobs (account_id, id);
      CREATE INDEX jobs_by_status ON jobs (status, id);
      -- Due jobs and the next wake-up read only scheduled jobs, in next-run order.
      CREATE INDEX jobs_due ON jobs (next_run_ms, id) WHERE status = 'scheduled';
      CREATE INDEX jobs_by_kb ON jobs (account_id, kb_name);
      CREATE INDEX jobs_by_database ON jobs (account_id, database_name);
      CREATE TABLE runs (
        id text COLLATE "C" PRIMARY KEY,
        job_id text COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        status text NOT NULL,
        body json NOT NULL
      );
      CREATE INDEX runs_by_job ON runs (job_id, id);
      CREATE INDEX runs_running ON runs (id) WHERE status = 'running';
      CREATE TABLE job_failures (
        job_id text COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        doc_id text COLLATE "C" NOT NULL,
        key json NOT NULL,
        reason text NOT NULL,
        first_failed_at bigint NOT NULL,
        last_failed_at bigint NOT NULL,
        attempts integer NOT NULL,
        PRIMARY KEY (job_id, doc_id)
      );
      CREATE TABLE leases (
        name text COLLATE "C" PRIMARY KEY,
        owner text NOT NULL,
        expires_at bigint NOT NULL
      );
      CREATE TABLE accounts (
        id text COLLATE "C" PRIMARY KEY,
        name text COLLATE "C" NOT NULL UNIQUE,
        created_at bigint NOT NULL
      );
      CREATE TABLE api_keys (
        id text COLLATE "C" PRIMARY KEY,
        account_id text COLLATE "C" NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        key_hash text NOT NULL UNIQUE,
        prefix text NOT NULL,
        created_at bigint NOT NULL,
        revoked_at bigint
      );
      CREATE INDEX api_keys_by_account ON api_keys (account_id, id);
      -- Everything created without authentication belongs to the account 'default'.
      INSERT INTO accounts (id, name, created_at)
        VALUES ('default', 'default', (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
    `,
  },
  {
    id: 4,
    name: "webhook deliveries: a job's events for its webhook_url, claimed by one process at a time",
    // As the SQLite store's migration 10; the payload is kept as text, byte for byte as signed.
    sql: `
      CREATE TABLE webhook_deliveries (
        id text COLLATE "C" PRIMARY KEY,
        job_id text COLLATE "C" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        event text NOT NULL,
        url text NOT NULL,
        payload text NOT NULL,
        status text NOT NULL,
        attempts integer NOT NULL,
        last_error text,
        created_at bigint NOT NULL,
        delivered_at bigint,
        next_attempt_at bigint NOT NULL,
        claimed_by text,
        claimed_until bigint
      );
      CREATE INDEX webhook_deliveries_by_job ON webhook_deliveries (job_id, id);
      CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
    `,
  },
  {
    id: 5,
    name: 'vector store: rebuild shadows, retired collections, last write time (deferred HNSW builds)',
    // shadow: the collection a rebuild fills (vector-shadow.ts), one per collection and the shadow
    // of one collection at most (UNIQUE); deleting the shadow's row unlinks it. retired_for: the
    // shadow that replaced this collection (promoteShadow); non-null means retired. written_at:
    // when a write last changed the collection's chunks, so an HNSW build waits for a bulk load to
    // pause (vector-index.ts). Existing collections keep the HNSW index they were created with.
    sql: `
      ALTER TABLE kb_collections
        ADD COLUMN shadow text UNIQUE REFERENCES kb_collections (kb_id) ON DELETE SET NULL,
        ADD COLUMN retired_for text,
        ADD COLUMN written_at timestamptz;
    `,
  },
  {
    id: 6,
    name: 'knowledge bases: the collection they read and write, and their latest rebuild (store/kb-rows.ts)',
    // As the SQLite store's migration 12: the collection backfilled with the id (a NULL one, written
    // by a process of the previous version during a rolling upgrade, still reads as the id); a
    // partial index over active rebuilds for the claim.
    sql: `
      ALTER TABLE knowledge_bases
        ADD COLUMN collection text COLLATE "C",
        ADD COLUMN rebuild json,
        ADD COLUMN rebuild_status text,
        ADD COLUMN rebuild_owner text,
        ADD COLUMN rebuild_lease_expires_at bigint,
        ADD COLUMN rebuild_documents_done bigint,
        ADD COLUMN rebuild_documents_total bigint,
        ADD COLUMN rebuild_cursor text COLLATE "C",
        ADD COLUMN rebuild_finished_at bigint,
        ADD COLUMN rebuild_error json;
      UPDATE knowledge_bases SET collection = id;
      CREATE INDEX knowledge_bases_rebuilding ON knowledge_bases (id) WHERE rebuild_status IN ('running', 'swapping');
    `,
  },
  {
    id: 7,
    name: 'vector store: a cheaper word count for BM25 (kbsync_keyword_tokens), same results',
    // Every chunk insert computes the generated `tokens` column. The SQL version (a subquery and a
    // regexp_split_to_array) cannot be inlined, so the server set up a SQL-function executor per
    // row: a third of a backfill batch's insert time (issue 11). PL/pgSQL evaluates the same
    // keyword text once per call and counts its single-space separators, which is the number of
    // elements regexp_split_to_array(k, ' ') answers for any k, so every stored count stays right
    // and no table is rewritten. Built-in functions only, as before (no search_path dependence).
    sql: `
      CREATE OR REPLACE FUNCTION kbsync_keyword_tokens(t text) RETURNS integer
        LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
        AS $$
        DECLARE k text := btrim(${KEYWORD_TEXT_SQL});
        BEGIN
          RETURN CASE WHEN k = '' THEN 0 ELSE length(k) - length(replace(k, ' ', '')) + 1 END;
        END $$;
    `,
  },
];

/**
 * Applies the pending migrations of `migrations` in the database's schema (created if missing);
 * answers the ids it applied (none when another process got there first).
 */
export async function applyMigrations(
  db: PostgresDatabase,
  migrations: readonly PgMigration[] = MIGRATIONS,
): Promise<number[]> {
  const ids = migrations.map((m) => m.id);
  if (new Set(ids).size !== ids.length || ids.some((id, i) => i > 0 && id <= ids[i - 1]!)) {
    throw new Error(`migration ids must be unique and increasing: ${ids.join(', ')}`);
  }
  const client = await db.pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    // No statement timeout here (the pool's bounds every other query): a migration may rebuild an
    // index for minutes, and the processes starting meanwhile must wait for it, not fail.
    await client.query('SET LOCAL statement_timeout = 0');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
    // Checked before creating: CREATE SCHEMA IF NOT EXISTS still needs CREATE on the database.
    const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [db.schema]);
    if (exists.rows.length === 0) await client.query(`CREATE SCHEMA ${db.schema}`);
    await client.query(`SET LOCAL search_path TO ${db.schema}, public`);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set(
      (await client.query('SELECT id FROM schema_migrations')).rows.map((r) => Number(r.id)),
    );
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.id)) continue;
      if (m.sql !== undefined) await client.query(m.sql);
      await m.up?.(client, db.schema);
      await client.query('INSERT INTO schema_migrations (id, name) VALUES ($1, $2)', [m.id, m.name]);
      applied.push(m.id);
    }
    await client.query('COMMIT');
    return applied;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    throw err;
  } finally {
    client.release(broken);
  }
}
