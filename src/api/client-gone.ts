/**
 * A signal for a long request that is not behind an admission gate (an estimate reads up to
 * 100,000 rows): aborted when the client closes the connection before its answer is written, so
 * the work for nobody stops — the source query in flight is cancelled. Gated routes get theirs
 * from admission.ts (clientSignal), with the same reason.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ClientGoneError } from './admission.js';

export function whenClientGone(request: FastifyRequest, reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new ClientGoneError());
  });
  if (request.raw.socket?.destroyed) controller.abort(new ClientGoneError());
  return controller.signal;
}
