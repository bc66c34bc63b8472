/**
 * SQLite adapter of the control store. Each entity is a row with the columns queries need plus a
 * JSON body with the whole record, so adding a field needs no migration.
 */
import type Database from 'better-sqlite3';
import {
  ACTIVE_JOB_STATUSES,
  ActiveJobLimitError,
  type AccountRecord,
  type ApiKeyRecord,
  type ControlStore,
  type CreateJobOutcome,
  type DatabaseRecord,
  type FailureInput,
  type FailureRecord,
  type JobListQuery,
  type JobRecord,
  type JobStatus,
  type KnowledgeBaseRecord,
  type KnowledgeBaseSettings,
  type LeaseRecord,
  type Page,
  type RebuildRecord,
  type RebuildStatus,
  type RunRecord,
  type WebhookDelivery,
  type WebhookOutcome,
} from '../port.js';
import { SqliteKnowledgeBases } from './control-knowledge-bases.js';
import { applyMigrations } from './migrations.js';
import { WEBHOOK_COLUMNS, type WebhookRow, webhookFromRow, webhookParams } from '../webhook-rows.js';

const isUniqueViolation = (err: unknown): boolean =>
  err instanceof Error && (err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE';

const parse = <T>(row: { body: string } | undefined): T | null => (row ? (JSON.parse(row.body) as T) : null);

interface FailureRow {
  job_id: string;
  doc_id: string;
  key: string;
  reason: string;
  first_failed_at: number;
  last_failed_at: number;
  attempts: number;
}

const failureFromRow = (r: FailureRow): FailureRecord => ({
  jobId: r.job_id,
  docId: r.doc_id,
  key: JSON.parse(r.key) as string[],
  reason: r.reason,
  firstFailedAt: r.first_failed_at,
  lastFailedAt: r.last_failed_at,
  attempts: r.attempts,
});

interface AccountRow {
  id: string;
  name: string;
  created_at: number;
}

const accountFromRow = (r: AccountRow): AccountRecord => ({ id: r.id, name: r.name, createdAt: r.created_at });

interface ApiKeyRow {
  id: string;
  account_id: string;
  key_hash: string;
  prefix: string;
  created_at: number;
  revoked_at: number | null;
}

const KEY_COLUMNS = 'id, account_id, key_hash, prefix, created_at, revoked_at';

const keyFromRow = (r: ApiKeyRow): ApiKeyRecord => ({
  id: r.id,
  accountId: r.account_id,
  hash: r.key_hash,
  prefix: r.prefix,
  createdAt: r.created_at,
  revokedAt: r.revoked_at,
});

export class SqliteControlStore implements ControlStore {
  private readonly db: Database.Database;
  private readonly ownsDb: boolean;
  /** Statements of the paths every scheduled run takes, prepared once (a run with nothing new is a handful of them). */
  private readonly statements = new Map<string, Database.Statement>();
  private readonly knowledgeBases: SqliteKnowledgeBases;

  constructor(db: Database.Database, options: { ownsDb?: boolean } = {}) {
    this.db = db;
    this.ownsDb = options.ownsDb ?? false;
    applyMigrations(db);
    this.knowledgeBases = new SqliteKnowledgeBases(db);
  }

  // --- databases ---------------------------------------------------------------------------

  async insertDatabase(record: DatabaseRecord): Promise<'ok' | 'duplicate'> {
    return this.insertNamed('databases', record);
  }

  async getDatabase(accountId: string, name: string): Promise<DatabaseRecord | null> {
    return this.getNamed('databases', accountId, name);
  }

  async listDatabases(accountId: string): Promise<DatabaseRecord[]> {
    return this.listNamed('databases', accountId);
  }

  async deleteDatabase(accountId: string, name: string): Promise<boolean> {
    return this.deleteUnused('databases', 'database_name', accountId, name);
  }

  // --- knowledge bases ---------------------------------------------------------------------

  async insertKnowledgeBase(record: KnowledgeBaseRecord): Promise<'ok' | 'duplicate'> {
    return this.knowledgeBases.insert(record);
  }

  async getKnowledgeBase(accountId: string, name: string): Promise<KnowledgeBaseRecord | null> {
    return this.knowledgeBases.get(accountId, name);
  }

  async listKnowledgeBases(accountId: string): Promise<KnowledgeBaseRecord[]> {
    return this.knowledgeBases.list(accountId);
  }

  async deleteKnowledgeBase(accountId: string, name: string): Promise<boolean> {
    return this.deleteUnused('knowledge_bases', 'kb_name', accountId, name);
  }

  async getKnowledgeBaseById(id: string): Promise<KnowledgeBaseRecord | null> {
    return this.knowledgeBases.getById(id);
  }

  async updateKnowledgeBaseSettings(accountId: string, name: string, settings: KnowledgeBaseSettings): Promise<boolean> {
    return this.knowledgeBases.updateSettings(accountId, name, settings);
  }

  // --- rebuilds (control-knowledge-bases.ts) -------------------------------------------------

  async startRebuild(
    accountId: string,
    name: string,
    rebuild: RebuildRecord,
    description?: string | null,
  ): Promise<'ok' | 'not_found' | 'busy'> {
    return this.knowledgeBases.startRebuild(accountId, name, rebuild, description);
  }

  async claimRebuild(owner: string, now: number, leaseMs: number): Promise<KnowledgeBaseRecord | null> {
    return this.knowledgeBases.claimRebuild(owner, now, leaseMs);
  }

  async saveRebuildProgress(
    kbId: string,
    owner: string,
    progress: { documentsDone: number; documentsTotal: number; cursor: string | null; leaseExpiresAt: number },
  ): Promise<RebuildStatus | null> {
    return this.knowledgeBases.saveRebuildProgress(kbId, owner, progress);
  }

  async transitionRebuild(
    kbId: string,
    from: readonly RebuildStatus[],
    to: RebuildStatus,
    options: { owner?: string; finishedAt?: number; error?: { code: string; message: string } | null },
  ): Promise<boolean> {
    return this.knowledgeBases.transitionRebuild(kbId, from, to, options);
  }

  async finishRebuild(kbId: string, owner: string, finishedAt: number): Promise<boolean> {
    return this.knowledgeBases.finishRebuild(kbId, owner, finishedAt);
  }

  // --- jobs --------------------------------------------------------------------------------

  async insertJob(record: JobRecord, maxActive: number): Promise<CreateJobOutcome> {
    // better-sqlite3 transactions are synchronous, so the count and the insert cannot interleave
    // with another request; IMMEDIATE also excludes other processes on the same file.
    const tx = this.db.transaction((): CreateJobOutcome => {
      const taken = this.db
        .prepare('SELECT 1 FROM jobs WHERE account_id = ? AND name = ?')
        .get(record.accountId, record.name);
      if (taken) return { ok: false, reason: 'duplicate' };
      // Its targets must still exist now, in the transaction that writes it: a delete of the
      // knowledge base or database cannot slip in between a check and the insert.
      if (!this.db.prepare('SELECT 1 FROM knowledge_bases WHERE account_id = ? AND name = ?').get(record.accountId, record.kbName)) {
        return { ok: false, reason: 'kb_missing' };
      }
      if (!this.db.prepare('SELECT 1 FROM databases WHERE account_id = ? AND name = ?').get(record.accountId, record.databaseName)) {
        return { ok: false, reason: 'database_missing' };
      }
      if (record.status === 'scheduled' || record.status === 'running' || record.status === 'paused') {
        if (this.activeCount(record.accountId) >= maxActive) return { ok: false, reason: 'limit' };
      }
      this.db
        .prepare(
          `INSERT INTO jobs (id, account_id, name, status, kb_name, database_name, next_run_ms, body)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(...this.jobColumns(record));
      return { ok: true };
    });
    try {
      return tx.immediate();
    } catch (err) {
      if (isUniqueViolation(err)) return { ok: false, reason: 'duplicate' };
      throw err;
    }
  }

  async getJob(accountId: string, idOrName: string): Promise<JobRecord | null> {
    const row = this.db
      .prepare('SELECT body FROM jobs WHERE account_id = ? AND (id = ? OR name = ?) ORDER BY (id = ?) DESC LIMIT 1')
      .get(accountId, idOrName, idOrName, idOrName) as { body: string } | undefined;
    return parse<JobRecord>(row);
  }

  async getJobById(id: string): Promise<JobRecord | null> {
    return parse<JobRecord>(this.prepared('SELECT body FROM jobs WHERE id = ?').get(id) as { body: string } | undefined);
  }

  async listJobs(accountId: string, query: JobListQuery): Promise<Page<JobRecord>> {
    const where = ['account_id = ?'];
    const params: unknown[] = [accountId];
    if (query.status) {
      where.push('status = ?');
      params.push(query.status);
    }
    if (query.kbName) {
      where.push('kb_name = ?');
      params.push(query.kbName);
    }
    if (query.cursor) {
      where.push('id > ?');
      params.push(query.cursor);
    }
    const rows = this.db
      .prepare(`SELECT body FROM jobs WHERE ${where.join(' AND ')} ORDER BY id LIMIT ?`)
      .all(...params, query.limit + 1) as { body: string }[];
    const items = rows.slice(0, query.limit).map((r) => JSON.parse(r.body) as JobRecord);
    return { items, next: rows.length > query.limit ? (items.at(-1)?.id ?? null) : null };
  }

  async mutateJob(
    id: string,
    change: (job: JobRecord) => JobRecord | null,
    run?: RunRecord,
    options: { maxActive?: number } = {},
  ): Promise<JobRecord | null> {
    // Synchronous transaction: nothing else in this process runs between the read and the write,
    // and IMMEDIATE keeps other processes out.
    const tx = this.db.transaction((): JobRecord | null => {
      const current = parse<JobRecord>(this.prepared('SELECT body FROM jobs WHERE id = ?').get(id) as { body: string } | undefined);
      if (!current) return null;
      const next = change(current);
      if (next === null) return current;
      const active = (s: JobStatus) => ACTIVE_JOB_STATUSES.includes(s);
      if (options.maxActive !== undefined && !active(current.status) && active(next.status)) {
        if (this.activeCount(current.accountId) >= options.maxActive) throw new ActiveJobLimitError();
      }
      if (run) {
        this.prepared(
          'INSERT INTO runs (id, job_id, status, body) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET status = excluded.status, body = excluded.body',
        ).run(run.id, run.jobId, run.status, JSON.stringify(run));
      }
      const [, , name, status, kbName, databaseName, nextRun, body] = this.jobColumns(next);
      this.prepared('UPDATE jobs SET name = ?, status = ?, kb_name = ?, database_name = ?, next_run_ms = ?, body = ? WHERE id = ?').run(
        name,
        status,
        kbName,
        databaseName,
        nextRun,
        body,
        id,
      );
      return next;
    });
    return tx.immediate();
  }

  async deleteJob(id: string): Promise<boolean> {
    return this.db.prepare('DELETE FROM jobs WHERE id = ?').run(id).changes > 0;
  }

  async countJobsByStatus(): Promise<Partial<Record<JobStatus, number>>> {
    const rows = this.db.prepare('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status').all() as { status: JobStatus; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  async countActiveJobs(accountId: string): Promise<number> {
    return this.activeCount(accountId);
  }

  private activeCount(accountId: string): number {
    const row = this.db
      .prepare("SELECT COUNT(*) AS n FROM jobs WHERE account_id = ? AND status IN ('scheduled', 'running', 'paused')")
      .get(accountId) as { n: number };
    return row.n;
  }

  async countJobsUsingDatabase(accountId: string, databaseName: string): Promise<number> {
    return (
      this.db
        .prepare('SELECT COUNT(*) AS n FROM jobs WHERE account_id = ? AND database_name = ?')
        .get(accountId, databaseName) as { n: number }
    ).n;
  }

  async countJobsUsingKnowledgeBase(accountId: string, kbName: string): Promise<number> {
    return (
      this.db.prepare('SELECT COUNT(*) AS n FROM jobs WHERE account_id = ? AND kb_name = ?').get(accountId, kbName) as {
        n: number;
      }
    ).n;
  }

  async listJobsWithStatus(status: JobStatus, limit: number): Promise<JobRecord[]> {
    const rows = this.db.prepare('SELECT body FROM jobs WHERE status = ? ORDER BY id LIMIT ?').all(status, limit) as { body: string }[];
    return rows.map((r) => JSON.parse(r.body) as JobRecord);
  }

  async listDueJobs(now: number, limit: number): Promise<JobRecord[]> {
    const rows = this.prepared(
      "SELECT body FROM jobs WHERE status = 'scheduled' AND next_run_ms IS NOT NULL AND next_run_ms <= ? ORDER BY next_run_ms, id LIMIT ?",
    ).all(now, limit) as { body: string }[];
    return rows.map((r) => JSON.parse(r.body) as JobRecord);
  }

  async nextDueTime(after?: number): Promise<number | null> {
    const row = (
      after === undefined
        ? this.prepared("SELECT MIN(next_run_ms) AS t FROM jobs WHERE status = 'scheduled' AND next_run_ms IS NOT NULL").get()
        : this.prepared("SELECT MIN(next_run_ms) AS t FROM jobs WHERE status = 'scheduled' AND next_run_ms > ?").get(after)
    ) as { t: number | null };
    return row.t;
  }

  // --- runs --------------------------------------------------------------------------------

  async insertRun(record: RunRecord): Promise<void> {
    this.db
      .prepare('INSERT INTO runs (id, job_id, status, body) VALUES (?, ?, ?, ?)')
      .run(record.id, record.jobId, record.status, JSON.stringify(record));
  }

  async updateRun(record: RunRecord): Promise<void> {
    this.db
      .prepare('UPDATE runs SET status = ?, body = ? WHERE id = ?')
      .run(record.status, JSON.stringify(record), record.id);
  }

  async getRun(jobId: string, runId: string): Promise<RunRecord | null> {
    return parse<RunRecord>(
      this.db.prepare('SELECT body FROM runs WHERE job_id = ? AND id = ?').get(jobId, runId) as
        | { body: string }
        | undefined,
    );
  }

  async listRuns(jobId: string, page: { limit: number; cursor: string | null }): Promise<Page<RunRecord>> {
    const rows = (
      page.cursor
        ? this.db
            .prepare('SELECT body FROM runs WHERE job_id = ? AND id < ? ORDER BY id DESC LIMIT ?')
            .all(jobId, page.cursor, page.limit + 1)
        : this.db.prepare('SELECT body FROM runs WHERE job_id = ? ORDER BY id DESC LIMIT ?').all(jobId, page.limit + 1)
    ) as { body: string }[];
    const items = rows.slice(0, page.limit).map((r) => JSON.parse(r.body) as RunRecord);
    return { items, next: rows.length > page.limit ? (items.at(-1)?.id ?? null) : null };
  }

  async listRunningRuns(): Promise<RunRecord[]> {
    const rows = this.db.prepare("SELECT body FROM runs WHERE status = 'running'").all() as { body: string }[];
    return rows.map((r) => JSON.parse(r.body) as RunRecord);
  }

  // --- failed rows -------------------------------------------------------------------------

  async recordFailures(jobId: string, failures: FailureInput[], now: number): Promise<void> {
    if (failures.length === 0) return;
    const upsert = this.db.prepare(
      `INSERT INTO job_failures (job_id, doc_id, key, reason, first_failed_at, last_failed_at, attempts)
       VALUES (?, ?, ?, ?, ?, ?, 1)
       ON CONFLICT (job_id, doc_id) DO UPDATE SET
         key = excluded.key, reason = excluded.reason, last_failed_at = excluded.last_failed_at,
         attempts = job_failures.attempts + 1`,
    );
    const tx = this.db.transaction(() => {
      // A job deleted under its run records nothing (rather than failing on the foreign key).
      if (!this.db.prepare('SELECT 1 FROM jobs WHERE id = ?').get(jobId)) return;
      for (const f of failures) upsert.run(jobId, f.docId, JSON.stringify(f.key), f.reason, now, now);
    });
    tx.immediate();
  }

  async importFailures(failures: FailureRecord[]): Promise<void> {
    if (failures.length === 0) return;
    const insert = this.db.prepare(
      `INSERT OR REPLACE INTO job_failures (job_id, doc_id, key, reason, first_failed_at, last_failed_at, attempts)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    this.db
      .transaction(() => {
        for (const f of failures) {
          insert.run(f.jobId, f.docId, JSON.stringify(f.key), f.reason, f.firstFailedAt, f.lastFailedAt, f.attempts);
        }
      })
      .immediate();
  }

  async clearFailures(jobId: string, docIds: string[]): Promise<number> {
    if (docIds.length === 0) return 0;
    // Called for every written batch: a job without failures (the usual case) answers from the
    // primary key without parsing the ids; otherwise one statement, the ids as one JSON parameter.
    if (!this.db.prepare('SELECT 1 FROM job_failures WHERE job_id = ? LIMIT 1').get(jobId)) return 0;
    return this.db
      .prepare('DELETE FROM job_failures WHERE job_id = ? AND doc_id IN (SELECT value FROM json_each(?))')
      .run(jobId, JSON.stringify(docIds)).changes;
  }

  async listFailures(jobId: string, page: { limit: number; cursor: string | null }): Promise<Page<FailureRecord>> {
    const columns = 'job_id, doc_id, key, reason, first_failed_at, last_failed_at, attempts';
    const rows = (
      page.cursor === null
        ? this.db
            .prepare(`SELECT ${columns} FROM job_failures WHERE job_id = ? ORDER BY doc_id LIMIT ?`)
            .all(jobId, page.limit + 1)
        : this.db
            .prepare(`SELECT ${columns} FROM job_failures WHERE job_id = ? AND doc_id > ? ORDER BY doc_id LIMIT ?`)
            .all(jobId, page.cursor, page.limit + 1)
    ) as FailureRow[];
    const items = rows.slice(0, page.limit).map(failureFromRow);
    return { items, next: rows.length > page.limit ? (items.at(-1)?.docId ?? null) : null };
  }

  async countFailures(jobId: string): Promise<number> {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM job_failures WHERE job_id = ?').get(jobId) as { n: number }).n;
  }

  // --- webhook deliveries (store/webhook-rows.ts) -------------------------------------------

  async enqueueWebhook(d: WebhookDelivery): Promise<void> {
    // INSERT … SELECT: a job deleted meanwhile queues nothing (rather than failing on the key).
    this.db
      .prepare(
        `INSERT INTO webhook_deliveries (${WEBHOOK_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?)`,
      )
      .run(...webhookParams(d), d.jobId);
  }

  async claimWebhooks(owner: string, now: number, holdMs: number, limit: number): Promise<WebhookDelivery[]> {
    // Every process polls: when nothing is due (the usual case), no write lock is taken.
    const due = this.db
      .prepare("SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until < ?) LIMIT 1")
      .get(now, now);
    if (due === undefined) return [];
    // IMMEDIATE: the write lock is taken before the read, so another process's claim waits and
    // then sees these rows claimed.
    const tx = this.db.transaction((): WebhookDelivery[] => {
      const rows = this.db
        .prepare(
          `SELECT ${WEBHOOK_COLUMNS} FROM webhook_deliveries
           WHERE status = 'pending' AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until < ?)
           ORDER BY next_attempt_at, id LIMIT ?`,
        )
        .all(now, now, limit) as WebhookRow[];
      const claim = this.db.prepare('UPDATE webhook_deliveries SET claimed_by = ?, claimed_until = ? WHERE id = ?');
      for (const r of rows) claim.run(owner, now + holdMs, r.id);
      return rows.map(webhookFromRow);
    });
    return tx.immediate();
  }

  async settleWebhook(id: string, owner: string, o: WebhookOutcome): Promise<boolean> {
    return (
      this.db
        .prepare(
          `UPDATE webhook_deliveries SET status = ?, attempts = ?, last_error = ?, delivered_at = ?, next_attempt_at = ?,
             claimed_by = NULL, claimed_until = NULL
           WHERE id = ? AND claimed_by = ?`,
        )
        .run(o.status, o.attempts, o.lastError, o.deliveredAt, o.nextAttemptAt, id, owner).changes > 0
    );
  }

  async listWebhooks(jobId: string, page: { limit: number; cursor: string | null }): Promise<Page<WebhookDelivery>> {
    const rows = (
      page.cursor === null
        ? this.db
            .prepare(`SELECT ${WEBHOOK_COLUMNS} FROM webhook_deliveries WHERE job_id = ? ORDER BY id DESC LIMIT ?`)
            .all(jobId, page.limit + 1)
        : this.db
            .prepare(`SELECT ${WEBHOOK_COLUMNS} FROM webhook_deliveries WHERE job_id = ? AND id < ? ORDER BY id DESC LIMIT ?`)
            .all(jobId, page.cursor, page.limit + 1)
    ) as WebhookRow[];
    const items = rows.slice(0, page.limit).map(webhookFromRow);
    return { items, next: rows.length > page.limit ? (items.at(-1)?.id ?? null) : null };
  }

  // --- leases ------------------------------------------------------------------------------

  async acquireLease(
    name: string,
    owner: string,
    ttlMs: number,
    now: number,
    takeOverFrom?: string,
  ): Promise<{ acquired: boolean; holder: string | null }> {
    const tx = this.db.transaction(() => {
      const row = this.db.prepare('SELECT owner, expires_at FROM leases WHERE name = ?').get(name) as
        | { owner: string; expires_at: number }
        | undefined;
      const free = !row || row.expires_at <= now || row.owner === owner || (takeOverFrom !== undefined && row.owner === takeOverFrom);
      if (!free) return { acquired: false, holder: row.owner };
      this.db
        .prepare(
          'INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at',
        )
        .run(name, owner, now + ttlMs);
      return { acquired: true, holder: owner };
    });
    return tx.immediate();
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    this.db.prepare('DELETE FROM leases WHERE name = ? AND owner = ?').run(name, owner);
  }

  async listLeases(prefix: string, now: number): Promise<LeaseRecord[]> {
    // substr rather than LIKE: a prefix may hold `%` or `_`. The table holds a row per process.
    const rows = this.db
      .prepare('SELECT name, owner, expires_at FROM leases WHERE substr(name, 1, ?) = ? AND expires_at > ? ORDER BY name')
      .all(prefix.length, prefix, now) as { name: string; owner: string; expires_at: number }[];
    return rows.map((r) => ({ name: r.name, owner: r.owner, expiresAt: r.expires_at }));
  }

  // --- accounts and API keys ---------------------------------------------------------------

  async insertAccount(record: AccountRecord, firstKey?: ApiKeyRecord): Promise<'ok' | 'duplicate'> {
    const tx = this.db.transaction(() => {
      this.db.prepare('INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)').run(record.id, record.name, record.createdAt);
      if (firstKey) this.insertKeyRow(firstKey);
    });
    try {
      tx.immediate();
      return 'ok';
    } catch (err) {
      if (isUniqueViolation(err) || (err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return 'duplicate';
      throw err;
    }
  }

  async getAccount(idOrName: string): Promise<AccountRecord | null> {
    const row = this.db
      .prepare('SELECT id, name, created_at FROM accounts WHERE id = ? OR name = ? ORDER BY (id = ?) DESC LIMIT 1')
      .get(idOrName, idOrName, idOrName) as AccountRow | undefined;
    return row ? accountFromRow(row) : null;
  }

  async listAccounts(): Promise<AccountRecord[]> {
    const rows = this.db.prepare('SELECT id, name, created_at FROM accounts ORDER BY created_at, id').all() as AccountRow[];
    return rows.map(accountFromRow);
  }

  async insertApiKey(record: ApiKeyRecord): Promise<void> {
    this.insertKeyRow(record);
  }

  async findApiKeyByHash(hash: string): Promise<ApiKeyRecord | null> {
    const row = this.db.prepare(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE key_hash = ?`).get(hash) as ApiKeyRow | undefined;
    return row ? keyFromRow(row) : null;
  }

  async listApiKeys(accountId: string): Promise<ApiKeyRecord[]> {
    const rows = this.db
      .prepare(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE account_id = ? ORDER BY created_at, id`)
      .all(accountId) as ApiKeyRow[];
    return rows.map(keyFromRow);
  }

  async revokeApiKey(accountId: string, keyId: string, now: number): Promise<ApiKeyRecord | null> {
    const tx = this.db.transaction(() => {
      this.db
        .prepare('UPDATE api_keys SET revoked_at = ? WHERE account_id = ? AND id = ? AND revoked_at IS NULL')
        .run(now, accountId, keyId);
      return this.db.prepare(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE account_id = ? AND id = ?`).get(accountId, keyId) as
        | ApiKeyRow
        | undefined;
    });
    const row = tx.immediate();
    return row ? keyFromRow(row) : null;
  }

  private insertKeyRow(r: ApiKeyRecord): void {
    this.db
      .prepare('INSERT INTO api_keys (id, account_id, key_hash, prefix, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(r.id, r.accountId, r.hash, r.prefix, r.createdAt, r.revokedAt);
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.ownsDb && this.db.open) this.db.close();
  }

  // --- helpers -----------------------------------------------------------------------------

  private jobColumns(r: JobRecord) {
    return [r.id, r.accountId, r.name, r.status, r.kbName, r.databaseName, r.nextRunMs, JSON.stringify(r)] as const;
  }

  private insertNamed(table: 'databases', record: { id: string; accountId: string; name: string }) {
    try {
      this.db
        .prepare(`INSERT INTO ${table} (id, account_id, name, body) VALUES (?, ?, ?, ?)`)
        .run(record.id, record.accountId, record.name, JSON.stringify(record));
      return 'ok' as const;
    } catch (err) {
      if (isUniqueViolation(err)) return 'duplicate' as const;
      throw err;
    }
  }

  private getNamed<T>(table: 'databases', accountId: string, name: string): T | null {
    return parse<T>(this.prepared(`SELECT body FROM ${table} WHERE account_id = ? AND name = ?`).get(accountId, name) as { body: string } | undefined);
  }

  /** A statement prepared once per text (the texts are constants of this file). */
  private prepared(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  private listNamed<T>(table: 'databases', accountId: string): T[] {
    const rows = this.db.prepare(`SELECT body FROM ${table} WHERE account_id = ? ORDER BY name`).all(accountId) as {
      body: string;
    }[];
    return rows.map((r) => JSON.parse(r.body) as T);
  }

  /** Deletes unless a job of the account still uses it, in one statement (no check-then-act race). */
  private deleteUnused(
    table: 'databases' | 'knowledge_bases',
    jobColumn: 'database_name' | 'kb_name',
    accountId: string,
    name: string,
  ): boolean {
    return (
      this.db
        .prepare(
          `DELETE FROM ${table} WHERE account_id = ? AND name = ?
             AND NOT EXISTS (SELECT 1 FROM jobs WHERE account_id = ? AND ${jobColumn} = ?)`,
        )
        .run(accountId, name, accountId, name).changes > 0
    );
  }
}
