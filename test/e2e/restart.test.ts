/** Jobs, databases and knowledge bases survive a restart of the server on the same data dir. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { isoIn, makeSqliteSource, startTestApp, tempDir } from '../helpers/app.js';

it('state survives a restart; secrets stay encrypted and usable', async () => {
  const dataDir = tempDir();
  const first = await startTestApp({ dataDir });
  const source = makeSqliteSource(dataDir);
  assert.equal((await first.request('POST', '/databases', { name: 'src', engine: 'sqlite', parameters: { path: source } })).status, 201);
  assert.equal((await first.request('POST', '/knowledge_bases', { kb_name: 'kb', description: 'kept' })).status, 201);
  const created = await first.request('POST', '/jobs/create', {
    job_name: 'kept_job',
    source_table: 'src.orders',
    kb_name: 'kb',
    content_columns: ['product'],
    filter_column: 'created_at',
    interval: 'DAILY',
    start_time: isoIn(60),
    end_time: isoIn(60 * 24 * 3),
  });
  assert.equal(created.status, 201);
  await first.request('POST', '/jobs/kept_job/pause');
  await first.close();

  const second = await startTestApp({ dataDir });
  try {
    const job = await second.request('GET', '/jobs/kept_job');
    assert.equal(job.status, 200);
    assert.equal(job.body.data.job_id, created.body.data.job_id);
    assert.equal(job.body.data.status, 'paused');
    const kb = await second.request('GET', '/knowledge_bases/kb');
    assert.equal(kb.body.data.description, 'kept');
    const tables = await second.request('GET', '/databases/src/tables');
    assert.equal(tables.status, 200);
    assert.ok(tables.body.data.tables.some((t: { name: string }) => t.name === 'orders'));
    // The name is still taken after the restart.
    const dup = await second.request('POST', '/knowledge_bases', { kb_name: 'kb' });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.code, 'DUPLICATE_KB');
  } finally {
    await second.close();
  }
});
