/**
 * The control-store port: databases, knowledge bases, jobs and runs of each account.
 * Adapters: sqlite/ (embedded default) and, later, postgres/. No driver type leaks through here.
 * Times are epoch milliseconds; secrets arrive already encrypted (secrets/crypto.ts).
 */
import type { RunProgress } from '../core/progress.js';
import type { LagMeasurement } from '../core/lag.js';
import type { RunLease } from '../core/run-lease.js';
import type { SourceEngine } from '../sources/port.js';

export type { RunLease, RunProgress };

export interface DatabaseRecord {
  id: string;
  accountId: string;
  name: string;
  engine: SourceEngine;
  /** Connection parameters without secrets (password removed, url password masked out). */
  parameters: Record<string, unknown>;
  /** Encrypted secret parts (password), or null. */
  secret: string | null;
  createdAt: number;
}

export interface KnowledgeBaseRecord {
  id: string;
  accountId: string;
  name: string;
  description: string | null;
  /** Embedding config without the API key. */
  embedding: {
    provider: 'local' | 'openai';
    model: string | null;
    dimensions: number | null;
    base_url: string | null;
    /** What a million embedded tokens cost (for estimates and totals); null or absent: not set. */
    price_per_million_tokens?: number | null;
  };
  /** Encrypted API key, or null. */
  secret: string | null;
  chunking: { chunk_size: number; chunk_overlap: number };
  createdAt: number;
  /**
   * The vector-store collection that queries read and writes reach: the knowledge base's id when
   * it is created, a rebuild's shadow collection after its swap.
   */
  collection: string;
  /** The latest rebuild (a model or chunking change), or null if there never was one. */
  rebuild: RebuildRecord | null;
}

/** What a PATCH may change without a rebuild; an absent field stays as it is. */
export interface KnowledgeBaseSettings {
  description?: string | null;
  pricePerMillionTokens?: number | null;
  /** Encrypted API key, or null for none. */
  secret?: string | null;
}

/**
 * running: the shadow is being filled (writes reach both collections); swapping: it is complete
 * and being promoted (too late to cancel); then succeeded, failed or cancelled.
 */
export type RebuildStatus = 'running' | 'swapping' | 'succeeded' | 'failed' | 'cancelled';
export const ACTIVE_REBUILD_STATUSES: readonly RebuildStatus[] = ['running', 'swapping'];

export interface RebuildRecord {
  status: RebuildStatus;
  /** The shadow collection being filled (KnowledgeBaseRecord.collection after the swap). */
  collection: string;
  /** The configuration the shadow is built with; the knowledge base's own after the swap. */
  embedding: KnowledgeBaseRecord['embedding'];
  /** Encrypted API key of that embedding, or null. */
  secret: string | null;
  chunking: { chunk_size: number; chunk_overlap: number };
  documentsDone: number;
  documentsTotal: number;
  /** Id of the last document the rebuild's pass copied (documents are copied in id order), or null. */
  cursor: string | null;
  startedAt: number;
  finishedAt: number | null;
  error: { code: string; message: string } | null;
  /** The process working on it and until when its lease holds (a dead process's rebuild is taken over). */
  owner: string | null;
  leaseExpiresAt: number | null;
}

export type DeletesMode = 'reconcile' | 'off';

export type JobStatus = 'scheduled' | 'running' | 'paused' | 'completed' | 'failed';
export const ACTIVE_JOB_STATUSES: readonly JobStatus[] = ['scheduled', 'running', 'paused'];

/** mutateJob refused to re-activate a job: the account is at its active-job limit. */
export class ActiveJobLimitError extends Error {
  override name = 'ActiveJobLimitError';
}

export interface JobTotals {
  rows_read: number;
  documents_added: number;
  documents_updated: number;
  documents_unchanged: number;
  /** Documents removed because their row was deleted (or soft-deleted) at the source. */
  documents_deleted: number;
  rows_skipped: number;
  rows_failed: number;
  chunks_written: number;
  runs_succeeded: number;
  runs_failed: number;
  /** Tokens and requests sent to the embedding provider (absent in totals stored before they were counted: 0). */
  embedding_tokens?: number;
  embedding_requests?: number;
}

export const EMPTY_TOTALS: JobTotals = Object.freeze({
  rows_read: 0,
  documents_added: 0,
  documents_updated: 0,
  documents_unchanged: 0,
  documents_deleted: 0,
  rows_skipped: 0,
  rows_failed: 0,
  chunks_written: 0,
  runs_succeeded: 0,
  runs_failed: 0,
  embedding_tokens: 0,
  embedding_requests: 0,
});

/** Keyset position in the source's own text form (sources/port.ts KeysetPosition). */
export interface Watermark {
  filter: string;
  key: string[];
}

export interface JobRecord {
  id: string;
  accountId: string;
  name: string;
  databaseName: string;
  /** Postgres schema or null. */
  tableSchema: string | null;
  tableName: string;
  /** As the user wrote it ("orders_db.orders"). */
  sourceTable: string;
  kbName: string;
  contentColumns: string[];
  metadataColumns: string[];
  filterColumn: string;
  keyColumns: string[];
  interval: string;
  intervalMs: number;
  startMs: number;
  endMs: number;
  backfill: boolean;
  lookbackSeconds: number;
  batchSize: number;
  status: JobStatus;
  /** The status a run started from, so a crash or shutdown can put the job back (null when idle). */
  statusBeforeRun?: JobStatus | null;
  /**
   * The fleet process that runs the job's current run and until when its claim holds (wall-clock
   * epoch ms), renewed while the run lives (jobs/run-watch.ts). Null or absent when no run is
   * going. A claim that lapsed is taken over by another process (docs/architecture.md, "Fleet").
   */
  runLease?: RunLease | null;
  /** Why a job is `failed` (something to fix). */
  statusReason: string | null;
  nextRunMs: number | null;
  watermark: Watermark | null;
  /** False until the first run has placed the watermark (matters for backfill: false). */
  started: boolean;
  /**
   * Bumped by every change of what a run reads or writes (columns, filter, lookback, batch size,
   * deletes); a run works on the version it started with. Absent in jobs stored before it existed (0).
   */
  configVersion?: number;
  /** `reconcile` (absent in jobs stored before deletes existed): deleted rows leave the knowledge base; `off`: they stay. */
  deletes?: DeletesMode;
  /** A column whose value, when not NULL and not false/0, marks the row deleted (null: none). */
  softDeleteColumn?: string | null;
  /**
   * For `backfill: false`: the position the first run started from, in the order of
   * `filterColumn`; reconciliation compares only the rows after it (the rows before were never
   * synced). Null: every row. Absent: a job started before this was recorded.
   */
  reconcileFrom?: { filterColumn: string; position: Watermark | null };
  /**
   * What runs learnt about the lookback window (sync/lookback-memory.ts): for the job state in
   * `about` (an opaque key: watermark, configuration, lookback), the window's first filter value
   * and its fingerprint when its rows were last read and written. Kept with the job so a restart
   * (or another process) need not read the window again. Absent: not known.
   */
  lookbackSeen?: LookbackSeen;
  /** Tokens a run may embed before it stops at a checkpoint (sync/budget.ts); null or absent: no limit. */
  maxTokensPerRun?: number | null;
  /** The latest measurement of how far the job is behind its source (core/lag.ts); absent: never measured. */
  lag?: LagMeasurement;
  /** Where events are POSTed (jobs/webhooks.ts); null or absent: nowhere. */
  webhookUrl?: string | null;
  /** The HMAC key events are signed with, encrypted (secrets/crypto.ts); returned once, at create. */
  webhookSecret?: string | null;
  /** Lag past which a `job.lagging` event is sent; null or absent: none. */
  alertLagSeconds?: number | null;
  /** A job.lagging event was queued and the job has not caught up since (one event per episode). */
  lagAlerted?: boolean;
  totals: JobTotals;
  lastRun: RunSummary | null;
  createdAt: number;
  updatedAt: number;
}

export interface LookbackSeen {
  about: string;
  /** First filter value of the window; null: the filter column has no time distance (no window). */
  from: string | null;
  /** The window's fingerprint as last read and written; null until then. */
  window: string | null;
}

/** What a job shows of its latest run. */
export interface RunSummary {
  id: string;
  trigger: RunTrigger;
  status: RunStatus;
  startedAt: number;
  finishedAt: number | null;
  error: { code: string; message: string } | null;
  /** The running run's progress as last written (sync/run-progress.ts); absent or null otherwise. */
  progress?: RunProgress | null;
}

export type RunTrigger = 'schedule' | 'manual' | 'catch_up';
export type RunStatus = 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface RunRecord {
  id: string;
  jobId: string;
  trigger: RunTrigger;
  status: RunStatus;
  startedAt: number;
  finishedAt: number | null;
  rowsRead: number;
  documentsAdded: number;
  documentsUpdated: number;
  documentsUnchanged: number;
  rowsSkipped: number;
  rowsFailed: number;
  /** Absent in runs stored before deletes existed. */
  documentsDeleted?: number;
  /** What delete reconciliation read from the source (null when it did not run). */
  reconcile?: ReconcileStats | null;
  chunksWritten: number;
  /** Tokens and requests sent to the embedding provider (sync/budget.ts); absent in runs stored before: 0. */
  embeddingTokens?: number;
  embeddingRequests?: number;
  /** The run stopped at the job's max_tokens_per_run after its last checkpoint; the next run continues. */
  budgetReached?: boolean;
  watermarkStart: Watermark | null;
  watermarkEnd: Watermark | null;
  error: { code: string; message: string } | null;
  /** The process that runs it, or ran it last (GET /health `process_id`). Absent in runs recorded before fleets. */
  processId?: string;
  /** The job's lag as this run measured it (core/lag.ts), written to the job with the run's end. */
  lag?: LagMeasurement;
  /**
   * While the run works: rows done, the estimated total, percent and ETA, written every second or
   * so (sync/run-progress.ts); null once it has ended. Absent in runs stored before it existed.
   */
  progress?: RunProgress | null;
}

export interface ReconcileStats {
  /** Rounds of bucket aggregates (1 when nothing differs). */
  rounds: number;
  /** Bucket aggregates the source returned, and keys it listed for the buckets that differed. */
  sourceAggregates: number;
  sourceKeys: number;
  /** False when there were too many differences for one run; the next run goes on. */
  complete: boolean;
  durationMs: number;
}

export interface Page<T> {
  items: T[];
  /** Opaque cursor for the next page, or null at the end. */
  next: string | null;
}

export interface JobListQuery {
  status?: JobStatus;
  kbName?: string;
  limit: number;
  cursor: string | null;
}

export type CreateJobOutcome = { ok: true } | { ok: false; reason: 'duplicate' | 'limit' | 'kb_missing' | 'database_missing' };

export type WebhookEvent = 'run.failed' | 'job.failed' | 'job.lagging';
export type WebhookStatus = 'pending' | 'delivered' | 'failed';

/** One event for a job's webhook_url and its delivery state. */
export interface WebhookDelivery {
  /** `whd_…`, time-ordered. */
  id: string;
  jobId: string;
  event: WebhookEvent;
  url: string;
  /** The JSON body as sent (and signed), byte for byte. */
  payload: string;
  status: WebhookStatus;
  attempts: number;
  lastError: string | null;
  createdAt: number;
  deliveredAt: number | null;
  /** When the next attempt is due (epoch ms). */
  nextAttemptAt: number;
}

export type WebhookOutcome = Pick<WebhookDelivery, 'status' | 'attempts' | 'lastError' | 'deliveredAt' | 'nextAttemptAt'>;

/** A source row a run could not turn into a document or embed (API.md, "Failed rows"). */
export interface FailureInput {
  /** The document id the row maps to (core/documents.ts documentIdFromKey). */
  docId: string;
  /** The row's key values in the source's text form, so a retry can read the row again. */
  key: string[];
  /** Why, in words the user can act on (never a secret). */
  reason: string;
}

export interface FailureRecord extends FailureInput {
  jobId: string;
  firstFailedAt: number;
  lastFailedAt: number;
  /** Runs that failed this row, the first included. */
  attempts: number;
}

/** Who owns databases, knowledge bases and jobs (their `accountId`). */
export interface AccountRecord {
  id: string;
  /** Unique; `default` owns what was created before authentication was switched on. */
  name: string;
  createdAt: number;
}

/** An API key as stored: never the key itself, only its SHA-256 and a display prefix. */
export interface ApiKeyRecord {
  id: string;
  accountId: string;
  /** Hex SHA-256 of the whole key (unique). */
  hash: string;
  /** The key's first characters (`kbs_` + 8), to tell keys apart. */
  prefix: string;
  createdAt: number;
  revokedAt: number | null;
}

/** A named lease as stored. */
export interface LeaseRecord {
  name: string;
  owner: string;
  expiresAt: number;
}

export interface ControlStore {
  insertDatabase(record: DatabaseRecord): Promise<'ok' | 'duplicate'>;
  getDatabase(accountId: string, name: string): Promise<DatabaseRecord | null>;
  listDatabases(accountId: string): Promise<DatabaseRecord[]>;
  /** Deletes it unless a job of the account uses it (checked in the same statement); false otherwise. */
  deleteDatabase(accountId: string, name: string): Promise<boolean>;

  insertKnowledgeBase(record: KnowledgeBaseRecord): Promise<'ok' | 'duplicate'>;
  getKnowledgeBase(accountId: string, name: string): Promise<KnowledgeBaseRecord | null>;
  listKnowledgeBases(accountId: string): Promise<KnowledgeBaseRecord[]>;
  /** Deletes it unless a job of the account targets it (checked in the same statement); false otherwise. */
  deleteKnowledgeBase(accountId: string, name: string): Promise<boolean>;
  getKnowledgeBaseById(id: string): Promise<KnowledgeBaseRecord | null>;
  /**
   * A PATCH that needs no rebuild (description, price, API key for the same model), in one
   * transaction; false if there is no such knowledge base.
   */
  updateKnowledgeBaseSettings(accountId: string, name: string, settings: KnowledgeBaseSettings): Promise<boolean>;

  // --- Rebuilds (kb/rebuild.ts); each a conditional write in one transaction ---
  /**
   * Records `rebuild` (status running, no owner) on the knowledge base unless one is running or
   * swapping; `description`, when given, is set in the same transaction.
   */
  startRebuild(
    accountId: string,
    name: string,
    rebuild: RebuildRecord,
    description?: string | null,
  ): Promise<'ok' | 'not_found' | 'busy'>;
  /**
   * Leases one knowledge base whose rebuild is running or swapping and has no live lease (no
   * owner, or a lease expired before `now`) to `owner` until `now + leaseMs`; null if none.
   */
  claimRebuild(owner: string, now: number, leaseMs: number): Promise<KnowledgeBaseRecord | null>;
  /**
   * Progress and lease renewal by the owner of a running rebuild: answers the rebuild's status
   * afterwards ('cancelled' tells the worker to stop), or null when `owner` no longer holds it
   * (nothing written).
   */
  saveRebuildProgress(
    kbId: string,
    owner: string,
    progress: { documentsDone: number; documentsTotal: number; cursor: string | null; leaseExpiresAt: number },
  ): Promise<RebuildStatus | null>;
  /**
   * Moves the rebuild from one of `from` to `to` (with `finishedAt` and `error` when given), only
   * if it is in one of `from` and, when `owner` is given, leased by it; true if it moved. Used for
   * cancel (running -> cancelled), the swap's start (running -> swapping) and failures.
   */
  transitionRebuild(
    kbId: string,
    from: readonly RebuildStatus[],
    to: RebuildStatus,
    options: { owner?: string; finishedAt?: number; error?: { code: string; message: string } | null },
  ): Promise<boolean>;
  /**
   * The swap's end, one transaction, if the rebuild is swapping and leased by `owner`: status
   * succeeded, and the knowledge base takes the rebuild's embedding, secret, chunking and
   * collection. False (nothing written) otherwise.
   */
  finishRebuild(kbId: string, owner: string, finishedAt: number): Promise<boolean>;

  /**
   * Inserts unless the name is taken, its knowledge base or database no longer exists, or the
   * account already has `maxActive` active jobs, all checked in the transaction that writes it.
   */
  insertJob(record: JobRecord, maxActive: number): Promise<CreateJobOutcome>;
  /** By id, else by name, within the account. */
  getJob(accountId: string, idOrName: string): Promise<JobRecord | null>;
  getJobById(id: string): Promise<JobRecord | null>;
  listJobs(accountId: string, query: JobListQuery): Promise<Page<JobRecord>>;
  /**
   * Atomic read-modify-write of one job: `change` sees the stored record and returns the new one
   * (or null to leave it). Returns the record as stored afterwards, or null when the job is gone.
   * Every writer that could race (API, scheduler, sync run) goes through this. When `run` is
   * given and `change` returns a record, the run is inserted or replaced in the same transaction
   * (a claimed job always has its run; a checkpoint's watermark and counters agree). With
   * `maxActive`, a change that would make an inactive job active while its account already has
   * that many active jobs writes nothing and throws ActiveJobLimitError.
   */
  mutateJob(
    id: string,
    change: (job: JobRecord) => JobRecord | null,
    run?: RunRecord,
    options?: { maxActive?: number },
  ): Promise<JobRecord | null>;
  /** Jobs in one status across accounts (takeover of running jobs, GET /health). */
  listJobsWithStatus(status: JobStatus, limit: number): Promise<JobRecord[]>;
  deleteJob(id: string): Promise<boolean>;
  /** Jobs per status across accounts (metrics). */
  countJobsByStatus(): Promise<Partial<Record<JobStatus, number>>>;
  /** Jobs that count against the limit: scheduled, running or paused. */
  countActiveJobs(accountId: string): Promise<number>;
  countJobsUsingDatabase(accountId: string, databaseName: string): Promise<number>;
  countJobsUsingKnowledgeBase(accountId: string, kbName: string): Promise<number>;
  /** Jobs due for a run at `now` (status scheduled, next_run ≤ now), across accounts. */
  listDueJobs(now: number, limit: number): Promise<JobRecord[]>;
  /** Earliest next_run of a scheduled job (later than `after`, when given), or null. */
  nextDueTime(after?: number): Promise<number | null>;

  insertRun(record: RunRecord): Promise<void>;
  updateRun(record: RunRecord): Promise<void>;
  getRun(jobId: string, runId: string): Promise<RunRecord | null>;
  listRuns(jobId: string, page: { limit: number; cursor: string | null }): Promise<Page<RunRecord>>;
  /** Runs recorded `running`, across jobs (the fleet's takeover sweep looks for ones whose process died). */
  listRunningRuns(): Promise<RunRecord[]>;

  /**
   * Failed rows of a job, one per document id. Upserts: a row failing again gets attempts + 1,
   * `lastFailedAt = now` and the new reason and key, and keeps its `firstFailedAt`. Its own
   * transaction, apart from the batch's checkpoint (mutateJob): a crash between the two only
   * means the batch is read and recorded again (at worst one extra attempt is counted). A job
   * that no longer exists records nothing.
   */
  recordFailures(jobId: string, failures: FailureInput[], now: number): Promise<void>;
  /**
   * Forgets the failures of these document ids (rows synced since); answers how many were there.
   * Called for every written batch, so it is one statement whatever the number of ids (up to
   * 10,000) and cheap when none match.
   */
  clearFailures(jobId: string, docIds: string[]): Promise<number>;
  /**
   * Writes failed rows as they are, times and attempts included, replacing any of the same job
   * and document id (`kbsync store copy`). Jobs must exist.
   */
  importFailures(failures: FailureRecord[]): Promise<void>;
  /** Ordered by document id; the cursor is the last document id of the previous page. */
  listFailures(jobId: string, page: { limit: number; cursor: string | null }): Promise<Page<FailureRecord>>;
  countFailures(jobId: string): Promise<number>;

  // Webhook deliveries (jobs/webhooks.ts; API.md "Cost and freshness"), deleted with their job.
  /** Queues a delivery (status `pending`); nothing when the job is gone. */
  enqueueWebhook(delivery: WebhookDelivery): Promise<void>;
  /**
   * Claims up to `limit` deliveries due at `now` (pending, next attempt due, no live claim) for
   * `owner` until `now + holdMs`, atomically: two processes never claim the same one. A claim that
   * lapsed (its process died mid-send) may be claimed again.
   */
  claimWebhooks(owner: string, now: number, holdMs: number, limit: number): Promise<WebhookDelivery[]>;
  /** Records an attempt's outcome and drops the claim — only while `owner` holds it; false otherwise. */
  settleWebhook(id: string, owner: string, outcome: WebhookOutcome): Promise<boolean>;
  /** A job's deliveries, newest first. */
  listWebhooks(jobId: string, page: { limit: number; cursor: string | null }): Promise<Page<WebhookDelivery>>;

  /**
   * A named lease (a fleet process's heartbeat, jobs/fleet.ts): granted when free, expired,
   * already `owner`'s, or held by `takeOverFrom` (a holder known to be dead). Times are
   * wall-clock epoch ms.
   */
  acquireLease(
    name: string,
    owner: string,
    ttlMs: number,
    now: number,
    takeOverFrom?: string,
  ): Promise<{ acquired: boolean; holder: string | null }>;
  releaseLease(name: string, owner: string): Promise<void>;
  /** Leases not expired at `now` (expires_at > now) whose name starts with `prefix`, in no particular order (the fleet's live processes). */
  listLeases(prefix: string, now: number): Promise<LeaseRecord[]>;

  // --- accounts and API keys (API.md, "Accounts and keys") ---
  /**
   * Inserts an account, and with `firstKey` its first key in the same transaction; 'duplicate'
   * when the name is taken (nothing written).
   */
  insertAccount(record: AccountRecord, firstKey?: ApiKeyRecord): Promise<'ok' | 'duplicate'>;
  /** By id, else by name. */
  getAccount(idOrName: string): Promise<AccountRecord | null>;
  /** Every account, oldest first. */
  listAccounts(): Promise<AccountRecord[]>;
  /** The account must exist (throws otherwise). */
  insertApiKey(record: ApiKeyRecord): Promise<void>;
  /** The key with this hash, revoked or not. */
  findApiKeyByHash(hash: string): Promise<ApiKeyRecord | null>;
  /** An account's keys, revoked ones included, oldest first. */
  listApiKeys(accountId: string): Promise<ApiKeyRecord[]>;
  /**
   * Revokes one key of the account at `now` (a key already revoked keeps its time); the key as
   * stored afterwards, or null when the account has no such key.
   */
  revokeApiKey(accountId: string, keyId: string, now: number): Promise<ApiKeyRecord | null>;

  /** Store reachable (for /health). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
