/**
 * `npm run screenshots`: the pictures of the dashboard in docs/screenshots/, for the README and
 * docs/dashboard.md. Starts `kbsync demo` on a temporary data dir, gives it a little history (the
 * seed's job run three times as new orders arrive, a second job running while the jobs page is
 * taken, a third one paused), and photographs the pages with headless Chromium
 * (/usr/bin/chromium, or KBSYNC_CHROMIUM).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { demoJobBody } from '../src/demo.js';
import {
  type DemoServer,
  hasChromium,
  CHROMIUM,
  launchBrowser,
  startKbsync,
} from '../test/helpers/browser.js';
import { poll } from '../test/helpers/process.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT = path.join(ROOT, 'docs', 'screenshots');

async function ok<T = unknown>(server: DemoServer, method: string, url: string, body?: unknown): Promise<T> {
  const res = await server.request(method, url, body);
  if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.data as T;
}

/** Starts a run of `job` and waits for it to end. */
async function runAndWait(server: DemoServer, job: string): Promise<void> {
  const { run_id } = await ok<{ run_id: string }>(server, 'POST', `/jobs/${job}/run`);
  await poll(
    `run ${run_id} of ${job}`,
    async () =>
      (await ok<{ status: string }>(server, 'GET', `/jobs/${job}/runs/${run_id}`)).status === 'running'
        ? undefined
        : true,
    300_000,
    250,
  );
}

/** New orders in the demo table, later than every row there, as a shop would add them. */
function addOrders(dbFile: string, count: number): void {
  const db = new Database(dbFile);
  try {
    const { maxId, maxAt } = db
      .prepare('SELECT max(id) AS maxId, max(created_at) AS maxAt FROM orders')
      .get() as {
      maxId: number;
      maxAt: string;
    };
    const insert = db.prepare(
      'INSERT INTO orders (id, product, description, created_at) VALUES (?, ?, ?, ?)',
    );
    const start = Date.parse(`${maxAt.replace(' ', 'T')}Z`);
    for (let i = 1; i <= count; i++) {
      const at = new Date(start + i * 3600_000)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d{3}Z$/, '');
      insert.run(
        maxId + i,
        'Aurora down jacket',
        'Packable goose-down jacket rated to minus ten degrees. Restock order.',
        at,
      );
    }
  } finally {
    db.close();
  }
}

async function main(): Promise<void> {
  if (!hasChromium())
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (or set KBSYNC_CHROMIUM)`);
  fs.mkdirSync(OUT, { recursive: true });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kbsync-screenshots-'));
  const server = await startKbsync('demo', dataDir);
  const browser = await launchBrowser();
  try {
    const seed = demoJobBody(Date.now() + 3600_000);
    await ok(server, 'POST', '/jobs/create', { ...seed, batch_size: 50 });
    const dbFile = path.join(dataDir, 'demo', 'orders.db');
    await runAndWait(server, 'sync_orders');
    addOrders(dbFile, 40);
    await runAndWait(server, 'sync_orders');
    addOrders(dbFile, 15);
    await runAndWait(server, 'sync_orders');

    await ok(server, 'POST', '/knowledge_bases/create', {
      kb_name: 'product_notes',
      description: 'Product descriptions only',
    });
    await ok(server, 'POST', '/jobs/create', {
      ...seed,
      job_name: 'sync_descriptions',
      kb_name: 'product_notes',
      content_columns: ['description'],
      interval: '1 HOUR',
      batch_size: 5,
    });
    await ok(server, 'POST', '/jobs/create', { ...seed, job_name: 'sync_archive', interval: 'DAILY' });
    await ok(server, 'POST', '/jobs/sync_archive/pause');

    const page = await browser.newPage({ viewport: { width: 1280, height: 720 }, deviceScaleFactor: 1 });
    page.setDefaultTimeout(120_000);

    // The jobs page while sync_descriptions runs: its progress bar with rows moving.
    await ok(server, 'POST', '/jobs/sync_descriptions/run');
    await page.goto(`${server.baseUrl}/#/jobs`);
    await page.locator('tr[data-job="sync_descriptions"] [data-test=run-progress]').waitFor();
    await page.waitForFunction(() =>
      /[1-9]/.test(document.querySelector('[data-test=run-progress] .progress-text')?.textContent ?? ''),
    );
    await page.screenshot({ path: path.join(OUT, 'jobs.png') });

    // The seed job's page: actions, facts, the run history chart and table.
    await page.goto(`${server.baseUrl}/#/jobs/sync_orders`);
    await page.locator('[data-test=run-chart] canvas').first().waitFor();
    await page.waitForTimeout(300);
    await page.screenshot({ path: path.join(OUT, 'job.png'), fullPage: true });

    // A search by meaning in the demo knowledge base.
    await page.goto(`${server.baseUrl}/#/kbs/orders_kb`);
    await page.locator('input[name=query]').fill('something warm for winter camping');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.locator('[data-test=results]').waitFor();
    await page.screenshot({ path: path.join(OUT, 'kb-search.png') });

    for (const f of ['jobs.png', 'job.png', 'kb-search.png']) {
      console.log(
        `${path.relative(ROOT, path.join(OUT, f))} ${(fs.statSync(path.join(OUT, f)).size / 1024).toFixed(0)} KiB`,
      );
    }
  } finally {
    await browser.close();
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
