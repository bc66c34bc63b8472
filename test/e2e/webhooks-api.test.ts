/**
 * Issue 12, "Freshness": job webhooks over HTTP, against a real receiver on 127.0.0.1 that checks
 * the signature itself (test/helpers/webhook-receiver.ts).
 *
 * - The acceptance test: the source table is dropped → the run fails, the job becomes failed, and
 *   the receiver gets `run.failed` and `job.failed`, signed with the secret shown once at create.
 * - Retries: a receiver that answers 500 twice gets the same delivery a third time (delivered,
 *   3 attempts); one that always answers 500 ends `failed` after the attempts.
 * - `job.lagging` once lag passes `alert_lag_seconds`.
 * - Bad input: 400 INVALID_REQUEST with readable details, on create and PATCH; a host the server
 *   must not POST to is refused by the rules of embedding.base_url.
 * Every answer is also checked against /openapi.json by the test app.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { makeSqliteSource, startTestApp, type TestApp } from '../helpers/app.js';
import { countingHashingProviders, jobBody } from '../helpers/sync.js';
import { startWebhookReceiver, validSignature, type WebhookReceiver } from '../helpers/webhook-receiver.js';

let t: TestApp;
let hooks: WebhookReceiver;
const MAX_ATTEMPTS = 4;

before(async () => {
  hooks = await startWebhookReceiver();
  t = await startTestApp({
    providerFactory: countingHashingProviders().factory,
    sync: { retryBaseMs: 5, readAttempts: 2 },
    webhooks: { pollMs: 50, backoffMs: 20, timeoutMs: 5_000, maxAttempts: MAX_ATTEMPTS },
  });
});
after(async () => {
  await t.close();
  await hooks.close();
});

/** A source of its own (so its table can be dropped), a knowledge base, and a job on them. */
async function jobOn(name: string, extra: Record<string, unknown>): Promise<{ file: string; created: any }> {
  const file = makeSqliteSource(t.dataDir, 3);
  assert.equal((await t.request('POST', '/databases', { name: `db_${name}`, engine: 'sqlite', parameters: { path: file } })).status, 201);
  assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: `kb_${name}` })).status, 201);
  const created = await t.request(
    'POST',
    '/jobs',
    jobBody({
      job_name: name,
      kb_name: `kb_${name}`,
      source_table: `db_${name}.orders`,
      content_columns: ['product', 'description'],
      filter_column: 'created_at',
      ...extra,
    }),
  );
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return { file, created: created.body.data };
}

async function runNow(job: string): Promise<any> {
  const started = await t.request('POST', `/jobs/${job}/run`);
  assert.equal(started.status, 202, JSON.stringify(started.body));
  await t.app.services.scheduler.whenIdle();
  return (await t.request('GET', `/jobs/${job}/runs/${started.body.data.run_id}`)).body.data;
}

function dropOrders(file: string): void {
  const db = new Database(file);
  db.exec('DROP TABLE orders');
  db.close();
}

/** GET /jobs/{job}/webhooks until `done` holds for its deliveries. */
async function deliveries(job: string, done: (d: any[]) => boolean): Promise<any[]> {
  const until = Date.now() + 30_000;
  for (;;) {
    const res = await t.request('GET', `/jobs/${job}/webhooks`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    if (done(res.body.data.webhooks)) return res.body.data.webhooks;
    assert.ok(Date.now() < until, `deliveries of ${job}: ${JSON.stringify(res.body.data.webhooks)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('webhooks', () => {
  it('the source table dropped: run.failed and job.failed reach the receiver, signed with the secret shown once', async () => {
    const { file, created } = await jobOn('drop', { webhook_url: hooks.url('/drop') });
    const secret: string = created.webhook_secret;
    assert.match(secret, /^whsec_[A-Za-z0-9_-]{43}$/);
    assert.equal(created.webhook_url, hooks.url('/drop'));
    // Never shown again.
    const shown = await t.request('GET', '/jobs/drop');
    assert.equal('webhook_secret' in shown.body.data, false);
    assert.equal(JSON.stringify((await t.request('GET', '/jobs')).body).includes(secret), false);
    assert.equal(JSON.stringify((await t.request('PATCH', '/jobs/drop', { alert_lag_seconds: 3600 })).body).includes(secret), false);

    assert.equal((await runNow('drop')).status, 'succeeded');
    dropOrders(file);
    const failed = await runNow('drop');
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error.code, 'TABLE_MISSING');
    assert.equal((await t.request('GET', '/jobs/drop')).body.data.status, 'failed');

    const mine = () => hooks.received.filter((h) => h.path === '/drop');
    await hooks.waitFor(() => mine().length >= 2);
    const events = mine().map((h) => JSON.parse(h.raw));
    assert.deepEqual(events.map((e) => e.event).sort(), ['job.failed', 'run.failed']);
    for (const h of mine()) {
      assert.ok(validSignature(secret, h.raw, h.headers['x-kbsync-signature']), `signed: ${h.headers['x-kbsync-signature']}`);
      assert.equal(validSignature(`${secret}x`, h.raw, h.headers['x-kbsync-signature']), false, 'the check itself tells keys apart');
      assert.equal(h.headers['content-type'], 'application/json');
    }
    const jobFailed = events.find((e) => e.event === 'job.failed');
    assert.equal(jobFailed.job.job_name, 'drop');
    assert.equal(jobFailed.job.status, 'failed');
    assert.match(jobFailed.job.status_reason, /no longer exists/);
    assert.equal(jobFailed.run.error.code, 'TABLE_MISSING');

    const listed = await deliveries('drop', (d) => d.length === 2 && d.every((x) => x.status === 'delivered'));
    for (const d of listed) {
      assert.equal(d.attempts, 1);
      assert.equal(d.last_error, null);
      assert.ok(d.delivered_at);
    }
  });

  it('a receiver that answers 500 twice gets the delivery again: delivered on the third attempt', async () => {
    hooks.failFirst('/flaky', 2, 500);
    const { file } = await jobOn('flaky', { webhook_url: hooks.url('/flaky') });
    dropOrders(file);
    assert.equal((await runNow('flaky')).status, 'failed');
    const listed = await deliveries('flaky', (d) => d.length === 2 && d.every((x) => x.status === 'delivered'));
    for (const d of listed) assert.equal(d.attempts, 3, JSON.stringify(d));
    const got = hooks.received.filter((h) => h.path === '/flaky');
    assert.equal(got.length, 6, 'each of the two deliveries: 500, 500, then 204');
    assert.equal(got.filter((h) => h.answered === 500).length, 4);
    // A retry is the same delivery, byte for byte.
    const byDelivery = new Map<string, Set<string>>();
    for (const h of got) {
      const id = String(h.headers['x-kbsync-delivery']);
      byDelivery.set(id, (byDelivery.get(id) ?? new Set()).add(h.raw));
    }
    assert.equal(byDelivery.size, 2);
    for (const bodies of byDelivery.values()) assert.equal(bodies.size, 1);
  });

  it('a receiver that always fails: the delivery ends failed after the attempts, with the last error', async () => {
    hooks.failFirst('/down', 1_000, 503);
    const { file } = await jobOn('down', { webhook_url: hooks.url('/down') });
    dropOrders(file);
    assert.equal((await runNow('down')).status, 'failed');
    const listed = await deliveries('down', (d) => d.length === 2 && d.every((x) => x.status === 'failed'));
    for (const d of listed) {
      assert.equal(d.attempts, MAX_ATTEMPTS);
      assert.equal(d.last_error, 'HTTP 503');
      assert.equal(d.delivered_at, null);
      assert.equal(d.next_attempt_at, null);
    }
    assert.equal(hooks.received.filter((h) => h.path === '/down').length, 2 * MAX_ATTEMPTS);
  });

  it('job.lagging when lag passes alert_lag_seconds', async () => {
    // Rows dated 2025, and a budget that stops the first run after one of them: far behind.
    await jobOn('lagging', { webhook_url: hooks.url('/lag'), alert_lag_seconds: 600, max_tokens_per_run: 1 });
    const run = await runNow('lagging');
    assert.equal(run.budget_reached, true, JSON.stringify(run));
    await hooks.waitFor((r) => r.some((h) => h.path === '/lag'));
    const got = hooks.received.filter((h) => h.path === '/lag').map((h) => JSON.parse(h.raw));
    assert.deepEqual(got.map((e) => e.event), ['job.lagging']);
    assert.ok(got[0].lag_seconds > 600);
    assert.equal(got[0].alert_lag_seconds, 600);
    // Still behind after the next run: no second alert for the same episode.
    assert.equal((await runNow('lagging')).budget_reached, true);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(hooks.received.filter((h) => h.path === '/lag').length, 1);
  });

  it('bad webhook_url and alert_lag_seconds: 400 INVALID_REQUEST on create and PATCH', async () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ webhook_url: 'ftp://example.com/x' }, /^webhook_url must be an http:\/\/ or https:\/\/ URL$/],
      [{ webhook_url: 'not a url' }, /^webhook_url must be an http:\/\/ or https:\/\/ URL$/],
      [{ webhook_url: 42 }, /^webhook_url must be a string, got number$/],
      [{ alert_lag_seconds: 0 }, /^alert_lag_seconds must be at least 1$/],
      [{ alert_lag_seconds: 1.5 }, /^alert_lag_seconds must be an int, got number$/],
      [{ alert_lag_seconds: '60' }, /^alert_lag_seconds must be a number, got string$/],
    ];
    assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'kb_bad' })).status, 201);
    for (const [fields, detail] of bad) {
      const res = await t.request(
        'POST',
        '/jobs',
        jobBody({ job_name: 'badhook', kb_name: 'kb_bad', source_table: 'db_lagging.orders', content_columns: ['product'], filter_column: 'created_at', ...fields }),
      );
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'INVALID_REQUEST', JSON.stringify(res.body));
      assert.ok(res.body.error.details.some((d: string) => detail.test(d)), `${detail} in ${JSON.stringify(res.body.error.details)}`);
      const patched = await t.request('PATCH', '/jobs/flaky', fields);
      assert.equal(patched.status, 400, JSON.stringify(patched.body));
      assert.ok(patched.body.error.details.some((d: string) => detail.test(d)), `PATCH: ${detail} in ${JSON.stringify(patched.body.error.details)}`);
    }
    assert.equal((await t.request('GET', '/jobs/badhook')).status, 404, 'nothing created');
    const ok = await t.request('PATCH', '/jobs/flaky', { webhook_url: null, alert_lag_seconds: null });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.data.webhook_url, null);
    assert.equal((await t.request('GET', '/jobs/nope/webhooks')).status, 404);
    assert.equal((await t.request('GET', '/jobs/flaky/webhooks?limit=0')).status, 400);
  });
});

describe('a job stored before webhooks existed (no secret)', () => {
  it('gets a secret when PATCH sets its webhook_url, shown in that answer only, and its events are signed with it', async () => {
    const { file, created } = await jobOn('legacy', {});
    assert.equal(created.webhook_url, null);
    await t.app.services.store.mutateJob(created.job_id, (j) => ({ ...j, webhookSecret: null }), undefined);
    const patched = await t.request('PATCH', '/jobs/legacy', { webhook_url: hooks.url('/legacy') });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    const secret: string = patched.body.data.webhook_secret;
    assert.match(secret, /^whsec_/);
    const again = await t.request('PATCH', '/jobs/legacy', { webhook_url: hooks.url('/legacy') });
    assert.equal('webhook_secret' in again.body.data, false, 'only when it was made');
    dropOrders(file);
    assert.equal((await runNow('legacy')).status, 'failed');
    await hooks.waitFor((r) => r.filter((h) => h.path === '/legacy').length >= 2);
    for (const h of hooks.received.filter((x) => x.path === '/legacy')) assert.ok(validSignature(secret, h.raw, h.headers['x-kbsync-signature']));
  });
});

describe('webhook hosts', () => {
  it("with the host rules of an exposed server, an address on the server's own network is refused", async () => {
    const guarded = await startTestApp({ config: { embeddingHosts: { kind: 'public' } }, providerFactory: countingHashingProviders().factory });
    try {
      const file = makeSqliteSource(guarded.dataDir, 1);
      assert.equal((await guarded.request('POST', '/databases', { name: 'src', engine: 'sqlite', parameters: { path: file } })).status, 201);
      assert.equal((await guarded.request('POST', '/knowledge_bases', { kb_name: 'kb' })).status, 201);
      const body = jobBody({ job_name: 'j', source_table: 'src.orders', content_columns: ['product'], filter_column: 'created_at' });
      for (const url of ['http://127.0.0.1:9/x', 'http://169.254.169.254/latest/meta-data', 'http://localhost/x', 'http://[::1]/x']) {
        const res = await guarded.request('POST', '/jobs', { ...body, webhook_url: url });
        assert.equal(res.status, 400, url);
        assert.match(res.body.error.details.join('\n'), /^webhook_url host '.*' is an address on the server's own network/m, url);
      }
      assert.equal((await guarded.request('POST', '/jobs', { ...body, webhook_url: 'https://hooks.example.com/kbsync' })).status, 201);
    } finally {
      await guarded.close();
    }
  });
});
