/**
 * The HTTP server: Fastify with the envelope, one error mapping, OpenAPI and the routes.
 * Routes are thin: they parse path/query, call a service and wrap the result.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { AppError } from '../core/errors.js';
import { RateLimitedError, registerAdmission } from './admission.js';
import { errorBody } from './envelope.js';
import { authHook } from './auth.js';
import { registerOpenApi } from './openapi/register.js';
import { accountRoutes } from './routes/accounts.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { databaseRoutes } from './routes/databases.js';
import { jobRoutes } from './routes/jobs.js';
import { knowledgeBaseRoutes } from './routes/knowledge-bases.js';
import { systemRoutes } from './routes/system.js';
import type { Services } from '../app.js';

/** The account a request acts for: the authenticated one, or the default account without auth (api/auth.ts). */
export { accountOf, DEFAULT_ACCOUNT } from './auth.js';

export async function buildServer(config: Readonly<Config>, services: Services, logger: Logger): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.bodyLimitBytes,
    // One line per request, at debug level (the onResponse hook below): at info they drowned the
    // log of a busy server. Errors are still logged at error level by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    // Validation is zod's (core/schemas.ts); the JSON schemas on routes only document them.
    ajv: { customOptions: { strict: false } },
    // Errors raised before routing (`GET /jobs/%ZZ`: a bad percent-escape in the path; a path
    // segment over maxParamLength) answer in the envelope like every other error.
    frameworkErrors: (err, _request, reply) => {
      const status = (err as { statusCode?: number }).statusCode ?? 400;
      const send = reply as unknown as { code(n: number): { send(body: unknown): unknown } };
      send.code(status >= 400 && status < 500 ? status : 400).send(errorBody('INVALID_REQUEST', 'Invalid URL', [err.message]));
    },
  });
  app.setValidatorCompiler(() => (data) => ({ value: data }));
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  // Empty bodies are fine for action routes (POST /jobs/x/pause); bad JSON is the client's error.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(new AppError('INVALID_REQUEST', 'Malformed JSON', [`body is not valid JSON: ${(err as Error).message}`]), undefined);
    }
  });
  // Any other content type (text/plain included, whose default parser handed routes a string that
  // then failed as "body must be a JSON object"): 415, as documented. An empty body is no body,
  // as for JSON (`curl -d '' -X POST …/pause` sends a form content type).
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser('*', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text === '') return done(null, undefined);
    const type = String(request.headers['content-type'] ?? 'none').slice(0, 100);
    done(
      new AppError('INVALID_REQUEST', 'Unsupported content type', [
        `the body was sent as ${type}; send it as JSON with Content-Type: application/json`,
      ], { status: 415 }),
      undefined,
    );
  });

  app.setErrorHandler((err, request, reply) => {
    if (err instanceof AppError) {
      if (err instanceof RateLimitedError) reply.header('retry-after', String(err.retryAfterSeconds));
      return reply.code(err.status).send(errorBody(err.code, err.message, err.details));
    }
    // Disk full, I/O error: 503 with a readable code; /health reports it until a write succeeds.
    if (services.storeHealth.failed(err)) {
      const fault = services.storeHealth.error();
      return reply.code(fault.status).send(errorBody(fault.code, fault.message, fault.details));
    }
    const status = (err as { statusCode?: number }).statusCode;
    const code = (err as { code?: string }).code;
    if (status === 413 || code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply
        .code(413)
        .send(errorBody('INVALID_REQUEST', 'Request body too large', [`the body is larger than ${config.bodyLimitBytes} bytes`]));
    }
    if (status === 415 || code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply
        .code(415)
        .send(errorBody('INVALID_REQUEST', 'Unsupported content type', ['send the body as JSON with Content-Type: application/json']));
    }
    if (status !== undefined && status >= 400 && status < 500) {
      return reply.code(status).send(errorBody('INVALID_REQUEST', 'Invalid request', [(err as Error).message]));
    }
    request.log.error({ err }, 'unhandled error');
    return reply
      .code(500)
      .send(errorBody('INTERNAL_ERROR', `Internal error (request id ${request.id})`, ['the error was logged; please report it']));
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody('NOT_FOUND', 'Route not found', [`no route ${request.method} ${request.url.split('?')[0]}`]));
  });

  // Authentication first, so every later hook and route knows the account (api/auth.ts).
  app.addHook('onRequest', authHook(config.adminKey ?? null, services.accounts));

  // Admission control (admission.ts): per-client rate limit, bounded queues for queries and writes.
  registerAdmission(app, {
    queries: { concurrency: config.maxConcurrentQueries, queue: config.queryQueue, waitMs: config.queryQueueWaitMs },
    writes: { concurrency: config.maxConcurrentWrites, queue: config.writeQueue, waitMs: config.writeQueueWaitMs },
    ratePerMinute: config.rateLimitPerMinute,
  });

  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, not the URL, so job names do not explode the label set.
    const route = request.routeOptions.url ?? 'unmatched';
    services.metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
    request.log.debug(
      { method: request.method, url: request.url.split('?')[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      'request',
    );
  });

  // The OpenAPI document and /docs (api/openapi/): before the routes, whose schemas it collects.
  await registerOpenApi(app, { version: services.version, authOn: config.adminKey !== null });

  await app.register(systemRoutes(services));
  await app.register(databaseRoutes(services));
  await app.register(knowledgeBaseRoutes(services));
  await app.register(jobRoutes(services));
  await app.register(accountRoutes(services));
  // The dashboard at / (routes/dashboard.ts): static files, no API key to load, not in OpenAPI.
  await app.register(dashboardRoutes());
  return app;
}
