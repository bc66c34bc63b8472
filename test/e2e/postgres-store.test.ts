/**
 * kbsync on the PostgreSQL store (KBSYNC_STORE_URL), end to end over HTTP: the seed's flow
 * (register a source, create a knowledge base and the job, run it, query it three ways, read its
 * documents), then a restart on the same schema that keeps the job, its runs and its watermark.
 * Nothing goes into the data dir's kbsync.db, and the store URL's password never appears in a
 * response, a log line or an error.
 *
 * Skips with the reason when PostgreSQL or pgvector is missing, except under CI=true (fails).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { isoIn, makeSqliteSource, startTestApp, type TestApp, tempDir } from '../helpers/app.js';
import { skipUnlessPgvector, type TempDatabase, withTempPostgresDatabase } from '../helpers/pgvector.js';
import { countingHashingProviders } from '../helpers/sync.js';

const skip = await skipUnlessPgvector();

/** The server trusts local connections, so this password is sent nowhere, but kbsync must still hide it. */
const PASSWORD = 'pw-e2e-Zq81xVv0';
const SCHEMA = 'kbsync_e2e';

describe('kbsync on the PostgreSQL store', { skip }, () => {
  let database: TempDatabase;
  let storeUrl: string;
  const dataDir = tempDir('kbsync-pg-e2e-');
  const logs: string[] = [];
  const providers = countingHashingProviders();

  before(async () => {
    database = await withTempPostgresDatabase();
    const u = new URL(database.url);
    u.password = PASSWORD;
    storeUrl = u.toString();
  });
  after(async () => {
    await database?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  async function start(): Promise<TestApp> {
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk, _encoding, done) {
          logs.push(String(chunk));
          done();
        },
      }),
    );
    return startTestApp({
      dataDir,
      config: { storeUrl, storeSchema: SCHEMA, storeStatementTimeoutMs: 30_000 },
      providerFactory: providers.factory,
      sync: { retryBaseMs: 5, readAttempts: 3 },
      logger,
    });
  }

  async function runNow(t: TestApp, job: string) {
    const started = await t.request('POST', `/jobs/${job}/run`);
    assert.equal(started.status, 202, JSON.stringify(started.body));
    await t.app.services.scheduler.whenIdle();
    const run = await t.request('GET', `/jobs/${job}/runs/${started.body.data.run_id}`);
    assert.equal(run.status, 200);
    return run.body.data;
  }

  const query = async (t: TestApp, mode: string, text: string) => {
    const res = await t.request('POST', '/knowledge_bases/orders_kb/query', { query: text, mode, top_k: 3 });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.data.results as Array<{ document_id: string; content: string; relevance: number; metadata: Record<string, unknown> }>;
  };

  it('runs the seed’s flow over HTTP, keeps everything across a restart, and writes no kbsync.db', { timeout: 120_000 }, async () => {
    const first = await start();
    let jobId: string;
    let runId: string;
    let watermark: unknown;
    try {
      const health = await first.request('GET', '/health');
      assert.equal(health.status, 200, JSON.stringify(health.body));
      assert.equal(health.body.data.backend, 'postgres');

      const source = makeSqliteSource(dataDir, 20);
      assert.equal((await first.request('POST', '/databases', { name: 'orders_db', engine: 'sqlite', parameters: { path: source } })).status, 201);
      assert.equal((await first.request('POST', '/knowledge_bases', { kb_name: 'orders_kb', description: 'orders' })).status, 201);
      const created = await first.request('POST', '/jobs/create', {
        job_name: 'sync_orders',
        source_table: 'orders_db.orders',
        kb_name: 'orders_kb',
        content_columns: ['product', 'description'],
        metadata_columns: ['amount'],
        filter_column: 'created_at',
        interval: '10 MINUTES',
        start_time: isoIn(60),
        end_time: isoIn(60 + 24 * 60),
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      jobId = created.body.data.job_id;

      const run = await runNow(first, 'sync_orders');
      assert.equal(run.status, 'succeeded', JSON.stringify(run));
      assert.equal(run.rows_read, 20);
      assert.equal(run.documents_added, 20);
      runId = run.run_id;

      const docs = await first.request('GET', '/knowledge_bases/orders_kb/documents?limit=100');
      assert.equal(docs.body.data.documents.length, 20);
      const seven = docs.body.data.documents.find((d: { id: string }) => d.id === '7');
      assert.match(seven.content, /product 7\b/);
      assert.equal(seven.metadata.amount, 10.5);

      const keyword = await query(first, 'keyword', 'product 7');
      assert.equal(keyword[0]?.document_id, '7', JSON.stringify(keyword));
      const semantic = await query(first, 'semantic', 'description of product 7');
      assert.equal(semantic[0]?.document_id, '7', JSON.stringify(semantic));
      const hybrid = await query(first, 'hybrid', 'product 7');
      assert.equal(hybrid[0]?.document_id, '7', JSON.stringify(hybrid));
      for (const hits of [keyword, semantic, hybrid]) {
        assert.equal(hits.length, 3);
        assert.ok(hits.every((h) => h.relevance >= 0 && h.relevance <= 1));
      }

      // The rows are in PostgreSQL, in the configured schema.
      const [stored] = (await database.exec(
        `SELECT (SELECT count(*)::int FROM ${SCHEMA}.jobs) AS jobs, (SELECT count(*)::int FROM ${SCHEMA}.runs) AS runs,
                (SELECT chunk_count::int FROM ${SCHEMA}.kb_collections) AS chunks`,
      )) as Array<{ jobs: number; runs: number; chunks: number }>;
      assert.deepEqual(stored, { jobs: 1, runs: 1, chunks: 20 });

      const job = await first.request('GET', '/jobs/sync_orders');
      watermark = job.body.data.watermark;
      assert.ok(watermark !== null, 'the run placed a watermark');
    } finally {
      await first.close();
    }

    const second = await start();
    try {
      const job = await second.request('GET', '/jobs/sync_orders');
      assert.equal(job.status, 200);
      assert.equal(job.body.data.job_id, jobId);
      assert.deepEqual(job.body.data.watermark, watermark);
      const runs = await second.request('GET', '/jobs/sync_orders/runs');
      assert.deepEqual(
        runs.body.data.runs.map((r: { run_id: string; status: string }) => [r.run_id, r.status]),
        [[runId, 'succeeded']],
      );
      assert.equal((await query(second, 'keyword', 'product 7'))[0]?.document_id, '7');
      // The watermark is used, not only shown: the next run starts from it (re-reading only the
      // lookback window) and embeds nothing.
      const embedded = providers.embedded();
      const again = await runNow(second, 'sync_orders');
      assert.equal(again.status, 'succeeded');
      assert.deepEqual(again.watermark_start, watermark);
      assert.ok(again.rows_read < 20, `rows read: ${again.rows_read}`);
      assert.equal(again.documents_added, 0);
      assert.equal(providers.embedded(), embedded, 'nothing embedded again');
      assert.equal((await second.request('GET', '/knowledge_bases/orders_kb')).body.data.document_count, 20);
      assert.equal((await second.request('GET', '/health')).body.data.backend, 'postgres');
    } finally {
      await second.close();
    }

    assert.equal(fs.existsSync(path.join(dataDir, 'kbsync.db')), false, 'no embedded store in the data dir');
    const all = logs.join('');
    assert.ok(!all.includes(PASSWORD), 'the password is never logged');
    assert.match(all, /"store":"postgres","location":"postgres:\/\/postgres:\*\*\*\*@127\.0\.0\.1:5432\//);
  });

  it('a store that cannot be opened fails the start with the URL masked', async () => {
    const config = loadConfig({ LOG_LEVEL: 'silent' } as NodeJS.ProcessEnv, {
      dataDir: tempDir('kbsync-pg-bad-'),
      storeUrl: `postgres://kbsync:${PASSWORD}@127.0.0.1:1/nowhere`,
      storeSchema: SCHEMA,
      scheduler: false,
    });
    await assert.rejects(createApp(config), (err: Error) => {
      assert.ok(!err.message.includes(PASSWORD), err.message);
      assert.match(err.message, /cannot open the PostgreSQL store at postgres:\/\/kbsync:\*\*\*\*@127\.0\.0\.1:1\/nowhere \(schema kbsync_e2e\)/);
      assert.ok(!JSON.stringify(err).includes(PASSWORD));
      return true;
    });
    fs.rmSync(config.dataDir, { recursive: true, force: true });
  });
});
