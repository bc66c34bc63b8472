/**
 * Failed rows (API.md, "Failed rows"), on PostgreSQL, MariaDB and SQLite sources, through the
 * real OpenAI-compatible adapter and the in-test fake server: a row whose input the provider
 * refuses is listed with its key and reason while every other row is synced and the run
 * succeeds; after the provider is fixed, a later sync of the row or POST …/failures/retry clears it.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { createEmbeddingProvider } from '../../src/embeddings/factory.js';
import type { TempDatabase } from '../helpers/databases.js';
import { type FakeOpenAIServer, type FakeReply, type RecordedRequest, startFakeOpenAIServer } from '../helpers/fake-openai.js';
import type { SyncTestApp } from '../helpers/sync.js';
import {
  assertSucceeded,
  createJob,
  getJob,
  insertRows,
  mysqlKit,
  postgresKit,
  skipUnlessSource,
  sqliteKit,
  startSourceApp,
  stopRunningJobs,
} from '../helpers/sync-sources.js';

const API_KEY = 'sk-test-failed-rows';
/** Inputs containing one of these are refused with 400, as a moderation filter would. */
const refused = new Set<string>();
const refusal: FakeReply = { status: 400, body: { error: { message: 'Input refused by the moderation policy (test)', type: 'invalid_request_error' } } };
function script(req: RecordedRequest): FakeReply | undefined {
  const input = req.body?.input;
  const texts = Array.isArray(input) ? input : [input];
  return texts.some((text) => typeof text === 'string' && [...refused].some((r) => text.includes(r))) ? refusal : undefined;
}

let fake: FakeOpenAIServer;
before(async () => {
  fake = await startFakeOpenAIServer({ apiKey: API_KEY, script });
});
after(async () => {
  await fake?.close();
});

/** The app's real provider factory (no counting fake): requests go over HTTP to the fake server. */
const realProviders = {
  factory: createEmbeddingProvider,
  embedded: () => 0,
  failNext: () => undefined,
  hold: () => () => undefined,
};

for (const kit of [postgresKit, mysqlKit, sqliteKit]) {
  const skip = await skipUnlessSource(kit);
  describe(`failed rows on ${kit.label}`, { skip }, () => {
    let t: SyncTestApp;
    let db: TempDatabase;
    const q = kit.q;

    before(async () => {
      ({ t, db } = await startSourceApp(kit, { providers: realProviders }));
    });
    afterEach(async () => {
      refused.clear();
      if (t) await stopRunningJobs(t);
    });
    after(async () => {
      await t?.close();
      await db?.close();
    });

    it('a refused row is listed with its reason, every other row is synced; once fixed, a new sync and a retry clear them', { timeout: 60_000 }, async () => {
      await db.exec(`CREATE TABLE ${q('notes')} (id ${kit.t.int} PRIMARY KEY, body ${kit.t.text}, updated_at ${kit.t.ts6})`);
      await insertRows(kit, db, 'notes', ['id', 'body', 'updated_at'], Array.from({ length: 20 }, (_, k) => [k + 1, `note ${k + 1}${k + 1 === 7 || k + 1 === 13 ? ' FORBIDDEN' : ''}`, `2025-05-01 00:00:${String(k).padStart(2, '0')}`]));
      const kb = await t.request('POST', '/knowledge_bases', { kb_name: 'notes_kb', embedding: { provider: 'openai', base_url: fake.baseUrl, model: 'text-embedding-3-small', api_key: API_KEY } });
      assert.equal(kb.status, 201, JSON.stringify(kb.body));
      await createJob(t, { job_name: 'notes', kb_name: 'notes_kb', source_table: 'src.notes', content_columns: ['body'], filter_column: 'updated_at', batch_size: 8, lookback: 0 });

      refused.add('FORBIDDEN');
      const run = await t.runNow('notes');
      assertSucceeded(run);
      assert.equal(run.rows_failed, 2);
      assert.equal(run.documents_added, 18);
      const ids = new Set((await t.documents('notes_kb')).map((d) => d.id));
      assert.equal(ids.size, 18);
      assert.ok(!ids.has('7') && !ids.has('13'));
      assert.equal((await getJob(t, 'notes')).totals.rows_failed, 2);

      const failures = await t.request('GET', '/jobs/notes/failures');
      assert.equal(failures.status, 200, JSON.stringify(failures.body));
      const listed = failures.body.data.failures as Array<{ document_id: string; key: string[]; reason: string; attempts: number }>;
      assert.deepEqual(listed.map((f) => f.document_id), ['13', '7']);
      assert.deepEqual(listed.map((f) => f.key), [['13'], ['7']]);
      for (const f of listed) {
        assert.match(f.reason, /refused/);
        assert.match(f.reason, /moderation policy/);
        assert.ok(!f.reason.includes(API_KEY), 'no secret in the reason');
      }

      // A later run does not embed the failing rows again on its own (they wait for a retry).
      const quiet = await t.runNow('notes');
      assertSucceeded(quiet);
      assert.equal(quiet.rows_failed, 0);
      assert.equal((await t.request('GET', '/jobs/notes/failures')).body.data.failures.length, 2);

      // The provider is fixed. Row 13 changes and is synced by the next run, which clears it.
      refused.clear();
      await db.exec(`UPDATE ${q('notes')} SET updated_at = ${kit.p(1)} WHERE id = 13`, ['2025-05-02 00:00:00']);
      const next = await t.runNow('notes');
      assertSucceeded(next);
      assert.equal(next.documents_added, 1);
      const left = (await t.request('GET', '/jobs/notes/failures')).body.data.failures as Array<{ document_id: string }>;
      assert.deepEqual(left.map((f) => f.document_id), ['7']);

      // Row 7 did not change: a retry reads it again by key.
      const retry = await t.request('POST', '/jobs/notes/failures/retry');
      assert.equal(retry.status, 202, JSON.stringify(retry.body));
      await t.app.services.scheduler.whenIdle();
      const retried = (await t.request('GET', `/jobs/notes/runs/${retry.body.data.run_id}`)).body.data;
      assertSucceeded(retried);
      assert.equal(retried.documents_added, 1);
      assert.equal(retried.rows_failed, 0);
      assert.equal((await t.request('GET', '/jobs/notes/failures')).body.data.failures.length, 0);
      const docs = await t.documents('notes_kb');
      assert.equal(docs.length, 20);
      assert.equal(docs.find((d) => d.id === '7')?.content, 'body: note 7 FORBIDDEN');
      const none = await t.request('POST', '/jobs/notes/failures/retry');
      assert.equal(none.status, 409, 'nothing left to retry');
    });
  });
}
