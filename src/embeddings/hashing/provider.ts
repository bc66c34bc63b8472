/**
 * A deterministic, dependency-free embedding for tests and benchmarks that need speed, not
 * meaning: feature hashing ("the hashing trick") of lower-cased word tokens and their character
 * trigrams into N signed buckets, L2-normalised. Texts sharing words share buckets, so "similar"
 * here means lexical overlap; it is not a semantic model and is not offered to users unless a
 * deployment opts in (see factory.ts).
 */
import type { EmbeddingProvider, ProbeResult } from '../port.js';
import { normalizeInPlace, throwIfAborted } from '../vectors.js';

export interface HashingEmbeddingOptions {
  /** Vector length. Default 256. */
  dimensions?: number;
  /** Also hash character trigrams of each word, which makes "syncing" close to "sync". Default true. */
  trigrams?: boolean;
}

const WORD = /[\p{L}\p{N}]+/gu;
const TRIGRAM_WEIGHT = 0.5;

export class HashingEmbeddingProvider implements EmbeddingProvider {
  readonly id: string;
  private readonly dims: number;
  private readonly trigrams: boolean;

  constructor(options: HashingEmbeddingOptions = {}) {
    const dims = options.dimensions ?? 256;
    if (!Number.isInteger(dims) || dims < 2 || dims > 65536) {
      throw new RangeError(`hashing embedding dimensions must be an integer in 2..65536 (got ${dims})`);
    }
    this.dims = dims;
    this.trigrams = options.trigrams ?? true;
    this.id = `hashing:${dims}`;
  }

  async dimensions(): Promise<number> {
    return this.dims;
  }

  async embed(texts: string[], options: { signal?: AbortSignal } = {}): Promise<Float32Array[]> {
    throwIfAborted(options.signal);
    return texts.map((t) => this.embedOne(t));
  }

  async probe(): Promise<ProbeResult> {
    const t0 = performance.now();
    await this.embed(['probe']);
    return { dimensions: this.dims, model: 'hashing', latencyMs: performance.now() - t0 };
  }

  async close(): Promise<void> {}

  private embedOne(text: string): Float32Array {
    const v = new Float32Array(this.dims);
    let features = 0;
    for (const match of text.normalize('NFKC').toLowerCase().matchAll(WORD)) {
      const word = match[0];
      this.add(v, 0x77, word, 1);
      features++;
      if (this.trigrams && word.length > 2) {
        const padded = `^${word}$`;
        for (let i = 0; i + 3 <= padded.length; i++)
          this.add(v, 0x74, padded.slice(i, i + 3), TRIGRAM_WEIGHT);
      }
    }
    // A text without words still needs a unit vector; give all of them the same one.
    if (features === 0) this.add(v, 0x65, '', 1);
    return normalizeInPlace(v);
  }

  /** Adds ±weight in the feature's bucket; the sign from other hash bits keeps collisions unbiased. */
  private add(v: Float32Array, namespace: number, feature: string, weight: number): void {
    const h = fnv1a(namespace, feature);
    const mixed = fmix32(h);
    const bucket = (h >>> 0) % this.dims;
    v[bucket]! += mixed & 1 ? weight : -weight;
  }
}

/** FNV-1a over UTF-16 code units, seeded with a namespace so words and trigrams do not collide. */
function fnv1a(namespace: number, s: string): number {
  let h = (0x811c9dc5 ^ namespace) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** MurmurHash3's finaliser: spreads every input bit over the output, for the independent sign bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
