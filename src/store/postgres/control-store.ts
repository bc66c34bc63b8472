/**
 * PostgreSQL adapter of the control store, with the SQLite adapter's semantics (the same contract
 * suite runs on both). Each entity is a row with the columns queries need plus a `json` body with
 * the whole record (table shapes: migrations.ts, migration 3). Failed rows live in
 * control-failures.ts, accounts and API keys in control-accounts.ts, shared helpers in control-rows.ts.
 *
 * Concurrency (READ COMMITTED, any number of processes on one schema). SQLite serialises every
 * write transaction; here each guard is made explicit:
 * - mutateJob locks the job row (SELECT … FOR UPDATE) before `change` sees it, so read-modify-write
 *   calls on one job queue and none is lost.
 * - Whatever can raise an account's active-job count (insertJob; mutateJob re-activating a job)
 *   and whatever must not miss a job of the account being inserted (deleting a database or
 *   knowledge base) first takes a transaction-scoped advisory lock on the account. Without it, two
 *   transactions re-activating two different jobs would each count the other's job as inactive
 *   and both pass the limit (write skew; the PostgreSQL-only tests race exactly that). Each
 *   statement after the lock takes a fresh snapshot, so the count sees every earlier holder's commit.
 * - Lock order: job row, then account lock; nothing waits for a job row while holding the account
 *   lock, so the two cannot deadlock.
 */
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
import * as accounts from './control-accounts.js';
import * as failedRows from './control-failures.js';
import * as knowledgeBases from './control-knowledge-bases.js';
import * as webhooks from './control-webhooks.js';
import { accountLockKey, jobParams, num, numOrNull, page } from './control-rows.js';
import { applyMigrations } from './migrations.js';
import { inTransaction, openPostgres, type OpenOptions, type PostgresDatabase, sqlState } from './open.js';
import type { Queryable } from './vector-writes.js';

const UNIQUE_VIOLATION = '23505';
const ACTIVE_SQL = `status IN (${ACTIVE_JOB_STATUSES.map((s) => `'${s}'`).join(', ')})`;
const isActive = (s: JobStatus) => ACTIVE_JOB_STATUSES.includes(s);

/** Due jobs, earliest first: answered from the partial index jobs_due (status = 'scheduled'). */
export const DUE_JOBS_SQL =
  "SELECT body FROM jobs WHERE status = 'scheduled' AND next_run_ms <= $1 ORDER BY next_run_ms, id LIMIT $2";

type Named = 'databases' | 'knowledge_bases';

/** The control store on `url`, schema `schema`: opens a pool, migrates, and closes the pool with close(). */
export async function openPostgresControlStore(
  url: string,
  schema?: string,
  options: OpenOptions = {},
): Promise<PostgresControlStore> {
  const db = openPostgres(url, schema, options);
  try {
    await applyMigrations(db);
  } catch (err) {
    await db.close();
    throw err;
  }
  return new PostgresControlStore(db, { ownsDb: true });
}

// TypeScript `private`, not `#` fields: callers wrap stores with Object.create (tests inject faults
// that way), and a `#` field cannot be read through such a wrapper.
export class PostgresControlStore implements ControlStore {
  private readonly db: PostgresDatabase;
  private readonly ownsDb: boolean;

  /** The migrations must have been applied to `db` (applyMigrations); openPostgresControlStore does. */
  constructor(db: PostgresDatabase, options: { ownsDb?: boolean } = {}) {
    this.db = db;
    this.ownsDb = options.ownsDb ?? false;
  }

  // --- databases and knowledge bases (control-knowledge-bases.ts) ----------------------------

  insertDatabase(record: DatabaseRecord): Promise<'ok' | 'duplicate'> {
    return this.insertNamed('databases', record);
  }

  getDatabase(accountId: string, name: string): Promise<DatabaseRecord | null> {
    return this.getNamed('databases', accountId, name);
  }

  listDatabases(accountId: string): Promise<DatabaseRecord[]> {
    return this.listNamed('databases', accountId);
  }

  deleteDatabase(accountId: string, name: string): Promise<boolean> {
    return this.deleteUnused('databases', 'database_name', accountId, name);
  }

  insertKnowledgeBase(record: KnowledgeBaseRecord): Promise<'ok' | 'duplicate'> {
    return knowledgeBases.insert(this.db.pool, record);
  }

  getKnowledgeBase(accountId: string, name: string): Promise<KnowledgeBaseRecord | null> {
    return knowledgeBases.get(this.db.pool, accountId, name);
  }

  listKnowledgeBases(accountId: string): Promise<KnowledgeBaseRecord[]> {
    return knowledgeBases.list(this.db.pool, accountId);
  }

  deleteKnowledgeBase(accountId: string, name: string): Promise<boolean> {
    return this.deleteUnused('knowledge_bases', 'kb_name', accountId, name);
  }

  getKnowledgeBaseById(id: string): Promise<KnowledgeBaseRecord | null> {
    return knowledgeBases.getById(this.db.pool, id);
  }

  updateKnowledgeBaseSettings(accountId: string, name: string, settings: KnowledgeBaseSettings): Promise<boolean> {
    return knowledgeBases.updateSettings(this.db.pool, accountId, name, settings);
  }

  // --- rebuilds (control-knowledge-bases.ts) ------------------------------------------------

  startRebuild(accountId: string, name: string, rebuild: RebuildRecord, description?: string | null): Promise<'ok' | 'not_found' | 'busy'> {
    return knowledgeBases.startRebuild(this.db.pool, accountId, name, rebuild, description);
  }

  claimRebuild(owner: string, now: number, leaseMs: number): Promise<KnowledgeBaseRecord | null> {
    return knowledgeBases.claimRebuild(this.db.pool, owner, now, leaseMs);
  }

  saveRebuildProgress(
    kbId: string,
    owner: string,
    progress: { documentsDone: number; documentsTotal: number; cursor: string | null; leaseExpiresAt: number },
  ): Promise<RebuildStatus | null> {
    return knowledgeBases.saveRebuildProgress(this.db.pool, kbId, owner, progress);
  }

  transitionRebuild(
    kbId: string,
    from: readonly RebuildStatus[],
    to: RebuildStatus,
    options: { owner?: string; finishedAt?: number; error?: { code: string; message: string } | null },
  ): Promise<boolean> {
    return knowledgeBases.transitionRebuild(this.db.pool, kbId, from, to, options);
  }

  finishRebuild(kbId: string, owner: string, finishedAt: number): Promise<boolean> {
    return knowledgeBases.finishRebuild(this.db.pool, kbId, owner, finishedAt);
  }

  // --- jobs ---------------------------------------------------------------------------------

  async insertJob(record: JobRecord, maxActive: number): Promise<CreateJobOutcome> {
    try {
      return await inTransaction(this.db.pool, async (client): Promise<CreateJobOutcome> => {
        await this.lockAccount(client, record.accountId);
        // One statement, one snapshot taken after the lock: the name, both targets and the count.
        const { rows } = await client.query(
          `SELECT EXISTS (SELECT 1 FROM jobs WHERE account_id = $1 AND name = $2) AS taken,
                  EXISTS (SELECT 1 FROM knowledge_bases WHERE account_id = $1 AND name = $3) AS kb,
                  EXISTS (SELECT 1 FROM databases WHERE account_id = $1 AND name = $4) AS database,
                  (SELECT count(*) FROM jobs WHERE account_id = $1 AND ${ACTIVE_SQL}) AS active`,
          [record.accountId, record.name, record.kbName, record.databaseName],
        );
        const found = rows[0];
        if (found.taken) return { ok: false, reason: 'duplicate' };
        if (!found.kb) return { ok: false, reason: 'kb_missing' };
        if (!found.database) return { ok: false, reason: 'database_missing' };
        if (isActive(record.status) && num(found.active) >= maxActive) return { ok: false, reason: 'limit' };
        await client.query(
          `INSERT INTO jobs (id, account_id, name, status, kb_name, database_name, next_run_ms, body)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
          jobParams(record),
        );
        return { ok: true };
      });
    } catch (err) {
      // The id taken (the name cannot be: the lock serialises the account's inserts).
      if (sqlState(err) === UNIQUE_VIOLATION) return { ok: false, reason: 'duplicate' };
      throw err;
    }
  }

  async getJob(accountId: string, idOrName: string): Promise<JobRecord | null> {
    return this.body(
      'SELECT body FROM jobs WHERE account_id = $1 AND (id = $2 OR name = $2) ORDER BY (id = $2) DESC LIMIT 1',
      [accountId, idOrName],
    );
  }

  async getJobById(id: string): Promise<JobRecord | null> {
    return this.body('SELECT body FROM jobs WHERE id = $1', [id]);
  }

  async listJobs(accountId: string, query: JobListQuery): Promise<Page<JobRecord>> {
    const params: unknown[] = [accountId];
    const where = ['account_id = $1'];
    const add = (sql: string, value: unknown) => {
      params.push(value);
      where.push(`${sql} $${params.length}`);
    };
    if (query.status) add('status =', query.status);
    if (query.kbName) add('kb_name =', query.kbName);
    if (query.cursor) add('id >', query.cursor);
    params.push(query.limit + 1);
    const items = await this.bodies<JobRecord>(
      `SELECT body FROM jobs WHERE ${where.join(' AND ')} ORDER BY id LIMIT $${params.length}`,
      params,
    );
    return page(items, query.limit, (j) => j.id);
  }

  async mutateJob(
    id: string,
    change: (job: JobRecord) => JobRecord | null,
    run?: RunRecord,
    options: { maxActive?: number } = {},
  ): Promise<JobRecord | null> {
    return inTransaction(this.db.pool, async (client) => {
      const { rows } = await client.query('SELECT body FROM jobs WHERE id = $1 FOR UPDATE', [id]);
      const current = (rows[0]?.body ?? null) as JobRecord | null;
      if (current === null) return null;
      const next = change(current);
      if (next === null) return current;
      if (!isActive(current.status) && isActive(next.status)) {
        // Raises the account's active count: counted under the account lock (see the header).
        await this.lockAccount(client, current.accountId);
        if (options.maxActive !== undefined && (await this.activeCount(client, current.accountId)) >= options.maxActive) {
          throw new ActiveJobLimitError();
        }
      }
      if (run) {
        await client.query(
          `INSERT INTO runs (id, job_id, status, body) VALUES ($1, $2, $3, $4)
           ON CONFLICT (id) DO UPDATE SET status = excluded.status, body = excluded.body`,
          [run.id, run.jobId, run.status, JSON.stringify(run)],
        );
      }
      const [, , name, status, kbName, databaseName, nextRun, body] = jobParams(next);
      await client.query(
        'UPDATE jobs SET name = $1, status = $2, kb_name = $3, database_name = $4, next_run_ms = $5, body = $6 WHERE id = $7',
        [name, status, kbName, databaseName, nextRun, body, id],
      );
      return next;
    });
  }

  async deleteJob(id: string): Promise<boolean> {
    return ((await this.db.pool.query('DELETE FROM jobs WHERE id = $1', [id])).rowCount ?? 0) > 0;
  }

  async countJobsByStatus(): Promise<Partial<Record<JobStatus, number>>> {
    const { rows } = await this.db.pool.query('SELECT status, count(*) AS n FROM jobs GROUP BY status');
    return Object.fromEntries(rows.map((r) => [r.status, num(r.n)]));
  }

  countActiveJobs(accountId: string): Promise<number> {
    return this.activeCount(this.db.pool, accountId);
  }

  async countJobsUsingDatabase(accountId: string, databaseName: string): Promise<number> {
    return this.count('SELECT count(*) AS n FROM jobs WHERE account_id = $1 AND database_name = $2', [accountId, databaseName]);
  }

  async countJobsUsingKnowledgeBase(accountId: string, kbName: string): Promise<number> {
    return this.count('SELECT count(*) AS n FROM jobs WHERE account_id = $1 AND kb_name = $2', [accountId, kbName]);
  }

  listJobsWithStatus(status: JobStatus, limit: number): Promise<JobRecord[]> {
    return this.bodies('SELECT body FROM jobs WHERE status = $1 ORDER BY id LIMIT $2', [status, limit]);
  }

  listDueJobs(now: number, limit: number): Promise<JobRecord[]> {
    return this.bodies(DUE_JOBS_SQL, [now, limit]);
  }

  async nextDueTime(after?: number): Promise<number | null> {
    const { rows } =
      after === undefined
        ? await this.db.pool.query("SELECT min(next_run_ms) AS t FROM jobs WHERE status = 'scheduled'")
        : await this.db.pool.query("SELECT min(next_run_ms) AS t FROM jobs WHERE status = 'scheduled' AND next_run_ms > $1", [after]);
    return numOrNull(rows[0]?.t);
  }

  // --- runs ---------------------------------------------------------------------------------

  async insertRun(record: RunRecord): Promise<void> {
    await this.db.pool.query('INSERT INTO runs (id, job_id, status, body) VALUES ($1, $2, $3, $4)', [
      record.id,
      record.jobId,
      record.status,
      JSON.stringify(record),
    ]);
  }

  async updateRun(record: RunRecord): Promise<void> {
    await this.db.pool.query('UPDATE runs SET status = $1, body = $2 WHERE id = $3', [record.status, JSON.stringify(record), record.id]);
  }

  getRun(jobId: string, runId: string): Promise<RunRecord | null> {
    return this.body('SELECT body FROM runs WHERE job_id = $1 AND id = $2', [jobId, runId]);
  }

  async listRuns(jobId: string, p: { limit: number; cursor: string | null }): Promise<Page<RunRecord>> {
    const items = await this.bodies<RunRecord>(
      'SELECT body FROM runs WHERE job_id = $1 AND ($2::text IS NULL OR id < $2) ORDER BY id DESC LIMIT $3',
      [jobId, p.cursor, p.limit + 1],
    );
    return page(items, p.limit, (r) => r.id);
  }

  listRunningRuns(): Promise<RunRecord[]> {
    return this.bodies("SELECT body FROM runs WHERE status = 'running'", []);
  }

  // --- webhook deliveries (control-webhooks.ts) ---------------------------------------------

  enqueueWebhook(delivery: WebhookDelivery): Promise<void> {
    return webhooks.enqueue(this.db.pool, delivery);
  }

  claimWebhooks(owner: string, now: number, holdMs: number, limit: number): Promise<WebhookDelivery[]> {
    return webhooks.claim(this.db.pool, owner, now, holdMs, limit);
  }

  settleWebhook(id: string, owner: string, outcome: WebhookOutcome): Promise<boolean> {
    return webhooks.settle(this.db.pool, id, owner, outcome);
  }

  listWebhooks(jobId: string, p: { limit: number; cursor: string | null }): Promise<Page<WebhookDelivery>> {
    return webhooks.list(this.db.pool, jobId, p);
  }

  // --- failed rows (control-failures.ts) -----------------------------------------------------

  recordFailures(jobId: string, failures: FailureInput[], now: number): Promise<void> {
    return failedRows.record(this.db.pool, jobId, failures, now);
  }

  importFailures(failures: FailureRecord[]): Promise<void> {
    return failedRows.importAll(this.db.pool, failures);
  }

  clearFailures(jobId: string, docIds: string[]): Promise<number> {
    return failedRows.clear(this.db.pool, jobId, docIds);
  }

  listFailures(jobId: string, p: { limit: number; cursor: string | null }): Promise<Page<FailureRecord>> {
    return failedRows.list(this.db.pool, jobId, p);
  }

  countFailures(jobId: string): Promise<number> {
    return failedRows.count(this.db.pool, jobId);
  }

  // --- leases -------------------------------------------------------------------------------

  async acquireLease(
    name: string,
    owner: string,
    ttlMs: number,
    now: number,
    takeOverFrom?: string,
  ): Promise<{ acquired: boolean; holder: string | null }> {
    // One statement: a row another process inserts or renews meanwhile is seen (the conflict
    // waits for it), so two callers never both get the lease.
    const { rows } = await this.db.pool.query(
      `INSERT INTO leases (name, owner, expires_at) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
       WHERE leases.expires_at <= $4 OR leases.owner = $2 OR leases.owner = $5
       RETURNING owner`,
      [name, owner, now + ttlMs, now, takeOverFrom ?? null],
    );
    if (rows.length > 0) return { acquired: true, holder: owner };
    const held = await this.db.pool.query('SELECT owner FROM leases WHERE name = $1', [name]);
    return { acquired: false, holder: (held.rows[0]?.owner as string | undefined) ?? null };
  }

  async releaseLease(name: string, owner: string): Promise<void> {
    await this.db.pool.query('DELETE FROM leases WHERE name = $1 AND owner = $2', [name, owner]);
  }

  async listLeases(prefix: string, now: number): Promise<LeaseRecord[]> {
    // starts_with rather than LIKE: a prefix may hold `%` or `_`.
    const { rows } = await this.db.pool.query(
      'SELECT name, owner, expires_at FROM leases WHERE starts_with(name, $1) AND expires_at > $2 ORDER BY name',
      [prefix, now],
    );
    return rows.map((r) => ({ name: r.name, owner: r.owner, expiresAt: num(r.expires_at) }));
  }

  // --- accounts and API keys (control-accounts.ts) -------------------------------------------

  insertAccount(record: AccountRecord, firstKey?: ApiKeyRecord): Promise<'ok' | 'duplicate'> {
    return accounts.insertAccount(this.db.pool, record, firstKey);
  }

  getAccount(idOrName: string): Promise<AccountRecord | null> {
    return accounts.getAccount(this.db.pool, idOrName);
  }

  listAccounts(): Promise<AccountRecord[]> {
    return accounts.listAccounts(this.db.pool);
  }

  insertApiKey(record: ApiKeyRecord): Promise<void> {
    return accounts.insertKey(this.db.pool, record);
  }

  findApiKeyByHash(hash: string): Promise<ApiKeyRecord | null> {
    return accounts.findKeyByHash(this.db.pool, hash);
  }

  listApiKeys(accountId: string): Promise<ApiKeyRecord[]> {
    return accounts.listKeys(this.db.pool, accountId);
  }

  revokeApiKey(accountId: string, keyId: string, now: number): Promise<ApiKeyRecord | null> {
    return accounts.revokeKey(this.db.pool, accountId, keyId, now);
  }

  // --- lifecycle ----------------------------------------------------------------------------

  async ping(): Promise<void> {
    await this.db.pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.ownsDb) await this.db.close();
  }

  // --- helpers ------------------------------------------------------------------------------

  /** Serialises, until the transaction ends, every writer that could change the account's active jobs or its targets' users. */
  private async lockAccount(client: Queryable, accountId: string): Promise<void> {
    await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [accountLockKey(this.db.schema, accountId)]);
  }

  private activeCount(client: Queryable, accountId: string): Promise<number> {
    return this.count(`SELECT count(*) AS n FROM jobs WHERE account_id = $1 AND ${ACTIVE_SQL}`, [accountId], client);
  }

  private async count(sql: string, params: unknown[], client: Queryable = this.db.pool): Promise<number> {
    const { rows } = await client.query(sql, params);
    return num(rows[0].n);
  }

  private async body<T>(sql: string, params: unknown[]): Promise<T | null> {
    const { rows } = await this.db.pool.query(sql, params);
    return (rows[0]?.body ?? null) as T | null;
  }

  private async bodies<T>(sql: string, params: unknown[]): Promise<T[]> {
    const { rows } = await this.db.pool.query(sql, params);
    return rows.map((r) => r.body as T);
  }

  private async insertNamed(table: Named, record: { id: string; accountId: string; name: string }): Promise<'ok' | 'duplicate'> {
    try {
      await this.db.pool.query(`INSERT INTO ${table} (id, account_id, name, body) VALUES ($1, $2, $3, $4)`, [
        record.id,
        record.accountId,
        record.name,
        JSON.stringify(record),
      ]);
      return 'ok';
    } catch (err) {
      if (sqlState(err) === UNIQUE_VIOLATION) return 'duplicate';
      throw err;
    }
  }

  private getNamed<T>(table: Named, accountId: string, name: string): Promise<T | null> {
    return this.body(`SELECT body FROM ${table} WHERE account_id = $1 AND name = $2`, [accountId, name]);
  }

  private listNamed<T>(table: Named, accountId: string): Promise<T[]> {
    return this.bodies(`SELECT body FROM ${table} WHERE account_id = $1 ORDER BY name`, [accountId]);
  }

  /**
   * Deletes unless a job of the account still uses it. Under the account lock: an insertJob that
   * found this target committed before the delete's check runs, or starts after the delete.
   */
  private async deleteUnused(table: Named, jobColumn: 'database_name' | 'kb_name', accountId: string, name: string): Promise<boolean> {
    return inTransaction(this.db.pool, async (client) => {
      await this.lockAccount(client, accountId);
      const { rowCount } = await client.query(
        `DELETE FROM ${table} WHERE account_id = $1 AND name = $2
           AND NOT EXISTS (SELECT 1 FROM jobs WHERE account_id = $1 AND ${jobColumn} = $2)`,
        [accountId, name],
      );
      return (rowCount ?? 0) > 0;
    });
  }
}
