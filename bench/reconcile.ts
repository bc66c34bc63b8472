/**
 * Delete reconciliation benchmark (SEMANTICS.md, "Deletes"): a PostgreSQL table of N rows (1M by
 * default) synced into a knowledge base, then
 *   - incremental runs with 100 new rows, alternately with `deletes: "off"` and `"reconcile"`,
 *     so the cost reconciliation adds to an incremental run is a ratio measured in one process;
 *   - runs after 0, 10 and 1,000 scattered deletes: reconcile time, rounds, aggregates and keys
 *     read from the source, and the documents deleted;
 *   - next to a full key scan: every key read from the source and every document id from the
 *     knowledge base, compared in memory (what a naive read-only delete check costs).
 * The embedding provider is the hashing one (16-d), so the figures measure kbsync, not a model.
 *
 *   npx tsx bench/reconcile.ts            1,000,000 rows
 *   npx tsx bench/reconcile.ts 100000     another size
 */
import pg from 'pg';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { HashingEmbeddingProvider } from '../src/embeddings/hashing/provider.js';
import { tempDir } from '../test/helpers/app.js';
import { withTempPostgresDatabase } from '../test/helpers/databases.js';

const rows = Number(process.argv[2] ?? 1_000_000);
const ROUNDS = 5;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => Math.round(x);

const db = await withTempPostgresDatabase();
try {
  await db.exec('CREATE TABLE events (id bigint PRIMARY KEY, title text NOT NULL, updated_at timestamptz NOT NULL)');
  await db.exec(
    `INSERT INTO events SELECT g, 'event ' || g, timestamptz '2025-01-01 00:00:00+00' + g * interval '1 millisecond' FROM generate_series(1, ${rows}) g`,
  );
  await db.exec('CREATE INDEX events_keyset ON events (updated_at, id)');
  await db.exec('ANALYZE events');
  const provider = new HashingEmbeddingProvider({ dimensions: 16 });
  const config = loadConfig({ LOG_LEVEL: 'silent' } as NodeJS.ProcessEnv, { dataDir: tempDir('kbsync-bench-'), scheduler: false });
  const app = await createApp(config, { providerFactory: () => provider });
  const call = async (method: 'GET' | 'POST' | 'PATCH', url: string, payload?: object) => {
    const res = await app.server.inject({ method, url, ...(payload ? { payload } : {}) });
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.body}`);
    return res.json().data;
  };
  const runNow = async () => {
    const { run_id } = await call('POST', '/jobs/bench/run');
    await app.services.scheduler.whenIdle();
    const run = await call('GET', `/jobs/bench/runs/${run_id}`);
    if (run.status !== 'succeeded') throw new Error(`run ${run.status}: ${JSON.stringify(run.error)}`);
    return run;
  };
  await call('POST', '/databases', { name: 'pg', engine: 'postgres', parameters: { url: db.url } });
  await call('POST', '/knowledge_bases', { kb_name: 'kb' });
  await call('POST', '/jobs', {
    job_name: 'bench',
    source_table: 'pg.events',
    kb_name: 'kb',
    content_columns: ['title'],
    filter_column: 'updated_at',
    interval: 'DAILY',
    start_time: '2099-01-01T00:00:00',
    end_time: '2099-01-02T00:00:00',
    batch_size: 2000,
    lookback: 0,
  });
  const t0 = performance.now();
  const backfill = await runNow();
  console.log(`backfill of ${rows} rows: ${((performance.now() - t0) / 1000).toFixed(1)} s (${backfill.documents_added} documents)`);

  // Incremental runs with 100 new rows, alternating the deletes mode.
  let next = rows;
  const insert100 = async () => {
    await db.exec(
      `INSERT INTO events SELECT g, 'event ' || g, timestamptz '2025-01-01 00:00:00+00' + g * interval '1 millisecond' FROM generate_series(${next + 1}, ${next + 100}) g`,
    );
    next += 100;
  };
  const timed = { off: [] as number[], reconcile: [] as number[], reconcileOnly: [] as number[] };
  let noDeleteStats: { rounds: number; source_aggregates: number; source_keys: number } | null = null;
  for (let i = 0; i < ROUNDS; i++) {
    for (const mode of ['off', 'reconcile'] as const) {
      await call('PATCH', '/jobs/bench', { deletes: mode });
      await insert100();
      const run = await runNow();
      if (run.documents_added !== 100) throw new Error(`expected 100 new documents, got ${run.documents_added}`);
      timed[mode].push(run.duration_ms);
      if (mode === 'reconcile') {
        timed.reconcileOnly.push(run.reconcile.duration_ms);
        noDeleteStats = run.reconcile;
      }
    }
  }
  const off = median(timed.off);
  const on = median(timed.reconcile);
  console.log('\nIncremental run with 100 new rows (median of 5 each, alternating)');
  console.table([
    { deletes: 'off', 'run ms': off },
    {
      deletes: 'reconcile',
      'run ms': on,
      'reconcile ms': median(timed.reconcileOnly),
      'added %': Math.round(((on - off) / off) * 1000) / 10,
      rounds: noDeleteStats?.rounds,
      'source aggregates': noDeleteStats?.source_aggregates,
      'source keys': noDeleteStats?.source_keys,
    },
  ]);

  // Full key scan, for comparison: every key from the source, every id from the KB, compared.
  const kbRecord = await app.services.store.getKnowledgeBase('default', 'kb');
  const scanStarted = performance.now();
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  const sourceKeys = new Set(((await client.query({ text: 'SELECT id::text FROM events', rowMode: 'array' })).rows as string[][]).map((r) => r[0]!));
  await client.end();
  const kbIds = await app.services.vectors.documentIdsInKeyBuckets(kbRecord!.id, [...'0123456789abcdef']);
  const goneByScan = kbIds.filter((id) => !sourceKeys.has(id)).length;
  const scanMs = performance.now() - scanStarted;

  const results: Array<Record<string, unknown>> = [];
  for (const deletes of [0, 10, 1000]) {
    if (deletes > 0) {
      // Scattered over the whole key range.
      const step = Math.floor(rows / deletes);
      await db.exec(`DELETE FROM events WHERE id IN (SELECT g * ${step} - ${deletes % 97} FROM generate_series(1, ${deletes}) g)`);
    }
    const started = performance.now();
    const run = await runNow();
    results.push({
      deletes,
      'run ms': ms(performance.now() - started),
      'reconcile ms': run.reconcile.duration_ms,
      rounds: run.reconcile.rounds,
      'source aggregates': run.reconcile.source_aggregates,
      'source keys': run.reconcile.source_keys,
      'documents deleted': run.documents_deleted,
    });
    if (run.documents_deleted !== deletes) throw new Error(`expected ${deletes} deleted, got ${run.documents_deleted}`);
  }
  console.log(`\nDeletes found by reconciliation on ${rows} rows (each run also reads what is new: nothing)`);
  console.table(results);
  console.log(`Full key scan for comparison: ${sourceKeys.size} source keys + ${kbIds.length} document ids read and compared in ${ms(scanMs)} ms (${goneByScan} gone)`);
  await app.close();
} finally {
  await db.close();
}
