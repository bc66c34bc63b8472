/**
 * One scheduling process per store: a second process on the same data dir serves the API but
 * does not schedule; it takes over when the first stops, and at once from a dead process.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { it } from 'node:test';
import Database from 'better-sqlite3';
import { holderIsDeadHere, ProcessLease } from '../../src/jobs/lease.js';
import { startTestApp, tempDir } from '../helpers/app.js';
import { countingHashingProviders, jobBody } from '../helpers/sync.js';

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '');

async function until(what: string, ms: number, fn: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

it('two processes on one data dir: one schedules, the other takes over when it stops', async () => {
  const dataDir = tempDir();
  const providers = countingHashingProviders();
  const open = () => startTestApp({ dataDir, providerFactory: providers.factory, leaseTtlMs: 300 });
  const a = await open();
  const b = await open();
  try {
    const file = path.join(dataDir, 'sources', 's.db');
    const db = new Database(file);
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT, ts TEXT); INSERT INTO t VALUES (1, 'x', '2025-01-01')");
    db.close();
    await a.request('POST', '/databases', { name: 's', engine: 'sqlite', parameters: { path: file } });
    await a.request('POST', '/knowledge_bases', { kb_name: 'k' });
    await a.app.services.scheduler.start();
    await b.app.services.scheduler.start();
    // b waits; a stops: b takes the lease and runs the job that is due.
    await a.app.services.scheduler.stop();
    const start = Date.now() + 1500;
    const created = await b.request('POST', '/jobs/create', jobBody({ job_name: 'j', kb_name: 'k', source_table: 's.t', content_columns: ['body'], filter_column: 'ts', start_time: iso(start), end_time: iso(start + 3600_000) }));
    assert.equal(created.status, 201);
    await until('b to run the job', 10_000, async () => {
      const runs = (await b.request('GET', '/jobs/j/runs')).body.data.runs;
      return runs.length === 1 && runs[0].status === 'succeeded';
    });
    assert.equal((await b.request('GET', '/jobs/j/runs')).body.data.runs[0].trigger, 'schedule');
  } finally {
    await a.close();
    await b.close();
  }
});

it('while one holds the lease, the other does not schedule', async () => {
  const dataDir = tempDir();
  const a = await startTestApp({ dataDir, leaseTtlMs: 300 });
  const b = await startTestApp({ dataDir, leaseTtlMs: 300 });
  try {
    const la = new ProcessLease(a.app.services.store, 'probe', 300);
    const lb = new ProcessLease(b.app.services.store, 'probe', 300);
    assert.equal((await la.tryAcquire()).acquired, true);
    const refused = await lb.tryAcquire();
    assert.equal(refused.acquired, false);
    assert.equal(refused.holder, la.owner);
    la.keep(() => assert.fail('a renews its own lease'));
    await new Promise((r) => setTimeout(r, 700));
    assert.equal((await lb.tryAcquire()).acquired, false, 'renewed, so still held after two TTLs');
    await la.release();
    assert.equal((await lb.tryAcquire()).acquired, true);
    await lb.release();
  } finally {
    await a.close();
    await b.close();
  }
});

it('a lease held by a dead process of this host is taken over at once', async () => {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const deadPid = Number(child.stdout);
  const t = await startTestApp({ leaseTtlMs: 60_000 });
  try {
    const { store } = t.app.services;
    const os = await import('node:os');
    const dead = `${os.hostname()}:${deadPid}:feedbeef`;
    assert.equal(holderIsDeadHere(dead), true);
    assert.equal(holderIsDeadHere(`${os.hostname()}:${process.pid}:x`), false, 'this process is alive');
    assert.equal(holderIsDeadHere(`other-host:${deadPid}:x`), false, 'another host is not ours to judge');
    assert.equal((await store.acquireLease('scheduler', dead, 60_000, Date.now())).acquired, true);
    const lease = new ProcessLease(store, 'scheduler', 60_000);
    assert.equal((await lease.tryAcquire()).acquired, true, 'no need to wait out the minute');
    await lease.release();
  } finally {
    await t.close();
  }
});
