/**
 * Embedding throughput: the local provider (Universal Sentence Encoder lite) with one worker
 * thread against the pool of N = os.availableParallelism() threads, on the same short texts, in
 * one run; the hashing test provider as a reference for the cost of everything but the model.
 *
 *   npx tsx bench/embeddings.ts        prints the figures
 *   benchEmbeddings()                  returns them (for bench/run.ts)
 */
import { availableParallelism, cpus } from 'node:os';
import { pathToFileURL } from 'node:url';
import { HashingEmbeddingProvider } from '../src/embeddings/hashing/index.js';
import { LocalEmbeddingProvider } from '../src/embeddings/local/index.js';
import type { EmbeddingProvider } from '../src/embeddings/port.js';

const TEXT_COUNT = 1500;
/** What a sync run hands the provider at a time. */
const BATCH = 256;

/** Deterministic short texts (7–17 words), like one-line product or ticket rows. */
export function shortTexts(n = TEXT_COUNT): string[] {
  const subjects = [
    'The customer',
    'Our support team',
    'The nightly sync',
    'A new invoice',
    'The warehouse',
    'This order',
    'The account manager',
    'A refund request',
  ];
  const verbs = [
    'reported',
    'updated',
    'shipped',
    'cancelled',
    'approved',
    'escalated',
    'archived',
    'reviewed',
  ];
  const objects = [
    'the delayed parcel',
    'a damaged laptop',
    'three missing items',
    'the quarterly report',
    'an expired card',
    'the billing address',
    'a duplicate payment',
    'the return label',
  ];
  const tails = [
    'yesterday',
    'before noon',
    'after the outage',
    'for the second time',
    'in Berlin',
    'without notice',
    'as requested by the client',
    'and closed the ticket',
  ];
  let seed = 42;
  const pick = <T>(xs: T[]): T => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return xs[seed % xs.length]!;
  };
  return Array.from(
    { length: n },
    (_, i) => `${pick(subjects)} ${pick(verbs)} ${pick(objects)} ${pick(tails)} (#${i}).`,
  );
}

async function throughput(
  provider: EmbeddingProvider,
  texts: string[],
): Promise<{ textsPerSecond: number; ms: number }> {
  const t0 = performance.now();
  for (let i = 0; i < texts.length; i += BATCH) await provider.embed(texts.slice(i, i + BATCH));
  const ms = performance.now() - t0;
  return { textsPerSecond: Math.round((texts.length / ms) * 1000 * 10) / 10, ms: Math.round(ms) };
}

async function local(threads: number, texts: string[]) {
  const provider = new LocalEmbeddingProvider({ threads });
  try {
    const t0 = performance.now();
    await provider.warmup(); // model load in every worker, excluded from the throughput figure
    const warmupMs = Math.round(performance.now() - t0);
    // What warm-up buys: the first call after it (one text) loads no model. Its speed is measured
    // here, not asserted in a test (test/integration/embeddings-local.test.ts checks the state).
    const t1 = performance.now();
    await provider.embed(['the first text after warm-up']);
    const firstAfterWarmupMs = Math.round(performance.now() - t1);
    await provider.embed(texts.slice(0, 64)); // first inference compiles WASM kernels
    return { threads, warmupMs, firstAfterWarmupMs, ...(await throughput(provider, texts)) };
  } finally {
    await provider.close();
  }
}

/** The first call on a pool that was not warmed up: it starts a worker and loads the model. */
async function coldFirstCall(): Promise<number> {
  const provider = new LocalEmbeddingProvider({ threads: 1 });
  try {
    const t0 = performance.now();
    await provider.embed(['the first text, no warm-up']);
    return Math.round(performance.now() - t0);
  } finally {
    await provider.close();
  }
}

export async function benchEmbeddings(): Promise<Record<string, unknown>> {
  const texts = shortTexts();
  const n = availableParallelism();
  const coldFirstMs = await coldFirstCall();
  const single = await local(1, texts);
  const pool = await local(n, texts);
  const hashing = await throughput(new HashingEmbeddingProvider(), texts);
  return {
    machine: { cpus: n, model: cpus()[0]?.model ?? 'unknown', node: process.version },
    texts: texts.length,
    avgChars: Math.round(texts.reduce((s, t) => s + t.length, 0) / texts.length),
    batch: BATCH,
    local1Thread: single,
    localPool: pool,
    poolSpeedup: Math.round((pool.textsPerSecond / single.textsPerSecond) * 100) / 100,
    coldFirstMs,
    hashing,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await benchEmbeddings();
  const single = r.local1Thread as Awaited<ReturnType<typeof local>>;
  const pool = r.localPool as Awaited<ReturnType<typeof local>>;
  console.log(`machine: ${JSON.stringify(r.machine)}`);
  console.log(`${r.texts} short texts (avg ${r.avgChars} chars), batches of ${r.batch}`);
  console.log(
    `local, 1 thread:   ${single.textsPerSecond} texts/s (${single.ms} ms; warm-up ${single.warmupMs} ms)`,
  );
  console.log(
    `local, ${pool.threads} threads:  ${pool.textsPerSecond} texts/s (${pool.ms} ms; warm-up ${pool.warmupMs} ms)`,
  );
  console.log(`pool speed-up:     ${r.poolSpeedup}x`);
  console.log(
    `first call, one text: ${r.coldFirstMs} ms cold (starts a worker, loads the model); after warm-up ${single.firstAfterWarmupMs} ms (1 thread), ${pool.firstAfterWarmupMs} ms (${pool.threads} threads)`,
  );
  console.log(`hashing (ref):     ${(r.hashing as { textsPerSecond: number }).textsPerSecond} texts/s`);
}
