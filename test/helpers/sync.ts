/**
 * Sync tests: an app whose embedding provider is the fast deterministic hashing one (counting
 * the texts it embeds), plus helpers to create a job and run it to the end.
 */
import assert from 'node:assert/strict';
import type { Config } from '../../src/config.js';
import type { Clock } from '../../src/core/clock.js';
import type { AppOptions } from '../../src/app.js';
import type { ConnectorFactory } from '../../src/databases/service.js';
import { HashingEmbeddingProvider } from '../../src/embeddings/hashing/provider.js';
import type { EmbeddingProvider } from '../../src/embeddings/port.js';
import type { ProviderFactory } from '../../src/kb/engine.js';
import { startTestApp, type TestApp } from './app.js';

export interface CountingProviders {
  factory: ProviderFactory;
  /** Texts embedded so far, across every knowledge base. */
  embedded(): number;
  /** Makes the next `n` embed calls fail like an unreachable provider. */
  failNext(n: number): void;
  /** Holds every embed call until the returned function is called. */
  hold(): () => void;
  /** Embed calls waiting on `hold()` now: a batch is in flight once this is above 0 (optional for hand-made fakes). */
  held?(): number;
}

export function countingHashingProviders(dimensions = 64): CountingProviders {
  let count = 0;
  let failures = 0;
  let gate: Promise<void> | null = null;
  let waiting = 0;
  const inner = new HashingEmbeddingProvider({ dimensions });
  const provider: EmbeddingProvider = {
    id: 'test:hashing',
    dimensions: () => inner.dimensions(),
    async embed(texts, options) {
      if (gate) {
        waiting++;
        await gate.finally(() => waiting--);
      }
      if (failures > 0) {
        failures--;
        throw new Error('provider unavailable (test)');
      }
      count += texts.length;
      return inner.embed(texts, options);
    },
    close: async () => undefined,
  };
  return {
    factory: () => provider,
    embedded: () => count,
    failNext: (n) => {
      failures = n;
    },
    hold() {
      let release!: () => void;
      gate = new Promise<void>((resolve) => {
        release = () => {
          gate = null;
          resolve();
        };
      });
      return release;
    },
    held: () => waiting,
  };
}

export interface SyncTestApp extends TestApp {
  providers: CountingProviders;
  /** POST /jobs/{job}/run, wait for the run to end, return the run as the API shows it. */
  runNow(job: string): Promise<any>;
  /** The knowledge base's documents, all pages. */
  documents(kb: string): Promise<Array<{ id: string; content: string; metadata: Record<string, unknown> }>>;
}

export async function startSyncApp(
  options: {
    dataDir?: string;
    clock?: Clock;
    providers?: CountingProviders;
    config?: Partial<Config>;
    connectorFactory?: ConnectorFactory;
    wrapStore?: AppOptions['wrapStore'];
    finishRetryMs?: number;
  } = {},
): Promise<SyncTestApp> {
  const providers = options.providers ?? countingHashingProviders();
  const t = await startTestApp({
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.config ? { config: options.config } : {}),
    providerFactory: providers.factory,
    ...(options.connectorFactory ? { connectorFactory: options.connectorFactory } : {}),
    ...(options.wrapStore ? { wrapStore: options.wrapStore } : {}),
    ...(options.finishRetryMs ? { finishRetryMs: options.finishRetryMs } : {}),
    sync: { retryBaseMs: 5, readAttempts: 3 },
  });
  return {
    ...t,
    providers,
    async runNow(job) {
      const started = await t.request('POST', `/jobs/${job}/run`);
      assert.equal(started.status, 202, JSON.stringify(started.body));
      await t.app.services.scheduler.whenIdle();
      const run = await t.request('GET', `/jobs/${job}/runs/${started.body.data.run_id}`);
      return run.body.data;
    },
    async documents(kb) {
      const all: Array<{ id: string; content: string; metadata: Record<string, unknown> }> = [];
      let cursor: string | null = null;
      do {
        const res: { body: any } = await t.request('GET', `/knowledge_bases/${kb}/documents?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        all.push(...res.body.data.documents);
        cursor = res.body.data.next_cursor;
      } while (cursor);
      return all;
    },
  };
}

export const jobBody = (overrides: Record<string, unknown>) => ({
  job_name: 'sync_job',
  kb_name: 'kb',
  interval: '10 MINUTES',
  start_time: '2099-01-01T00:00:00',
  end_time: '2099-01-02T00:00:00',
  ...overrides,
});
