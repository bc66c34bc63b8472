/**
 * Embeddings from any OpenAI-compatible API (OpenAI, Azure's v1 endpoint, Ollama, vLLM, LM Studio…):
 * `POST {base_url}/embeddings` with `{ input, model, dimensions?, encoding_format }`.
 *
 * Plain `fetch` rather than the openai SDK: the behaviour this adapter must guarantee (which
 * failures are retried and how long it waits, the per-attempt timeout, error messages that never
 * echo the key, no hidden retries) is all in the few lines below, where it can be read and tested,
 * instead of being split between SDK options and our own loop.
 */
import { EmbeddingProviderError } from '../errors.js';
import { cutByChars, explode, implode } from '../pieces.js';
import type { EmbeddingProvider, EmbedOptions, ProbeOptions, ProbeResult } from '../port.js';
import { throwIfAborted } from '../vectors.js';
import { type ParsedEmbeddings, parseEmbeddingsResponse } from './response.js';
import { countTokensCl100k, loadTokenizer } from './tokens.js';

export interface OpenAIEmbeddingOptions {
  /** Sent as `Authorization: Bearer …` when set (local servers such as Ollama need none). */
  apiKey?: string;
  /** Default `https://api.openai.com/v1`. A query string (e.g. Azure's `api-version`) is kept. */
  baseUrl?: string;
  /** Default `text-embedding-3-small`. */
  model?: string;
  /** Requested vector length (models that support shortening); otherwise learned from the first response. */
  dimensions?: number;
  /** Inputs per request; default 256 (OpenAI allows 2048, smaller requests retry cheaper). */
  maxInputsPerRequest?: number;
  /** Token budget per request; default 250 000 (OpenAI's limit is 300 000). */
  maxTokensPerRequest?: number;
  /**
   * Tokens per input; default 8191 (OpenAI's limit). Longer texts are cut and their vectors
   * averaged. Never more than `maxTokensPerRequest`, so every piece fits a request of its own.
   */
  maxTokensPerInput?: number;
  /** Per-attempt timeout, including reading the response body; default 30 000 ms. */
  timeoutMs?: number;
  /** Retries after the first attempt for timeouts, network errors, 408, 429 and 5xx; default 5. */
  maxRetries?: number;
  /** First backoff delay; doubled per retry, with jitter; default 500 ms. */
  retryBaseDelayMs?: number;
  /** Cap of one backoff delay; default 30 000 ms. */
  retryMaxDelayMs?: number;
  /**
   * Longest `Retry-After` honoured; default 120 000 ms. A server asking for longer fails the call
   * (retryable), so a sync run ends and is retried on its next tick instead of hanging.
   */
  maxRetryAfterMs?: number;
  /** Requests in flight at once for one `embed` call; default 2. */
  concurrency?: number;
  /** `float` (default, understood by every compatible server) or `base64` (4× smaller responses). */
  encodingFormat?: 'float' | 'base64';
  /** Extra request headers, e.g. `OpenAI-Organization`. */
  headers?: Record<string, string>;
  /** Token counter; default cl100k_base (the tokenizer of OpenAI's embedding models). */
  countTokens?: (text: string) => number;
  /** For tests: jitter source. */
  random?: () => number;
}

export const OPENAI_DEFAULTS = {
  baseUrl: 'https://api.openai.com/v1',
  model: 'text-embedding-3-small',
  maxInputsPerRequest: 256,
  maxTokensPerRequest: 250_000,
  maxTokensPerInput: 8191,
  timeoutMs: 30_000,
  maxRetries: 5,
  retryBaseDelayMs: 500,
  retryMaxDelayMs: 30_000,
  maxRetryAfterMs: 120_000,
  concurrency: 2,
} as const;

type ResolvedOptions = Required<
  Omit<OpenAIEmbeddingOptions, 'apiKey' | 'dimensions' | 'countTokens' | 'headers'>
>;

/** One failed attempt: the error to report, and how long the server asked us to wait. */
class AttemptError extends Error {
  constructor(
    readonly error: EmbeddingProviderError,
    readonly retryAfterMs?: number,
  ) {
    super(error.message);
  }
}

/** An in-flight `embed` call, so `close()` can abort it. */
type Inflight = AbortController;

export class OpenAIEmbeddingProvider implements EmbeddingProvider {
  readonly id: string;
  readonly model: string;
  private readonly url: string;
  private readonly apiKey: string | undefined;
  private readonly requestedDims: number | undefined;
  private learnedDims: number | undefined;
  private lastModel: string | undefined;
  private readonly o: ResolvedOptions;
  private readonly headers: Record<string, string>;
  private readonly countTokens: ((text: string) => number) | undefined;
  private readonly inflight = new Set<Inflight>();
  private closed = false;

  constructor(options: OpenAIEmbeddingOptions = {}) {
    this.o = {
      baseUrl: options.baseUrl ?? OPENAI_DEFAULTS.baseUrl,
      model: options.model ?? OPENAI_DEFAULTS.model,
      maxInputsPerRequest: options.maxInputsPerRequest ?? OPENAI_DEFAULTS.maxInputsPerRequest,
      maxTokensPerRequest: options.maxTokensPerRequest ?? OPENAI_DEFAULTS.maxTokensPerRequest,
      maxTokensPerInput: options.maxTokensPerInput ?? OPENAI_DEFAULTS.maxTokensPerInput,
      timeoutMs: options.timeoutMs ?? OPENAI_DEFAULTS.timeoutMs,
      maxRetries: options.maxRetries ?? OPENAI_DEFAULTS.maxRetries,
      retryBaseDelayMs: options.retryBaseDelayMs ?? OPENAI_DEFAULTS.retryBaseDelayMs,
      retryMaxDelayMs: options.retryMaxDelayMs ?? OPENAI_DEFAULTS.retryMaxDelayMs,
      maxRetryAfterMs: options.maxRetryAfterMs ?? OPENAI_DEFAULTS.maxRetryAfterMs,
      concurrency: options.concurrency ?? OPENAI_DEFAULTS.concurrency,
      encodingFormat: options.encodingFormat ?? 'float',
      random: options.random ?? Math.random,
    };
    this.o.maxTokensPerInput = Math.min(this.o.maxTokensPerInput, this.o.maxTokensPerRequest);
    const problems = validateOptions(this.o, options.dimensions);
    if (problems.length > 0) throw new RangeError(`invalid OpenAI embedding options: ${problems.join('; ')}`);
    this.model = this.o.model;
    this.id = `openai:${this.model}`;
    this.url = embeddingsUrl(this.o.baseUrl);
    this.apiKey = options.apiKey || undefined;
    this.requestedDims = options.dimensions;
    this.countTokens = options.countTokens;
    this.headers = {
      'content-type': 'application/json',
      accept: 'application/json',
      'user-agent': 'kbsync',
      ...options.headers,
      ...(this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {}),
    };
  }

  /** Given, or learned from the first response; probes the API when neither is known yet. */
  async dimensions(): Promise<number> {
    if (this.requestedDims) return this.requestedDims;
    if (this.learnedDims) return this.learnedDims;
    return (await this.probe()).dimensions;
  }

  async probe(options: ProbeOptions = {}): Promise<ProbeResult> {
    const t0 = performance.now();
    if (options.timeoutMs !== undefined) return this.probeOnce(options.timeoutMs, options.signal, t0);
    const [v] = await this.embed(['kbsync probe'], options);
    return { dimensions: v!.length, model: this.lastModel ?? this.model, latencyMs: performance.now() - t0 };
  }

  /** One request, no retry, bounded by `timeoutMs` (and the per-attempt timeout). */
  private async probeOnce(timeoutMs: number, signal: AbortSignal | undefined, t0: number): Promise<ProbeResult> {
    throwIfAborted(signal);
    if (this.closed) throw this.error('the embedding provider is closed', { retryable: false });
    const ctrl = new AbortController();
    const late = this.error(`embedding API did not answer within ${timeoutMs} ms`, { retryable: true });
    const timer = setTimeout(() => ctrl.abort(late), timeoutMs);
    const onAbort = () => ctrl.abort(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const [v] = (await this.attempt(['kbsync probe'], ctrl.signal)).vectors;
      return { dimensions: v!.length, model: this.lastModel ?? this.model, latencyMs: performance.now() - t0 };
    } catch (e) {
      if (e instanceof AttemptError) throw e.error;
      throw e;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * `options.priority` is not needed here: nothing queues inside this provider — each call sends
   * its own requests (`concurrency` per call), so a search never waits behind a sync's batch in
   * kbsync. It can still wait at the server, which is the server's rate limit to configure.
   */
  async embed(texts: string[], options: EmbedOptions = {}): Promise<Float32Array[]> {
    const { signal } = options;
    throwIfAborted(signal);
    if (this.closed) throw this.error('the embedding provider is closed', { retryable: false });
    if (texts.length === 0) return [];

    const count = memoize(await this.tokenCounter());
    const limit = this.o.maxTokensPerInput;
    const exploded = explode(
      texts,
      (t) => count(t) <= limit,
      (t) => this.cutToTokens(t, count),
    );
    const batches = packBatches(
      exploded.pieces,
      count,
      this.o.maxInputsPerRequest,
      this.o.maxTokensPerRequest,
    );

    // One controller per call: the caller's abort, a failed batch, or close() stops the others.
    const ctrl = new AbortController();
    const onAbort = () => ctrl.abort(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    this.inflight.add(ctrl);
    try {
      const vectors: Float32Array[] = new Array(exploded.pieces.length);
      let next = 0;
      let piecesDone = 0;
      const worker = async () => {
        while (next < batches.length) {
          const batch = batches[next++]!;
          const out = await this.requestWithRetries(batch.inputs, ctrl.signal, (parsed) => {
            // What the server billed for this request; counted like the batching counts when it does not say.
            const tokens = parsed.usageTokens ?? batch.inputs.reduce((sum, input) => sum + count(input), 0);
            options.onUsage?.({ tokens, requests: 1 });
          });
          out.forEach((v, k) => {
            vectors[batch.offset + k] = v;
          });
          piecesDone += batch.inputs.length;
          // Told in texts (a text cut to fit the token limit is several pieces).
          options.onProgress?.(Math.floor((texts.length * piecesDone) / exploded.pieces.length));
        }
      };
      const lanes = Array.from({ length: Math.min(this.o.concurrency, batches.length) }, worker);
      await Promise.all(
        lanes.map((p) =>
          p.catch((e: unknown) => {
            ctrl.abort(e);
            throw e;
          }),
        ),
      );
      return implode(texts.length, exploded, vectors);
    } catch (e) {
      throwIfAborted(signal);
      throw e;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.inflight.delete(ctrl);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const ctrl of this.inflight)
      ctrl.abort(this.error('the embedding provider was closed', { retryable: false }));
    this.inflight.clear();
  }

  private async tokenCounter(): Promise<(text: string) => number> {
    if (this.countTokens) return this.countTokens;
    await loadTokenizer();
    return countTokensCl100k;
  }

  /**
   * Pieces of at most `maxTokensPerInput` tokens, cut on natural boundaries: sized by the text's
   * own characters-per-token ratio, and any piece still over the limit (denser text) cut again.
   */
  private cutToTokens(text: string, count: (t: string) => number): string[] {
    const limit = this.o.maxTokensPerInput;
    const tokens = count(text);
    if (tokens <= limit) return [text];
    const size = Math.max(1, Math.floor(((text.length * limit) / tokens) * 0.9));
    return cutByChars(text, size).flatMap((piece) =>
      count(piece) <= limit ? [piece] : this.cutToTokens(piece, count),
    );
  }

  /** `onAnswer`: told of the one attempt that succeeded (failed attempts are not billed). */
  private async requestWithRetries(
    inputs: string[],
    signal: AbortSignal,
    onAnswer: (parsed: ParsedEmbeddings) => void,
  ): Promise<Float32Array[]> {
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(signal);
      try {
        const parsed = await this.attempt(inputs, signal);
        onAnswer(parsed);
        return parsed.vectors;
      } catch (e) {
        if (!(e instanceof AttemptError)) throw e;
        const { error, retryAfterMs } = e;
        const final = (message = error.message) =>
          new EmbeddingProviderError(attempt > 1 ? `${message} (after ${attempt} attempts)` : message, {
            provider: this.id,
            retryable: error.retryable,
            attempts: attempt,
            ...(error.status !== undefined ? { status: error.status } : {}),
          });
        if (!error.retryable || attempt > this.o.maxRetries) throw final();
        if (retryAfterMs !== undefined && retryAfterMs > this.o.maxRetryAfterMs) {
          throw final(
            `${error.message}; the server asked to retry after ${Math.ceil(retryAfterMs / 1000)} s`,
          );
        }
        await sleep(retryAfterMs ?? this.backoff(attempt), signal);
      }
    }
  }

  /** Exponential backoff with "equal jitter": half the delay fixed, half random, so clients spread out. */
  private backoff(attempt: number): number {
    const exp = Math.min(this.o.retryMaxDelayMs, this.o.retryBaseDelayMs * 2 ** (attempt - 1));
    return exp / 2 + (exp / 2) * this.o.random();
  }

  /** One HTTP request; throws AttemptError for provider failures, the abort reason when aborted. */
  private async attempt(inputs: string[], outer: AbortSignal): Promise<ParsedEmbeddings> {
    const ctrl = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ctrl.abort();
    }, this.o.timeoutMs);
    const onAbort = () => ctrl.abort(outer.reason);
    outer.addEventListener('abort', onAbort, { once: true });
    const body = JSON.stringify({
      input: inputs,
      model: this.model,
      encoding_format: this.o.encodingFormat,
      ...(this.requestedDims ? { dimensions: this.requestedDims } : {}),
    });
    try {
      const res = await fetch(this.url, { method: 'POST', headers: this.headers, body, signal: ctrl.signal });
      const text = await res.text();
      if (!res.ok) throw this.httpError(res, text);
      return this.parse(text, inputs.length);
    } catch (e) {
      if (e instanceof AttemptError) throw e;
      if (outer.aborted) throw outer.reason;
      if (timedOut) {
        throw new AttemptError(
          this.error(`embedding API did not answer within ${this.o.timeoutMs} ms`, { retryable: true }),
        );
      }
      throw new AttemptError(
        this.error(`embedding API request failed: ${describeNetworkError(e)}`, { retryable: true, cause: e }),
      );
    } finally {
      clearTimeout(timer);
      outer.removeEventListener('abort', onAbort);
    }
  }

  private httpError(res: Response, body: string): AttemptError {
    const status = res.status;
    const retryable = status === 408 || status === 429 || status >= 500;
    const detail = apiErrorMessage(body) || res.statusText || 'no details';
    const message = retryable
      ? `embedding API failed (${status}): ${detail}`
      : `embedding API rejected the request (${status}): ${detail}`;
    return new AttemptError(
      this.error(message, { retryable, status }),
      retryable ? parseRetryAfter(res.headers) : undefined,
    );
  }

  private parse(body: string, expected: number): ParsedEmbeddings {
    const expectedDims = this.requestedDims
      ? { dims: this.requestedDims, requested: true }
      : this.learnedDims !== undefined
        ? { dims: this.learnedDims, requested: false }
        : undefined;
    const parsed = parseEmbeddingsResponse(body, expected, expectedDims);
    if ('invalid' in parsed) {
      throw new AttemptError(
        this.error(`embedding API returned an invalid response: ${parsed.invalid}`, { retryable: false }),
      );
    }
    this.learnedDims = parsed.vectors[0]!.length;
    if (parsed.model !== undefined) this.lastModel = parsed.model;
    return parsed;
  }

  /** Every message goes through here, so none can carry the API key, whatever the server echoed. */
  private error(
    message: string,
    fields: { retryable: boolean; status?: number; cause?: unknown },
  ): EmbeddingProviderError {
    return new EmbeddingProviderError(redact(message, this.apiKey), { provider: this.id, ...fields });
  }
}

function validateOptions(o: ResolvedOptions, dimensions: number | undefined): string[] {
  const problems: string[] = [];
  const positiveInt = (name: keyof ResolvedOptions, min = 1) => {
    const v = o[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
      problems.push(`${name} must be an integer of at least ${min}`);
  };
  positiveInt('maxInputsPerRequest');
  positiveInt('maxTokensPerRequest', 16);
  positiveInt('maxTokensPerInput', 16);
  positiveInt('timeoutMs');
  positiveInt('maxRetries', 0);
  positiveInt('retryBaseDelayMs', 0);
  positiveInt('retryMaxDelayMs', 0);
  positiveInt('maxRetryAfterMs', 0);
  positiveInt('concurrency');
  if (dimensions !== undefined && (!Number.isInteger(dimensions) || dimensions < 1))
    problems.push('dimensions must be a positive integer');
  try {
    embeddingsUrl(o.baseUrl);
  } catch (e) {
    problems.push(`base_url must be an http(s) URL without credentials (${(e as Error).message})`);
  }
  return problems;
}

/** `{base}/embeddings`, keeping a query string such as Azure's `?api-version=…`. */
function embeddingsUrl(base: string): string {
  const u = new URL(base);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
  if (u.username || u.password) throw new Error('credentials belong in api_key, not in the URL');
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/embeddings`;
  return u.href;
}

interface Batch {
  offset: number;
  inputs: string[];
}

/** Consecutive runs of inputs under both per-request limits (every input fits one request alone). */
export function packBatches(
  inputs: string[],
  count: (t: string) => number,
  maxInputs: number,
  maxTokens: number,
): Batch[] {
  const batches: Batch[] = [];
  let current: Batch | undefined;
  let tokens = 0;
  inputs.forEach((input, i) => {
    const t = count(input);
    if (!current || current.inputs.length >= maxInputs || tokens + t > maxTokens) {
      current = { offset: i, inputs: [] };
      batches.push(current);
      tokens = 0;
    }
    current.inputs.push(input);
    tokens += t;
  });
  return batches;
}

/** Counts each distinct text once per call: explode, cut and pack all ask about the same texts. */
function memoize(count: (t: string) => number): (t: string) => number {
  const seen = new Map<string, number>();
  return (t) => {
    let n = seen.get(t);
    if (n === undefined) {
      n = count(t);
      seen.set(t, n);
    }
    return n;
  };
}

/** The server's own explanation, from the shapes compatible servers use, shortened. */
function apiErrorMessage(body: string): string {
  let msg: unknown;
  try {
    const j = JSON.parse(body) as Record<string, unknown>;
    const err = j.error;
    msg =
      (typeof err === 'object' && err !== null ? (err as Record<string, unknown>).message : err) ??
      j.message ??
      j.detail;
    if (msg !== undefined && typeof msg !== 'string') msg = JSON.stringify(msg);
  } catch {
    msg = body.trim();
  }
  const s = typeof msg === 'string' ? msg.replace(/\s+/g, ' ').trim() : '';
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
}

/** `retry-after-ms` (OpenAI), else `Retry-After` in seconds or as an HTTP date. */
export function parseRetryAfter(headers: Headers, now = Date.now()): number | undefined {
  const ms = headers.get('retry-after-ms');
  if (ms && /^\d+(\.\d+)?$/.test(ms.trim())) return Number(ms);
  const ra = headers.get('retry-after')?.trim();
  if (!ra) return undefined;
  if (/^\d+(\.\d+)?$/.test(ra)) return Number(ra) * 1000;
  const at = Date.parse(ra);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function describeNetworkError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  // fetch reports "fetch failed" and puts the useful part (ECONNREFUSED, ENOTFOUND…) in `cause`.
  const cause = e.cause instanceof Error ? e.cause : undefined;
  const code = (cause as { code?: string } | undefined)?.code;
  return cause ? `${e.message} (${code ? `${code}: ` : ''}${cause.message})` : e.message;
}

function redact(message: string, key: string | undefined): string {
  return key && key.length >= 4 ? message.split(key).join('[redacted]') : message;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
