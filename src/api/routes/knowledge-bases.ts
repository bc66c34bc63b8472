import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../app.js';
import { CreateKnowledgeBaseBody, PageQuery, QueryBody, UpsertDocumentsBody } from '../../core/schemas.js';
import { KnowledgeBaseRegistry } from '../../kb/registry.js';
import { errorResponse, jsonSchema, successResponse } from '../docs.js';
import { clientSignal } from '../admission.js';
import { ok } from '../envelope.js';
import { parseQuery } from '../query.js';
import { accountOf } from '../server.js';

type KbParams = FastifyRequest<{ Params: { kb: string } }>;
type DocParams = FastifyRequest<{ Params: { kb: string; id: string } }>;

/** Documents may be large; their own limit (KBSYNC_MAX_DOCUMENT_CHARS) says so precisely. */
const DOCUMENTS_BODY_LIMIT = 64 * 1024 * 1024;

export const knowledgeBaseRoutes = (services: Services) => async (app: FastifyInstance) => {
  const { kbs, engine } = services;
  const tags = ['knowledge bases'];

  const present = async (record: Parameters<typeof KnowledgeBaseRegistry.present>[0]) => {
    const counts = await engine.counts(record);
    return { ...KnowledgeBaseRegistry.present(record), document_count: counts.documents, chunk_count: counts.chunks };
  };

  const create = async (request: FastifyRequest, reply: FastifyReply) => {
    const record = await kbs.create(accountOf(request), request.body);
    return ok(reply, 'Knowledge base created', await present(record), 201);
  };
  const schema = {
    tags,
    summary: 'Create a knowledge base (an openai provider is probed first)',
    body: jsonSchema(CreateKnowledgeBaseBody),
    response: { 201: successResponse('Created'), 400: errorResponse, 409: errorResponse },
  };
  app.post('/knowledge_bases/create', { schema }, create);
  app.post('/knowledge_bases', { schema: { ...schema, summary: 'Alias of POST /knowledge_bases/create' } }, create);

  app.get('/knowledge_bases', { schema: { tags, summary: 'List knowledge bases' } }, async (request, reply) => {
    const list = await kbs.list(accountOf(request));
    return ok(reply, 'Knowledge bases', { knowledge_bases: await Promise.all(list.map(present)) });
  });

  app.get('/knowledge_bases/:kb', { schema: { tags, summary: 'Get a knowledge base with document and chunk counts' } }, async (request: KbParams, reply) => {
    return ok(reply, 'Knowledge base', await present(await kbs.get(accountOf(request), request.params.kb)));
  });

  app.delete('/knowledge_bases/:kb', { schema: { tags, summary: 'Delete a knowledge base and its vectors (409 while jobs target it)' } }, async (request: KbParams, reply) => {
    await kbs.delete(accountOf(request), request.params.kb);
    return ok(reply, 'Knowledge base deleted', { kb_name: request.params.kb });
  });

  app.post(
    '/knowledge_bases/:kb/documents',
    { bodyLimit: DOCUMENTS_BODY_LIMIT, schema: { tags, summary: 'Upsert documents by id', body: jsonSchema(UpsertDocumentsBody) } },
    async (request: KbParams, reply) => {
      const counts = await engine.upsertFromApi(accountOf(request), request.params.kb, request.body);
      return ok(reply, 'Documents upserted', {
        added: counts.added,
        updated: counts.updated,
        unchanged: counts.unchanged,
        chunks_written: counts.chunksWritten,
      });
    },
  );

  app.get('/knowledge_bases/:kb/documents', { schema: { tags, summary: 'Page through documents', querystring: jsonSchema(PageQuery) } }, async (request: KbParams, reply) => {
    const q = parseQuery(PageQuery, request.query);
    return ok(reply, 'Documents', await engine.listDocuments(accountOf(request), request.params.kb, { limit: q.limit ?? 50, cursor: q.cursor ?? null }));
  });

  app.delete('/knowledge_bases/:kb/documents/:id', { schema: { tags, summary: 'Delete one document' } }, async (request: DocParams, reply) => {
    await engine.deleteDocument(accountOf(request), request.params.kb, request.params.id);
    return ok(reply, 'Document deleted', { id: request.params.id });
  });

  app.post('/knowledge_bases/:kb/query', { schema: { tags, summary: 'Search: semantic (default), keyword or hybrid', body: jsonSchema(QueryBody) } }, async (request: KbParams, reply) => {
    const { results, mode } = await engine.query(accountOf(request), request.params.kb, request.body, clientSignal(request));
    return ok(reply, 'Query results', { mode, results });
  });
};
