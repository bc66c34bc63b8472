/**
 * The knowledge-base registry: names, descriptions, embedding and chunking configuration.
 * Jobs validate their `kb_name` against it. API keys are stored encrypted and never returned.
 */
import { type Clock, systemClock } from '../core/clock.js';
import { type EmbeddingHostPolicy, embeddingHostRefusal } from '../core/embedding-hosts.js';
import { AppError, conflict, notFound, problemsToError } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { CreateKnowledgeBaseBody, type EmbeddingInput, PatchKnowledgeBaseBody } from '../core/schemas.js';
import { OPENAI_DEFAULTS } from '../embeddings/openai/provider.js';
import { formatTime } from '../core/time.js';
import { issuesToProblems } from '../core/validation.js';
import type { SecretBox } from '../secrets/crypto.js';
import type { ControlStore, KnowledgeBaseRecord, KnowledgeBaseSettings } from '../store/port.js';

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
    const embedding = input.embedding ?? { provider: 'local' as const };
    const chunking = input.chunking ?? DEFAULT_CHUNKING;
    this.check(embedding, chunking);
    if (await this.store.getKnowledgeBase(accountId, input.kb_name)) throw duplicate(input.kb_name);
    const apiKey = embedding.api_key ?? null;
    const id = newId('kb');
    const record: KnowledgeBaseRecord = {
      id,
      accountId,
      name: input.kb_name,
      description: input.description ?? null,
      embedding: embeddingRecord(embedding),
      secret: apiKey === null ? null : this.secrets.encrypt(apiKey),
      chunking: { chunk_size: chunking.chunk_size, chunk_overlap: chunking.chunk_overlap },
      createdAt: this.clock.now(),
      // The first collection is named after the knowledge base; a rebuild's swap replaces it.
      collection: id,
      rebuild: null,
    };
    await this.hooks.beforeCreate(record, apiKey);
    if ((await this.store.insertKnowledgeBase(record)) === 'duplicate') {
      // Another request took the name meanwhile: this attempt's collection (its own id) goes.
      await this.hooks.afterDelete(record).catch(() => undefined);
      throw duplicate(input.kb_name);
    }
    return record;
  }

  /**
   * What PATCH /knowledge_bases/{kb} asks for, validated as create validates: the configuration a
   * rebuild would build (`target`, null when neither the model nor the chunking changes) and the
   * settings written at once (description; a new key or price for the same model). `embedding`
   * replaces the whole embedding configuration; without `api_key`, an OpenAI-compatible provider
   * at the same address keeps the key it has.
   */
  async planPatch(accountId: string, name: string, body: unknown): Promise<PatchPlan> {
    const parsed = PatchKnowledgeBaseBody.safeParse(body, { reportInput: true });
    if (!parsed.success) {
      throw problemsToError(issuesToProblems(parsed.error.issues), 'Invalid knowledge base change');
    }
    const input = parsed.data;
    if (input.embedding === undefined && input.chunking === undefined && input.description === undefined) {
      throw new AppError('INVALID_REQUEST', 'Invalid knowledge base change', [
        'body must change at least one of embedding, chunking, description',
      ]);
    }
    const record = await this.get(accountId, name);
    const chunking = input.chunking ?? record.chunking;
    const embedding = input.embedding;
    if (embedding !== undefined || input.chunking !== undefined) {
      this.check(embedding ?? { provider: record.embedding.provider }, chunking, embedding === undefined);
    }
    const nextEmbedding = embedding === undefined ? record.embedding : embeddingRecord(embedding);
    const keepsKey =
      embedding !== undefined &&
      embedding.api_key === undefined &&
      embedding.provider === 'openai' &&
      record.embedding.provider === 'openai' &&
      (embedding.base_url ?? null) === record.embedding.base_url;
    const apiKey = embedding === undefined || keepsKey ? this.apiKey(record) : (embedding.api_key ?? null);
    const chunkingChanged =
      chunking.chunk_size !== record.chunking.chunk_size || chunking.chunk_overlap !== record.chunking.chunk_overlap;
    const settings: KnowledgeBaseSettings = {};
    if (input.description !== undefined) settings.description = input.description;
    let target: PatchPlan['target'] = null;
    let newKey: string | null | undefined;
    if (!sameModel(nextEmbedding, record.embedding) || chunkingChanged) {
      target = {
        embedding: nextEmbedding,
        secret: apiKey === null ? null : this.secrets.encrypt(apiKey),
        apiKey,
        chunking: { chunk_size: chunking.chunk_size, chunk_overlap: chunking.chunk_overlap },
      };
    } else if (embedding !== undefined) {
      // The same model: its vectors stay valid, so a new key or price is written at once.
      if (apiKey !== this.apiKey(record)) {
        settings.secret = apiKey === null ? null : this.secrets.encrypt(apiKey);
        newKey = apiKey;
      }
      const price = nextEmbedding.price_per_million_tokens ?? null;
      if (price !== (record.embedding.price_per_million_tokens ?? null)) settings.pricePerMillionTokens = price;
    }
    return { record, target, settings, ...(newKey !== undefined ? { newKey } : {}) };
  }

  /** Validation shared by create and PATCH; `inherited`: the embedding is the knowledge base's own. */
  private check(
    embedding: { provider: 'local' | 'openai'; model?: string; base_url?: string; api_key?: string; dimensions?: number },
    chunking: { chunk_size: number; chunk_overlap: number },
    inherited = false,
  ): void {
    const details: string[] = [];
    if (inherited) {
      // Nothing to check: it was checked when it was set.
    } else if (embedding.provider === 'local') {
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
    if (chunking.chunk_overlap * 2 >= chunking.chunk_size) {
      details.push('chunking.chunk_overlap must be less than half of chunking.chunk_size');
    }
    if (details.length > 0) {
      throw problemsToError(
        details.map((detail) => ({ code: 'INVALID_REQUEST' as const, detail })),
        'Invalid knowledge base configuration',
      );
    }
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
  apiKey(record: { secret: string | null }): string | null {
    return record.secret === null ? null : this.secrets.decrypt(record.secret);
  }

  /** The record as the store holds it now, by id (a run's or rebuild's fresh look). */
  byId(id: string): Promise<KnowledgeBaseRecord | null> {
    return this.store.getKnowledgeBaseById(id);
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

export interface PatchPlan {
  record: KnowledgeBaseRecord;
  /** The configuration a rebuild builds, or null when the model and chunking stay. */
  target: {
    embedding: KnowledgeBaseRecord['embedding'];
    /** Encrypted, as stored; `apiKey` is the same in clear, for the provider's probe only. */
    secret: string | null;
    apiKey: string | null;
    chunking: { chunk_size: number; chunk_overlap: number };
  } | null;
  /** What changes without a rebuild (with one, only the description is written when it starts). */
  settings: KnowledgeBaseSettings;
  /** A new API key for the same model, in clear for its probe only. */
  newKey?: string | null;
}

/** The stored embedding configuration (no key) of a create or PATCH body. */
function embeddingRecord(embedding: EmbeddingInput | { provider: 'local' }): KnowledgeBaseRecord['embedding'] {
  const e = embedding as EmbeddingInput;
  return {
    provider: e.provider,
    model: e.model ?? null,
    dimensions: e.dimensions ?? null,
    base_url: e.base_url ?? null,
    price_per_million_tokens: e.price_per_million_tokens ?? null,
  };
}

/** Same provider, model, dimensions and address: the same vectors for the same text. */
export function sameModel(a: KnowledgeBaseRecord['embedding'], b: KnowledgeBaseRecord['embedding']): boolean {
  return a.provider === b.provider && a.model === b.model && a.dimensions === b.dimensions && a.base_url === b.base_url;
}

const duplicate = (name: string) =>
  new AppError('DUPLICATE_KB', 'Knowledge base already exists', [`a knowledge base named '${name}' already exists`]);
