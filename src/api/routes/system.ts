import type { FastifyInstance } from 'fastify';
import type { Services } from '../../app.js';
import { formatTime } from '../../core/time.js';
import { errorBody } from '../envelope.js';
import { ok } from '../envelope.js';
import { operation } from '../openapi/operation.js';
import { dataOf } from '../openapi/schemas.js';

const health = operation({
  operationId: 'getHealth',
  tag: 'system',
  method: 'GET',
  auth: 'public',
  summary: 'Liveness, store health and the fleet',
  description:
    'Whether the process answers and its store takes writes, which store backend it uses, its process id, and the live processes sharing the store (docs/operations.md, "Running a fleet"); no API key needed, never rate-limited.',
  ok: {
    status: 200,
    description: 'Alive, and the store takes writes',
    data: dataOf.object({
      status: dataOf.string(undefined, { enum: ['ok'] }),
      store: dataOf.string(undefined, { enum: ['ok'] }),
      version: dataOf.string('The kbsync version'),
      backend: dataOf.string('The store backend: the embedded SQLite file, or PostgreSQL', { enum: ['sqlite', 'postgres'] }),
      process_id: dataOf.string('This process: host:pid:random, as runs name it (a run\'s process_id)'),
      fleet: {
        type: 'array',
        description: 'Live processes on this store, oldest first (their heartbeat is renewed every third of KBSYNC_LEASE_TTL_MS)',
        items: dataOf.object({
          process_id: dataOf.string(),
          host: dataOf.string(),
          pid: dataOf.count(),
          started_at: dataOf.time(),
          runs: dataOf.count('Runs the process holds now'),
        }),
      },
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
      return ok(reply, 'ok', { status: 'ok', store: 'ok', version: services.version, backend: services.backend, ...(await fleetOf(services)) });
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

/** This process and the live ones of its fleet, each with the runs it holds (claims not expired). */
async function fleetOf(services: Services): Promise<{ process_id: string; fleet: Array<Record<string, unknown>> }> {
  const { fleet } = services;
  const members = await fleet.live();
  // This process is listed even before its first heartbeat (KBSYNC_SCHEDULER=off and no listen(): tests).
  if (!members.some((m) => m.id === fleet.id)) members.push(fleet.self);
  const now = Date.now();
  const runs = new Map<string, number>();
  for (const job of await services.store.listJobsWithStatus('running', 10_000)) {
    const lease = job.runLease;
    if (lease != null && lease.expiresAt > now) runs.set(lease.owner, (runs.get(lease.owner) ?? 0) + 1);
  }
  return {
    process_id: fleet.id,
    fleet: members.map((m) => ({ process_id: m.id, host: m.host, pid: m.pid, started_at: formatTime(m.startedAt), runs: runs.get(m.id) ?? 0 })),
  };
}

/** A lease row written and removed to probe whether a failing store takes writes again. */
const HEALTH_PROBE = 'kbsync:health-probe';
