/**
 * A fake OpenAI-compatible embeddings server on 127.0.0.1, for tests of this adapter and of
 * anything above it (sync runs, knowledge-base creation) that wants the real HTTP path without a
 * network. It speaks `POST /embeddings`, computes vectors with the hashing provider (so similar
 * texts really are closer), records every request, and can be told to fail in the ways real APIs
 * do. Not used by the service itself.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { countTokens } from 'gpt-tokenizer/encoding/cl100k_base';
import { HashingEmbeddingProvider } from '../../src/embeddings/hashing/provider.js';

export interface RecordedRequest {
  /** 1-based arrival order. */
  n: number;
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: { input?: unknown; model?: unknown; dimensions?: unknown; encoding_format?: unknown } | undefined;
}

/** What to do with one request instead of answering normally. */
export type FakeReply =
  | { status: number; headers?: Record<string, string>; body?: unknown }
  /** Accept the request and never answer (a stuck upstream). */
  | 'hang'
  /** Close the connection without an answer (a reset). */
  | 'drop';

export interface FakeOpenAIOptions {
  /** When set, requests must carry `Authorization: Bearer <apiKey>`, else 401 (echoing the key, as careless servers do). */
  apiKey?: string;
  /** Vector length when the request does not ask for one; default 64. */
  dimensions?: number;
  /** Answer `data` in reverse order, as the protocol allows (clients must use `index`); default true. */
  reverse?: boolean;
  /**
   * The `usage` of each answer: `cl100k` (default) counts the inputs' tokens as OpenAI's
   * embedding models do; `none` leaves `usage` out, as some compatible servers do.
   */
  usage?: 'cl100k' | 'none';
  /** Called for each request; return a reply to override the normal answer. */
  script?: (req: RecordedRequest) => FakeReply | undefined | Promise<FakeReply | undefined>;
}

export interface FakeOpenAIServer {
  /** e.g. `http://127.0.0.1:41234/v1`, to use as `base_url`. */
  baseUrl: string;
  requests: RecordedRequest[];
  /** Embedding requests answered with vectors (what a provider bills). */
  served(): number;
  /** Tokens reported in `usage` so far (counted with cl100k even when `usage: 'none'` leaves them out). */
  tokensServed(): number;
  close(): Promise<void>;
}

export async function startFakeOpenAIServer(options: FakeOpenAIOptions = {}): Promise<FakeOpenAIServer> {
  const requests: RecordedRequest[] = [];
  let served = 0;
  let tokensServed = 0;
  const hashers = new Map<number, HashingEmbeddingProvider>();
  const hasher = (dims: number) => {
    let h = hashers.get(dims);
    if (!h) {
      h = new HashingEmbeddingProvider({ dimensions: dims });
      hashers.set(dims, h);
    }
    return h;
  };

  const server: Server = createServer((req, res) => {
    void handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) send(res, 500, { error: { message: String(e), type: 'server_error' } });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: RecordedRequest['body'];
    try {
      body = chunks.length > 0 ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
    } catch {
      body = undefined;
    }
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const rec: RecordedRequest = {
      n: requests.length + 1,
      method: req.method ?? '',
      path,
      headers: req.headers,
      body,
    };
    requests.push(rec);

    const scripted = await options.script?.(rec);
    if (scripted === 'hang') return;
    if (scripted === 'drop') {
      req.socket.destroy();
      return;
    }
    if (scripted) {
      send(res, scripted.status, scripted.body ?? {}, scripted.headers);
      return;
    }

    if (req.method !== 'POST' || !path.endsWith('/embeddings')) {
      send(res, 404, {
        error: { message: `Unknown request URL: ${req.method} ${path}`, type: 'invalid_request_error' },
      });
      return;
    }
    if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) {
      const given = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      send(res, 401, {
        error: {
          message: `Incorrect API key provided: ${given}.`,
          type: 'invalid_request_error',
          code: 'invalid_api_key',
        },
      });
      return;
    }
    const input = body?.input;
    const texts = typeof input === 'string' ? [input] : input;
    if (!Array.isArray(texts) || texts.length === 0 || texts.some((t) => typeof t !== 'string' || t === '')) {
      send(res, 400, { error: { message: "'$.input' is invalid.", type: 'invalid_request_error' } });
      return;
    }
    const dims = typeof body?.dimensions === 'number' ? body.dimensions : (options.dimensions ?? 64);
    const vectors = await hasher(dims).embed(texts as string[]);
    const base64 = body?.encoding_format === 'base64';
    const data = vectors.map((v, index) => ({
      object: 'embedding',
      index,
      // Real APIs do not return unit vectors for every model; scale so the client must normalise.
      embedding: base64
        ? Buffer.from(v.map((x) => x * 3).buffer).toString('base64')
        : Array.from(v, (x) => x * 3),
    }));
    if (options.reverse ?? true) data.reverse();
    // Text from a database may hold "<|endoftext|>": counted as plain text, as the API does.
    const tokens = (texts as string[]).reduce((s, t) => s + countTokens(t, { disallowedSpecial: new Set() }), 0);
    served++;
    tokensServed += tokens;
    send(res, 200, {
      object: 'list',
      data,
      model: body?.model ?? 'fake',
      ...(options.usage === 'none' ? {} : { usage: { prompt_tokens: tokens, total_tokens: tokens } }),
    });
  }

  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    served: () => served,
    tokensServed: () => tokensServed,
    async close() {
      // Hanging requests and idle keep-alive sockets would otherwise hold close() open.
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const json = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(json),
    ...headers,
  });
  res.end(json);
}
