/**
 * Delete reconciliation benchmark (SEMANTICS.md, "Deletes"): a PostgreSQL table of N rows (1M by
 * default) synced into a knowledge base, then
 *   - incremental runs with 100 new rows, alternately with `deletes: "off"` and `"reconcile"`,
 *     so the cost reconciliation adds to an incremental run is a ratio measured in one process;
 *   - runs after 0, 7, 10 and 1,000 scattered deletes: reconcile time, rounds, aggregates and keys
 *     read from the source, and the documents deleted;
 *   - next to a full key scan: every key read from the source and every document id from the
 *     knowledge base, compared in memory (what a naive read-only delete check costs).
 * The embedding provider is the hashing one (16-d), so the figures measure kbsync, not a model.
 *
 *   npx tsx bench/reconcile.ts                    1,000,000 PostgreSQL rows
 *   npx tsx bench/reconcile.ts 100000 sqlite      another size, another engine (postgres, mysql, sqlite)
 */
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { HashingEmbeddingProvider } from '../src/embeddings/hashing/provider.js';
import { tempDir } from '../test/helpers/app.js';
import { withTempMysqlDatabase, withTempPostgresDatabase, withTempSqliteDatabase } from '../test/helpers/databases.js';

const rows = Number(process.argv[2] ?? 1_000_000);
const engine = (process.argv[3] ?? 'postgres') as 'postgres' | 'mysql' | 'sqlite';
const ROUNDS = 5;

/** How each engine makes rows first..last of the events table, and reads every key. */
const ENGINES = {
  postgres: {
    create: withTempPostgresDatabase,
    table: 'CREATE TABLE events (id bigint PRIMARY KEY, title text NOT NULL, updated_at timestamptz NOT NULL)',
    fill: (first: number, last: number) =>
      `INSERT INTO events SELECT g, 'event ' || g, timestamptz '2025-01-01 00:00:00+00' + g * interval '1 millisecond' FROM generate_series(${first}, ${last}) g`,
    deleteEvery: (step: number, offset: number, n: number) =>
      `DELETE FROM events WHERE id IN (SELECT g * ${step} - ${offset} FROM generate_series(1, ${n}) g)`,
  },
  mysql: {
    create: withTempMysqlDatabase,
    table: 'CREATE TABLE events (id bigint PRIMARY KEY, title varchar(100) NOT NULL, updated_at datetime(3) NOT NULL)',
    // MariaDB's sequence engine (seq_1_to_N) makes the rows.
    fill: (first: number, last: number) =>
      `INSERT INTO events SELECT seq, CONCAT('event ', seq), TIMESTAMPADD(MICROSECOND, seq * 1000, '2025-01-01') FROM seq_${first}_to_${last}`,
    deleteEvery: (step: number, offset: number, n: number) => `DELETE FROM events WHERE id IN (SELECT CAST(seq AS SIGNED) * ${step} - ${offset} FROM seq_1_to_${n})`,
  },
  sqlite: {
    create: withTempSqliteDatabase,
    table: 'CREATE TABLE events (id INTEGER PRIMARY KEY, title TEXT NOT NULL, updated_at TEXT NOT NULL)',
    fill: (first: number, last: number) =>
      `INSERT INTO events WITH RECURSIVE g(n) AS (SELECT ${first} UNION ALL SELECT n + 1 FROM g WHERE n < ${last}) ` +
      `SELECT n, 'event ' || n, strftime('%Y-%m-%d %H:%M:%f', '2025-01-01', '+' || (n / 1000.0) || ' seconds') FROM g`,
    deleteEvery: (step: number, offset: number, n: number) =>
      `DELETE FROM events WHERE id IN (WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ${n}) SELECT n * ${step} - ${offset} FROM g)`,
  },
}[engine];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => Math.round(x);

const db = await ENGINES.create();
try {
  await db.exec(ENGINES.table);
  await db.exec(ENGINES.fill(1, rows));
  await db.exec('CREATE INDEX events_keyset ON events (updated_at, id)');
  await db.exec(engine === 'mysql' ? 'ANALYZE TABLE events' : 'ANALYZE events');
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
  await call('POST', '/databases', { name: 'src', engine, parameters: db.params });
  await call('POST', '/knowledge_bases', { kb_name: 'kb' });
  await call('POST', '/jobs', {
    job_name: 'bench',
    source_table: 'src.events',
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
    await db.exec(ENGINES.fill(next + 1, next + 100));
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
  const sourceKeys = new Set(((await db.exec('SELECT id FROM events')) as Array<{ id: unknown }>).map((r) => String(r.id)));
  const kbIds = await app.services.vectors.documentIdsInKeyBuckets(kbRecord!.id, [...'0123456789abcdef']);
  const goneByScan = kbIds.filter((id) => !sourceKeys.has(id)).length;
  const scanMs = performance.now() - scanStarted;

  const results: Array<Record<string, unknown>> = [];
  const countRows = async () => Number(((await db.exec('SELECT count(*) AS n FROM events')) as Array<{ n: unknown }>)[0]!.n);
  for (const deletes of [0, 7, 10, 1000]) {
    const before = await countRows();
    if (deletes > 0) {
      // Scattered over the whole key range.
      const step = Math.floor(rows / deletes);
      await db.exec(ENGINES.deleteEvery(step, (deletes % 97) % step, deletes));
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
    // Small tables may hit a key twice across the rounds: expect what was really deleted.
    const deleted = before - (await countRows());
    if (run.documents_deleted !== deleted) throw new Error(`expected ${deleted} deleted, got ${run.documents_deleted}`);
  }
  console.log(`\nDeletes found by reconciliation on ${rows} ${engine} rows (each run also reads what is new: nothing)`);
  console.table(results);
  console.log(`Full key scan for comparison: ${sourceKeys.size} source keys + ${kbIds.length} document ids read and compared in ${ms(scanMs)} ms (${goneByScan} gone)`);
  await app.close();
} finally {
  await db.close();
}
