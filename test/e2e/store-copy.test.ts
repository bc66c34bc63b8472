/**
 * `kbsync store copy --to postgres://…` end to end: an embedded store with 10,000 synced documents
 * (a job, its runs and watermark, a second account with an API key, a failed row) is copied by the
 * real `kbsync` binary into a fresh PostgreSQL schema; kbsync started on that schema answers the
 * same queries with the same top results, its job goes on from the copied watermark, and no
 * document is embedded again (the provider only embeds the queries). The source is left as it
 * was, a second copy into the same schema is refused, and the URL's password is never printed.
 * Then, through the ports: each knowledge base is copied from its `collection` (a rebuild's shadow
 * after the swap), which it keeps, and a rebuild still running refuses the copy.
 *
 * Skips with the reason when PostgreSQL or pgvector is missing, except under CI=true (fails).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { copyStore, countAll, StoreCopyError, type StorePair } from '../../src/store/copy.js';
import { openStores, type StoreSettings } from '../../src/store/open-stores.js';
import type { KnowledgeBaseRecord, RebuildRecord } from '../../src/store/port.js';
import { SqliteControlStore } from '../../src/store/sqlite/control-store.js';
import { openSqliteFile } from '../../src/store/sqlite/open.js';
import { SqliteVectorStore } from '../../src/store/sqlite/vector-store.js';
import type { DocumentInput } from '../../src/store/vector-port.js';
import { isoIn, sourcesDir, startTestApp, type TestApp, tempDir } from '../helpers/app.js';
import { skipUnlessPgvector, type TempDatabase, withTempPostgresDatabase } from '../helpers/pgvector.js';
import { countingHashingProviders } from '../helpers/sync.js';

const skip = await skipUnlessPgvector();

const ROWS = 10_000;
const PASSWORD = 'pw-copy-Hq27LmX4';
const SCHEMA = 'kbsync_copy';

function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
      env: { ...process.env, LOG_LEVEL: 'silent', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

type Hit = { document_id: string; relevance: number };

const STORE_SETTINGS: Omit<StoreSettings, 'dataDir' | 'storeUrl' | 'storeSchema'> = {
  storePoolSize: 2,
  storeStatementTimeoutMs: 30_000,
  searchThreads: 0,
  workerNice: 0,
  vectorIndexMinChunks: 20_000,
};

function kbRecord(id: string, name: string, collection: string, rebuild: RebuildRecord | null): KnowledgeBaseRecord {
  return {
    id,
    accountId: 'default',
    name,
    description: null,
    embedding: { provider: 'local', model: null, dimensions: null, base_url: null },
    secret: null,
    chunking: { chunk_size: 500, chunk_overlap: 50 },
    createdAt: Date.UTC(2030, 0, 1),
    collection,
    rebuild,
  };
}

const doc = (id: string, embedding: number[]): DocumentInput => ({
  id,
  content: `document ${id}`,
  contentHash: `hash-${id}`,
  metadata: { id },
  chunks: [{ index: 0, text: `document ${id}`, embedding: new Float32Array(embedding) }],
});

/** Deterministic words (mulberry32), so documents differ in more than a number and scores rarely tie. */
function wordsOf(seed: number, count: number): string[] {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const syllables = ['ka', 'lo', 'mi', 'ner', 'sto', 'vu', 'tre', 'pa', 'gin', 'dol', 're', 'shu'];
  return Array.from({ length: count }, () =>
    Array.from({ length: 2 + Math.floor(next() * 3) }, () => syllables[Math.floor(next() * syllables.length)]).join(''),
  );
}

/** A SQLite source of ROWS articles whose text is made of those words. */
function makeArticles(dataDir: string): string {
  const file = `${sourcesDir(dataDir)}/articles.db`;
  const db = new Database(file);
  db.exec('CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT, body TEXT, updated_at TIMESTAMP, score REAL)');
  const insert = db.prepare('INSERT INTO articles VALUES (?, ?, ?, ?, ?)');
  db.transaction(() => {
    for (let i = 1; i <= ROWS; i++) {
      insert.run(i, wordsOf(i, 3).join(' '), wordsOf(i + 1_000_000, 12).join(' '), `2025-01-01 ${String(Math.floor(i / 600)).padStart(2, '0')}:${String(Math.floor(i / 10) % 60).padStart(2, '0')}:00`, i / 7);
    }
  })();
  db.close();
  return file;
}

const textOf = (i: number) => `${wordsOf(i, 3).join(' ')}\n${wordsOf(i + 1_000_000, 12).join(' ')}`;

describe('kbsync store copy (embedded store into PostgreSQL)', { skip }, () => {
  let database: TempDatabase;
  let storeUrl: string;
  const dataDir = tempDir('kbsync-copy-');
  const providers = countingHashingProviders();

  before(async () => {
    database = await withTempPostgresDatabase();
    const u = new URL(database.url);
    u.password = PASSWORD; // the server trusts local connections; kbsync must still hide it
    storeUrl = u.toString();
  });
  after(async () => {
    await database?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  const start = (config: Record<string, unknown> = {}) =>
    startTestApp({ dataDir, config, providerFactory: providers.factory, sync: { retryBaseMs: 5, readAttempts: 3 } });

  async function runNow(t: TestApp, job: string) {
    const started = await t.request('POST', `/jobs/${job}/run`);
    assert.equal(started.status, 202, JSON.stringify(started.body));
    await t.app.services.scheduler.whenIdle();
    return (await t.request('GET', `/jobs/${job}/runs/${started.body.data.run_id}`)).body.data;
  }

  const QUERIES: Array<[string, string]> = [
    ['keyword', wordsOf(7, 3).join(' ')],
    ['keyword', wordsOf(1_009_999, 4).join(' ')],
    ['semantic', textOf(4242)],
    ['semantic', wordsOf(1_000_123, 6).join(' ')],
    ['hybrid', textOf(5000)],
    ['hybrid', wordsOf(31, 3).join(' ')],
  ];

  async function answers(t: TestApp): Promise<Hit[][]> {
    const out: Hit[][] = [];
    for (const [mode, query] of QUERIES) {
      const res = await t.request('POST', '/knowledge_bases/orders_kb/query', { query, mode, top_k: 3 });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      out.push(res.body.data.results.map((h: Hit) => ({ document_id: h.document_id, relevance: h.relevance })));
    }
    return out;
  }

  /** The control-plane rows of the embedded file, to show the copy changed nothing in it. */
  function snapshot(): string {
    const db = new Database(`${dataDir}/kbsync.db`, { readonly: true });
    try {
      const tables = ['accounts', 'api_keys', 'databases', 'knowledge_bases', 'jobs', 'runs', 'job_failures', 'kb_documents'];
      return JSON.stringify(tables.map((t) => db.prepare(`SELECT * FROM ${t} ORDER BY 1, 2`).all()));
    } finally {
      db.close();
    }
  }

  it('copies 10,000 documents without embedding them again; the copy answers the same queries the same way', { timeout: 300_000 }, async () => {
    // The embedded store: a synced job, a second account with a key, a failed row.
    const source = await start();
    let before: Hit[][];
    let sourceCounts: Awaited<ReturnType<typeof countAll>>;
    let watermark: unknown;
    try {
      const file = makeArticles(dataDir);
      assert.equal((await source.request('POST', '/databases', { name: 'orders_db', engine: 'sqlite', parameters: { path: file } })).status, 201);
      assert.equal((await source.request('POST', '/knowledge_bases', { kb_name: 'orders_kb', description: 'orders' })).status, 201);
      const created = await source.request('POST', '/jobs/create', {
        job_name: 'sync_orders',
        source_table: 'orders_db.articles',
        kb_name: 'orders_kb',
        content_columns: ['title', 'body'],
        metadata_columns: ['score'],
        filter_column: 'updated_at',
        interval: '10 MINUTES',
        start_time: isoIn(60),
        end_time: isoIn(60 + 24 * 60),
        batch_size: 2000,
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const run = await runNow(source, 'sync_orders');
      assert.equal(run.status, 'succeeded', JSON.stringify(run));
      assert.equal(run.documents_added, ROWS);
      watermark = (await source.request('GET', '/jobs/sync_orders')).body.data.watermark;
      const { account } = await source.app.services.accounts.ensure('acme');
      await source.app.services.accounts.createKey(account.id);
      const jobId = created.body.data.job_id as string;
      await source.app.services.store.recordFailures(jobId, [{ docId: '42', key: ['42'], reason: 'too long (test)' }], Date.now());
      before = await answers(source);
      sourceCounts = await countAll({ control: source.app.services.store, vectors: source.app.services.vectors });
      assert.equal(sourceCounts.documents, ROWS);
    } finally {
      await source.close();
    }
    const untouched = snapshot();

    const embeddedBeforeCopy = providers.embedded();
    const copied = await cli(['store', 'copy', '--to', storeUrl, '--schema', SCHEMA, '--json'], { KBSYNC_DATA_DIR: dataDir });
    assert.equal(copied.code, 0, copied.stderr);
    const report = JSON.parse(copied.stdout);
    assert.equal(report.verified, true);
    assert.deepEqual(report.copied, sourceCounts);
    assert.equal(report.copied.accounts, 2);
    assert.equal(report.copied.api_keys, 1);
    assert.equal(report.copied.failures, 1);
    assert.ok(report.copied.runs >= 1);
    assert.ok(!`${copied.stdout}${copied.stderr}`.includes(PASSWORD), 'the password is never printed');
    assert.equal(snapshot(), untouched, 'the source store is left as it was');

    // A second copy into the same schema is refused: the target is not empty.
    const again = await cli(['store', 'copy', '--to', storeUrl, '--schema', SCHEMA], { KBSYNC_DATA_DIR: dataDir });
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /target store is not empty/);
    assert.ok(!again.stderr.includes(PASSWORD));

    // kbsync on the copy, from another data dir (nothing of the SQLite file is used). Same secret key.
    const secretKey = fs.readFileSync(`${dataDir}/secret.key`, 'utf8').trim();
    const target = await startTestApp({
      dataDir: tempDir('kbsync-copy-target-'),
      config: { storeUrl, storeSchema: SCHEMA, secretKey },
      providerFactory: providers.factory,
      sync: { retryBaseMs: 5, readAttempts: 3 },
    });
    try {
      assert.equal((await target.request('GET', '/health')).body.data.backend, 'postgres');
      const after = await answers(target);
      QUERIES.forEach(([mode, query], i) => {
        const want = before[i]!;
        const got = after[i]!;
        assert.equal(got.length, want.length, `${mode} "${query}"`);
        assert.equal(got[0]?.document_id, want[0]?.document_id, `${mode} "${query}": the same first result`);
        // The same relevance at each rank; a hit whose relevance no other hit shares is the same
        // document (hits of equal relevance may come in another order, or be other equals).
        assert.deepEqual(
          got.map((h) => h.relevance.toFixed(3)),
          want.map((h) => h.relevance.toFixed(3)),
          `${mode} "${query}": relevance by rank (${JSON.stringify(want)} vs ${JSON.stringify(got)})`,
        );
        want.forEach((h, rank) => {
          const tied = want.filter((o) => o.relevance.toFixed(3) === h.relevance.toFixed(3)).length > 1;
          if (!tied) assert.equal(got[rank]?.document_id, h.document_id, `${mode} "${query}" rank ${rank + 1}`);
        });
      });
      // Only the queries were embedded: one text per semantic or hybrid query, no document.
      const queryEmbeddings = QUERIES.filter(([mode]) => mode !== 'keyword').length;
      assert.equal(providers.embedded() - embeddedBeforeCopy, queryEmbeddings, 'no document embedded again');

      // The copied job is the same job, going on from its watermark; the database password decrypts.
      const job = (await target.request('GET', '/jobs/sync_orders')).body.data;
      assert.deepEqual(job.watermark, watermark);
      assert.equal((await target.request('GET', '/jobs/sync_orders/failures')).body.data.failures.length, 1);
      const embedded = providers.embedded();
      const next = await runNow(target, 'sync_orders');
      assert.equal(next.status, 'succeeded', JSON.stringify(next));
      assert.deepEqual(next.watermark_start, watermark);
      assert.equal(next.documents_added, 0);
      assert.equal(providers.embedded(), embedded, 'the next run embeds nothing');
      assert.equal((await target.request('GET', '/knowledge_bases/orders_kb')).body.data.document_count, ROWS);
      const acme = await target.app.services.store.getAccount('acme');
      assert.ok(acme !== null, 'the second account was copied');
      assert.equal((await target.app.services.store.listApiKeys(acme.id)).length, 1);
    } finally {
      await target.close();
    }
  });

  it('copies each knowledge base from its collection and carries the collection and rebuild record; refuses an active rebuild', async () => {
    // Set up through the ports: one knowledge base whose rebuild swapped (its collection is the
    // former shadow, and the retired collection under its id still holds old documents), one plain.
    const dir = tempDir('kbsync-copy-collections-');
    const db = openSqliteFile(`${dir}/kbsync.db`);
    const from: StorePair = { control: new SqliteControlStore(db), vectors: new SqliteVectorStore(db) };
    const target = (schema: string) =>
      openStores({ ...STORE_SETTINGS, dataDir: dir, storeUrl: database.url, storeSchema: schema });
    const opened: Array<{ close(): Promise<void> }> = [];
    try {
      const swapped = kbRecord('kb_swapped_1', 'swapped_kb', 'kb_shadow_1', {
        status: 'succeeded',
        collection: 'kb_shadow_1',
        embedding: { provider: 'openai', model: 'text-embedding-3-large', dimensions: 3, base_url: null },
        secret: 'v1:enc:bmV3',
        chunking: { chunk_size: 300, chunk_overlap: 30 },
        documentsDone: 2,
        documentsTotal: 2,
        cursor: 'b',
        startedAt: Date.UTC(2031, 0, 1),
        finishedAt: Date.UTC(2031, 0, 2),
        error: null,
        owner: null,
        leaseExpiresAt: null,
      });
      const plain = kbRecord('kb_plain_1', 'plain_kb', 'kb_plain_1', null);
      for (const kb of [swapped, plain]) assert.equal(await from.control.insertKnowledgeBase(kb), 'ok');
      await from.vectors.createCollection('kb_shadow_1', 3);
      await from.vectors.upsertDocuments('kb_shadow_1', [doc('a', [1, 0, 0]), doc('b', [0, 1, 0])]);
      await from.vectors.createCollection('kb_swapped_1', 2); // retired: not referenced, not copied
      await from.vectors.upsertDocuments('kb_swapped_1', [doc('old', [1, 1])]);
      await from.vectors.createCollection('kb_plain_1', 3);
      await from.vectors.upsertDocuments('kb_plain_1', [doc('p', [0, 0, 1])]);

      const to = await target('kbsync_copy_collections');
      opened.push(to);
      const pair: StorePair = { control: to.controlStore, vectors: to.vectorStore };
      const counts = await copyStore(from, pair);
      assert.equal(counts.knowledge_bases, 2);
      assert.equal(counts.documents, 3, 'the collections the knowledge bases use, not the retired one');
      assert.deepEqual(await pair.control.getKnowledgeBase('default', 'swapped_kb'), swapped, 'collection and rebuild carried');
      assert.deepEqual(await pair.control.getKnowledgeBase('default', 'plain_kb'), plain);
      const copied = await pair.vectors.exportDocuments('kb_shadow_1', { limit: 10, after: null });
      assert.deepEqual(copied, await from.vectors.exportDocuments('kb_shadow_1', { limit: 10, after: null }), 'vectors as stored');
      await assert.rejects(pair.vectors.counts('kb_swapped_1'), (err: { code?: string }) => err.code === 'NOT_FOUND');

      // A rebuild running in the source refuses the copy, before anything is written.
      assert.equal(await from.control.startRebuild('default', 'plain_kb', swapped.rebuild!), 'ok');
      const fresh = await target('kbsync_copy_refused');
      opened.push(fresh);
      await assert.rejects(
        copyStore(from, { control: fresh.controlStore, vectors: fresh.vectorStore }),
        (err: StoreCopyError) =>
          err instanceof StoreCopyError && /being rebuilt/.test(err.message) && err.details.some((d) => d.includes("'plain_kb'") && d.includes('running')),
      );
      assert.deepEqual(await fresh.controlStore.listKnowledgeBases('default'), [], 'nothing written');
    } finally {
      for (const o of opened) await o.close();
      db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a bad target URL with a usage error that names --to', async () => {
    const bad = await cli(['store', 'copy', '--to', 'mysql://root@127.0.0.1/x'], { KBSYNC_DATA_DIR: dataDir });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--to is not valid/);
    const nowhere = await cli(['store', 'copy', '--to', 'postgres://u@127.0.0.1:5432/x'], { KBSYNC_DATA_DIR: tempDir('kbsync-copy-none-') });
    assert.equal(nowhere.code, 2);
    assert.match(nowhere.stderr, /no embedded store at/);
  });
});
