/**
 * The dashboard at / (issue 10, point 2; docs/dashboard.md), end to end: `kbsync demo` as a real
 * process, the dashboard built by scripts/build-dashboard.mjs, and a real headless Chromium
 * (Debian's /usr/bin/chromium through playwright-core) clicking through it. Locally the browser
 * tests are skipped, with the reason, when Chromium is missing; under CI they run (.ci/run
 * installs it) and fail if it is missing.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { tmpdir } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { demoJobBody, ensureDemoDatabase } from '../../src/demo.js';
import { tempDir } from '../helpers/app.js';
import {
  buildDashboard,
  CHROMIUM,
  type DemoServer,
  hasChromium,
  launchBrowser,
  startKbsync,
} from '../helpers/browser.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BROWSER_SKIP =
  hasChromium() || process.env.CI
    ? false
    : `no Chromium at ${CHROMIUM}: apt-get install -y chromium (CI installs it)`;

/** The seed's job for the demo, its first tick an hour away (so only Run now starts a run), in batches of 25. */
const demoJob = () => ({ ...demoJobBody(Date.now() + 3600_000), batch_size: 25 });

/**
 * Records each state of the job page as `run status|progress line|rows read` whenever the DOM
 * changes, into window.__frames. A string, not a function: tsx would wrap a named function in a
 * helper the page does not have.
 */
const RECORDER = `(() => {
  const frames = [];
  window.__frames = frames;
  const record = () => {
    const status = document.querySelector('tr[data-run] [data-status]')?.dataset.status ?? '-';
    const bar = document.querySelector('[data-test=run-progress] .progress-text')?.textContent ?? '-';
    const rows = document.querySelector('tr[data-run] td[data-col=rows_read]')?.textContent ?? '-';
    const frame = status + '|' + bar + '|' + rows;
    if (frames[frames.length - 1] !== frame) frames.push(frame);
  };
  new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  record();
})()`;

/** Console errors and uncaught exceptions of a page (a CSP violation is a console error). */
function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  return errors;
}

describe('dashboard over HTTP and in a browser (kbsync demo)', () => {
  let server: DemoServer;
  let browser: Browser | null = null;
  let dataDir = '';

  before(async () => {
    buildDashboard();
    dataDir = tempDir('kbsync-dashboard-');
    server = await startKbsync('demo', dataDir);
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('serves the page and its files without a key, with a CSP and short caching, outside the OpenAPI document', async () => {
    const page = await fetch(`${server.baseUrl}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    assert.equal(page.headers.get('cache-control'), 'no-cache');
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    const html = await page.text();
    assert.match(html, /<script type="module" src="ui\/app.js">/);
    assert.doesNotMatch(html, /<script>|https?:\/\//, 'no inline script, nothing from another host');

    for (const [file, type] of [
      ['ui/app.js', /^application\/javascript/],
      ['ui/style.css', /^text\/css/],
      ['ui/vendor/preact.module.js', /^application\/javascript/],
      ['ui/vendor/uPlot.min.css', /^text\/css/],
    ] as const) {
      const res = await fetch(`${server.baseUrl}/${file}`);
      await res.arrayBuffer();
      assert.equal(res.status, 200, file);
      assert.match(res.headers.get('content-type') ?? '', type, file);
      assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'self'/, file);
    }
    // The vendor hooks import preact by path: a bare "preact" would not load in a browser.
    const hooks = await (await fetch(`${server.baseUrl}/ui/vendor/hooks.module.js`)).text();
    assert.match(hooks, /from"\.\/preact\.module\.js"/);
    assert.doesNotMatch(hooks, /from\s*["']preact["']/);
    // Compressed once at build time, sent to browsers that take it.
    const br = await fetch(`${server.baseUrl}/ui/vendor/uPlot.esm.js`, {
      headers: { 'accept-encoding': 'br' },
    });
    assert.equal(br.headers.get('content-encoding'), 'br');
    assert.match(await br.text(), /export default uPlot|export \{/);

    const missing = await fetch(`${server.baseUrl}/ui/nothing-here.js`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as any).error.code, 'NOT_FOUND');

    const openapi = (await server.request('GET', '/openapi.json')).body;
    const paths = Object.keys(openapi.paths);
    assert.ok(paths.includes('/jobs'), 'the document is there');
    assert.deepEqual(
      paths.filter((p) => p === '/' || p.startsWith('/ui')),
      [],
      'the dashboard is not part of the API',
    );
  });

  it('lists the demo job, runs it with live progress, and finds the down jacket in the knowledge base', {
    skip: BROWSER_SKIP,
    timeout: 400_000,
  }, async (t) => {
    const created = await server.request('POST', '/jobs/create', demoJob());
    assert.equal(created.status, 201, JSON.stringify(created.body));

    browser = await launchBrowser();
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(60_000);
    const errors = watchErrors(page);

    // The jobs page: the job, its status and next run.
    await page.goto(`${server.baseUrl}/`);
    const row = page.locator('tr[data-job="sync_orders"]');
    await row.waitFor();
    assert.equal(await row.locator('[data-status]').getAttribute('data-status'), 'scheduled');
    assert.match((await row.locator('time').first().textContent()) ?? '', /^in \d/, 'next run, relative');
    assert.match((await row.textContent()) ?? '', /never run/);

    // Its page; then every state the page shows is recorded as it changes (hash routing: the
    // document stays, so the recorder does too).
    await row.locator('a', { hasText: 'sync_orders' }).click();
    await page.locator('h1', { hasText: 'sync_orders' }).waitFor();
    await page.evaluate(RECORDER);
    await page.getByRole('button', { name: 'Run now' }).click();
    await page.locator('[data-test=run-progress]').first().waitFor();
    await page.locator('tr[data-run] [data-status="succeeded"]').waitFor({ timeout: 300_000 });
    const frames = (await page.evaluate(() => (window as any).__frames)) as string[];
    const running = frames.filter((f) => f.startsWith('running|') && !f.includes('|-|'));
    assert.ok(
      running.length >= 1,
      `the progress bar was shown while the run worked: ${JSON.stringify(frames)}`,
    );
    const firstRows = Number((running[0] ?? '').split('|')[2]?.replace(/,/g, ''));
    assert.ok(firstRows < 300, `the counter started below the total: ${JSON.stringify(frames)}`);
    assert.equal(
      frames[frames.length - 1],
      'succeeded|-|300',
      `the counter reached 300 live, and the bar went: ${JSON.stringify(frames)}`,
    );
    const progressTexts = new Set(running.map((f) => f.split('|')[1]));
    t.diagnostic(
      `${running.length} frames while running, ${progressTexts.size} distinct progress lines: ${[...progressTexts].join(' / ')}`,
    );
    // The server's progress (an estimate of the demo table's 300 rows), not only a row counter.
    assert.ok(
      [...progressTexts].some((text) => /^\d+% · [\d,]+ \/ 300 rows/.test(text ?? '')),
      `the bar showed a percent of the server's estimate while the run worked: ${[...progressTexts].join(' / ')}`,
    );
    // The history chart (uPlot, loaded on demand) draws the finished run.
    await page.locator('[data-test=run-chart] canvas').first().waitFor();
    assert.equal(await page.locator('tr.note').count(), 0, 'no error or hint under a clean run');

    // Knowledge bases: counts, then a search by meaning and one by keyword.
    await page.getByRole('link', { name: 'Knowledge bases' }).click();
    const kbRow = page.locator('tr[data-kb="orders_kb"]');
    await kbRow.waitFor();
    assert.equal(await kbRow.locator('td[data-col=documents]').textContent(), '300');
    await kbRow.locator('a').click();
    await page.locator('input[name=query]').fill('something warm for winter camping');
    assert.ok(await page.locator('input[name=mode][value=semantic]').isChecked(), 'semantic by default');
    await page.getByRole('button', { name: 'Search' }).click();
    const results = page.locator('[data-test=results]');
    await results.waitFor();
    assert.match((await results.textContent()) ?? '', /Aurora down jacket/);
    const first = page.locator('li.result').first();
    assert.match((await first.locator('.relevance').textContent()) ?? '', /[01]\.\d{3}/, 'relevance shown');
    assert.match(
      (await first.locator('dl.metadata').textContent()) ?? '',
      /source_tableorders_db\.orders/,
      'metadata shown',
    );

    await page.locator('input[name=mode][value=keyword]').check();
    await page.locator('input[name=query]').fill('down jacket');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.locator('li.result .content', { hasText: 'goose-down' }).first().waitFor();
    assert.match((await page.locator('li.result .content').first().textContent()) ?? '', /down jacket/i);

    // Databases and their tables.
    await page.getByRole('link', { name: 'Databases' }).click();
    await page.locator('tr[data-db="orders_db"] a').click();
    const table = page.locator('tr[data-table="orders"]');
    await table.waitFor();
    assert.deepEqual(await table.locator('ul.columns li .mono').allTextContents(), [
      'id',
      'product',
      'description',
      'created_at',
    ]);
    assert.match((await table.textContent()) ?? '', /orders_db\.orders/);

    // A run that fails: a column the job reads is dropped at the source. The run shows its error
    // and what to do; the job is failed, and Resume replaces Pause.
    const source = new Database(path.join(dataDir, 'demo', 'orders.db'));
    source.exec('ALTER TABLE orders DROP COLUMN description');
    source.close();
    await page.getByRole('link', { name: 'Jobs', exact: true }).click();
    await page.locator('tr[data-job="sync_orders"] a', { hasText: 'sync_orders' }).click();
    await page.getByRole('button', { name: 'Run now' }).click();
    const note = page.locator('tr.note').first();
    await note.waitFor({ timeout: 120_000 });
    const noteText = (await note.textContent()) ?? '';
    assert.match(noteText, /COLUMN_MISSING.*description/);
    assert.match(noteText, /fix the cause, then press Resume/);
    await page.locator('h1 [data-status="failed"]').waitFor();
    await page.getByRole('button', { name: 'Resume' }).waitFor();
    assert.equal(await page.locator('tr[data-run]').count(), 2);

    assert.deepEqual(errors, [], 'no console error: no CSP violation, no failed module');
  });
});

describe('dashboard with authentication on', { skip: BROWSER_SKIP, timeout: 300_000 }, () => {
  const ADMIN_KEY = 'dashboard-test-admin-key-0123456789';
  let server: DemoServer;
  let browser: Browser | null = null;
  let apiKey = '';

  before(async () => {
    buildDashboard();
    const dataDir = tempDir('kbsync-dashboard-auth-');
    server = await startKbsync('serve', dataDir, {
      KBSYNC_ADMIN_KEY: ADMIN_KEY,
      KBSYNC_SQLITE_ROOTS: tmpdir(),
    });
    const account = await server.request('POST', '/accounts', { name: 'dashboard' }, ADMIN_KEY);
    assert.equal(account.status, 201, JSON.stringify(account.body));
    apiKey = account.body.data.api_key;
    const as = (method: string, url: string, body: unknown) => server.request(method, url, body, apiKey);
    const db = await as('POST', '/databases/create', {
      name: 'orders_db',
      engine: 'sqlite',
      parameters: { path: ensureDemoDatabase(dataDir) },
    });
    assert.equal(db.status, 201, JSON.stringify(db.body));
    assert.equal((await as('POST', '/knowledge_bases/create', { kb_name: 'orders_kb' })).status, 201);
    assert.equal((await as('POST', '/jobs/create', demoJob())).status, 201);
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('asks for a key, refuses a wrong one, shows the jobs with the right one and forgets it on sign-out', async () => {
    // The page and its files load without a key; the API does not answer without one.
    assert.equal((await fetch(`${server.baseUrl}/`)).status, 200);
    assert.equal((await fetch(`${server.baseUrl}/ui/app.js`)).status, 200);
    assert.equal((await server.request('GET', '/jobs')).status, 401);

    browser = await launchBrowser();
    const page = await browser.newPage();
    page.setDefaultTimeout(60_000);
    const errors = watchErrors(page);
    await page.goto(`${server.baseUrl}/`);
    const keyInput = page.locator('input[name=api_key]');
    await keyInput.waitFor();
    assert.equal(await page.locator('tr[data-job]').count(), 0);

    for (const wrong of ['kbs_not_a_real_key', ADMIN_KEY]) {
      await keyInput.fill(wrong);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.locator('.error-box', { hasText: 'The server refused this key' }).waitFor();
      assert.match((await page.locator('.error-box').textContent()) ?? '', /account's API key/);
    }
    assert.equal(
      await page.evaluate(() => sessionStorage.length + localStorage.length),
      0,
      'a refused key is not kept',
    );

    await keyInput.fill(apiKey);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('tr[data-job="sync_orders"]').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('kbsync.apiKey')), apiKey);
    assert.equal(
      await page.evaluate(() => localStorage.getItem('kbsync.apiKey')),
      null,
      'not remembered unless asked',
    );

    // A reload keeps the session; signing out forgets the key and asks again.
    await page.reload();
    await page.locator('tr[data-job="sync_orders"]').waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await keyInput.waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length + localStorage.length), 0);

    // Refused API calls log "401" in the console; nothing else may.
    assert.deepEqual(
      errors.filter((e) => !/status of 401/.test(e)),
      [],
    );
  });
});

describe('dashboard model (web/model.js)', () => {
  let model: any;
  before(async () => {
    model = await import(pathToFileURL(path.join(ROOT, 'web', 'model.js')).href);
  });

  it('shows percent, rows and ETA when the server estimates a total, else the rows read', () => {
    const withTotal = {
      rows_read: 0,
      progress: { rows_done: 126, rows_total_estimate: 300, percent: 42, eta_seconds: 3 },
    };
    assert.deepEqual(model.progressFrame(withTotal), { done: 126, total: 300, percent: 42, eta: 3 });
    assert.equal(model.progressText(model.progressFrame(withTotal)), '42% · 126 / 300 rows · ETA 3.0 s');
    // An estimate the run has passed: the total grows, the bar never goes past 100%.
    const past = model.progressFrame({
      progress: { rows_done: 350, rows_total_estimate: 300, percent: null, eta_seconds: null },
    });
    assert.deepEqual(past, { done: 350, total: 350, percent: 100, eta: null });
    assert.equal(
      model.progressText(model.progressFrame({ rows_read: 1234, progress: null })),
      '1,234 rows read',
    );
    assert.equal(
      model.progressText(model.progressFrame({ rows_read: 7 })),
      '7 rows read',
      'a server without `progress`',
    );
    assert.equal(
      model.progressText(
        model.progressFrame({
          rows_read: 0,
          progress: { rows_done: 40, rows_total_estimate: null, percent: null, eta_seconds: null },
        }),
      ),
      '40 rows read',
    );
  });

  it('says what to do after a run that did not succeed', () => {
    const failed = {
      run_id: 'run_1',
      status: 'failed',
      rows_failed: 0,
      error: { code: 'SOURCE_TIMEOUT', message: 'slow' },
    };
    const stopped = model.runHints(failed, { status: 'failed', last_run: { run_id: 'run_1' } });
    assert.ok(
      stopped.some((h: string) => /Resume/.test(h)),
      stopped.join(' '),
    );
    assert.ok(stopped.some((h: string) => /KBSYNC_SOURCE_STATEMENT_TIMEOUT_MS/.test(h)));
    const retried = model.runHints(failed, { status: 'scheduled', last_run: { run_id: 'run_1' } });
    assert.ok(
      retried.some((h: string) => /next tick retries/.test(h)),
      retried.join(' '),
    );
    assert.ok(model.runHints({ status: 'cancelled', rows_failed: 0 }, null)[0].includes('cancelled'));
    const rows = model.runHints({ status: 'succeeded', rows_failed: 3 }, { status: 'scheduled' });
    assert.deepEqual(rows.length, 1);
    assert.match(rows[0], /3 rows could not be synced.*Retry failed rows/);
    assert.deepEqual(model.runHints({ status: 'succeeded', rows_failed: 0 }, { status: 'scheduled' }), []);
  });

  it('writes numbers, durations and times as people read them', () => {
    assert.equal(model.count(1234567), '1,234,567');
    assert.equal(model.count(null), '–');
    assert.deepEqual([850, 4200, 65_000, 3_600_000, 7_800_000, 97_200_000].map(model.duration), [
      '850 ms',
      '4.2 s',
      '1 min 5 s',
      '1 h',
      '2 h 10 min',
      '1 d 3 h',
    ]);
    const now = Date.parse('2025-06-19T18:00:00Z');
    assert.equal(model.relative('2025-06-19T18:04:00Z', now), 'in 4 min');
    assert.equal(model.relative('2025-06-19T17:59:48Z', now), '12 s ago');
    assert.equal(model.relative(null, now), '–');
    assert.equal(model.utc('2025-06-19T18:00:00.123Z'), '2025-06-19 18:00:00 UTC');
    assert.equal(
      model.databaseWhere({ parameters: { host: 'db', port: 5432, database: 'shop', password: '****' } }),
      'db:5432/shop',
    );
    assert.equal(model.databaseWhere({ parameters: { path: '/data/orders.db' } }), '/data/orders.db');
  });
});
