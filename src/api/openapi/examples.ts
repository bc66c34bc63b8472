/**
 * Examples shown (and pre-filled by "Try it out") in the API docs. The job is the seed's request,
 * exactly (../shared seed, "POST /jobs/create"), and works against `kbsync demo`, which registers
 * orders_db and orders_kb: its window has ended, so the job is created `completed` with a warning.
 * Test: test/e2e/openapi.test.ts checks each example against its schema and posts the seed's.
 */

/** The seed's example request of `POST /jobs/create`, verbatim. */
export const SEED_JOB_REQUEST = {
  job_name: 'sync_orders',
  source_table: 'orders_db.orders',
  kb_name: 'orders_kb',
  content_columns: ['product', 'description'],
  filter_column: 'created_at',
  interval: '10 MINUTES',
  start_time: '2025-06-19T18:00:00',
  end_time: '2025-06-20T18:00:00',
};

/** The seed's 201 answer, with the rest of the job the server adds. */
export const SEED_JOB = {
  job_id: 'job_12345',
  job_name: 'sync_orders',
  status: 'scheduled',
  created_at: '2025-06-19T12:00:00Z',
  next_run: '2025-06-19T18:00:00Z',
  source_table: 'orders_db.orders',
  kb_name: 'orders_kb',
  content_columns: ['product', 'description'],
  metadata_columns: [],
  filter_column: 'created_at',
  key_columns: ['id'],
  interval: '10 MINUTES',
  start_time: '2025-06-19T18:00:00Z',
  end_time: '2025-06-20T18:00:00Z',
  backfill: true,
  lookback: 300,
  deletes: 'reconcile',
  config_version: 1,
  soft_delete_column: null,
  batch_size: 500,
  max_tokens_per_run: null,
  updated_at: '2025-06-19T12:00:00Z',
  status_reason: null,
  last_run: null,
  watermark: null,
  totals: {
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
  },
  lag_seconds: null,
  lag_behind: null,
  lag_measured_at: null,
  webhook_url: null,
  alert_lag_seconds: null,
  webhook_secret: 'whsec_3q2-7wEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
};

export const RUN = {
  run_id: 'run_06h2ex7a0b1c2d3e4f5g6h7j8k',
  job_id: 'job_12345',
  trigger: 'manual',
  status: 'succeeded',
  started_at: '2025-06-19T18:00:00.120Z',
  finished_at: '2025-06-19T18:00:01.932Z',
  duration_ms: 1812,
  rows_read: 300,
  documents_added: 300,
  documents_updated: 0,
  documents_unchanged: 0,
  rows_skipped: 0,
  rows_failed: 0,
  documents_deleted: 0,
  reconcile: null,
  chunks_written: 300,
  embedding_tokens: 5412,
  embedding_requests: 1,
  budget_reached: false,
  watermark_start: null,
  watermark_end: { filter_value: '2025-03-16 21:10:12', key: ['300'] },
  error: null,
  process_id: 'kbsync-1:4242:9f1c2a7e',
};

export const PATCH_JOB = { interval: '30 MINUTES' };

export const CREATE_DATABASE = {
  name: 'shop',
  engine: 'postgres',
  parameters: { url: 'postgres://reader:s3cret@127.0.0.1:5432/shop' },
};

export const CREATE_KNOWLEDGE_BASE = { kb_name: 'shop_kb', description: 'Products, searchable' };

export const KNOWLEDGE_BASE = {
  kb_name: 'orders_kb',
  description: 'Demo: outdoor-shop orders',
  embedding: {
    provider: 'local',
    model: 'universal-sentence-encoder-lite',
    dimensions: 512,
    base_url: null,
    api_key: null,
    price_per_million_tokens: null,
  },
  chunking: { chunk_size: 1000, chunk_overlap: 100 },
  created_at: '2025-06-19T12:00:00Z',
  document_count: 300,
  chunk_count: 300,
  totals: { embedding_tokens: 5412, embedding_requests: 1, cost: null },
  rebuild: null,
};

/** PATCH /knowledge_bases/{kb}: smaller chunks (only chunks whose text changes are embedded again). */
export const PATCH_KNOWLEDGE_BASE = { chunking: { chunk_size: 500, chunk_overlap: 50 } };

/** The knowledge base while that change is being built. */
export const KNOWLEDGE_BASE_REBUILDING = {
  ...KNOWLEDGE_BASE,
  rebuild: {
    status: 'running',
    documents_done: 128,
    documents_total: 300,
    started_at: '2025-06-19T12:05:00.000Z',
    finished_at: null,
    error: null,
    embedding: { provider: 'local', model: 'universal-sentence-encoder-lite', dimensions: 512, base_url: null },
    chunking: { chunk_size: 500, chunk_overlap: 50 },
  },
};

/** POST /jobs/{job}/estimate: a backfill of 10,000 rows on a knowledge base priced at 0.02 per million tokens. */
export const ESTIMATE = {
  job_name: 'sync_orders',
  dry_run: false,
  rows: 10000,
  documents: 10000,
  documents_unchanged: 0,
  chunks: 10000,
  tokens: 182730,
  tokenizer: 'cl100k_base',
  price_per_million_tokens: 0.02,
  cost: 0.0036546,
  max_tokens_per_run: 50000,
  runs: 4,
  complete: true,
  limited_by: null,
  max_rows: 100000,
};

export const UPSERT_DOCUMENTS = {
  documents: [
    {
      id: 'sku-4471',
      content: 'Waterproof leather hiking boots with a grippy sole. Product code SKU-4471-B.',
      metadata: { price: 129, category: 'footwear' },
    },
  ],
};

export const QUERY = { query: 'something warm for camping in the snow', top_k: 3 };

export const QUERY_RESULTS = {
  mode: 'semantic',
  results: [
    {
      document_id: '3',
      chunk_id: '3#0',
      content:
        'product: Aurora down jacket\ndescription: Packable goose-down jacket rated to minus ten degrees, ideal for winter camping.',
      metadata: { source_table: 'orders_db.orders', row_key: '3', created_at: '2025-01-01T09:12:31Z' },
      relevance: 0.61,
    },
  ],
};

export const CREATE_ACCOUNT = { name: 'analytics' };
