import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CreateJobBody, EstimateBody, ListJobsQuery, PageQuery, PatchJobBody } from '../../core/schemas.js';
import type { Services } from '../../app.js';
import { whenClientGone } from '../client-gone.js';
import { ok } from '../envelope.js';
import { ESTIMATE, PATCH_JOB, RUN, SEED_JOB, SEED_JOB_REQUEST } from '../openapi/examples.js';
import { operation } from '../openapi/operation.js';
import { dataOf, ref } from '../openapi/schemas.js';
import { isStale, presentEstimate, presentFailure, presentJob, presentRun, presentWebhook } from '../present.js';
import { parseQuery } from '../query.js';
import { accountOf } from '../server.js';

type JobParams = FastifyRequest<{ Params: { job: string } }>;
type RunParams = FastifyRequest<{ Params: { job: string; run: string } }>;

const tag = 'jobs';
const job = { job: 'Job id (job_…) or name' };
const NO_JOB = 'No job with that id or name in this account (NOT_FOUND)';
const INVALID_JOB =
  'Invalid job (every problem in `details`): INVALID_INTERVAL, INVALID_DATETIME, INVALID_TABLE or INVALID_KB when all problems are of that kind, else INVALID_REQUEST';

const createSpec = {
  tag,
  method: 'POST',
  description:
    'Creates a job that syncs `database.table` into a knowledge base every `interval` between `start_time` and ' +
    "`end_time` (at most 30 days). The body is the seed's; optional fields tune backfill, lookback, deletes, " +
    'batch size and `max_tokens_per_run`. A window that has already ended is accepted as `completed` with a warning. ' +
    'With `dry_run: true` nothing is created: the job is validated and the answer (200) is what its first run would embed and cost.',
  body: { schema: CreateJobBody, description: 'The job', example: SEED_JOB_REQUEST },
  ok: {
    status: 201,
    description: 'Job created',
    message: 'Job created successfully',
    data: ref('Job'),
    example: SEED_JOB,
  },
  alsoOk: {
    status: 200,
    description: 'dry_run: true — nothing created; what the first run would embed',
    message: 'Dry run: nothing was created',
    data: ref('Estimate'),
    example: { ...ESTIMATE, dry_run: true, max_tokens_per_run: null, runs: 1 },
  },
  errors: {
    400: INVALID_JOB,
    409: 'A job with that name exists in this account (DUPLICATE_JOB)',
    429: 'The account already has its maximum of active jobs (JOB_LIMIT_EXCEEDED), or too many requests (RATE_LIMITED, with Retry-After)',
  },
} as const;

export const jobRoutes = (services: Services) => async (app: FastifyInstance) => {
  const { jobs } = services;

  const create = async (request: FastifyRequest, reply: FastifyReply) => {
    const { job, warnings, estimate, webhookSecret } = await jobs.create(accountOf(request), request.body);
    if (estimate) return ok(reply, 'Dry run: nothing was created', presentEstimate(estimate));
    return ok(
      reply,
      'Job created successfully',
      // The webhook secret is shown this once; it is stored encrypted and never returned again.
      { ...presentJob(job), ...(webhookSecret ? { webhook_secret: webhookSecret } : {}), ...(warnings.length ? { warnings } : {}) },
      201,
    );
  };
  app.post(
    '/jobs/create',
    { schema: operation({ ...createSpec, operationId: 'createJob', summary: 'Create a job' }) },
    create,
  );
  app.post(
    '/jobs',
    {
      schema: operation({
        ...createSpec,
        operationId: 'createJobAlias',
        summary: 'Create a job (alias of POST /jobs/create)',
      }),
    },
    create,
  );

  app.get(
    '/jobs',
    {
      schema: operation({
        operationId: 'listJobs',
        tag,
        method: 'GET',
        summary: 'List jobs',
        description:
          "The account's jobs in creation order, a page at a time; filter by `status` or `kb_name`, and with `stale_after` only jobs whose stored `lag_seconds` is greater (a page may then hold fewer than `limit`: follow `next_cursor`).",
        query: ListJobsQuery,
        ok: { status: 200, description: 'A page of jobs', data: dataOf.list('jobs', ref('Job'), true) },
        errors: { 400: 'Invalid query parameters (INVALID_REQUEST)' },
      }),
    },
    async (request, reply) => {
      const q = parseQuery(ListJobsQuery, request.query);
      const page = await jobs.list(accountOf(request), {
        status: q.status,
        kbName: q.kb_name,
        limit: q.limit ?? 50,
        cursor: q.cursor ?? null,
      });
      const now = Date.now();
      // On the stored measurement (no source query per listed job); see core/lag.ts.
      const items = q.stale_after === undefined ? page.items : page.items.filter((j) => isStale(j, q.stale_after!, now));
      return ok(reply, 'Jobs', { jobs: items.map((j) => presentJob(j, now)), next_cursor: page.next });
    },
  );

  app.get(
    '/jobs/:job',
    {
      schema: operation({
        operationId: 'getJob',
        tag,
        method: 'GET',
        summary: 'Get a job',
        description:
          'One job by id or name: its configuration, status, next run, last run, watermark and totals, with `lag_seconds` measured now by one bounded source query (the stored measurement, with its `lag_measured_at`, when the source cannot answer).',
        params: job,
        ok: { status: 200, description: 'The job', data: ref('Job') },
        errors: { 404: NO_JOB },
      }),
    },
    async (request: JobParams, reply) => {
      const job = await jobs.getWithFreshLag(accountOf(request), request.params.job, whenClientGone(request, reply));
      return ok(reply, 'Job', presentJob(job));
    },
  );

  app.patch(
    '/jobs/:job',
    {
      schema: operation({
        operationId: 'updateJob',
        tag,
        method: 'PATCH',
        summary: 'Change a job',
        description:
          'Changes the schedule (`interval`, `start_time`, `end_time`) or what a run reads and writes (columns, ' +
          '`lookback`, `batch_size`, `deletes`, `soft_delete_column`), with the validation of create. New columns ' +
          'or a new filter column reset the watermark. At least one field.',
        params: job,
        body: { schema: PatchJobBody, description: 'The fields to change', example: PATCH_JOB },
        ok: { status: 200, description: 'The changed job', data: ref('Job') },
        errors: {
          400: INVALID_JOB,
          404: NO_JOB,
          409: 'A run is in progress and the change touches what it reads (CONFLICT); pause the job or wait',
          429: 'Re-activating a completed job would exceed the active-job limit (JOB_LIMIT_EXCEEDED), or too many requests (RATE_LIMITED)',
        },
      }),
    },
    async (request: JobParams, reply) => {
      const { job, warnings, webhookSecret } = await jobs.patch(accountOf(request), request.params.job, request.body);
      return ok(reply, 'Job updated', { ...presentJob(job), ...(webhookSecret ? { webhook_secret: webhookSecret } : {}), ...(warnings.length ? { warnings } : {}) });
    },
  );

  app.post(
    '/jobs/:job/pause',
    {
      schema: operation({
        operationId: 'pauseJob',
        tag,
        method: 'POST',
        summary: 'Pause a job',
        description:
          'Keeps the watermark and clears `next_run`; a run in progress stops at its next batch. Pausing a paused job changes nothing.',
        params: job,
        ok: { status: 200, description: 'The paused job', data: ref('Job') },
        errors: { 404: NO_JOB, 409: 'The job is completed or failed (CONFLICT)' },
      }),
    },
    async (request: JobParams, reply) => {
      return ok(reply, 'Job paused', presentJob(await jobs.pause(accountOf(request), request.params.job)));
    },
  );

  app.post(
    '/jobs/:job/resume',
    {
      schema: operation({
        operationId: 'resumeJob',
        tag,
        method: 'POST',
        summary: 'Resume a job',
        description:
          'Puts a paused or failed job back on its grid (the first tick at or after now); a window with no tick left makes it `completed`.',
        params: job,
        ok: { status: 200, description: 'The resumed job', data: ref('Job') },
        errors: {
          404: NO_JOB,
          409: 'The job cannot be resumed (CONFLICT)',
          429: 'Resuming a failed job would exceed the active-job limit (JOB_LIMIT_EXCEEDED), or too many requests (RATE_LIMITED)',
        },
      }),
    },
    async (request: JobParams, reply) => {
      const { job, warnings } = await jobs.resume(accountOf(request), request.params.job);
      return ok(reply, 'Job resumed', { ...presentJob(job), ...(warnings.length ? { warnings } : {}) });
    },
  );

  app.post(
    '/jobs/:job/run',
    {
      schema: operation({
        operationId: 'runJob',
        tag,
        method: 'POST',
        summary: 'Run a job now',
        description:
          'Starts a `manual` run at once; the schedule is unchanged. Poll `GET /jobs/{job}/runs/{run_id}` to follow it.',
        params: job,
        ok: {
          status: 202,
          description: 'Run started',
          data: ref('Run'),
          example: { ...RUN, status: 'running', finished_at: null, duration_ms: null },
        },
        errors: { 404: NO_JOB, 409: 'A run is in progress (CONFLICT)' },
      }),
    },
    async (request: JobParams, reply) => {
      const run = await jobs.runNow(accountOf(request), request.params.job);
      return ok(reply, 'Run started', { run_id: run.id, ...presentRun(run) }, 202);
    },
  );

  app.delete(
    '/jobs/:job',
    {
      schema: operation({
        operationId: 'deleteJob',
        tag,
        method: 'DELETE',
        summary: 'Delete a job',
        description:
          'Stops the job (a run in progress stops at its next batch), deletes it with its runs and frees its name. The knowledge base keeps what was synced.',
        params: job,
        ok: {
          status: 200,
          description: 'Job deleted',
          data: dataOf.object({
            job_id: dataOf.string(undefined, { pattern: '^job_' }),
            job_name: dataOf.string(),
          }),
        },
        errors: { 404: NO_JOB },
      }),
    },
    async (request: JobParams, reply) => {
      const job = await jobs.delete(accountOf(request), request.params.job);
      return ok(reply, 'Job deleted', { job_id: job.id, job_name: job.name });
    },
  );

  app.get(
    '/jobs/:job/runs',
    {
      schema: operation({
        operationId: 'listJobRuns',
        tag,
        method: 'GET',
        summary: "List a job's runs",
        description: 'Run history, newest first, a page at a time.',
        params: job,
        query: PageQuery,
        ok: { status: 200, description: 'A page of runs', data: dataOf.list('runs', ref('Run'), true) },
        errors: { 400: 'Invalid query parameters (INVALID_REQUEST)', 404: NO_JOB },
      }),
    },
    async (request: JobParams, reply) => {
      const q = parseQuery(PageQuery, request.query);
      const page = await jobs.runs(accountOf(request), request.params.job, {
        limit: q.limit ?? 50,
        cursor: q.cursor ?? null,
      });
      return ok(reply, 'Runs', { runs: page.items.map(presentRun), next_cursor: page.next });
    },
  );

  app.post(
    '/jobs/:job/estimate',
    {
      schema: operation({
        operationId: 'estimateJobRun',
        tag,
        method: 'POST',
        summary: 'Estimate the next run',
        description:
          'What the next run would embed, without embedding anything: it reads the rows the run would read (past the ' +
          'watermark in keyset order, and the lookback window), builds their documents, compares them with what the ' +
          'knowledge base holds (unchanged documents cost nothing) and counts the tokens of the chunks to embed with ' +
          "cl100k_base; `cost` uses the knowledge base's `price_per_million_tokens`. Reads at most `max_rows` rows " +
          '(default 100,000) for at most 30 s: past either, `complete` is false and the figures are a lower bound.',
        params: job,
        body: { schema: EstimateBody, description: 'Optional', example: { max_rows: 100000 } },
        ok: { status: 200, description: 'The estimate', data: ref('Estimate'), example: ESTIMATE },
        errors: {
          400: 'Invalid body (INVALID_REQUEST), or the source table or a column the job names no longer exists (INVALID_TABLE)',
          404: NO_JOB,
          503: 'The source could not be read now, e.g. a statement timeout (CONNECTION_FAILED), or the store cannot be read (STORE_UNAVAILABLE)',
        },
      }),
    },
    async (request: JobParams, reply) => {
      const signal = whenClientGone(request, reply);
      const estimate = await jobs.estimate(accountOf(request), request.params.job, request.body, signal);
      return ok(reply, 'Estimate of the next run', presentEstimate(estimate));
    },
  );

  app.get(
    '/jobs/:job/webhooks',
    {
      schema: operation({
        operationId: 'listJobWebhooks',
        tag,
        method: 'GET',
        summary: "List the job's webhook deliveries",
        description:
          "Events sent (or being sent) to the job's webhook_url, newest first: `pending` (retried with backoff), `delivered` (a 2xx answer) or `failed` (attempts used up).",
        params: job,
        query: PageQuery,
        ok: { status: 200, description: 'A page of deliveries', data: dataOf.list('webhooks', ref('WebhookDelivery'), true) },
        errors: { 400: 'Invalid query parameters (INVALID_REQUEST)', 404: NO_JOB },
      }),
    },
    async (request: JobParams, reply) => {
      const q = parseQuery(PageQuery, request.query);
      const page = await jobs.webhooks(accountOf(request), request.params.job, { limit: q.limit ?? 50, cursor: q.cursor ?? null });
      return ok(reply, 'Webhook deliveries', { webhooks: page.items.map(presentWebhook), next_cursor: page.next });
    },
  );

  app.get(
    '/jobs/:job/failures',
    {
      schema: operation({
        operationId: 'listJobFailures',
        tag,
        method: 'GET',
        summary: 'List rows that could not be synced',
        description:
          'Rows a run could not turn into a document or embed (too long, refused by the embedding provider), one per document, by document id.',
        params: job,
        query: PageQuery,
        ok: {
          status: 200,
          description: 'A page of failed rows',
          data: dataOf.list('failures', ref('Failure'), true),
        },
        errors: { 400: 'Invalid query parameters (INVALID_REQUEST)', 404: NO_JOB },
      }),
    },
    async (request: JobParams, reply) => {
      const q = parseQuery(PageQuery, request.query);
      const page = await jobs.failures(accountOf(request), request.params.job, {
        limit: q.limit ?? 50,
        cursor: q.cursor ?? null,
      });
      return ok(reply, 'Failed rows', { failures: page.items.map(presentFailure), next_cursor: page.next });
    },
  );

  app.post(
    '/jobs/:job/failures/retry',
    {
      schema: operation({
        operationId: 'retryJobFailures',
        tag,
        method: 'POST',
        summary: 'Retry the failed rows now',
        description:
          'Starts a `manual` run that first reads the failed rows again by key, then goes on like any run.',
        params: job,
        ok: { status: 202, description: 'Run started', data: ref('Run') },
        errors: { 404: NO_JOB, 409: 'A run is in progress, or the job has no failed rows (CONFLICT)' },
      }),
    },
    async (request: JobParams, reply) => {
      const run = await jobs.retryFailures(accountOf(request), request.params.job);
      return ok(reply, 'Retry of the failed rows started', { run_id: run.id, ...presentRun(run) }, 202);
    },
  );

  app.get(
    '/jobs/:job/runs/:run',
    {
      schema: operation({
        operationId: 'getJobRun',
        tag,
        method: 'GET',
        summary: 'Get one run',
        description: 'One run of a job, with its counters, watermarks, error and (while it works) progress.',
        params: { ...job, run: 'Run id (run_…)' },
        ok: { status: 200, description: 'The run', data: ref('Run'), example: RUN },
        errors: { 404: 'No such job, or no such run of it (NOT_FOUND)' },
      }),
    },
    async (request: RunParams, reply) => {
      return ok(
        reply,
        'Run',
        presentRun(await jobs.run(accountOf(request), request.params.job, request.params.run)),
      );
    },
  );
};
