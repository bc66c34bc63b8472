/**
 * Create/delete races (issue 8, point 1): a job created while its knowledge base or database is
 * deleted never ends up pointing at a deleted target (the existence checks and the "in use"
 * checks run inside the transactions that write), and concurrent creates of one knowledge-base
 * name leave exactly one collection.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, it } from 'node:test';
import Database from 'better-sqlite3';
import { createSourceConnector } from '../../src/sources/factory.js';
import type { SourceConnector } from '../../src/sources/port.js';
import { withTempSqliteDatabase, type TempDatabase } from '../helpers/databases.js';
import { countingHashingProviders, jobBody, startSyncApp, type SyncTestApp } from '../helpers/sync.js';

let t: SyncTestApp;
let src: TempDatabase;

before(async () => {
  src = await withTempSqliteDatabase();
  await src.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, updated_at TEXT)');
  // A provider that takes a moment to tell its dimensions, as a remote one does: concurrent
  // creates of one name then all pass the name check before any of them inserts.
  const counting = countingHashingProviders();
  t = await startSyncApp({
    // Introspection that takes a moment, as on a remote database: two PATCHes sent together both
    // read the job (and check their columns) before either writes.
    connectorFactory: (engine, params) => {
      const real = createSourceConnector(engine, params);
      const slow = Object.create(real) as SourceConnector;
      slow.describeTable = async (ref) => {
        await sleep(10);
        return real.describeTable(ref);
      };
      return slow;
    },
    providers: {
      ...counting,
      factory: (config) => {
        const inner = counting.factory(config);
        return {
          ...inner,
          dimensions: async () => {
            await sleep(20);
            return inner.dimensions();
          },
        };
      },
    },
  });
});
after(async () => {
  await t?.close();
  await src?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('a job create racing a delete of its knowledge base or database: never a job whose target is gone (40 rounds)', { timeout: 120_000 }, async () => {
  const outcomes: Record<string, number> = {};
  const count = (k: string) => {
    outcomes[k] = (outcomes[k] ?? 0) + 1;
  };
  for (let i = 0; i < 40; i++) {
    const kb = `race_kb_${i}`;
    const db = `race_db_${i}`;
    assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: kb })).status, 201);
    const reg = await t.request('POST', '/databases', { name: db, engine: 'sqlite', parameters: src.params });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));
    const target = i % 2 === 0 ? `/knowledge_bases/${kb}` : `/databases/${db}`;
    const [created, deleted] = await Promise.all([
      t.request('POST', '/jobs/create', jobBody({ job_name: `race_${i}`, kb_name: kb, source_table: `${db}.notes`, content_columns: ['body'], filter_column: 'updated_at' })),
      sleep((i % 5) * 8).then(() => t.request('DELETE', target)),
    ]);
    count(`create ${created.status} / delete ${deleted.status}`);
    const job = await t.request('GET', `/jobs/race_${i}`);
    const kbNow = await t.request('GET', `/knowledge_bases/${kb}`);
    const dbNow = await t.request('GET', `/databases/${db}`);
    if (job.status === 200) {
      assert.equal(kbNow.status, 200, `round ${i}: job race_${i} exists but its knowledge base is gone`);
      assert.equal(dbNow.status, 200, `round ${i}: job race_${i} exists but its database is gone`);
      assert.equal(deleted.status, 409, `round ${i}: the delete must have been refused`);
    } else {
      assert.equal(created.status === 201, false, `round ${i}: a created job disappeared`);
    }
  }
  // Both orders happened.
  const keys = Object.keys(outcomes).join(', ');
  assert.ok(Object.keys(outcomes).some((k) => k.startsWith('create 201')), keys);
  assert.ok(Object.keys(outcomes).some((k) => !k.startsWith('create 201')), keys);
});

it('30 concurrent creates of one knowledge-base name: one 201, 29 409, and one collection', { timeout: 60_000 }, async () => {
  const results = await Promise.all(Array.from({ length: 30 }, () => t.request('POST', '/knowledge_bases', { kb_name: 'same_name' })));
  const statuses = results.map((r) => r.status).sort();
  assert.equal(statuses.filter((s) => s === 201).length, 1);
  assert.equal(statuses.filter((s) => s === 409).length, 29);
  const store = new Database(path.join(t.dataDir, 'kbsync.db'), { readonly: true });
  try {
    const kbs = (store.prepare('SELECT count(*) AS n FROM knowledge_bases').get() as { n: number }).n;
    const collections = (store.prepare('SELECT count(*) AS n FROM kb_collections').get() as { n: number }).n;
    assert.equal(collections, kbs, 'one collection per knowledge base, no orphans');
  } finally {
    store.close();
  }
});

it('two PATCHes at once never combine into a configuration neither was checked for (20 rounds)', { timeout: 60_000 }, async () => {
  await src.exec('CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT, ts TIMESTAMP, code TEXT)');
  assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'events_kb' })).status, 201);
  if ((await t.request('GET', '/databases/events_db')).status !== 200) {
    assert.equal((await t.request('POST', '/databases', { name: 'events_db', engine: 'sqlite', parameters: src.params })).status, 201);
  }
  const created = await t.request('POST', '/jobs/create', jobBody({ job_name: 'events', kb_name: 'events_kb', source_table: 'events_db.events', content_columns: ['body'], filter_column: 'ts', lookback: 0 }));
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const statuses = new Set<string>();
  for (let i = 0; i < 20; i++) {
    assert.equal((await t.request('PATCH', '/jobs/events', { filter_column: 'ts', lookback: 0 })).status, 200);
    // A text filter column refuses a lookback; each PATCH alone is valid for the job it read.
    const patches = [
      () => t.request('PATCH', '/jobs/events', { filter_column: 'code' }),
      () => t.request('PATCH', '/jobs/events', { lookback: '5 MINUTES' }),
    ] as const;
    // Sent in the same turn of the event loop, in either order: both read the job before either writes.
    const [toText, withLookback] =
      i % 2 === 0
        ? await Promise.all([patches[0](), patches[1]()])
        : await Promise.all([patches[1](), patches[0]()]).then(([b, a]) => [a, b] as const);
    statuses.add(`${toText.status}/${withLookback.status}`);
    const job = (await t.request('GET', '/jobs/events')).body.data;
    assert.ok(!(job.filter_column === 'code' && job.lookback > 0), `round ${i}: a text filter column with a lookback of ${job.lookback} s`);
  }
  assert.ok([...statuses].some((s) => s.includes('409')), `the later PATCH was refused at least once: ${[...statuses].join(', ')}`);
});
