/**
 * The fields of API answers the CLI shows (API.md). Only what is read here; `--json` prints the
 * whole `data` untouched, so a field the server adds reaches scripts without a CLI change.
 */
export interface RunError {
  code: string;
  message: string;
}

/** While a run is in progress (API.md "Jobs"); null otherwise, or absent from older servers. */
export interface RunProgress {
  rows_done: number;
  rows_total_estimate: number | null;
  percent: number | null;
  eta_seconds: number | null;
}

export interface Run {
  run_id: string;
  trigger: string;
  status: 'running' | 'succeeded' | 'failed' | 'cancelled';
  started_at: string;
  finished_at: string | null;
  duration_ms: number | null;
  rows_read: number;
  documents_added: number;
  documents_updated: number;
  documents_unchanged: number;
  documents_deleted: number;
  rows_skipped: number;
  rows_failed: number;
  chunks_written: number;
  embedding_tokens?: number;
  error: RunError | null;
  progress?: RunProgress | null;
}

export interface Job {
  job_id: string;
  job_name: string;
  status: string;
  status_reason?: string | null;
  source_table: string;
  kb_name: string;
  content_columns: string[];
  metadata_columns?: string[];
  filter_column: string;
  interval: string;
  start_time: string;
  end_time: string;
  created_at: string;
  updated_at?: string;
  next_run: string | null;
  last_run: {
    run_id: string;
    status: string;
    started_at: string;
    finished_at: string | null;
    error: RunError | null;
  } | null;
  watermark: { filter_value: unknown; key: unknown } | null;
  totals?: Record<string, number>;
  lag_seconds?: number | null;
  warnings?: string[];
}

export interface Failure {
  document_id: string;
  key: unknown;
  reason: string;
  first_failed_at: string;
  last_failed_at?: string;
  attempts: number;
}

export interface KnowledgeBase {
  kb_name: string;
  description: string | null;
  embedding: { provider: string; model?: string; dimensions?: number; base_url?: string | null };
  chunking?: { chunk_size: number; chunk_overlap: number } | null;
  created_at: string;
  document_count?: number;
  chunk_count?: number;
}

export interface QueryResult {
  document_id: string;
  chunk_id?: string;
  content: string;
  metadata: Record<string, unknown>;
  relevance: number;
}

export interface Database {
  name: string;
  engine: string;
  parameters: Record<string, unknown>;
  created_at: string;
}

export interface Table {
  schema: string | null;
  name: string;
  columns: Array<{ name: string; type: string; kind?: string; nullable?: boolean }>;
  primary_key: string[] | null;
}

export interface Page {
  next_cursor: string | null;
}
