/**
 * The CLI's HTTP client: one request, the API.md envelope unwrapped. A success gives `data`; an
 * error envelope becomes ApiError (exit 1); no answer, or an answer that is not kbsync's, becomes
 * ConnectError (exit 3) with what to check.
 */
import { ApiError, ConnectError, type ErrorEnvelope } from './errors.js';

export const DEFAULT_URL = 'http://127.0.0.1:8000';

export interface ClientOptions {
  url: string;
  apiKey?: string | undefined;
  /** Per request; a query on a cold model or a large KB may take a while. */
  timeoutMs?: number;
}

/** Path segments go through this, so a name with `/` or `?` cannot change the route. */
export const seg = (value: string) => encodeURIComponent(value);

export class ApiClient {
  readonly baseUrl: string;
  private readonly apiKey: string | undefined;
  private readonly timeoutMs: number;

  constructor(options: ClientOptions) {
    // A base with a path (behind a proxy: https://host/kbsync) keeps it; only trailing slashes go.
    this.baseUrl = options.url.trim().replace(/\/+$/, '');
    this.apiKey = options.apiKey?.trim() || undefined;
    this.timeoutMs = options.timeoutMs ?? 60_000;
  }

  get<T>(path: string, query: Record<string, string | number | undefined> = {}): Promise<T> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
    const qs = params.toString();
    return this.request<T>('GET', qs ? `${path}?${qs}` : path);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let url: URL;
    try {
      url = new URL(`${this.baseUrl}${path}`);
    } catch {
      throw new ConnectError(`invalid server URL '${this.baseUrl}'`, [
        'set --url or KBSYNC_URL to e.g. http://127.0.0.1:8000',
      ]);
    }
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw this.unreachable(err);
    }
    const text = await res.text().catch((err: unknown) => {
      throw this.unreachable(err);
    });
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (isEnvelope(parsed)) {
      if (parsed.success === true) return parsed.data as T;
      throw new ApiError(res.status, normalised(parsed.error));
    }
    const type = res.headers.get('content-type') ?? 'no content type';
    throw new ConnectError(`the answer from ${this.baseUrl} is not kbsync's (HTTP ${res.status}, ${type})`, [
      'check --url / KBSYNC_URL: it should point at a kbsync server (kbsync serve)',
    ]);
  }

  private unreachable(err: unknown): ConnectError {
    const cause = (err as { cause?: { code?: string; message?: string } } | null)?.cause;
    const name = (err as { name?: string } | null)?.name;
    const reason =
      name === 'TimeoutError'
        ? `no answer within ${Math.round(this.timeoutMs / 1000)} s`
        : (cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err)));
    return new ConnectError(
      `cannot connect to kbsync at ${this.baseUrl} (${reason})`,
      [
        'is the server running? start it with `kbsync serve` (or `kbsync demo`)',
        'or point the CLI at it with --url URL or KBSYNC_URL',
      ],
      { cause: err },
    );
  }
}

/** The error envelope with its three fields always present (a proxy or an old server may omit some). */
function normalised(error: unknown): ErrorEnvelope {
  const e = error as { code?: unknown; message?: unknown; details?: unknown };
  return {
    success: false,
    error: {
      code: typeof e.code === 'string' ? e.code : 'ERROR',
      message: typeof e.message === 'string' ? e.message : 'the server refused the request',
      details: Array.isArray(e.details) ? e.details.map(String) : [],
    },
  };
}

function isEnvelope(value: unknown): value is { success: boolean; data?: unknown; error?: unknown } {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as { success?: unknown; error?: unknown };
  if (v.success === true) return true;
  return v.success === false && typeof v.error === 'object' && v.error !== null;
}
