/**
 * EmbedOptions.onProgress (embeddings/port.ts): the local model (one call cut into sub-batches
 * for its worker threads) and the OpenAI-compatible adapter (one call cut into requests) tell how
 * many of the call's texts are embedded as parts finish — more than once for a call of several
 * parts, never going down, ending at every text — and the vectors are the same as without it.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { LocalEmbeddingProvider } from '../../src/embeddings/local/index.js';
import { OpenAIEmbeddingProvider } from '../../src/embeddings/openai/provider.js';
import type { EmbeddingProvider } from '../../src/embeddings/port.js';
import { startFakeOpenAIServer } from '../helpers/fake-openai.js';

const TEXTS = Array.from({ length: 100 }, (_, i) => `text number ${i} about ${i % 2 ? 'winter coats' : 'summer tents'}`);

async function check(provider: EmbeddingProvider, parts: number): Promise<void> {
  const told: number[] = [];
  const vectors = await provider.embed(TEXTS, { onProgress: (done) => told.push(done) });
  assert.equal(vectors.length, TEXTS.length);
  assert.equal(told.length, parts, `told once per part: ${told.join(', ')}`);
  for (let i = 1; i < told.length; i++) assert.ok(told[i]! >= told[i - 1]!, `never goes down: ${told.join(', ')}`);
  assert.ok(told[0]! > 0 && told[0]! < TEXTS.length, `the first part is some of the texts: ${told.join(', ')}`);
  assert.equal(told.at(-1), TEXTS.length, 'ends at every text');
  const plain = await provider.embed(TEXTS);
  assert.deepEqual(vectors, plain, 'the same vectors as without onProgress');
}

describe('embedding progress', () => {
  const closers: Array<() => Promise<void>> = [];
  after(async () => {
    for (const close of closers) await close();
  });

  it('local model: told as sub-batches finish (100 texts in sub-batches of 32: 4)', { timeout: 120_000 }, async () => {
    const provider = new LocalEmbeddingProvider({ threads: 1, batchSize: 32 });
    closers.push(() => provider.close());
    await check(provider, 4);
  });

  it('OpenAI-compatible: told as requests are answered (100 inputs at 25 per request: 4)', async () => {
    const server = await startFakeOpenAIServer();
    closers.push(() => server.close());
    const provider = new OpenAIEmbeddingProvider({ baseUrl: server.baseUrl, maxInputsPerRequest: 25, concurrency: 1 });
    closers.push(() => provider.close());
    await check(provider, 4);
  });
});
