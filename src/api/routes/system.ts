import type { FastifyInstance } from 'fastify';
import type { Services } from '../../app.js';
import { errorBody } from '../envelope.js';
import { ok } from '../envelope.js';
import { operation } from '../openapi/operation.js';
import { dataOf } from '../openapi/schemas.js';

const health = operation({
  operationId: 'getHealth',
  tag: 'system',
  method: 'GET',
  auth: 'public',
  summary: 'Liveness and store health',
  description: 'Whether the process answers and its store takes writes; no API key needed, never rate-limited.',
  ok: {
    status: 200,
    description: 'Alive, and the store takes writes',
    data: dataOf.object({
      status: dataOf.string(undefined, { enum: ['ok'] }),
      store: dataOf.string(undefined, { enum: ['ok'] }),
      version: dataOf.string('The kbsync version'),
    }),
  },
  errors: {
    503: 'The store cannot be written since an earlier failure (STORE_UNAVAILABLE; reads still work), or it does not answer (INTERNAL_ERROR)',
  },
});

const metrics = operation({
  operationId: 'getMetrics',
  tag: 'system',
  method: 'GET',
  auth: 'operator',
  unlimited: true,
  storeless: true,
  summary: 'Prometheus metrics',
  description: 'Metrics in the Prometheus text format (docs/operations.md); the admin key when authentication is on.',
  ok: { status: 200, description: 'The metrics', text: 'text/plain', data: { type: 'string' } },
});

export const systemRoutes = (services: Services) => async (app: FastifyInstance) => {
  app.get('/health', { config: { auth: 'public' }, schema: health }, async (_request, reply) => {
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

  app.get('/metrics', { config: { auth: 'operator' }, schema: metrics }, async (_request, reply) => {
    const { registry } = services.metrics;
    return reply.type(registry.contentType).send(await registry.metrics());
  });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
};

/** A lease row written and removed to probe whether a failing store takes writes again. */
const HEALTH_PROBE = 'kbsync:health-probe';
