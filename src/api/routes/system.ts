import type { FastifyInstance } from 'fastify';
import type { Services } from '../../app.js';
import { errorBody } from '../envelope.js';
import { ok } from '../envelope.js';

export const systemRoutes = (services: Services) => async (app: FastifyInstance) => {
  app.get('/health', { schema: { tags: ['system'], summary: 'Liveness and store reachability' } }, async (_request, reply) => {
    try {
      await services.store.ping();
      return ok(reply, 'ok', { status: 'ok', store: 'ok', version: services.version });
    } catch {
      return reply.code(503).send(errorBody('INTERNAL_ERROR', 'Store unreachable', ['the control store did not answer']));
    }
  });

  app.get('/metrics', { schema: { tags: ['system'], summary: 'Prometheus metrics (text format)' } }, async (_request, reply) => {
    const { registry } = services.metrics;
    return reply.type(registry.contentType).send(await registry.metrics());
  });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
};
