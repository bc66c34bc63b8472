/**
 * The knowledge-base registry: names, descriptions, embedding and chunking configuration.
 * Jobs validate their `kb_name` against it. API keys are stored encrypted and never returned.
 */
import { type Clock, systemClock } from '../core/clock.js';
import { type EmbeddingHostPolicy, embeddingHostRefusal } from '../core/embedding-hosts.js';
import { AppError, conflict, notFound, problemsToError } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { CreateKnowledgeBaseBody } from '../core/schemas.js';
import { OPENAI_DEFAULTS } from '../embeddings/openai/provider.js';
import { formatTime } from '../core/time.js';
import { issuesToProblems } from '../core/validation.js';
import type { SecretBox } from '../secrets/crypto.js';
import type { ControlStore, KnowledgeBaseRecord } from '../store/port.js';

export const DEFAULT_CHUNKING = { chunk_size: 1000, chunk_overlap: 100 } as const;

/** Lifecycle hooks the engine attaches (vector collection, provider probe); no-ops without it. */
export interface KnowledgeBaseHooks {
  /** Called before the record is saved; throws (e.g. CONNECTION_FAILED) to refuse it. */
  beforeCreate(record: KnowledgeBaseRecord, apiKey: string | null): Promise<void>;
  afterDelete(record: KnowledgeBaseRecord): Promise<void>;
}

const noHooks: KnowledgeBaseHooks = { beforeCreate: async () => undefined, afterDelete: async () => undefined };

export class KnowledgeBaseRegistry {
  constructor(
    private readonly store: ControlStore,
    private readonly secrets: SecretBox,
    private readonly clock: Clock = systemClock,
    private hooks: KnowledgeBaseHooks = noHooks,
    private readonly embeddingHosts: EmbeddingHostPolicy = { kind: 'any' },
  ) {}

  setHooks(hooks: KnowledgeBaseHooks): void {
    this.hooks = hooks;
  }

  async create(accountId: string, body: unknown): Promise<KnowledgeBaseRecord> {
    const parsed = CreateKnowledgeBaseBody.safeParse(body, { reportInput: true });
    if (!parsed.success) {
      throw problemsToError(issuesToProblems(parsed.error.issues), 'Invalid knowledge base configuration');
    }
    const input = parsed.data;
    const details: string[] = [];
    const embedding = input.embedding ?? { provider: 'local' as const };
    if (embedding.provider === 'local') {
      for (const k of ['model', 'base_url', 'api_key', 'dimensions'] as const) {
        if (embedding[k] !== undefined) details.push(`embedding.${k} does not apply to provider local`);
      }
    } else if (embedding.base_url !== undefined && !/^https?:\/\/[^\s]+$/i.test(embedding.base_url)) {
      details.push('embedding.base_url must be an http:// or https:// URL');
    } else {
      // The effective address: OpenAI's own when base_url is omitted (an allow-list may leave it out).
      const refusal = embeddingHostRefusal(embedding.base_url ?? OPENAI_DEFAULTS.baseUrl, this.embeddingHosts);
      if (refusal !== null) details.push(refusal);
    }
    const chunking = input.chunking ?? DEFAULT_CHUNKING;
    if (chunking.chunk_overlap * 2 >= chunking.chunk_size) {
      details.push('chunking.chunk_overlap must be less than half of chunking.chunk_size');
    }
    if (details.length > 0) {
      throw problemsToError(
        details.map((detail) => ({ code: 'INVALID_REQUEST' as const, detail })),
        'Invalid knowledge base configuration',
      );
    }
    if (await this.store.getKnowledgeBase(accountId, input.kb_name)) throw duplicate(input.kb_name);
    const apiKey = embedding.api_key ?? null;
    const record: KnowledgeBaseRecord = {
      id: newId('kb'),
      accountId,
      name: input.kb_name,
      description: input.description ?? null,
      embedding: {
        provider: embedding.provider,
        model: embedding.model ?? null,
        dimensions: embedding.dimensions ?? null,
        base_url: embedding.base_url ?? null,
        price_per_million_tokens: embedding.price_per_million_tokens ?? null,
      },
      secret: apiKey === null ? null : this.secrets.encrypt(apiKey),
      chunking: { chunk_size: chunking.chunk_size, chunk_overlap: chunking.chunk_overlap },
      createdAt: this.clock.now(),
    };
    await this.hooks.beforeCreate(record, apiKey);
    if ((await this.store.insertKnowledgeBase(record)) === 'duplicate') {
      // Another request took the name meanwhile: this attempt's collection (its own id) goes.
      await this.hooks.afterDelete(record).catch(() => undefined);
      throw duplicate(input.kb_name);
    }
    return record;
  }

  async get(accountId: string, name: string): Promise<KnowledgeBaseRecord> {
    const record = await this.store.getKnowledgeBase(accountId, name);
    if (!record) throw notFound('knowledge base', name);
    return record;
  }

  list(accountId: string): Promise<KnowledgeBaseRecord[]> {
    return this.store.listKnowledgeBases(accountId);
  }

  async delete(accountId: string, name: string): Promise<void> {
    const record = await this.get(accountId, name);
    // The store refuses the delete while a job targets it, in the same statement, so a job
    // created meanwhile can never be left pointing at a deleted knowledge base.
    if (!(await this.store.deleteKnowledgeBase(accountId, name))) {
      const users = await this.store.countJobsUsingKnowledgeBase(accountId, name);
      if (users === 0) throw notFound('knowledge base', name);
      throw conflict('Knowledge base is in use', [`knowledge base '${name}' is the target of ${users} job(s); delete them first`]);
    }
    await this.hooks.afterDelete(record);
  }

  /** The decrypted API key, for the embedding provider only. */
  apiKey(record: KnowledgeBaseRecord): string | null {
    return record.secret === null ? null : this.secrets.decrypt(record.secret);
  }

  static present(record: KnowledgeBaseRecord): Record<string, unknown> {
    return {
      kb_name: record.name,
      description: record.description,
      embedding: { ...record.embedding, api_key: record.secret === null ? null : '****' },
      chunking: record.chunking,
      created_at: formatTime(record.createdAt),
    };
  }
}

const duplicate = (name: string) =>
  new AppError('DUPLICATE_KB', 'Knowledge base already exists', [`a knowledge base named '${name}' already exists`]);
