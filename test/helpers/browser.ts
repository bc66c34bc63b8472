/**
 * A real headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core, which downloads
 * no browser of its own) and a `kbsync demo` server as a child process, for the dashboard's
 * end-to-end test and `npm run screenshots`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';
import { freePort, poll } from './process.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const CHROMIUM = process.env.KBSYNC_CHROMIUM ?? '/usr/bin/chromium';

export const hasChromium = (): boolean => fs.existsSync(CHROMIUM);

/** A fresh browser: a new temporary profile, nothing from the network but this machine. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** dist/web from web/ and the vendor packages (the same script `npm run build` runs). */
export function buildDashboard(): void {
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build-dashboard.mjs')], {
    cwd: ROOT,
    stdio: 'pipe',
  });
}

export interface DemoServer {
  baseUrl: string;
  output(): string;
  /** JSON over HTTP; `key` as Bearer. */
  request(method: string, url: string, body?: unknown, key?: string): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

/**
 * `kbsync <mode>` on `dataDir` (`demo`: orders_db, table orders, KB orders_kb in the default
 * account), resolved once /health answers.
 */
export async function startKbsync(
  mode: 'demo' | 'serve',
  dataDir: string,
  env: Record<string, string> = {},
): Promise<DemoServer> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', mode], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      KBSYNC_DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  const request = async (method: string, url: string, body?: unknown, key?: string) => {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (key) headers.authorization = `Bearer ${key}`;
    const res = await fetch(`${baseUrl}${url}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
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
  try {
    await poll(
      `kbsync ${mode} to answer /health`,
      async () => {
        if (child.exitCode !== null) throw new Error(`kbsync ${mode} exited (${child.exitCode}):\n${output}`);
        try {
          return (await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(2_000) })).ok
            ? true
            : undefined;
        } catch {
          return undefined;
        }
      },
      90_000,
      200,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { baseUrl, output: () => output, request, stop };
}
