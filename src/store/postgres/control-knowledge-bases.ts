/**
 * Knowledge bases and their rebuilds in the PostgreSQL control store (row layout: store/kb-rows.ts).
 * Mirrors sqlite/control-knowledge-bases.ts.
 *
 * Concurrency (READ COMMITTED, any number of processes): a single UPDATE re-checks its WHERE on the
 * row's latest version after waiting for a concurrent writer, so its WHERE is its guard. A write
 * that must read first (the body is `json`, rewritten from JavaScript) locks the row with
 * SELECT … FOR UPDATE in its transaction. A claim picks its row FOR UPDATE SKIP LOCKED: claimers
 * never wait for one another, and a row another claimer holds is skipped, not taken twice.
 */
import type pg from 'pg';
import {
  ACTIVE_REBUILD_SQL,
  afterSwap,
  KB_COLUMNS,
  KB_INSERT_COLUMNS,
  type KnowledgeBaseRow,
  kbFromRow,
  kbInsertParams,
  REBUILD_COLUMNS,
  rebuildParams,
  withSettings,
} from '../kb-rows.js';
import type { KnowledgeBaseRecord, KnowledgeBaseSettings, RebuildRecord, RebuildStatus } from '../port.js';
import { inTransaction, sqlState } from './open.js';
import type { Queryable } from './vector-writes.js';

const UNIQUE_VIOLATION = '23505';
const placeholders = (n: number, from = 1) => Array.from({ length: n }, (_, i) => `$${i + from}`).join(', ');

export async function insert(db: Queryable, record: KnowledgeBaseRecord): Promise<'ok' | 'duplicate'> {
  const params = kbInsertParams(record);
  try {
    await db.query(
      `INSERT INTO knowledge_bases (${KB_INSERT_COLUMNS}) VALUES (${placeholders(params.length)})`,
      params,
    );
    return 'ok';
  } catch (err) {
    if (sqlState(err) === UNIQUE_VIOLATION) return 'duplicate';
    throw err;
  }
}

export async function get(
  db: Queryable,
  accountId: string,
  name: string,
): Promise<KnowledgeBaseRecord | null> {
  const { rows } = await db.query(
    `SELECT ${KB_COLUMNS} FROM knowledge_bases WHERE account_id = $1 AND name = $2`,
    [accountId, name],
  );
  return rows[0] ? kbFromRow(rows[0] as KnowledgeBaseRow) : null;
}

export async function getById(db: Queryable, id: string): Promise<KnowledgeBaseRecord | null> {
  const { rows } = await db.query(`SELECT ${KB_COLUMNS} FROM knowledge_bases WHERE id = $1`, [id]);
  return rows[0] ? kbFromRow(rows[0] as KnowledgeBaseRow) : null;
}

export async function list(db: Queryable, accountId: string): Promise<KnowledgeBaseRecord[]> {
  const { rows } = await db.query(
    `SELECT ${KB_COLUMNS} FROM knowledge_bases WHERE account_id = $1 ORDER BY name`,
    [accountId],
  );
  return (rows as KnowledgeBaseRow[]).map(kbFromRow);
}

export function updateSettings(
  pool: pg.Pool,
  accountId: string,
  name: string,
  settings: KnowledgeBaseSettings,
): Promise<boolean> {
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query(
      'SELECT id, body FROM knowledge_bases WHERE account_id = $1 AND name = $2 FOR UPDATE',
      [accountId, name],
    );
    const row = rows[0] as { id: string; body: Record<string, unknown> } | undefined;
    if (!row) return false;
    await client.query('UPDATE knowledge_bases SET body = $1 WHERE id = $2', [withSettings(row.body, settings), row.id]);
    return true;
  });
}

export function startRebuild(
  pool: pg.Pool,
  accountId: string,
  name: string,
  rebuild: RebuildRecord,
  description?: string | null,
): Promise<'ok' | 'not_found' | 'busy'> {
  return inTransaction(pool, async (client) => {
    // The row lock makes a second start wait, then read the first one's rebuild (running: busy).
    const { rows } = await client.query(
      'SELECT id, body, rebuild_status FROM knowledge_bases WHERE account_id = $1 AND name = $2 FOR UPDATE',
      [accountId, name],
    );
    const row = rows[0] as
      | { id: string; body: Record<string, unknown>; rebuild_status: RebuildStatus | null }
      | undefined;
    if (!row) return 'not_found';
    if (row.rebuild_status === 'running' || row.rebuild_status === 'swapping') return 'busy';
    // What the port promises is recorded whatever the caller filled in: running, unowned.
    const params = rebuildParams({ ...rebuild, status: 'running', owner: null, leaseExpiresAt: null });
    const body = JSON.stringify(description === undefined ? row.body : { ...row.body, description });
    await client.query(
      `UPDATE knowledge_bases SET body = $1, ${REBUILD_COLUMNS.map((c, i) => `${c} = $${i + 2}`).join(', ')}
       WHERE id = $${params.length + 2}`,
      [body, ...params, row.id],
    );
    return 'ok';
  });
}

export async function claimRebuild(
  db: Queryable,
  owner: string,
  now: number,
  leaseMs: number,
): Promise<KnowledgeBaseRecord | null> {
  const { rows } = await db.query(
    `UPDATE knowledge_bases SET rebuild_owner = $1, rebuild_lease_expires_at = $2
     WHERE id = (
       SELECT id FROM knowledge_bases
       WHERE ${ACTIVE_REBUILD_SQL} AND (rebuild_owner IS NULL OR rebuild_lease_expires_at IS NULL OR rebuild_lease_expires_at < $3)
       ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
     RETURNING ${KB_COLUMNS}`,
    [owner, now + leaseMs, now],
  );
  return rows[0] ? kbFromRow(rows[0] as KnowledgeBaseRow) : null;
}

export async function saveRebuildProgress(
  db: Queryable,
  kbId: string,
  owner: string,
  p: { documentsDone: number; documentsTotal: number; cursor: string | null; leaseExpiresAt: number },
): Promise<RebuildStatus | null> {
  // Only the owner's row is touched; a rebuild no longer active (cancelled meanwhile) keeps its
  // progress and lease, and its status tells the worker to stop.
  const keep = (column: string, param: string) =>
    `${column} = CASE WHEN ${ACTIVE_REBUILD_SQL} THEN ${param} ELSE ${column} END`;
  const { rows } = await db.query(
    `UPDATE knowledge_bases SET ${keep('rebuild_documents_done', '$3::bigint')}, ${keep('rebuild_documents_total', '$4::bigint')},
       ${keep('rebuild_cursor', '$5::text')}, ${keep('rebuild_lease_expires_at', '$6::bigint')}
     WHERE id = $1 AND rebuild_owner = $2 AND rebuild_status IS NOT NULL
     RETURNING rebuild_status`,
    [kbId, owner, p.documentsDone, p.documentsTotal, p.cursor, p.leaseExpiresAt],
  );
  return (rows[0]?.rebuild_status as RebuildStatus | undefined) ?? null;
}

export async function transitionRebuild(
  db: Queryable,
  kbId: string,
  from: readonly RebuildStatus[],
  to: RebuildStatus,
  options: { owner?: string; finishedAt?: number; error?: { code: string; message: string } | null },
): Promise<boolean> {
  if (from.length === 0) return false;
  const params: unknown[] = [kbId, [...from], to];
  const set = ['rebuild_status = $3'];
  if (options.finishedAt !== undefined) {
    params.push(options.finishedAt);
    set.push(`rebuild_finished_at = $${params.length}`);
  }
  if (options.error !== undefined) {
    params.push(options.error === null ? null : JSON.stringify(options.error));
    set.push(`rebuild_error = $${params.length}`);
  }
  let where = 'id = $1 AND rebuild_status = ANY($2::text[])';
  if (options.owner !== undefined) {
    params.push(options.owner);
    where += ` AND rebuild_owner = $${params.length}`;
  }
  const { rowCount } = await db.query(`UPDATE knowledge_bases SET ${set.join(', ')} WHERE ${where}`, params);
  return (rowCount ?? 0) > 0;
}

export function finishRebuild(
  pool: pg.Pool,
  kbId: string,
  owner: string,
  finishedAt: number,
): Promise<boolean> {
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query(
      "SELECT body, rebuild FROM knowledge_bases WHERE id = $1 AND rebuild_status = 'swapping' AND rebuild_owner = $2 FOR UPDATE",
      [kbId, owner],
    );
    const row = rows[0] as
      | { body: Record<string, unknown>; rebuild: Record<string, unknown> | null }
      | undefined;
    if (!row || row.rebuild === null) return false;
    const swapped = afterSwap(row.body, row.rebuild);
    await client.query(
      `UPDATE knowledge_bases SET body = $1, collection = $2, rebuild_status = 'succeeded',
         rebuild_finished_at = $3, rebuild_owner = NULL, rebuild_lease_expires_at = NULL
       WHERE id = $4`,
      [swapped.body, swapped.collection, finishedAt, kbId],
    );
    return true;
  });
}
