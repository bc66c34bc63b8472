/**
 * Admission control (issue 8, point 3; API.md "Operations"): what one process takes on at once.
 *
 * - Expensive routes (knowledge-base queries, document writes) pass a bounded gate: at most
 *   `concurrency` run at once, at most `queue` wait behind them, and none waits longer than
 *   `waitMs`. Beyond that the answer is 429 RATE_LIMITED with Retry-After, at once, instead of a
 *   request that times out after minutes while the work it asked for still runs.
 * - A request whose client has gone (socket closed) leaves the queue and never starts; the signal
 *   handed to the route lets work in flight stop at its next await (embedding calls take it).
 * - Every route but /health and /metrics (and the docs) is also rate-limited per key with a token
 *   bucket: a burst of `perMinute` requests, refilled at `perMinute` per minute. A refused request
 *   takes no token, so a client that stops hammering is served again within a fraction of a second.
 * - Work starts in slices of the event loop's time (Gate): I/O such as a /health probe always gets
 *   a turn between two slices of synchronous search work.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../core/errors.js';

export interface GateOptions {
  /** Requests running at once. */
  concurrency: number;
  /** Requests allowed to wait for a slot; 0 = none wait. */
  queue: number;
  /** Longest wait for a slot, in ms; a request still waiting then is answered 429. */
  waitMs: number;
}

export interface AdmissionOptions {
  queries: GateOptions;
  writes: GateOptions;
  /** Requests per minute per key (burst of the same size); 0 = no rate limit. */
  ratePerMinute: number;
}

/** A RATE_LIMITED error that carries its Retry-After (seconds); the error handler sets the header. */
export class RateLimitedError extends AppError {
  constructor(
    message: string,
    details: string[],
    readonly retryAfterSeconds: number,
  ) {
    super('RATE_LIMITED', message, details);
  }
}

/** The client closed the connection before its request was served; nobody reads this answer. */
export class ClientGoneError extends AppError {
  constructor() {
    super('INVALID_REQUEST', 'The client closed the request', ['the connection was closed before the request was served'], {
      status: 499,
    });
  }
}

interface Waiter {
  resolve: (release: () => void) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  onAbort: () => void;
  signal: AbortSignal;
}

/**
 * A counting semaphore with a bounded, time-limited queue, that also keeps synchronous work from
 * hogging the event loop. better-sqlite3 searches run on the main thread: a request admitted
 * inline would run to its end before Node reads the next socket, so 200 clients would make one
 * turn of the loop 200 searches long and /health would wait behind all of them. So work starts in
 * slices of `sliceMs`: within a slice, requests start at once (an idle server adds no latency);
 * once the slice is spent, they wait in the queue, and the next slice starts on the next turn
 * of the loop (setImmediate), after Node has read the sockets (a /health probe, new requests that
 * are answered 429 cheaply when the queue is full).
 */
export class Gate {
  private active = 0;
  private readonly waiting: Waiter[] = [];
  /** A slice is open (and its setImmediate pending) while true. */
  private sliceOpen = false;
  private sliceStart = 0;

  constructor(
    readonly name: string,
    private readonly options: GateOptions,
    private readonly sliceMs = 15,
  ) {}

  get running(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /** The refusal a request would get now (queue full), or null; lets it be refused before its body is read. */
  refusalNow(): RateLimitedError | null {
    return this.waiting.length >= this.options.queue && this.active >= this.options.concurrency ? this.fullRefusal() : null;
  }

  /** Waits for a slot; resolves with its release function (idempotent). */
  acquire(signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) return Promise.reject(new ClientGoneError());
    if (this.waiting.length === 0 && this.active < this.options.concurrency) {
      if (!this.sliceOpen) this.openSlice();
      // Without a queue a free slot is taken at once: there is nowhere to wait for the next slice.
      if (this.inSlice() || this.options.queue === 0) {
        this.active++;
        return Promise.resolve(this.releaser());
      }
    }
    if (this.waiting.length >= this.options.queue) return Promise.reject(this.fullRefusal());
    return new Promise<() => void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          this.remove(waiter);
          reject(new ClientGoneError());
        },
        timer: setTimeout(() => {
          this.remove(waiter);
          reject(this.refusal(`the request waited ${this.options.waitMs} ms for one of ${this.options.concurrency} ${this.name} slots`));
        }, this.options.waitMs),
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
      this.waiting.push(waiter);
      if (!this.sliceOpen) this.openSlice();
    });
  }

  private inSlice(): boolean {
    return performance.now() - this.sliceStart < this.sliceMs;
  }

  /** Starts a slice now; its end is the next turn of the loop, where the next one may start. */
  private openSlice(): void {
    this.sliceOpen = true;
    this.sliceStart = performance.now();
    setImmediate(() => {
      this.sliceOpen = false;
      // With every slot taken there is nothing to start: the next release opens a slice (no spin).
      if (this.waiting.length === 0 || this.active >= this.options.concurrency) return;
      this.openSlice();
      this.dispatch();
    });
  }

  /** Starts waiters while slots are free and the slice lasts. */
  private dispatch(): void {
    while (this.active < this.options.concurrency && this.waiting.length > 0 && this.inSlice()) {
      const waiter = this.waiting.shift()!;
      this.remove(waiter);
      this.active++;
      waiter.resolve(this.releaser());
    }
  }

  private fullRefusal(): RateLimitedError {
    return this.refusal(`${this.options.concurrency} ${this.name} are running and ${this.options.queue} are waiting (the most this process takes)`);
  }

  private refusal(detail: string): RateLimitedError {
    return new RateLimitedError(`Too many ${this.name}; retry later`, [detail], Math.max(1, Math.ceil(this.options.waitMs / 1000)));
  }

  private remove(waiter: Waiter): void {
    const i = this.waiting.indexOf(waiter);
    if (i >= 0) this.waiting.splice(i, 1);
    clearTimeout(waiter.timer);
    waiter.signal.removeEventListener('abort', waiter.onAbort);
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      if (this.waiting.length === 0) return;
      // Within the slice the next waiter starts now; otherwise the pending slice start takes it.
      if (!this.sliceOpen) this.openSlice();
      this.dispatch();
    };
  }
}

/** Token buckets by key: `perMinute` tokens at most, refilled continuously. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly perMs: number;

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.perMs = perMinute / 60_000;
  }

  /** Takes a token for `key`; returns 0 when taken, else the seconds until one is available. */
  take(key: string): number {
    const now = this.now();
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= 10_000) this.prune(now);
      b = { tokens: this.perMinute, at: now };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * this.perMs);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000));
  }

  /** Drops buckets that have refilled completely (they are equivalent to no bucket). */
  private prune(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + (now - b.at) * this.perMs >= this.perMinute) this.buckets.delete(key);
    }
  }
}

/**
 * The key a request is rate-limited by: the client address until API keys exist; then the key's
 * id (the auth hook puts it on the request), so clients behind one proxy do not share a budget.
 */
export function rateKey(request: FastifyRequest): string {
  const keyId = (request as FastifyRequest & { apiKeyId?: string }).apiKeyId;
  return typeof keyId === 'string' && keyId !== '' ? `key:${keyId}` : `ip:${request.ip}`;
}

/** Routes that never wait and are never limited: liveness, metrics, the docs. */
const EXEMPT = /^\/(health|metrics|openapi\.json|docs)(\/|$)/;

/** A signal aborted when the request's client goes away before the answer is written. */
const signals = new WeakMap<FastifyRequest, AbortController>();

export function clientSignal(request: FastifyRequest): AbortSignal | undefined {
  return signals.get(request)?.signal;
}

function watchClient(request: FastifyRequest, reply: FastifyReply): AbortController {
  let controller = signals.get(request);
  if (controller) return controller;
  const c = new AbortController();
  controller = c;
  signals.set(request, c);
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) c.abort(new ClientGoneError());
  });
  if (request.raw.socket?.destroyed) c.abort(new ClientGoneError());
  return c;
}

/** Registers the rate limit (onRequest) and the gates (preHandler, by route) on the server. */
export function registerAdmission(app: FastifyInstance, options: AdmissionOptions): { queries: Gate; writes: Gate } {
  const queries = new Gate('queries', options.queries);
  const writes = new Gate('document writes', options.writes);
  const gated = new Map<string, Gate>([
    ['POST /knowledge_bases/:kb/query', queries],
    ['POST /knowledge_bases/:kb/documents', writes],
  ]);
  const limiter = options.ratePerMinute > 0 ? new RateLimiter(options.ratePerMinute) : null;
  const releases = new WeakMap<FastifyRequest, () => void>();
  const release = (request: FastifyRequest) => {
    releases.get(request)?.();
    releases.delete(request);
  };

  app.addHook('onRequest', async (request) => {
    // A request the gate would refuse anyway is refused before its body is read.
    const refusal = gated.get(`${request.method} ${request.routeOptions.url}`)?.refusalNow();
    if (refusal) throw refusal;
    if (limiter === null || EXEMPT.test(request.url)) return;
    const wait = limiter.take(rateKey(request));
    if (wait > 0) {
      throw new RateLimitedError(
        'Too many requests; retry later',
        [`more than ${options.ratePerMinute} requests per minute from this client (KBSYNC_RATE_LIMIT_PER_MINUTE)`],
        wait,
      );
    }
  });

  app.addHook('preHandler', async (request, reply) => {
    const gate = gated.get(`${request.method} ${request.routeOptions.url}`);
    if (gate === undefined) return;
    const controller = watchClient(request, reply);
    const done = await gate.acquire(controller.signal);
    // The slot is given back when the answer is sent (onSend below), also for a client that has
    // gone: its work may still be running, and a slot given back early let abandoned searches
    // pile up behind the gate.
    releases.set(request, done);
    if (controller.signal.aborted) {
      release(request);
      throw new ClientGoneError();
    }
  });
  // The work is over once the answer (or the error) is being sent.
  app.addHook('onSend', async (request, _reply, payload) => {
    release(request);
    return payload;
  });
  return { queries, writes };
}
