/**
 * Knowledge bases and their rebuilds in the SQLite control store (row layout: store/kb-rows.ts).
 * Mirrors postgres/control-knowledge-bases.ts.
 *
 * Each write is one statement, or one IMMEDIATE transaction when it must read before it writes:
 * IMMEDIATE takes the file's write lock first, so another process's write waits and then sees
 * this one. A single UPDATE takes that lock before it reads anything, so its WHERE is its guard.
 */
import type Database from 'better-sqlite3';
import type { KnowledgeBaseRecord, KnowledgeBaseSettings, RebuildRecord, RebuildStatus } from '../port.js';
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

const isUniqueViolation = (err: unknown): boolean =>
  err instanceof Error && (err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE';

/** A rebuild a claim may take: active, and no live lease (none, or one that expired before `now`). */
const CLAIMABLE_SQL = `${ACTIVE_REBUILD_SQL} AND (rebuild_owner IS NULL OR rebuild_lease_expires_at IS NULL OR rebuild_lease_expires_at < @now)`;

export class SqliteKnowledgeBases {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(private readonly db: Database.Database) {}

  insert(record: KnowledgeBaseRecord): 'ok' | 'duplicate' {
    const params = kbInsertParams(record);
    try {
      this.prepared(
        `INSERT INTO knowledge_bases (${KB_INSERT_COLUMNS}) VALUES (${params.map(() => '?').join(', ')})`,
      ).run(...params);
      return 'ok';
    } catch (err) {
      if (isUniqueViolation(err)) return 'duplicate';
      throw err;
    }
  }

  get(accountId: string, name: string): KnowledgeBaseRecord | null {
    const row = this.prepared(
      `SELECT ${KB_COLUMNS} FROM knowledge_bases WHERE account_id = ? AND name = ?`,
    ).get(accountId, name);
    return row ? kbFromRow(row as KnowledgeBaseRow) : null;
  }

  getById(id: string): KnowledgeBaseRecord | null {
    const row = this.prepared(`SELECT ${KB_COLUMNS} FROM knowledge_bases WHERE id = ?`).get(id);
    return row ? kbFromRow(row as KnowledgeBaseRow) : null;
  }

  list(accountId: string): KnowledgeBaseRecord[] {
    const rows = this.prepared(
      `SELECT ${KB_COLUMNS} FROM knowledge_bases WHERE account_id = ? ORDER BY name`,
    ).all(accountId);
    return (rows as KnowledgeBaseRow[]).map(kbFromRow);
  }

  updateSettings(accountId: string, name: string, settings: KnowledgeBaseSettings): boolean {
    // The body is rewritten from JavaScript (not json_set) so it stays what JSON.stringify makes,
    // as on PostgreSQL; the read and the write share the transaction's lock.
    const tx = this.db.transaction((): boolean => {
      const row = this.prepared('SELECT id, body FROM knowledge_bases WHERE account_id = ? AND name = ?').get(
        accountId,
        name,
      ) as { id: string; body: string } | undefined;
      if (!row) return false;
      this.prepared('UPDATE knowledge_bases SET body = ? WHERE id = ?').run(withSettings(row.body, settings), row.id);
      return true;
    });
    return tx.immediate();
  }

  startRebuild(
    accountId: string,
    name: string,
    rebuild: RebuildRecord,
    description?: string | null,
  ): 'ok' | 'not_found' | 'busy' {
    const tx = this.db.transaction((): 'ok' | 'not_found' | 'busy' => {
      const row = this.prepared(
        'SELECT id, body, rebuild_status FROM knowledge_bases WHERE account_id = ? AND name = ?',
      ).get(accountId, name) as
        | { id: string; body: string; rebuild_status: RebuildStatus | null }
        | undefined;
      if (!row) return 'not_found';
      if (row.rebuild_status === 'running' || row.rebuild_status === 'swapping') return 'busy';
      // What the port promises is recorded whatever the caller filled in: running, unowned.
      const params = rebuildParams({ ...rebuild, status: 'running', owner: null, leaseExpiresAt: null });
      const body =
        description === undefined ? row.body : JSON.stringify({ ...JSON.parse(row.body), description });
      this.prepared(
        `UPDATE knowledge_bases SET body = ?, ${REBUILD_COLUMNS.map((c) => `${c} = ?`).join(', ')} WHERE id = ?`,
      ).run(body, ...params, row.id);
      return 'ok';
    });
    return tx.immediate();
  }

  claimRebuild(owner: string, now: number, leaseMs: number): KnowledgeBaseRecord | null {
    // Every process polls: when nothing is claimable (the usual case), no write lock is taken.
    if (
      this.prepared(`SELECT 1 FROM knowledge_bases WHERE ${CLAIMABLE_SQL} LIMIT 1`).get({ now }) === undefined
    )
      return null;
    // One statement: the write lock is held from its first read, so of many processes claiming
    // one rebuild, the first takes it and the others find its lease live.
    const row = this.prepared(
      `UPDATE knowledge_bases SET rebuild_owner = @owner, rebuild_lease_expires_at = @until
       WHERE id = (SELECT id FROM knowledge_bases WHERE ${CLAIMABLE_SQL} ORDER BY id LIMIT 1)
       RETURNING ${KB_COLUMNS}`,
    ).get({ owner, now, until: now + leaseMs });
    return row ? kbFromRow(row as KnowledgeBaseRow) : null;
  }

  saveRebuildProgress(
    kbId: string,
    owner: string,
    p: { documentsDone: number; documentsTotal: number; cursor: string | null; leaseExpiresAt: number },
  ): RebuildStatus | null {
    // Only the owner's row is touched; a rebuild no longer active (cancelled meanwhile) keeps its
    // progress and lease, and its status tells the worker to stop.
    const keep = (column: string, param: string) =>
      `${column} = CASE WHEN ${ACTIVE_REBUILD_SQL} THEN @${param} ELSE ${column} END`;
    const row = this.prepared(
      `UPDATE knowledge_bases SET ${keep('rebuild_documents_done', 'done')}, ${keep('rebuild_documents_total', 'total')},
         ${keep('rebuild_cursor', 'cursor')}, ${keep('rebuild_lease_expires_at', 'until')}
       WHERE id = @id AND rebuild_owner = @owner AND rebuild_status IS NOT NULL
       RETURNING rebuild_status`,
    ).get({
      id: kbId,
      owner,
      done: p.documentsDone,
      total: p.documentsTotal,
      cursor: p.cursor,
      until: p.leaseExpiresAt,
    }) as { rebuild_status: RebuildStatus } | undefined;
    return row?.rebuild_status ?? null;
  }

  transitionRebuild(
    kbId: string,
    from: readonly RebuildStatus[],
    to: RebuildStatus,
    options: { owner?: string; finishedAt?: number; error?: { code: string; message: string } | null },
  ): boolean {
    if (from.length === 0) return false;
    const set = ['rebuild_status = @to'];
    const params: Record<string, unknown> = { id: kbId, to, from: JSON.stringify(from) };
    if (options.finishedAt !== undefined) {
      set.push('rebuild_finished_at = @finishedAt');
      params.finishedAt = options.finishedAt;
    }
    if (options.error !== undefined) {
      set.push('rebuild_error = @error');
      params.error = options.error === null ? null : JSON.stringify(options.error);
    }
    let where = 'id = @id AND rebuild_status IN (SELECT value FROM json_each(@from))';
    if (options.owner !== undefined) {
      where += ' AND rebuild_owner = @owner';
      params.owner = options.owner;
    }
    return (
      this.prepared(`UPDATE knowledge_bases SET ${set.join(', ')} WHERE ${where}`).run(params).changes > 0
    );
  }

  finishRebuild(kbId: string, owner: string, finishedAt: number): boolean {
    const tx = this.db.transaction((): boolean => {
      const row = this.prepared(
        "SELECT body, rebuild FROM knowledge_bases WHERE id = ? AND rebuild_status = 'swapping' AND rebuild_owner = ?",
      ).get(kbId, owner) as { body: string; rebuild: string | null } | undefined;
      if (!row || row.rebuild === null) return false;
      const swapped = afterSwap(row.body, row.rebuild);
      this.prepared(
        `UPDATE knowledge_bases SET body = ?, collection = ?, rebuild_status = 'succeeded',
           rebuild_finished_at = ?, rebuild_owner = NULL, rebuild_lease_expires_at = NULL
         WHERE id = ?`,
      ).run(swapped.body, swapped.collection, finishedAt, kbId);
      return true;
    });
    return tx.immediate();
  }

  /** A statement prepared once per text (the texts are made in this file from constants). */
  private prepared(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }
}
