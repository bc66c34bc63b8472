import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../app.js';
import { CreateKnowledgeBaseBody, PageQuery, PatchKnowledgeBaseBody, QueryBody, UpsertDocumentsBody } from '../../core/schemas.js';
import type { KnowledgeBaseRecord } from '../../store/port.js';
import { clientSignal } from '../admission.js';
import { ok } from '../envelope.js';
import {
  CREATE_KNOWLEDGE_BASE,
  KNOWLEDGE_BASE,
  KNOWLEDGE_BASE_REBUILDING,
  PATCH_KNOWLEDGE_BASE,
  QUERY,
  QUERY_RESULTS,
  UPSERT_DOCUMENTS,
} from '../openapi/examples.js';
import { operation } from '../openapi/operation.js';
import { dataOf, ref } from '../openapi/schemas.js';
import { knowledgeBaseUsage } from '../../jobs/estimates.js';
import { presentKnowledgeBase } from '../present.js';
import { parseQuery } from '../query.js';
import { accountOf } from '../server.js';

type KbParams = FastifyRequest<{ Params: { kb: string } }>;
type DocParams = FastifyRequest<{ Params: { kb: string; id: string } }>;

/** Documents may be large; their own limit (KBSYNC_MAX_DOCUMENT_CHARS) says so precisely. */
const DOCUMENTS_BODY_LIMIT = 64 * 1024 * 1024;

const tag = 'knowledge bases';
const kb = { kb: 'Knowledge base name' };
const NO_KB = 'No knowledge base with that name in this account (NOT_FOUND)';
const PROVIDER_DOWN =
  'The embedding provider failed for now (CONNECTION_FAILED; retry later), or the store cannot be written (STORE_UNAVAILABLE)';
const BUSY =
  'More of these requests than the process takes at once, or too many from this client (RATE_LIMITED); retry after Retry-After seconds';

const createSpec = {
  tag,
  method: 'POST',
  description:
    'Creates a knowledge base. `embedding.provider`: `local` (default: a 512-dimension model that runs on this machine) or `openai` ' +
    '(any OpenAI-compatible API through `base_url`; probed once now). `chunking`: characters per chunk and overlap.',
  body: {
    schema: CreateKnowledgeBaseBody,
    description: 'The knowledge base',
    example: CREATE_KNOWLEDGE_BASE,
  },
  ok: {
    status: 201,
    description: 'Knowledge base created',
    data: ref('KnowledgeBase'),
    example: KNOWLEDGE_BASE,
  },
  errors: {
    400: 'Invalid body (INVALID_REQUEST), or the embedding provider refused or did not answer the probe (CONNECTION_FAILED)',
    409: 'A knowledge base with that name exists (DUPLICATE_KB)',
  },
} as const;

export const knowledgeBaseRoutes = (services: Services) => async (app: FastifyInstance) => {
  const { kbs, engine, store, rebuilds } = services;

  // With what its jobs' runs have embedded so far (jobs/estimates.ts).
  const present = async (record: KnowledgeBaseRecord) =>
    presentKnowledgeBase(
      record,
      await engine.counts(record),
      await knowledgeBaseUsage(store, record.accountId, record.name),
    );

  const create = async (request: FastifyRequest, reply: FastifyReply) => {
    const record = await kbs.create(accountOf(request), request.body);
    return ok(reply, 'Knowledge base created', await present(record), 201);
  };
  app.post(
    '/knowledge_bases/create',
    {
      schema: operation({
        ...createSpec,
        operationId: 'createKnowledgeBase',
        summary: 'Create a knowledge base',
      }),
    },
    create,
  );
  app.post(
    '/knowledge_bases',
    {
      schema: operation({
        ...createSpec,
        operationId: 'createKnowledgeBaseAlias',
        summary: 'Create a knowledge base (alias of POST /knowledge_bases/create)',
      }),
    },
    create,
  );

  app.get(
    '/knowledge_bases',
    {
      schema: operation({
        operationId: 'listKnowledgeBases',
        tag,
        method: 'GET',
        summary: 'List knowledge bases',
        description: "The account's knowledge bases with their document and chunk counts.",
        ok: {
          status: 200,
          description: 'The knowledge bases',
          data: dataOf.list('knowledge_bases', ref('KnowledgeBase'), false),
        },
      }),
    },
    async (request, reply) => {
      const list = await kbs.list(accountOf(request));
      return ok(reply, 'Knowledge bases', { knowledge_bases: await Promise.all(list.map(present)) });
    },
  );

  app.get(
    '/knowledge_bases/:kb',
    {
      schema: operation({
        operationId: 'getKnowledgeBase',
        tag,
        method: 'GET',
        summary: 'Get a knowledge base',
        description:
          'One knowledge base: its embedding model and dimensions (never the API key), chunking, document and chunk counts.',
        params: kb,
        ok: {
          status: 200,
          description: 'The knowledge base',
          data: ref('KnowledgeBase'),
          example: KNOWLEDGE_BASE,
        },
        errors: { 404: NO_KB },
      }),
    },
    async (request: KbParams, reply) => {
      return ok(reply, 'Knowledge base', await present(await kbs.get(accountOf(request), request.params.kb)));
    },
  );

  app.patch(
    '/knowledge_bases/:kb',
    {
      schema: operation({
        operationId: 'updateKnowledgeBase',
        tag,
        method: 'PATCH',
        summary: 'Change a knowledge base (model, chunking, description)',
        description:
          'A new `embedding` (the whole configuration, as on create; without `api_key`, an OpenAI-compatible provider at the same address keeps its key) ' +
          'or `chunking` starts a rebuild into a shadow index: queries keep answering from the current index and model, jobs keep syncing into both, ' +
          'and when the shadow holds every document it replaces the current index at once. Each document is embedded once with the new model; ' +
          'a chunking change alone embeds only chunks whose text changed. `rebuild` on the knowledge base shows the progress. `description` alone is written at once.',
        params: kb,
        body: { schema: PatchKnowledgeBaseBody, description: 'What to change', example: PATCH_KNOWLEDGE_BASE },
        ok: {
          status: 200,
          description: 'The knowledge base, with `rebuild` when one started',
          data: ref('KnowledgeBase'),
          example: KNOWLEDGE_BASE_REBUILDING,
        },
        errors: {
          400: 'Invalid change (INVALID_REQUEST), or the new embedding provider refused or did not answer the probe (CONNECTION_FAILED)',
          404: NO_KB,
          409: 'A rebuild is already running (CONFLICT): wait for it or cancel it',
          503: PROVIDER_DOWN,
        },
      }),
    },
    async (request: KbParams, reply) => {
      const record = await rebuilds.patch(accountOf(request), request.params.kb, request.body);
      return ok(reply, record.rebuild?.status === 'running' ? 'Rebuild started' : 'Knowledge base updated', await present(record));
    },
  );

  app.post(
    '/knowledge_bases/:kb/rebuild/cancel',
    {
      schema: operation({
        operationId: 'cancelKnowledgeBaseRebuild',
        tag,
        method: 'POST',
        summary: 'Cancel a rebuild',
        description:
          'Stops a running rebuild and drops its shadow index; the knowledge base keeps its model, chunking and index. Too late once it is swapping.',
        params: kb,
        ok: { status: 200, description: 'The knowledge base, its rebuild cancelled', data: ref('KnowledgeBase') },
        errors: { 404: NO_KB, 409: 'No rebuild is running, or it is already swapping (CONFLICT)' },
      }),
    },
    async (request: KbParams, reply) => {
      const record = await rebuilds.cancel(accountOf(request), request.params.kb);
      return ok(reply, 'Rebuild cancelled', await present(record));
    },
  );

  app.delete(
    '/knowledge_bases/:kb',
    {
      schema: operation({
        operationId: 'deleteKnowledgeBase',
        tag,
        method: 'DELETE',
        summary: 'Delete a knowledge base',
        description:
          'Deletes the knowledge base with its documents, vectors and keyword index; refused while a job targets it.',
        params: kb,
        ok: {
          status: 200,
          description: 'Knowledge base deleted',
          data: dataOf.object({ kb_name: dataOf.string() }),
        },
        errors: { 404: NO_KB, 409: 'A job targets the knowledge base (CONFLICT); delete the job first' },
      }),
    },
    async (request: KbParams, reply) => {
      await kbs.delete(accountOf(request), request.params.kb);
      return ok(reply, 'Knowledge base deleted', { kb_name: request.params.kb });
    },
  );

  app.post(
    '/knowledge_bases/:kb/documents',
    {
      bodyLimit: DOCUMENTS_BODY_LIMIT,
      schema: operation({
        operationId: 'upsertDocuments',
        tag,
        method: 'POST',
        summary: 'Upsert documents',
        description:
          'Adds or replaces 1-1000 documents by `id`. Unchanged content is not embedded again; a change of metadata alone is written without embedding. Any failure fails the whole request: nothing is written.',
        params: kb,
        body: { schema: UpsertDocumentsBody, description: 'The documents', example: UPSERT_DOCUMENTS },
        ok: {
          status: 200,
          description: 'What changed',
          data: dataOf.object({
            added: dataOf.count(),
            updated: dataOf.count(),
            unchanged: dataOf.count(),
            chunks_written: dataOf.count(),
          }),
        },
        errors: {
          400: 'Invalid documents, e.g. content over KBSYNC_MAX_DOCUMENT_CHARS (INVALID_REQUEST), or the embedding provider refused them (CONNECTION_FAILED)',
          404: NO_KB,
          429: BUSY,
          503: PROVIDER_DOWN,
        },
      }),
    },
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

  app.get(
    '/knowledge_bases/:kb/documents',
    {
      schema: operation({
        operationId: 'listDocuments',
        tag,
        method: 'GET',
        summary: 'List documents',
        description: "The knowledge base's documents in id order, a page at a time.",
        params: kb,
        query: PageQuery,
        ok: {
          status: 200,
          description: 'A page of documents',
          data: dataOf.list('documents', ref('Document'), true),
        },
        errors: { 400: 'Invalid query parameters (INVALID_REQUEST)', 404: NO_KB },
      }),
    },
    async (request: KbParams, reply) => {
      const q = parseQuery(PageQuery, request.query);
      return ok(
        reply,
        'Documents',
        await engine.listDocuments(accountOf(request), request.params.kb, {
          limit: q.limit ?? 50,
          cursor: q.cursor ?? null,
        }),
      );
    },
  );

  app.delete(
    '/knowledge_bases/:kb/documents/:id',
    {
      schema: operation({
        operationId: 'deleteDocument',
        tag,
        method: 'DELETE',
        summary: 'Delete a document',
        description:
          'Deletes one document with its chunks. A synced row that still exists at the source comes back when its row changes.',
        params: { ...kb, id: 'Document id' },
        ok: { status: 200, description: 'Document deleted', data: dataOf.object({ id: dataOf.string() }) },
        errors: { 404: 'No such knowledge base, or no such document in it (NOT_FOUND)' },
      }),
    },
    async (request: DocParams, reply) => {
      await engine.deleteDocument(accountOf(request), request.params.kb, request.params.id);
      return ok(reply, 'Document deleted', { id: request.params.id });
    },
  );

  app.post(
    '/knowledge_bases/:kb/query',
    {
      schema: operation({
        operationId: 'queryKnowledgeBase',
        tag,
        method: 'POST',
        summary: 'Search a knowledge base',
        description:
          'Finds the chunks nearest to `query`: `semantic` (default, by meaning), `keyword` (BM25) or `hybrid` (both, fused by rank). ' +
          '`relevance` is in [0, 1], higher is better; `filter` selects by metadata.',
        params: kb,
        body: { schema: QueryBody, description: 'The query', example: QUERY },
        ok: {
          status: 200,
          description: 'The results, best first',
          data: dataOf.object({
            mode: dataOf.string(undefined, { enum: ['semantic', 'keyword', 'hybrid'] }),
            results: { type: 'array', items: ref('QueryResult') },
          }),
          example: QUERY_RESULTS,
        },
        errors: {
          400: 'Invalid query or filter (INVALID_REQUEST), or the embedding provider refused the query (CONNECTION_FAILED)',
          404: NO_KB,
          429: BUSY,
          503: PROVIDER_DOWN,
        },
      }),
    },
    async (request: KbParams, reply) => {
      const { results, mode } = await engine.query(
        accountOf(request),
        request.params.kb,
        request.body,
        clientSignal(request),
      );
      return ok(reply, 'Query results', { mode, results });
    },
  );
};
