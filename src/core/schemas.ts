/**
 * Request bodies as zod schemas: one definition validates requests, types the services and
 * generates the OpenAPI document (z.toJSONSchema). Only shape and type live here; rules that need
 * the world (does the table exist?) live in the services.
 */
import { z } from 'zod';

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const JOB_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** `[Mm][Ii]…`: JSON Schema patterns take no flags, and the server reads these words in any case. */
const anyCase = (word: string) => [...word].map((c) => `[${c.toUpperCase()}${c.toLowerCase()}]`).join('');

/**
 * What core/interval.ts accepts, as a pattern for the OpenAPI document only: the server parses
 * the interval itself, so that a wrong one is INVALID_INTERVAL and not INVALID_REQUEST. The
 * 366-day maximum is left to the server (and the description).
 */
export const INTERVAL_PATTERN = `^\\s*(?:0*[1-9][0-9]*\\s+(?:${anyCase('minute')}|${anyCase('hour')}|${anyCase('day')})[Ss]?|${anyCase('hourly')}|${anyCase('daily')}|${anyCase('weekly')})\\s*$`;

/** What core/time.ts parseIsoTime reads (its ranges, such as month 1-12, are left to the server). */
export const ISO_TIME_PATTERN =
  '^\\s*[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,9})?)?(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?)?\\s*$';

/** `lookback` as a duration (core/interval.ts parseDurationSeconds); at most 366 days, checked by the server. */
const DURATION_PATTERN = `^\\s*(?:[0-9]+|[0-9]+\\s+(?:${anyCase('second')}|${anyCase('minute')}|${anyCase('hour')}|${anyCase('day')})[Ss]?)\\s*$`;

/** Longest `lookback`: 366 days (core/interval.ts). */
const MAX_LOOKBACK_SECONDS = 366 * 86_400;

/** Largest `max_tokens_per_run` (ten billion: far beyond any run, well inside a double's integers). */
const MAX_TOKENS_PER_RUN = 10_000_000_000;
/** Largest `max_rows` of an estimate. */
const MAX_ESTIMATE_ROWS = 1_000_000;

/** Names used before a dot in `database.table`, and knowledge-base names. */
export const resourceName = (field: string) =>
  z
    .string()
    .min(1, `${field} must not be empty`)
    .max(63, `${field} must be at most 63 characters`)
    .regex(NAME_RE, `${field} may contain only letters, digits and _, and must not start with a digit`);

const nonEmpty = (field: string, max = 256) =>
  z.string().min(1, `${field} must not be empty`).max(max, `${field} must be at most ${max} characters`);

const columnList = (field: string, min: number) =>
  z
    .array(nonEmpty(`${field} entries`, 256))
    .min(min, `${field} must list at least ${min} column`)
    .max(200, `${field} must list at most 200 columns`);

export const jobFields = {
  job_name: z
    .string()
    .min(1, 'job_name must not be empty')
    .max(128, 'job_name must be at most 128 characters')
    .regex(JOB_NAME_RE, 'job_name may contain only letters, digits, _, . and -'),
  source_table: nonEmpty('source_table', 512).describe('database.table, or database.schema.table for PostgreSQL'),
  kb_name: nonEmpty('kb_name', 63),
  content_columns: columnList('content_columns', 1),
  filter_column: nonEmpty('filter_column'),
  interval: nonEmpty('interval', 64).meta({
    description: 'N MINUTES | N HOURS | N DAYS | HOURLY | DAILY | WEEKLY, in any case; at least 1 minute, at most 366 days',
    pattern: INTERVAL_PATTERN,
  }),
  start_time: nonEmpty('start_time', 64).meta({
    description: 'ISO 8601 date or date-time; without an offset it is UTC',
    pattern: ISO_TIME_PATTERN,
  }),
  end_time: nonEmpty('end_time', 64).meta({
    description: 'ISO 8601; after start_time and at most 30 days after it',
    pattern: ISO_TIME_PATTERN,
  }),
  backfill: z.boolean().describe('true (default): the first run syncs existing rows; false: start from the current maximum'),
  lookback: z
    .union([
      z.number().int().min(0).max(MAX_LOOKBACK_SECONDS),
      nonEmpty('lookback', 64).meta({ pattern: DURATION_PATTERN }),
    ])
    .describe('Window re-read each run for late rows: seconds, or "5 MINUTES"; 0 disables. Default 300 s for time columns, else 0'),
  metadata_columns: columnList('metadata_columns', 0),
  deletes: z
    .enum(['reconcile', 'off'], { error: 'deletes must be reconcile or off' })
    .describe('reconcile (default): a row deleted at the source leaves the knowledge base at the next run; off: documents of deleted rows stay'),
  soft_delete_column: z
    .union([nonEmpty('soft_delete_column'), z.null()])
    .describe('A column whose value, when not NULL and not false/0, marks the row deleted (deleted_at, is_deleted); null: none'),
  batch_size: z
    .number()
    .int('batch_size must be a whole number')
    .min(1, 'batch_size must be at least 1')
    .max(10_000, 'batch_size must be at most 10000')
    .describe('Rows read and written per checkpoint (default 500)'),
  // Nullable rather than a union with null, so a string is "must be a number, got string".
  max_tokens_per_run: z
    .number()
    .int('max_tokens_per_run must be a whole number of tokens')
    .min(1, 'max_tokens_per_run must be at least 1')
    .max(MAX_TOKENS_PER_RUN, `max_tokens_per_run must be at most ${MAX_TOKENS_PER_RUN}`)
    .nullable()
    .describe(
      'Tokens a run may embed; a run that would exceed it embeds up to it, checkpoints and ends succeeded with budget_reached, and the next tick continues. null (default): no limit',
    ),
  webhook_url: z
    .string()
    .max(2000, 'webhook_url must be at most 2000 characters')
    .refine((u) => /^https?:\/\//i.test(u) && URL.canParse(u), 'webhook_url must be an http:// or https:// URL')
    .nullable()
    .describe(
      'Receives JSON POSTs (run.failed, job.failed, job.lagging) signed X-Kbsync-Signature: sha256=<HMAC-SHA256 of the body> with webhook_secret. null (default): none',
    ),
  alert_lag_seconds: z
    .number()
    .int('alert_lag_seconds must be a whole number of seconds')
    .min(1, 'alert_lag_seconds must be at least 1')
    .max(31_536_000, 'alert_lag_seconds must be at most 31536000 (a year)')
    .nullable()
    .describe('A job.lagging event is sent when lag_seconds passes this (once, until the job catches up again). null (default): none'),
};

export const CreateJobBody = z.strictObject({
  job_name: jobFields.job_name,
  source_table: jobFields.source_table,
  kb_name: jobFields.kb_name,
  content_columns: jobFields.content_columns,
  filter_column: jobFields.filter_column,
  interval: jobFields.interval,
  start_time: jobFields.start_time,
  end_time: jobFields.end_time,
  backfill: jobFields.backfill.optional(),
  lookback: jobFields.lookback.optional(),
  metadata_columns: jobFields.metadata_columns.optional(),
  batch_size: jobFields.batch_size.optional(),
  deletes: jobFields.deletes.optional(),
  soft_delete_column: jobFields.soft_delete_column.optional(),
  max_tokens_per_run: jobFields.max_tokens_per_run.optional(),
  webhook_url: jobFields.webhook_url.optional(),
  alert_lag_seconds: jobFields.alert_lag_seconds.optional(),
  dry_run: z
    .boolean({ error: 'dry_run must be true or false' })
    .describe('true: validate the job and answer what its first run would embed (200, the estimate); nothing is created')
    .optional(),
});
export type CreateJobInput = z.infer<typeof CreateJobBody>;

/** At least one field: the server answers `{}` with "body must change at least one field". */
export const PatchJobBody = z.strictObject({
  interval: jobFields.interval.optional(),
  start_time: jobFields.start_time.optional(),
  end_time: jobFields.end_time.optional(),
  content_columns: jobFields.content_columns.optional(),
  filter_column: jobFields.filter_column.optional(),
  metadata_columns: jobFields.metadata_columns.optional(),
  lookback: jobFields.lookback.optional(),
  batch_size: jobFields.batch_size.optional(),
  deletes: jobFields.deletes.optional(),
  soft_delete_column: jobFields.soft_delete_column.optional(),
  max_tokens_per_run: jobFields.max_tokens_per_run.optional(),
  webhook_url: jobFields.webhook_url.optional(),
  alert_lag_seconds: jobFields.alert_lag_seconds.optional(),
}).meta({ minProperties: 1 });
export type PatchJobInput = z.infer<typeof PatchJobBody>;

const port = z.number().int('port must be a whole number').min(1, 'port must be 1-65535').max(65535, 'port must be 1-65535');

export const CreateDatabaseBody = z.strictObject({
  name: resourceName('name'),
  engine: z.enum(['postgres', 'mysql', 'sqlite'], { error: 'engine must be one of postgres, mysql, sqlite' }),
  parameters: z.strictObject({
    url: nonEmpty('parameters.url', 2048).optional(),
    host: nonEmpty('parameters.host').optional(),
    port: port.optional(),
    user: nonEmpty('parameters.user').optional(),
    password: z.string().max(1024, 'parameters.password is too long').optional(),
    database: nonEmpty('parameters.database').optional(),
    schema: nonEmpty('parameters.schema', 63).optional(),
    ssl: z.boolean().optional(),
    path: nonEmpty('parameters.path', 4096).optional(),
  }),
});
export type CreateDatabaseInput = z.infer<typeof CreateDatabaseBody>;

const EmbeddingBody = z.strictObject({
  provider: z.enum(['local', 'openai'], { error: 'embedding.provider must be local or openai' }),
  model: nonEmpty('embedding.model', 200).optional(),
  dimensions: z.number().int().min(1).max(8192).optional(),
  base_url: nonEmpty('embedding.base_url', 2048).optional(),
  api_key: nonEmpty('embedding.api_key', 4096).optional(),
  price_per_million_tokens: z
    .number({ error: 'embedding.price_per_million_tokens must be a number (e.g. 0.02)' })
    .min(0, 'embedding.price_per_million_tokens must be at least 0')
    .max(1_000_000, 'embedding.price_per_million_tokens must be at most 1000000')
    .describe('What a million embedded tokens cost, in your currency: estimates and totals show a cost (null when unset)')
    .optional(),
});

const ChunkingBody = z.strictObject({
  chunk_size: z.number().int().min(50, 'chunking.chunk_size must be at least 50').max(8000, 'chunking.chunk_size must be at most 8000'),
  // Less than half of chunk_size (registry.ts); 3999 is that bound for the largest chunk_size.
  chunk_overlap: z
    .number()
    .int()
    .min(0, 'chunking.chunk_overlap must be at least 0')
    .max(3999, 'chunking.chunk_overlap must be less than half of chunking.chunk_size'),
});

const descriptionField = z.string().max(2000, 'description must be at most 2000 characters');

export const CreateKnowledgeBaseBody = z.strictObject({
  kb_name: resourceName('kb_name'),
  description: descriptionField.optional(),
  embedding: EmbeddingBody.optional(),
  chunking: ChunkingBody.optional(),
});
export type CreateKnowledgeBaseInput = z.infer<typeof CreateKnowledgeBaseBody>;
export type EmbeddingInput = z.infer<typeof EmbeddingBody>;

/**
 * PATCH /knowledge_bases/{kb}: a new `embedding` (the whole configuration, as on create) or
 * `chunking` starts a shadow rebuild (kb/rebuild.ts); `description` alone is written at once.
 */
export const PatchKnowledgeBaseBody = z
  .strictObject({
    description: descriptionField.nullable().optional(),
    embedding: EmbeddingBody.optional(),
    chunking: ChunkingBody.optional(),
  })
  .meta({ minProperties: 1 });
export type PatchKnowledgeBaseInput = z.infer<typeof PatchKnowledgeBaseBody>;

/**
 * Query strings of list routes (strings from the URL). Their messages read like the body's
 * ("status must be one of …, got 'x'"); the OpenAPI document shows `limit` as the integer it is.
 */
/** `?limit=`: a whole number from 1 to 200; the message quotes what was sent. */
const limitParam = z
  .string({ error: 'limit must be a whole number from 1 to 200, given once' })
  .transform((text, ctx) => {
    const n = /^\d{1,4}$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
    if (!(n >= 1 && n <= 200)) {
      ctx.addIssue({ code: 'custom', message: `limit must be a whole number from 1 to 200, got '${text.slice(0, 40)}'`, input: text });
      return z.NEVER;
    }
    return n;
  })
  .meta({ type: 'integer', minimum: 1, maximum: 200, description: 'Page size (default 50)' })
  .optional();
const cursorParam = z
  .string()
  .max(200, 'cursor must be at most 200 characters (pass next_cursor as it came)')
  .meta({ description: 'next_cursor of the previous page' })
  .optional();
/** `?stale_after=`: seconds, a whole number ≥ 0 (API.md "Cost and freshness"). */
const staleAfterParam = z
  .string({ error: 'stale_after must be a whole number of seconds (0 or more), given once' })
  .transform((text, ctx) => {
    const n = /^\d{1,10}$/.test(text.trim()) ? Number(text.trim()) : Number.NaN;
    if (!(n >= 0)) {
      ctx.addIssue({ code: 'custom', message: `stale_after must be a whole number of seconds (0 or more), got '${text.slice(0, 40)}'`, input: text });
      return z.NEVER;
    }
    return n;
  })
  .meta({ type: 'integer', minimum: 0, description: 'Only jobs whose stored lag_seconds is greater than this' })
  .optional();
const JOB_STATUSES = ['scheduled', 'running', 'paused', 'completed', 'failed'] as const;
export const ListJobsQuery = z.strictObject({
  status: z
    .enum(JOB_STATUSES, {
      error: (issue) => `status must be one of ${JOB_STATUSES.join(', ')}, got '${String(issue.input).slice(0, 40)}'`,
    })
    .optional(),
  kb_name: z.string().max(63, 'kb_name must be at most 63 characters').optional(),
  stale_after: staleAfterParam,
  limit: limitParam,
  cursor: cursorParam,
});

/** POST /jobs/{job}/estimate: an optional body. */
export const EstimateBody = z.strictObject({
  max_rows: z
    .number({ error: `max_rows must be a whole number from 1 to ${MAX_ESTIMATE_ROWS}` })
    .int(`max_rows must be a whole number from 1 to ${MAX_ESTIMATE_ROWS}`)
    .min(1, `max_rows must be a whole number from 1 to ${MAX_ESTIMATE_ROWS}`)
    .max(MAX_ESTIMATE_ROWS, `max_rows must be a whole number from 1 to ${MAX_ESTIMATE_ROWS}`)
    .describe('Rows to read at most (default 100000); past it the estimate is a lower bound (complete: false)')
    .optional(),
});

export const PageQuery = z.strictObject({
  limit: limitParam,
  cursor: cursorParam,
});

const metadataScalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);

export const UpsertDocumentsBody = z.strictObject({
  documents: z
    .array(
      z.strictObject({
        id: z.string().min(1, 'document id must not be empty').max(512, 'document id must be at most 512 characters'),
        content: z.string(),
        metadata: z.record(z.string().max(64), metadataScalar).optional(),
      }),
    )
    .min(1, 'documents must hold at least 1 document')
    .max(1000, 'documents must hold at most 1000 documents per request'),
});
export type UpsertDocumentsInput = z.infer<typeof UpsertDocumentsBody>;

const rangeBound = z.union([z.string(), z.number()]);
export const QueryBody = z.strictObject({
  query: z
    .string()
    .trim()
    .min(1, 'query must not be empty')
    .max(10_000, 'query must be at most 10000 characters')
    // Blank text is refused after trimming: the document says so with "holds a non-space".
    .meta({ pattern: '\\S' }),
  top_k: z
    .number()
    .int('top_k must be a whole number')
    .min(1, 'top_k must be between 1 and 100')
    .max(100, 'top_k must be between 1 and 100')
    .optional(),
  min_relevance: z.number().min(0, 'min_relevance must be between 0 and 1').max(1, 'min_relevance must be between 0 and 1').optional(),
  mode: z.enum(['semantic', 'keyword', 'hybrid'], { error: 'mode must be semantic, keyword or hybrid' }).optional(),
  filter: z
    .record(
      z.string(),
      z.union([
        metadataScalar,
        z.strictObject({
          in: z.array(metadataScalar).max(1000).optional(),
          gt: rangeBound.optional(),
          gte: rangeBound.optional(),
          lt: rangeBound.optional(),
          lte: rangeBound.optional(),
        }),
      ]),
    )
    .optional(),
});
export type QueryInput = z.infer<typeof QueryBody>;
