/**
 * The vector index against the exact scan: latency p50/p95 and recall@K of semantic search at
 * 10k, 100k and 1M chunks, on real local-model embeddings (bench/vector-index-corpus.ts), at store
 * level and through the HTTP API with the query embedding taken out (a provider whose vectors are
 * precomputed, so the time is kbsync's own: routing, validation, the search on a reader thread,
 * the answer).
 *
 *   npx tsx bench/vector-index.ts                      10k, 100k, 1M
 *   npx tsx bench/vector-index.ts 10000 100000         some sizes
 *   npx tsx bench/vector-index.ts --queries 100 --no-api --no-filters 1000000
 *
 * recall@K = |index top K ∩ exact top K| / K, averaged over held-out queries (chunks, by id).
 * Sizes up to 100k use the real vectors of as many corpus texts. 1M has only 100k real texts:
 * each real vector is used ten times, once as is and nine times with Gaussian noise added
 * (sigma NOISE per component) and renormalised, which keeps the real vectors' spread and makes
 * each text's variants its own near neighbours (cosine ~0.92 to the original). `--real N` uses
 * only the first N real vectors (a partial cache) and derives every chunk beyond them the same way.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import type { EmbeddingProvider } from '../src/embeddings/port.js';
import { openSqliteFile } from '../src/store/sqlite/open.js';
import { buildCandidateIndex } from '../src/store/sqlite/vector-index-build.js';
import { SqliteVectorStore } from '../src/store/sqlite/vector-store.js';
import type { DocumentInput, MetadataFilter, SearchHit } from '../src/store/vector-port.js';
import { cachedEmbeddings, generateTexts, heldOutQueries } from './vector-index-corpus.js';

const REAL = 100_000;
const NOISE = 0.018;
const BATCH = 1000;

export interface Args {
  sizes: number[];
  queries: number;
  api: boolean;
  filters: boolean;
  /** Real (embedded) vectors: the first `real` corpus texts; chunks beyond are derived copies. */
  real: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { sizes: [], queries: 200, api: true, filters: true, real: REAL };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--queries') args.queries = Number(argv[++i]);
    else if (a === '--no-api') args.api = false;
    else if (a === '--no-filters') args.filters = false;
    else if (a === '--real') args.real = Number(argv[++i]);
    else args.sizes.push(Number(a));
  }
  if (args.sizes.length === 0) args.sizes = [10_000, 100_000, 1_000_000];
  return args;
}

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
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

/** Chunk i's vector: the real vector i below real.length, else a noisy, renormalised copy of one. */
function vectorOf(real: Float32Array[], i: number): Float32Array {
  const base = real[i % real.length]!;
  if (i < real.length) return base;
  const random = mulberry32(i);
  const v = new Float32Array(base.length);
  let norm = 0;
  for (let d = 0; d < v.length; d++) {
    v[d] = base[d]! + NOISE * gaussian(random);
    norm += v[d]! * v[d]!;
  }
  norm = Math.sqrt(norm);
  for (let d = 0; d < v.length; d++) v[d] = v[d]! / norm;
  return v;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

interface Timing {
  p50: number;
  p95: number;
  mean: number;
}

function timing(ms: number[]): Timing {
  const sorted = [...ms].sort((a, b) => a - b);
  return {
    p50: round(percentile(sorted, 50)),
    p95: round(percentile(sorted, 95)),
    mean: round(ms.reduce((a, b) => a + b, 0) / ms.length),
  };
}

function recall(index: SearchHit[][], exact: SearchHit[][], k: number): number {
  let found = 0;
  let total = 0;
  index.forEach((hits, i) => {
    const truth = new Set(exact[i]!.slice(0, k).map((h) => h.chunkId));
    found += hits.slice(0, k).filter((h) => truth.has(h.chunkId)).length;
    total += Math.min(k, truth.size);
  });
  return total === 0 ? 1 : round(found / total, 3);
}

/** Runs each query once unmeasured (warm-up of caches and statements), then once timed. */
async function timed<T>(n: number, run: (i: number) => Promise<T>): Promise<{ ms: number[]; results: T[] }> {
  for (let i = 0; i < Math.min(5, n); i++) await run(i);
  const ms: number[] = [];
  const results: T[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    results.push(await run(i));
    ms.push(performance.now() - t);
  }
  return { ms, results };
}

export interface Row {
  chunks: number;
  level: 'store' | 'api';
  case: string;
  topK: number;
  exact: Timing;
  index: Timing;
  /** exact p50 / index p50 */
  speedup: number;
  recall: number;
  plan: string;
}

/** An embedding provider answering precomputed vectors: the query embedding costs nothing. */
class PrecomputedProvider implements EmbeddingProvider {
  readonly id = 'bench:precomputed';
  constructor(private readonly vectors: Map<string, Float32Array>) {}
  async dimensions(): Promise<number> {
    return 512;
  }
  async embed(texts: string[]): Promise<Float32Array[]> {
    return texts.map((t) => {
      const v = this.vectors.get(t);
      if (v === undefined) throw new Error(`no precomputed vector for ${t.slice(0, 40)}`);
      return v;
    });
  }
  async close(): Promise<void> {}
}

export async function benchSize(
  chunks: number,
  texts: string[],
  real: Float32Array[],
  categories: string[],
  queryTexts: string[],
  queryVectors: Float32Array[],
  args: Args,
  log: (line: string) => void,
): Promise<{ rows: Row[]; insertSeconds: number; fileMegabytes: number; buildSeconds: number }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kbsync-bench-vindex-'));
  const file = path.join(dataDir, 'kbsync.db');
  const precomputed = new Map(queryTexts.map((q, i) => [q, queryVectors[i]!]));
  const provider = new PrecomputedProvider(precomputed);
  const startApp = (minChunks: number) =>
    createApp(
      loadConfig({ LOG_LEVEL: 'silent' } as NodeJS.ProcessEnv, {
        dataDir,
        scheduler: false,
        vectorIndexMinChunks: minChunks,
        rateLimitPerMinute: 0,
      }),
      { providerFactory: () => provider },
    );
  const rows: Row[] = [];
  try {
    // The knowledge base is made through the API; its documents go straight to the store with
    // their vectors (nothing to embed), 1000 to a transaction as a sync run writes them.
    let app = await startApp(0);
    const created = await app.server.inject({
      method: 'POST',
      url: '/knowledge_bases',
      payload: { kb_name: 'bench' },
    });
    if (created.statusCode !== 201) throw new Error(`create: ${created.statusCode} ${created.body}`);
    const kb = await app.services.kbs.get('default', 'bench');
    const loadStarted = performance.now();
    for (let start = 0; start < chunks; start += BATCH) {
      const batch: DocumentInput[] = [];
      for (let i = start; i < Math.min(chunks, start + BATCH); i++) {
        const text = i < real.length ? texts[i]! : `${texts[i % real.length]!} (copy ${Math.floor(i / real.length)})`;
        batch.push({
          id: `doc-${String(i).padStart(7, '0')}`,
          content: text,
          contentHash: `h${i}`,
          // bucket: 100 values, so `bucket = 7` admits 1% and `bucket >= 10` 90%, whatever the
          // text; category follows the text (one of ten), as a real filter usually does.
          metadata: { bucket: i % 100, category: categories[i % real.length] ?? 'none' },
          chunks: [{ index: 0, text, embedding: vectorOf(real, i) }],
        });
      }
      await app.services.vectors.upsertDocuments(kb.id, batch);
      if ((start / BATCH) % 100 === 99)
        log(`  ${start + BATCH} chunks written (${((performance.now() - loadStarted) / 1000).toFixed(0)} s)`);
    }
    const insertSeconds = round((performance.now() - loadStarted) / 1000, 1);

    // Store level: two stores on one more connection, one always exact, one always the index.
    // Opened as the app opens its store (memory map and all), so store level is what a reader sees.
    const db = openSqliteFile(file);
    const exact = new SqliteVectorStore(db, { indexMinChunks: Number.POSITIVE_INFINITY });
    const indexed = new SqliteVectorStore(db, { indexMinChunks: 0 });
    const n = Math.min(args.queries, queryVectors.length);
    // Exact runs of 1M chunks take ~1 s each: fewer queries there.
    const nExact = chunks >= 1_000_000 ? Math.min(n, 40) : n;
    const cases: Array<{ name: string; topK: number; filter?: MetadataFilter }> = [
      { name: 'semantic', topK: 10 },
      { name: 'semantic (hybrid depth)', topK: 40 },
      ...(args.filters
        ? [
            { name: 'filter 1% (bucket = 7)', topK: 10, filter: { bucket: 7 } },
            { name: 'filter 90% (bucket >= 10)', topK: 10, filter: { bucket: { gte: 10 } } },
            { name: 'filter ~10%, follows the text (category = kitchen)', topK: 10, filter: { category: 'kitchen' } },
          ]
        : []),
    ];
    for (const c of cases) {
      const options = c.filter ? { topK: c.topK, filter: c.filter } : { topK: c.topK };
      const e = await timed(nExact, (i) => exact.searchVector(kb.id, queryVectors[i]!, options));
      const before = { ...indexed.planCounts };
      const x = await timed(nExact, (i) => indexed.searchVector(kb.id, queryVectors[i]!, options));
      const plans = Object.entries(indexed.planCounts)
        .filter(([p, count]) => count > before[p as keyof typeof before])
        .map(([p]) => p)
        .join('+');
      const [te, tx] = [timing(e.ms), timing(x.ms)];
      rows.push({
        chunks,
        level: 'store',
        case: c.name,
        topK: c.topK,
        exact: te,
        index: tx,
        speedup: round(te.p50 / tx.p50, 1),
        recall: recall(x.results, e.results, c.topK),
        plan: plans,
      });
      log(`  store ${c.name}: exact p50 ${te.p50} ms, index p50 ${tx.p50} ms, recall ${rows.at(-1)!.recall}`);
    }
    // What migration 9 does for an existing knowledge base of this size: the index built again
    // from the stored float vectors (the same function, on this file).
    const collection = db
      .prepare('SELECT id FROM kb_collections WHERE kb_id = ?')
      .pluck()
      .get(kb.id) as number;
    const buildStarted = performance.now();
    const built = db.transaction(() => buildCandidateIndex(db, collection, 512)).immediate();
    const buildSeconds = round((performance.now() - buildStarted) / 1000, 1);
    log(`  index built from ${built.vectors} stored vectors (${built.read}) in ${buildSeconds} s`);
    db.close();

    // Through the API: the same data, served by the app with the index always on, then never.
    if (args.api) {
      const query = (a: typeof app, i: number) =>
        a.server.inject({
          method: 'POST',
          url: '/knowledge_bases/bench/query',
          payload: { query: queryTexts[i], top_k: 10, mode: 'semantic' },
        });
      const ids = (body: string) =>
        (JSON.parse(body) as { data: { results: Array<{ chunk_id: string }> } }).data.results.map(
          (r) => ({ chunkId: r.chunk_id }) as SearchHit,
        );
      const x = await timed(nExact, async (i) => ids((await query(app, i)).body));
      await app.close();
      app = await startApp(1_000_000_000);
      const e = await timed(nExact, async (i) => ids((await query(app, i)).body));
      const [te, tx] = [timing(e.ms), timing(x.ms)];
      rows.push({
        chunks,
        level: 'api',
        case: 'POST /query semantic, embedding precomputed',
        topK: 10,
        exact: te,
        index: tx,
        speedup: round(te.p50 / tx.p50, 1),
        recall: recall(x.results, e.results, 10),
        plan: 'index',
      });
      log(`  api: exact p50 ${te.p50} ms, index p50 ${tx.p50} ms, recall ${rows.at(-1)!.recall}`);
    }
    await app.close();
    const checkpoint = new Database(file);
    checkpoint.pragma('wal_checkpoint(TRUNCATE)');
    checkpoint.close();
    const fileMegabytes = round(fs.statSync(file).size / 2 ** 20, 0);
    return { rows, insertSeconds, fileMegabytes, buildSeconds };
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

export async function benchVectorIndex(argv: string[] = [], log: (line: string) => void = console.log) {
  const args = parseArgs(argv);
  const all = generateTexts(REAL);
  const generated = all.slice(0, args.real);
  const texts = generated.map((t) => t.text);
  const categories = generated.map((t) => t.category);
  // The same 1000 held-out queries the corpus script embeds (one cache file), the first N used.
  const queryTexts = heldOutQueries(1000, new Set(all.map((t) => t.text)));
  const queryVectors = await cachedEmbeddings('queries', queryTexts, log);
  const real = await cachedEmbeddings('corpus', texts, log);
  const results: Array<{
    chunks: number;
    insertSeconds: number;
    fileMegabytes: number;
    buildSeconds: number;
    rows: Row[];
  }> = [];
  for (const size of args.sizes) {
    log(`\n${size} chunks`);
    results.push({
      chunks: size,
      ...(await benchSize(size, texts, real, categories, queryTexts, queryVectors, args, log)),
    });
  }
  return results;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = performance.now();
  const results = await benchVectorIndex(process.argv.slice(2));
  console.log(
    `\nVector index vs exact scan: 512-d local-model (USE-lite) embeddings, 1 chunk per document, held-out queries`,
  );
  console.log(`${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}\n`);
  console.table(
    results.map((r) => ({
      chunks: r.chunks,
      'insert s': r.insertSeconds,
      'file MB': r.fileMegabytes,
      'index build s (migration 9)': r.buildSeconds,
    })),
  );
  console.table(
    results.flatMap((r) =>
      r.rows.map((x) => ({
        chunks: x.chunks,
        level: x.level,
        case: x.case,
        k: x.topK,
        'exact p50': x.exact.p50,
        'exact p95': x.exact.p95,
        'index p50': x.index.p50,
        'index p95': x.index.p95,
        'x faster': x.speedup,
        'recall@k': x.recall,
        plan: x.plan,
      })),
    ),
  );
  console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(0)} s`);
}
