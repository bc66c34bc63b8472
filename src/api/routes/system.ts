import type { FastifyInstance } from 'fastify';
import type { Services } from '../../app.js';
import { errorBody } from '../envelope.js';
import { ok } from '../envelope.js';

export const systemRoutes = (services: Services) => async (app: FastifyInstance) => {
  app.get('/health', { config: { auth: 'public' }, schema: { tags: ['system'], summary: 'Liveness and store reachability (no API key needed)', security: [] } }, async (_request, reply) => {
    try {
      await services.store.ping();
      let fault = services.storeHealth.failure;
      if (fault !== null) {
        // Failing since an earlier write: room on the disk and a tiny write tell whether the store
        // takes writes again.
        try {
          if (!services.storeHealth.hasRoom()) throw Object.assign(new Error('no room'), { code: services.storeHealth.failure?.code });
          await services.store.acquireLease(HEALTH_PROBE, HEALTH_PROBE, 1, Date.now());
          await services.store.releaseLease(HEALTH_PROBE, HEALTH_PROBE);
          services.storeHealth.succeeded();
        } catch (err) {
          services.storeHealth.failed(err);
        }
        fault = services.storeHealth.failure;
      }
      if (fault !== null) {
        return reply
          .code(503)
          .send(errorBody('STORE_UNAVAILABLE', 'The store cannot be written', [`${fault.message} (since ${new Date(fault.since).toISOString()}); reads still work`]));
      }
      return ok(reply, 'ok', { status: 'ok', store: 'ok', version: services.version });
    } catch {
      return reply.code(503).send(errorBody('INTERNAL_ERROR', 'Store unreachable', ['the control store did not answer']));
    }
  });

  app.get('/metrics', { config: { auth: 'operator' }, schema: { tags: ['system'], summary: 'Prometheus metrics (text format; the admin key when authentication is on)' } }, async (_request, reply) => {
    const { registry } = services.metrics;
    return reply.type(registry.contentType).send(await registry.metrics());
  });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
};

/** A lease row written and removed to probe whether a failing store takes writes again. */
const HEALTH_PROBE = 'kbsync:health-probe';
