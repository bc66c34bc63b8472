/**
 * `npm run bench`: every benchmark, each in its own process (so one's memory and warm caches do
 * not colour the next), printing its own tables. Record results in docs/benchmarks.md with the
 * machine, the command and the date; compare ratios measured within one run.
 *
 *   npm run bench                     all
 *   npm run bench -- sync quality     some (names below)
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';

const BENCHES: Record<string, { file: string; about: string; args?: string[] }> = {
  quality: { file: 'bench/search-quality.ts', about: 'search quality: recall@1/@5 per mode on the labelled retrieval set' },
  embeddings: { file: 'bench/embeddings.ts', about: 'local embedding throughput: 1 worker thread vs the pool; warm-up and first-call latency' },
  chunking: { file: 'bench/chunking.ts', about: 'splitText on 1/2/5/10 MB of three text shapes: MB/s and the CPU-time ratio to 1 MB (linear time)' },
  pgvector: { file: 'bench/pgvector.ts', about: 'PostgreSQL vector store: HNSW p50/p95 and recall@10 vs exact at 100k and 1M chunks, filters, writes' },
  'vector-store': { file: 'bench/vector-store.ts', about: 'vector/keyword query latency p50/p95 at 10k and 100k chunks' },
  'vector-index': {
    file: 'bench/vector-index.ts',
    about: 'vector index vs exact scan: p50/p95 and recall@10 at 10k/100k/1M chunks of real local-model embeddings (first run embeds 100k texts, ~10 min, cached in bench/.cache)',
  },
  admission: { file: 'bench/admission.ts', about: '200 clients of hybrid queries for 20 s against kbsync serve: 200s/429s, answer and /health latency' },
  sync: { file: 'bench/sync.ts', about: 'sync backfill rows/s and peak RSS, 100k and 1M PostgreSQL rows' },
  'query-lane': { file: 'bench/query-lane.ts', about: 'semantic query p50/p95 idle vs during a 4,000-row local-model backfill (batch 500, 2,000), backfill rows/s with vs without the query lane, pause-to-stop' },
  reconcile: { file: 'bench/reconcile.ts', about: 'delete reconciliation on 1M PostgreSQL rows: cost per incremental run, 0/7/10/1,000 deletes, vs a full key scan' },
  'reconcile-mysql': { file: 'bench/reconcile.ts', args: ['1000000', 'mysql'], about: 'the same on 1M MariaDB rows' },
  'reconcile-sqlite': { file: 'bench/reconcile.ts', args: ['1000000', 'sqlite'], about: 'the same on 1M SQLite rows' },
  dashboard: {
    file: 'bench/dashboard.ts',
    about: 'dashboard in headless Chromium: the jobs page with 100 jobs, first visit and reload (time to rows drawn, bytes, requests); a poll',
  },
  scheduler: {
    file: 'bench/scheduler.ts',
    about: 'scheduler: the cost of a run with nothing new, then 10,000 one-minute jobs on small PostgreSQL tables for 3 ticks (runs executed / due, lateness p50/p99/max, idle CPU)',
  },
  'scheduler-fleet': {
    file: 'bench/scheduler.ts',
    args: ['--no-serial', '--spread', '--processes', '1,3'],
    about: 'the same 10,000 jobs (start times spread) on the PostgreSQL store, 1 then 3 scheduling processes: executed / due, lateness, runs per process, wasted checks',
  },
  'store-backfill': {
    file: 'bench/store-backfill.ts',
    about: 'backfill rows/s into the PostgreSQL store vs the SQLite store, same source and provider (hashing 512-d, 100k rows; local model, 4,000 rows), passes alternating',
  },
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !(w in BENCHES));
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; choose from ${Object.keys(BENCHES).join(', ')}`);
  process.exit(2);
}
const names = wanted.length > 0 ? wanted : Object.keys(BENCHES);

console.log(`kbsync benchmarks — ${new Date().toISOString()}`);
console.log(`${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`);
let failed = 0;
for (const name of names) {
  const { file, about, args = [] } = BENCHES[name]!;
  console.log(`\n=== ${name}: ${about}`);
  const started = performance.now();
  const result = spawnSync(process.execPath, ['--import', 'tsx', file, ...args], { stdio: 'inherit' });
  console.log(`(${name}: ${((performance.now() - started) / 1000).toFixed(1)} s, exit ${result.status})`);
  if (result.status !== 0) failed++;
}
process.exit(failed > 0 ? 1 : 0);
