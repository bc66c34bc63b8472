/**
 * Backfill throughput by store (issue 11): the same PostgreSQL source table synced into a knowledge
 * base on the embedded SQLite store and on the PostgreSQL store (KBSYNC_STORE_URL, pgvector), with
 * the same provider, through the real app and the real sync run (POST /jobs/{job}/run, then wait).
 * Passes alternate between the stores (S P P S …) so machine noise lands on both; each pass is a
 * fresh process with a fresh store (a new data dir, or a new PostgreSQL database dropped after).
 *
 * Two providers: the deterministic hashing provider (512 dimensions), so the store's write path is
 * what is measured; and the local model (provider 'local', the default), what users run, on fewer
 * rows. PostgreSQL serves the source and the store on the same machine as kbsync.
 *
 *   npx tsx bench/store-backfill.ts                                    100,000 rows hashing ×2 rounds, 4,000 rows local ×1
 *   npx tsx bench/store-backfill.ts --rows 50000 --rounds 3 --local-rows 0   other sizes (0: skip)
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { HashingEmbeddingProvider } from '../src/embeddings/hashing/provider.js';
import { tempDir } from '../test/helpers/app.js';
import { type TempDatabase, withTempPostgresDatabase } from '../test/helpers/databases.js';

type StoreKind = 'sqlite' | 'postgres';
type ProviderKind = 'hashing' | 'local';

interface PassResult {
  store: StoreKind;
  provider: ProviderKind;
  rows: number;
  seconds: number;
  rowsPerSecond: number;
  documents: number;
}

const BATCH = 1000;
const HASHING_DIMENSIONS = 512;

/** The source: `events` of `rows` rows (two text columns, keyset index), as bench/sync.ts. */
async function makeSource(rows: number): Promise<TempDatabase> {
  const db = await withTempPostgresDatabase();
  await db.exec(
    'CREATE TABLE events (id bigint PRIMARY KEY, title text NOT NULL, body text NOT NULL, updated_at timestamptz NOT NULL)',
  );
  await db.exec(
    `INSERT INTO events SELECT g, 'event ' || g, 'details ' || md5(g::text) || ' ' || md5((g * 7)::text), timestamptz '2025-01-01 00:00:00+00' + g * interval '1 millisecond' FROM generate_series(1, ${rows}) g`,
  );
  await db.exec('CREATE INDEX events_keyset ON events (updated_at, id); ANALYZE events');
  // A small table a warm-up job reads first, so the local model's workers are loaded before the clock starts.
  await db.exec(
    'CREATE TABLE warm AS SELECT * FROM events WHERE id <= 200; ALTER TABLE warm ADD PRIMARY KEY (id)',
  );
  return db;
}

/** One pass in this process: a fresh store, one job over the first `rows` rows of the source, one backfill. */
async function pass(
  store: StoreKind,
  provider: ProviderKind,
  rows: number,
  sourceUrl: string,
): Promise<PassResult> {
  const dataDir = tempDir('kbsync-bench-store-');
  const storeDb = store === 'postgres' ? await withTempPostgresDatabase() : null;
  try {
    const env: Record<string, string> = { LOG_LEVEL: 'silent', KBSYNC_DATA_DIR: dataDir };
    if (storeDb) env.KBSYNC_STORE_URL = storeDb.url;
    const config = loadConfig(env as NodeJS.ProcessEnv, { dataDir, scheduler: false });
    const hashing = new HashingEmbeddingProvider({ dimensions: HASHING_DIMENSIONS });
    // 'local': the app's own provider factory, as `kbsync serve` has it.
    const app = await createApp(config, provider === 'hashing' ? { providerFactory: () => hashing } : {});
    try {
      const call = async (method: 'GET' | 'POST', url: string, payload?: object) => {
        const res = await app.server.inject({ method, url, ...(payload ? { payload } : {}) });
        if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.body}`);
        return res.json().data;
      };
      const health = await call('GET', '/health');
      if (health.backend !== store)
        throw new Error(`expected the ${store} store, the app runs on ${health.backend}`);
      await call('POST', '/databases', { name: 'pg', engine: 'postgres', parameters: { url: sourceUrl } });
      const job = (name: string, table: string, kb: string) => ({
        job_name: name,
        source_table: `pg.${table}`,
        kb_name: kb,
        content_columns: ['title', 'body'],
        filter_column: 'updated_at',
        interval: 'DAILY',
        start_time: '2099-01-01T00:00:00',
        end_time: '2099-01-02T00:00:00',
        batch_size: BATCH,
      });
      const embedding = provider === 'local' ? { embedding: { provider: 'local' } } : {};
      await call('POST', '/knowledge_bases', { kb_name: 'kb', ...embedding });
      await call('POST', '/jobs', job('bench', 'events', 'kb'));
      if (provider === 'local') {
        // Warm-up: 200 rows into another knowledge base load every worker of the model's pool.
        await call('POST', '/knowledge_bases', { kb_name: 'warm', ...embedding });
        await call('POST', '/jobs', job('warm', 'warm', 'warm'));
        await call('POST', '/jobs/warm/run');
        await app.services.scheduler.whenIdle();
      }
      const started = performance.now();
      const { run_id } = await call('POST', '/jobs/bench/run');
      await app.services.scheduler.whenIdle();
      const seconds = (performance.now() - started) / 1000;
      const run = await call('GET', `/jobs/bench/runs/${run_id}`);
      if (run.status !== 'succeeded' || run.rows_read !== rows)
        throw new Error(`run ${run.status}: ${JSON.stringify(run)}`);
      const kb = await call('GET', '/knowledge_bases/kb');
      if (kb.document_count !== rows) throw new Error(`${kb.document_count} documents for ${rows} rows`);
      return {
        store,
        provider,
        rows,
        seconds: Math.round(seconds * 100) / 100,
        rowsPerSecond: Math.round(rows / seconds),
        documents: kb.document_count,
      };
    } finally {
      await app.close();
    }
  } finally {
    await storeDb?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

function runPass(store: StoreKind, provider: ProviderKind, rows: number, sourceUrl: string): PassResult {
  const out = spawnSync(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', store, provider, String(rows), sourceUrl],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 20 * 60_000 },
  );
  const line = out.stdout.trim().split('\n').at(-1) ?? '';
  if (out.status !== 0 || !line.startsWith('{'))
    throw new Error(`pass ${store}/${provider}/${rows} failed (${out.status}): ${out.stdout}`);
  const result = JSON.parse(line) as PassResult;
  console.log(`  ${provider} ${rows} rows → ${store}: ${result.seconds} s, ${result.rowsPerSecond} rows/s`);
  return result;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** `rounds` rounds of both stores, the order reversed every other round; one source table of `rows` rows. */
async function compare(provider: ProviderKind, rows: number, rounds: number): Promise<void> {
  const source = await makeSource(rows);
  const results: PassResult[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      const order: StoreKind[] = r % 2 === 0 ? ['sqlite', 'postgres'] : ['postgres', 'sqlite'];
      for (const store of order) results.push(runPass(store, provider, rows, source.url));
    }
  } finally {
    await source.close();
  }
  const of = (store: StoreKind) => results.filter((r) => r.store === store).map((r) => r.rowsPerSecond);
  const sqlite = of('sqlite');
  const postgres = of('postgres');
  const load = os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
  console.log(
    `\n${rows} rows, provider ${provider}${provider === 'hashing' ? ` (${HASHING_DIMENSIONS}-d)` : ''}, batch ${BATCH}, ${rounds} round(s); load average now ${load}`,
  );
  console.table([
    { store: 'SQLite (embedded)', 'rows/s per pass': sqlite.join(', '), 'median rows/s': median(sqlite) },
    {
      store: 'PostgreSQL (KBSYNC_STORE_URL)',
      'rows/s per pass': postgres.join(', '),
      'median rows/s': median(postgres),
    },
  ]);
  const perRound = Array.from({ length: rounds }, (_, r) => (postgres[r]! / sqlite[r]!).toFixed(2));
  console.log(
    `PostgreSQL ÷ SQLite: ${(median(postgres) / median(sqlite)).toFixed(2)} (medians); per round ${perRound.join(', ')}`,
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    console.log(
      JSON.stringify(await pass(args[1] as StoreKind, args[2] as ProviderKind, Number(args[3]), args[4]!)),
    );
  } else {
    const o = { rows: 100_000, rounds: 2, localRows: 4_000, localRounds: 1 };
    for (let i = 0; i < args.length; i++) {
      const next = () => Number(args[++i]);
      if (args[i] === '--rows') o.rows = next();
      else if (args[i] === '--rounds') o.rounds = next();
      else if (args[i] === '--local-rows') o.localRows = next();
      else if (args[i] === '--local-rounds') o.localRounds = next();
      else throw new Error(`unknown argument ${args[i]}`);
    }
    console.log(
      `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, load average ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}`,
    );
    if (o.rows > 0) await compare('hashing', o.rows, o.rounds);
    if (o.localRows > 0) await compare('local', o.localRows, o.localRounds);
  }
}
