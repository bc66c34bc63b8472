/**
 * SQLite vector store benchmark: insert throughput and query latency (vector, vector + filter,
 * keyword) at a few collection sizes, on random unit vectors of the local model's 512 dimensions.
 *
 *   npx tsx bench/vector-store.ts                 10k and 100k documents
 *   npx tsx bench/vector-store.ts 5000 20000      other sizes
 *
 * Seeded, so two runs insert the same data and ask the same queries.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { SqliteVectorStore } from '../src/store/sqlite/vector-store.js';
import type { DocumentInput, MetadataFilter } from '../src/store/vector-port.js';

const DIMS = 512;
const BATCH = 500;
const QUERIES = 100;
const TOP_K = 10;
const CATEGORIES = 100;

export interface BenchRow {
  documents: number;
  case: string;
  p50Ms: number;
  p95Ms: number;
  meanMs: number;
  /** Results returned on average: a filtered search must still fill its top K. */
  hits: number;
}

export interface BenchResult {
  documents: number;
  insertSeconds: number;
  insertDocsPerSecond: number;
  fileMegabytes: number;
  queries: BenchRow[];
}

/** mulberry32: small, fast, and good enough for benchmark data. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Gaussian components make the direction uniform on the sphere; then normalise. */
function unitVector(random: () => number): Float32Array {
  const v = new Float32Array(DIMS);
  let norm = 0;
  for (let i = 0; i < DIMS; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - random()));
    const theta = 2 * Math.PI * random();
    v[i] = r * Math.cos(theta);
    if (i + 1 < DIMS) v[i + 1] = r * Math.sin(theta);
  }
  for (const x of v) norm += x * x;
  norm = Math.sqrt(norm);
  for (let i = 0; i < DIMS; i++) v[i] = v[i]! / norm;
  return v;
}

function vocabulary(random: () => number, size: number): string[] {
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  return Array.from({ length: size }, () => {
    const length = 3 + Math.floor(random() * 7);
    return Array.from({ length }, () => letters[Math.floor(random() * 26)]).join('');
  });
}

/** Squaring skews picks towards the front, so some words are common and most are rare. */
function pickWord(random: () => number, words: string[]): string {
  return words[Math.floor(random() * random() * words.length)]!;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function timeQueries(
  documents: number,
  label: string,
  run: (i: number) => Promise<number>,
): Promise<BenchRow> {
  for (let i = 0; i < 5; i++) await run(-1 - i); // warm caches and prepared statements
  const times: number[] = [];
  let hits = 0;
  for (let i = 0; i < QUERIES; i++) {
    const start = performance.now();
    hits += await run(i);
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    documents,
    case: label,
    p50Ms: round(percentile(times, 50)),
    p95Ms: round(percentile(times, 95)),
    meanMs: round(times.reduce((a, b) => a + b, 0) / times.length),
    hits: round(hits / QUERIES),
  };
}

async function benchOne(documents: number): Promise<BenchResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kbsync-bench-vector-'));
  const file = path.join(dir, 'bench.db');
  const db = new Database(file);
  // The same settings as the service's store file (store/sqlite/open.ts).
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  try {
    // The exact scan, as measured before the vector index existed; on these uniformly random
    // vectors sign bits say little (recall@10 ~0.24), so the index is measured on real embeddings
    // in bench/vector-index.ts.
    const store = new SqliteVectorStore(db, { indexMinChunks: Number.POSITIVE_INFINITY });
    const kb = 'kb_bench';
    await store.createCollection(kb, DIMS);
    const random = rng(42);
    const words = vocabulary(random, 5000);
    const day0 = Date.parse('2024-01-01T00:00:00Z');

    let insertMs = 0;
    for (let start = 0; start < documents; start += BATCH) {
      const batch: DocumentInput[] = [];
      for (let i = start; i < Math.min(documents, start + BATCH); i++) {
        const text = [
          ...Array.from({ length: 8 + Math.floor(random() * 8) }, () => pickWord(random, words)),
          `SKU-${1000 + (i % 9000)}-${'ABCDEFGH'[Math.floor(i / 9000) % 8]}`,
        ].join(' ');
        batch.push({
          id: `doc-${String(i).padStart(7, '0')}`,
          content: text,
          contentHash: `h${i}`,
          metadata: {
            category: `c${i % CATEGORIES}`,
            price: i % 1000,
            published: new Date(day0 + (i % 700) * 86_400_000).toISOString().replace('.000Z', 'Z'),
          },
          chunks: [{ index: 0, text, embedding: unitVector(random) }],
        });
      }
      // Only the store's work is timed, not generating the data.
      const t = performance.now();
      await store.upsertDocuments(kb, batch);
      insertMs += performance.now() - t;
    }

    const queryVectors = Array.from({ length: QUERIES + 5 }, () => unitVector(random));
    const queryTexts = Array.from(
      { length: QUERIES + 5 },
      () =>
        `${pickWord(random, words)} ${pickWord(random, words)} ${words[Math.floor(random() * words.length)]}`,
    );
    const at = <T>(list: T[], i: number): T => list[(i + list.length) % list.length]!;
    const selective: MetadataFilter = { category: 'c7' }; // 1% of documents
    const broad: MetadataFilter = { price: { gte: 100 } }; // 90% of documents
    const vector = (filter?: MetadataFilter) => async (i: number) =>
      (await store.searchVector(kb, at(queryVectors, i), filter ? { topK: TOP_K, filter } : { topK: TOP_K }))
        .length;
    const keyword = (filter?: MetadataFilter) => async (i: number) =>
      (await store.searchKeyword(kb, at(queryTexts, i), filter ? { topK: TOP_K, filter } : { topK: TOP_K }))
        .length;

    const queries = [
      await timeQueries(documents, 'vector', vector()),
      await timeQueries(documents, 'vector, filter 1% (category = c7)', vector(selective)),
      await timeQueries(documents, 'vector, filter 90% (price >= 100)', vector(broad)),
      await timeQueries(documents, 'keyword (3 terms, OR)', keyword()),
      await timeQueries(documents, 'keyword, filter 1%', keyword(selective)),
      await timeQueries(
        documents,
        'keyword, exact code SKU-4471-A',
        async () => (await store.searchKeyword(kb, 'SKU-4471-A', { topK: TOP_K })).length,
      ),
    ];
    db.pragma('wal_checkpoint(TRUNCATE)');
    const fileMegabytes = Math.round((fs.statSync(file).size / 2 ** 20) * 10) / 10;
    return {
      documents,
      insertSeconds: Math.round(insertMs / 100) / 10,
      insertDocsPerSecond: Math.round(documents / (insertMs / 1000)),
      fileMegabytes,
      queries,
    };
  } finally {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchVectorStore(sizes: number[] = [10_000, 100_000]): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const size of sizes) results.push(await benchOne(size));
  return results;
}

function printResults(results: BenchResult[]): void {
  console.log(
    `SQLite vector store, ${DIMS}-d unit vectors, 1 chunk per document, top ${TOP_K}, ${QUERIES} queries per case`,
  );
  console.log(`${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}\n`);
  console.table(
    results.map((r) => ({
      documents: r.documents,
      'insert s': r.insertSeconds,
      'docs/s': r.insertDocsPerSecond,
      'file MB': r.fileMegabytes,
    })),
  );
  console.table(
    results.flatMap((r) =>
      r.queries.map((q) => ({
        documents: q.documents,
        case: q.case,
        'p50 ms': q.p50Ms,
        'p95 ms': q.p95Ms,
        'mean ms': q.meanMs,
        'avg hits': q.hits,
      })),
    ),
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const sizes = process.argv.slice(2).map(Number);
  const started = performance.now();
  const results = await benchVectorStore(sizes.length > 0 && sizes.every((n) => n > 0) ? sizes : undefined);
  printResults(results);
  console.log(`\ntotal ${(performance.now() - started) / 1000} s`);
}
