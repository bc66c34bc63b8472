import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AppError } from '../../src/core/errors.js';
import { createEmbeddingProvider } from '../../src/embeddings/factory.js';
import { HashingEmbeddingProvider } from '../../src/embeddings/hashing/index.js';
import { LocalEmbeddingProvider } from '../../src/embeddings/local/index.js';
import { OpenAIEmbeddingProvider } from '../../src/embeddings/openai/index.js';
import type { EmbeddingConfig } from '../../src/embeddings/port.js';

const invalid = (details: RegExp) => (e: unknown) =>
  e instanceof AppError && e.code === 'INVALID_REQUEST' && e.details.some((d) => details.test(d));

describe('createEmbeddingProvider', () => {
  it('builds the local provider (no model is loaded until first use)', async () => {
    const p = createEmbeddingProvider({ provider: 'local' }, { local: { threads: 1 } });
    assert.ok(p instanceof LocalEmbeddingProvider);
    assert.equal(p.id, 'local:use-lite');
    assert.equal(await p.dimensions(), 512);
    assert.equal(p.workersStarted, 0);
    await p.close();
    const named = createEmbeddingProvider({
      provider: 'local',
      model: 'universal-sentence-encoder-lite',
      dimensions: 512,
    });
    await named.close();
  });

  it('refuses local settings that cannot be honoured', () => {
    assert.throws(
      () => createEmbeddingProvider({ provider: 'local', model: 'bge-small' }),
      invalid(/one model/),
    );
    assert.throws(
      () => createEmbeddingProvider({ provider: 'local', dimensions: 384 }),
      invalid(/512-dimensional/),
    );
    assert.throws(
      () => createEmbeddingProvider({ provider: 'local', api_key: 'sk-x' }),
      invalid(/openai provider only/),
    );
  });

  it('builds the OpenAI-compatible provider from the knowledge-base config', async () => {
    const p = createEmbeddingProvider({
      provider: 'openai',
      api_key: 'sk-x',
      model: 'nomic-embed-text',
      base_url: 'http://127.0.0.1:11434/v1',
      dimensions: 256,
    });
    assert.ok(p instanceof OpenAIEmbeddingProvider);
    assert.equal(p.id, 'openai:nomic-embed-text');
    assert.equal(await p.dimensions(), 256, 'given dimensions are known without a request');
    await p.close();
    const d = createEmbeddingProvider({ provider: 'openai' });
    assert.equal(d.id, 'openai:text-embedding-3-small');
  });

  it('reports a bad base_url or dimensions as INVALID_REQUEST, without the key', () => {
    assert.throws(
      () => createEmbeddingProvider({ provider: 'openai', base_url: 'ftp://example.com' }),
      invalid(/base_url/),
    );
    assert.throws(
      () => createEmbeddingProvider({ provider: 'openai', base_url: 'not a url', api_key: 'sk-secret' }),
      (e: unknown) => {
        assert.ok(e instanceof AppError);
        assert.ok(!JSON.stringify({ m: e.message, d: e.details }).includes('sk-secret'));
        return true;
      },
    );
    assert.throws(
      () => createEmbeddingProvider({ provider: 'openai', dimensions: 0 }),
      invalid(/dimensions/),
    );
  });

  it('offers the hashing provider only when the deployment allows it', async () => {
    assert.throws(() => createEmbeddingProvider({ provider: 'hashing' }), invalid(/'local' or 'openai'/));
    const p = createEmbeddingProvider({ provider: 'hashing', dimensions: 32 }, { allowHashing: true });
    assert.ok(p instanceof HashingEmbeddingProvider);
    assert.equal(await p.dimensions(), 32);
  });

  it('refuses an unknown provider', () => {
    assert.throws(
      () => createEmbeddingProvider({ provider: 'cohere' } as unknown as EmbeddingConfig),
      invalid(/got "cohere"/),
    );
  });
});
