/**
 * Failed rows of the PostgreSQL control store (ControlStore.recordFailures and its kin), one row
 * per job and document id. Text PostgreSQL cannot store (NUL, unpaired surrogates) becomes U+FFFD
 * in the document id and reason, as in the vector store, and clear() maps ids the same way; the
 * key, which a retry reads the row again with, is `json` and kept exactly.
 */
import type { FailureInput, FailureRecord, Page } from '../port.js';
import { num, page } from './control-rows.js';
import { inTransaction } from './open.js';
import { pgText } from './vector-input.js';
import type { Queryable } from './vector-writes.js';

interface FailureRow {
  job_id: string;
  doc_id: string;
  key: string[];
  reason: string;
  first_failed_at: string;
  last_failed_at: string;
  attempts: number;
}

const COLUMNS = 'job_id, doc_id, key, reason, first_failed_at, last_failed_at, attempts';

const fromRow = (r: FailureRow): FailureRecord => ({
  jobId: r.job_id,
  docId: r.doc_id,
  key: r.key,
  reason: r.reason,
  firstFailedAt: num(r.first_failed_at),
  lastFailedAt: num(r.last_failed_at),
  attempts: num(r.attempts),
});

type Pool = Parameters<typeof inTransaction>[0];

export async function record(pool: Pool, jobId: string, failures: FailureInput[], now: number): Promise<void> {
  if (failures.length === 0) return;
  const u = upserts(failures);
  await inTransaction(pool, async (client) => {
    // A job deleted under its run records nothing; KEY SHARE keeps it from being deleted until
    // the failures are in (rather than failing on the foreign key).
    const { rows } = await client.query('SELECT 1 FROM jobs WHERE id = $1 FOR KEY SHARE', [jobId]);
    if (rows.length === 0) return;
    await client.query(
      `INSERT INTO job_failures (job_id, doc_id, key, reason, first_failed_at, last_failed_at, attempts)
       SELECT $1, f.doc_id, f.key::json, f.reason, $5, $5, f.attempts
       FROM unnest($2::text[], $3::text[], $4::text[], $6::int[]) AS f (doc_id, key, reason, attempts)
       ON CONFLICT (job_id, doc_id) DO UPDATE SET
         key = excluded.key, reason = excluded.reason, last_failed_at = excluded.last_failed_at,
         attempts = job_failures.attempts + excluded.attempts`,
      [jobId, u.ids, u.keys, u.reasons, now, u.attempts],
    );
  });
}

/**
 * One upsert row per document id: the same id twice in one call counts two attempts and keeps the
 * last key and reason, as the SQLite store's statement-per-failure loop does (one INSERT … ON
 * CONFLICT cannot touch a row twice).
 */
function upserts(failures: FailureInput[]): { ids: string[]; keys: string[]; reasons: string[]; attempts: number[] } {
  const byId = new Map<string, { key: string; reason: string; attempts: number }>();
  for (const f of failures) {
    const id = pgText(f.docId);
    const seen = byId.get(id);
    byId.set(id, { key: JSON.stringify(f.key), reason: pgText(f.reason), attempts: (seen?.attempts ?? 0) + 1 });
  }
  const rows = [...byId];
  return {
    ids: rows.map(([id]) => id),
    keys: rows.map(([, r]) => r.key),
    reasons: rows.map(([, r]) => r.reason),
    attempts: rows.map(([, r]) => r.attempts),
  };
}

export async function importAll(pool: Queryable, failures: FailureRecord[]): Promise<void> {
  if (failures.length === 0) return;
  // The last record of a (job, document) pair wins, as SQLite's INSERT OR REPLACE in order.
  const last = [...new Map(failures.map((f) => [`${f.jobId}\u0000${pgText(f.docId)}`, f])).values()];
  await pool.query(
    `INSERT INTO job_failures (job_id, doc_id, key, reason, first_failed_at, last_failed_at, attempts)
     SELECT f.job_id, f.doc_id, f.key::json, f.reason, f.first_failed_at, f.last_failed_at, f.attempts
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::int[])
       AS f (job_id, doc_id, key, reason, first_failed_at, last_failed_at, attempts)
     ON CONFLICT (job_id, doc_id) DO UPDATE SET
       key = excluded.key, reason = excluded.reason, first_failed_at = excluded.first_failed_at,
       last_failed_at = excluded.last_failed_at, attempts = excluded.attempts`,
    [
      last.map((f) => f.jobId),
      last.map((f) => pgText(f.docId)),
      last.map((f) => JSON.stringify(f.key)),
      last.map((f) => pgText(f.reason)),
      last.map((f) => f.firstFailedAt),
      last.map((f) => f.lastFailedAt),
      last.map((f) => f.attempts),
    ],
  );
}

export async function clear(pool: Queryable, jobId: string, docIds: string[]): Promise<number> {
  if (docIds.length === 0) return 0;
  // Called for every written batch: a job without failures (the usual case) answers from the
  // primary key without sending the ids.
  const { rows } = await pool.query('SELECT 1 FROM job_failures WHERE job_id = $1 LIMIT 1', [jobId]);
  if (rows.length === 0) return 0;
  const { rowCount } = await pool.query('DELETE FROM job_failures WHERE job_id = $1 AND doc_id = ANY ($2::text[])', [
    jobId,
    docIds.map(pgText),
  ]);
  return rowCount ?? 0;
}

export async function list(pool: Queryable, jobId: string, p: { limit: number; cursor: string | null }): Promise<Page<FailureRecord>> {
  const { rows } = await pool.query<FailureRow>(
    `SELECT ${COLUMNS} FROM job_failures WHERE job_id = $1 AND ($2::text IS NULL OR doc_id > $2) ORDER BY doc_id LIMIT $3`,
    [jobId, p.cursor, p.limit + 1],
  );
  return page(rows.map(fromRow), p.limit, (f) => f.docId);
}

export async function count(pool: Queryable, jobId: string): Promise<number> {
  const { rows } = await pool.query('SELECT count(*) AS n FROM job_failures WHERE job_id = $1', [jobId]);
  return num(rows[0].n);
}
