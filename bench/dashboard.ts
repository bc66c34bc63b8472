/**
 * `npm run bench -- dashboard`: how small and fast the dashboard is (docs/dashboard.md). A real
 * `kbsync serve` with 100 jobs (the per-account maximum) and headless Chromium: bytes on the wire
 * for the jobs page (first visit, then a reload that revalidates), time from navigation to the
 * 100 rows drawn (median of 7), and what one poll costs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { demoJobBody, ensureDemoDatabase } from '../src/demo.js';
import {
  buildDashboard,
  CHROMIUM,
  hasChromium,
  launchBrowser,
  startKbsync,
} from '../test/helpers/browser.js';

const JOBS = 100;
const LOADS = 7;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;

/** Navigates and waits for `selector` to appear `count` times; returns ms and bytes received (encoded). */
async function load(
  page: Page,
  url: string,
  selector: string,
  count: number,
): Promise<{ ms: number; bytes: number; requests: number }> {
  let bytes = 0;
  let requests = 0;
  const pending: Promise<void>[] = [];
  const onResponse = (res: import('playwright-core').Response) => {
    requests++;
    pending.push(
      res
        .request()
        .sizes()
        .then((s) => {
          bytes += s.responseBodySize + s.responseHeadersSize;
        })
        .catch(() => {}),
    );
  };
  page.on('response', onResponse);
  const started = performance.now();
  await page.goto(url);
  await page.waitForFunction(([sel, n]) => document.querySelectorAll(sel as string).length >= (n as number), [
    selector,
    count,
  ] as const);
  const ms = performance.now() - started;
  page.off('response', onResponse);
  await Promise.all(pending);
  return { ms, bytes, requests };
}

async function main(): Promise<void> {
  if (!hasChromium()) {
    console.log(`skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium)`);
    return;
  }
  buildDashboard();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kbsync-bench-dashboard-'));
  const server = await startKbsync('serve', dataDir, {
    KBSYNC_SQLITE_ROOTS: os.tmpdir(),
    KBSYNC_SCHEDULER: 'off',
  });
  const browser = await launchBrowser();
  try {
    const must = async (method: string, url: string, body?: unknown) => {
      const res = await server.request(method, url, body);
      if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body.data;
    };
    await must('POST', '/databases/create', {
      name: 'orders_db',
      engine: 'sqlite',
      parameters: { path: ensureDemoDatabase(dataDir) },
    });
    await must('POST', '/knowledge_bases/create', { kb_name: 'orders_kb' });
    const seed = demoJobBody(Date.now() + 3600_000);
    for (let i = 0; i < JOBS; i++)
      await must('POST', '/jobs/create', { ...seed, job_name: `sync_orders_${String(i).padStart(3, '0')}` });

    const listBytes = Buffer.byteLength(JSON.stringify(await must('GET', `/jobs?limit=200`)));
    const rows: string[][] = [];
    const jobsUrl = `${server.baseUrl}/#/jobs`;

    const cold: number[] = [];
    let first = { ms: 0, bytes: 0, requests: 0 };
    for (let i = 0; i < LOADS; i++) {
      const context = await browser.newContext();
      const page = await context.newPage();
      const r = await load(page, jobsUrl, 'tr[data-job]', JOBS);
      if (i === 0) first = r;
      cold.push(r.ms);
      await context.close();
    }
    rows.push([
      'jobs page, first visit (empty cache)',
      `${median(cold).toFixed(0)} ms`,
      kib(first.bytes),
      String(first.requests),
    ]);

    const context = await browser.newContext();
    const page = await context.newPage();
    await load(page, jobsUrl, 'tr[data-job]', JOBS);
    const warm: number[] = [];
    let again = { ms: 0, bytes: 0, requests: 0 };
    for (let i = 0; i < LOADS; i++) {
      await page.goto('about:blank');
      const r = await load(page, jobsUrl, 'tr[data-job]', JOBS);
      again = r;
      warm.push(r.ms);
    }
    rows.push([
      'jobs page, again (revalidated, 304s)',
      `${median(warm).toFixed(0)} ms`,
      kib(again.bytes),
      String(again.requests),
    ]);

    console.log(
      `\n${JOBS} jobs; median of ${LOADS} loads; bytes as received (brotli where the browser accepts it), headers included`,
    );
    console.log('| load | time to rows drawn | bytes | requests |');
    console.log('|---|---:|---:|---:|');
    for (const r of rows) console.log(`| ${r.join(' | ')} |`);
    console.log(
      `\none poll of the jobs page while nothing runs: 1 request, GET /jobs?limit=200 = ${kib(listBytes)} of JSON (uncompressed) for ${JOBS} jobs, every 10 s; while a job runs, every 1 s plus one GET of each running run`,
    );
    const dist = path.resolve('dist', 'web');
    const sizeOf = (f: string) => fs.statSync(path.join(dist, f)).size;
    const uplot = ['ui/vendor/uPlot.esm.js', 'ui/vendor/uPlot.esm.js.br'];
    console.log(
      `uPlot: ${kib(sizeOf(uplot[0]!))} (${kib(sizeOf(uplot[1]!))} brotli), fetched only by a job page`,
    );
  } finally {
    await browser.close();
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
