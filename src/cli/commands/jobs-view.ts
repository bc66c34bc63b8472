/** How `kbsync jobs` shows a job and a run to people (pure text building). */
import type { Job, Run } from '../api-types.js';
import { count, duration, keyValues } from '../format.js';

export const warnings = (job: Job) => (job.warnings ?? []).map((w) => `warning: ${w}`);

export function showJob(j: Job): string {
  return keyValues([
    ['job', `${j.job_name} (${j.job_id})`],
    ['status', j.status_reason ? `${j.status} — ${j.status_reason}` : j.status],
    ['source', j.source_table],
    ['knowledge base', j.kb_name],
    ['content columns', j.content_columns.join(', ')],
    ['metadata columns', (j.metadata_columns ?? []).join(', ')],
    ['filter column', j.filter_column],
    ['interval', j.interval],
    ['window', `${j.start_time} → ${j.end_time}`],
    ['next run', j.next_run],
    ['last run', j.last_run ? `${j.last_run.run_id} ${j.last_run.status} at ${j.last_run.started_at}` : null],
    ['last error', j.last_run?.error ? `${j.last_run.error.code}: ${j.last_run.error.message}` : null],
    ['watermark', j.watermark],
    ['lag', j.lag_seconds === undefined || j.lag_seconds === null ? null : duration(j.lag_seconds * 1000)],
    ['totals', j.totals ? totals(j.totals) : null],
    ['created', j.created_at],
  ]);
}

function totals(t: Record<string, number>): string {
  const n = (k: string) => count(t[k] ?? 0);
  return `${n('rows_read')} rows read; documents ${n('documents_added')} added, ${n('documents_updated')} updated, ${n('documents_deleted')} deleted; ${n('rows_failed')} rows failed; runs ${n('runs_succeeded')} succeeded, ${n('runs_failed')} failed`;
}

export function runSummary(r: Run): string {
  const took = duration(r.duration_ms);
  const docs = `documents ${count(r.documents_added)} added, ${count(r.documents_updated)} updated, ${count(r.documents_unchanged)} unchanged, ${count(r.documents_deleted)} deleted`;
  const failed = r.rows_failed > 0 ? `; ${count(r.rows_failed)} rows failed (kbsync jobs failures …)` : '';
  return `run ${r.run_id} ${r.status} in ${took}: ${count(r.rows_read)} rows read; ${docs}${failed}`;
}
