/**
 * The local provider beyond the contract: it runs with no network at all, its pool starts
 * workers on demand and lets the process exit, it can be cancelled and closed, and it works both
 * from the TypeScript sources (tsx) and from compiled JavaScript in dist/.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EmbeddingProviderError } from '../../src/embeddings/errors.js';
import { LocalEmbeddingProvider } from '../../src/embeddings/local/index.js';
import { dot } from '../../src/embeddings/vectors.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const srcProvider = new URL('../../src/embeddings/local/index.ts', import.meta.url).href;
const distProvider = new URL('../../dist/src/embeddings/local/index.js', import.meta.url);

/**
 * Preloaded into the child process and, because workers inherit execArgv, into every worker
 * thread: any socket connection, DNS lookup or fetch throws and is reported on stderr.
 * net.Socket#connect is where every TCP/TLS client in Node ends up (http, https, undici's fetch).
 */
const NETWORK_BLOCKER = `
import net from 'node:net';
import dns from 'node:dns';
import { writeSync } from 'node:fs';
import { isMainThread, threadId } from 'node:worker_threads';
const say = (m) => writeSync(2, '[netblock] thread=' + threadId + ' ' + m + '\\n');
const blocked = (what) => function () { say('attempt ' + what); throw new Error('network blocked by test: ' + what); };
net.Socket.prototype.connect = blocked('connect');
dns.lookup = blocked('dns.lookup');
dns.promises.lookup = blocked('dns.promises.lookup');
globalThis.fetch = async (url) => { say('attempt fetch ' + url); throw new Error('network blocked by test: fetch'); };
say('installed main=' + isMainThread);
`;

/** Can this machine give a process its own empty network namespace (root, or user namespaces)? */
const canUnshareNet = spawnSync('unshare', ['-n', 'true']).status === 0;

interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs node with `args`. The time limit is a guard against a child that never exits (the failure
 * one test looks for), not a speed check: a few seconds' work given minutes on a loaded machine.
 */
function runChild(
  args: string[],
  options: { isolateNetwork?: boolean; timeoutMs?: number } = {},
): Promise<ChildResult> {
  const [cmd, argv] =
    options.isolateNetwork && canUnshareNet
      ? ['unshare', ['-n', process.execPath, ...args]]
      : [process.execPath, args];
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd as string, argv as string[], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `child did not exit within ${options.timeoutMs ?? 180_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`,
        ),
      );
    }, options.timeoutMs ?? 180_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

const embedScript = (providerUrl: string, { close }: { close: boolean }) => `
const { LocalEmbeddingProvider } = await import(${JSON.stringify(providerUrl)});
const control = await fetch('http://127.0.0.1:9/').then(() => 'reached', (e) => String(e.message));
// blockNetwork: false, so only the test's own blocker (and namespace) stands between the model and the network.
const p = new LocalEmbeddingProvider({ threads: 2, blockNetwork: false });
const texts = ['How old are you?', 'What is your age?', 'The invoice was paid.', 'a', 'b', 'c', 'd', 'e'];
const v = await p.embed(texts);
const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);
console.log(JSON.stringify({ control, n: v.length, dims: v[0].length, workers: p.workersStarted, similar: dot(v[0], v[1]), unrelated: dot(v[0], v[2]) }));
${close ? 'await p.close();' : '// no close(): idle workers must not keep the process alive'}
`;

describe('local provider: offline', () => {
  it(`loads the model and embeds with every network path blocked${canUnshareNet ? ', in an empty network namespace' : ''}`, async (t) => {
    const blocker = `data:text/javascript,${encodeURIComponent(NETWORK_BLOCKER)}`;
    const res = await runChild(
      [
        '--import',
        'tsx',
        '--import',
        blocker,
        '--input-type=module',
        '-e',
        embedScript(srcProvider, { close: true }),
      ],
      {
        isolateNetwork: true,
      },
    );
    t.diagnostic(
      `network namespace isolation: ${canUnshareNet ? 'yes (unshare -n)' : 'not available here; JavaScript-level block only'}`,
    );
    assert.equal(res.code, 0, res.stderr);
    const out = JSON.parse(res.stdout.trim().split('\n').at(-1)!);
    assert.match(out.control, /network blocked by test/, 'the blocker is active in the main thread');
    assert.equal(out.n, 8);
    assert.equal(out.dims, 512);
    assert.equal(out.workers, 2);
    assert.ok(out.similar > out.unrelated);

    const lines = res.stderr.split('\n').filter((l) => l.startsWith('[netblock]'));
    const workerInstalls = lines.filter((l) => l.endsWith('installed main=false'));
    assert.ok(
      workerInstalls.length >= 2,
      `the blocker ran in both embedding worker threads:\n${lines.join('\n')}`,
    );
    const attempts = lines.filter((l) => l.includes(' attempt '));
    assert.deepEqual(
      attempts.map((l) => l.replace(/thread=\d+ /, '')),
      ['[netblock] attempt fetch http://127.0.0.1:9/'],
      'the control fetch was the only network attempt',
    );
  });

  it('negative control: the same blocker catches a model download from a worker thread', async () => {
    // What the provider must never do: initModel() without a source fetches from tfhub.dev.
    const script = `
      import { Worker } from 'node:worker_threads';
      new Worker("import('@energetic-ai/embeddings').then((m) => m.initModel()).then(() => console.log('downloaded'), (e) => console.log('failed: ' + e.message))", { eval: true });
    `;
    const blocker = `data:text/javascript,${encodeURIComponent(NETWORK_BLOCKER)}`;
    const res = await runChild(['--import', blocker, '--input-type=module', '-e', script], {
      isolateNetwork: true,
      timeoutMs: 120_000,
    });
    assert.match(res.stdout, /failed: network blocked by test/);
    assert.match(res.stderr, /attempt fetch https:\/\/tfhub\.dev\//);
  });
});

describe('local provider: process lifetime', () => {
  it('an idle pool that was never closed does not keep the process alive', async () => {
    const res = await runChild(
      ['--import', 'tsx', '--input-type=module', '-e', embedScript(srcProvider, { close: false })],
      { timeoutMs: 120_000 },
    );
    assert.equal(res.code, 0, res.stderr);
    assert.equal(JSON.parse(res.stdout.trim()).n, 8);
  });

  it('works from compiled JavaScript in dist/ (worker.js, no tsx)', {
    skip: !existsSync(distProvider) && 'dist/ not built (npx tsc -p tsconfig.json)',
  }, async () => {
    const res = await runChild(
      ['--input-type=module', '-e', embedScript(distProvider.href, { close: true })],
      { timeoutMs: 120_000 },
    );
    assert.equal(res.code, 0, res.stderr);
    const out = JSON.parse(res.stdout.trim());
    assert.equal(out.dims, 512);
    assert.equal(out.workers, 2);
  });
});

describe('local provider: pool', () => {
  let provider: LocalEmbeddingProvider;
  before(() => {
    provider = new LocalEmbeddingProvider({ threads: 2, batchSize: 4, maxInputChars: 1000 });
  });
  after(async () => {
    await provider.close();
  });

  it('starts workers on demand, up to `threads`', async () => {
    assert.equal(provider.workersStarted, 0, 'nothing before first use');
    await provider.embed(['one text']);
    assert.equal(provider.workersStarted, 1, 'one small batch needs one worker');
    await provider.embed(Array.from({ length: 16 }, (_, i) => `text number ${i}`));
    assert.equal(provider.workersStarted, 2);
  });

  it('splits a text over maxInputChars into pieces and returns one vector', async () => {
    const sentence = 'Customers can return any product within thirty days for a full refund. ';
    const [long, short] = await provider.embed([sentence.repeat(50), sentence]);
    assert.ok(Math.abs(Math.sqrt(dot(long!, long!)) - 1) < 1e-5);
    assert.ok(dot(long!, short!) > 0.9);
  });

  it('rejects with the abort reason when aborted mid-batch', async () => {
    const ctrl = new AbortController();
    const pending = provider.embed(
      Array.from({ length: 200 }, (_, i) => `sentence ${i} to keep the workers busy`),
      { signal: ctrl.signal },
    );
    setTimeout(() => ctrl.abort(new Error('run cancelled')), 20);
    await assert.rejects(pending, /run cancelled/);
    // The pool is still usable afterwards.
    assert.equal((await provider.embed(['still works'])).length, 1);
  });

  it('close() fails work in progress and refuses new work', async () => {
    const p = new LocalEmbeddingProvider({ threads: 1 });
    const pending = assert.rejects(
      p.embed(Array.from({ length: 50 }, (_, i) => `text ${i}`)),
      (e: unknown) => e instanceof EmbeddingProviderError && !e.retryable && /closed/.test(e.message),
    );
    await p.close();
    await pending;
    await assert.rejects(p.embed(['after close']), /closed/);
    assert.equal(p.workersStarted, 0);
  });

  it('warmup() starts every worker with the model loaded', async () => {
    const p = new LocalEmbeddingProvider({ threads: 2 });
    try {
      assert.equal(p.workersLoaded, 0, 'nothing loaded before warm-up');
      await p.warmup();
      assert.equal(p.workersStarted, 2);
      // A worker counts as loaded only once it has answered with its model in memory, so this
      // fails if warm-up only started the threads (and the first embed would load the model).
      assert.equal(p.workersLoaded, 2, 'every worker has the model loaded after warm-up');
      // State, not speed (the warm-up latency is in `npm run bench embeddings`): the first
      // batches after warm-up start no new worker.
      assert.equal((await p.embed(Array.from({ length: 8 }, (_, i) => `ready ${i}`))).length, 8);
      assert.equal(p.workersStarted, 2);
      assert.equal(p.workersLoaded, 2);
    } finally {
      await p.close();
    }
  });
});
