/**
 * Delete reconciliation (SEMANTICS.md, "Deletes"): which synced documents have lost their source
 * row, found read-only, without triggers or CDC, and without shipping every key on every run.
 *
 * Both sides group their keys into buckets by the leading hex digits of the key's MD5
 * (core/hash.ts keyHash) and report each bucket's count and checksum (the sum of a 32-bit slice
 * of each hash). The source computes its side in SQL, so only aggregates travel; the knowledge
 * base answers from an index on the stored key hash. Buckets that agree are done; a bucket that
 * differs is split 256 ways, until it is small enough to compare its keys one by one. These are
 * ranges of the keys' hash (token ranges, as in Cassandra's anti-entropy repair) rather than of the
 * keys themselves: the hash order is the same in every engine and in the knowledge base, where a
 * key order is not (collations, integer vs text order), and composite keys need nothing more.
 *
 * With no deletes one aggregate per side settles it (the totals over every key agree); k deleted
 * keys cost 256 more, then about k · log256(n) bucket aggregates and k small key lists. A round
 * is a scan of the key inside the source, so when the buckets left to split hold few keys
 * together (`listBudget`) their keys are listed at once instead.
 */
import type { KeyBucket } from '../sources/port.js';
import { MAX_KEY_PREFIXES } from '../sources/shared.js';

/** One side of the comparison: bucket aggregates and the keys of chosen buckets. */
export interface KeySide {
  buckets(digits: number, within: string[] | null): Promise<KeyBucket[]>;
  /** Document ids (the source side maps its keys to ids) of the keys in these buckets. */
  ids(buckets: string[]): Promise<string[]>;
}

export interface KeyDifferences {
  /** Document ids the knowledge base holds and the source no longer has. */
  gone: string[];
  /** Document ids the source has and the knowledge base does not (not yet synced, or missed). */
  missing: string[];
  /** Bucket aggregates read from the source, and key lists read from it (for the benchmark). */
  sourceAggregates: number;
  sourceKeys: number;
  rounds: number;
  /**
   * False when the differences were too many for one run (more than `maxBuckets` differing
   * buckets in a round): the buckets compared were a random share of them, and the next run
   * takes another. Keeps a run's memory and query sizes bounded after a mass delete.
   */
  complete: boolean;
}

export interface ReconcileOptions {
  /** Hex digits added per round (2 = 256-way split). */
  digitsPerRound?: number;
  /** A differing bucket with at most this many keys on either side is compared key by key. */
  leafSize?: number;
  /**
   * When all differing buckets of a round hold at most this many keys together, they are listed
   * at once rather than split again: another round is another scan of the source, while listing
   * a few thousand keys is cheap.
   */
  listBudget?: number;
  /** Differing buckets taken per round, and bucket prefixes bound per query (default 4,096). */
  maxBuckets?: number;
  /** Checked between rounds, so a pause stops a long comparison. */
  throwIfAborted?: () => void;
}

const MAX_DIGITS = 32;
/** Bound into one source query at most (every engine takes this many parameters), and ~262k keys a run. */
export const MAX_BUCKETS = MAX_KEY_PREFIXES;

export async function findKeyDifferences(source: KeySide, kb: KeySide, options: ReconcileOptions = {}): Promise<KeyDifferences> {
  const step = options.digitsPerRound ?? 2;
  const leafSize = options.leafSize ?? 64;
  const listBudget = options.listBudget ?? 65_536;
  const maxBuckets = options.maxBuckets ?? MAX_BUCKETS;
  const result: KeyDifferences = { gone: [], missing: [], sourceAggregates: 0, sourceKeys: 0, rounds: 0, complete: true };
  // Round 0 compares one aggregate over all keys: the common case (nothing deleted) ends there.
  let digits = 0;
  let within: string[] | null = null;
  for (;;) {
    options.throwIfAborted?.();
    result.rounds++;
    const [s, k] = await Promise.all([source.buckets(digits, within), kb.buckets(digits, within)]);
    result.sourceAggregates += s.length;
    const theirs = new Map(s.map((b) => [b.bucket, b]));
    const ours = new Map(k.map((b) => [b.bucket, b]));
    const leaves: string[] = [];
    const deeper: string[] = [];
    for (const bucket of new Set([...theirs.keys(), ...ours.keys()])) {
      const a = theirs.get(bucket);
      const b = ours.get(bucket);
      if (a !== undefined && b !== undefined && a.count === b.count && a.sum === b.sum) continue;
      const size = Math.max(a?.count ?? 0, b?.count ?? 0);
      if (size <= leafSize || digits + step > MAX_DIGITS) leaves.push(bucket);
      else deeper.push(bucket);
    }
    const toSplit = deeper.reduce((n, bucket) => n + Math.max(theirs.get(bucket)?.count ?? 0, ours.get(bucket)?.count ?? 0), 0);
    if (deeper.length > 0 && toSplit <= listBudget && deeper.length + leaves.length <= maxBuckets) {
      leaves.push(...deeper.splice(0));
    }
    if (digits === 0 && deeper.length > 0) {
      // The totals differ: split the whole key space (no prefix to filter on yet).
      digits = step;
      continue;
    }
    const leafShare = share(leaves, maxBuckets);
    const deeperShare = share(deeper, Math.max(0, maxBuckets - leafShare.length));
    if (leafShare.length < leaves.length || deeperShare.length < deeper.length) result.complete = false;
    if (leafShare.length > 0) {
      const [sourceIds, kbIds] = await Promise.all([source.ids(leafShare), kb.ids(leafShare)]);
      result.sourceKeys += sourceIds.length;
      const inSource = new Set(sourceIds);
      const inKb = new Set(kbIds);
      for (const id of kbIds) if (!inSource.has(id)) result.gone.push(id);
      for (const id of sourceIds) if (!inKb.has(id)) result.missing.push(id);
    }
    if (deeperShare.length === 0) return result;
    within = deeperShare.sort();
    digits += step;
  }
}

/** At most `n` of `items`, a random contiguous run of them so successive runs cover them all. */
function share(items: string[], n: number): string[] {
  if (items.length <= n) return items;
  const start = Math.floor(Math.random() * items.length);
  return [...items.slice(start), ...items.slice(0, start)].slice(0, n);
}
