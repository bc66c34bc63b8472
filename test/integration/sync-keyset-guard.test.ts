/**
 * The keyset guard: a source whose "next batch after P" hands back P again (a key type read
 * inexactly, as MariaDB binary keys once were through CAST(… AS CHAR)) would make a run loop
 * forever. The run must fail at once with a clear error instead. The source here is a real
 * SQLite file behind a connector that ignores where to start, which is exactly that bug.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { createSourceConnector } from '../../src/sources/factory.js';
import type { SourceConnector } from '../../src/sources/port.js';
import { withTempSqliteDatabase, type TempDatabase } from '../helpers/databases.js';
import { startSyncApp, type SyncTestApp } from '../helpers/sync.js';
import { createJob, createKb, getJob, insertRows, sqliteKit } from '../helpers/sync-sources.js';

let t: SyncTestApp;
let db: TempDatabase;
let reads = 0;

before(async () => {
  db = await withTempSqliteDatabase();
  t = await startSyncApp({
    connectorFactory: (engine, params) => {
      const real = createSourceConnector(engine, params);
      const stuck: SourceConnector = Object.create(real);
      stuck.readBatch = (req) => {
        reads++;
        return real.readBatch({ ...req, from: null });
      };
      return stuck;
    },
  });
  const res = await t.request('POST', '/databases', { name: 'src', engine: 'sqlite', parameters: db.params });
  assert.equal(res.status, 201, JSON.stringify(res.body));
});
after(async () => {
  await t?.close();
  await db?.close();
});

it('a batch that does not move past the position it started after fails the run with KEYSET_STUCK instead of looping', { timeout: 20_000 }, async () => {
  await db.exec('CREATE TABLE rows (id INTEGER PRIMARY KEY, body TEXT, updated_at TEXT)');
  await insertRows(sqliteKit, db, 'rows', ['id', 'body', 'updated_at'], Array.from({ length: 12 }, (_, k) => [k + 1, `row ${k + 1}`, `2025-01-01 00:00:${String(k).padStart(2, '0')}`]));
  await createKb(t, 'rows_kb');
  await createJob(t, { job_name: 'rows', kb_name: 'rows_kb', source_table: 'src.rows', content_columns: ['body'], filter_column: 'updated_at', batch_size: 5, lookback: 0 });
  const run = await t.runNow('rows');
  assert.equal(run.status, 'failed');
  assert.equal(run.error.code, 'KEYSET_STUCK');
  assert.match(run.error.message, /returned that position again/);
  assert.equal(reads, 2, 'the second batch is refused, not repeated');
  // The first batch was written and its watermark kept: nothing lost, nothing duplicated.
  assert.equal(run.rows_read, 5);
  const job = await getJob(t, 'rows');
  assert.deepEqual(job.watermark.key, ['5']);
  assert.equal(job.status, 'failed', 'a job that cannot move forward waits for a fix');
  assert.match(job.status_reason, /cannot move forward/);
});
