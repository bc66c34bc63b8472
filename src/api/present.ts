/** How records look over HTTP: snake_case, RFC 3339 UTC times, no secrets. */
import { embeddingCost } from '../core/cost.js';
import { lagSeconds } from '../core/lag.js';
import { formatMeasuredTime, formatMeasuredTimeOrNull, formatTime, formatTimeOrNull } from '../core/time.js';
import type { EmbeddingUsage } from '../embeddings/port.js';
import { LOCAL_DIMENSIONS, LOCAL_MODEL } from '../embeddings/local/index.js';
import type { JobEstimate } from '../jobs/estimates.js';
import { KnowledgeBaseRegistry } from '../kb/registry.js';
import {
  EMPTY_TOTALS,
  type FailureRecord,
  type JobRecord,
  type KnowledgeBaseRecord,
  type RebuildRecord,
  type RunProgress,
  type RunRecord,
  type Watermark,
  type WebhookDelivery,
} from '../store/port.js';

const watermark = (w: Watermark | null) => (w === null ? null : { filter_value: w.filter, key: w.key });

/**
 * A run's progress (API.md "Jobs"): only while it runs. A run that has ended shows null whatever
 * its record kept (one closed as INTERRUPTED by another process keeps what the dead one wrote).
 */
function progress(status: string, p: RunProgress | null | undefined) {
  if (status !== 'running' || p == null) return null;
  return { rows_done: p.rowsDone, rows_total_estimate: p.rowsTotalEstimate, percent: p.percent, eta_seconds: p.etaSeconds };
}

/** Whether a job's stored lag is more than `seconds` at `now` (GET /jobs?stale_after=). */
export function isStale(job: JobRecord, seconds: number, now: number): boolean {
  const lag = lagSeconds(job.lag, now);
  return lag !== null && lag > seconds;
}

export function presentJob(job: JobRecord, now = Date.now()): Record<string, unknown> {
  return {
    job_id: job.id,
    job_name: job.name,
    status: job.status,
    created_at: formatTime(job.createdAt),
    next_run: job.status === 'scheduled' ? formatTimeOrNull(job.nextRunMs) : null,
    source_table: job.sourceTable,
    kb_name: job.kbName,
    content_columns: job.contentColumns,
    metadata_columns: job.metadataColumns,
    filter_column: job.filterColumn,
    key_columns: job.keyColumns,
    interval: job.interval,
    start_time: formatTime(job.startMs),
    end_time: formatTime(job.endMs),
    backfill: job.backfill,
    lookback: job.lookbackSeconds,
    deletes: job.deletes ?? 'reconcile',
    config_version: job.configVersion ?? 0,
    soft_delete_column: job.softDeleteColumn ?? null,
    batch_size: job.batchSize,
    max_tokens_per_run: job.maxTokensPerRun ?? null,
    updated_at: formatTime(job.updatedAt),
    status_reason: job.statusReason,
    last_run: job.lastRun
      ? {
          run_id: job.lastRun.id,
          trigger: job.lastRun.trigger,
          status: job.lastRun.status,
          started_at: formatMeasuredTime(job.lastRun.startedAt),
          finished_at: formatMeasuredTimeOrNull(job.lastRun.finishedAt),
          error: job.lastRun.error,
          progress: progress(job.lastRun.status, job.lastRun.progress),
        }
      : null,
    // The running run's progress, as its last write left it; null when no run works.
    progress: job.lastRun ? progress(job.lastRun.status, job.lastRun.progress) : null,
    watermark: watermark(job.watermark),
    // Totals stored before a counter existed read as 0.
    totals: { ...EMPTY_TOTALS, ...job.totals },
    // Freshness (core/lag.ts): grows with time from the last measurement until the next one.
    lag_seconds: lagSeconds(job.lag, now),
    lag_behind: job.lag ? job.lag.behind : null,
    lag_measured_at: job.lag ? formatMeasuredTime(job.lag.measuredAt) : null,
    webhook_url: job.webhookUrl ?? null,
    alert_lag_seconds: job.alertLagSeconds ?? null,
  };
}

export function presentWebhook(d: WebhookDelivery): Record<string, unknown> {
  return {
    delivery_id: d.id,
    event: d.event,
    status: d.status,
    attempts: d.attempts,
    last_error: d.lastError,
    created_at: formatMeasuredTime(d.createdAt),
    delivered_at: formatMeasuredTimeOrNull(d.deliveredAt),
    next_attempt_at: d.status === 'pending' ? formatMeasuredTime(d.nextAttemptAt) : null,
  };
}

export function presentRun(run: RunRecord): Record<string, unknown> {
  return {
    run_id: run.id,
    job_id: run.jobId,
    trigger: run.trigger,
    status: run.status,
    started_at: formatMeasuredTime(run.startedAt),
    finished_at: formatMeasuredTimeOrNull(run.finishedAt),
    duration_ms: run.finishedAt === null ? null : run.finishedAt - run.startedAt,
    rows_read: run.rowsRead,
    documents_added: run.documentsAdded,
    documents_updated: run.documentsUpdated,
    documents_unchanged: run.documentsUnchanged,
    rows_skipped: run.rowsSkipped,
    rows_failed: run.rowsFailed,
    documents_deleted: run.documentsDeleted ?? 0,
    reconcile: run.reconcile
      ? {
          rounds: run.reconcile.rounds,
          source_aggregates: run.reconcile.sourceAggregates,
          source_keys: run.reconcile.sourceKeys,
          complete: run.reconcile.complete,
          duration_ms: run.reconcile.durationMs,
        }
      : null,
    chunks_written: run.chunksWritten,
    // Runs stored before tokens were counted read as 0.
    embedding_tokens: run.embeddingTokens ?? 0,
    embedding_requests: run.embeddingRequests ?? 0,
    budget_reached: run.budgetReached ?? false,
    watermark_start: watermark(run.watermarkStart),
    watermark_end: watermark(run.watermarkEnd),
    error: run.error,
    process_id: run.processId ?? null,
    progress: progress(run.status, run.progress),
  };
}

/** A failed row of a job (GET /jobs/{job}/failures). */
export function presentFailure(failure: FailureRecord): Record<string, unknown> {
  return {
    document_id: failure.docId,
    key: failure.key,
    reason: failure.reason,
    first_failed_at: formatTime(failure.firstFailedAt),
    last_failed_at: formatTime(failure.lastFailedAt),
    attempts: failure.attempts,
  };
}

/**
 * A knowledge base with its counts. A local one names its model and its 512 dimensions: it has only
 * one, so the record leaves both null, and the answer showed null where the model is known.
 */
export function presentKnowledgeBase(
  record: KnowledgeBaseRecord,
  counts: { documents: number; chunks: number },
  usage: EmbeddingUsage,
): Record<string, unknown> {
  const kb = KnowledgeBaseRegistry.present(record);
  const local = record.embedding.provider === 'local';
  const price = record.embedding.price_per_million_tokens ?? null;
  return {
    ...kb,
    embedding: {
      ...(kb.embedding as Record<string, unknown>),
      model: record.embedding.model ?? (local ? LOCAL_MODEL : null),
      dimensions: record.embedding.dimensions ?? (local ? LOCAL_DIMENSIONS : null),
      price_per_million_tokens: price,
    },
    document_count: counts.documents,
    chunk_count: counts.chunks,
    totals: {
      embedding_tokens: usage.tokens,
      embedding_requests: usage.requests,
      cost: embeddingCost(usage.tokens, price),
    },
    rebuild: record.rebuild === null ? null : presentRebuild(record.rebuild),
  };
}

/** A knowledge base's latest rebuild (API.md "Model and chunking changes"); the new API key never shows. */
function presentRebuild(r: RebuildRecord): Record<string, unknown> {
  const local = r.embedding.provider === 'local';
  return {
    status: r.status,
    documents_done: r.documentsDone,
    documents_total: Math.max(r.documentsTotal, r.documentsDone),
    started_at: formatMeasuredTime(r.startedAt),
    finished_at: r.finishedAt === null ? null : formatMeasuredTime(r.finishedAt),
    error: r.error,
    embedding: {
      provider: r.embedding.provider,
      model: r.embedding.model ?? (local ? LOCAL_MODEL : null),
      dimensions: r.embedding.dimensions ?? (local ? LOCAL_DIMENSIONS : null),
      base_url: r.embedding.base_url,
    },
    chunking: r.chunking,
  };
}

/** POST /jobs/{job}/estimate, and POST /jobs/create with `dry_run: true`. */
export function presentEstimate(e: JobEstimate): Record<string, unknown> {
  return {
    job_name: e.jobName,
    dry_run: e.dryRun,
    rows: e.rows,
    documents: e.documents,
    documents_unchanged: e.documentsUnchanged,
    chunks: e.chunks,
    tokens: e.tokens,
    tokenizer: e.tokenizer,
    price_per_million_tokens: e.pricePerMillionTokens,
    cost: e.cost,
    max_tokens_per_run: e.maxTokensPerRun,
    runs: e.runs,
    complete: e.complete,
    limited_by: e.limitedBy,
    max_rows: e.maxRows,
  };
}
