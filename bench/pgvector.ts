/**
 * The PostgreSQL vector store (pgvector HNSW, cosine): query latency p50/p95 and recall@10 against
 * the exact answer, at 100k and 1M chunks of 512 dimensions, through the store's own searchVector
 * (plan, transaction, SET LOCAL, rescoring: what a query pays below the HTTP layer).
 *
 *   npx tsx bench/pgvector.ts                          100k and 1M
 *   npx tsx bench/pgvector.ts 100000 --queries 100     some sizes, fewer queries
 *   npx tsx bench/pgvector.ts --ef 40,100,200,400      the ef_search values compared
 *   npx tsx bench/pgvector.ts --synthetic              clustered synthetic vectors, not the corpus
 *
 * Vectors: the real local-model (USE-lite) embeddings of bench/vector-index-corpus.ts when its
 * cache (bench/.cache/corpus-v*-N.f32, the largest N found) exists; beyond N chunks each real
 * vector is re-used with Gaussian noise (sigma 0.018 per component, renormalised), as
 * bench/vector-index.ts does, so the two backends are measured on the same kind of vectors. Without the cache (or with --synthetic):
 * clustered synthetic unit vectors (2,000 centres, each point a centre plus noise), said so in
 * the output. Queries are held out (never inserted).
 *
 * Per size: a fresh database; documents loaded through upsertDocuments with the HNSW index
 * dropped, then the index built once (maintenance_work_mem 4 GB), as ARCHITECTURE.md advises for a
 * bulk load; then, per ef_search, a warm-up pass and a timed pass over the queries; filtered
 * searches; and writes with the index in place. Set KBSYNC_BENCH_PG_URL to use another server.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { openPostgres, type PostgresDatabase } from '../src/store/postgres/open.js';
import { openPostgresVectorStore, PostgresVectorStore } from '../src/store/postgres/vector-store.js';
import { collectionTables, HNSW_EF_CONSTRUCTION, HNSW_M, vectorIndexSql } from '../src/store/postgres/vector-schema.js';
import type { DocumentInput, MetadataFilter, SearchHit } from '../src/store/vector-port.js';
import {
  CACHE_DIR,
  CORPUS_VERSION,
  cachedEmbeddings,
  generateTexts,
  heldOutQueries,
} from './vector-index-corpus.js';

const DIMS = 512;
const REAL = 100_000;
const NOISE = 0.018;
const BATCH = 1000;
const SCHEMA = 'kbsync_bench';

interface Args {
  sizes: number[];
  queries: number;
  efs: number[];
  synthetic: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { sizes: [], queries: 200, efs: [40, 100, 200, 400], synthetic: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--queries') args.queries = Number(argv[++i]);
    else if (a === '--ef') args.efs = argv[++i]!.split(',').map(Number);
    else if (a === '--synthetic') args.synthetic = true;
    else args.sizes.push(Number(a));
  }
  if (args.sizes.length === 0) args.sizes = [100_000, 1_000_000];
  return args;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

function normalise(v: Float32Array): Float32Array {
  let norm = 0;
  for (const x of v) norm += x * x;
  norm = Math.sqrt(norm);
  for (let d = 0; d < v.length; d++) v[d] = v[d]! / norm;
  return v;
}

/** `base` plus Gaussian noise of `sigma` per component, renormalised; seeded, so the same every run. */
function noisy(base: Float32Array, sigma: number, seed: number): Float32Array {
  const random = mulberry32(seed);
  const v = new Float32Array(base.length);
  for (let d = 0; d < v.length; d++) v[d] = base[d]! + sigma * gaussian(random);
  return normalise(v);
}

interface Vectors {
  kind: string;
  /** Chunk i's vector and text. */
  at(i: number): { vector: Float32Array; text: string };
  queries: Float32Array[];
}

/** The largest cached corpus (bench/vector-index-corpus.ts), read as it is: never embeds here. */
function cachedCorpus(): { count: number; file: string } | null {
  const pattern = new RegExp(`^corpus-v${CORPUS_VERSION}-(\\d+)\\.f32$`);
  const found = (fs.existsSync(CACHE_DIR) ? fs.readdirSync(CACHE_DIR) : [])
    .map((f) => ({ file: path.join(CACHE_DIR, f), count: Number(pattern.exec(f)?.[1] ?? 0) }))
    .filter((c) => c.count > 0 && fs.statSync(c.file).size === c.count * DIMS * 4)
    .sort((a, b) => b.count - a.count);
  return found[0] ?? null;
}

async function realVectors(corpus: { count: number; file: string }, queries: number): Promise<Vectors> {
  // The corpus generator's first `count` texts are the cached vectors' (a partial cache holds a
  // prefix of the 100k run); the held-out queries are drawn against all 100k, as the cache's were.
  const all = generateTexts(REAL).map((t) => t.text);
  const queryVectors = await cachedEmbeddings('queries', heldOutQueries(1000, new Set(all)));
  const buf = fs.readFileSync(corpus.file);
  const flat = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const real = Array.from({ length: corpus.count }, (_, i) => flat.subarray(i * DIMS, (i + 1) * DIMS));
  const n = corpus.count;
  return {
    kind: `real local-model embeddings of ${n} corpus texts (bench/vector-index-corpus.ts); beyond ${n}, noisy copies of them (sigma ${NOISE})`,
    at: (i) => ({ vector: i < n ? real[i]! : noisy(real[i % n]!, NOISE, i), text: all[i % n]! }),
    queries: queryVectors.slice(0, queries),
  };
}

/** 2,000 random unit centres; a point is a centre plus noise of sigma 0.03 per component. */
function syntheticVectors(queries: number): Vectors {
  const centres = Array.from({ length: 2000 }, (_, c) => noisy(new Float32Array(DIMS), 1, 1_000_000 + c));
  const point = (seed: number) => noisy(centres[seed % centres.length]!, 0.03, seed);
  return {
    kind: 'clustered synthetic unit vectors (2,000 centres, noise sigma 0.03)',
    at: (i) => ({ vector: point(i), text: `synthetic chunk ${i}` }),
    queries: Array.from({ length: queries }, (_, q) => point(50_000_000 + q * 7919)),
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

function timing(ms: number[]): { p50: number; p95: number } {
  const sorted = [...ms].sort((a, b) => a - b);
  return { p50: round(percentile(sorted, 50)), p95: round(percentile(sorted, 95)) };
}

function recall(found: SearchHit[][], exact: SearchHit[][], k: number): number {
  let hit = 0;
  let total = 0;
  found.forEach((hits, i) => {
    const truth = new Set(exact[i]!.slice(0, k).map((h) => h.chunkId));
    hit += hits.slice(0, k).filter((h) => truth.has(h.chunkId)).length;
    total += Math.min(k, truth.size);
  });
  return total === 0 ? 1 : round(hit / total, 3);
}

/** Each query once unmeasured (caches, plans), then once timed. */
async function timed(
  n: number,
  run: (i: number) => Promise<SearchHit[]>,
): Promise<{ ms: number[]; results: SearchHit[][] }> {
  for (let i = 0; i < n; i++) await run(i);
  const ms: number[] = [];
  const results: SearchHit[][] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    results.push(await run(i));
    ms.push(performance.now() - t);
  }
  return { ms, results };
}

export interface Row {
  chunks: number;
  case: string;
  efSearch: number | null;
  p50: number;
  p95: number;
  recallAt10: number | null;
  plan: string;
}

async function admin<T>(sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: serverUrl() });
  await client.connect();
  try {
    return (await client.query(sql)).rows as T[];
  } finally {
    await client.end();
  }
}

function serverUrl(): string {
  return process.env.KBSYNC_BENCH_PG_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
}

async function benchSize(size: number, vectors: Vectors, args: Args, log: (line: string) => void) {
  const name = `kbsync_bench_${process.pid}_${size}`;
  await admin(`CREATE DATABASE ${name}`);
  const u = new URL(serverUrl());
  u.pathname = `/${name}`;
  const url = u.toString();
  const rows: Row[] = [];
  const facts: Record<string, number | string> = { chunks: size };
  let db: PostgresDatabase | null = null;
  try {
    // No index while loading (the build below is timed on its own), none built behind its back.
    const loader = await openPostgresVectorStore(url, SCHEMA, { max: 2, indexMinChunks: Number.POSITIVE_INFINITY });
    await loader.createCollection('bench', DIMS);
    db = openPostgres(url, SCHEMA, { max: 2 });
    const [{ id }] = (await db.pool.query("SELECT id FROM kb_collections WHERE kb_id = 'bench'")).rows as [
      { id: string },
    ];
    const t = collectionTables(Number(id));
    await db.pool.query(`DROP INDEX IF EXISTS ${t.chunks}_hnsw`);
    const doc = (i: number): DocumentInput => {
      const { vector, text } = vectors.at(i);
      return {
        id: `doc-${String(i).padStart(8, '0')}`,
        content: text,
        contentHash: `h${i}`,
        // `bucket < 10` admits 10%, `bucket = 7` 1%, `shard = 42` 0.01%.
        metadata: { bucket: i % 100, shard: i % 10_000 },
        chunks: [{ index: 0, text, embedding: vector }],
      };
    };
    let started = performance.now();
    for (let i = 0; i < size; i += BATCH) {
      await loader.upsertDocuments(
        'bench',
        Array.from({ length: Math.min(BATCH, size - i) }, (_, j) => doc(i + j)),
      );
      if ((i / BATCH) % 100 === 0 && i > 0)
        log(`  loaded ${i} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
    }
    facts['load docs/s (no HNSW)'] = Math.round(size / ((performance.now() - started) / 1000));
    await db.pool.query(`VACUUM ANALYZE ${t.chunks}`);
    started = performance.now();
    const build = await db.pool.connect();
    try {
      await build.query("SET maintenance_work_mem = '4GB'");
      await build.query('SET max_parallel_maintenance_workers = 1');
      for (const sql of vectorIndexSql(Number(id), DIMS, false) ?? []) await build.query(sql);
    } finally {
      build.release();
    }
    facts['HNSW build s'] = round((performance.now() - started) / 1000, 1);
    const [sizes] = (
      await db.pool.query(
        `SELECT pg_relation_size('${t.chunks}_hnsw') AS hnsw, pg_total_relation_size('${t.chunks}') AS total`,
      )
    ).rows as [{ hnsw: string; total: string }];
    facts['HNSW MB'] = Math.round(Number(sizes.hnsw) / 2 ** 20);
    facts['chunks table + indexes MB'] = Math.round(Number(sizes.total) / 2 ** 20);
    log(`  loaded and indexed: ${JSON.stringify(facts)}`);
    await loader.close();

    const queries = vectors.queries;
    const exactStore = new PostgresVectorStore(db, { indexMinChunks: Number.POSITIVE_INFINITY });
    const exact = await timed(Math.min(queries.length, size >= 1_000_000 ? 50 : queries.length), (i) =>
      exactStore.searchVector('bench', queries[i]!, { topK: 10 }),
    );
    rows.push({
      chunks: size,
      case: 'exact scan',
      efSearch: null,
      ...timing(exact.ms),
      recallAt10: 1,
      plan: 'exact',
    });
    log(`  exact: ${JSON.stringify(timing(exact.ms))}`);
    // Ground truth for every query (the exact pass above may have used fewer, to save time).
    const truth: SearchHit[][] = [...exact.results];
    for (let i = truth.length; i < queries.length; i++)
      truth.push(await exactStore.searchVector('bench', queries[i]!, { topK: 10 }));

    for (const ef of args.efs) {
      const store = new PostgresVectorStore(db, { indexMinChunks: 0, efSearch: ef });
      const r = await timed(queries.length, (i) => store.searchVector('bench', queries[i]!, { topK: 10 }));
      rows.push({
        chunks: size,
        case: 'HNSW top 10',
        efSearch: ef,
        ...timing(r.ms),
        recallAt10: recall(r.results, truth, 10),
        plan: 'index',
      });
      log(`  ef ${ef}: ${JSON.stringify(rows.at(-1))}`);
    }

    const store = new PostgresVectorStore(db, { indexMinChunks: 0 });
    const filtered: Array<[string, MetadataFilter]> = [
      ['top 10, filter admitting 10% (range: bucket < 10)', { bucket: { lt: 10 } }],
      ['top 10, filter admitting 1% (equality: bucket = 7)', { bucket: 7 }],
      ['top 10, filter admitting 1% (range: shard < 100)', { shard: { lt: 100 } }],
      ['top 10, filter admitting 0.01% (equality: shard = 42)', { shard: 42 }],
    ];
    for (const [label, filter] of filtered) {
      const n = Math.min(queries.length, 50);
      const before = { ...store.planCounts };
      const r = await timed(n, (i) => store.searchVector('bench', queries[i]!, { topK: 10, filter }));
      const truthFiltered: SearchHit[][] = [];
      for (let i = 0; i < n; i++)
        truthFiltered.push(await exactStore.searchVector('bench', queries[i]!, { topK: 10, filter }));
      const plans = Object.entries(store.planCounts)
        .map(([p, c]) => [p, c - before[p as keyof typeof before]] as const)
        .filter(([, c]) => c > 0)
        .map(([p, c]) => `${p} ${c / 2}`)
        .join(', ');
      rows.push({
        chunks: size,
        case: label,
        efSearch: null,
        ...timing(r.ms),
        recallAt10: recall(r.results, truthFiltered, 10),
        plan: plans,
      });
      log(`  ${label}: ${JSON.stringify(rows.at(-1))}`);
    }

    // Writes with the HNSW index in place: re-embedded documents replace their chunks.
    started = performance.now();
    const writes = 2000;
    for (let i = 0; i < writes; i += 250) {
      await store.upsertDocuments(
        'bench',
        Array.from({ length: 250 }, (_, j) => {
          const d = doc(i + j);
          return {
            ...d,
            chunks: [{ index: 0, text: d.content, embedding: vectors.at(size + i + j).vector }],
          };
        }),
      );
    }
    facts['upsert docs/s (HNSW live)'] = Math.round(writes / ((performance.now() - started) / 1000));
    const keyword = await timed(Math.min(queries.length, 50), (i) =>
      store.searchKeyword(
        'bench',
        ['battery charger', 'leaks water', 'zip broke', 'SKU 4471', 'refund delivery'][i % 5]!,
        {
          topK: 10,
        },
      ),
    );
    rows.push({
      chunks: size,
      case: 'keyword (BM25) top 10',
      efSearch: null,
      ...timing(keyword.ms),
      recallAt10: null,
      plan: 'gin',
    });
    return { rows, facts };
  } finally {
    await db?.close();
    await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
}

export async function benchPgvector(argv: string[] = [], log: (line: string) => void = console.log) {
  const args = parseArgs(argv);
  const corpus = args.synthetic ? null : cachedCorpus();
  const vectors = corpus !== null ? await realVectors(corpus, args.queries) : syntheticVectors(args.queries);
  if (!args.synthetic && corpus === null) {
    log('(no corpus cache: run `npx tsx bench/vector-index-corpus.ts` to embed it; using synthetic vectors)');
  }
  log(`vectors: ${vectors.kind}`);
  const results = [];
  for (const size of args.sizes) {
    log(`\n${size} chunks`);
    results.push(await benchSize(size, vectors, args, log));
  }
  return { kind: vectors.kind, results };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = performance.now();
  const { kind, results } = await benchPgvector(process.argv.slice(2));
  const [server] = await admin<{ v: string }>(
    "SELECT current_setting('server_version') || ', pgvector ' || coalesce((SELECT default_version FROM pg_available_extensions WHERE name = 'vector'), '?') AS v",
  ).catch(() => [{ v: '?' }]);
  console.log(`\npgvector HNSW (m ${HNSW_M}, ef_construction ${HNSW_EF_CONSTRUCTION}, cosine), ${DIMS}-d: ${kind}`);
  console.log(
    `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, PostgreSQL ${server?.v}\n`,
  );
  console.table(results.map((r) => r.facts));
  console.table(
    results.flatMap((r) =>
      r.rows.map((x) => ({
        chunks: x.chunks,
        case: x.case,
        ef_search: x.efSearch ?? '',
        'p50 ms': x.p50,
        'p95 ms': x.p95,
        'recall@10': x.recallAt10 ?? '',
        plan: x.plan,
      })),
    ),
  );
  console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(0)} s`);
}
