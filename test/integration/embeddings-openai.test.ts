/**
 * The OpenAI-compatible adapter against a real HTTP server on 127.0.0.1 that records requests and
 * fails on cue: batching limits, retries (429 + Retry-After, 5xx, timeouts, dropped connections),
 * non-retryable rejections that never leak the key, splitting of over-long inputs, aborts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import { countTokens } from 'gpt-tokenizer/encoding/cl100k_base';
import { EmbeddingProviderError } from '../../src/embeddings/errors.js';
import { HashingEmbeddingProvider } from '../../src/embeddings/hashing/index.js';
import {
  type FakeOpenAIOptions,
  type FakeOpenAIServer,
  type FakeReply,
  startFakeOpenAIServer,
} from '../helpers/fake-openai.js';
import { type OpenAIEmbeddingOptions, OpenAIEmbeddingProvider } from '../../src/embeddings/openai/index.js';
import { parseRetryAfter } from '../../src/embeddings/openai/provider.js';
import { dot } from '../../src/embeddings/vectors.js';

const KEY = 'sk-test-0123456789abcdef';
/**
 * Fast retries so the suite stays quick; Retry-After tests override where it matters. The request
 * timeout is long: only the tests of hanging requests should ever reach it, and a normal answer
 * from the fake server may take seconds on a loaded machine.
 */
const FAST: OpenAIEmbeddingOptions = {
  apiKey: KEY,
  retryBaseDelayMs: 5,
  retryMaxDelayMs: 20,
  timeoutMs: 30_000,
};

async function withServer(
  serverOptions: FakeOpenAIOptions,
  providerOptions: OpenAIEmbeddingOptions,
  fn: (provider: OpenAIEmbeddingProvider, server: FakeOpenAIServer) => Promise<void>,
): Promise<void> {
  const server = await startFakeOpenAIServer({ apiKey: KEY, ...serverOptions });
  let provider: OpenAIEmbeddingProvider | undefined;
  try {
    provider = new OpenAIEmbeddingProvider({ ...FAST, baseUrl: server.baseUrl, ...providerOptions });
    await fn(provider, server);
  } finally {
    await provider?.close();
    await server.close();
  }
}

/** Replies from a list, one per request, then normal answers. */
const sequence =
  (...replies: (FakeReply | undefined)[]) =>
  (req: { n: number }) =>
    replies[req.n - 1];

const inputsOf = (server: FakeOpenAIServer) => server.requests.map((r) => r.body?.input as string[]);
const tokensOf = (texts: string[]) =>
  texts.reduce((s, t) => s + countTokens(t, { disallowedSpecial: new Set() }), 0);

async function rejection(p: Promise<unknown>): Promise<EmbeddingProviderError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof EmbeddingProviderError, `expected EmbeddingProviderError, got ${inspect(e)}`);
    return e;
  }
  assert.fail('expected a rejection');
}

describe('OpenAI-compatible embeddings: batching', () => {
  it('keeps every request under the input count and token budget, and returns vectors in order', async () => {
    const texts = Array.from({ length: 57 }, (_, i) =>
      `Row ${i}: ${'lorem ipsum dolor sit amet '.repeat(1 + (i % 7))}`.trim(),
    );
    await withServer({}, { maxInputsPerRequest: 10, maxTokensPerRequest: 200 }, async (provider, server) => {
      const vectors = await provider.embed(texts);
      const batches = inputsOf(server);
      assert.ok(batches.length >= 6, `${batches.length} requests`);
      for (const b of batches) {
        assert.ok(b.length <= 10, `request with ${b.length} inputs`);
        assert.ok(tokensOf(b) <= 200, `request with ${tokensOf(b)} tokens`);
      }
      assert.deepEqual(batches.flat().sort(), [...texts].sort(), 'every text sent once');
      // The fake answers with hashing vectors (scaled, in reverse order): they must come back unit-length and in input order.
      const expected = await new HashingEmbeddingProvider({ dimensions: 64 }).embed(texts);
      vectors.forEach((v, i) => {
        assert.ok(dot(v, expected[i]!) > 0.99999, `vector ${i}`);
      });
    });
  });

  it('sends model, dimensions and encoding_format, and the key only in the Authorization header', async () => {
    await withServer({}, { model: 'text-embedding-3-large', dimensions: 32 }, async (provider, server) => {
      const [v] = await provider.embed(['hello']);
      assert.equal(v!.length, 32);
      assert.equal(await provider.dimensions(), 32);
      const req = server.requests[0]!;
      assert.equal(req.path, '/v1/embeddings');
      assert.deepEqual(req.body, {
        input: ['hello'],
        model: 'text-embedding-3-large',
        encoding_format: 'float',
        dimensions: 32,
      });
      assert.equal(req.headers.authorization, `Bearer ${KEY}`);
    });
  });

  it('learns dimensions from the first response, and decodes base64 answers', async () => {
    await withServer({ dimensions: 48 }, { encodingFormat: 'base64' }, async (provider, server) => {
      assert.equal(await provider.dimensions(), 48, 'probes when nothing is known yet');
      const [v] = await provider.embed(['hello']);
      const [expected] = await new HashingEmbeddingProvider({ dimensions: 48 }).embed(['hello']);
      assert.ok(dot(v!, expected!) > 0.99999);
      assert.equal(server.requests.at(-1)!.body?.encoding_format, 'base64');
    });
  });

  it('fails clearly when the server ignores a configured dimensions', async () => {
    const script = (): FakeReply => ({
      status: 200,
      body: { data: [{ index: 0, embedding: [1, 0, 0] }], model: 'm' },
    });
    await withServer({ script }, { dimensions: 8 }, async (provider) => {
      const err = await rejection(provider.embed(['x']));
      assert.match(err.message, /3-dimensional vectors, but dimensions=8 was configured/);
      assert.equal(err.retryable, false);
    });
  });

  it('keeps a query string in base_url and sends no Authorization header without a key', async () => {
    await withServer({ apiKey: undefined }, { apiKey: undefined }, async (_p, server) => {
      const provider = new OpenAIEmbeddingProvider({ baseUrl: `${server.baseUrl}/?api-version=2024-10-21` });
      await provider.embed(['hi']);
      assert.equal(server.requests[0]!.path, '/v1/embeddings');
      assert.equal(server.requests[0]!.headers.authorization, undefined);
    });
  });

  it('runs at most `concurrency` requests at once', async () => {
    // Counted, not timed: the server holds every request until `concurrency` of them are in
    // flight together (or the last one has arrived), so reaching 3 does not depend on how fast
    // the client is. Once 3 are held, it waits a little longer before answering: the time an
    // over-eager client would need to send a 4th. That wait can only make a broken limit show.
    const total = 10;
    let inflight = 0;
    let arrived = 0;
    let peak = 0;
    let held: Array<() => void> = [];
    const script = async () => {
      inflight++;
      arrived++;
      peak = Math.max(peak, inflight);
      const released = new Promise<void>((resolve) => held.push(resolve));
      if (inflight >= 3 || arrived === total) {
        const release = held;
        held = [];
        setTimeout(() => {
          for (const r of release) r();
        }, 50);
      }
      // Never wait forever: if the client sends fewer than 3 at once, the peak assertion says so.
      const liveness = setTimeout(() => {
        for (const r of held.splice(0)) r();
      }, 10_000);
      await released;
      clearTimeout(liveness);
      inflight--;
      return undefined;
    };
    await withServer({ script }, { maxInputsPerRequest: 2, concurrency: 3 }, async (provider, server) => {
      await provider.embed(Array.from({ length: 2 * total }, (_, i) => `text ${i}`));
      assert.equal(server.requests.length, total);
      assert.equal(peak, 3);
    });
  });
});

describe('OpenAI-compatible embeddings: over-long inputs', () => {
  it('splits a text over the per-input token limit and returns one vector for it', async () => {
    const long = Array.from(
      { length: 120 },
      (_, i) => `Sentence number ${i} talks about invoices and refunds.`,
    ).join(' ');
    assert.ok(tokensOf([long]) > 1000);
    // concurrency 1: requests then arrive in batch order, so the pieces can be checked in order.
    await withServer(
      {},
      { maxTokensPerInput: 100, maxInputsPerRequest: 4, concurrency: 1 },
      async (provider, server) => {
        const [v, short] = await provider.embed([long, 'invoices and refunds']);
        const sent = inputsOf(server).flat();
        assert.ok(sent.length >= 11, `${sent.length} pieces`);
        for (const piece of sent)
          assert.ok(tokensOf([piece]) <= 100, `a piece of ${tokensOf([piece])} tokens`);
        assert.equal(sent.join(' '), `${long} invoices and refunds`, 'pieces cover the text in order');
        assert.ok(Math.abs(Math.sqrt(dot(v!, v!)) - 1) < 1e-5);
        assert.ok(dot(v!, short!) > 0.3);
      },
    );
  });

  it('counts text that looks like a special token as plain text', async () => {
    await withServer({}, {}, async (provider) => {
      const [v] = await provider.embed(['before <|endoftext|> after']);
      assert.equal(v!.length, 64);
    });
  });
});

describe('OpenAI-compatible embeddings: retries', () => {
  it('waits for Retry-After (seconds) after a 429, then succeeds', async () => {
    const script = sequence({
      status: 429,
      headers: { 'retry-after': '1' },
      body: { error: { message: 'Rate limit reached' } },
    });
    await withServer({ script }, {}, async (provider, server) => {
      const t0 = performance.now();
      const [v] = await provider.embed(['hello']);
      const waited = performance.now() - t0;
      assert.equal(v!.length, 64);
      assert.equal(server.requests.length, 2);
      assert.ok(waited >= 950, `retried after ${waited.toFixed(0)} ms, not the 1 s asked`);
    });
  });

  it('honours retry-after-ms, and gives up (retryable) when asked to wait longer than maxRetryAfterMs', async () => {
    const script = sequence(
      { status: 429, headers: { 'retry-after-ms': '150' } },
      { status: 429, headers: { 'retry-after': '3600' } },
    );
    await withServer({ script }, { maxRetryAfterMs: 60_000 }, async (provider, server) => {
      const t0 = performance.now();
      const err = await rejection(provider.embed(['hello']));
      assert.ok(performance.now() - t0 >= 140);
      assert.equal(server.requests.length, 2);
      assert.equal(err.status, 429);
      assert.equal(err.retryable, true);
      assert.match(err.message, /retry after 3600 s/);
    });
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    assert.equal(parseRetryAfter(new Headers({ 'retry-after': '7' }), now), 7000);
    assert.equal(
      parseRetryAfter(new Headers({ 'retry-after': 'Wed, 01 Jan 2025 00:00:30 GMT' }), now),
      30_000,
    );
    assert.equal(
      parseRetryAfter(new Headers({ 'retry-after': 'Tue, 31 Dec 2024 23:00:00 GMT' }), now),
      0,
      'a past date means now',
    );
    assert.equal(parseRetryAfter(new Headers({ 'retry-after-ms': '250', 'retry-after': '9' }), now), 250);
    assert.equal(parseRetryAfter(new Headers({ 'retry-after': 'soon' }), now), undefined);
    assert.equal(parseRetryAfter(new Headers(), now), undefined);
  });

  it('retries 500 twice, then succeeds', async () => {
    const script = sequence(
      { status: 500, body: { error: { message: 'boom' } } },
      { status: 502, body: 'Bad gateway' },
    );
    await withServer({ script }, {}, async (provider, server) => {
      const [v] = await provider.embed(['hello']);
      assert.equal(v!.length, 64);
      assert.equal(server.requests.length, 3);
    });
  });

  it('gives up after maxRetries with a retryable error', async () => {
    const script = (): FakeReply => ({ status: 503, body: { error: { message: 'overloaded' } } });
    await withServer({ script }, { maxRetries: 3 }, async (provider, server) => {
      const err = await rejection(provider.embed(['hello']));
      assert.equal(server.requests.length, 4);
      assert.equal(err.status, 503);
      assert.equal(err.retryable, true);
      assert.equal(err.attempts, 4);
      assert.match(err.message, /embedding API failed \(503\): overloaded \(after 4 attempts\)/);
    });
  });

  it('times out a hanging request and retries it', async () => {
    // 1 s: short enough for a quick test, long enough for the retry's normal answer on a loaded machine.
    await withServer({ script: sequence('hang') }, { timeoutMs: 1_000 }, async (provider, server) => {
      const t0 = performance.now();
      const [v] = await provider.embed(['hello']);
      assert.equal(v!.length, 64);
      assert.equal(server.requests.length, 2);
      // A lower bound is causal: the first attempt cannot have been given up sooner.
      assert.ok(performance.now() - t0 >= 990);
    });
  });

  it('reports a timeout clearly when every attempt hangs', async () => {
    await withServer({ script: () => 'hang' }, { timeoutMs: 100, maxRetries: 1 }, async (provider) => {
      const err = await rejection(provider.embed(['hello']));
      assert.match(err.message, /did not answer within 100 ms \(after 2 attempts\)/);
      assert.equal(err.retryable, true);
      assert.equal(err.status, undefined);
    });
  });

  it('retries a dropped connection', async () => {
    await withServer({ script: sequence('drop') }, {}, async (provider, server) => {
      await provider.embed(['hello']);
      assert.equal(server.requests.length, 2);
    });
  });

  it('retries connection refused, then fails with the cause', async () => {
    const server = await startFakeOpenAIServer();
    const baseUrl = server.baseUrl;
    await server.close(); // nothing listens on that port any more
    const provider = new OpenAIEmbeddingProvider({ ...FAST, baseUrl, maxRetries: 2 });
    const err = await rejection(provider.embed(['hello']));
    assert.match(err.message, /ECONNREFUSED/);
    assert.equal(err.attempts, 3);
    assert.equal(err.retryable, true);
  });
});

describe('OpenAI-compatible embeddings: rejections', () => {
  it('fails a bad key at once with a clear, non-retryable error that does not contain the key', async () => {
    const wrongKey = 'sk-wrong-key-that-must-not-leak-42';
    await withServer({}, { apiKey: wrongKey }, async (provider, server) => {
      const err = await rejection(provider.embed(['hello']));
      assert.equal(server.requests.length, 1, 'no retries');
      assert.equal(err.status, 401);
      assert.equal(err.retryable, false);
      assert.match(
        err.message,
        /^embedding API rejected the request \(401\): Incorrect API key provided: \[redacted\]\.$/,
      );
      // The fake server echoes the key it received, as some servers do; none of it may surface.
      for (const rendering of [
        err.message,
        String(err),
        err.stack ?? '',
        inspect(err, { depth: 10 }),
        JSON.stringify(err),
      ]) {
        assert.ok(!rendering.includes(wrongKey), `key leaked in: ${rendering}`);
      }
    });
  });

  for (const status of [400, 403, 404]) {
    it(`fails a ${status} at once`, async () => {
      const script = (): FakeReply => ({
        status,
        body: { error: { message: `nope ${status}`, type: 'invalid_request_error' } },
      });
      await withServer({ script }, {}, async (provider, server) => {
        const err = await rejection(provider.embed(['hello']));
        assert.equal(server.requests.length, 1);
        assert.equal(err.status, status);
        assert.equal(err.retryable, false);
        assert.equal(err.message, `embedding API rejected the request (${status}): nope ${status}`);
      });
    });
  }

  it('understands the error shapes of other compatible servers', async () => {
    const script = sequence(
      { status: 400, body: { error: 'model "nomic" not found, try pulling it first' } },
      { status: 422, body: { detail: [{ msg: 'field required' }] } },
    );
    await withServer({ script }, {}, async (provider) => {
      assert.match((await rejection(provider.embed(['a']))).message, /\(400\): model "nomic" not found/);
      assert.match(
        (await rejection(provider.embed(['a']))).message,
        /\(422\): \[\{"msg":"field required"\}\]/,
      );
    });
  });

  it('rejects a malformed success response without retrying', async () => {
    const script = (): FakeReply => ({ status: 200, body: { data: [{ index: 0, embedding: [1, 2] }] } });
    await withServer({ script }, {}, async (provider, server) => {
      const err = await rejection(provider.embed(['a', 'b']));
      assert.match(err.message, /invalid response: 1 embeddings for 2 inputs/);
      assert.equal(server.requests.length, 1);
    });
  });
});

describe('OpenAI-compatible embeddings: cancellation', () => {
  // The test's own timeout turns a wait that ignores the abort (60 s or more) into a failure, not a hang.
  it('stops waiting between retries when the caller aborts', { timeout: 45_000 }, async () => {
    const script = (): FakeReply => ({ status: 503 });
    // A backoff of at least 60 s (half fixed, half jitter): ending 30 s after the abort at the
    // latest leaves a loaded machine 300 times the expected 100 ms, and still proves the wait
    // was cut short rather than served.
    await withServer({ script }, { retryBaseDelayMs: 120_000, retryMaxDelayMs: 120_000 }, async (provider, server) => {
      const ctrl = new AbortController();
      setTimeout(() => ctrl.abort(new Error('run cancelled')), 100);
      const t0 = performance.now();
      await assert.rejects(provider.embed(['a'], { signal: ctrl.signal }), /run cancelled/);
      assert.ok(performance.now() - t0 < 30_000);
      assert.equal(server.requests.length, 1, 'no retry was sent');
    });
  });

  it('aborts a request in flight when the caller aborts', async () => {
    await withServer({ script: () => 'hang' }, { timeoutMs: 10_000 }, async (provider) => {
      const ctrl = new AbortController();
      setTimeout(() => ctrl.abort(new Error('run cancelled')), 100);
      await assert.rejects(provider.embed(['a'], { signal: ctrl.signal }), /run cancelled/);
    });
  });

  it('close() aborts calls in flight and refuses new ones', async () => {
    await withServer({ script: () => 'hang' }, { timeoutMs: 10_000 }, async (provider) => {
      const pending = provider.embed(['a']);
      setTimeout(() => void provider.close(), 100);
      assert.match((await rejection(pending)).message, /closed/);
      assert.match((await rejection(provider.embed(['b']))).message, /closed/);
    });
  });
});
