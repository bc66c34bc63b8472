/**
 * The composition root: builds the stores, services, scheduler and server from the
 * configuration. The one place where backends are chosen.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { AccountService } from './accounts/service.js';
import { buildServer } from './api/server.js';
import type { Config } from './config.js';
import { type Clock, systemClock } from './core/clock.js';
import { type ConnectorFactory, DatabaseService } from './databases/service.js';
import { createEmbeddingProvider } from './embeddings/factory.js';
import type { EmbeddingConfig, EmbeddingProvider } from './embeddings/port.js';
import { Fleet } from './jobs/fleet.js';
import { Scheduler } from './jobs/scheduler.js';
import type { Estimator } from './jobs/estimates.js';
import { JobService } from './jobs/service.js';
import { type RebuildOptions, Rebuilds } from './kb/rebuild.js';
import { KnowledgeBaseEngine, type ProviderFactory } from './kb/engine.js';
import { KnowledgeBaseRegistry } from './kb/registry.js';
import { Metrics } from './metrics.js';
import { WebhookDispatcher, type WebhookOptions } from './jobs/webhooks.js';
import { SecretBox } from './secrets/crypto.js';
import { createSourcePool } from './sources/factory.js';
import { type PoolFactory, SourcePools, unpooled } from './sources/pools.js';
import type { ControlStore } from './store/port.js';
import { StoreHealth } from './store/faults.js';
import { openStores } from './store/open-stores.js';
import type { VectorStore } from './store/vector-port.js';
import { estimateNextRun } from './sync/estimate.js';
import { LookbackMemory } from './sync/lookback-memory.js';
import type { SyncDeps } from './sync/run-sync.js';
import { VERSION } from './version.js';

/** How old a cached table description may get before a run reads the catalog again (besides after a failed query). */
const DESCRIBE_MAX_AGE_MS = 10 * 60_000;

export interface Services {
  version: string;
  clock: Clock;
  store: ControlStore;
  vectors: VectorStore;
  /** Whether the store takes writes, as this process has seen (store/faults.ts). */
  storeHealth: StoreHealth;
  databases: DatabaseService;
  kbs: KnowledgeBaseRegistry;
  engine: KnowledgeBaseEngine;
  /** Model and chunking changes of knowledge bases (shadow rebuilds). */
  rebuilds: Rebuilds;
  jobs: JobService;
  scheduler: Scheduler;
  /** This process in the fleet of processes sharing the store (GET /health). */
  fleet: Fleet;
  /** Which store backend this process uses (GET /health). */
  backend: 'sqlite' | 'postgres';
  metrics: Metrics;
  accounts: AccountService;
}

export interface AppOptions {
  clock?: Clock;
  /** Connectors made by the caller, a new one for every use (tests wrap real ones); unset: pooled. */
  connectorFactory?: ConnectorFactory;
  /** Source pools made by the caller (tests count what pooled connectors do); unset: the real ones. */
  sourcePoolFactory?: PoolFactory;
  /** Embedding providers by configuration (tests pass a fast deterministic one). */
  providerFactory?: ProviderFactory;
  logger?: Logger;
  /** Sync-run tuning (tests shorten the retry backoff). */
  sync?: Partial<Pick<SyncDeps, 'readAttempts' | 'retryBaseMs'>>;
  /** Life of run claims and process heartbeats; default config.leaseTtlMs (tests shorten it further). */
  leaseTtlMs?: number;
  /** First wait before writing the end of a run again after a store fault (tests shorten it). */
  finishRetryMs?: number;
  /** Wraps the control store (tests inject store faults, e.g. a full disk at one precise write). */
  wrapStore?: (store: ControlStore) => ControlStore;
  /** Webhook delivery tuning (tests shorten the backoff and polling). */
  webhooks?: Partial<WebhookOptions>;
  /** Rebuild worker timings (tests shorten the poll, lease and grace). */
  rebuilds?: Partial<RebuildOptions>;
}

export interface App {
  config: Readonly<Config>;
  services: Services;
  server: FastifyInstance;
  logger: Logger;
  /** Starts the scheduler (when configured) and listens on config.host:config.port. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

export function createLogger(config: Readonly<Config>): Logger {
  return pino({
    level: config.logLevel,
    // Belt and braces: anything named like a secret is masked even if it reaches a log call.
    redact: { paths: ['*.password', '*.api_key', '*.apiKey', 'parameters.url', '*.secret'], censor: '****' },
  });
}

/**
 * One local model pool for the whole process, however many knowledge bases use it: each worker
 * holds a copy of the model, so a pool per knowledge base would multiply memory.
 */
function defaultProviderFactory(config: Readonly<Config>): { factory: ProviderFactory; close(): Promise<void> } {
  let local: EmbeddingProvider | null = null;
  const factory = (embedding: EmbeddingConfig): EmbeddingProvider => {
    if (embedding.provider !== 'local') return createEmbeddingProvider(embedding);
    local ??= createEmbeddingProvider(embedding, {
      local: { ...(config.localEmbeddingThreads > 0 ? { threads: config.localEmbeddingThreads } : {}), bulkNice: config.workerNice },
    });
    const shared = local;
    return {
      id: shared.id,
      dimensions: () => shared.dimensions(),
      embed: (texts, options) => shared.embed(texts, options),
      close: async () => undefined, // closed once, with the app
      // No probe: the local model needs no credentials, and loading it at creation would only delay the answer.
    };
  };
  return { factory, close: async () => void (await local?.close()) };
}

export async function createApp(config: Readonly<Config>, options: AppOptions = {}): Promise<App> {
  const logger = options.logger ?? createLogger(config);
  const clock = options.clock ?? systemClock;
  // The embedded SQLite file, or PostgreSQL with KBSYNC_STORE_URL (store/open-stores.ts; the URL is logged masked).
  const stores = await openStores(config, (backend, location) => logger.info({ store: backend, location }, `store: ${backend}`));
  // The folder for SQLite sources next to the store (an allowed root by default; the rest of the data dir never is).
  fs.mkdirSync(path.join(config.dataDir, 'sources'), { recursive: true, mode: 0o700 });
  const store: ControlStore = options.wrapStore ? options.wrapStore(stores.controlStore) : stores.controlStore;
  const vectors = stores.vectorStore;
  const secrets = config.secretKey ? SecretBox.fromSetting(config.secretKey) : SecretBox.fromDataDir(config.dataDir);
  // Every source query is bounded (statement and lock timeouts); SQLite files are confined to the
  // allowed roots, checked at registration and again when a connector opens one.
  const sqliteConfinement = { roots: config.sqliteRoots, dataDir: config.dataDir };
  const sourceOptions = {
    limits: { statementTimeoutMs: config.sourceStatementTimeoutMs, lockTimeoutMs: config.sourceLockTimeoutMs },
    pool: { size: config.sourcePoolSize, idleMs: config.sourceIdleMs, describeMaxAgeMs: DESCRIBE_MAX_AGE_MS },
    sqlite: sqliteConfinement,
  };
  // One pool per registered database, kept across runs: a run pays no connection set-up and no
  // catalog read (issue 9).
  const connectorFactory = options.connectorFactory;
  const sources = new SourcePools(
    options.sourcePoolFactory ??
      (connectorFactory
        ? (engine, params) => unpooled(engine, () => connectorFactory(engine, params))
        : (engine, params) => createSourcePool(engine, params, sourceOptions)),
    config.sourceIdleMs,
  );
  const databases = new DatabaseService(store, secrets, sources, clock, sqliteConfinement);
  const kbs = new KnowledgeBaseRegistry(store, secrets, clock, undefined, config.embeddingHosts);
  const providers = options.providerFactory ? { factory: options.providerFactory, close: async () => undefined } : defaultProviderFactory(config);
  const engine = new KnowledgeBaseEngine(vectors, kbs, providers.factory, {
    maxDocumentChars: config.maxDocumentChars,
    probeTimeoutMs: config.embeddingProbeTimeoutMs,
  });
  kbs.setHooks(engine.hooks());
  const metrics = new Metrics(store);
  // Room left where the store writes (the data dir's file system; unknown for PostgreSQL): after a fault, /health waits for some before ok.
  const storeHealth = new StoreHealth({ freeBytes: stores.freeBytes });
  // Shared by runs and estimates: an estimate skips the lookback window when the run would.
  const lookback = new LookbackMemory();
  // This process in the fleet: every process on the store schedules, claims and resumes runs.
  const fleet = new Fleet(store, options.leaseTtlMs ?? config.leaseTtlMs);
  // Every process sends webhook events, whichever queued them (claimed one process at a time).
  const webhooks = new WebhookDispatcher(store, secrets, clock, logger, fleet.id, options.webhooks);
  webhooks.start();
  // Every process may take a rebuild (one at a time, by lease); a PATCH wakes its own process at once.
  const rebuilds = new Rebuilds(store, vectors, kbs, engine, clock, logger, fleet.id, options.rebuilds);
  const scheduler = new Scheduler(
    store,
    {
      store,
      databases,
      sink: engine,
      costs: engine,
      keys: engine.keyIndex(),
      clock,
      readAttempts: options.sync?.readAttempts ?? 4,
      retryBaseMs: options.sync?.retryBaseMs ?? 1000,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      lookback,
    },
    logger,
    {
      maxConcurrentRuns: config.maxConcurrentRuns,
      maxConcurrentChecks: config.maxConcurrentChecks,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
      onRunFinished: (run) => metrics.runFinished(run),
      storeHealth,
      fleet,
      webhooks,
      ...(options.finishRetryMs ? { finishRetryMs: options.finishRetryMs } : {}),
    },
  );
  const estimator: Estimator = (job, o) => estimateNextRun({ store, databases, costs: engine, lookback }, job, o);
  const jobs = new JobService(
    store,
    databases,
    clock,
    { maxActiveJobs: config.maxActiveJobs, webhooks: { secrets, hosts: config.embeddingHosts } },
    scheduler,
    estimator,
  );
  jobs.onChange(() => scheduler.wake());
  const accounts = new AccountService(store, clock);
  const services: Services = { version: VERSION, clock, store, vectors, storeHealth, databases, kbs, engine, rebuilds, jobs, scheduler, fleet, backend: stores.backend, metrics, accounts };
  const server = await buildServer(config, services, logger);

  return {
    config,
    services,
    server,
    logger,
    async listen() {
      const address = await server.listen({ host: config.host, port: config.port });
      // A process without the scheduler is still a member (it serves the API and runs manual runs).
      await fleet.join();
      if (config.scheduler) await scheduler.start();
      rebuilds.start();
      return address;
    },
    async close() {
      await server.close();
      // Also when the scheduler never ticked: manual runs may be in flight.
      await scheduler.stop();
      await rebuilds.stop();
      await webhooks.stop();
      await engine.close();
      await providers.close();
      await sources.close();
      await stores.close();
    },
  };
}
