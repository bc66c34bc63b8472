/**
 * The estimate's source queries are bounded and cancellable like a run's (issue 12, "Cost"): a
 * table locked in another session makes POST /jobs/{job}/estimate answer 503 CONNECTION_FAILED at
 * the configured lock timeout; a client that closes its connection while the estimate waits on
 * the lock cancels the query in flight (it stops waiting at once, while the lock is still held).
 * On PostgreSQL (LOCK TABLE … ACCESS EXCLUSIVE), over a real socket for the disconnect.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { TempDatabase } from '../helpers/databases.js';
import type { SyncTestApp } from '../helpers/sync.js';
import {
  createJob,
  createKb,
  insertRows,
  postgresKit,
  skipUnlessSource,
  startSourceApp,
} from '../helpers/sync-sources.js';

const kit = postgresKit;
const skip = await skipUnlessSource(kit);

/** Sessions waiting for a lock on `table`. */
async function waiting(db: TempDatabase, table: string): Promise<number> {
  const rows = (await db.exec(
    `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
     WHERE NOT l.granted AND c.relname = $1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [table],
  )) as Array<{ n: number }>;
  return Number(rows[0]?.n ?? 0);
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function setUp(lockTimeoutMs: number): Promise<{ t: SyncTestApp; db: TempDatabase }> {
  const { t, db } = await startSourceApp(kit, {
    config: { sourceLockTimeoutMs: lockTimeoutMs, sourceStatementTimeoutMs: 120_000 },
  });
  await db.exec(`CREATE TABLE notes (id integer PRIMARY KEY, body text, updated_at timestamp(6))`);
  await insertRows(
    kit,
    db,
    'notes',
    ['id', 'body', 'updated_at'],
    Array.from({ length: 30 }, (_, i) => [
      i + 1,
      `note ${i + 1}`,
      `2025-01-01 00:00:${String(i).padStart(2, '0')}`,
    ]),
  );
  await createKb(t, 'kb');
  await createJob(t, {
    job_name: 'notes',
    kb_name: 'kb',
    source_table: 'src.notes',
    content_columns: ['body'],
    filter_column: 'updated_at',
  });
  return { t, db };
}

describe('estimate: bounded and cancellable source queries (PostgreSQL)', { skip, timeout: 120_000 }, () => {
  const open: Array<{ t: SyncTestApp; db: TempDatabase }> = [];
  after(async () => {
    for (const { t, db } of open) {
      await t.close().catch(() => undefined);
      await db.close();
    }
  });

  it('a locked table: 503 CONNECTION_FAILED at the lock timeout, naming it; the same estimate answers once the lock is gone', async () => {
    const env = await setUp(1_000);
    open.push(env);
    const { t, db } = env;
    const session = await kit.connect(db.url);
    try {
      await session.query('BEGIN');
      await session.query('LOCK TABLE notes IN ACCESS EXCLUSIVE MODE');
      const started = Date.now();
      const res = await t.request('POST', '/jobs/notes/estimate');
      const elapsed = Date.now() - started;
      assert.equal(res.status, 503, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'CONNECTION_FAILED');
      assert.match(res.body.error.details[0], /reading 'src\.notes'/);
      assert.match(res.body.error.details[0], /lock timeout \(1000 ms\)/);
      // The configured 1 s, with a wide margin for a loaded machine; the lock is still held.
      assert.ok(elapsed < 15_000, `answered after ${elapsed} ms`);
    } finally {
      await session.query('ROLLBACK');
      await session.end();
    }
    const res = await t.request('POST', '/jobs/notes/estimate');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.data.documents, 30);
  });

  it('a client that goes away while the estimate waits on a lock cancels the query in flight', async () => {
    // A lock timeout far beyond the bound asserted: only the cancel can end the wait in time.
    const env = await setUp(60_000);
    open.push(env);
    const { t, db } = env;
    const address = await t.app.server.listen({ host: '127.0.0.1', port: 0 });
    const session = await kit.connect(db.url);
    try {
      await session.query('BEGIN');
      await session.query('LOCK TABLE notes IN ACCESS EXCLUSIVE MODE');
      const client = new AbortController();
      const answer = fetch(`${address}/jobs/notes/estimate`, { method: 'POST', signal: client.signal }).catch(
        (e: unknown) => e,
      );
      await waitFor('the estimate to wait for the lock', async () => (await waiting(db, 'notes')) > 0);
      const gone = Date.now();
      client.abort();
      assert.ok((await answer) instanceof Error, 'the client gave up');
      await waitFor(
        'the waiting query to be cancelled',
        async () => (await waiting(db, 'notes')) === 0,
        15_000,
      );
      assert.ok(Date.now() - gone < 15_000);
    } finally {
      await session.query('ROLLBACK');
      await session.end();
    }
  });
});
