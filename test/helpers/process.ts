/**
 * The real server as a child process (`node --import tsx src/cli.ts serve`), for tests that need
 * what only a process gives: SIGKILL, a restart on the same data dir. Every child started here is
 * remembered so a test's `after` can kill whatever is left (`killAllServers`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ServerProcess {
  child: ChildProcess;
  baseUrl: string;
  /** stdout and stderr so far (for failure messages). */
  output(): string;
  /** HTTP with a JSON body; the parsed answer. */
  request(method: string, url: string, body?: unknown): Promise<{ status: number; body: any }>;
  /** Sends `signal` and waits for the exit (SIGKILL after `graceMs` if it does not exit). */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
  /** SIGKILL, and waits for the exit. */
  kill(): Promise<void>;
}

const live = new Set<ChildProcess>();

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

async function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return true;
  return Promise.race([
    once(child, 'exit').then(() => true),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(exited(child)), ms).unref()),
  ]);
}

/**
 * Starts `kbsync serve` on `dataDir` and resolves once `GET /health` answers 200. Extra `env`
 * entries override the defaults (scheduler on, log level warn).
 */
export async function startServer(
  dataDir: string,
  env: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<ServerProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve'], {
    cwd: ROOT,
    env: {
      ...process.env,
      KBSYNC_DATA_DIR: dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      KBSYNC_SCHEDULER: 'on',
      KBSYNC_SQLITE_ROOTS: tmpdir(),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  let output = '';
  const collect = (d: Buffer) => {
    output += d.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const baseUrl = `http://127.0.0.1:${port}`;

  const request = async (method: string, url: string, body?: unknown) => {
    const res = await fetch(`${baseUrl}${url}`, {
      method,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: res.status, body: parsed as any };
  };

  const kill = async () => {
    if (exited(child)) return;
    child.kill('SIGKILL');
    await waitExit(child, 10_000);
  };

  const proc: ServerProcess = {
    child,
    baseUrl,
    output: () => output,
    request,
    kill,
    async stop(signal = 'SIGTERM', graceMs = 15_000) {
      if (exited(child)) return;
      child.kill(signal);
      if (!(await waitExit(child, graceMs))) await kill();
    },
  };

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited(child))
      throw new Error(
        `kbsync exited before answering /health (code ${child.exitCode}, signal ${child.signalCode}):\n${output}`,
      );
    try {
      const res = await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(2_000) });
      await res.text();
      if (res.status === 200) return proc;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await kill();
      throw new Error(`kbsync did not answer /health within ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** SIGKILLs every child still running (for `after`). */
export async function killAllServers(): Promise<void> {
  await Promise.all(
    [...live].map(async (child) => {
      if (!exited(child)) child.kill('SIGKILL');
      await waitExit(child, 5_000);
    }),
  );
}

/** Polls `check` until it returns a value other than undefined; fails with `what` after `timeoutMs`. */
export async function poll<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
