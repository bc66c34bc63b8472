/**
 * The reconciliation's descent (sync/reconcile.ts) on in-memory key sets, where both sides are
 * exact: it finds exactly the keys that differ, settles "no deletes" with one round of bucket
 * aggregates, and reads a few keys per delete rather than every key.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keyHash, keyHashTerm } from '../../src/core/hash.js';
import { findKeyDifferences, type KeySide } from '../../src/sync/reconcile.js';

/** A side over a set of single-column keys (document id = key text), counting what it answers. */
function memorySide(ids: Iterable<string>): KeySide & { keysListed: number } {
  const hashed = [...ids].map((id) => ({ id, hash: keyHash([id]) }));
  const side = {
    keysListed: 0,
    async buckets(digits: number, within: string[] | null) {
      const prefixes = within === null ? null : new Set(within);
      const width = within?.[0]?.length ?? 0;
      const agg = new Map<string, { count: number; sum: bigint }>();
      for (const { hash } of hashed) {
        if (prefixes !== null && !prefixes.has(hash.slice(0, width))) continue;
        const b = hash.slice(0, digits);
        const e = agg.get(b) ?? { count: 0, sum: 0n };
        e.count++;
        e.sum += BigInt(keyHashTerm(hash));
        agg.set(b, e);
      }
      return [...agg].map(([bucket, e]) => ({ bucket, count: e.count, sum: e.sum.toString() }));
    },
    async ids(buckets: string[]) {
      const set = new Set(buckets);
      const width = buckets[0]?.length ?? 0;
      const out = hashed.filter((h) => set.has(h.hash.slice(0, width))).map((h) => h.id);
      side.keysListed += out.length;
      return out;
    },
  };
  return side;
}

const N = 100_000;
const all = Array.from({ length: N }, (_, i) => String(i + 1));

describe('findKeyDifferences', () => {
  it('no difference: one aggregate over all keys settles it, no key listed', async () => {
    const source = memorySide(all);
    const kb = memorySide(all);
    const diff = await findKeyDifferences(source, kb);
    assert.deepEqual(diff.gone, []);
    assert.deepEqual(diff.missing, []);
    assert.equal(diff.rounds, 1);
    assert.equal(diff.sourceAggregates, 1);
    assert.equal(source.keysListed, 0);
  });

  it('7 scattered deletes among 100,000 keys: exactly those, with a few hundred keys listed', async () => {
    const deleted = ['1', '777', '12345', '50000', '50001', '86420', '100000'];
    const source = memorySide(all.filter((id) => !deleted.includes(id)));
    const kb = memorySide(all);
    const diff = await findKeyDifferences(source, kb);
    assert.deepEqual(diff.gone.sort(), [...deleted].sort());
    assert.deepEqual(diff.missing, []);
    assert.equal(diff.rounds, 2, 'the totals, then 256-way buckets of ~390 keys, whose 7 differing ones are listed');
    assert.ok(diff.sourceAggregates <= 1 + 256, `${diff.sourceAggregates} aggregates`);
    assert.ok(source.keysListed <= 7 * 600, `${source.keysListed} keys listed`);
    // Without the listing budget, one more round splits them into leaves of ~2 keys.
    const split = memorySide(all.filter((id) => !deleted.includes(id)));
    const deep = await findKeyDifferences(split, kb, { listBudget: 0 });
    assert.deepEqual(deep.gone.sort(), [...deleted].sort());
    assert.equal(deep.rounds, 3);
    assert.ok(deep.sourceAggregates <= 1 + 256 + 7 * 256, `${deep.sourceAggregates} aggregates`);
    assert.ok(split.keysListed <= 7 * 64, `${split.keysListed} keys listed`);
  });

  it('1,000 deletes and 50 keys only in the source: each found once', async () => {
    const deleted = new Set(Array.from({ length: 1000 }, (_, i) => String(i * 97 + 13)));
    const extra = Array.from({ length: 50 }, (_, i) => `new-${i}`);
    const source = memorySide([...all.filter((id) => !deleted.has(id)), ...extra]);
    const kb = memorySide(all);
    const diff = await findKeyDifferences(source, kb);
    assert.deepEqual(new Set(diff.gone), deleted);
    assert.equal(diff.gone.length, deleted.size);
    assert.deepEqual(diff.missing.sort(), extra.sort());
  });

  it('an empty side: every key of the other side differs, listed from small buckets', async () => {
    const diff = await findKeyDifferences(memorySide([]), memorySide(all.slice(0, 5000)), { listBudget: 0 });
    assert.equal(diff.gone.length, 5000);
    assert.equal(diff.rounds, 2, 'the totals, then 256 buckets of ~20 keys');
    assert.ok(diff.complete);
    // Within the listing budget, the 5,000 keys are listed at once after the totals.
    const once = await findKeyDifferences(memorySide([]), memorySide(all.slice(0, 5000)));
    assert.equal(once.gone.length, 5000);
    assert.equal(once.rounds, 1);
  });

  it('too many differences for one run: a bounded share per run, and repeated runs converge', async () => {
    // The whole source is gone: 5,000 documents to delete, at most 20 buckets a round.
    const kbIds = new Set(all.slice(0, 5000));
    let runs = 0;
    for (;;) {
      runs++;
      const diff = await findKeyDifferences(memorySide([]), memorySide(kbIds), { maxBuckets: 20, listBudget: 0 });
      assert.ok(diff.gone.length <= 20 * 64, `${diff.gone.length} ids in one run`);
      for (const id of diff.gone) kbIds.delete(id);
      if (diff.complete) break;
      assert.ok(runs < 100, 'converges');
    }
    assert.equal(kbIds.size, 0);
    assert.ok(runs > 1, 'it took several runs');
  });

  it('stops between rounds when asked to', async () => {
    let calls = 0;
    await assert.rejects(
      findKeyDifferences(memorySide(all.slice(1)), memorySide(all), {
        throwIfAborted: () => {
          if (++calls === 2) throw new Error('stopped');
        },
      }),
      /stopped/,
    );
  });
});
