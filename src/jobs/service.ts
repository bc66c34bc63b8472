/**
 * Jobs: create, inspect, change, pause, resume, delete, and their run history (API.md, "Jobs").
 * Validation collects every problem before answering (core/errors.ts problemsToError).
 */
import type { Clock } from '../core/clock.js';
import { AppError, conflict, notFound, problemsToError, type Problem } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { parseDurationSeconds } from '../core/interval.js';
import { checkSchedule, checkWindow, placeOnGrid } from '../core/job-rules.js';
import { CreateJobBody, EstimateBody, PatchJobBody } from '../core/schemas.js';
import { fieldsWithIssues, issuesToProblems } from '../core/validation.js';
import type { DatabaseService } from '../databases/service.js';
import { measureLagNow } from './lag-probe.js';
import { type EmbeddingHostPolicy, embeddingHostRefusal } from '../core/embedding-hosts.js';
import type { SecretBox } from '../secrets/crypto.js';
import { newWebhookSecret } from './webhooks.js';
import type { ColumnInfo } from '../sources/port.js';
import {
  ActiveJobLimitError,
  EMPTY_TOTALS,
  type ControlStore,
  type FailureRecord,
  type JobListQuery,
  type JobRecord,
  type Page,
  type RunRecord,
  type WebhookDelivery,
} from '../store/port.js';
import {
  checkColumn,
  checkFilterColumn,
  resolveSourceTable,
  TIME_KINDS,
  type ResolvedSource,
} from './resolve-source.js';
import { type Estimator, estimateJob, type JobEstimate } from './estimates.js';
import { DEFAULT_ESTIMATE_ROWS } from '../sync/estimate.js';

export const DEFAULT_BATCH_SIZE = 500;
export const DEFAULT_TIME_LOOKBACK_SECONDS = 300;

const INVALID_JOB = 'Invalid job configuration';

export interface JobServiceOptions {
  maxActiveJobs: number;
  /**
   * Webhooks: the key webhook secrets are encrypted with, and the host rules a webhook_url
   * follows (those of embedding.base_url: core/embedding-hosts.ts). Absent: webhook_url refused.
   */
  webhooks?: { secrets: SecretBox; hosts: EmbeddingHostPolicy };
}

/** Run-now is delegated to the scheduler. */
export interface RunStarter {
  /**
   * A manual run now (409 CONFLICT while one is in progress). `retryFailures`: the run first reads
   * the job's failed rows again by key (POST /jobs/{job}/failures/retry), then goes on as usual.
   */
  runNow(job: JobRecord, options?: { retryFailures?: boolean }): Promise<RunRecord>;
  /** The job as it will be once the end of its last run is written (the store may be failing). */
  pendingView?(job: JobRecord): JobRecord;
  /** Cancels the job's run in progress, if any, its source query in flight included (pause, delete). */
  stopRun?(jobId: string, reason: string): void;
}

export class JobService {
  private readonly listeners: Array<() => void> = [];

  constructor(
    private readonly store: ControlStore,
    private readonly databases: DatabaseService,
    private readonly clock: Clock,
    private readonly options: JobServiceOptions,
    private readonly runner: RunStarter,
    /** What a run would embed (sync/estimate.ts); without it, estimates answer NOT_IMPLEMENTED. */
    private readonly estimator?: Estimator,
  ) {}

  /** The scheduler subscribes to wake up when jobs change. */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** With `dry_run: true`, nothing is created: `estimate` is what the job's first run would embed. */
  async create(accountId: string, body: unknown): Promise<{ job: JobRecord; warnings: string[]; estimate?: JobEstimate; webhookSecret?: string }> {
    const input = asObject(body);
    const parsed = CreateJobBody.safeParse(input, { reportInput: true });
    const problems: Problem[] = parsed.success ? [] : issuesToProblems(parsed.error.issues);
    const broken = parsed.success ? new Set<string>() : fieldsWithIssues(parsed.error.issues);
    const ok = (field: string) => field in input && !broken.has(field);
    const str = (field: string) => (ok(field) ? (input[field] as string) : undefined);

    const schedule = checkSchedule(
      { interval: str('interval'), start_time: str('start_time'), end_time: str('end_time') },
      problems,
    );
    if (schedule.startMs !== undefined && schedule.endMs !== undefined) {
      checkWindow(schedule.startMs, schedule.endMs, problems);
    }

    const kbName = str('kb_name');
    const kbExists = kbName !== undefined && (await this.store.getKnowledgeBase(accountId, kbName)) !== null;
    if (kbName !== undefined && !kbExists) {
      problems.push({
        code: 'INVALID_KB',
        detail: `knowledge base '${kbName}' does not exist (see POST /knowledge_bases/create)`,
      });
    }

    const sourceTable = str('source_table');
    const source = sourceTable
      ? await resolveSourceTable(this.databases, accountId, sourceTable, problems)
      : null;
    if (source && kbName !== undefined && kbExists) {
      // Document ids are the source's keys, so two tables in one knowledge base would overwrite
      // each other's documents (row 17 of orders and row 17 of customers).
      const other = await this.otherSourceInKb(accountId, kbName, source);
      if (other) {
        problems.push({
          code: 'INVALID_KB',
          detail: `knowledge base '${kbName}' already receives '${other.sourceTable}' (job '${other.name}'); a knowledge base receives one source table, because document ids are the table's keys — use another knowledge base`,
        });
      }
    }
    let columns: CheckedColumns | null = null;
    if (source && sourceTable) {
      columns = checkColumns(
        source,
        sourceTable,
        {
          content: ok('content_columns') ? (input.content_columns as string[]) : undefined,
          metadata: ok('metadata_columns') ? (input.metadata_columns as string[]) : undefined,
          filter: str('filter_column'),
          lookback: ok('lookback') ? (input.lookback as string | number) : undefined,
          softDelete: ok('soft_delete_column') ? (input.soft_delete_column as string | null) : undefined,
        },
        problems,
      );
    }

    if (ok('webhook_url')) this.checkWebhookUrl(input.webhook_url as string | null, problems);
    if (problems.length > 0 || !parsed.success || !source || !columns)
      throw problemsToError(problems, INVALID_JOB);
    const data = parsed.data;
    const now = this.clock.now();
    // Generated for every job, so a webhook_url added later by PATCH signs with it too; shown once, here.
    const webhookSecret = this.options.webhooks ? newWebhookSecret() : null;
    const grid = { startMs: schedule.startMs!, endMs: schedule.endMs!, intervalMs: schedule.interval!.ms };
    const placement = placeOnGrid(grid, now);
    const job: JobRecord = {
      id: newId('job', now),
      accountId,
      name: data.job_name,
      databaseName: source.database.name,
      tableSchema: source.table.schema,
      tableName: source.table.name,
      sourceTable: data.source_table,
      kbName: data.kb_name,
      contentColumns: data.content_columns,
      metadataColumns: data.metadata_columns ?? [],
      filterColumn: data.filter_column,
      keyColumns: source.keyColumns,
      interval: schedule.interval!.normalized,
      intervalMs: grid.intervalMs,
      startMs: grid.startMs,
      endMs: grid.endMs,
      backfill: data.backfill ?? true,
      lookbackSeconds: columns.lookbackSeconds,
      batchSize: data.batch_size ?? DEFAULT_BATCH_SIZE,
      deletes: data.deletes ?? 'reconcile',
      softDeleteColumn: data.soft_delete_column ?? null,
      maxTokensPerRun: data.max_tokens_per_run ?? null,
      webhookUrl: data.webhook_url ?? null,
      webhookSecret: webhookSecret === null ? null : this.options.webhooks!.secrets.encrypt(webhookSecret),
      alertLagSeconds: data.alert_lag_seconds ?? null,
      status: placement.status,
      statusReason: null,
      nextRunMs: placement.nextRunMs,
      watermark: null,
      started: false,
      totals: { ...EMPTY_TOTALS },
      lastRun: null,
      createdAt: now,
      updatedAt: now,
    };
    if (data.dry_run === true) {
      // Validated like a real create, name included; the answer is the first run's estimate.
      if (await this.store.getJob(accountId, job.name)) throw duplicateJob(job.name);
      const estimate = await this.estimateOf(job, { dryRun: true, maxRows: DEFAULT_ESTIMATE_ROWS });
      return { job, warnings: placement.warning ? [placement.warning] : [], estimate };
    }
    const outcome = await this.store.insertJob(job, this.options.maxActiveJobs);
    if (!outcome.ok) {
      switch (outcome.reason) {
        case 'duplicate':
          throw duplicateJob(job.name);
        case 'kb_missing':
          throw new AppError('INVALID_KB', INVALID_JOB, [`knowledge base '${job.kbName}' does not exist (it was deleted meanwhile)`]);
        case 'database_missing':
          throw new AppError('INVALID_TABLE', INVALID_JOB, [`database '${job.databaseName}' is not registered (it was deleted meanwhile)`]);
        default:
          throw this.limitError();
      }
    }
    this.changed();
    return { job, warnings: placement.warning ? [placement.warning] : [], ...(webhookSecret !== null ? { webhookSecret } : {}) };
  }

  async get(accountId: string, idOrName: string): Promise<JobRecord> {
    const job = await this.store.getJob(accountId, idOrName);
    if (!job) throw notFound('job', idOrName);
    return this.runner.pendingView?.(job) ?? job;
  }

  async list(accountId: string, query: JobListQuery): Promise<Page<JobRecord>> {
    const page = await this.store.listJobs(accountId, query);
    return { ...page, items: page.items.map((job) => this.runner.pendingView?.(job) ?? job) };
  }

  /**
   * One job with its lag measured now (jobs/lag-probe.ts): the job as stored with `lag` replaced
   * by the fresh measurement, or as stored when none could be taken. Nothing is written.
   */
  async getWithFreshLag(accountId: string, idOrName: string, signal?: AbortSignal): Promise<JobRecord> {
    const job = await this.get(accountId, idOrName);
    const lag = await measureLagNow(this.store, this.databases, job, signal, () => this.clock.now());
    return lag === null ? job : { ...job, lag };
  }

  async patch(
    accountId: string,
    idOrName: string,
    body: unknown,
  ): Promise<{ job: JobRecord; warnings: string[]; webhookSecret?: string }> {
    const job = await this.get(accountId, idOrName);
    const input = asObject(body);
    const parsed = PatchJobBody.safeParse(input, { reportInput: true });
    const problems: Problem[] = parsed.success ? [] : issuesToProblems(parsed.error.issues);
    const broken = parsed.success ? new Set<string>() : fieldsWithIssues(parsed.error.issues);
    const ok = (field: string) => field in input && !broken.has(field);
    const str = (field: string) => (ok(field) ? (input[field] as string) : undefined);
    if (Object.keys(input).length === 0) {
      problems.push({ code: 'INVALID_REQUEST', detail: 'body must change at least one field' });
    }

    const schedule = checkSchedule(
      { interval: str('interval'), start_time: str('start_time'), end_time: str('end_time') },
      problems,
    );
    const startMs = schedule.startMs ?? job.startMs;
    const endMs = schedule.endMs ?? job.endMs;
    if (
      (str('start_time') === undefined || schedule.startMs !== undefined) &&
      (str('end_time') === undefined || schedule.endMs !== undefined)
    ) {
      checkWindow(startMs, endMs, problems);
    }

    const touchesColumns = ['content_columns', 'metadata_columns', 'filter_column', 'lookback', 'soft_delete_column'].some(ok);
    // What a run reads or writes: refused while a run is in progress, and a new config_version.
    const changesRun = touchesColumns || ok('batch_size') || ok('deletes');
    const running = () =>
      conflict('Job is running', [
        `job '${job.name}' has a run in progress; pause it (the run stops at its next batch) or wait, then change its columns`,
      ]);
    // Answered early, before introspecting the source; decided again inside the write below.
    if (job.status === 'running' && changesRun) throw running();
    let columns: CheckedColumns | null = null;
    if (touchesColumns) {
      const source = await resolveSourceTable(this.databases, accountId, job.sourceTable, problems);
      if (source) {
        columns = checkColumns(
          source,
          job.sourceTable,
          {
            content: ok('content_columns') ? (input.content_columns as string[]) : job.contentColumns,
            metadata: ok('metadata_columns') ? (input.metadata_columns as string[]) : job.metadataColumns,
            filter: str('filter_column') ?? job.filterColumn,
            // An unchanged filter column keeps the job's lookback; a new one gets its own default.
            lookback: ok('lookback')
              ? (input.lookback as string | number)
              : (str('filter_column') ?? job.filterColumn) === job.filterColumn
                ? job.lookbackSeconds
                : undefined,
            softDelete: ok('soft_delete_column') ? (input.soft_delete_column as string | null) : undefined,
          },
          problems,
        );
      }
    }
    if (ok('webhook_url')) this.checkWebhookUrl(input.webhook_url as string | null, problems);
    if (problems.length > 0 || !parsed.success || (touchesColumns && !columns))
      throw problemsToError(problems, INVALID_JOB);

    const data = parsed.data;
    const now = this.clock.now();
    const warnings: string[] = [];
    let addedSecret: string | undefined;
    let refusedRunning = false;
    let refusedStale = false;
    // Re-activating a completed job (a later end_time) respects the active-job limit, atomically.
    const stored = await this.limited(() =>
      this.store.mutateJob(
        job.id,
        (current) => {
          // A run works on the configuration it started with (SEMANTICS.md): whether one is in
          // progress is decided here, in the transaction that writes, not by the read above.
          if (changesRun && current.status === 'running') {
            refusedRunning = true;
            return null;
          }
          // Checked against the job as read above (lookback against its filter column…): another
          // change of the run's configuration since then makes this one stale (optimistic lock).
          if (changesRun && (current.configVersion ?? 0) !== (job.configVersion ?? 0)) {
            refusedStale = true;
            return null;
          }
          const next: JobRecord = { ...current, startMs, endMs, updatedAt: now };
          if (changesRun) next.configVersion = (current.configVersion ?? 0) + 1;
          if (schedule.interval) {
            next.interval = schedule.interval.normalized;
            next.intervalMs = schedule.interval.ms;
          }
          if (data.batch_size !== undefined) next.batchSize = data.batch_size;
          // Not part of what a run reads or writes: a run in progress keeps the budget it started with.
          if (data.max_tokens_per_run !== undefined) next.maxTokensPerRun = data.max_tokens_per_run;
          if (data.webhook_url !== undefined) next.webhookUrl = data.webhook_url;
          // A job created before webhooks existed has no secret: it gets one now, shown in this answer only.
          if (data.webhook_url && !current.webhookSecret && this.options.webhooks) {
            addedSecret = newWebhookSecret();
            next.webhookSecret = this.options.webhooks.secrets.encrypt(addedSecret);
          }
          if (data.alert_lag_seconds !== undefined) next.alertLagSeconds = data.alert_lag_seconds;
          if (data.deletes !== undefined) next.deletes = data.deletes;
          // A new mark needs no re-read: reconciliation removes the rows it marks and brings back
          // the rows it no longer marks.
          if (data.soft_delete_column !== undefined) next.softDeleteColumn = data.soft_delete_column;
          const changed = (a: string[], b: string[]) => a.length !== b.length || a.some((x, i) => x !== b[i]);
          if (
            (data.content_columns && changed(data.content_columns, current.contentColumns)) ||
            (data.metadata_columns && changed(data.metadata_columns, current.metadataColumns))
          ) {
            // Documents are built from these columns: the next run re-reads every row so each document
            // is rebuilt (rows whose document comes out the same are not re-embedded).
            next.watermark = null;
          }
          if (data.content_columns) next.contentColumns = data.content_columns;
          if (data.metadata_columns) next.metadataColumns = data.metadata_columns;
          if (columns) {
            next.lookbackSeconds = columns.lookbackSeconds;
            if (data.filter_column !== undefined && data.filter_column !== current.filterColumn) {
              // A watermark is a position in the old column's order; it means nothing in the new one.
              // The next run starts over from the beginning (`started` stays, so backfill: false does
              // not skip rows that were never synced).
              next.filterColumn = data.filter_column;
              next.watermark = null;
            }
          }
          if (current.status === 'running') {
            // The run in progress ends on the new grid: its next tick (or completion) comes from here.
            next.nextRunMs = placeOnGrid({ startMs, endMs, intervalMs: next.intervalMs }, now).nextRunMs;
          }
          if (current.status === 'scheduled' || current.status === 'completed') {
            const placement = placeOnGrid({ startMs, endMs, intervalMs: next.intervalMs }, now);
            next.status = placement.status;
            next.nextRunMs = placement.nextRunMs;
            if (placement.warning) warnings.push(placement.warning);
          }
          return next;
        },
        undefined,
        { maxActive: this.options.maxActiveJobs },
      ),
    );
    if (!stored) throw notFound('job', idOrName);
    if (refusedRunning) throw running();
    if (refusedStale) {
      throw conflict('Job changed meanwhile', [
        `job '${job.name}' was changed by another request while this one was checked; read it again and retry`,
      ]);
    }
    this.changed();
    return { job: stored, warnings, ...(addedSecret !== undefined && stored.webhookSecret ? { webhookSecret: addedSecret } : {}) };
  }

  async pause(accountId: string, idOrName: string): Promise<JobRecord> {
    const job = await this.get(accountId, idOrName);
    let refusal: string | null = null;
    const stored = await this.store.mutateJob(job.id, (current) => {
      if (current.status === 'paused') return null;
      if (current.status !== 'scheduled' && current.status !== 'running') {
        refusal = `job '${current.name}' is ${current.status}; only scheduled or running jobs can be paused`;
        return null;
      }
      // A running run notices the pause at its next batch boundary and stops there.
      return { ...current, status: 'paused', nextRunMs: null, updatedAt: this.clock.now() };
    });
    if (!stored) throw notFound('job', idOrName);
    if (refusal) throw conflict('Job cannot be paused', [refusal]);
    // The run stops now, even inside a source query blocked on a lock.
    this.runner.stopRun?.(job.id, 'job paused');
    this.changed();
    return stored;
  }

  async resume(accountId: string, idOrName: string): Promise<{ job: JobRecord; warnings: string[] }> {
    const job = await this.get(accountId, idOrName);
    const now = this.clock.now();
    let refusal: string | null = null;
    let warning: string | null = null;
    const stored = await this.limited(() =>
      this.store.mutateJob(
        job.id,
        (current) => {
          if (current.status === 'scheduled') return null;
          if (current.status === 'completed') {
            refusal = `job '${current.name}' is completed; extend end_time with PATCH to run it again`;
            return null;
          }
          // During a manual run of a scheduled job there is nothing to resume.
          if (current.status === 'running' && (current.statusBeforeRun ?? 'scheduled') === 'scheduled')
            return null;
          const placement = placeOnGrid(
            { startMs: current.startMs, endMs: current.endMs, intervalMs: current.intervalMs },
            now,
          );
          warning = placement.warning;
          return {
            ...current,
            // During a manual run of a paused or failed job, it is scheduled again once the run ends.
            ...(current.status === 'running'
              ? { statusBeforeRun: 'scheduled' as const }
              : { status: placement.status }),
            statusReason: null,
            nextRunMs: placement.nextRunMs,
            updatedAt: now,
          };
        },
        undefined,
        { maxActive: this.options.maxActiveJobs },
      ),
    );
    if (!stored) throw notFound('job', idOrName);
    if (refusal) throw conflict('Job cannot be resumed', [refusal]);
    this.changed();
    return { job: stored, warnings: warning ? [warning] : [] };
  }

  async delete(accountId: string, idOrName: string): Promise<JobRecord> {
    const job = await this.get(accountId, idOrName);
    await this.store.deleteJob(job.id);
    this.runner.stopRun?.(job.id, 'job deleted');
    this.changed();
    return job;
  }

  async runNow(accountId: string, idOrName: string): Promise<RunRecord> {
    const job = await this.get(accountId, idOrName);
    return this.runner.runNow(job);
  }

  /**
   * POST /jobs/{job}/estimate: what the next run would embed, without embedding (sync/estimate.ts).
   * `body`: optional `{max_rows}`. `signal`: the client went away (the source query is cancelled).
   */
  async estimate(accountId: string, idOrName: string, body: unknown, signal?: AbortSignal): Promise<JobEstimate> {
    const parsed = EstimateBody.safeParse(body ?? {}, { reportInput: true });
    if (!parsed.success) throw problemsToError(issuesToProblems(parsed.error.issues), 'Invalid estimate request');
    const job = await this.get(accountId, idOrName);
    const maxRows = parsed.data.max_rows ?? DEFAULT_ESTIMATE_ROWS;
    return this.estimateOf(job, { dryRun: false, maxRows, ...(signal ? { signal } : {}) });
  }

  /** A webhook_url must name a host the server may POST to (the rules of embedding.base_url). */
  private checkWebhookUrl(url: string | null, problems: Problem[]): void {
    if (url === null) return;
    const hooks = this.options.webhooks;
    if (hooks === undefined) {
      problems.push({ code: 'INVALID_REQUEST', detail: 'webhook_url: this server sends no webhooks' });
      return;
    }
    const refusal = embeddingHostRefusal(url, hooks.hosts, 'webhook_url');
    if (refusal !== null) problems.push({ code: 'INVALID_REQUEST', detail: refusal });
  }

  private estimateOf(job: JobRecord, options: { dryRun: boolean; maxRows: number; signal?: AbortSignal }): Promise<JobEstimate> {
    if (!this.estimator) throw new AppError('NOT_IMPLEMENTED', 'Estimates are not available', ['this server has no estimator configured']);
    return estimateJob(this.store, this.estimator, job, options);
  }

  /** The job's failed rows, by document id (API.md, "Failed rows"). */
  /** The job's webhook deliveries, newest first. */
  async webhooks(accountId: string, idOrName: string, page: { limit: number; cursor: string | null }): Promise<Page<WebhookDelivery>> {
    const job = await this.get(accountId, idOrName);
    return this.store.listWebhooks(job.id, page);
  }

  async failures(
    accountId: string,
    idOrName: string,
    page: { limit: number; cursor: string | null },
  ): Promise<Page<FailureRecord>> {
    const job = await this.get(accountId, idOrName);
    return this.store.listFailures(job.id, page);
  }

  /** POST /jobs/{job}/failures/retry: a manual run that reads the failed rows again first. */
  async retryFailures(accountId: string, idOrName: string): Promise<RunRecord> {
    const job = await this.get(accountId, idOrName);
    if ((await this.store.countFailures(job.id)) === 0) {
      throw conflict('No failed rows to retry', [`job '${job.name}' has no failed rows`]);
    }
    return this.runner.runNow(job, { retryFailures: true });
  }

  async runs(
    accountId: string,
    idOrName: string,
    page: { limit: number; cursor: string | null },
  ): Promise<Page<RunRecord>> {
    const job = await this.get(accountId, idOrName);
    return this.store.listRuns(job.id, page);
  }

  async run(accountId: string, idOrName: string, runId: string): Promise<RunRecord> {
    const job = await this.get(accountId, idOrName);
    const run = await this.store.getRun(job.id, runId);
    if (!run) throw notFound('run', runId);
    return run;
  }

  private async otherSourceInKb(
    accountId: string,
    kbName: string,
    source: ResolvedSource,
  ): Promise<JobRecord | null> {
    let cursor: string | null = null;
    do {
      const page = await this.store.listJobs(accountId, { kbName, limit: 200, cursor });
      const other = page.items.find(
        (j) =>
          j.databaseName !== source.database.name ||
          j.tableSchema !== source.table.schema ||
          j.tableName !== source.table.name,
      );
      if (other) return other;
      cursor = page.next;
    } while (cursor);
    return null;
  }

  /** Runs a store write that may hit the active-job limit, answering 429 when it does. */
  private async limited<T>(write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      if (err instanceof ActiveJobLimitError) throw this.limitError();
      throw err;
    }
  }

  private limitError(): AppError {
    return new AppError('JOB_LIMIT_EXCEEDED', 'Too many active jobs', [
      `the account already has ${this.options.maxActiveJobs} active jobs (scheduled, running or paused); delete one or wait for one to complete`,
    ]);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}

interface CheckedColumns {
  filter: ColumnInfo;
  lookbackSeconds: number;
}

function checkColumns(
  source: ResolvedSource,
  sourceTable: string,
  input: { content?: string[]; metadata?: string[]; filter?: string; lookback?: string | number; softDelete?: string | null },
  problems: Problem[],
): CheckedColumns | null {
  const before = problems.length;
  for (const [field, list] of [
    ['content_columns', input.content],
    ['metadata_columns', input.metadata],
  ] as const) {
    if (!list) continue;
    const seen = new Set<string>();
    for (const name of list) {
      if (seen.has(name))
        problems.push({ code: 'INVALID_REQUEST', detail: `${field} lists '${name}' twice` });
      seen.add(name);
      checkColumn(source.table, sourceTable, field, name, problems);
    }
  }
  if (typeof input.softDelete === 'string') {
    checkColumn(source.table, sourceTable, 'soft_delete_column', input.softDelete, problems);
  }
  const filter =
    input.filter === undefined
      ? undefined
      : checkFilterColumn(source.table, sourceTable, input.filter, problems);
  let lookbackSeconds = 0;
  if (filter) {
    const isTime = TIME_KINDS.includes(filter.kind);
    if (input.lookback === undefined) {
      lookbackSeconds = isTime ? DEFAULT_TIME_LOOKBACK_SECONDS : 0;
    } else {
      const seconds = parseDurationSeconds(input.lookback);
      if (seconds === null) {
        problems.push({
          code: 'INVALID_REQUEST',
          detail: `lookback must be a number of seconds or a duration like '5 MINUTES', got '${input.lookback}'`,
        });
      } else if (seconds > 0 && filter.kind === 'text') {
        problems.push({
          code: 'INVALID_REQUEST',
          detail: `lookback needs a time or number filter_column; '${filter.name}' is text`,
        });
      } else {
        lookbackSeconds = seconds;
      }
    }
  }
  if (problems.length > before || !filter) return null;
  return { filter, lookbackSeconds };
}

function asObject(body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AppError('INVALID_REQUEST', INVALID_JOB, ['body must be a JSON object']);
  }
  return body as Record<string, unknown>;
}

const duplicateJob = (name: string) =>
  new AppError('DUPLICATE_JOB', 'Job already exists', [`a job named '${name}' already exists`]);
