/**
 * The VectorStore contract: every adapter (SQLite today, pgvector later) runs this same suite.
 * Each test works in its own collection, so tests never see each other's rows.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { AppError } from '../../src/core/errors.js';
import {
  CollectionsChanged,
  type DocumentInput,
  type Metadata,
  type MetadataFilter,
  type MetadataValue,
  type SearchHit,
  type VectorStore,
} from '../../src/store/vector-port.js';

export interface StoreHandle {
  store: VectorStore;
  close(): Promise<void>;
}

const DIMS = 8;

/** A DIMS-d vector from its leading components (the rest are 0). */
function vec(...xs: number[]): Float32Array {
  const v = new Float32Array(DIMS);
  xs.forEach((x, i) => {
    v[i] = x;
  });
  return v;
}

/** Unit vector along axis i. */
function axis(i: number, dims = DIMS): Float32Array {
  const v = new Float32Array(dims);
  v[i] = 1;
  return v;
}

/** A vector at `degrees` from axis 0 towards axis 1: its cosine to axis 0 is cos(degrees). */
function angled(degrees: number): Float32Array {
  const r = (degrees * Math.PI) / 180;
  return vec(Math.cos(r), Math.sin(r));
}

function doc(
  id: string,
  chunks: Array<{ text: string; embedding: Float32Array }>,
  metadata: Metadata = {},
  contentHash = `hash-${id}`,
): DocumentInput {
  return {
    id,
    content: chunks.map((c) => c.text).join('\n'),
    contentHash,
    metadata,
    chunks: chunks.map((c, index) => ({ index, text: c.text, embedding: c.embedding })),
  };
}

/** One-chunk document; the embedding defaults to a fixed direction so keyword tests need not care. */
function textDoc(id: string, text: string, metadata: Metadata = {}, embedding = vec(1, 1, 1)): DocumentInput {
  return doc(id, [{ text, embedding }], metadata);
}

const ids = (hits: SearchHit[]) => hits.map((h) => h.documentId);

let collectionCounter = 0;

export function vectorStoreContract(name: string, makeStore: () => Promise<StoreHandle>): void {
  describe(`VectorStore contract: ${name}`, () => {
    let handle: StoreHandle;
    let store: VectorStore;

    before(async () => {
      handle = await makeStore();
      store = handle.store;
    });
    after(async () => {
      await handle.close();
    });

    /** A fresh collection per test; the random part keeps reruns against a shared database apart. */
    async function freshKb(dims = DIMS): Promise<string> {
      collectionCounter += 1;
      const kbId = `kb_contract_${collectionCounter}_${Math.random().toString(36).slice(2, 8)}`;
      await store.createCollection(kbId, dims);
      return kbId;
    }

    describe('collections', () => {
      it('creates an empty collection, idempotently', async () => {
        const kb = await freshKb();
        await store.createCollection(kb, DIMS);
        assert.deepEqual(await store.counts(kb), { documents: 0, chunks: 0 });
        assert.deepEqual(await store.listDocuments(kb, { limit: 10, after: null }), {
          documents: [],
          next: null,
        });
        assert.deepEqual(await store.searchVector(kb, axis(0), { topK: 5 }), []);
        assert.deepEqual(await store.searchKeyword(kb, 'anything', { topK: 5 }), []);
      });

      it('refuses to re-create a collection with other dimensions', async () => {
        const kb = await freshKb();
        await assert.rejects(
          store.createCollection(kb, DIMS + 1),
          (e) => e instanceof AppError && e.code === 'CONFLICT',
        );
      });

      it('answers NOT_FOUND for a collection that does not exist', async () => {
        const missing = 'kb_contract_missing';
        const isNotFound = (e: unknown) => e instanceof AppError && e.code === 'NOT_FOUND';
        await assert.rejects(store.counts(missing), isNotFound);
        await assert.rejects(store.upsertDocuments(missing, [textDoc('a', 'x')]), isNotFound);
        await assert.rejects(store.searchVector(missing, axis(0), { topK: 1 }), isNotFound);
        await assert.rejects(store.searchKeyword(missing, 'x', { topK: 1 }), isNotFound);
        await assert.rejects(store.getContentHashes(missing, ['a']), isNotFound);
        await assert.rejects(store.listDocuments(missing, { limit: 1, after: null }), isNotFound);
        await store.dropCollection(missing); // dropping nothing is fine
      });

      it('dropCollection removes documents, chunks, vectors and keywords', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, [
          doc('a', [
            { text: 'walrus tusk', embedding: axis(0) },
            { text: 'walrus whiskers', embedding: axis(1) },
          ]),
          textDoc('b', 'walrus again'),
        ]);
        assert.deepEqual(await store.counts(kb), { documents: 2, chunks: 3 });
        await store.dropCollection(kb);
        await assert.rejects(store.counts(kb), (e) => e instanceof AppError && e.code === 'NOT_FOUND');
        // Re-created under the same id (even with other dimensions), nothing of the old one remains.
        await store.createCollection(kb, 4);
        assert.deepEqual(await store.counts(kb), { documents: 0, chunks: 0 });
        assert.deepEqual(await store.searchKeyword(kb, 'walrus', { topK: 10 }), []);
        assert.deepEqual(await store.searchVector(kb, axis(0, 4), { topK: 10 }), []);
        assert.equal((await store.getContentHashes(kb, ['a', 'b'])).size, 0);
      });

      it('keeps two collections apart', async () => {
        const kbA = await freshKb();
        const kbB = await freshKb(4);
        await store.upsertDocuments(kbA, [textDoc('same-id', 'aardvark in A', { side: 'A' }, axis(0))]);
        await store.upsertDocuments(kbB, [
          doc('same-id', [{ text: 'badger in B', embedding: axis(0, 4) }], { side: 'B' }, 'hash-B'),
          doc('only-b', [{ text: 'badger two', embedding: axis(1, 4) }]),
        ]);
        assert.deepEqual(await store.counts(kbA), { documents: 1, chunks: 1 });
        assert.deepEqual(await store.counts(kbB), { documents: 2, chunks: 2 });
        assert.deepEqual(await store.searchKeyword(kbA, 'badger', { topK: 10 }), []);
        assert.deepEqual(await store.searchKeyword(kbB, 'aardvark', { topK: 10 }), []);
        const a = await store.searchVector(kbA, axis(0), { topK: 10 });
        assert.deepEqual(
          a.map((h) => [h.documentId, h.content, h.metadata.side]),
          [['same-id', 'aardvark in A', 'A']],
        );
        assert.deepEqual(
          await store.getContentHashes(kbA, ['same-id', 'only-b']),
          new Map([['same-id', 'hash-same-id']]),
        );

        assert.equal(await store.deleteDocument(kbA, 'same-id'), true);
        assert.deepEqual(await store.counts(kbB), { documents: 2, chunks: 2 });
        await store.dropCollection(kbA);
        assert.deepEqual(ids(await store.searchKeyword(kbB, 'badger', { topK: 10 })).sort(), [
          'only-b',
          'same-id',
        ]);
      });
    });

    describe('documents', () => {
      it('upserts documents and counts documents and chunks', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, [
          doc('a', [
            { text: 'one', embedding: axis(0) },
            { text: 'two', embedding: axis(1) },
            { text: 'three', embedding: axis(2) },
          ]),
          doc('b', [{ text: 'four', embedding: axis(3) }]),
        ]);
        assert.deepEqual(await store.counts(kb), { documents: 2, chunks: 4 });
        await store.upsertDocuments(kb, []);
        assert.deepEqual(await store.counts(kb), { documents: 2, chunks: 4 });
      });

      it('re-upserting an id replaces the document and all its chunks', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, [
          doc('a', [
            { text: 'obsolete zebra stripes', embedding: axis(0) },
            { text: 'obsolete quagga', embedding: axis(1) },
            { text: 'obsolete okapi', embedding: axis(2) },
          ]),
          textDoc('other', 'unrelated text', {}, axis(5)),
        ]);
        await store.upsertDocuments(kb, [
          doc('a', [{ text: 'fresh giraffe', embedding: axis(3) }], { version: 2 }, 'hash-v2'),
        ]);
        assert.deepEqual(await store.counts(kb), { documents: 2, chunks: 2 });
        for (const word of ['zebra', 'quagga', 'okapi', 'obsolete']) {
          assert.deepEqual(await store.searchKeyword(kb, word, { topK: 10 }), [], word);
        }
        // Searching with the old vectors finds only current chunks.
        const hits = await store.searchVector(kb, axis(0), { topK: 10 });
        assert.deepEqual(hits.map((h) => h.content).sort(), ['fresh giraffe', 'unrelated text']);
        const [stored] = (await store.listDocuments(kb, { limit: 1, after: null })).documents;
        assert.ok(stored);
        assert.equal(stored.id, 'a');
        assert.equal(stored.chunkCount, 1);
        assert.equal(stored.contentHash, 'hash-v2');
        assert.deepEqual(stored.metadata, { version: 2 });
        assert.deepEqual(ids(await store.searchKeyword(kb, 'giraffe', { topK: 10 })), ['a']);
      });

      it('a document repeated in one batch ends up as its last version', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, [textDoc('a', 'first pelican'), textDoc('a', 'second heron')]);
        assert.deepEqual(await store.counts(kb), { documents: 1, chunks: 1 });
        assert.deepEqual(await store.searchKeyword(kb, 'pelican', { topK: 5 }), []);
        assert.deepEqual(ids(await store.searchKeyword(kb, 'heron', { topK: 5 })), ['a']);
      });

      it('returns the content hashes of existing ids only, for any number of ids', async () => {
        const kb = await freshKb();
        const docs = Array.from({ length: 30 }, (_, i) => textDoc(`doc-${i}`, `text ${i}`));
        await store.upsertDocuments(kb, docs);
        assert.deepEqual(await store.getContentHashes(kb, []), new Map());
        assert.deepEqual(
          await store.getContentHashes(kb, ['doc-1', 'nope', 'doc-7']),
          new Map([
            ['doc-1', 'hash-doc-1'],
            ['doc-7', 'hash-doc-7'],
          ]),
        );
        // More ids than any bind-parameter limit (999 on old SQLite builds).
        const many = Array.from({ length: 2500 }, (_, i) => `doc-${i}`);
        const hashes = await store.getContentHashes(kb, many);
        assert.equal(hashes.size, 30);
        assert.equal(hashes.get('doc-29'), 'hash-doc-29');
      });

      it('deletes a document with its chunks', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, [
          doc('gone', [
            { text: 'ephemeral mayfly', embedding: axis(0) },
            { text: 'ephemeral moth', embedding: axis(1) },
          ]),
          textDoc('kept', 'durable tortoise', {}, axis(2)),
        ]);
        assert.equal(await store.deleteDocument(kb, 'gone'), true);
        assert.equal(await store.deleteDocument(kb, 'gone'), false);
        assert.equal(await store.deleteDocument(kb, 'never-existed'), false);
        assert.deepEqual(await store.counts(kb), { documents: 1, chunks: 1 });
        assert.deepEqual(await store.searchKeyword(kb, 'ephemeral', { topK: 10 }), []);
        assert.deepEqual(ids(await store.searchVector(kb, axis(0), { topK: 10 })), ['kept']);
        assert.deepEqual(
          await store.getContentHashes(kb, ['gone', 'kept']),
          new Map([['kept', 'hash-kept']]),
        );
      });

      it('pages through documents in id order', async () => {
        const kb = await freshKb();
        const all = Array.from({ length: 25 }, (_, i) => `doc-${String(i).padStart(3, '0')}`);
        // Inserted in reverse so the order must come from the store, not insertion.
        await store.upsertDocuments(
          kb,
          [...all]
            .reverse()
            .map((id) => textDoc(id, `content of ${id}`, { n: Number(id.slice(4)), tag: 'x' })),
        );
        const seen: string[] = [];
        const pageSizes: number[] = [];
        let after: string | null = null;
        do {
          const page: Awaited<ReturnType<VectorStore['listDocuments']>> = await store.listDocuments(kb, {
            limit: 10,
            after,
          });
          pageSizes.push(page.documents.length);
          seen.push(...page.documents.map((d) => d.id));
          for (const d of page.documents) {
            assert.equal(d.content, `content of ${d.id}`);
            assert.equal(d.contentHash, `hash-${d.id}`);
            assert.deepEqual(d.metadata, { n: Number(d.id.slice(4)), tag: 'x' });
            assert.equal(d.chunkCount, 1);
            assert.ok(!Number.isNaN(Date.parse(d.updatedAt)), `updatedAt parses: ${d.updatedAt}`);
          }
          after = page.next;
        } while (after !== null);
        assert.deepEqual(pageSizes, [10, 10, 5]);
        assert.deepEqual(seen, all);
        // A page that ends exactly at the last document says there is no next page.
        const exact = await store.listDocuments(kb, { limit: 5, after: 'doc-019' });
        assert.equal(exact.documents.length, 5);
        assert.equal(exact.next, null);
      });

      it('a batch that fails part-way leaves the earlier state intact', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, [
          doc('a', [
            { text: 'original alpha', embedding: axis(0) },
            { text: 'original beta', embedding: axis(1) },
          ]),
        ]);
        const before = await store.getContentHashes(kb, ['a', 'b', 'c']);
        await assert.rejects(
          store.upsertDocuments(kb, [
            doc('a', [{ text: 'replacement alpha', embedding: axis(2) }], {}, 'hash-new'),
            textDoc('b', 'new bravo'),
            doc('c', [{ text: 'wrong size', embedding: new Float32Array(DIMS + 3).fill(0.5) }]),
          ]),
          Error,
        );
        assert.deepEqual(await store.counts(kb), { documents: 1, chunks: 2 });
        assert.deepEqual(await store.getContentHashes(kb, ['a', 'b', 'c']), before);
        assert.deepEqual(await store.searchKeyword(kb, 'replacement', { topK: 5 }), []);
        assert.deepEqual(await store.searchKeyword(kb, 'bravo', { topK: 5 }), []);
        assert.equal((await store.searchKeyword(kb, 'original', { topK: 5 })).length, 2);
        const nearest = await store.searchVector(kb, axis(2), { topK: 5 });
        assert.deepEqual(nearest.map((h) => h.content).sort(), ['original alpha', 'original beta']);
      });

      it('metadata-only updates keep chunks and vectors and share the batch transaction', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, [textDoc('m', 'metadata moves', { price: 10 }, axis(3))]);
        const updated = await store.upsertDocuments(kb, [textDoc('n', 'new one')], [
          { id: 'm', contentHash: 'hash-m2', metadata: { price: 12 } },
          { id: 'missing', contentHash: 'x', metadata: {} },
        ]);
        assert.equal(updated, 1, 'only existing documents are updated');
        assert.equal((await store.getContentHashes(kb, ['m'])).get('m'), 'hash-m2');
        const [hit] = await store.searchVector(kb, axis(3), { topK: 1, filter: { price: 12 } });
        assert.equal(hit?.documentId, 'm');
        assert.equal(hit?.content, 'metadata moves');
        // A failing batch rolls back its metadata-only updates too.
        await assert.rejects(
          store.upsertDocuments(
            kb,
            [doc('bad', [{ text: 'wrong size', embedding: new Float32Array(DIMS + 3).fill(0.5) }])],
            [{ id: 'm', contentHash: 'hash-m3', metadata: { price: 99 } }],
          ),
          Error,
        );
        assert.equal((await store.getContentHashes(kb, ['m'])).get('m'), 'hash-m2');
      });

      it('rejects embeddings that cannot be compared by cosine', async () => {
        const kb = await freshKb();
        await assert.rejects(
          store.upsertDocuments(kb, [doc('z', [{ text: 'zero', embedding: vec() }])]),
          Error,
        );
        await assert.rejects(
          store.upsertDocuments(kb, [doc('n', [{ text: 'nan', embedding: vec(Number.NaN, 1) }])]),
          Error,
        );
        assert.deepEqual(await store.counts(kb), { documents: 0, chunks: 0 });
      });
    });

    describe('export (store copy)', () => {
      it('gives back every document with its chunks and the exact stored vectors, page by page', async () => {
        const kb = await freshKb();
        // Values float32 cannot hold exactly in decimal, so a lossy path would show.
        const odd = vec(0.1, -1 / 3, Math.PI, 1e-7, -2.5e-3, 0.7071067690849304, 123.456, -0.0001);
        const input = [
          { ...doc('c', [{ text: 'third one', embedding: axis(2) }], { n: 3, ok: true }), keyHash: 'ab'.repeat(16) },
          doc('a', [
            { text: 'first chunk', embedding: odd },
            { text: 'second chunk', embedding: axis(1) },
          ], { at: '2031-01-15T08:30:00Z', price: 9.5, none: null }),
          doc('b', [{ text: 'middle', embedding: angled(30) }]),
        ];
        await store.upsertDocuments(kb, input);
        const first = await store.exportDocuments(kb, { limit: 2, after: null });
        assert.equal(first.dimensions, DIMS);
        assert.deepEqual(first.documents.map((d) => d.id), ['a', 'b']);
        assert.equal(first.next, 'b');
        const second = await store.exportDocuments(kb, { limit: 2, after: first.next });
        assert.deepEqual(second.documents.map((d) => d.id), ['c']);
        assert.equal(second.next, null);
        const byId = new Map([...first.documents, ...second.documents].map((d) => [d.id, d]));
        for (const want of input) {
          const got = byId.get(want.id)!;
          assert.equal(got.content, want.content);
          assert.equal(got.contentHash, want.contentHash);
          assert.deepEqual(got.metadata, want.metadata);
          assert.equal(got.keyHash, want.keyHash);
          assert.deepEqual(
            got.chunks.map((c) => ({ index: c.index, text: c.text, embedding: [...c.embedding] })),
            want.chunks.map((c) => ({ index: c.index, text: c.text, embedding: [...c.embedding] })),
            `document ${want.id}: chunks and vectors bit for bit`,
          );
        }
        // What it exports can be written to another collection and found the same way.
        const copy = await freshKb();
        await store.upsertDocuments(copy, [...first.documents, ...second.documents]);
        assert.deepEqual(await store.counts(copy), await store.counts(kb));
        assert.deepEqual(
          ids(await store.searchVector(copy, odd, { topK: 3 })),
          ids(await store.searchVector(kb, odd, { topK: 3 })),
        );
      });
    });

    describe('vector search', () => {
      // Cosine to axis 0: exact 1, near ~0.966, mid 0.5, orthogonal 0, opposite -1.
      const fixtures = () => [
        textDoc('opposite', 'opposite', { rank: 5 }, vec(-1)),
        textDoc('exact', 'exact', { rank: 1 }, vec(3)), // length must not matter for cosine
        textDoc('orthogonal', 'orthogonal', { rank: 4 }, angled(90)),
        textDoc('mid', 'mid', { rank: 3 }, angled(60)),
        textDoc('near', 'near', { rank: 2 }, angled(15)),
      ];

      it('orders by cosine similarity, scores = cosine in [-1, 1]', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, fixtures());
        const hits = await store.searchVector(kb, axis(0), { topK: 10 });
        assert.deepEqual(ids(hits), ['exact', 'near', 'mid', 'orthogonal', 'opposite']);
        const expected = [1, Math.cos(Math.PI / 12), 0.5, 0, -1];
        hits.forEach((h, i) => {
          assert.ok(h.score >= -1 && h.score <= 1, `score in range: ${h.score}`);
          assert.ok(Math.abs(h.score - expected[i]!) < 1e-5, `${h.documentId}: ${h.score} ≈ ${expected[i]}`);
        });
        for (let i = 1; i < hits.length; i++) assert.ok(hits[i - 1]!.score >= hits[i]!.score);
        assert.equal(hits[0]!.chunkId.length > 0, true);
        assert.equal(new Set(hits.map((h) => h.chunkId)).size, hits.length);
        assert.deepEqual(hits[0]!.metadata, { rank: 1 });
        assert.equal(hits[0]!.content, 'exact');
      });

      it('returns the top K only, and finds chunks of one document separately', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, [
          ...fixtures(),
          doc('multi', [
            { text: 'multi first', embedding: angled(5) },
            { text: 'multi second', embedding: angled(10) },
          ]),
        ]);
        const hits = await store.searchVector(kb, axis(0), { topK: 3 });
        assert.deepEqual(
          hits.map((h) => [h.documentId, h.content]),
          [
            ['exact', 'exact'],
            ['multi', 'multi first'],
            ['multi', 'multi second'],
          ],
        );
        assert.notEqual(hits[1]!.chunkId, hits[2]!.chunkId);
      });

      it('a query vector of the wrong size is an error; a zero query vector matches nothing', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, fixtures());
        await assert.rejects(store.searchVector(kb, new Float32Array(DIMS - 1).fill(1), { topK: 3 }), Error);
        assert.deepEqual(await store.searchVector(kb, vec(), { topK: 3 }), []);
      });
    });

    describe('keyword search', () => {
      const filler = Array.from({ length: 12 }, (_, i) =>
        textDoc(`filler-${i}`, `unrelated filler paragraph number ${i} about weather and tides`),
      );

      it('finds an exact product code and not its siblings', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, [
          ...filler,
          textDoc('b', 'Replacement hinge, part SKU-4471-B, stainless'),
          textDoc('a', 'Replacement hinge, part SKU-4471-A, brass'),
          textDoc('c', 'Bracket SKU-9000-B'),
        ]);
        assert.deepEqual(ids(await store.searchKeyword(kb, 'SKU-4471-B', { topK: 10 })), ['b']);
        assert.deepEqual(ids(await store.searchKeyword(kb, 'sku-4471-b', { topK: 10 })), ['b']);
        assert.deepEqual(ids(await store.searchKeyword(kb, 'SKU-4471', { topK: 10 })).sort(), ['a', 'b']);
        assert.deepEqual(ids(await store.searchKeyword(kb, '"part SKU-4471-A"', { topK: 10 })), ['a']);
        const hits = await store.searchKeyword(kb, 'SKU-4471-B', { topK: 10 });
        assert.equal(hits[0]!.content, 'Replacement hinge, part SKU-4471-B, stainless');
        assert.ok(hits[0]!.score > 0, `higher-is-better score: ${hits[0]!.score}`);
      });

      it('ranks a chunk matching more query terms higher', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, [
          ...filler,
          textDoc('one', 'a red lamp for the desk'),
          textDoc('three', 'a red lamp with a brass base'),
          textDoc('two', 'a red bicycle with a brass bell'),
        ]);
        const hits = await store.searchKeyword(kb, 'red lamp brass', { topK: 10 });
        assert.equal(hits[0]?.documentId, 'three');
        assert.deepEqual(new Set(ids(hits)), new Set(['one', 'two', 'three']));
        for (let i = 1; i < hits.length; i++) assert.ok(hits[i - 1]!.score >= hits[i]!.score);
        assert.deepEqual(ids(await store.searchKeyword(kb, 'lamp', { topK: 1 })).length, 1);
      });

      it('treats operators and punctuation in the query as text, never as syntax', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, [...filler, textDoc('foo', 'foo bar and baz')]);
        const hostile = [
          '"foo AND (',
          'foo AND (',
          'NEAR(foo bar',
          'foo OR',
          'NOT',
          '*',
          'foo*',
          '^foo',
          '-foo',
          'text:foo',
          '{text}: foo',
          '"',
          '""',
          "'",
          '\\',
          ')(',
          'foo" OR "bar',
          '\u0000foo',
          '🦖 foo',
          'x'.repeat(10_000),
          Array.from({ length: 500 }, (_, i) => `w${i}`).join(' '),
        ];
        for (const q of hostile) {
          await assert.doesNotReject(
            store.searchKeyword(kb, q, { topK: 5 }),
            `query ${JSON.stringify(q.slice(0, 40))}`,
          );
        }
        // AND is an ordinary word here (the filler text contains "and"), so foo must merely rank first.
        assert.equal((await store.searchKeyword(kb, '"foo AND (', { topK: 5 }))[0]?.documentId, 'foo');
        assert.deepEqual(ids(await store.searchKeyword(kb, 'foo* ^foo -foo', { topK: 5 })), ['foo']);
        assert.deepEqual(await store.searchKeyword(kb, '', { topK: 5 }), []);
        assert.deepEqual(await store.searchKeyword(kb, '   \n\t ', { topK: 5 }), []);
        assert.deepEqual(await store.searchKeyword(kb, '( ) * " -', { topK: 5 }), []);
        await fc.assert(
          fc.asyncProperty(fc.string({ unit: 'grapheme', maxLength: 40 }), async (q) => {
            const hits = await store.searchKeyword(kb, q, { topK: 3 });
            assert.ok(hits.length <= 3);
          }),
          { numRuns: 300 },
        );
      });
    });

    describe('metadata filters', () => {
      const catalogue = (): DocumentInput[] => [
        textDoc(
          'p1',
          'catalogue lamp',
          { category: 'lamps', price: 10, published: '2025-01-15T00:00:00Z', stock: true },
          angled(0),
        ),
        textDoc(
          'p2',
          'catalogue lamp',
          { category: 'lamps', price: 25.5, published: '2025-03-01T12:00:00Z', stock: false },
          angled(10),
        ),
        textDoc(
          'p3',
          'catalogue chair',
          { category: 'chairs', price: 100, published: '2025-06-19T18:00:00Z', stock: true },
          angled(20),
        ),
        textDoc(
          'p4',
          'catalogue chair',
          { category: 'chairs', price: '10', published: '2024-12-31T23:59:59Z', stock: null },
          angled(30),
        ),
        textDoc('p5', 'catalogue table', { category: 'tables', price: 9, note: 'no date' }, angled(40)),
      ];

      /** Both search kinds return exactly `expected` (all five docs match the query either way). */
      async function assertFilter(kb: string, filter: MetadataFilter, expected: string[]): Promise<void> {
        const v = await store.searchVector(kb, axis(0), { topK: 10, filter });
        const k = await store.searchKeyword(kb, 'catalogue', { topK: 10, filter });
        assert.deepEqual(ids(v).sort(), [...expected].sort(), `vector ${JSON.stringify(filter)}`);
        assert.deepEqual(ids(k).sort(), [...expected].sort(), `keyword ${JSON.stringify(filter)}`);
      }

      it('equality is type-strict', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, catalogue());
        await assertFilter(kb, { category: 'lamps' }, ['p1', 'p2']);
        await assertFilter(kb, { price: 10 }, ['p1']);
        await assertFilter(kb, { price: '10' }, ['p4']);
        await assertFilter(kb, { stock: true }, ['p1', 'p3']);
        await assertFilter(kb, { stock: false }, ['p2']);
        await assertFilter(kb, { stock: null }, ['p4', 'p5']); // null or absent
        await assertFilter(kb, { category: 'lamps', stock: true }, ['p1']);
        await assertFilter(kb, { category: 'nothing' }, []);
        await assertFilter(kb, {}, ['p1', 'p2', 'p3', 'p4', 'p5']);
      });

      it('in matches any listed value', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, catalogue());
        await assertFilter(kb, { category: { in: ['lamps', 'tables'] } }, ['p1', 'p2', 'p5']);
        await assertFilter(kb, { price: { in: [10, 100, '9'] } }, ['p1', 'p3']);
        await assertFilter(kb, { stock: { in: [false, null] } }, ['p2', 'p4', 'p5']);
        await assertFilter(kb, { category: { in: [] } }, []);
      });

      it('gte/lte compare numbers as numbers and ISO times chronologically', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, catalogue());
        // As strings, '9' > '25.5' > '100'; as numbers they are not.
        await assertFilter(kb, { price: { gte: 10, lte: 30 } }, ['p1', 'p2']);
        await assertFilter(kb, { price: { gte: 25.5 } }, ['p2', 'p3']);
        await assertFilter(kb, { price: { lte: 9.5 } }, ['p5']);
        await assertFilter(kb, { published: { gte: '2025-01-01T00:00:00Z', lte: '2025-03-31T23:59:59Z' } }, [
          'p1',
          'p2',
        ]);
        await assertFilter(kb, { published: { lte: '2025-01-01T00:00:00Z' } }, ['p4']);
        await assertFilter(kb, { published: { gte: '2025-06-19T18:00:00Z' } }, ['p3']);
        await assertFilter(kb, { price: { gte: 0 }, category: { in: ['chairs', 'tables'] } }, ['p3', 'p5']);
      });

      it('gt/lt are strict bounds, for numbers and strings alike', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, catalogue());
        await assertFilter(kb, { price: { gt: 10, lt: 100 } }, ['p2']);
        await assertFilter(kb, { price: { gt: 9 } }, ['p1', 'p2', 'p3']);
        await assertFilter(kb, { price: { lt: 10 } }, ['p5']);
        await assertFilter(kb, { price: { gte: 10, lt: 100 } }, ['p1', 'p2']);
        await assertFilter(kb, { price: { gt: 10, lte: 100 } }, ['p2', 'p3']);
        // Strings that are not times compare by byte order; numbers never match a string bound.
        await assertFilter(kb, { category: { gt: 'chairs', lt: 'tables' } }, ['p1', 'p2']);
        await assertFilter(kb, { category: { lt: 'lamps' } }, ['p3', 'p4']);
        await assertFilter(kb, { price: { lt: 'z' } }, ['p4']);
        await assertFilter(kb, { price: { gt: '' } }, ['p4']);
        await assertFilter(kb, { published: { gt: '2025-06-19T18:00:00Z' } }, []);
        await assertFilter(kb, { published: { lt: '2025-01-15T00:00:00Z' } }, ['p4']);
      });

      it('time bounds compare chronologically, whatever the fraction digits and the bound offset', async () => {
        const kb = await freshKb();
        const at: Record<string, MetadataValue> = {
          t1: '2026-01-01T10:30:00Z',
          t2: '2026-01-01T10:30:00.5Z',
          t3: '2026-01-01T10:30:00.123456Z',
          t4: '2026-01-01T10:29:59.999999999Z',
          t5: '2026-01-02T00:00:00Z',
          t6: '2026-01-01T10:30:00.000Z', // the same instant as t1
          t7: '2026-01-01T10:30:00.1Z',
          // Naive, as a SQLite TEXT column holds times: UTC (t8 is the same instant as t1).
          t8: '2026-01-01 10:30:00',
          t9: '2026-01-01 10:30:00.25',
          // Not in a timestamp layout a stored value may have: never matched by a time bound.
          n2: '2026-01-01T12:30:00+02:00',
          n3: 1767263400,
          n4: null,
        };
        await store.upsertDocuments(
          kb,
          Object.entries(at).map(([id, v]) => textDoc(id, 'catalogue', { at: v }, axis(0))),
        );
        const times = ['t1', 't2', 't3', 't4', 't5', 't6', 't7', 't8', 't9'];
        // In plain string order '…10:30:00Z' sorts after '…10:30:00.5Z' ('Z' > '.').
        await assertFilter(kb, { at: { gte: '2026-01-01T10:30:00Z' } }, ['t1', 't2', 't3', 't5', 't6', 't7', 't8', 't9']);
        await assertFilter(kb, { at: { gt: '2026-01-01T10:30:00Z' } }, ['t2', 't3', 't5', 't7', 't9']);
        await assertFilter(kb, { at: { lt: '2026-01-01T10:30:00.5Z' } }, ['t1', 't3', 't4', 't6', 't7', 't8', 't9']);
        await assertFilter(kb, { at: { lte: '2026-01-01T10:30:00.500000Z' } }, ['t1', 't2', 't3', 't4', 't6', 't7', 't8', 't9']);
        await assertFilter(kb, { at: { lte: '2026-01-01T10:30:00Z' } }, ['t1', 't4', 't6', 't8']);
        await assertFilter(kb, { at: { gt: '2026-01-01T10:30:00.1Z', lt: '2026-01-01T10:30:00.5Z' } }, ['t3', 't9']);
        await assertFilter(kb, { at: { gte: '2026-01-01T10:30:00.1000Z', lte: '2026-01-01T10:30:00.1Z' } }, ['t7']);
        // Offsets are converted to UTC first; no zone is UTC; a space may stand for the 'T'.
        await assertFilter(kb, { at: { gte: '2026-01-01T12:30:00+02:00', lt: '2026-01-01 02:30:00.2-08:00' } }, [
          't1',
          't3',
          't6',
          't7',
          't8',
        ]);
        await assertFilter(kb, { at: { lt: '2026-01-01 16:00+0530' } }, ['t4']);
        await assertFilter(kb, { at: { gte: '2026-01-01 10:30:00.123456' } }, ['t2', 't3', 't5', 't9']);
        await assertFilter(kb, { at: { gte: '2026-01-01T23:00:00-01' } }, ['t5']);
        await assertFilter(kb, { at: { gt: '1999-01-01T00:00:00Z' } }, times);
        // A date alone is a plain string bound.
        await assertFilter(kb, { at: { gte: '2026-01-02' } }, ['t5']);
        await assertFilter(kb, { at: { lt: '2026-01-02' } }, [...times.filter((t) => t !== 't5'), 'n2']);
      });

      it('a filter keeps vector results ordered and finds far neighbours that match', async () => {
        const kb = await freshKb();
        // Many near documents that do not match, one far document that does: a KNN-then-filter
        // search with a small K would return nothing.
        const near = Array.from({ length: 50 }, (_, i) =>
          textDoc(`near-${i}`, 'near', { group: 'common' }, angled(i % 5)),
        );
        await store.upsertDocuments(kb, [
          ...near,
          textDoc('far-b', 'far', { group: 'rare' }, angled(170)),
          textDoc('far-a', 'far', { group: 'rare' }, angled(120)),
        ]);
        const hits = await store.searchVector(kb, axis(0), { topK: 1, filter: { group: 'rare' } });
        assert.deepEqual(ids(hits), ['far-a']);
        const both = await store.searchVector(kb, axis(0), { topK: 5, filter: { group: 'rare' } });
        assert.deepEqual(ids(both), ['far-a', 'far-b']);
        assert.ok(Math.abs(both[0]!.score - Math.cos((120 * Math.PI) / 180)) < 1e-5);
      });

      it('rejects malicious or malformed filters with INVALID_REQUEST', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, catalogue());
        const bad: unknown[] = [
          { 'category") OR 1=1 --': 'x' },
          { "x'; DROP TABLE kb_documents; --": 1 },
          { 'a"b': 1 },
          { '$.category': 'lamps' },
          { '': 1 },
          { ['x'.repeat(65)]: 1 },
          { price: { gt: 5, lt: 'z' } },
          { price: { above: 5 } },
          { price: { lt: true } },
          { price: { gt: Number.POSITIVE_INFINITY } },
          { price: {} },
          { price: { in: 'lamps' } },
          { price: { gte: 1, lte: 'z' } },
          { price: { gte: true } },
          { price: [1, 2] },
          { price: { nested: { deeper: 1 } } },
        ];
        for (const filter of bad) {
          const isInvalid = (e: unknown) =>
            e instanceof AppError && e.code === 'INVALID_REQUEST' && e.details.length > 0;
          const f = filter as MetadataFilter;
          await assert.rejects(
            store.searchVector(kb, axis(0), { topK: 3, filter: f }),
            isInvalid,
            JSON.stringify(filter),
          );
          await assert.rejects(
            store.searchKeyword(kb, 'catalogue', { topK: 3, filter: f }),
            isInvalid,
            JSON.stringify(filter),
          );
          await assert.rejects(
            store.searchKeyword(kb, '', { topK: 3, filter: f }),
            isInvalid,
            JSON.stringify(filter),
          );
        }
        // Nothing was harmed.
        assert.deepEqual(await store.counts(kb), { documents: 5, chunks: 5 });
      });

      it('field names with dots, dashes and spaces are plain keys', async () => {
        const kb = await freshKb();
        await store.upsertDocuments(kb, [
          textDoc(
            'd1',
            'catalogue',
            { 'source.table': 'orders', 'due-date': '2025-02-01', 'first name': 'Ada' },
            axis(0),
          ),
          textDoc(
            'd2',
            'catalogue',
            { 'source.table': 'users', 'due-date': '2025-03-01', 'first name': 'Bob' },
            axis(0),
          ),
        ]);
        await assertFilter(kb, { 'source.table': 'orders' }, ['d1']);
        await assertFilter(kb, { 'due-date': { gte: '2025-02-15' } }, ['d2']);
        await assertFilter(kb, { 'first name': { in: ['Bob'] } }, ['d2']);
      });
    });

    describe('rebuilds (a shadow collection)', () => {
      const isChanged = (e: unknown) => e instanceof CollectionsChanged;
      const isNotFound = (e: unknown) => e instanceof AppError && e.code === 'NOT_FOUND';

      /** A collection id nobody has created yet (startShadow creates it). */
      function shadowName(): string {
        collectionCounter += 1;
        return `kb_contract_shadow_${collectionCounter}_${Math.random().toString(36).slice(2, 8)}`;
      }

      /**
       * The shadow's version of a document: same id, content, hash and metadata, its own chunks
       * (another chunking: two chunks) and vectors (another model: `dims` dimensions).
       */
      function rechunked(d: DocumentInput, dims = DIMS, along = 1): DocumentInput {
        return {
          ...d,
          chunks: [
            { index: 0, text: `${d.content} part one`, embedding: axis(along, dims) },
            { index: 1, text: `${d.content} part two`, embedding: axis(along + 1, dims) },
          ],
        };
      }

      /** The same write for the collection and its shadow. */
      function both(kb: string, shadow: string, docs: DocumentInput[], dims = DIMS) {
        return store.upsertDocuments(kb, docs, [], {
          collection: shadow,
          docs: docs.map((d) => rechunked(d, dims)),
          metadataOnly: [],
        });
      }

      it('startShadow creates and links the shadow, idempotently; a write that does not carry it writes nothing', async () => {
        const kb = await freshKb();
        const sh = shadowName();
        await store.upsertDocuments(kb, [textDoc('a', 'anchor text')]);
        assert.deepEqual(await store.collectionState(kb), { dimensions: DIMS, shadow: null, retired: false });
        assert.equal(await store.collectionState(sh), null);

        await store.startShadow(kb, sh, DIMS);
        await store.startShadow(kb, sh, DIMS); // a retried start
        assert.deepEqual(await store.collectionState(kb), { dimensions: DIMS, shadow: sh, retired: false });
        assert.deepEqual(await store.collectionState(sh), { dimensions: DIMS, shadow: null, retired: false });
        assert.deepEqual(await store.counts(sh), { documents: 0, chunks: 0 });
        // Another rebuild cannot start beside it.
        const other = shadowName();
        await assert.rejects(store.startShadow(kb, other, DIMS), isChanged);
        assert.equal(await store.collectionState(other), null);

        // Written as if no rebuild had started: refused whole, in either collection.
        await assert.rejects(store.upsertDocuments(kb, [textDoc('b', 'bystander text')]), isChanged);
        await assert.rejects(
          store.upsertDocuments(kb, [], [{ id: 'a', contentHash: 'hash-moved', metadata: { moved: true } }]),
          isChanged,
        );
        // Carrying a shadow that is not the linked one is refused the same way.
        await assert.rejects(
          store.upsertDocuments(kb, [textDoc('b', 'bystander text')], [], {
            collection: other,
            docs: [rechunked(textDoc('b', 'bystander text'))],
            metadataOnly: [],
          }),
          isChanged,
        );
        assert.deepEqual(await store.counts(kb), { documents: 1, chunks: 1 });
        assert.deepEqual(await store.getContentHashes(kb, ['a', 'b']), new Map([['a', 'hash-a']]));
        assert.deepEqual(await store.searchKeyword(kb, 'bystander', { topK: 5 }), []);
        assert.deepEqual(await store.counts(sh), { documents: 0, chunks: 0 });

        // A collection that does not exist has no rebuild to start.
        const nowhere = shadowName();
        await assert.rejects(store.startShadow('kb_contract_missing', nowhere, DIMS), isNotFound);
        assert.equal(await store.collectionState(nowhere), null);
      });

      it('a write carrying the shadow part lands in both collections, each with its own chunks', async () => {
        const kb = await freshKb();
        const sh = shadowName();
        await store.startShadow(kb, sh, DIMS);
        await store.upsertDocuments(kb, [doc('d1', [{ text: 'walrus tusk', embedding: axis(0) }])], [], {
          collection: sh,
          docs: [
            doc('d1', [
              { text: 'walrus tusk', embedding: axis(1) },
              { text: 'walrus whiskers', embedding: axis(2) },
            ]),
          ],
          metadataOnly: [],
        });
        assert.deepEqual(await store.counts(kb), { documents: 1, chunks: 1 });
        assert.deepEqual(await store.counts(sh), { documents: 1, chunks: 2 });
        assert.deepEqual(ids(await store.searchVector(kb, axis(0), { topK: 1 })), ['d1']);
        const [hit] = await store.searchVector(sh, axis(2), { topK: 1 });
        assert.equal(hit?.content, 'walrus whiskers');
        assert.ok(hit && Math.abs(hit.score - 1) < 1e-6);
        assert.deepEqual(await store.searchKeyword(kb, 'whiskers', { topK: 5 }), []);
        assert.deepEqual(ids(await store.searchKeyword(sh, 'whiskers', { topK: 5 })), ['d1']);

        // Metadata-only updates reach the shadow's part too.
        const update = { id: 'd1', contentHash: 'hash-d1-v2', metadata: { v: 2 } };
        assert.equal(
          await store.upsertDocuments(kb, [], [update], { collection: sh, docs: [], metadataOnly: [update] }),
          1,
        );
        for (const c of [kb, sh]) {
          assert.deepEqual(await store.getContentHashes(c, ['d1']), new Map([['d1', 'hash-d1-v2']]), c);
          assert.deepEqual((await store.listDocuments(c, { limit: 1, after: null })).documents[0]?.metadata, {
            v: 2,
          });
        }

        // A bad document in the shadow's part rolls back the collection's part as well.
        await assert.rejects(
          store.upsertDocuments(kb, [textDoc('d2', 'narwhal', {}, axis(0))], [], {
            collection: sh,
            docs: [doc('d2', [{ text: 'narwhal', embedding: new Float32Array(DIMS) }])],
            metadataOnly: [],
          }),
        );
        assert.deepEqual(await store.getContentHashes(kb, ['d2']), new Map());
        assert.deepEqual(await store.counts(sh), { documents: 1, chunks: 2 });
      });

      it('deletes reach the shadow, even a document only the shadow holds', async () => {
        const kb = await freshKb();
        const sh = shadowName();
        await store.startShadow(kb, sh, DIMS);
        await both(kb, sh, [textDoc('a', 'alpha'), textDoc('b', 'beta'), textDoc('c', 'gamma')]);
        await store.upsertDocuments(kb, [], [], {
          collection: sh,
          docs: [rechunked(textDoc('x', 'stray'))],
          metadataOnly: [],
        });
        assert.equal(await store.deleteDocument(kb, 'a'), true);
        assert.equal(await store.deleteDocuments(kb, ['b', 'x', 'nope']), 1);
        assert.equal(await store.deleteDocument(kb, 'x'), false);
        assert.deepEqual(await store.counts(kb), { documents: 1, chunks: 1 });
        assert.deepEqual(await store.counts(sh), { documents: 1, chunks: 2 });
        // Every chunk left in the shadow is one of c's two.
        assert.deepEqual(ids(await store.searchKeyword(sh, 'alpha beta gamma stray', { topK: 5 })), ['c', 'c']);
        assert.deepEqual(ids(await store.searchVector(sh, axis(1), { topK: 5 })), ['c', 'c']);
      });

      it('a shadow of other dimensions: a 4-dimension collection rebuilt into 8', async () => {
        const kb = await freshKb(4);
        const sh = shadowName();
        await store.upsertDocuments(kb, [textDoc('old', 'before the rebuild', {}, axis(0, 4))]);
        await store.startShadow(kb, sh, 8);
        assert.deepEqual(await store.collectionState(sh), { dimensions: 8, shadow: null, retired: false });
        await store.upsertDocuments(kb, [textDoc('new', 'during the rebuild', {}, axis(1, 4))], [], {
          collection: sh,
          docs: [rechunked(textDoc('new', 'during the rebuild'), 8, 5)],
          metadataOnly: [],
        });
        // Vectors of the collection's dimensions are refused in the shadow, and the other way round.
        await assert.rejects(both(kb, sh, [textDoc('bad', 'wrong size', {}, axis(1, 4))], 4));
        assert.deepEqual(await store.counts(kb), { documents: 2, chunks: 2 });
        assert.deepEqual(await store.counts(sh), { documents: 1, chunks: 2 });
        // (The 4-dimension collection is searched by keyword only: the SQLite runs count its
        // exact vector scans, and it has no bit index.)
        assert.deepEqual(ids(await store.searchKeyword(kb, 'rebuild', { topK: 5 })).sort(), ['new', 'old']);
        assert.deepEqual(ids(await store.searchVector(sh, axis(6, 8), { topK: 1 })), ['new']);
        const copied = await store.copyToShadow(
          kb,
          sh,
          [rechunked(textDoc('old', 'before the rebuild'), 8, 3)],
          new Map([['old', 'hash-old']]),
        );
        assert.equal(copied, 1);
        assert.deepEqual(await store.shadowDifferences(kb, sh, 10), { missing: [], extra: [] });
        assert.equal(await store.promoteShadow(kb, sh), true);
        assert.deepEqual(ids(await store.searchVector(sh, axis(3, 8), { topK: 1 })), ['old']);
        await store.dropCollection(kb);
      });

      it('copyToShadow inserts only what the shadow lacks and the collection still holds unchanged', async () => {
        const kb = await freshKb();
        const sh = shadowName();
        const names = ['a', 'b', 'c', 'd', 'e'];
        await store.upsertDocuments(
          kb,
          names.map((n) => textDoc(n, `original ${n}`)),
        );
        // What the rebuild reads before it starts copying: ids and hashes.
        const expected = await store.getContentHashes(kb, names);
        await store.startShadow(kb, sh, DIMS);
        // Meanwhile writes reach both: b changes, c is rewritten unchanged, e is deleted.
        await both(kb, sh, [doc('b', [{ text: 'changed b', embedding: axis(0) }], {}, 'hash-b-v2')]);
        await both(kb, sh, [textDoc('c', 'original c')]);
        await store.deleteDocument(kb, 'e');
        // The rebuild's copy, computed from what it read earlier.
        const copy = names.map((n) => rechunked(textDoc(n, `original ${n}`)));
        assert.equal(await store.copyToShadow(kb, sh, copy, expected), 2);
        assert.deepEqual(
          await store.getContentHashes(sh, names),
          new Map([
            ['a', 'hash-a'],
            ['b', 'hash-b-v2'],
            ['c', 'hash-c'],
            ['d', 'hash-d'],
          ]),
        );
        // The newer b was not overwritten with the older copy.
        const [b] = await store.getDocuments(sh, ['b']);
        assert.deepEqual(
          b?.chunks.map((ch) => ch.text),
          ['changed b part one', 'changed b part two'],
        );
        // Copying again inserts nothing.
        assert.equal(await store.copyToShadow(kb, sh, copy, expected), 0);
        assert.deepEqual(await store.counts(sh), { documents: 4, chunks: 8 });
        assert.deepEqual(await store.shadowDifferences(kb, sh, 10), { missing: [], extra: [] });
        // Into a collection that is not (or no longer) the shadow: refused.
        await assert.rejects(store.copyToShadow(kb, shadowName(), copy, expected), isChanged);
        await store.dropShadow(kb, sh);
        await assert.rejects(store.copyToShadow(kb, sh, copy, expected), isChanged);
      });

      it('shadowDifferences lists missing and extra ids in id order; promoteShadow swaps only when there are none', async () => {
        const kb = await freshKb();
        const sh = shadowName();
        await store.upsertDocuments(kb, [textDoc('a', 'alpha'), textDoc('b', 'beta'), textDoc('c', 'gamma')]);
        await store.startShadow(kb, sh, DIMS);
        assert.deepEqual(await store.shadowDifferences(kb, sh, 10), { missing: ['a', 'b', 'c'], extra: [] });
        await store.copyToShadow(kb, sh, [rechunked(textDoc('a', 'alpha'))], new Map([['a', 'hash-a']]));
        // b stored in the shadow with another hash, x only in the shadow.
        await store.upsertDocuments(kb, [], [], {
          collection: sh,
          docs: [
            { ...rechunked(textDoc('b', 'beta')), contentHash: 'hash-b-other' },
            rechunked(textDoc('x', 'stray')),
          ],
          metadataOnly: [],
        });
        assert.deepEqual(await store.shadowDifferences(kb, sh, 10), { missing: ['b', 'c'], extra: ['x'] });
        assert.deepEqual(await store.shadowDifferences(kb, sh, 1), { missing: ['b'], extra: ['x'] });
        assert.equal(await store.promoteShadow(kb, sh), false);
        assert.deepEqual(await store.collectionState(kb), { dimensions: DIMS, shadow: sh, retired: false });

        await both(kb, sh, [textDoc('b', 'beta'), textDoc('c', 'gamma')]);
        assert.equal(await store.promoteShadow(kb, sh), false, 'x is still extra');
        await store.deleteDocument(kb, 'x');
        assert.deepEqual(await store.shadowDifferences(kb, sh, 10), { missing: [], extra: [] });
        assert.equal(await store.promoteShadow(kb, 'kb_contract_not_its_shadow'), false);
        assert.equal(await store.promoteShadow(kb, sh), true);
        assert.equal(await store.promoteShadow(kb, sh), true, 'a repeated promote answers as the first');
        assert.equal(await store.promoteShadow(kb, 'kb_contract_not_its_shadow'), false);
        assert.deepEqual(await store.collectionState(kb), { dimensions: DIMS, shadow: null, retired: true });
        assert.deepEqual(await store.collectionState(sh), { dimensions: DIMS, shadow: null, retired: false });
        const retired = await store.retiredCollections();
        assert.ok(retired.includes(kb) && !retired.includes(sh), retired.join(', '));

        // The retired collection refuses every write, with or without a shadow part...
        await assert.rejects(store.upsertDocuments(kb, [textDoc('d', 'delta')]), isChanged);
        await assert.rejects(both(kb, sh, [textDoc('d', 'delta')]), isChanged);
        await assert.rejects(store.deleteDocument(kb, 'a'), isChanged);
        await assert.rejects(store.deleteDocuments(kb, ['a', 'b']), isChanged);
        await assert.rejects(store.startShadow(kb, shadowName(), DIMS), isChanged);
        // ...and still answers reads until it is dropped.
        assert.deepEqual(await store.counts(kb), { documents: 3, chunks: 3 });
        assert.deepEqual(ids(await store.searchKeyword(kb, 'beta', { topK: 5 })), ['b']);
        assert.equal((await store.searchVector(kb, vec(1, 1, 1), { topK: 5 })).length, 3);
        assert.deepEqual(
          (await store.listDocuments(kb, { limit: 10, after: null })).documents.map((d) => d.id),
          ['a', 'b', 'c'],
        );
        assert.deepEqual(
          (await store.exportDocuments(kb, { limit: 10, after: null })).documents.map((d) => d.id),
          ['a', 'b', 'c'],
        );
        assert.equal((await store.getContentHashes(kb, ['a', 'b', 'c'])).size, 3);

        // The promoted collection is a plain one: written without a shadow part; dropShadow on the
        // old link leaves it alone.
        await store.dropShadow(kb, sh);
        await store.upsertDocuments(sh, [textDoc('d', 'delta')]);
        assert.deepEqual(await store.counts(sh), { documents: 4, chunks: 7 });

        await store.dropCollection(kb);
        assert.ok(!(await store.retiredCollections()).includes(kb));
        assert.deepEqual(await store.counts(sh), { documents: 4, chunks: 7 });
      });

      it('dropShadow unlinks and drops the shadow, idempotently; writes without it then succeed', async () => {
        const kb = await freshKb();
        const sh = shadowName();
        await store.startShadow(kb, sh, DIMS);
        await both(kb, sh, [textDoc('a', 'alpha')]);
        // Naming another collection drops nothing.
        await store.dropShadow(kb, 'kb_contract_not_its_shadow');
        assert.equal((await store.collectionState(kb))?.shadow, sh);

        await store.dropShadow(kb, sh);
        await store.dropShadow(kb, sh);
        assert.deepEqual(await store.collectionState(kb), { dimensions: DIMS, shadow: null, retired: false });
        assert.equal(await store.collectionState(sh), null);
        await assert.rejects(store.counts(sh), isNotFound);
        // A writer that still carries the cancelled shadow is told to re-read.
        await assert.rejects(both(kb, sh, [textDoc('b', 'beta')]), isChanged);
        await store.upsertDocuments(kb, [textDoc('b', 'beta')]);
        assert.equal(await store.deleteDocument(kb, 'a'), true);
        assert.deepEqual(await store.counts(kb), { documents: 1, chunks: 1 });
        assert.equal(await store.promoteShadow(kb, sh), false);
        // A new rebuild can start.
        const next = shadowName();
        await store.startShadow(kb, next, DIMS);
        assert.equal((await store.collectionState(kb))?.shadow, next);
        await store.dropCollection(kb);
      });

      it('dropCollection drops its shadow too', async () => {
        const kb = await freshKb();
        const sh = shadowName();
        await store.startShadow(kb, sh, DIMS);
        await both(kb, sh, [textDoc('a', 'alpha')]);
        await store.dropCollection(kb);
        assert.equal(await store.collectionState(kb), null);
        assert.equal(await store.collectionState(sh), null);
        await assert.rejects(store.counts(sh), isNotFound);
        await assert.rejects(store.searchKeyword(sh, 'alpha', { topK: 1 }), isNotFound);
      });

      it('getDocuments gives back the existing ones with their chunks and exact vectors', async () => {
        const kb = await freshKb();
        const odd = vec(0.1, -1 / 3, Math.PI, 1e-7, -2.5e-3, 0.7071067690849304, 123.456, -0.0001);
        const input: DocumentInput[] = [
          {
            ...doc(
              'p',
              [
                { text: 'first', embedding: odd },
                { text: 'second', embedding: axis(4) },
              ],
              { n: 1, at: null },
            ),
            keyHash: 'cd'.repeat(16),
          },
          doc('q', [{ text: 'only', embedding: angled(40) }], { tag: 'x' }),
        ];
        await store.upsertDocuments(kb, input);
        assert.deepEqual(await store.getDocuments(kb, []), []);
        const got = await store.getDocuments(kb, ['q', 'missing', 'p']);
        assert.deepEqual(got.map((d) => d.id).sort(), ['p', 'q']);
        const byId = new Map(got.map((d) => [d.id, d]));
        for (const want of input) {
          const d = byId.get(want.id)!;
          assert.equal(d.content, want.content);
          assert.equal(d.contentHash, want.contentHash);
          assert.deepEqual(d.metadata, want.metadata);
          assert.equal(d.keyHash, want.keyHash);
          assert.deepEqual(
            d.chunks.map((c) => ({ index: c.index, text: c.text, embedding: [...c.embedding] })),
            want.chunks.map((c) => ({ index: c.index, text: c.text, embedding: [...c.embedding] })),
          );
        }
        await assert.rejects(store.getDocuments('kb_contract_missing', ['p']), isNotFound);
      });
    });
  });
}
