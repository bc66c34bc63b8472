/** Starts a real kbsync app on a temp data dir for HTTP tests (fastify.inject, no socket). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { type App, type AppOptions, createApp } from '../../src/app.js';
import { type Config, loadConfig } from '../../src/config.js';
import type { Clock } from '../../src/core/clock.js';
import { checkerFor, type OpenApiChecker } from './openapi.js';

export interface TestApp {
  app: App;
  dataDir: string;
  /**
   * One request through fastify.inject. Every answer is also checked against the app's own
   * /openapi.json (test/helpers/openapi.ts): an undocumented route or status, or a body that does
   * not match its schema, throws.
   */
  request(method: string, url: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export function tempDir(prefix = 'kbsync-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** KBSYNC_SQLITE_ROOTS of test apps and test servers: the OS temp folder. */
export const TEST_SQLITE_ROOTS = os.tmpdir();

/** `dataDir/sources`, created: where a test keeps a SQLite source next to an app's store (the data dir itself is refused). */
export function sourcesDir(dataDir: string): string {
  const dir = path.join(dataDir, 'sources');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export async function startTestApp(
  options: { dataDir?: string; config?: Partial<Config>; clock?: Clock } & AppOptions = {},
): Promise<TestApp> {
  const dataDir = options.dataDir ?? tempDir();
  // SQLite sources of tests live in temporary folders (never the data dir itself, which stays refused).
  const config = loadConfig({ LOG_LEVEL: 'silent', KBSYNC_SQLITE_ROOTS: TEST_SQLITE_ROOTS } as NodeJS.ProcessEnv, { dataDir, scheduler: false, ...options.config });
  const app = await createApp(config, options);
  // What GET /openapi.json serves, read without a request (no API key, no rate-limit token).
  let openapi: OpenApiChecker | undefined;
  return {
    app,
    dataDir,
    async request(method, url, body, headers = {}) {
      const res = await app.server.inject({
        method: method as 'GET',
        url,
        ...(body === undefined
          ? { headers }
          : typeof body === 'string'
            ? { payload: body, headers: { 'content-type': 'application/json', ...headers } }
            : { payload: body as object, headers }),
      });
      let parsed: unknown;
      try {
        parsed = res.json();
      } catch {
        parsed = res.body;
      }
      openapi ??= checkerFor(JSON.stringify(app.server.swagger()));
      const problems = openapi.check(method, url, {
        status: res.statusCode,
        contentType: res.headers['content-type'] as string | undefined,
        body: parsed,
      });
      if (problems.length > 0) throw new Error(`OpenAPI check failed: ${problems.join('\n')}`);
      return { status: res.statusCode, body: parsed };
    },
    close: () => app.close(),
  };
}

/** A SQLite source file in `dataDir/sources` with an `orders` table like the demo's, plus a few awkward tables. */
export function makeSqliteSource(dataDir: string, rows = 20): string {
  const file = path.join(sourcesDir(dataDir), `source-${Math.random().toString(36).slice(2)}.db`);
  const db = new Database(file);
  db.exec(`
    CREATE TABLE orders (id INTEGER PRIMARY KEY, product TEXT, description TEXT, created_at TIMESTAMP, amount REAL, flag BLOB);
    CREATE TABLE "Order Items" (order_id INTEGER NOT NULL, line INTEGER NOT NULL, "select" TEXT, updated_at TIMESTAMP, PRIMARY KEY (order_id, line));
    CREATE TABLE nokey (a TEXT, b TEXT);
  `);
  const insert = db.prepare('INSERT INTO orders (id, product, description, created_at, amount) VALUES (?, ?, ?, ?, ?)');
  for (let i = 1; i <= rows; i++) {
    insert.run(i, `product ${i}`, `description of product ${i}`, `2025-01-01 00:${String(i % 60).padStart(2, '0')}:00`, i * 1.5);
  }
  db.close();
  return file;
}

/** ISO time `minutes` from now, without offset (naive = UTC), whole seconds. */
export function isoIn(minutes: number, from = Date.now()): string {
  return new Date(Math.floor((from + minutes * 60_000) / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, '');
}
