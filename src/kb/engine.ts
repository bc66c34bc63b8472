/**
 * The knowledge-base engine: chunking, embedding, storage and search behind the registry.
 * The sync run writes through `upsertDocuments` (its DocumentSink); the API uses the rest.
 */
import { AppError, problemsToError } from '../core/errors.js';
import { QueryBody, UpsertDocumentsBody } from '../core/schemas.js';
import { issuesToProblems } from '../core/validation.js';
import { EmbeddingProviderError } from '../embeddings/errors.js';
import type { EmbeddingConfig, EmbeddingProvider, EmbeddingUsage } from '../embeddings/port.js';
import { countInputTokens, meteredEmbed } from '../embeddings/usage.js';
import { ACTIVE_REBUILD_STATUSES, type KnowledgeBaseRecord } from '../store/port.js';
import {
  CollectionsChanged,
  type DocumentInput,
  type Metadata,
  type MetadataFilter,
  type MetadataUpdate,
  type SearchHit,
  type ShadowWrite,
  type StoredDocument,
  type VectorStore,
} from '../store/vector-port.js';
import type { DocumentCost, EmbeddingCosts } from '../sync/budget.js';
import type { DocumentSink, KnowledgeBaseKeys, SinkOptions, SyncedDocument, UpsertCounts } from '../sync/run-sync.js';
import { classifyDocuments, type DocumentChanges, withinLimit } from './changes.js';
import type { KnowledgeBaseHooks, KnowledgeBaseRegistry } from './registry.js';
import { fuse, keywordRelevance, semanticRelevance } from './relevance.js';

export type ProviderFactory = (config: EmbeddingConfig) => EmbeddingProvider;

export interface EngineOptions {
  /** Longest document content accepted through the API, in characters. */
  maxDocumentChars: number;
  /** The creation probe of a remote provider: one attempt, answered within this many ms. */
  probeTimeoutMs?: number;
}

export interface QueryResult {
  document_id: string;
  chunk_id: string;
  content: string;
  metadata: Metadata;
  relevance: number;
}

/**
 * Where a knowledge base's writes go: a collection with the embedding and chunking its vectors were
 * made with. Normally one; while a rebuild fills its shadow, two (kb/rebuild.ts).
 */
export interface CollectionTarget {
  collection: string;
  embedding: KnowledgeBaseRecord['embedding'];
  /** Encrypted API key, or null. */
  secret: string | null;
  chunking: { chunk_size: number; chunk_overlap: number };
}

export interface WriteView {
  kb: KnowledgeBaseRecord;
  current: CollectionTarget;
  shadow: CollectionTarget | null;
}

/** How often a write re-reads the collections after CollectionsChanged (a rebuild started, swapped or ended). */
const WRITE_ATTEMPTS = 6;

/** `isolate: false` (the documents API): any failure fails the whole call, nothing is written. */
type WriteOptions = SinkOptions & { isolate: boolean };

export class KnowledgeBaseEngine implements DocumentSink, EmbeddingCosts {
  /** Providers by collection: a rebuild's shadow embeds with its own model. */
  private readonly providers = new Map<string, EmbeddingProvider>();

  constructor(
    private readonly vectors: VectorStore,
    private readonly registry: KnowledgeBaseRegistry,
    private readonly makeProvider: ProviderFactory,
    private readonly options: EngineOptions,
  ) {}

  /** The registry's lifecycle hooks: probe the provider and create the collection; drop it on delete. */
  hooks(): KnowledgeBaseHooks {
    return {
      beforeCreate: async (record, apiKey) => {
        const provider = this.makeProvider(this.embeddingConfig(record.embedding, apiKey));
        let dimensions: number;
        try {
          // A remote provider is probed now, so a wrong URL, model or key is reported at creation.
          // One attempt with a short timeout: a provider that hangs fails the creation in seconds.
          dimensions = provider.probe
            ? (await provider.probe({ timeoutMs: this.options.probeTimeoutMs ?? 10_000 })).dimensions
            : await provider.dimensions();
        } catch (err) {
          await provider.close().catch(() => undefined);
          if (err instanceof AppError) throw err;
          const reason = err instanceof Error ? err.message : String(err);
          throw new AppError('CONNECTION_FAILED', 'The embedding provider did not answer', [`embedding provider: ${reason}`], { cause: err });
        }
        this.providers.set(`${record.collection}\u0000${record.secret ?? ''}`, provider);
        await this.vectors.createCollection(record.collection, dimensions);
      },
      afterDelete: async (record) => {
        // Also drops a rebuild's shadow (linked to it in the vector store).
        await this.vectors.dropCollection(record.collection);
        await this.forgetProvider(record.collection);
        if (record.rebuild !== null) await this.forgetProvider(record.rebuild.collection);
      },
    };
  }

  async counts(record: KnowledgeBaseRecord): Promise<{ documents: number; chunks: number }> {
    return this.vectors.counts(record.collection);
  }

  /**
   * Where writes to the knowledge base go now, read fresh (a run's snapshot may predate a rebuild).
   * While a rebuild is active its shadow is a second target once the vector store links it; after
   * the vector store's swap and before the control store's, the shadow is already the current one.
   */
  async view(kbId: string): Promise<WriteView> {
    const kb = await this.registry.byId(kbId);
    if (kb === null) throw new AppError('NOT_FOUND', 'knowledge base not found', [`knowledge base ${kbId} no longer exists`]);
    const own: CollectionTarget = { collection: kb.collection, embedding: kb.embedding, secret: kb.secret, chunking: kb.chunking };
    const rebuild = kb.rebuild;
    if (rebuild === null || !ACTIVE_REBUILD_STATUSES.includes(rebuild.status)) return { kb, current: own, shadow: null };
    const target: CollectionTarget = {
      collection: rebuild.collection,
      embedding: rebuild.embedding,
      secret: rebuild.secret,
      chunking: rebuild.chunking,
    };
    const state = await this.vectors.collectionState(kb.collection);
    if (state?.retired) return { kb, current: target, shadow: null };
    return { kb, current: own, shadow: state?.shadow === rebuild.collection ? target : null };
  }

  /**
   * After CollectionsChanged: a shadow still linked in the vector store that no active rebuild
   * names (a cancel interrupted between its two stores) is dropped, so writes can go on.
   */
  private async heal(view: WriteView): Promise<void> {
    const state = await this.vectors.collectionState(view.current.collection);
    const rebuild = view.kb.rebuild;
    const active = rebuild !== null && ACTIVE_REBUILD_STATUSES.includes(rebuild.status) ? rebuild.collection : null;
    if (state?.shadow && state.shadow !== active) {
      // Re-read first: the rebuild may have started just now and not be in `view` yet.
      const fresh = await this.registry.byId(view.kb.id);
      const still = fresh?.rebuild && ACTIVE_REBUILD_STATUSES.includes(fresh.rebuild.status) ? fresh.rebuild.collection : null;
      if (state.shadow !== still) await this.vectors.dropShadow(view.current.collection, state.shadow);
    }
  }

  /** Runs `fn` against fresh targets, again when the collections changed under it (bounded). */
  private async withView<T>(kbId: string, fn: (view: WriteView) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const view = await this.view(kbId);
      try {
        return await fn(view);
      } catch (err) {
        if (!(err instanceof CollectionsChanged) || attempt >= WRITE_ATTEMPTS) throw err;
        await this.heal(view).catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 20 * attempt));
      }
    }
  }

  /**
   * The delete-reconciliation side of a knowledge base for runs and checks, by knowledge-base id:
   * each call reaches the collection that is current at that moment (deletes reach a shadow too).
   */
  keyIndex(): KnowledgeBaseKeys {
    const at = async (kbId: string) => (await this.view(kbId)).current.collection;
    return {
      keyHashBuckets: async (kbId, digits, within) => this.vectors.keyHashBuckets(await at(kbId), digits, within),
      documentIdsInKeyBuckets: async (kbId, buckets) => this.vectors.documentIdsInKeyBuckets(await at(kbId), buckets),
      documentsWithoutKeyHash: async (kbId, table, page) => this.vectors.documentsWithoutKeyHash(await at(kbId), table, page),
      setKeyHashes: (kbId, hashes) => this.withView(kbId, (v) => this.vectors.setKeyHashes(v.current.collection, hashes)),
      deleteDocuments: (kbId, ids) => this.withView(kbId, (v) => this.vectors.deleteDocuments(v.current.collection, ids)),
    };
  }

  /**
   * The sync run's sink: one batch, atomic; unchanged content is not re-embedded. A document that
   * cannot be written on its own account (longer than KBSYNC_MAX_DOCUMENT_CHARS, or an input the
   * provider refuses) is reported in `failed` and the rest of the batch is written; a provider that
   * cannot be used at all (unreachable, rate-limited, wrong key or model) still throws.
   */
  async upsertDocuments(kb: KnowledgeBaseRecord, docs: SyncedDocument[], options: SinkOptions = {}): Promise<UpsertCounts> {
    return this.write(kb, docs, { isolate: true, ...options });
  }

  /**
   * `isolate: false` (the documents API): any failure fails the whole call, nothing is written.
   * Goes to the collections current when it writes (not those of `kb`, a run's snapshot): while a
   * rebuild is filling a shadow, the same documents are also written there, under the shadow's
   * model and chunking, in the same store transaction.
   */
  private async write(kb: KnowledgeBaseRecord, docs: SyncedDocument[], options: WriteOptions): Promise<UpsertCounts> {
    if (docs.length === 0) {
      options.onEmbedded?.();
      await options.beforeWrite;
      return { added: 0, updated: 0, unchanged: 0, chunksWritten: 0 };
    }
    // Vectors already obtained survive a redo after CollectionsChanged: no text is paid for twice.
    const memo: Memo = new Map();
    return this.withView(kb.id, (view) => this.writeOnce(view, docs, options, memo));
  }

  private async writeOnce(view: WriteView, docs: SyncedDocument[], options: WriteOptions, memo: Memo): Promise<UpsertCounts> {
    const counts: UpsertCounts = { added: 0, updated: 0, unchanged: 0, chunksWritten: 0 };
    // What to do with each document, decided as an estimate decides it (changes.ts).
    const changes = await this.changes(view.current, docs);
    const failed: Array<{ id: string; reason: string }> = [...changes.tooLong];
    counts.unchanged = changes.unchanged.length;
    const toEmbed = changes.toEmbed;
    const metadataOnly = metadataUpdates(changes);

    // Documents with nothing to embed (unchanged, metadata only, too long) are done at once.
    const settled = docs.length - toEmbed.length;
    const { onProgress } = options;
    onProgress?.(settled);

    // Tokens and requests as the providers report them (or counted when they do not).
    const usage: EmbeddingUsage = { tokens: 0, requests: 0 };
    const inputs: DocumentInput[] = [];
    if (toEmbed.length > 0) {
      const chunked = toEmbed.map(({ chunks }) => chunks);
      const embedded = await embedPerDocument(
        remembering(this.providerFor(view.current), view.current.collection, memo),
        chunked.map((chunks) => chunks.map((c) => c.text)),
        { ...options, ...(onProgress ? { onProgress: (done: number) => onProgress(settled + done) } : {}) },
        usage,
      );
      toEmbed.forEach(({ doc, hash, isNew }, i) => {
        const vectors = embedded[i]!;
        if (!Array.isArray(vectors)) {
          failed.push({ id: doc.id, reason: vectors.refused });
          return;
        }
        const chunks = chunked[i]!.map((c, k) => ({ index: c.index, text: c.text, embedding: vectors[k]! }));
        inputs.push({ id: doc.id, content: doc.content, contentHash: hash, metadata: doc.metadata, chunks, ...keyHashOf(doc) });
        counts.chunksWritten += chunks.length;
        if (isNew) counts.added++;
        else counts.updated++;
      });
    }
    // The shadow's part: only what the shadow lacks or holds otherwise, under its own chunking.
    const refused = new Set(failed.map((f) => f.id));
    let shadow: ShadowWrite | undefined;
    if (view.shadow !== null) {
      try {
        shadow = await this.shadowPart(view.shadow, docs.filter((d) => !refused.has(d.id)), options, usage, memo);
      } catch (err) {
        if (options.signal?.aborted) throw err;
        // The new model failing (rate limit, outage, a revoked key) must not stop the knowledge
        // base itself: this batch is written without its shadow part, and the rebuild's repair
        // copies whatever the shadow then lacks or holds in an older version before its swap.
        shadow = { collection: view.shadow.collection, docs: [], metadataOnly: [] };
      }
    }
    if (usage.requests > 0 || usage.tokens > 0) {
      counts.embeddingTokens = usage.tokens;
      counts.embeddingRequests = usage.requests;
    }
    // The batch before this one (a run's pipeline) is written and checkpointed first. The run's
    // next batch starts embedding now; a redo after CollectionsChanged (a rebuild started or
    // swapped while this batch waited) embeds its shadow part alongside it, the one time two
    // batches of a run reach a provider at once.
    options.onEmbedded?.();
    await options.beforeWrite;
    // One transaction for the whole batch: re-embedded documents and metadata-only updates (and the shadow's).
    if (inputs.length > 0 || metadataOnly.length > 0 || (shadow && (shadow.docs.length > 0 || shadow.metadataOnly.length > 0))) {
      counts.updated += await this.vectors.upsertDocuments(view.current.collection, inputs, metadataOnly, shadow);
    }
    if (failed.length > 0) counts.failed = failed;
    return counts;
  }

  /**
   * The same documents for a rebuild's shadow. A document the shadow's provider refuses is left
   * out here; the rebuild finds it missing before its swap and fails with the provider's reason.
   */
  private async shadowPart(
    shadow: CollectionTarget,
    docs: SyncedDocument[],
    options: { signal?: AbortSignal },
    usage: EmbeddingUsage,
    memo: Memo,
  ): Promise<ShadowWrite> {
    const changes = await this.changes(shadow, docs);
    const out: ShadowWrite = { collection: shadow.collection, docs: [], metadataOnly: metadataUpdates(changes) };
    if (changes.toEmbed.length === 0) return out;
    const chunked = changes.toEmbed.map(({ chunks }) => chunks);
    const embedded = await embedPerDocument(
      remembering(this.providerFor(shadow), shadow.collection, memo),
      chunked.map((chunks) => chunks.map((c) => c.text)),
      { isolate: true, ...(options.signal ? { signal: options.signal } : {}) },
      usage,
    );
    changes.toEmbed.forEach(({ doc, hash }, i) => {
      const vectors = embedded[i]!;
      if (!Array.isArray(vectors)) return;
      const chunks = chunked[i]!.map((c, k) => ({ index: c.index, text: c.text, embedding: vectors[k]! }));
      out.docs.push({ id: doc.id, content: doc.content, contentHash: hash, metadata: doc.metadata, chunks, ...keyHashOf(doc) });
    });
    return out;
  }

  /**
   * What writing `docs` into `kb` now would embed, per document id, without embedding anything:
   * the tokens and chunks of each new or changed document (counted as a run meters a provider
   * that reports no usage, embeddings/usage.ts); unchanged ones cost nothing.
   */
  async embeddingCosts(kb: KnowledgeBaseRecord, docs: SyncedDocument[]): Promise<Map<string, DocumentCost>> {
    const costs = new Map<string, DocumentCost>();
    if (docs.length === 0) return costs;
    // The collection current now (a run's snapshot may predate a rebuild's swap).
    const changes = await this.changes((await this.view(kb.id)).current, docs);
    const nothing = (outcome: DocumentCost['outcome']): DocumentCost => ({ outcome, tokens: 0, chunks: 0 });
    for (const doc of changes.unchanged) costs.set(doc.id, nothing('unchanged'));
    for (const { doc } of changes.metadataOnly) costs.set(doc.id, nothing('metadata'));
    for (const { id } of changes.tooLong) costs.set(id, nothing('too_long'));
    for (const { doc, chunks } of changes.toEmbed) {
      const tokens = await countInputTokens(chunks.map((c) => c.text));
      costs.set(doc.id, { outcome: 'embed', tokens, chunks: chunks.length });
    }
    return costs;
  }

  /** What writing `docs` would do, from the hashes the collection holds (changes.ts). */
  private async changes(
    at: { collection: string; chunking: KnowledgeBaseRecord['chunking'] },
    docs: SyncedDocument[],
  ): Promise<DocumentChanges<SyncedDocument>> {
    const limit = this.options.maxDocumentChars;
    const writable = withinLimit(docs, limit);
    const stored =
      writable.length === 0 ? new Map<string, string>() : await this.vectors.getContentHashes(at.collection, writable.map((d) => d.id));
    return classifyDocuments(docs, stored, { maxChars: limit, chunking: at.chunking });
  }

  /** POST /knowledge_bases/{kb}/documents */
  async upsertFromApi(accountId: string, kbName: string, body: unknown): Promise<UpsertCounts> {
    const kb = await this.registry.get(accountId, kbName);
    const parsed = UpsertDocumentsBody.safeParse(body, { reportInput: true });
    if (!parsed.success) throw problemsToError(issuesToProblems(parsed.error.issues), 'Invalid documents');
    const details: string[] = [];
    const seen = new Set<string>();
    parsed.data.documents.forEach((d, i) => {
      if (seen.has(d.id)) details.push(`documents[${i}].id '${d.id}' appears twice in this request`);
      seen.add(d.id);
      if (d.content.length > this.options.maxDocumentChars) {
        details.push(
          `documents[${i}].content has ${d.content.length} characters; the limit is ${this.options.maxDocumentChars} (KBSYNC_MAX_DOCUMENT_CHARS)`,
        );
      }
    });
    if (details.length > 0) throw new AppError('INVALID_REQUEST', 'Invalid documents', details);
    const docs = parsed.data.documents.map((d) => ({ id: d.id, content: d.content, metadata: (d.metadata ?? {}) as Metadata }));
    try {
      return await this.write(kb, docs, { isolate: false });
    } catch (err) {
      throw providerFailure(err);
    }
  }

  async listDocuments(accountId: string, kbName: string, page: { limit: number; cursor: string | null }) {
    const kb = await this.registry.get(accountId, kbName);
    const result = await this.vectors.listDocuments(kb.collection, { limit: page.limit, after: page.cursor });
    return { documents: result.documents.map(presentDocument), next_cursor: result.next };
  }

  async deleteDocument(accountId: string, kbName: string, id: string): Promise<void> {
    const kb = await this.registry.get(accountId, kbName);
    if (!(await this.withView(kb.id, (view) => this.vectors.deleteDocument(view.current.collection, id)))) {
      throw new AppError('NOT_FOUND', 'document not found', [`document '${id}' does not exist in knowledge base '${kbName}'`]);
    }
  }

  /**
   * POST /knowledge_bases/{kb}/query: semantic (default), keyword or hybrid (reciprocal-rank fusion,
   * ties to the keyword list; see relevance.ts and bench/search-quality.ts for the measurements).
   */
  async query(accountId: string, kbName: string, body: unknown, signal?: AbortSignal): Promise<{ results: QueryResult[]; mode: string }> {
    const kb = await this.registry.get(accountId, kbName);
    const parsed = QueryBody.safeParse(body, { reportInput: true });
    if (!parsed.success) throw problemsToError(issuesToProblems(parsed.error.issues), 'Invalid query');
    const { query, top_k: topK = 10, min_relevance: minRelevance = 0, mode = 'semantic' } = parsed.data;
    const filter = parsed.data.filter as MetadataFilter | undefined;
    // Fusion needs more than top_k candidates from each side to rank well.
    const depth = mode === 'hybrid' ? Math.min(Math.max(topK * 4, 40), 400) : topK;
    const semantic = async () => {
      let vector: Float32Array;
      try {
        // The query lane: a search's embedding goes ahead of sync batches queued on the same model.
        [vector] = (await this.providerFor(kb).embed([query], { priority: 'query', ...(signal ? { signal } : {}) })) as [Float32Array];
      } catch (err) {
        throw signal?.aborted ? signal.reason : providerFailure(err);
      }
      // The client may have gone while the query was embedded: no search is started for nobody.
      signal?.throwIfAborted();
      return this.vectors.searchVector(kb.collection, vector, { topK: depth, ...(filter ? { filter } : {}) });
    };
    const keyword = () => {
      signal?.throwIfAborted();
      return this.vectors.searchKeyword(kb.collection, query, { topK: depth, ...(filter ? { filter } : {}) });
    };

    let scored: Array<{ hit: SearchHit; relevance: number }>;
    if (mode === 'semantic') scored = (await semantic()).map((hit) => ({ hit, relevance: semanticRelevance(hit.score) }));
    else if (mode === 'keyword') scored = (await keyword()).map((hit) => ({ hit, relevance: keywordRelevance(hit.score) }));
    else scored = fuse(await semantic(), await keyword());

    // A stable sort: hybrid hits of equal relevance keep fuse's tie order (better keyword rank first).
    const results = scored
      .filter((s) => s.relevance >= minRelevance)
      .sort((a, b) => b.relevance - a.relevance)
      .slice(0, topK)
      .map(({ hit, relevance }) => ({
        document_id: hit.documentId,
        chunk_id: hit.chunkId,
        content: hit.content,
        metadata: hit.metadata,
        relevance: Math.round(relevance * 1e6) / 1e6,
      }));
    return { results, mode };
  }

  async close(): Promise<void> {
    const all = [...new Set(this.providers.values())];
    this.providers.clear();
    await Promise.all(all.map((p) => p.close().catch(() => undefined)));
  }

  /**
   * The provider of a collection's model (a knowledge base's own, or a rebuild's shadow's), made
   * once per collection: its vectors must all come from the same model.
   */
  providerFor(target: { collection: string; embedding: KnowledgeBaseRecord['embedding']; secret: string | null }): EmbeddingProvider {
    // Keyed by the encrypted key too: a key changed by PATCH (on any process of a fleet) takes effect at once.
    const key = `${target.collection}\u0000${target.secret ?? ''}`;
    let provider = this.providers.get(key);
    if (!provider) {
      provider = this.makeProvider(this.embeddingConfig(target.embedding, this.registry.apiKey(target)));
      this.providers.set(key, provider);
    }
    return provider;
  }

  /** The dimensions a configuration's provider answers with (probed once for a remote one), as on create. */
  async probeDimensions(embedding: KnowledgeBaseRecord['embedding'], apiKey: string | null): Promise<number> {
    const provider = this.makeProvider(this.embeddingConfig(embedding, apiKey));
    try {
      return provider.probe
        ? (await provider.probe({ timeoutMs: this.options.probeTimeoutMs ?? 10_000 })).dimensions
        : await provider.dimensions();
    } catch (err) {
      if (err instanceof AppError) throw err;
      const reason = err instanceof Error ? err.message : String(err);
      throw new AppError('CONNECTION_FAILED', 'The embedding provider did not answer', [`embedding provider: ${reason}`], { cause: err });
    } finally {
      await provider.close().catch(() => undefined);
    }
  }

  /** Embeds texts with a collection's provider, metered (a rebuild's copy). */
  async embedFor(target: CollectionTarget, texts: string[], usage: EmbeddingUsage, signal?: AbortSignal): Promise<Float32Array[]> {
    if (texts.length === 0) return [];
    return meteredEmbed(this.providerFor(target), texts, signal ? { signal } : undefined, usage);
  }

  /** A collection is gone (dropped after a swap, a cancel or a delete): its provider goes too. */
  async forgetProvider(collection: string): Promise<void> {
    for (const [key, provider] of this.providers) {
      if (key.split('\u0000')[0] !== collection) continue;
      this.providers.delete(key);
      await provider.close().catch(() => undefined);
    }
  }

  private embeddingConfig(e: KnowledgeBaseRecord['embedding'], apiKey: string | null): EmbeddingConfig {
    return {
      provider: e.provider,
      ...(e.model !== null ? { model: e.model } : {}),
      ...(e.dimensions !== null ? { dimensions: e.dimensions } : {}),
      ...(e.base_url !== null ? { base_url: e.base_url } : {}),
      ...(apiKey !== null ? { api_key: apiKey } : {}),
    };
  }
}

/** Vectors by collection and text, kept across the attempts of one write. */
type Memo = Map<string, Float32Array>;

/**
 * The provider, asked only for texts `memo` does not hold for this collection (one collection, one
 * model: the same text has the same vector); what it answers is kept in `memo`.
 */
function remembering(provider: EmbeddingProvider, collection: string, memo: Memo): EmbeddingProvider {
  const key = (text: string) => `${collection}\u0000${text}`;
  return {
    id: provider.id,
    dimensions: () => provider.dimensions(),
    close: async () => undefined,
    async embed(texts, options) {
      const missing = texts.filter((t) => !memo.has(key(t)));
      if (missing.length === 0) {
        // Nothing sent: nothing to meter (meteredEmbed would otherwise count the texts).
        options?.onUsage?.({ tokens: 0, requests: 0 });
      } else {
        const vectors = await provider.embed(missing, options);
        missing.forEach((t, i) => {
          memo.set(key(t), vectors[i]!);
        });
      }
      return texts.map((t) => memo.get(key(t))!);
    },
  };
}

/** A change's metadata-only documents as the store takes them. */
function metadataUpdates(changes: DocumentChanges<SyncedDocument>): MetadataUpdate[] {
  return changes.metadataOnly.map(({ doc, hash }) => ({ id: doc.id, contentHash: hash, metadata: doc.metadata, ...keyHashOf(doc) }));
}

function presentDocument(d: StoredDocument) {
  return { id: d.id, content: d.content, metadata: d.metadata, chunk_count: d.chunkCount, updated_at: d.updatedAt };
}

/** A tiny input any working provider embeds: tells "this input is refused" from "everything is". */
const PROBE_TEXT = 'kbsync probe';

/**
 * The provider refused the request for what it contains (400, 413, 422…): final (not retryable),
 * and not a key, permission or model problem (401, 403, 404), which no row can be blamed for.
 */
function isRefusal(err: unknown): err is EmbeddingProviderError {
  return (
    err instanceof EmbeddingProviderError &&
    !err.retryable &&
    err.status !== undefined &&
    err.status >= 400 &&
    err.status < 500 &&
    err.status !== 401 &&
    err.status !== 403 &&
    err.status !== 404
  );
}

/**
 * The vectors of each document's texts, in one embed call when the provider takes them all. With
 * `isolate`, a refusal does not fail the batch: if the provider still embeds a probe text, the
 * batch is bisected until each refused document stands alone (about 2·log2(n) calls per refused
 * document), and those come back as `{ refused: reason }`. If the provider refuses the probe too,
 * its configuration (model, dimensions…) is at fault, not the rows, and the refusal is thrown.
 */
async function embedPerDocument(
  provider: EmbeddingProvider,
  texts: string[][],
  options: { isolate: boolean; signal?: AbortSignal; onProgress?: (documentsDone: number) => void },
  usage: EmbeddingUsage,
): Promise<Array<Float32Array[] | { refused: string }>> {
  const embedOptions = options.signal ? { signal: options.signal } : undefined;
  const out: Array<Float32Array[] | { refused: string }> = new Array(texts.length);
  const embedInto = async (docs: number[], onProgress?: (textsDone: number) => void): Promise<void> => {
    const flat = docs.flatMap((i) => texts[i]!);
    const vectors =
      flat.length === 0 ? [] : await meteredEmbed(provider, flat, onProgress ? { ...embedOptions, onProgress } : embedOptions, usage);
    let next = 0;
    for (const i of docs) out[i] = texts[i]!.map(() => vectors[next++]!);
  };
  const all = texts.map((_, i) => i);
  // Progress in documents, from the chunks embedded (a bisection after a refusal reports none).
  const chunks = texts.reduce((sum, t) => sum + t.length, 0);
  const { onProgress } = options;
  let refusal: EmbeddingProviderError;
  try {
    await embedInto(all, onProgress && chunks > 0 ? (done) => onProgress(Math.floor((texts.length * done) / chunks)) : undefined);
    return out;
  } catch (err) {
    if (!options.isolate || !isRefusal(err)) throw err;
    refusal = err;
  }
  try {
    await meteredEmbed(provider, [PROBE_TEXT], embedOptions, usage);
  } catch (err) {
    throw isRefusal(err) ? refusal : err;
  }
  const bisect = async (docs: number[], err: EmbeddingProviderError): Promise<void> => {
    if (docs.length === 1) {
      out[docs[0]!] = { refused: `the embedding provider refused this document: ${err.message}` };
      return;
    }
    const mid = docs.length >> 1;
    for (const half of [docs.slice(0, mid), docs.slice(mid)]) {
      try {
        await embedInto(half);
      } catch (e) {
        if (!isRefusal(e)) throw e;
        await bisect(half, e);
      }
    }
  };
  await bisect(all, refusal);
  return out;
}

/** A provider that refuses or cannot be reached is the caller's configuration problem, not a 500. */
function providerFailure(err: unknown): unknown {
  if (err instanceof EmbeddingProviderError) {
    return new AppError(
      'CONNECTION_FAILED',
      'The embedding provider failed',
      [err.message],
      { cause: err, status: err.retryable ? 503 : 400 },
    );
  }
  return err;
}

/** A synced row's key hash travels with its document (delete reconciliation finds it by that). */
function keyHashOf(doc: { keyHash?: string }): { keyHash?: string } {
  return doc.keyHash === undefined ? {} : { keyHash: doc.keyHash };
}
