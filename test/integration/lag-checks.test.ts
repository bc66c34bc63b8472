/**
 * Freshness (issue 12) on the scheduler's cheap path: a due job whose check finds nothing new is
 * recorded in one write (src/jobs/scheduler.ts recordNothingNew), and that same write stores the
 * lag the check's probe measured — caught up, as of the check. On a real SQLite source with a
 * test clock.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ManualClock } from '../../src/core/clock.js';
import { jobBody, startSyncApp, type SyncTestApp } from '../helpers/sync.js';

const MIN = 60_000;
const T = Date.UTC(2031, 0, 6, 12, 0, 0);
const at = (minutes: number) => T + minutes * MIN;
const iso = (ms: number) => new Date(ms).toISOString();

let t: SyncTestApp | undefined;
after(async () => t?.close());

async function settle(app: SyncTestApp): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await app.app.services.scheduler.whenIdle();
    for (let j = 0; j < 3; j++) await new Promise<void>((r) => setImmediate(r));
  }
}

describe('lag on scheduled checks', () => {
  it('a check that finds nothing new stores lag 0 measured at the check, in its one write', async () => {
    const clock = new ManualClock(at(-1));
    t = await startSyncApp({ clock });
    const file = path.join(t.dataDir, 'sources', 'quiet.db');
    const src = new Database(file);
    src.exec('CREATE TABLE a (id INTEGER PRIMARY KEY, body TEXT, updated_at TIMESTAMP)');
    src.prepare('INSERT INTO a VALUES (1, ?, ?)').run('one', '2025-01-01 00:00:01');
    src.close();
    assert.equal((await t.request('POST', '/databases', { name: 'shop', engine: 'sqlite', parameters: { path: file } })).status, 201);
    assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'kb' })).status, 201);
    const created = await t.request(
      'POST',
      '/jobs/create',
      jobBody({
        job_name: 'quiet',
        source_table: 'shop.a',
        content_columns: ['body'],
        filter_column: 'updated_at',
        lookback: 0,
        interval: '1 MINUTE',
        start_time: iso(at(0)),
        end_time: iso(at(60)),
      }),
    );
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await t.app.services.scheduler.start();
    clock.set(at(0));
    await settle(t);
    clock.set(at(1));
    await settle(t);
    const runs = (await t.request('GET', '/jobs/quiet/runs')).body.data.runs;
    assert.equal(runs.length, 2, JSON.stringify(runs));
    assert.equal(runs[0].rows_read, 0, 'the second tick found nothing new (the check path)');
    // GET /jobs lists the stored measurement (GET /jobs/{job} would measure afresh).
    const job = (await t.request('GET', '/jobs')).body.data.jobs[0];
    assert.equal(job.lag_seconds, 0);
    assert.equal(job.lag_behind, false);
    assert.equal(job.lag_measured_at, iso(at(1)), 'measured by the check, not left from the first run');
  });
});
