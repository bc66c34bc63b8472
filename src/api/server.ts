/**
 * The HTTP server: Fastify with the envelope, one error mapping, OpenAPI and the routes.
 * Routes are thin: they parse path/query, call a service and wrap the result.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { AppError } from '../core/errors.js';
import { errorBody } from './envelope.js';
import { databaseRoutes } from './routes/databases.js';
import { jobRoutes } from './routes/jobs.js';
import { knowledgeBaseRoutes } from './routes/knowledge-bases.js';
import { systemRoutes } from './routes/system.js';
import type { Services } from '../app.js';

export const DEFAULT_ACCOUNT = 'default';

/** The account a request acts for; one default account until API keys are configured. */
export const accountOf = (_request: FastifyRequest): string => DEFAULT_ACCOUNT;

export async function buildServer(config: Readonly<Config>, services: Services, logger: Logger): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.bodyLimitBytes,
    // Validation is zod's (core/schemas.ts); the JSON schemas on routes only document them.
    ajv: { customOptions: { strict: false } },
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

  app.setErrorHandler((err, request, reply) => {
    if (err instanceof AppError) {
      return reply.code(err.status).send(errorBody(err.code, err.message, err.details));
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

  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, not the URL, so job names do not explode the label set.
    const route = request.routeOptions.url ?? 'unmatched';
    services.metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
  });

  await app.register(swagger, {
    openapi: {
      info: {
        title: 'kbsync API',
        version: '0.1.0',
        description: 'Keep an AI knowledge base in sync with your tables. Every response uses the {success, message, data} / {success, error} envelope.',
      },
      servers: [{ url: `http://${config.host}:${config.port}` }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  await app.register(systemRoutes(services));
  await app.register(databaseRoutes(services));
  await app.register(knowledgeBaseRoutes(services));
  await app.register(jobRoutes(services));
  return app;
}
