/**
 * The composition root: builds the store, services and server from the configuration. The one
 * place where backends are chosen.
 */
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { buildServer } from './api/server.js';
import type { Config } from './config.js';
import { type Clock, systemClock } from './core/clock.js';
import { type ConnectorFactory, DatabaseService } from './databases/service.js';
import { JobService } from './jobs/service.js';
import { KnowledgeBaseRegistry } from './kb/registry.js';
import { SecretBox } from './secrets/crypto.js';
import { createSourceConnector } from './sources/factory.js';
import type { ControlStore } from './store/port.js';
import { SqliteControlStore } from './store/sqlite/control-store.js';
import { openSqliteFile } from './store/sqlite/open.js';
import { VERSION } from './version.js';

export interface Services {
  version: string;
  clock: Clock;
  store: ControlStore;
  databases: DatabaseService;
  kbs: KnowledgeBaseRegistry;
  jobs: JobService;
}

export interface AppOptions {
  clock?: Clock;
  connectorFactory?: ConnectorFactory;
  logger?: Logger;
}

export interface App {
  config: Readonly<Config>;
  services: Services;
  server: FastifyInstance;
  logger: Logger;
  /** Starts listening on config.host:config.port; returns the address. */
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

export async function createApp(config: Readonly<Config>, options: AppOptions = {}): Promise<App> {
  const logger = options.logger ?? createLogger(config);
  const clock = options.clock ?? systemClock;
  const db = openSqliteFile(path.join(config.dataDir, 'kbsync.db'));
  const store = new SqliteControlStore(db, { ownsDb: true });
  const secrets = config.secretKey ? SecretBox.fromSetting(config.secretKey) : SecretBox.fromDataDir(config.dataDir);
  const databases = new DatabaseService(store, secrets, options.connectorFactory ?? createSourceConnector);
  const kbs = new KnowledgeBaseRegistry(store, secrets);
  const jobs = new JobService(store, databases, kbs, clock, { maxActiveJobs: config.maxActiveJobs });
  const services: Services = { version: VERSION, clock, store, databases, kbs, jobs };
  const server = await buildServer(config, services, logger);

  return {
    config,
    services,
    server,
    logger,
    async listen() {
      return server.listen({ host: config.host, port: config.port });
    },
    async close() {
      await server.close();
      await store.close();
    },
  };
}
