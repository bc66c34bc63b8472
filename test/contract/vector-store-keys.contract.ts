/**
 * The VectorStore contract's delete-reconciliation part, run on every adapter beside
 * vector-store.contract.ts: key hashes stored with synced documents, their buckets (count and sum
 * of hash terms per prefix), the ids in a bucket, and filling in hashes for documents synced before
 * they existed. The sums are checked against core/hash.ts computed here, so an adapter that sums
 * the wrong digits or loses precision past 2^53 fails.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AppError } from '../../src/core/errors.js';
import { keyHash, keyHashTerm } from '../../src/core/hash.js';
import type { DocumentInput, Metadata, VectorStore } from '../../src/store/vector-port.js';
import type { StoreHandle } from './vector-store.contract.js';

const DIMS = 4;

let counter = 0;

function synced(key: string, metadata: Metadata = {}, withHash = true): DocumentInput {
  return {
    id: `orders:${key}`,
    content: `order ${key}`,
    contentHash: `h-${key}`,
    metadata: { source_table: 'orders', row_key: key, ...metadata },
    chunks: [{ index: 0, text: `order ${key}`, embedding: new Float32Array([1, 0.5, 0, 0]) }],
    ...(withHash ? { keyHash: keyHash([key]) } : {}),
  };
}

/** count and sum of the hash terms of `keys` whose key hash starts with `prefix`. */
function expectedBucket(keys: string[], prefix: string): { count: number; sum: string } {
  const inside = keys.map((k) => keyHash([k])).filter((h) => h.startsWith(prefix));
  return { count: inside.length, sum: String(inside.reduce((s, h) => s + BigInt(keyHashTerm(h)), 0n)) };
}

export function vectorStoreKeysContract(name: string, makeStore: () => Promise<StoreHandle>): void {
  describe(`VectorStore contract (key hashes): ${name}`, () => {
    let handle: StoreHandle;
    let store: VectorStore;
    before(async () => {
      handle = await makeStore();
      store = handle.store;
    });
    after(async () => handle.close());

    async function freshKb(): Promise<string> {
      counter += 1;
      const kb = `kb_keys_${counter}_${Math.random().toString(36).slice(2, 8)}`;
      await store.createCollection(kb, DIMS);
      return kb;
    }

    it('buckets synced documents by key-hash prefix with exact counts and sums; API documents are not in them', async () => {
      const kb = await freshKb();
      const keys = Array.from({ length: 300 }, (_, i) => `k${i}`);
      await store.upsertDocuments(kb, [
        ...keys.map((k) => synced(k)),
        { id: 'api-doc', content: 'x', contentHash: 'h', metadata: {}, chunks: [] },
      ]);
      const total = await store.keyHashBuckets(kb, 0, null);
      assert.deepEqual(total, [{ bucket: '', ...expectedBucket(keys, '') }]);
      const byOne = await store.keyHashBuckets(kb, 1, null);
      const expected = [...'0123456789abcdef']
        .map((p) => ({ bucket: p, ...expectedBucket(keys, p) }))
        .filter((b) => b.count > 0);
      assert.deepEqual(
        [...byOne].sort((a, b) => a.bucket.localeCompare(b.bucket)),
        expected,
      );
      // Within some prefixes only, grouped by longer ones.
      const within = ['3', 'a'];
      const byTwo = await store.keyHashBuckets(kb, 2, within);
      const hashes = keys.map((k) => keyHash([k]));
      const twoDigit = [
        ...new Set(hashes.filter((h) => within.includes(h[0]!)).map((h) => h.slice(0, 2))),
      ].sort();
      assert.deepEqual(
        [...byTwo].sort((a, b) => a.bucket.localeCompare(b.bucket)),
        twoDigit.map((p) => ({ bucket: p, ...expectedBucket(keys, p) })),
      );
      const ids = await store.documentIdsInKeyBuckets(kb, ['3', 'a']);
      assert.deepEqual(
        [...ids].sort(),
        keys
          .filter((k) => within.includes(keyHash([k])[0]!))
          .map((k) => `orders:${k}`)
          .sort(),
      );
      assert.equal((await store.documentIdsInKeyBuckets(kb, [''])).length, keys.length);
      assert.deepEqual(await store.documentIdsInKeyBuckets(kb, []), []);
      await assert.rejects(store.keyHashBuckets(kb, 33, null), RangeError);
    });

    it('sums past 2^53 exactly (decimal digits, not a float)', async () => {
      const kb = await freshKb();
      // Terms near 2^32 each; ~2^21 of them would pass 2^53, so forge terms with keys whose last
      // eight hex digits are large: pick keys until 40 have a term above 0xf0000000.
      const big: string[] = [];
      for (let i = 0; big.length < 40; i++)
        if (keyHashTerm(keyHash([`b${i}`])) > 0xf0000000) big.push(`b${i}`);
      await store.upsertDocuments(
        kb,
        big.map((k) => synced(k)),
      );
      const [total] = await store.keyHashBuckets(kb, 0, null);
      assert.equal(total?.sum, expectedBucket(big, '').sum);
      assert.equal(total?.count, 40);
      assert.equal(typeof total?.sum, 'string');
    });

    it('an empty knowledge base has no buckets; an unknown one is NOT_FOUND', async () => {
      const kb = await freshKb();
      assert.deepEqual(await store.keyHashBuckets(kb, 0, null), []);
      assert.deepEqual(await store.keyHashBuckets(kb, 2, null), []);
      assert.deepEqual(await store.documentIdsInKeyBuckets(kb, ['ab']), []);
      const isNotFound = (e: unknown) => e instanceof AppError && e.code === 'NOT_FOUND';
      await assert.rejects(store.keyHashBuckets('kb_keys_missing', 0, null), isNotFound);
      await assert.rejects(store.documentIdsInKeyBuckets('kb_keys_missing', ['a']), isNotFound);
      await assert.rejects(
        store.documentsWithoutKeyHash('kb_keys_missing', 'orders', { after: null, limit: 1 }),
        isNotFound,
      );
    });

    it('a re-upsert without a key hash keeps the stored one; metadata-only updates can set it; deletes remove it', async () => {
      const kb = await freshKb();
      await store.upsertDocuments(kb, [synced('a'), synced('b')]);
      await store.upsertDocuments(kb, [{ ...synced('a', {}, false), content: 'changed' }]);
      assert.equal((await store.keyHashBuckets(kb, 0, null))[0]?.count, 2);
      await store.upsertDocuments(kb, [synced('c', {}, false)]);
      assert.equal((await store.keyHashBuckets(kb, 0, null))[0]?.count, 2);
      await store.upsertDocuments(
        kb,
        [],
        [
          {
            id: 'orders:c',
            contentHash: 'h2',
            metadata: { source_table: 'orders', row_key: 'c' },
            keyHash: keyHash(['c']),
          },
        ],
      );
      assert.deepEqual(await store.keyHashBuckets(kb, 0, null), [
        { bucket: '', ...expectedBucket(['a', 'b', 'c'], '') },
      ]);
      assert.equal(await store.deleteDocuments(kb, ['orders:a', 'orders:a', 'orders:nope']), 1);
      assert.deepEqual(await store.keyHashBuckets(kb, 0, null), [
        { bucket: '', ...expectedBucket(['b', 'c'], '') },
      ]);
      assert.equal(await store.deleteDocuments(kb, []), 0);
    });

    it('finds documents synced before key hashes existed, in id order and pages, and fills them in', async () => {
      const kb = await freshKb();
      const old = Array.from({ length: 7 }, (_, i) => synced(`o${i}`, {}, false));
      await store.upsertDocuments(kb, [
        ...old,
        synced('hashed'),
        // Another table, no row key, a JSON-null row key, a numeric table name: never listed.
        { ...synced('other', { source_table: 'customers' }, false), id: 'customers:other' },
        { ...synced('nokey', {}, false), id: 'orders:nokey', metadata: { source_table: 'orders' } },
        { ...synced('nullkey', { row_key: null }, false), id: 'orders:nullkey' },
        { ...synced('num', { source_table: 5 }, false), id: '5:num' },
      ]);
      const expected = old.map((d) => d.id).sort();
      const first = await store.documentsWithoutKeyHash(kb, 'orders', { after: null, limit: 4 });
      assert.deepEqual(first, expected.slice(0, 4));
      const second = await store.documentsWithoutKeyHash(kb, 'orders', { after: first.at(-1)!, limit: 4 });
      assert.deepEqual(second, expected.slice(4));
      assert.deepEqual(await store.documentsWithoutKeyHash(kb, '5', { after: null, limit: 10 }), []);
      await store.setKeyHashes(
        kb,
        old.map((d) => ({ id: d.id, keyHash: keyHash([String(d.metadata.row_key)]) })),
      );
      assert.deepEqual(await store.documentsWithoutKeyHash(kb, 'orders', { after: null, limit: 10 }), []);
      const keys = [...old.map((d) => String(d.metadata.row_key)), 'hashed'];
      assert.deepEqual(await store.keyHashBuckets(kb, 0, null), [
        { bucket: '', ...expectedBucket(keys, '') },
      ]);
      await store.setKeyHashes(kb, []);
    });
  });
}
