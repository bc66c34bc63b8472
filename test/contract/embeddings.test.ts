/**
 * The EmbeddingProvider contract, run against every adapter: local (the real model, loaded once
 * for this file), openai (against a fake OpenAI-compatible server on 127.0.0.1) and hashing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HashingEmbeddingProvider } from '../../src/embeddings/hashing/index.js';
import { LocalEmbeddingProvider } from '../../src/embeddings/local/index.js';
import { type FakeOpenAIServer, startFakeOpenAIServer } from '../helpers/fake-openai.js';
import { OpenAIEmbeddingProvider } from '../../src/embeddings/openai/index.js';
import type { EmbeddingProvider } from '../../src/embeddings/port.js';
import { dot } from '../../src/embeddings/vectors.js';

interface Adapter {
  name: string;
  /** Does "similar" mean meaning (a paraphrase without shared words), or only shared words? */
  semantic: boolean;
  /** A text long enough to exceed the adapter's per-input limit. */
  longText: string;
  setup(): Promise<{ provider: EmbeddingProvider; teardown(): Promise<void> }>;
}

const sentence = 'The nightly job copies customer orders from the billing database into the knowledge base. ';

const adapters: Adapter[] = [
  {
    name: 'local (Universal Sentence Encoder lite)',
    semantic: true,
    longText: sentence.repeat(120), // ~11k characters, over the 4000-character piece size
    async setup() {
      const provider = new LocalEmbeddingProvider({ threads: 2 });
      return { provider, teardown: () => provider.close() };
    },
  },
  {
    name: 'openai (fake OpenAI-compatible server)',
    semantic: false,
    longText: sentence.repeat(120), // ~1900 tokens, over the 500-token input limit set below
    async setup() {
      const server: FakeOpenAIServer = await startFakeOpenAIServer({ apiKey: 'sk-contract' });
      const provider = new OpenAIEmbeddingProvider({
        baseUrl: server.baseUrl,
        apiKey: 'sk-contract',
        maxTokensPerInput: 500,
      });
      return {
        provider,
        teardown: async () => {
          await provider.close();
          await server.close();
        },
      };
    },
  },
  {
    name: 'hashing',
    semantic: false,
    longText: sentence.repeat(120),
    async setup() {
      const provider = new HashingEmbeddingProvider();
      return { provider, teardown: () => provider.close() };
    },
  },
];

const texts = [
  'How do I reset my password?',
  'Shipping to Canada takes five business days.',
  'The invoice total includes VAT.',
  'Our office is closed on public holidays.',
  'Refunds are issued within 14 days.',
];

const close = (a: Float32Array, b: Float32Array, tol = 1e-5) =>
  a.length === b.length && a.every((x, i) => Math.abs(x - b[i]!) <= tol);
const norm = (v: Float32Array) => Math.sqrt(dot(v, v));

for (const adapter of adapters) {
  describe(`EmbeddingProvider contract: ${adapter.name}`, () => {
    let provider: EmbeddingProvider;
    let teardown: () => Promise<void>;

    before(async () => {
      ({ provider, teardown } = await adapter.setup());
    });
    after(async () => {
      await teardown();
    });

    it('returns one unit vector per input, of dimensions() length', async () => {
      const vectors = await provider.embed(texts);
      const dims = await provider.dimensions();
      assert.equal(vectors.length, texts.length);
      for (const v of vectors) {
        assert.ok(v instanceof Float32Array);
        assert.equal(v.length, dims);
        assert.ok(Math.abs(norm(v) - 1) < 1e-4, `norm ${norm(v)}`);
      }
    });

    it('returns vectors in input order', async () => {
      const batch = await provider.embed(texts);
      const reversed = await provider.embed([...texts].reverse());
      for (let i = 0; i < texts.length; i++) {
        const [alone] = await provider.embed([texts[i]!]);
        assert.ok(close(batch[i]!, alone!), `batch[${i}] is the vector of text ${i}`);
        assert.ok(
          close(reversed[texts.length - 1 - i]!, alone!),
          `reversed batch keeps the mapping for text ${i}`,
        );
      }
    });

    it('gives [] for an empty list', async () => {
      assert.deepEqual(await provider.embed([]), []);
    });

    it('gives the same vector for the same text', async () => {
      const [a, b, c] = await provider.embed(['refund policy', 'something else', 'refund policy']);
      const [d] = await provider.embed(['refund policy']);
      assert.ok(close(a!, c!), 'within one batch');
      assert.ok(close(a!, d!), 'across calls');
      assert.ok(!close(a!, b!));
    });

    it('places similar sentences closer than unrelated ones', async () => {
      const cases = [
        [
          'The cat sat on the mat.',
          'A cat was sitting on the mat.',
          'Quarterly revenue grew by ten percent.',
        ],
        ['How do I reset my password?', 'How can I reset a forgotten password?', 'The train leaves at noon.'],
        ...(adapter.semantic
          ? [
              ['How old are you?', 'What is your age?', 'The invoice was paid by bank transfer.'],
              ['I love dogs.', 'Puppies are my favourite animals.', 'Tax returns are due in April.'],
            ]
          : []),
      ];
      for (const [anchor, similar, unrelated] of cases) {
        const [a, s, u] = await provider.embed([anchor!, similar!, unrelated!]);
        const simScore = dot(a!, s!);
        const unrelScore = dot(a!, u!);
        assert.ok(
          simScore > unrelScore,
          `"${anchor}": similar ${simScore.toFixed(3)} <= unrelated ${unrelScore.toFixed(3)}`,
        );
      }
    });

    it('embeds a text over the per-input limit as one vector instead of rejecting it', async () => {
      const [long, short] = await provider.embed([adapter.longText, sentence]);
      assert.ok(Math.abs(norm(long!) - 1) < 1e-4);
      assert.ok(
        dot(long!, short!) > 0.8,
        `a repetition of a sentence stays close to it (${dot(long!, short!).toFixed(3)})`,
      );
    });

    it('gives blank texts a unit vector', async () => {
      const [empty, spaces] = await provider.embed(['', '  \n ']);
      assert.ok(Math.abs(norm(empty!) - 1) < 1e-4);
      assert.ok(close(empty!, spaces!), 'all blank texts embed alike');
    });

    it('probe() reports the vector length', async () => {
      assert.ok(provider.probe, 'every adapter implements probe');
      const result = await provider.probe();
      assert.equal(result.dimensions, await provider.dimensions());
      assert.ok(result.latencyMs >= 0);
    });

    it('rejects with the abort reason when the signal is already aborted', async () => {
      const ctrl = new AbortController();
      ctrl.abort(new Error('stop'));
      await assert.rejects(provider.embed(texts, { signal: ctrl.signal }), /stop/);
    });
  });
}
