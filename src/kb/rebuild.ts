/**
 * Model and chunking changes without downtime (API.md "Model and chunking changes").
 *
 * PATCH /knowledge_bases/{kb} with a new `embedding` or `chunking` records a rebuild (control
 * store) and links a shadow collection to the current one (vector store). From then on:
 * - queries keep reading the current collection with the current model;
 * - every write (a job's batch, the documents API, a delete) reaches both collections in one store
 *   transaction, the shadow's part embedded with the new model (engine.ts `writeOnce`); a write
 *   that did not know of the shadow is refused by the store (CollectionsChanged) and redone;
 * - a worker (one per rebuild across a fleet, by lease) copies every document the shadow lacks,
 *   in id order, re-chunked and embedded once with the new model. When only the chunking changed,
 *   a chunk whose text an old chunk had keeps that chunk's vector (nothing re-embedded for it).
 *   The copy is conditional (copyToShadow): a document that a write changed or deleted after the
 *   worker read it is left to that write;
 * - when the pass is done and the collections agree, the vector store swaps them in one
 *   transaction that checks they hold the same documents with the same hashes; then the knowledge
 *   base takes the new configuration (control store). The old collection keeps answering queries
 *   already started, and is dropped a few seconds later.
 * A cancel drops the shadow. A process that dies leaves its lease to expire; another process
 * resumes from the saved cursor (copies are idempotent), or finishes a swap it had begun.
 */
import type { Logger } from 'pino';
import { splitText } from '../core/chunking.js';
import type { Clock } from '../core/clock.js';
import { conflict, notFound } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { EmbeddingProviderError } from '../embeddings/errors.js';
import type { EmbeddingUsage } from '../embeddings/port.js';
import type { ControlStore, KnowledgeBaseRecord, RebuildRecord } from '../store/port.js';
import { CollectionsChanged, type DocumentInput, type VectorStore } from '../store/vector-port.js';
import type { CollectionTarget, KnowledgeBaseEngine } from './engine.js';
import { type KnowledgeBaseRegistry, sameModel } from './registry.js';

export interface RebuildOptions {
  /** How often an idle process looks for a rebuild to take (a PATCH on this process wakes it at once). */
  pollMs: number;
  /** How long a claimed rebuild stays this process's without a renewal. */
  leaseMs: number;
  /** Documents copied per step (one embedding call, one transaction, one progress save). */
  pageSize: number;
  /** How long the replaced collection stays after a swap, for queries that already read it. */
  dropGraceMs: number;
  /** Attempts at a step whose provider call failed for now (rate limit, outage), with backoff. */
  retryAttempts: number;
  retryBaseMs: number;
}

export const DEFAULT_REBUILD_OPTIONS: RebuildOptions = {
  pollMs: 2_000,
  leaseMs: 30_000,
  pageSize: 64,
  dropGraceMs: 60_000,
  retryAttempts: 5,
  retryBaseMs: 1_000,
};

/** The rebuild was cancelled, or this process lost its lease: stop without touching anything. */
class Stopped extends Error {}

export class Rebuilds {
  readonly #options: RebuildOptions;
  #timer: NodeJS.Timeout | null = null;
  #working: Promise<void> | null = null;
  #stopping = false;
  /** Aborts the step in flight of a rebuild this process works on (cancel, stop). */
  readonly #aborts = new Map<string, AbortController>();
  readonly #drops = new Set<NodeJS.Timeout>();

  constructor(
    private readonly store: ControlStore,
    private readonly vectors: VectorStore,
    private readonly registry: KnowledgeBaseRegistry,
    private readonly engine: KnowledgeBaseEngine,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly owner: string,
    options: Partial<RebuildOptions> = {},
  ) {
    this.#options = { ...DEFAULT_REBUILD_OPTIONS, ...options };
  }

  /** PATCH /knowledge_bases/{kb}: starts a rebuild when the model or chunking changes. */
  async patch(accountId: string, name: string, body: unknown): Promise<KnowledgeBaseRecord> {
    const plan = await this.registry.planPatch(accountId, name, body);
    const { record, target } = plan;
    if (target === null) {
      // A new key is tried before it is saved, as on create.
      if (plan.newKey !== undefined) await this.engine.probeDimensions(record.embedding, plan.newKey);
      if (Object.keys(plan.settings).length > 0 && !(await this.store.updateKnowledgeBaseSettings(accountId, name, plan.settings))) {
        throw notFound('knowledge base', name);
      }
      return this.registry.get(accountId, name);
    }
    // The new provider answers before anything is recorded: a wrong URL, model or key is a 400 now.
    const dimensions = await this.engine.probeDimensions(target.embedding, target.apiKey);
    const now = this.clock.now();
    const rebuild: RebuildRecord = {
      status: 'running',
      collection: newId('kbc', now),
      embedding: target.embedding,
      secret: target.secret,
      chunking: target.chunking,
      documentsDone: 0,
      documentsTotal: (await this.vectors.counts(record.collection)).documents,
      cursor: null,
      startedAt: now,
      finishedAt: null,
      error: null,
      owner: null,
      leaseExpiresAt: null,
    };
    const started = await this.store.startRebuild(accountId, name, rebuild, plan.settings.description);
    if (started === 'not_found') throw notFound('knowledge base', name);
    if (started === 'busy') {
      throw conflict('A rebuild is already running', [
        `knowledge base '${name}' is being rebuilt; wait for it to finish or POST /knowledge_bases/${name}/rebuild/cancel first`,
      ]);
    }
    try {
      // No other rebuild is active now (startRebuild checked it), so a shadow still linked is a
      // leftover of a cancel or failure cut short: it goes before the new one is linked.
      const leftover = (await this.vectors.collectionState(record.collection))?.shadow;
      if (leftover && leftover !== rebuild.collection) await this.vectors.dropShadow(record.collection, leftover);
      await this.vectors.startShadow(record.collection, rebuild.collection, dimensions);
    } catch (err) {
      await this.store.transitionRebuild(record.id, ['running'], 'failed', {
        finishedAt: this.clock.now(),
        error: { code: 'REBUILD_FAILED', message: 'the shadow index could not be created' },
      });
      if (err instanceof CollectionsChanged) {
        throw conflict('The knowledge base changed meanwhile', [`knowledge base '${name}' finished another change just now; send the PATCH again`]);
      }
      throw err;
    }
    this.logger.info({ kb: name, collection: rebuild.collection, documents: rebuild.documentsTotal }, 'rebuild started');
    this.wake();
    return this.registry.get(accountId, name);
  }

  /** POST /knowledge_bases/{kb}/rebuild/cancel: drops the shadow; the knowledge base stays as it was. */
  async cancel(accountId: string, name: string): Promise<KnowledgeBaseRecord> {
    const record = await this.registry.get(accountId, name);
    const rebuild = record.rebuild;
    const moved =
      rebuild !== null &&
      (await this.store.transitionRebuild(record.id, ['running'], 'cancelled', { finishedAt: this.clock.now(), error: null }));
    if (!moved) {
      const now = (await this.registry.get(accountId, name)).rebuild;
      throw conflict(
        'No rebuild to cancel',
        now?.status === 'swapping'
          ? [`knowledge base '${name}' is swapping to its new index; it is too late to cancel`]
          : [`knowledge base '${name}' has no rebuild running${now ? ` (the latest is ${now.status})` : ''}`],
      );
    }
    this.#aborts.get(record.id)?.abort(new Stopped('cancelled'));
    await this.vectors.dropShadow(record.collection, rebuild.collection);
    this.#later(() => this.engine.forgetProvider(rebuild.collection));
    this.logger.info({ kb: name }, 'rebuild cancelled');
    return this.registry.get(accountId, name);
  }

  start(): void {
    this.#stopping = false;
    this.#timer = setInterval(() => this.wake(), this.#options.pollMs);
    this.#timer.unref();
    this.wake();
  }

  /** Looks for a rebuild to take now (one at a time per process). */
  wake(): void {
    if (this.#stopping || this.#working !== null) return;
    this.#working = this.#takeOne()
      .catch((err) => this.logger.error({ err }, 'rebuild worker failed'))
      .finally(() => {
        this.#working = null;
      });
  }

  /** After the grace period (a provider may still be in use by a write or query that started before). */
  #later(fn: () => Promise<void>): void {
    const t = setTimeout(() => {
      this.#drops.delete(t);
      void fn().catch(() => undefined);
    }, this.#options.dropGraceMs);
    t.unref();
    this.#drops.add(t);
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    for (const abort of this.#aborts.values()) abort.abort(new Stopped('stopping'));
    await this.#working;
    for (const t of this.#drops) clearTimeout(t);
    this.#drops.clear();
  }

  async #takeOne(): Promise<void> {
    while (!this.#stopping) {
      const kb = await this.store.claimRebuild(this.owner, this.clock.now(), this.#options.leaseMs);
      if (kb === null || kb.rebuild === null) return;
      await this.#work(kb, kb.rebuild);
    }
  }

  async #work(kb: KnowledgeBaseRecord, rebuild: RebuildRecord): Promise<void> {
    const abort = new AbortController();
    this.#aborts.set(kb.id, abort);
    const current: CollectionTarget = { collection: kb.collection, embedding: kb.embedding, secret: kb.secret, chunking: kb.chunking };
    const shadow: CollectionTarget = {
      collection: rebuild.collection,
      embedding: rebuild.embedding,
      secret: rebuild.secret,
      chunking: rebuild.chunking,
    };
    const progress = { documentsDone: rebuild.documentsDone, documentsTotal: rebuild.documentsTotal, cursor: rebuild.cursor };
    // The lease is renewed on its own clock, so a slow step never lets another process take over.
    const renew = async (): Promise<void> => {
      const status = await this.store.saveRebuildProgress(kb.id, this.owner, {
        ...progress,
        leaseExpiresAt: this.clock.now() + this.#options.leaseMs,
      });
      if (status === null || status === 'cancelled' || status === 'failed') abort.abort(new Stopped(status ?? 'lease lost'));
    };
    const renewer = setInterval(() => void renew().catch(() => undefined), Math.max(500, this.#options.leaseMs / 3));
    renewer.unref();
    try {
      const state = await this.vectors.collectionState(current.collection);
      if (rebuild.status === 'running' && !state?.retired) {
        if (state?.shadow !== shadow.collection) {
          // Recorded, but the process that recorded it stopped before linking the shadow.
          const dimensions = await this.engine.probeDimensions(shadow.embedding, this.registry.apiKey(shadow));
          await this.vectors.startShadow(current.collection, shadow.collection, dimensions);
        }
        await this.#fill(current, shadow, progress, renew, abort.signal);
        if (!(await this.store.transitionRebuild(kb.id, ['running'], 'swapping', { owner: this.owner }))) return;
      }
      await this.#swap(kb, current, shadow, abort.signal);
    } catch (err) {
      if (abort.signal.aborted || err instanceof Stopped) return;
      const message = err instanceof Error ? err.message : String(err);
      this.logger.warn({ kb: kb.name, err }, 'rebuild failed');
      // Once the vector store has swapped, only the control store's half is left: the next holder
      // of the lease finishes it. Before that, a swapping rebuild may fail like a running one
      // (otherwise it would be retried, and fail, forever).
      const swapped = (await this.vectors.collectionState(current.collection).catch(() => null))?.retired === true;
      if (
        !swapped &&
        (await this.store.transitionRebuild(kb.id, ['running', 'swapping'], 'failed', {
          owner: this.owner,
          finishedAt: this.clock.now(),
          error: { code: 'REBUILD_FAILED', message },
        }))
      ) {
        await this.vectors.dropShadow(current.collection, shadow.collection).catch(() => undefined);
        this.#later(() => this.engine.forgetProvider(shadow.collection));
      }
    } finally {
      clearInterval(renewer);
      this.#aborts.delete(kb.id);
    }
  }

  /** The pass in id order from the saved cursor, then repairs until the collections agree. */
  async #fill(
    current: CollectionTarget,
    shadow: CollectionTarget,
    progress: { documentsDone: number; documentsTotal: number; cursor: string | null },
    renew: () => Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    for (;;) {
      signal.throwIfAborted();
      const page = await this.vectors.exportDocuments(current.collection, { limit: this.#options.pageSize, after: progress.cursor });
      if (page.documents.length === 0) break;
      await this.#retrying(() => this.#copy(current, shadow, page.documents, signal), signal);
      progress.cursor = page.documents.at(-1)!.id;
      progress.documentsDone += page.documents.length;
      progress.documentsTotal = Math.max(progress.documentsTotal, progress.documentsDone);
      await renew();
      if (page.next === null) break;
    }
    await this.#repair(current, shadow, signal);
  }

  async #repair(current: CollectionTarget, shadow: CollectionTarget, signal: AbortSignal): Promise<void> {
    // Writes reach both collections, so the pass should leave nothing behind; a write that lost a
    // race with the copy of its document (or a crash between steps) is repaired here.
    for (let round = 0; round < 20; round++) {
      signal.throwIfAborted();
      const diff = await this.vectors.shadowDifferences(current.collection, shadow.collection, this.#options.pageSize);
      if (diff.missing.length === 0 && diff.extra.length === 0) return;
      // In the shadow only (a write that could not reach the shadow, e.g. its provider failed for
      // now), or there in another version: removed from the shadow, then copied afresh. A write
      // landing meanwhile at worst costs one more embedding in the next round.
      const held = await this.vectors.getContentHashes(shadow.collection, diff.missing);
      const stale = [...diff.extra, ...diff.missing.filter((id) => held.has(id))];
      if (stale.length > 0) await this.vectors.deleteDocuments(shadow.collection, stale);
      const docs = await this.vectors.getDocuments(current.collection, diff.missing);
      await this.#retrying(() => this.#copy(current, shadow, docs, signal), signal);
    }
    throw new Error('the new index did not catch up with the writes after 20 rounds');
  }

  /**
   * Copies documents the shadow lacks, re-chunked and embedded under the shadow's configuration;
   * with the same model, a chunk whose text is unchanged keeps its vector.
   */
  async #copy(current: CollectionTarget, shadow: CollectionTarget, docs: DocumentInput[], signal: AbortSignal): Promise<number> {
    const held = await this.vectors.getContentHashes(shadow.collection, docs.map((d) => d.id));
    const todo = docs.filter((d) => !held.has(d.id));
    if (todo.length === 0) return 0;
    const reuse = sameModel(current.embedding, shadow.embedding);
    const plans = todo.map((doc) => {
      const known = new Map(reuse ? doc.chunks.map((c) => [c.text, c.embedding] as const) : []);
      const chunks = splitText(doc.content, { chunkSize: shadow.chunking.chunk_size, chunkOverlap: shadow.chunking.chunk_overlap });
      return { doc, chunks: chunks.map((c) => ({ index: c.index, text: c.text, embedding: known.get(c.text) ?? null })) };
    });
    const texts = plans.flatMap((p) => p.chunks.filter((c) => c.embedding === null).map((c) => c.text));
    const usage: EmbeddingUsage = { tokens: 0, requests: 0 };
    const vectors = await this.engine.embedFor(shadow, texts, usage, signal);
    let next = 0;
    const inputs: DocumentInput[] = plans.map(({ doc, chunks }) => ({
      id: doc.id,
      content: doc.content,
      contentHash: doc.contentHash,
      metadata: doc.metadata,
      ...(doc.keyHash !== undefined ? { keyHash: doc.keyHash } : {}),
      chunks: chunks.map((c) => ({ index: c.index, text: c.text, embedding: c.embedding ?? vectors[next++]! })),
    }));
    const expected = new Map(todo.map((d) => [d.id, d.contentHash]));
    signal.throwIfAborted();
    try {
      return await this.vectors.copyToShadow(current.collection, shadow.collection, inputs, expected);
    } catch (err) {
      // Unlinked under us: a cancel (the lease renewal will say so) or a lost lease.
      if (err instanceof CollectionsChanged) throw new Stopped(err.message);
      throw err;
    }
  }

  /** A provider failing for now (rate limit, outage) is retried with backoff before the rebuild fails. */
  async #retrying<T>(step: () => Promise<T>, signal: AbortSignal): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await step();
      } catch (err) {
        if (!(err instanceof EmbeddingProviderError && err.retryable) || attempt >= this.#options.retryAttempts) throw err;
        const delay = this.#options.retryBaseMs * 2 ** (attempt - 1);
        this.logger.warn({ attempt, delay, err: err.message }, 'rebuild: embedding provider failed for now; retrying');
        await sleep(delay, signal);
      }
    }
  }

  /** Vector store first (the checked swap), then the knowledge base's configuration. */
  async #swap(kb: KnowledgeBaseRecord, current: CollectionTarget, shadow: CollectionTarget, signal: AbortSignal): Promise<void> {
    for (let round = 0; !(await this.vectors.promoteShadow(current.collection, shadow.collection)); round++) {
      // A write landed between the last check and the swap (e.g. one that crashed half-way
      // through its own retry): repair what differs and try again.
      if (round >= 5) throw new Error('the new index kept differing from the current one at the swap');
      await this.#repair(current, shadow, signal);
    }
    if (!(await this.store.finishRebuild(kb.id, this.owner, this.clock.now()))) return;
    this.logger.info({ kb: kb.name, collection: shadow.collection }, 'rebuild swapped in');
    // Queries that read the old configuration a moment ago still search the old collection.
    this.#later(async () => {
      await this.vectors
        .dropCollection(current.collection)
        .catch((err) => this.logger.warn({ err, collection: current.collection }, 'could not drop a replaced collection'));
      await this.engine.forgetProvider(current.collection);
    });
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

