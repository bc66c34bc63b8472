/** The response envelope of API.md: {success, message, data} or {success: false, error}. */
import type { FastifyReply } from 'fastify';

export function ok(reply: FastifyReply, message: string, data: unknown, status = 200): FastifyReply {
  return reply.code(status).send({ success: true, message, data });
}

export function errorBody(code: string, message: string, details: string[]) {
  return { success: false as const, error: { code, message, details } };
}
