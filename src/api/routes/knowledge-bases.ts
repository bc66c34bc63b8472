import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CreateKnowledgeBaseBody } from '../../core/schemas.js';
import type { Services } from '../../app.js';
import { KnowledgeBaseRegistry } from '../../kb/registry.js';
import { errorResponse, jsonSchema, successResponse } from '../docs.js';
import { ok } from '../envelope.js';
import { accountOf } from '../server.js';

type KbParams = FastifyRequest<{ Params: { kb: string } }>;

export const knowledgeBaseRoutes = (services: Services) => async (app: FastifyInstance) => {
  const { kbs } = services;

  const create = async (request: FastifyRequest, reply: FastifyReply) => {
    const record = await kbs.create(accountOf(request), request.body);
    return ok(reply, 'Knowledge base created', KnowledgeBaseRegistry.present(record), 201);
  };
  const schema = {
    tags: ['knowledge bases'],
    summary: 'Create a knowledge base',
    body: jsonSchema(CreateKnowledgeBaseBody),
    response: { 201: successResponse('Created'), 400: errorResponse, 409: errorResponse },
  };
  app.post('/knowledge_bases/create', { schema }, create);
  app.post('/knowledge_bases', { schema: { ...schema, summary: 'Alias of POST /knowledge_bases/create' } }, create);

  app.get('/knowledge_bases', { schema: { tags: ['knowledge bases'], summary: 'List knowledge bases' } }, async (request, reply) => {
    const list = await kbs.list(accountOf(request));
    return ok(reply, 'Knowledge bases', { knowledge_bases: list.map(KnowledgeBaseRegistry.present) });
  });

  app.get('/knowledge_bases/:kb', { schema: { tags: ['knowledge bases'], summary: 'Get a knowledge base' } }, async (request: KbParams, reply) => {
    return ok(reply, 'Knowledge base', KnowledgeBaseRegistry.present(await kbs.get(accountOf(request), request.params.kb)));
  });

  app.delete('/knowledge_bases/:kb', { schema: { tags: ['knowledge bases'], summary: 'Delete a knowledge base (409 while jobs target it)' } }, async (request: KbParams, reply) => {
    await kbs.delete(accountOf(request), request.params.kb);
    return ok(reply, 'Knowledge base deleted', { kb_name: request.params.kb });
  });
};
