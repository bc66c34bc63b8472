/**
 * Sync backfill benchmark: a PostgreSQL table of N rows synced into a knowledge base through the
 * real sync run (keyset batches, documents, embeddings, SQLite vector + keyword store,
 * checkpoints). Each size runs in its own child process so its peak RSS is its own; equal peaks
 * at 100k and 1M rows show memory is bounded by the batch, not the table.
 *
 * The embedding provider is the deterministic hashing provider (256 dimensions), so the figure
 * measures kbsync, not a model: with the local model, embedding dominates (see embeddings bench).
 *
 *   npx tsx bench/sync.ts                  100k and 1M rows
 *   npx tsx bench/sync.ts 50000            other sizes
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { HashingEmbeddingProvider } from '../src/embeddings/hashing/provider.js';
import { tempDir } from '../test/helpers/app.js';
import { withTempPostgresDatabase } from '../test/helpers/databases.js';

export interface SyncBenchRow {
  rows: number;
  batchSize: number;
  seconds: number;
  rowsPerSecond: number;
  peakRssMb: number;
  rssBeforeMb: number;
  documents: number;
}

const BATCH = 1000;

async function child(rows: number): Promise<SyncBenchRow> {
  const db = await withTempPostgresDatabase();
  try {
    await db.exec(`CREATE TABLE events (id bigint PRIMARY KEY, title text NOT NULL, body text NOT NULL, updated_at timestamptz NOT NULL)`);
    await db.exec(
      `INSERT INTO events SELECT g, 'event ' || g, 'details ' || md5(g::text) || ' ' || md5((g * 7)::text), timestamptz '2025-01-01 00:00:00+00' + g * interval '1 millisecond' FROM generate_series(1, ${rows}) g`,
    );
    await db.exec('CREATE INDEX events_keyset ON events (updated_at, id)');
    const provider = new HashingEmbeddingProvider({ dimensions: 256 });
    const config = loadConfig({ LOG_LEVEL: 'silent' } as NodeJS.ProcessEnv, { dataDir: tempDir('kbsync-bench-'), scheduler: false });
    const app = await createApp(config, { providerFactory: () => provider });
    const call = async (method: 'GET' | 'POST', url: string, payload?: object) => {
      const res = await app.server.inject({ method, url, ...(payload ? { payload } : {}) });
      if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.body}`);
      return res.json().data;
    };
    await call('POST', '/databases', { name: 'pg', engine: 'postgres', parameters: { url: db.url } });
    await call('POST', '/knowledge_bases', { kb_name: 'kb' });
    await call('POST', '/jobs', {
      job_name: 'bench',
      source_table: 'pg.events',
      kb_name: 'kb',
      content_columns: ['title', 'body'],
      filter_column: 'updated_at',
      interval: 'DAILY',
      start_time: '2099-01-01T00:00:00',
      end_time: '2099-01-02T00:00:00',
      batch_size: BATCH,
    });
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    const started = performance.now();
    const { run_id } = await call('POST', '/jobs/bench/run');
    await app.services.scheduler.whenIdle();
    const seconds = (performance.now() - started) / 1000;
    const run = await call('GET', `/jobs/bench/runs/${run_id}`);
    if (run.status !== 'succeeded' || run.rows_read !== rows) throw new Error(`run ${run.status}: ${JSON.stringify(run)}`);
    const kb = await call('GET', '/knowledge_bases/kb');
    await app.close();
    return {
      rows,
      batchSize: BATCH,
      seconds: Math.round(seconds * 10) / 10,
      rowsPerSecond: Math.round(rows / seconds),
      peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
      rssBeforeMb: Math.round(rssBefore / 1024 / 1024),
      documents: kb.document_count,
    };
  } finally {
    await db.close();
  }
}

/** Runs each size in a fresh process (clean peak RSS) and returns the rows. */
export async function benchSync(sizes: number[] = [100_000, 1_000_000]): Promise<SyncBenchRow[]> {
  const results: SyncBenchRow[] = [];
  for (const rows of sizes) {
    const out = spawnSync(process.execPath, ['--import', 'tsx', '--expose-gc', fileURLToPath(import.meta.url), '--child', String(rows)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: 30 * 60_000,
    });
    const line = out.stdout.trim().split('\n').at(-1) ?? '';
    if (out.status !== 0 || !line.startsWith('{')) throw new Error(`sync bench child for ${rows} rows failed (${out.status}): ${out.stdout}`);
    results.push(JSON.parse(line) as SyncBenchRow);
  }
  return results;
}

export function printSync(rows: SyncBenchRow[]): void {
  console.log('\nSync backfill, PostgreSQL source → SQLite knowledge base (hashing provider, 256-d)');
  console.table(rows.map((r) => ({ rows: r.rows, batch: r.batchSize, seconds: r.seconds, 'rows/s': r.rowsPerSecond, 'peak RSS MB': r.peakRssMb, 'RSS before MB': r.rssBeforeMb, documents: r.documents })));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    console.log(JSON.stringify(await child(Number(args[1]))));
  } else {
    printSync(await benchSync(args.length > 0 ? args.map(Number) : undefined));
  }
}
