/**
 * Builds a collection's HNSW index late (issue 11): maintaining the graph on every insert made a
 * backfill into PostgreSQL 30 times slower than into SQLite, where one build over loaded rows costs
 * a fraction of that. So a collection gets its index once it holds `minChunks` chunks (below that,
 * searches scan exactly; vector-search-plan.ts), and only when its writes pause: a write past the
 * threshold schedules a build `quietMs` after it, and the build waits as long as the collection's
 * last write (kb_collections.written_at, stamped by every process) is more recent than that, up
 * to `maxDeferMs` since it became due, after which it builds even under a load that never pauses.
 *
 * How: CREATE INDEX CONCURRENTLY on a connection of its own, outside any transaction. A plain
 * CREATE INDEX takes a SHARE lock that lets searches run but holds every write to the collection
 * for the whole build (minutes at a million chunks; each would hit the statement timeout).
 * CONCURRENTLY lets both go on, at the price of two table scans and a catalog entry that stays
 * INVALID if the build dies. One build per collection across processes: a session advisory lock
 * on the index's name, tried, never waited for (a process that finds it taken looks again later).
 * Under the lock an INVALID index can only be a dead build's (the catalog entry of a running build
 * is invalid too, hence the lock): it is dropped, since PostgreSQL still maintains it on every
 * insert, and built again. Dead builds are found when the store opens (`resume`) and at the next
 * write or search of the collection (the registry lookup reads the index's validity).
 *
 * The connection is discarded after a build: it ran without a statement timeout and with a larger
 * maintenance_work_mem, which must not leak into the pool. close() cancels a build in progress
 * (its INVALID index is rebuilt by the next process) rather than holding a shutdown for minutes.
 */
import type pg from 'pg';
import { type PostgresDatabase, sqlState } from './open.js';
import { type Collection, lookupCollectionById } from './vector-collections.js';
import type { Queryable } from './vector-writes.js';
import { indexKind, vectorIndexName, vectorIndexSql } from './vector-schema.js';

export interface IndexBuildOptions {
  /** A collection with at least this many chunks gets its HNSW index (0: made with the tables). */
  minChunks: number;
  /** How long a collection's writes must have paused before its index is built. */
  quietMs: number;
  /** The longest a due build waits for writes to pause. */
  maxDeferMs: number;
  /** maintenance_work_mem of a build: the graph is built in memory when it fits (pgvector). */
  maintenanceWorkMem: string;
}

export const DEFAULT_INDEX_QUIET_MS = 5_000;
export const DEFAULT_INDEX_MAX_DEFER_MS = 10 * 60_000;
/** 1.2 GB holds the graph of about 500k 512-d vectors; past it pgvector builds slower, on disk. */
export const DEFAULT_MAINTENANCE_WORK_MEM = '1200MB';
/** A build that found the lock taken (another process building) looks again after this, at least. */
const BUSY_RETRY_MS = 1_000;

interface Due {
  timer: NodeJS.Timeout | null;
  since: number;
  running: Promise<void> | null;
  /** The build's backend, for close() to cancel. */
  pid: number | null;
}

export class VectorIndexBuilder {
  readonly #db: PostgresDatabase;
  readonly #options: IndexBuildOptions;
  readonly #due = new Map<number, Due>();
  #closed = false;
  /** Builds finished by this process, and the last failure (tests and operators read them). */
  built = 0;
  lastError: Error | null = null;

  constructor(db: PostgresDatabase, options: IndexBuildOptions) {
    this.#db = db;
    this.#options = options;
  }

  /** Whether a collection of this size needs an index it does not have. */
  needs(c: Pick<Collection, 'dimensions' | 'chunks' | 'indexed'>): boolean {
    return !c.indexed && indexKind(c.dimensions) !== 'none' && c.chunks >= this.#options.minChunks;
  }

  /** After a write or a search of `c`: schedules its build if it needs one (once; the build re-checks). */
  consider(c: Pick<Collection, 'id' | 'dimensions' | 'chunks' | 'indexed'>): void {
    if (this.#closed || !this.needs(c) || this.#due.has(c.id)) return;
    const due: Due = { timer: null, since: Date.now(), running: null, pid: null };
    this.#due.set(c.id, due);
    this.#arm(c.id, due, this.#options.quietMs);
  }

  /**
   * At open: every collection past the threshold without a valid index, which includes those whose
   * build died (an INVALID index) or never ran (the process that loaded them stopped first).
   */
  async resume(): Promise<void> {
    if (!Number.isFinite(this.#options.minChunks)) return;
    const { rows } = await this.#db.pool.query(
      `SELECT c.id FROM kb_collections c
       WHERE c.chunk_count >= $1 AND NOT coalesce((SELECT x.indisvalid AND x.indisready FROM pg_index x
         WHERE x.indexrelid = to_regclass('kb_chunks_' || c.id || '_hnsw')), false)`,
      [this.#options.minChunks],
    );
    for (const row of rows) {
      const c = await lookupCollectionById(this.#db.pool, Number(row.id));
      if (c !== null) this.consider(c);
    }
  }

  /** Resolves when no build is due or running (tests; a timer armed meanwhile is waited for too). */
  async settled(): Promise<void> {
    while (this.#due.size > 0) {
      const pending = [...this.#due.values()].map((d) => d.running ?? new Promise((r) => setTimeout(r, 20)));
      await Promise.all(pending);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    const running: Promise<void>[] = [];
    for (const due of this.#due.values()) {
      if (due.timer !== null) clearTimeout(due.timer);
      if (due.running !== null) running.push(due.running);
      if (due.pid !== null) await this.#db.pool.query('SELECT pg_cancel_backend($1)', [due.pid]).catch(() => {});
    }
    await Promise.all(running);
    this.#due.clear();
  }

  #arm(id: number, due: Due, delayMs: number): void {
    due.timer = setTimeout(() => {
      due.timer = null;
      due.running = this.#attempt(id, due).then(
        (retryInMs) => {
          due.running = null;
          if (retryInMs === null || this.#closed) this.#due.delete(id);
          else this.#arm(id, due, retryInMs);
        },
        (err: unknown) => {
          // Dropped meanwhile (42P01), cancelled by close() or a drop, or a real failure (disk,
          // memory): the next write, search or start schedules it again.
          due.running = null;
          this.#due.delete(id);
          if (!this.#closed && sqlState(err) !== '42P01' && sqlState(err) !== '57014') {
            this.lastError = err instanceof Error ? err : new Error(String(err));
          }
        },
      );
    }, Math.max(0, delayMs));
    // Never what keeps a process alive: a build left undone is found again at the next start.
    due.timer.unref();
  }

  /** One try: null when done (built, or no longer needed), else when to look again. */
  async #attempt(id: number, due: Due): Promise<number | null> {
    const client = await this.#db.pool.connect();
    try {
      const { rows } = await client.query('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked, pg_backend_pid() AS pid', [
        buildLockName(this.#db.schema, id),
      ]);
      if (rows[0].locked !== true) return Math.max(BUSY_RETRY_MS, this.#options.quietMs);
      due.pid = Number(rows[0].pid);
      try {
        return await this.#buildLocked(client, id, due);
      } finally {
        due.pid = null;
        await client.query('SELECT pg_advisory_unlock_all()').catch(() => {});
      }
    } finally {
      client.release(true);
    }
  }

  async #buildLocked(client: pg.PoolClient, id: number, due: Due): Promise<number | null> {
    const c = await lookupCollectionById(client, id);
    if (c === null || !this.needs(c)) return null;
    const name = vectorIndexName(id);
    const state = await client.query(
      `SELECT x.indisvalid AND x.indisready AS valid, extract(epoch FROM clock_timestamp() - c.written_at) * 1000 AS quiet_ms
       FROM kb_collections c LEFT JOIN pg_index x ON x.indexrelid = to_regclass($2) WHERE c.id = $1`,
      [id, name],
    );
    const row = state.rows[0];
    if (row === undefined) return null;
    // An INVALID index under the lock is a dead build's, and every insert still pays for it.
    if (row.valid === false) await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${name}`);
    const quietFor = row.quiet_ms === null ? Number.POSITIVE_INFINITY : Number(row.quiet_ms);
    const waited = Date.now() - due.since;
    if (quietFor < this.#options.quietMs && waited < this.#options.maxDeferMs) {
      return Math.min(this.#options.quietMs - quietFor, this.#options.maxDeferMs - waited);
    }
    await client.query('SET statement_timeout = 0');
    await client.query(`SET maintenance_work_mem = '${this.#options.maintenanceWorkMem}'`);
    for (const sql of vectorIndexSql(id, c.dimensions, true, true) ?? []) await client.query(sql);
    this.built++;
    return null;
  }
}

/** maintenance_work_mem goes into SQL text: a number and a unit only. */
export function checkWorkMem(value: string): void {
  if (!/^\d{1,7}(kB|MB|GB)$/.test(value)) throw new RangeError(`maintenance_work_mem must look like 512MB, got ${value}`);
}

/** The advisory lock a build of collection `id` holds (one per index, schema included). */
function buildLockName(schema: string, id: number): string {
  return `kbsync hnsw ${schema}.${vectorIndexName(id)}`;
}

/**
 * Cancels a build of collection `id` in progress in any process (the holder of its advisory lock),
 * before a drop: DROP TABLE would wait for CREATE INDEX CONCURRENTLY, which in turn waits for the
 * dropping transaction to end, a deadlock only PostgreSQL's detector would break.
 */
export async function cancelIndexBuild(client: Queryable, schema: string, id: number): Promise<void> {
  await client.query(
    `SELECT pg_cancel_backend(l.pid) FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended($1, 0)`,
    [buildLockName(schema, id)],
  );
}
