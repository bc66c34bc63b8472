/**
 * Admission control (issue 8, point 3) over real HTTP on 127.0.0.1.
 *
 * The acceptance item is "200 concurrent queries for 20 s: every answer is a result or a 429 within
 * 2 s, /health answers within 100 ms throughout, and a query after the burst answers as fast as
 * before it". CI runs the same 200 concurrent clients for BURST_MS (5 s, not 20 s: the suite must
 * stay short) on a possibly loaded 2-core machine, with the client in the same process as the
 * server, so the bounds asserted only catch a wedged service (an answer within 6 s, /health within
 * 2 s: without admission control answers took tens of seconds); the figures against the issue's
 * targets (p50/p99, /health p99, after/before ratio) are printed as diagnostics, since the suite
 * must pass on a loaded machine (two `npm test` at once).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { Worker } from 'node:worker_threads';
import { after, before, describe, it } from 'node:test';
import { Gate, RateLimiter } from '../../src/api/admission.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { startSyncApp, type SyncTestApp } from '../helpers/sync.js';

const CONCURRENCY = 200;
const BURST_MS = Number(process.env.KBSYNC_ADMISSION_BURST_MS ?? 5_000);
const MAX_REQUESTS = 200_000;
const ANSWER_BOUND_MS = 6_000;
const HEALTH_BOUND_MS = 2_000;

interface Answer {
  status: number;
  ms: number;
  retryAfter: string | undefined;
  body: string;
}

function send(agent: http.Agent, port: number, method: string, path: string, body?: unknown): Promise<Answer> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent,
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            ms: performance.now() - t0,
            retryAfter: res.headers['retry-after'] as string | undefined,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('client timeout (30 s)')));
    req.end(payload);
  });
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const median = (xs: number[]) => pct(xs, 50);
/** Math.max(...xs) overflows the stack for the 100,000+ latencies of a long burst. */
const maxOf = (xs: number[]) => xs.reduce((m, x) => Math.max(m, x), Number.NEGATIVE_INFINITY);

interface LoadResult {
  statuses: number[];
  ms: number[];
  missingRetryAfter: number;
  otherBodies: string[];
  failures: string[];
  queueRefusals: number;
  rateRefusals: number;
}

/** The load generator (plain CommonJS, run as an eval'd worker): closed-loop clients, keep-alive, connected first. */
const LOAD_GENERATOR = `
const http = require('node:http');
const { parentPort, workerData } = require('node:worker_threads');
const { port, concurrency, burstMs, maxRequests, words } = workerData;
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency + 10 });
function send(method, path, body) {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent,
      headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, ms: performance.now() - t0, retryAfter: res.headers['retry-after'], body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(30000, () => req.destroy(new Error('client timeout (30 s)')));
    req.end(payload);
  });
}
(async () => {
  // Every client connects first, as a load generator does: a Node server whose CPU is saturated
  // accepts new connections late (seconds; measured with a plain http server too).
  await Promise.all(Array.from({ length: concurrency }, () => send('GET', '/health')));
  const out = { statuses: [], ms: [], missingRetryAfter: 0, otherBodies: [], failures: [], queueRefusals: 0, rateRefusals: 0 };
  const deadline = performance.now() + burstMs;
  let sent = 0;
  const worker = async (w) => {
    while (performance.now() < deadline && sent < maxRequests) {
      sent++;
      const i = w + sent;
      const body = { query: words[i % words.length] + ' ' + words[(i * 7) % words.length] + ' delivery', mode: 'hybrid', top_k: 10 };
      try {
        const a = await send('POST', '/knowledge_bases/kb/query', body);
        out.statuses.push(a.status);
        out.ms.push(a.ms);
        if (a.status === 429) {
          const parsed = JSON.parse(a.body);
          if (!/^[1-9][0-9]*$/.test(a.retryAfter || '') || parsed.error.code !== 'RATE_LIMITED') out.missingRetryAfter++;
          if (/per minute/.test(parsed.error.details[0])) out.rateRefusals++;
          else out.queueRefusals++;
        } else if (a.status !== 200 && out.otherBodies.length < 5) out.otherBodies.push(a.status + ' ' + a.body);
      } catch (err) {
        out.failures.push(err.message);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  agent.destroy();
  parentPort.postMessage(out);
})();
`;

const WORDS = 'order shipping refund invoice warehouse delivery customer payment account product return status support price'.split(' ');

describe('200 concurrent hybrid queries over HTTP', () => {
  let t: SyncTestApp;
  let port: number;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const healthAgent = new http.Agent({ keepAlive: true, maxSockets: 2 });

  before(async () => {
    t = await startSyncApp();
    assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'kb' })).status, 201);
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    for (let b = 0; b < 4; b++) {
      const documents = Array.from({ length: 100 }, (_, i) => ({
        id: `doc-${b}-${i}`,
        content: Array.from({ length: 80 }, () => WORDS[Math.floor(rnd() * WORDS.length)]).join(' '),
        metadata: { batch: b },
      }));
      const res = await t.request('POST', '/knowledge_bases/kb/documents', { documents });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    }
    await t.app.server.listen({ host: '127.0.0.1', port: 0 });
    const address = t.app.server.server.address();
    port = typeof address === 'object' && address ? address.port : 0;
    assert.ok(port > 0);
  });
  after(async () => {
    agent.destroy();
    healthAgent.destroy();
    await t?.close();
  });

  it('answers every query with a result or a fast 429, keeps /health responsive, and recovers', async () => {
    const query = (i: number) => ({ query: `${WORDS[i % WORDS.length]} ${WORDS[(i * 7) % WORDS.length]} delivery`, mode: 'hybrid', top_k: 10 });
    const one = async () => {
      const a = await send(agent, port, 'POST', '/knowledge_bases/kb/query', query(1));
      assert.equal(a.status, 200, a.body);
      return a.ms;
    };
    await one(); // warm-up
    await send(healthAgent, port, 'GET', '/health'); // connected before the burst
    const beforeMs: number[] = [];
    for (let i = 0; i < 5; i++) beforeMs.push(await one());

    // The 200 clients run on their own thread (like a separate load generator), so the server's
    // event loop, where /health is answered, carries only the server's work.
    const load = new Worker(LOAD_GENERATOR, {
      eval: true,
      workerData: { port, concurrency: CONCURRENCY, burstMs: BURST_MS, maxRequests: MAX_REQUESTS, words: WORDS },
    });
    const loaded = new Promise<LoadResult>((resolve, reject) => {
      load.once('message', resolve);
      load.once('error', reject);
    });
    await new Promise<void>((resolve) => load.once('online', () => resolve()));
    const health: number[] = [];
    const healthBad: string[] = [];
    let loading = true;
    void loaded.finally(() => {
      loading = false;
    });
    const poller = (async () => {
      while (loading) {
        try {
          const a = await send(healthAgent, port, 'GET', '/health');
          health.push(a.ms);
          if (a.status !== 200) healthBad.push(`${a.status} ${a.body}`);
        } catch (err) {
          healthBad.push((err as Error).message);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const result = await loaded;
    await poller;
    await load.terminate();
    const { statuses, ms, missingRetryAfter, otherBodies, failures, queueRefusals, rateRefusals } = result;
    const count = (status: number) => statuses.filter((s) => s === status).length;

    const afterMs: number[] = [];
    for (let i = 0; i < 5; i++) afterMs.push(await one());

    const ratio = median(afterMs) / median(beforeMs);
    console.log(
      `# admission burst: ${CONCURRENCY} clients for ${BURST_MS} ms: ${statuses.length} answers (${count(200)} x 200, ${count(429)} x 429 [${queueRefusals} queue full or wait too long, ${rateRefusals} rate limit], ${statuses.length - count(200) - count(429)} other, ${failures.length} transport errors); ` +
        `latency p50 ${pct(ms, 50).toFixed(1)} ms, p99 ${pct(ms, 99).toFixed(1)} ms, max ${maxOf(ms).toFixed(1)} ms; ` +
        `/health ${health.length} probes p50 ${pct(health, 50).toFixed(1)} ms, p99 ${pct(health, 99).toFixed(1)} ms, max ${maxOf(health).toFixed(1)} ms; ` +
        `query before ${median(beforeMs).toFixed(1)} ms, after ${median(afterMs).toFixed(1)} ms (ratio ${ratio.toFixed(2)})`,
    );

    assert.deepEqual(failures.slice(0, 5), [], 'no transport errors');
    assert.deepEqual(otherBodies.slice(0, 3), [], 'every answer is 200 or 429');
    assert.ok(count(200) > 0, 'some queries were served during the burst');
    assert.equal(missingRetryAfter, 0, 'every 429 carries Retry-After and RATE_LIMITED');
    assert.ok(maxOf(ms) < ANSWER_BOUND_MS, `slowest answer ${maxOf(ms).toFixed(0)} ms`);
    assert.deepEqual(healthBad, [], '/health answered 200 each time');
    assert.ok(health.length >= 5, `${health.length} health probes`);
    assert.ok(maxOf(health) < HEALTH_BOUND_MS, `slowest /health ${maxOf(health).toFixed(0)} ms`);
    assert.ok(maxOf(afterMs) < ANSWER_BOUND_MS, `a query after the burst took ${maxOf(afterMs).toFixed(0)} ms`);
  });
});

describe('per-client rate limit over HTTP', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp({ config: { rateLimitPerMinute: 5 } });
  });
  after(() => t.close());

  it('answers 429 RATE_LIMITED with Retry-After past the budget; /health and /metrics are never limited', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await t.request('GET', '/jobs')).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200]);
    const res = await t.app.server.inject({ method: 'GET', url: '/jobs' });
    assert.equal(res.statusCode, 429);
    assert.equal(res.json().error.code, 'RATE_LIMITED');
    assert.match(String(res.headers['retry-after']), /^[1-9]\d*$/);
    for (let i = 0; i < 20; i++) {
      assert.equal((await t.request('GET', '/health')).status, 200);
      assert.equal((await t.app.server.inject({ method: 'GET', url: '/metrics' })).statusCode, 200);
    }
  });
});

describe('Gate (bounded concurrency and queue)', () => {
  it('runs up to `concurrency`, queues up to `queue`, refuses the rest at once with Retry-After', async () => {
    const gate = new Gate('queries', { concurrency: 2, queue: 1, waitMs: 5_000 });
    const signal = new AbortController().signal;
    const r1 = await gate.acquire(signal);
    await gate.acquire(signal);
    const third = gate.acquire(signal);
    await assert.rejects(gate.acquire(signal), (e: any) => e.code === 'RATE_LIMITED' && e.retryAfterSeconds === 5);
    assert.equal(gate.queued, 1);
    r1();
    r1(); // idempotent
    await third;
    assert.equal(gate.running, 2);
    assert.equal(gate.queued, 0);
  });

  it('answers 429 to a request that waited longer than waitMs', async () => {
    const gate = new Gate('queries', { concurrency: 1, queue: 10, waitMs: 30 });
    const signal = new AbortController().signal;
    await gate.acquire(signal);
    const t0 = performance.now();
    await assert.rejects(gate.acquire(signal), (e: any) => e.code === 'RATE_LIMITED');
    // The 30 ms wait ends it (5 × 30 ms + 5 s of room for a loaded machine); a gate that ignored
    // waitMs would wait for the first holder, which never releases here.
    assert.ok(performance.now() - t0 < 5_150);
    assert.equal(gate.queued, 0);
  });

  it('drops a waiter whose client has gone: it never starts and frees its queue place', async () => {
    const gate = new Gate('queries', { concurrency: 1, queue: 1, waitMs: 5_000 });
    const release = await gate.acquire(new AbortController().signal);
    const client = new AbortController();
    const waiting = gate.acquire(client.signal);
    client.abort();
    await assert.rejects(waiting, (e: any) => e.status === 499);
    assert.equal(gate.queued, 0);
    const next = gate.acquire(new AbortController().signal);
    release();
    await next;
    assert.equal(gate.running, 1);
  });
});

describe('RateLimiter (token bucket)', () => {
  it('allows a burst of perMinute, refills continuously, and refused requests take no token', () => {
    let now = 0;
    const limiter = new RateLimiter(60, () => now);
    for (let i = 0; i < 60; i++) assert.equal(limiter.take('a'), 0);
    assert.equal(limiter.take('a'), 1);
    assert.equal(limiter.take('b'), 0, 'keys have their own budget');
    now += 1_000; // one token per second
    assert.equal(limiter.take('a'), 0);
    assert.ok(limiter.take('a') >= 1);
  });
});
