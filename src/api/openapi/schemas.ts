/**
 * The response side of the OpenAPI document, defined once: the error envelope and every object a
 * route answers with (job, run, database, knowledge base, …), as JSON Schema in the OpenAPI 3.0
 * dialect (`nullable`). Routes refer to them by name (`ref('Job')`); register.ts adds them to the
 * server, so they appear once under `components.schemas`.
 *
 * Objects are closed (`additionalProperties: false`) so that a field the server adds without
 * documenting it fails the e2e suites, which check every response against this document
 * (test/helpers/openapi.ts). What the presenters (api/present.ts and the services' `present`)
 * return is what is written here.
 */
import { ERROR_STATUS } from '../../core/errors.js';

export type JsonSchema = Record<string, unknown>;

/** `{$ref}` to a component by name; register.ts names components after their `$id`. */
export const ref = (name: ComponentName): JsonSchema => ({ $ref: `${name}#` });

const string = (description?: string, extra: JsonSchema = {}): JsonSchema => ({
  type: 'string',
  ...(description ? { description } : {}),
  ...extra,
});
const integer = (description?: string, extra: JsonSchema = {}): JsonSchema => ({
  type: 'integer',
  ...(description ? { description } : {}),
  ...extra,
});
const count = (description?: string) => integer(description, { minimum: 0 });
/** RFC 3339 UTC with `Z`; `date-time` takes both second precision and milliseconds. */
const time = (description?: string): JsonSchema => string(description, { format: 'date-time' });
const strings = (description?: string): JsonSchema => ({
  type: 'array',
  items: { type: 'string' },
  ...(description ? { description } : {}),
});
/** OpenAPI 3.0 has no `null` type; `nullable` needs a `type` next to it (ajv insists too). */
const nullable = (schema: JsonSchema): JsonSchema => ({ ...schema, nullable: true });

/** A closed object whose listed properties are all required except `optional`. */
function object(
  properties: Record<string, JsonSchema>,
  options: { optional?: string[]; description?: string } = {},
): JsonSchema {
  const optional = new Set(options.optional ?? []);
  return {
    type: 'object',
    ...(options.description ? { description: options.description } : {}),
    properties,
    required: Object.keys(properties).filter((k) => !optional.has(k)),
    additionalProperties: false,
  };
}

/** Every code the server answers with (core/errors.ts), the one stable union. */
export const ERROR_CODES = Object.keys(ERROR_STATUS) as Array<keyof typeof ERROR_STATUS>;

const ErrorEnvelope = object(
  {
    success: { type: 'boolean', enum: [false] },
    error: object({
      code: string('Stable error code; the HTTP status follows from it (docs/api.md)', { enum: ERROR_CODES }),
      message: string('What went wrong, in a few words'),
      details: strings('Every problem found, one readable sentence each'),
    }),
  },
  { description: 'The error envelope of every non-2xx answer' },
);

/** Run counters shown while a run works (issue 10): null before the first estimate and once finished. */
const progress = nullable({
  type: 'object',
  description: 'While the run works (updated about every second): rows done, the estimated total, percent and ETA; null otherwise',
  properties: {
    rows_done: count('Rows read so far; a batch being embedded counts by the share of it embedded'),
    rows_total_estimate: nullable({
      type: 'number',
      minimum: 0,
      description: 'Rows this run is expected to read (an estimate); null when unknown, or once rows_done passed it',
    }),
    percent: nullable({ type: 'number', minimum: 0, maximum: 100, description: 'Of rows_total_estimate, one decimal' }),
    eta_seconds: nullable({ type: 'number', minimum: 0, description: 'At the observed rate; null until there is one' }),
  },
  required: ['rows_done', 'rows_total_estimate', 'percent', 'eta_seconds'],
});

const watermark = (description: string) =>
  nullable(
    object(
      {
        filter_value: string("The filter column's value, in the source's own text form (full precision)"),
        key: strings("The row's key values as text, in the order of key_columns"),
      },
      { description },
    ),
  );

const runError = nullable(
  object(
    {
      code: string(
        'TABLE_MISSING, COLUMN_MISSING, KB_MISSING, DATABASE_MISSING, PROVIDER_REFUSED, SYNC_FAILED, INTERRUPTED, CANCELLED, SOURCE_TIMEOUT, KEYSET_STUCK, …',
      ),
      message: string(),
    },
    { description: 'Why the run failed or stopped; null when it succeeded or still runs' },
  ),
);

const TRIGGERS = ['schedule', 'manual', 'catch_up'];
const RUN_STATUSES = ['running', 'succeeded', 'failed', 'cancelled'];
const JOB_STATUSES = ['scheduled', 'running', 'paused', 'completed', 'failed'];
const RUN_ID = { pattern: '^run_' };

const Totals = object(
  {
    rows_read: count(),
    documents_added: count(),
    documents_updated: count(),
    documents_unchanged: count(),
    documents_deleted: count(),
    rows_skipped: count("The latest run's rows with a NULL filter value"),
    rows_failed: count(),
    chunks_written: count(),
    runs_succeeded: count(),
    runs_failed: count('Interrupted runs count as failed'),
    embedding_tokens: count("Tokens sent to the embedding provider: its reported usage, else counted with cl100k_base"),
    embedding_requests: count('Requests sent to the embedding provider'),
  },
  { description: "A job's counters over all its runs" },
);

const Job = object(
  {
    job_id: string(undefined, { pattern: '^job_' }),
    job_name: string(),
    status: string(undefined, { enum: JOB_STATUSES }),
    created_at: time(),
    next_run: nullable(time('The next tick on the grid start_time + k·interval; null unless scheduled')),
    source_table: string('database.table (or database.schema.table) as given'),
    kb_name: string(),
    content_columns: strings(),
    metadata_columns: strings(),
    filter_column: string(),
    key_columns: strings('The columns that identify a row (primary key, or a NOT NULL unique key)'),
    interval: string('Normalised: "10 MINUTES", "1 HOUR", "HOURLY", …'),
    start_time: time(),
    end_time: time(),
    backfill: { type: 'boolean' },
    lookback: count('Seconds re-read each run for late rows'),
    deletes: string(undefined, { enum: ['reconcile', 'off'] }),
    config_version: count('Bumped by every change of what a run reads or writes'),
    soft_delete_column: nullable(string()),
    batch_size: integer(undefined, { minimum: 1 }),
    max_tokens_per_run: nullable(
      integer('Tokens a run may embed before it stops at a checkpoint (budget_reached); null: no limit', {
        minimum: 1,
      }),
    ),
    updated_at: time(),
    status_reason: nullable(string('Why the job is failed, and what to fix')),
    last_run: nullable(
      object(
        {
          run_id: string(undefined, RUN_ID),
          trigger: string(undefined, { enum: TRIGGERS }),
          status: string(undefined, { enum: RUN_STATUSES }),
          started_at: time(),
          finished_at: nullable(time()),
          error: runError,
          progress,
        },
        { optional: ['progress'], description: 'The latest run, in short; null before the first' },
      ),
    ),
    watermark: watermark('The last synced position; null before the first run placed it'),
    totals: ref('Totals'),
    lag_seconds: nullable(
      count(
        'How far the knowledge base is behind the source: now − the filter value of the oldest row not yet synced, 0 when caught up. Null when never measured, or when behind on a filter column that is not a time (lag_behind says so)',
      ),
    ),
    lag_behind: nullable({ type: 'boolean', description: 'Whether a row lay past the watermark when lag was measured; null: never measured' }),
    lag_measured_at: nullable(time('When lag was measured (the last run or check; GET /jobs/{job}: now, unless the source could not answer)')),
    webhook_url: nullable(string('Receives the job\'s events (run.failed, job.failed, job.lagging) as signed JSON POSTs')),
    alert_lag_seconds: nullable(integer('Lag past which a job.lagging event is sent', { minimum: 1 })),
    webhook_secret: string(
      'Only in the answer to create, once: the HMAC-SHA256 key of X-Kbsync-Signature (sha256=<hex of the body>); stored encrypted, never returned again',
    ),
    progress,
    warnings: strings(
      'Only in answers to create, PATCH and resume: what the job will not do (e.g. never run)',
    ),
  },
  { optional: ['progress', 'warnings', 'webhook_secret'], description: 'A job: what it syncs, its schedule and its state' },
);

const Run = object(
  {
    run_id: string(undefined, RUN_ID),
    job_id: string(undefined, { pattern: '^job_' }),
    trigger: string(undefined, { enum: TRIGGERS }),
    status: string(undefined, { enum: RUN_STATUSES }),
    started_at: time('Milliseconds included'),
    finished_at: nullable(time('Milliseconds included; null while the run works')),
    duration_ms: nullable(count()),
    rows_read: count(),
    documents_added: count(),
    documents_updated: count(),
    documents_unchanged: count(),
    rows_skipped: count('Rows with a NULL filter value'),
    rows_failed: count(),
    documents_deleted: count(),
    reconcile: nullable(
      object(
        {
          rounds: count(),
          source_aggregates: count(),
          source_keys: count(),
          complete: {
            type: 'boolean',
            description: 'False when there were too many differences for one run',
          },
          duration_ms: count(),
        },
        { description: 'What finding deleted rows read from the source; null when it did not run' },
      ),
    ),
    chunks_written: count(),
    embedding_tokens: count(
      "Tokens sent to the embedding provider for the batches the run wrote: the provider's reported usage, else counted with cl100k_base",
    ),
    embedding_requests: count('Requests sent to the embedding provider'),
    budget_reached: {
      type: 'boolean',
      description: "True when the run stopped at the job's max_tokens_per_run after a checkpoint; the next run continues",
    },
    watermark_start: watermark('Where the run started'),
    watermark_end: watermark('Where the run got to'),
    error: runError,
    process_id: nullable(
      string("The kbsync process that runs it, or ran it last (GET /health's process_id; another one after a takeover); null for runs recorded before fleets"),
    ),
    progress,
  },
  { optional: ['progress'], description: 'One run of a job' },
);

const Failure = object(
  {
    document_id: string(),
    key: strings("The row's key values as text"),
    reason: string(),
    first_failed_at: time(),
    last_failed_at: time(),
    attempts: integer('Runs in which the row failed', { minimum: 1 }),
  },
  { description: 'A source row that could not be synced' },
);

const WebhookDelivery = object(
  {
    delivery_id: string(undefined, { pattern: '^whd_' }),
    event: string(undefined, { enum: ['run.failed', 'job.failed', 'job.lagging'] }),
    status: string('pending: to be sent (again); delivered: a 2xx answer; failed: attempts used up', { enum: ['pending', 'delivered', 'failed'] }),
    attempts: count('POSTs made so far'),
    last_error: nullable(string('Why the last attempt failed (HTTP status, timeout, connection error)')),
    created_at: time(),
    delivered_at: nullable(time()),
    next_attempt_at: nullable(time('When a pending delivery is sent next')),
  },
  { description: "One event for a job's webhook_url and how its delivery went" },
);

const Database = object(
  {
    name: string(),
    engine: string(undefined, { enum: ['postgres', 'mysql', 'sqlite'] }),
    parameters: object(
      {
        url: string('The password in it shown as ****'),
        host: string(),
        port: integer(),
        user: string(),
        password: string(undefined, { enum: ['****'] }),
        database: string(),
        schema: string(),
        ssl: { type: 'boolean' },
        path: string(),
      },
      {
        optional: ['url', 'host', 'port', 'user', 'password', 'database', 'schema', 'ssl', 'path'],
        description: 'As registered, the secret masked',
      },
    ),
    created_at: time(),
  },
  { description: 'A registered source database' },
);

const Table = object(
  {
    schema: nullable(string('PostgreSQL schema; null for MySQL and SQLite')),
    name: string(),
    columns: {
      type: 'array',
      items: object({
        name: string(),
        type: string("The engine's own type name"),
        kind: string(undefined, {
          enum: ['timestamptz', 'timestamp', 'date', 'integer', 'numeric', 'text', 'boolean', 'other'],
        }),
        nullable: { type: 'boolean' },
      }),
    },
    primary_key: strings('Empty when the table has none'),
    unique_keys: {
      type: 'array',
      items: { type: 'array', items: { type: 'string' } },
      description: 'NOT NULL unique keys',
    },
  },
  { description: 'A table of a source database, with its columns' },
);

const KnowledgeBase = object(
  {
    kb_name: string(),
    description: nullable(string()),
    embedding: object({
      provider: string(undefined, { enum: ['local', 'openai'] }),
      model: nullable(
        string('The local model is universal-sentence-encoder-lite; null: the provider default'),
      ),
      dimensions: nullable(
        integer('512 for the local model; null: what the provider answers', { minimum: 1 }),
      ),
      base_url: nullable(string()),
      api_key: nullable(string('Never shown: **** when one is set', { enum: ['****', null] })),
      price_per_million_tokens: nullable({
        type: 'number',
        minimum: 0,
        description: 'What a million embedded tokens cost; null: not set (costs are null)',
      }),
    }),
    chunking: object({ chunk_size: integer(undefined, { minimum: 1 }), chunk_overlap: count() }),
    created_at: time(),
    document_count: count(),
    chunk_count: count(),
    totals: object(
      {
        embedding_tokens: count('Tokens its jobs have sent to the embedding provider (their totals, summed)'),
        embedding_requests: count('Requests its jobs have sent to the embedding provider'),
        cost: nullable({
          type: 'number',
          minimum: 0,
          description: 'embedding_tokens × price_per_million_tokens / 1,000,000; null without a price',
        }),
      },
      { description: 'What the runs of its jobs have embedded so far (a deleted job leaves the sum)' },
    ),
    rebuild: nullable(
      object(
        {
          status: string('running: filling the shadow (queries answer from the current index); swapping: replacing it', {
            enum: ['running', 'swapping', 'succeeded', 'failed', 'cancelled'],
          }),
          documents_done: count('Documents the rebuild has passed (copied, or already in the shadow)'),
          documents_total: count('Documents in the knowledge base when it started (grows with what jobs add meanwhile)'),
          started_at: time(),
          finished_at: nullable(time()),
          error: nullable(object({ code: string(), message: string() })),
          embedding: object({
            provider: string(undefined, { enum: ['local', 'openai'] }),
            model: nullable(string()),
            dimensions: nullable(integer(undefined, { minimum: 1 })),
            base_url: nullable(string()),
          }),
          chunking: object({ chunk_size: integer(undefined, { minimum: 1 }), chunk_overlap: count() }),
        },
        {
          description:
            'The latest model or chunking change (PATCH): a shadow index built while queries use the current one, then swapped in; null if none',
        },
      ),
    ),
  },
  { description: 'A knowledge base with its counts' },
);

/** Synced metadata keeps the source's types: numbers, strings (times, decimals), booleans, null. */
const metadata: JsonSchema = {
  type: 'object',
  description: 'Field → string, number, boolean or null',
  additionalProperties: {
    anyOf: [{ type: 'string', nullable: true }, { type: 'number' }, { type: 'boolean' }],
  },
};

const Document = object(
  {
    id: string(),
    content: string(),
    metadata,
    chunk_count: count(),
    updated_at: time('When the document was last written, with milliseconds'),
  },
  { description: 'A document of a knowledge base' },
);

const QueryResult = object(
  {
    document_id: string(),
    chunk_id: string(),
    content: string('The chunk'),
    metadata,
    relevance: {
      type: 'number',
      minimum: 0,
      maximum: 1,
      description: 'Higher is better; results are sorted by it',
    },
  },
  { description: 'One chunk found by a query' },
);

const Account = object(
  { account_id: string(), name: string(), created_at: time() },
  { description: 'An account' },
);

const ApiKey = object(
  {
    key_id: string(undefined, { pattern: '^key_' }),
    prefix: string('The first characters of the key, to tell keys apart'),
    created_at: time(),
    revoked_at: nullable(time()),
  },
  { description: 'An API key, never the key itself' },
);

const NewApiKey = object(
  {
    account_id: string(),
    name: string(),
    key_id: string(undefined, { pattern: '^key_' }),
    prefix: string(),
    api_key: string('The key itself (kbs_…): shown once, store it now', { pattern: '^kbs_' }),
  },
  { description: 'A key just made, with its account: the only answer that shows the key' },
);

const Estimate = object(
  {
    job_name: string(),
    dry_run: { type: 'boolean', description: 'True for POST /jobs/create with dry_run: nothing was created' },
    rows: count('Rows the next run would read, the lookback window it re-reads included'),
    documents: count('Documents it would embed: new ones and ones whose content changed'),
    documents_unchanged: count('Documents it would write without embedding (unchanged, or only metadata changed)'),
    chunks: count('Chunks it would embed'),
    tokens: count('Tokens of those chunks, counted with `tokenizer`'),
    tokenizer: string('What counted the tokens', { enum: ['cl100k_base'] }),
    price_per_million_tokens: nullable({ type: 'number', minimum: 0, description: "The knowledge base's price; null: not set" }),
    cost: nullable({ type: 'number', minimum: 0, description: 'tokens × price / 1,000,000; null without a price' }),
    max_tokens_per_run: nullable(integer("The job's budget per run; null: none", { minimum: 1 })),
    runs: count('Runs needed to embed it all: 1, or about tokens / max_tokens_per_run with a budget (0 when nothing)'),
    complete: {
      type: 'boolean',
      description: 'False when reading stopped at max_rows or the time budget: the figures are a lower bound',
    },
    limited_by: nullable(string('What stopped the reading early; null when complete', { enum: ['max_rows', 'time', null] })),
    max_rows: integer('Rows it would read at most', { minimum: 1 }),
  },
  { description: 'What the next run of a job would embed and cost, found without embedding anything' },
);

/** Named components, in the order they appear under `components.schemas`. */
export const COMPONENTS = {
  Error: ErrorEnvelope,
  Job,
  Totals,
  Run,
  Failure,
  WebhookDelivery,
  Estimate,
  Database,
  Table,
  KnowledgeBase,
  Document,
  QueryResult,
  Account,
  ApiKey,
  NewApiKey,
} satisfies Record<string, JsonSchema>;

export type ComponentName = keyof typeof COMPONENTS;

/** The shared schemas with their `$id`, for `app.addSchema`. */
export const componentSchemas = (): JsonSchema[] =>
  Object.entries(COMPONENTS).map(([name, schema]) => ({ $id: name, ...schema }));

/** `data` shapes that are not worth a component of their own. */
export const dataOf = {
  list: (field: string, items: JsonSchema, paged: boolean): JsonSchema =>
    object({
      [field]: { type: 'array', items },
      ...(paged
        ? { next_cursor: nullable(string('Pass as ?cursor= for the next page; null on the last page')) }
        : {}),
    }),
  object,
  string,
  count,
  nullable,
  time,
};
