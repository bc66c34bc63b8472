/**
 * Prometheus metrics (GET /metrics): process defaults, HTTP requests, sync runs and rows, and
 * jobs by status (read from the store at scrape time, so it is never stale).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { lagSeconds } from './core/lag.js';
import type { ControlStore, JobStatus, RunRecord } from './store/port.js';

const STATUSES: readonly JobStatus[] = ['scheduled', 'running', 'paused', 'completed', 'failed'];
/** Jobs of one status read per scrape for the lag gauge: bounds a scrape's work on a large store. */
const LAG_SERIES_PER_STATUS = 5_000;

export class Metrics {
  readonly registry = new Registry();
  private readonly runs: Counter<'trigger' | 'status'>;
  private readonly rows: Counter;
  private readonly documents: Counter<'outcome'>;
  private readonly runSeconds: Histogram;
  private readonly embeddingTokens: Counter;
  private readonly embeddingRequests: Counter;
  private readonly budgetStops: Counter;
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;

  constructor(store: ControlStore) {
    collectDefaultMetrics({ register: this.registry, prefix: 'kbsync_' });
    this.runs = new Counter({ name: 'kbsync_runs_total', help: 'Finished sync runs', labelNames: ['trigger', 'status'], registers: [this.registry] });
    this.rows = new Counter({ name: 'kbsync_rows_read_total', help: 'Source rows read by sync runs', registers: [this.registry] });
    this.documents = new Counter({
      name: 'kbsync_documents_total',
      help: 'Documents written (added, updated, unchanged) or deleted by sync runs, by outcome',
      labelNames: ['outcome'],
      registers: [this.registry],
    });
    this.runSeconds = new Histogram({
      name: 'kbsync_run_duration_seconds',
      help: 'Duration of finished sync runs',
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 1800, 7200],
      registers: [this.registry],
    });
    // What runs sent to the embedding provider (API.md, "Cost and freshness"): with a price per
    // million tokens, rate(kbsync_embedding_tokens_total) is the spend rate.
    this.embeddingTokens = new Counter({
      name: 'kbsync_embedding_tokens_total',
      help: "Tokens sync runs sent to the embedding provider (its reported usage, else counted with cl100k_base)",
      registers: [this.registry],
    });
    this.embeddingRequests = new Counter({
      name: 'kbsync_embedding_requests_total',
      help: 'Requests sync runs sent to the embedding provider',
      registers: [this.registry],
    });
    this.budgetStops = new Counter({
      name: 'kbsync_runs_budget_reached_total',
      help: "Sync runs that stopped at their job's max_tokens_per_run (the next run continues)",
      registers: [this.registry],
    });
    this.httpRequests = new Counter({
      name: 'kbsync_http_requests_total',
      help: 'HTTP requests by route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [this.registry],
    });
    new Gauge({
      name: 'kbsync_jobs',
      help: 'Jobs by status',
      labelNames: ['status'],
      registers: [this.registry],
      async collect() {
        const counts = await store.countJobsByStatus();
        for (const status of STATUSES) this.set({ status }, counts[status] ?? 0);
      },
    });
    // Freshness (API.md "Cost and freshness"), one series per job: its stored lag, grown to now.
    new Gauge({
      name: 'kbsync_job_lag_seconds',
      help: "How far each job's knowledge base is behind its source: now minus the filter value of the oldest unsynced row (0: caught up); jobs never measured or without a time filter column are left out",
      labelNames: ['job', 'job_id'],
      registers: [this.registry],
      async collect() {
        // Jobs deleted since the last scrape must not linger as series.
        this.reset();
        const now = Date.now();
        for (const status of STATUSES) {
          for (const job of await store.listJobsWithStatus(status, LAG_SERIES_PER_STATUS)) {
            const lag = lagSeconds(job.lag, now);
            if (lag !== null) this.set({ job: job.name, job_id: job.id }, lag);
          }
        }
      },
    });
  }

  runFinished(run: RunRecord): void {
    this.runs.inc({ trigger: run.trigger, status: run.status });
    this.rows.inc(run.rowsRead);
    this.documents.inc({ outcome: 'added' }, run.documentsAdded);
    this.documents.inc({ outcome: 'updated' }, run.documentsUpdated);
    this.documents.inc({ outcome: 'unchanged' }, run.documentsUnchanged);
    this.documents.inc({ outcome: 'deleted' }, run.documentsDeleted ?? 0);
    if (run.finishedAt !== null) this.runSeconds.observe((run.finishedAt - run.startedAt) / 1000);
    this.embeddingTokens.inc(run.embeddingTokens ?? 0);
    this.embeddingRequests.inc(run.embeddingRequests ?? 0);
    if (run.budgetReached === true) this.budgetStops.inc();
  }
}
