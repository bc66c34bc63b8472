/** `kbsync kb …`: list, get, create, query (and delete). */
import { type Command, Option } from 'commander';
import type { KnowledgeBase, QueryResult } from '../api-types.js';
import { act } from '../context.js';
import { count, keyValues, table, truncate } from '../format.js';
import { seg } from '../http.js';
import { jsonObject, number01, positiveInt } from './options.js';

interface CreateOptions {
  description?: string;
  provider?: 'local' | 'openai';
  model?: string;
  dimensions?: number;
  baseUrl?: string;
  embeddingApiKey?: string;
  chunkSize?: number;
  chunkOverlap?: number;
}

export function kbCommand(program: Command): void {
  const kb = program.command('kb').description('knowledge bases: list, create, query');

  kb.command('list')
    .description('list knowledge bases with their document and chunk counts')
    .action(
      act(async (ctx) => {
        const data = await ctx.client.get<{ knowledge_bases: KnowledgeBase[] }>('/knowledge_bases');
        ctx.emit(data, () =>
          data.knowledge_bases.length === 0
            ? 'no knowledge bases (create one: kbsync kb create NAME)'
            : table(
                ['NAME', 'EMBEDDING', 'DOCUMENTS', 'CHUNKS', 'DESCRIPTION'],
                data.knowledge_bases.map((k) => [
                  k.kb_name,
                  embedding(k),
                  count(k.document_count),
                  count(k.chunk_count),
                  truncate(k.description ?? '', 60),
                ]),
              ),
        );
      }),
    );

  kb.command('get')
    .description('one knowledge base: embedding, chunking, counts')
    .argument('<kb>', 'knowledge base name')
    .action(
      act(async (ctx, [name]) => {
        const k = await ctx.client.get<KnowledgeBase>(`/knowledge_bases/${seg(name!)}`);
        ctx.emit(k, () =>
          keyValues([
            ['knowledge base', k.kb_name],
            ['description', k.description],
            ['embedding', embedding(k)],
            [
              'chunking',
              k.chunking ? `${k.chunking.chunk_size} characters, overlap ${k.chunking.chunk_overlap}` : null,
            ],
            ['documents', count(k.document_count)],
            ['chunks', count(k.chunk_count)],
            ['created', k.created_at],
          ]),
        );
      }),
    );

  kb.command('create')
    .description(
      'create a knowledge base (the local model by default; --provider openai for any OpenAI-compatible API)',
    )
    .argument('<kb>', 'knowledge base name')
    .option('--description <text>', 'what it holds')
    .addOption(new Option('--provider <provider>', 'embedding provider').choices(['local', 'openai']))
    .option('--model <model>', 'embedding model (openai provider)')
    .option('--dimensions <n>', 'vector dimensions (models that support shortening)', positiveInt)
    .option('--base-url <url>', 'OpenAI-compatible endpoint (Azure, Ollama, vLLM, LM Studio)')
    .addOption(
      new Option('--embedding-api-key <key>', 'API key of the embedding provider').env(
        'KBSYNC_EMBEDDING_API_KEY',
      ),
    )
    .option('--chunk-size <n>', 'characters per chunk', positiveInt)
    .option('--chunk-overlap <n>', 'characters shared by neighbouring chunks', (v) =>
      v === '0' ? 0 : positiveInt(v),
    )
    .action(
      act<CreateOptions>(async (ctx, [name], o) => {
        const body: Record<string, unknown> = { kb_name: name };
        if (o.description !== undefined) body.description = o.description;
        const emb = {
          ...(o.model !== undefined ? { model: o.model } : {}),
          ...(o.dimensions !== undefined ? { dimensions: o.dimensions } : {}),
          ...(o.baseUrl !== undefined ? { base_url: o.baseUrl } : {}),
          ...(o.embeddingApiKey !== undefined ? { api_key: o.embeddingApiKey } : {}),
        };
        if (o.provider !== undefined || Object.keys(emb).length > 0)
          body.embedding = { provider: o.provider ?? 'openai', ...emb };
        if (o.chunkSize !== undefined || o.chunkOverlap !== undefined) {
          // Both are required by the API; a missing one is the server's to report, in its words.
          body.chunking = { chunk_size: o.chunkSize, chunk_overlap: o.chunkOverlap };
        }
        const k = await ctx.client.post<KnowledgeBase>('/knowledge_bases/create', body);
        ctx.emit(k, () => `knowledge base ${k.kb_name} created (${embedding(k)})`);
      }),
    );

  kb.command('query')
    .description('search a knowledge base by meaning (semantic), by words (keyword) or both (hybrid)')
    .argument('<kb>', 'knowledge base name')
    .argument('<text>', 'what to look for')
    .addOption(new Option('-m, --mode <mode>', 'search mode').choices(['semantic', 'keyword', 'hybrid']))
    .option('-k, --top-k <k>', 'how many results (1-100)', positiveInt)
    .option('--min-relevance <r>', 'drop results below this relevance (0-1)', number01)
    .option('--filter <json>', 'metadata filter, e.g. \'{"price": {"lte": 150}}\'', jsonObject)
    .action(
      act<{ mode?: string; topK?: number; minRelevance?: number; filter?: Record<string, unknown> }>(
        async (ctx, [name, text], o) => {
          const body = {
            query: text,
            ...(o.topK !== undefined ? { top_k: o.topK } : {}),
            ...(o.mode !== undefined ? { mode: o.mode } : {}),
            ...(o.minRelevance !== undefined ? { min_relevance: o.minRelevance } : {}),
            ...(o.filter !== undefined ? { filter: o.filter } : {}),
          };
          const data = await ctx.client.post<{ mode: string; results: QueryResult[] }>(
            `/knowledge_bases/${seg(name!)}/query`,
            body,
          );
          ctx.emit(data, () =>
            data.results.length === 0
              ? `no results (${data.mode})`
              : table(
                  ['#', 'RELEVANCE', 'DOCUMENT', 'CONTENT'],
                  data.results.map((r, i) => [
                    i + 1,
                    r.relevance.toFixed(3),
                    r.document_id,
                    truncate(r.content, 100),
                  ]),
                ),
          );
        },
      ),
    );

  kb.command('delete')
    .description('delete a knowledge base and its documents (refused while jobs write into it)')
    .argument('<kb>', 'knowledge base name')
    .action(
      act(async (ctx, [name]) => {
        const data = await ctx.client.delete<{ kb_name: string }>(`/knowledge_bases/${seg(name!)}`);
        ctx.emit(data, () => `knowledge base ${data.kb_name} deleted`);
      }),
    );
}

function embedding(k: KnowledgeBase): string {
  const e = k.embedding;
  return [e.provider, e.model, e.dimensions ? `${e.dimensions}-d` : null].filter(Boolean).join(' ');
}
