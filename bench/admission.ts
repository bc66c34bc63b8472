/**
 * Admission control under a flood (issue 8): 200 closed-loop clients send hybrid queries for
 * 20 s to a real `kbsync serve` process, from a load-generator process of their own (as
 * autocannon would), while this process probes /health every 50 ms on its own connection.
 *
 *   npx tsx bench/admission.ts              20 s, 200 clients
 *   npx tsx bench/admission.ts 5000 100     5 s, 100 clients
 *
 * Prints answers by status, answer latency p50/p99/max, /health p50/p99/max and how many probes
 * took over 100 ms, and a query's latency before vs after the burst. The knowledge base uses the
 * local model (the default), so every admitted query also embeds its text on a worker thread.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const BURST_MS = Number(process.argv[2] ?? 20_000);
const CLIENTS = Number(process.argv[3] ?? 200);
const WORDS = 'order shipping refund invoice warehouse delivery customer payment account product return status support price'.split(' ');

const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });

function request(port: number, method: string, url: string, body?: unknown): Promise<{ status: number; ms: number; body: string }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: url,
        agent,
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(60_000, () => req.destroy(new Error('client timeout')));
    req.end(payload);
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

async function waitHealthy(port: number, server: ChildProcess): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (server.exitCode !== null) throw new Error(`the server exited with ${server.exitCode}`);
    try {
      if ((await request(port, 'GET', '/health')).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the server did not start within 60 s');
}

/** The load generator: a separate Node process, closed-loop clients on keep-alive connections. */
const LOAD = `
const http = require('node:http');
const [port, clients, burstMs] = process.argv.slice(1).map(Number);
const words = ${JSON.stringify(WORDS)};
const agent = new http.Agent({ keepAlive: true, maxSockets: clients + 10 });
function send(method, path, body) {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent,
      headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, ms: performance.now() - t0 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(60000, () => req.destroy(new Error('client timeout')));
    req.end(payload);
  });
}
(async () => {
  await Promise.all(Array.from({ length: clients }, () => send('GET', '/health')));
  process.send('connected');
  const out = { statuses: {}, ms: [], errors: 0 };
  const deadline = performance.now() + burstMs;
  let sent = 0;
  await Promise.all(Array.from({ length: clients }, async (_, w) => {
    while (performance.now() < deadline) {
      const i = w + ++sent;
      const body = { query: words[i % words.length] + ' ' + words[(i * 7) % words.length] + ' delivery', mode: 'hybrid', top_k: 10 };
      try {
        const a = await send('POST', '/knowledge_bases/kb/query', body);
        out.statuses[a.status] = (out.statuses[a.status] || 0) + 1;
        out.ms.push(a.ms);
      } catch { out.errors++; }
    }
  }));
  process.send(out);
  agent.destroy();
})();
`;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const maxOf = (xs: number[]) => xs.reduce((m, x) => Math.max(m, x), 0);

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kbsync-bench-admission-'));
  const port = await freePort();
  const server = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve'], {
    env: { ...process.env, PORT: String(port), KBSYNC_DATA_DIR: dir, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    await waitHealthy(port, server);
    const created = await request(port, 'POST', '/knowledge_bases/create', { kb_name: 'kb' });
    if (created.status !== 201) throw new Error(`create kb: ${created.status} ${created.body}`);
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
      const res = await request(port, 'POST', '/knowledge_bases/kb/documents', { documents });
      if (res.status !== 200) throw new Error(`documents: ${res.status} ${res.body}`);
    }
    const query = { query: 'refund delivery status', mode: 'hybrid', top_k: 10 };
    const one = async () => (await request(port, 'POST', '/knowledge_bases/kb/query', query)).ms;
    await one();
    const before: number[] = [];
    for (let i = 0; i < 20; i++) before.push(await one());

    const load = spawn(process.execPath, ['-e', LOAD, String(port), String(CLIENTS), String(BURST_MS)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const messages: unknown[] = [];
    const done = new Promise<{ statuses: Record<string, number>; ms: number[]; errors: number }>((resolve, reject) => {
      load.on('message', (m) => {
        messages.push(m);
        if (m !== 'connected') resolve(m as { statuses: Record<string, number>; ms: number[]; errors: number });
      });
      load.on('exit', (code) => reject(new Error(`load generator exited with ${code}`)));
    });
    await new Promise<void>((resolve) => load.on('message', (m) => m === 'connected' && resolve()));
    let loading = true;
    void done.finally(() => {
      loading = false;
    });
    const health: number[] = [];
    let healthBad = 0;
    while (loading) {
      const a = await request(port, 'GET', '/health');
      health.push(a.ms);
      if (a.status !== 200) healthBad++;
      await new Promise((r) => setTimeout(r, 50));
    }
    const result = await done;
    load.kill();
    const after: number[] = [];
    for (let i = 0; i < 20; i++) after.push(await one());

    const total = Object.values(result.statuses).reduce((a, b) => a + b, 0);
    console.log(`${CLIENTS} clients for ${(BURST_MS / 1000).toFixed(0)} s against one kbsync process (local model, 400 documents, hybrid top 10)`);
    console.log('');
    console.log('| measure | value |');
    console.log('|---|---|');
    console.log(`| answers | ${total} (${Object.entries(result.statuses).map(([s, n]) => `${n} × ${s}`).join(', ')}), ${result.errors} transport errors |`);
    console.log(`| answer latency p50 / p99 / max | ${pct(result.ms, 50).toFixed(1)} / ${pct(result.ms, 99).toFixed(1)} / ${maxOf(result.ms).toFixed(1)} ms |`);
    console.log(`| answers over 2 s | ${result.ms.filter((m) => m > 2_000).length} |`);
    console.log(`| /health probes | ${health.length} (${healthBad} not 200) |`);
    console.log(`| /health p50 / p99 / max | ${pct(health, 50).toFixed(1)} / ${pct(health, 99).toFixed(1)} / ${maxOf(health).toFixed(1)} ms |`);
    console.log(`| /health probes over 100 ms | ${health.filter((m) => m > 100).length} |`);
    console.log(`| query before / after the burst (median of 20) | ${pct(before, 50).toFixed(1)} / ${pct(after, 50).toFixed(1)} ms (ratio ${(pct(after, 50) / pct(before, 50)).toFixed(2)}) |`);
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
    agent.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
