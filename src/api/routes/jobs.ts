import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CreateJobBody, ListJobsQuery, PageQuery, PatchJobBody } from '../../core/schemas.js';
import type { Services } from '../../app.js';
import { errorResponse, jsonSchema, successResponse } from '../docs.js';
import { ok } from '../envelope.js';
import { presentFailure, presentJob, presentRun } from '../present.js';
import { parseQuery } from '../query.js';
import { accountOf } from '../server.js';

type JobParams = FastifyRequest<{ Params: { job: string } }>;
type RunParams = FastifyRequest<{ Params: { job: string; run: string } }>;

const jobParam = { type: 'object', properties: { job: { type: 'string', description: 'job id or name' } } };
const errors = { 400: errorResponse, 404: errorResponse, 409: errorResponse };

export const jobRoutes = (services: Services) => async (app: FastifyInstance) => {
  const { jobs } = services;

  const create = async (request: FastifyRequest, reply: import('fastify').FastifyReply) => {
    const { job, warnings } = await jobs.create(accountOf(request), request.body);
    return ok(reply, 'Job created successfully', { ...presentJob(job), ...(warnings.length ? { warnings } : {}) }, 201);
  };
  const createSchema = {
    tags: ['jobs'],
    summary: 'Create a job that syncs database.table into a knowledge base on a schedule',
    body: jsonSchema(CreateJobBody),
    response: { 201: successResponse('Job created'), ...errors, 429: errorResponse },
  };
  app.post('/jobs/create', { schema: createSchema }, create);
  app.post('/jobs', { schema: { ...createSchema, summary: 'Alias of POST /jobs/create' } }, create);

  app.get('/jobs', { schema: { tags: ['jobs'], summary: 'List jobs', querystring: jsonSchema(ListJobsQuery) } }, async (request, reply) => {
    const q = parseQuery(ListJobsQuery, request.query);
    const page = await jobs.list(accountOf(request), {
      status: q.status,
      kbName: q.kb_name,
      limit: q.limit ?? 50,
      cursor: q.cursor ?? null,
    });
    return ok(reply, 'Jobs', { jobs: page.items.map(presentJob), next_cursor: page.next });
  });

  app.get('/jobs/:job', { schema: { tags: ['jobs'], summary: 'Get a job by id or name', params: jobParam } }, async (request: JobParams, reply) => {
    return ok(reply, 'Job', presentJob(await jobs.get(accountOf(request), request.params.job)));
  });

  app.patch(
    '/jobs/:job',
    { schema: { tags: ['jobs'], summary: 'Change a job (same validation as create)', params: jobParam, body: jsonSchema(PatchJobBody) } },
    async (request: JobParams, reply) => {
      const { job, warnings } = await jobs.patch(accountOf(request), request.params.job, request.body);
      return ok(reply, 'Job updated', { ...presentJob(job), ...(warnings.length ? { warnings } : {}) });
    },
  );

  app.post('/jobs/:job/pause', { schema: { tags: ['jobs'], summary: 'Pause a job (keeps its watermark)', params: jobParam } }, async (request: JobParams, reply) => {
    return ok(reply, 'Job paused', presentJob(await jobs.pause(accountOf(request), request.params.job)));
  });

  app.post('/jobs/:job/resume', { schema: { tags: ['jobs'], summary: 'Resume a paused or failed job on its grid', params: jobParam } }, async (request: JobParams, reply) => {
    const { job, warnings } = await jobs.resume(accountOf(request), request.params.job);
    return ok(reply, 'Job resumed', { ...presentJob(job), ...(warnings.length ? { warnings } : {}) });
  });

  app.post('/jobs/:job/run', { schema: { tags: ['jobs'], summary: 'Run a job now (manual run)', params: jobParam } }, async (request: JobParams, reply) => {
    const run = await jobs.runNow(accountOf(request), request.params.job);
    return ok(reply, 'Run started', { run_id: run.id, ...presentRun(run) }, 202);
  });

  app.delete('/jobs/:job', { schema: { tags: ['jobs'], summary: 'Delete a job (the knowledge base keeps what was synced)', params: jobParam } }, async (request: JobParams, reply) => {
    const job = await jobs.delete(accountOf(request), request.params.job);
    return ok(reply, 'Job deleted', { job_id: job.id, job_name: job.name });
  });

  app.get('/jobs/:job/runs', { schema: { tags: ['jobs'], summary: 'Run history, newest first', params: jobParam, querystring: jsonSchema(PageQuery) } }, async (request: JobParams, reply) => {
    const q = parseQuery(PageQuery, request.query);
    const page = await jobs.runs(accountOf(request), request.params.job, { limit: q.limit ?? 50, cursor: q.cursor ?? null });
    return ok(reply, 'Runs', { runs: page.items.map(presentRun), next_cursor: page.next });
  });

  app.get(
    '/jobs/:job/failures',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Rows that could not be synced (too long, refused by the embedding provider), by document id',
        params: jobParam,
        querystring: jsonSchema(PageQuery),
        response: { 200: successResponse('Failed rows: {failures, next_cursor}'), 400: errorResponse, 404: errorResponse },
      },
    },
    async (request: JobParams, reply) => {
      const q = parseQuery(PageQuery, request.query);
      const page = await jobs.failures(accountOf(request), request.params.job, { limit: q.limit ?? 50, cursor: q.cursor ?? null });
      return ok(reply, 'Failed rows', { failures: page.items.map(presentFailure), next_cursor: page.next });
    },
  );

  app.post(
    '/jobs/:job/failures/retry',
    {
      schema: {
        tags: ['jobs'],
        summary: 'Retry the failed rows now (a manual run that reads them again first); 409 while a run is in progress or when there are none',
        params: jobParam,
        response: { 202: successResponse('Run started'), 404: errorResponse, 409: errorResponse },
      },
    },
    async (request: JobParams, reply) => {
      const run = await jobs.retryFailures(accountOf(request), request.params.job);
      return ok(reply, 'Retry of the failed rows started', { run_id: run.id, ...presentRun(run) }, 202);
    },
  );

  app.get('/jobs/:job/runs/:run', { schema: { tags: ['jobs'], summary: 'One run' } }, async (request: RunParams, reply) => {
    return ok(reply, 'Run', presentRun(await jobs.run(accountOf(request), request.params.job, request.params.run)));
  });
};
