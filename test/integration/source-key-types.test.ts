/**
 * Key and value types that break a keyset read unless the adapter handles them (issue 7, point 5),
 * against real sources: binary keys (MySQL BINARY/VARBINARY, PostgreSQL bytea, SQLite BLOB) whose
 * bytes are not UTF-8, an ENUM key (refused), a MySQL zero date as the watermark, and lookback on
 * an unsigned filter column. For each: every row arrives exactly once, no run loops (test
 * timeouts), and later runs succeed and add nothing.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { TempDatabase } from '../helpers/databases.js';
import type { SyncTestApp } from '../helpers/sync.js';
import {
  assertSucceeded,
  createJob,
  createKb,
  getJob,
  insertRows,
  mysqlKit,
  postgresKit,
  type SourceKit,
  skipUnlessSource,
  sqliteKit,
  startSourceApp,
  stopRunningJobs,
  uniqueIds,
} from '../helpers/sync-sources.js';

/** A run whose watermark does not move forward would loop forever: fail instead of hanging. */
const TIMEOUT_MS = 30_000;

/** 16 bytes from a hex prefix, zero-padded (BINARY(16) pads the same way). */
const bin16 = (hex: string): Buffer =>
  Buffer.concat([Buffer.from(hex, 'hex'), Buffer.alloc(16)]).subarray(0, 16);

/**
 * Six keys: non-UTF-8 bytes (0x80, 0xfe, 0xff, a broken sequence), two pairs that differ only in
 * a non-UTF-8 byte (all four read as `?` through a text cast), plain ASCII and all zeros.
 */
const BINARY_KEYS = [
  bin16('ff000000000000000000000000000001'),
  bin16('fe000000000000000000000000000001'),
  bin16('80c328'),
  bin16('81c328'),
  Buffer.from('0123456789abcdef', 'ascii'),
  bin16(''),
];

/** A sync app with the engine's fresh database registered as `src`, torn down after the suite. */
function useSource(kit: SourceKit): {
  t(): SyncTestApp;
  db(): TempDatabase;
  exec(sql: string, params?: unknown[]): Promise<unknown[]>;
} {
  let t: SyncTestApp;
  let db: TempDatabase;
  before(async () => {
    ({ t, db } = await startSourceApp(kit));
  });
  afterEach(async () => {
    if (t) await stopRunningJobs(t);
  });
  after(async () => {
    await t?.close();
    await db?.close();
  });
  return { t: () => t, db: () => db, exec: (sql, params) => db.exec(sql, params) };
}

/** The knowledge base holds exactly these documents (id -> content), one per id. */
async function assertDocuments(t: SyncTestApp, kb: string, expected: Map<string, string>): Promise<void> {
  const docs = await t.documents(kb);
  uniqueIds(docs);
  assert.deepEqual(
    new Map(docs.map((d) => [d.id, d.content])),
    expected,
    'one document per source row, with its content',
  );
}

/** Two more runs succeed and change nothing; the job is not left failing. */
async function assertQuiet(t: SyncTestApp, job: string): Promise<void> {
  for (let i = 0; i < 2; i++) {
    const run = await t.runNow(job);
    assertSucceeded(run);
    assert.equal(run.documents_added, 0, 'a re-run adds nothing');
    assert.equal(run.documents_updated, 0, 'a re-run updates nothing');
    assert.equal(run.documents_deleted, 0, 'a re-run deletes nothing');
  }
  assert.notEqual((await getJob(t, job)).status, 'failed');
}

/**
 * Binary keys on one engine: six rows with one filter value (so the order is the key's alone)
 * read in batches of 2, then a late row with the same filter value.
 */
async function binaryKeyCase(
  kit: SourceKit,
  s: ReturnType<typeof useSource>,
  o: { table: string; keyType: string; keys: Buffer[]; later: Buffer; id(key: Buffer): string },
): Promise<void> {
  const t = s.t();
  const q = kit.q;
  await s.exec(
    `CREATE TABLE ${q(o.table)} (k ${o.keyType} NOT NULL PRIMARY KEY, body ${kit.t.text}, ts ${kit.t.ts6})`,
  );
  const rows = o.keys.map((k, i) => [k, `row ${i + 1}`, '2025-01-01 00:00:00']);
  await insertRows(kit, s.db(), o.table, ['k', 'body', 'ts'], rows);
  await createKb(t, `${o.table}_kb`);
  await createJob(t, {
    job_name: o.table,
    kb_name: `${o.table}_kb`,
    source_table: `src.${o.table}`,
    content_columns: ['body'],
    filter_column: 'ts',
    batch_size: 2,
  });

  const first = await t.runNow(o.table);
  assertSucceeded(first);
  assert.equal(first.rows_read, o.keys.length);
  assert.equal(first.documents_added, o.keys.length);
  const expected = new Map(o.keys.map((k, i) => [o.id(k), `body: row ${i + 1}`]));
  assert.equal(expected.size, o.keys.length, 'the expected ids are distinct');
  await assertDocuments(t, `${o.table}_kb`, expected);
  const job = await getJob(t, o.table);
  assert.ok(
    expected.has(job.watermark.key[0]),
    `the watermark key ${JSON.stringify(job.watermark.key)} is a real key`,
  );

  // A later row is synced once (the next batch after the watermark finds it).
  await insertRows(
    kit,
    s.db(),
    o.table,
    ['k', 'body', 'ts'],
    [[o.later, 'later row', '2025-01-01 00:00:00']],
  );
  const next = await t.runNow(o.table);
  assertSucceeded(next);
  assert.equal(next.documents_added, 1);
  expected.set(o.id(o.later), 'body: later row');
  await assertDocuments(t, `${o.table}_kb`, expected);
  await assertQuiet(t, o.table);
  await assertDocuments(t, `${o.table}_kb`, expected);

  // Deletes are found by key (reconcile): the deleted key's document goes, its twin (a key that
  // differs only in a non-UTF-8 byte) stays.
  await s.exec(`DELETE FROM ${q(o.table)} WHERE k = ${kit.p(1)}`, [o.keys[0]]);
  const deleted = await t.runNow(o.table);
  assertSucceeded(deleted);
  assert.equal(deleted.documents_deleted, 1);
  expected.delete(o.id(o.keys[0]!));
  await assertDocuments(t, `${o.table}_kb`, expected);
  await assertQuiet(t, o.table);
}

const mysqlSkip = await skipUnlessSource(mysqlKit);

describe('key and value types on MySQL/MariaDB', { skip: mysqlSkip }, () => {
  const s = useSource(mysqlKit);
  const q = mysqlKit.q;
  const hex = (k: Buffer) => k.toString('hex');

  it('BINARY(16) keys with non-UTF-8 bytes: one document per row, ids in hex, a later row once', {
    timeout: TIMEOUT_MS,
  }, async () => {
    await binaryKeyCase(mysqlKit, s, {
      table: 'bin16',
      keyType: 'BINARY(16)',
      keys: BINARY_KEYS,
      later: bin16('fd'),
      id: hex,
    });
  });

  it('VARBINARY keys that are prefixes of each other or differ in a trailing byte', {
    timeout: TIMEOUT_MS,
  }, async () => {
    const keys = ['00', '0000', '61', '6100', '61ff', 'ff'].map((h) => Buffer.from(h, 'hex'));
    await binaryKeyCase(mysqlKit, s, {
      table: 'varbin',
      keyType: 'VARBINARY(20)',
      keys,
      later: Buffer.from('6101', 'hex'),
      id: hex,
    });
  });

  it('a binary key in a composite key, beside an integer', { timeout: TIMEOUT_MS }, async () => {
    const t = s.t();
    await s.exec(
      `CREATE TABLE ${q('bincomp')} (a INT NOT NULL, k VARBINARY(8) NOT NULL, body TEXT, ts DATETIME, PRIMARY KEY (a, k))`,
    );
    const rows = [1, 2].flatMap((a) =>
      ['ff', 'fe', '80'].map((h) => [a, Buffer.from(h, 'hex'), `${a}/${h}`, '2025-01-01 00:00:00']),
    );
    await insertRows(mysqlKit, s.db(), 'bincomp', ['a', 'k', 'body', 'ts'], rows);
    await createKb(t, 'bincomp_kb');
    await createJob(t, {
      job_name: 'bincomp',
      kb_name: 'bincomp_kb',
      source_table: 'src.bincomp',
      content_columns: ['body'],
      filter_column: 'ts',
      batch_size: 2,
    });
    assertSucceeded(await t.runNow('bincomp'));
    const expected = new Map(
      rows.map(([a, k, body]) => [JSON.stringify([String(a), hex(k as Buffer)]), `body: ${body}`]),
    );
    await assertDocuments(t, 'bincomp_kb', expected);
    await assertQuiet(t, 'bincomp');
  });

  describe('ENUM and SET keys are refused at creation, naming the column', () => {
    const refuse = async (table: string, column: string, ddl: string, which: RegExp) => {
      const t = s.t();
      await s.exec(ddl);
      await createKb(t, `${table}_kb`);
      const res = await t.request('POST', '/jobs/create', {
        job_name: table,
        kb_name: `${table}_kb`,
        source_table: `src.${table}`,
        content_columns: ['body'],
        filter_column: 'ts',
        interval: '10 MINUTES',
        start_time: '2099-01-01T00:00:00',
        end_time: '2099-01-02T00:00:00',
      });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'INVALID_TABLE', JSON.stringify(res.body));
      const detail = res.body.error.details.find((d: string) => d.includes(`'${column}'`));
      assert.ok(detail, `no detail names '${column}': ${JSON.stringify(res.body.error.details)}`);
      assert.match(detail, which);
      assert.match(detail, /member position/);
    };

    it('ENUM primary key', { timeout: TIMEOUT_MS }, async () => {
      await refuse(
        'enumkey',
        'k',
        `CREATE TABLE ${q('enumkey')} (k ENUM('z', 'a') PRIMARY KEY, body TEXT, ts DATETIME)`,
        /primary key column 'k'.*enum\('z','a'\)/,
      );
    });

    it('ENUM column of a composite primary key', { timeout: TIMEOUT_MS }, async () => {
      await refuse(
        'enumcomp',
        'e',
        `CREATE TABLE ${q('enumcomp')} (id INT NOT NULL, e ENUM('z', 'a') NOT NULL, body TEXT, ts DATETIME, PRIMARY KEY (id, e))`,
        /primary key column 'e'/,
      );
    });

    it('SET column of the unique key chosen when there is no primary key', {
      timeout: TIMEOUT_MS,
    }, async () => {
      await refuse(
        'setkey',
        's',
        `CREATE TABLE ${q('setkey')} (s SET('z', 'a') NOT NULL, body TEXT, ts DATETIME, UNIQUE KEY (s))`,
        /unique key column 's'/,
      );
    });

    it('an ENUM filter column is refused with the same reason', { timeout: TIMEOUT_MS }, async () => {
      const t = s.t();
      await s.exec(`CREATE TABLE ${q('enumfilter')} (id INT PRIMARY KEY, body TEXT, e ENUM('z', 'a'))`);
      await createKb(t, 'enumfilter_kb');
      const res = await t.request('POST', '/jobs/create', {
        job_name: 'enumfilter',
        kb_name: 'enumfilter_kb',
        source_table: 'src.enumfilter',
        content_columns: ['body'],
        filter_column: 'e',
        interval: '10 MINUTES',
        start_time: '2099-01-01T00:00:00',
        end_time: '2099-01-02T00:00:00',
      });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.ok(
        res.body.error.details.some((d: string) => /filter_column 'e'.*member position/.test(d)),
        JSON.stringify(res.body.error.details),
      );
    });
  });

  for (const type of ['DATETIME', 'DATETIME(6)', 'DATE']) {
    it(`zero dates in a NOT NULL ${type} filter column: synced, not skipped, and lookback from a zero watermark works`, {
      timeout: TIMEOUT_MS,
    }, async () => {
      const t = s.t();
      const table = `zero_${type.replace(/\W/g, '')}`;
      const zero = type === 'DATE' ? '0000-00-00' : '0000-00-00 00:00:00';
      const real = (i: number) => (type === 'DATE' ? `2025-01-0${i}` : `2025-01-01 00:00:0${i}`);
      // A server whose sql_mode forbids zero dates would refuse them; this session allows them.
      await s.exec("SET SESSION sql_mode = 'STRICT_TRANS_TABLES'");
      await s.exec(
        `CREATE TABLE ${q(table)} (id INT PRIMARY KEY, body TEXT, ts ${type} NOT NULL, tn ${type} NULL)`,
      );
      await insertRows(
        mysqlKit,
        s.db(),
        table,
        ['id', 'body', 'ts', 'tn'],
        [
          [1, 'zero 1', zero, zero],
          [2, 'zero 2', zero, null],
          [3, 'zero 3', zero, zero],
        ],
      );
      await createKb(t, `${table}_kb`);
      // The default lookback of a time column (300 s) applies.
      await createJob(t, {
        job_name: table,
        kb_name: `${table}_kb`,
        source_table: `src.${table}`,
        content_columns: ['body'],
        filter_column: 'ts',
        batch_size: 2,
      });

      const first = await t.runNow(table);
      assertSucceeded(first);
      assert.equal(first.rows_read, 3);
      assert.equal(first.rows_skipped, 0, 'zero dates are values, not NULLs');
      const expected = new Map([1, 2, 3].map((i) => [String(i), `body: zero ${i}`]));
      await assertDocuments(t, `${table}_kb`, expected);
      assert.match((await getJob(t, table)).watermark.filter_value, /^0000-00-00/);

      // The watermark is a zero date: the next run's lookback starts from it and succeeds.
      const second = await t.runNow(table);
      assertSucceeded(second);
      assert.equal(second.rows_skipped, 0);
      assert.equal(second.documents_added, 0);

      // New rows after it, one of them a zero date again (after the watermark in key order).
      await insertRows(
        mysqlKit,
        s.db(),
        table,
        ['id', 'body', 'ts', 'tn'],
        [
          [4, 'real 4', real(4), null],
          [5, 'real 5', real(5), real(5)],
          [6, 'zero 6', zero, zero],
        ],
      );
      const third = await t.runNow(table);
      assertSucceeded(third);
      assert.equal(third.documents_added, 3);
      assert.equal(third.rows_skipped, 0);
      expected.set('4', 'body: real 4').set('5', 'body: real 5').set('6', 'body: zero 6');
      await assertDocuments(t, `${table}_kb`, expected);
      await assertQuiet(t, table);

      // A nullable column of the same type: only its real NULLs are skipped, zero dates are read.
      await createKb(t, `${table}_n_kb`);
      await createJob(t, {
        job_name: `${table}_n`,
        kb_name: `${table}_n_kb`,
        source_table: `src.${table}`,
        content_columns: ['body'],
        filter_column: 'tn',
        batch_size: 2,
      });
      const nullable = await t.runNow(`${table}_n`);
      assertSucceeded(nullable);
      assert.equal(nullable.rows_skipped, 2, 'rows 2 and 4 have a NULL');
      assert.equal(nullable.rows_read, 4);
      assertSucceeded(await t.runNow(`${table}_n`));
    });
  }

  it('lookback on a BIGINT UNSIGNED filter below the lookback: runs succeed and a row moved inside the window is re-read', {
    timeout: TIMEOUT_MS,
  }, async () => {
    const t = s.t();
    await s.exec(
      `CREATE TABLE ${q('unsigned_seq')} (id INT PRIMARY KEY, body TEXT, seq BIGINT UNSIGNED NOT NULL)`,
    );
    await insertRows(
      mysqlKit,
      s.db(),
      'unsigned_seq',
      ['id', 'body', 'seq'],
      Array.from({ length: 12 }, (_, k) => [k + 1, `row ${k + 1}`, k + 1]),
    );
    await createKb(t, 'unsigned_kb');
    await createJob(t, {
      job_name: 'unsigned_seq',
      kb_name: 'unsigned_kb',
      source_table: 'src.unsigned_seq',
      content_columns: ['body'],
      filter_column: 'seq',
      lookback: 300,
      batch_size: 5,
    });

    const first = await t.runNow('unsigned_seq');
    assertSucceeded(first);
    assert.equal(first.documents_added, 12);
    const expected = new Map(Array.from({ length: 12 }, (_, k) => [String(k + 1), `body: row ${k + 1}`]));
    await assertDocuments(t, 'unsigned_kb', expected);

    // The window [12 - 300, 12] starts at 0, not at 2^64 - 288: it re-reads every row.
    const second = await t.runNow('unsigned_seq');
    assertSucceeded(second);
    assert.equal(second.rows_read, 12, 'the lookback re-read the whole window');
    assert.equal(second.documents_added, 0);

    // A row rewritten with a filter value below the watermark (a late commit) is found by lookback.
    await s.exec(`UPDATE ${q('unsigned_seq')} SET body = 'row 3, rewritten', seq = 10 WHERE id = 3`);
    const third = await t.runNow('unsigned_seq');
    assertSucceeded(third);
    assert.equal(third.documents_updated, 1);
    expected.set('3', 'body: row 3, rewritten');
    await assertDocuments(t, 'unsigned_kb', expected);
    await assertQuiet(t, 'unsigned_seq');
    assert.equal((await getJob(t, 'unsigned_seq')).watermark.filter_value, '12');
  });
});

const pgSkip = await skipUnlessSource(postgresKit);

describe('bytea keys on PostgreSQL', { skip: pgSkip }, () => {
  const s = useSource(postgresKit);

  it('bytea keys with non-UTF-8 bytes: one document per row; ::text round-trips through ::bytea, in hex whatever bytea_output', {
    timeout: TIMEOUT_MS,
  }, async () => {
    // The text form of bytea follows bytea_output; the adapter spells it in hex itself, so the
    // ids stay '\x…' on a server set to 'escape'. New sessions of the connector get the setting.
    const [current] = (await s.exec('SELECT current_database() AS db')) as Array<{ db: string }>;
    await s.exec(`ALTER DATABASE ${postgresKit.q(current!.db)} SET bytea_output = 'escape'`);
    const pgHex = (k: Buffer) => `\\x${k.toString('hex')}`;
    await binaryKeyCase(postgresKit, s, {
      table: 'bytes',
      keyType: 'bytea',
      keys: BINARY_KEYS,
      later: bin16('fd'),
      id: pgHex,
    });

    // The hex text form is what ::text gives under the default setting, and it binds back exactly.
    await s.exec("SET bytea_output = 'hex'");
    const rows = (await s.exec('SELECT k::text AS text, (k::text)::bytea = k AS same FROM bytes')) as Array<{
      text: string;
      same: boolean;
    }>;
    assert.equal(rows.length, BINARY_KEYS.length, 'six keys, one added and one deleted');
    for (const r of rows) assert.equal(r.same, true, `${r.text} round-trips`);
    const docIds = new Set((await s.t().documents('bytes_kb')).map((d) => d.id));
    assert.deepEqual(new Set(rows.map((r) => r.text)), docIds, "document ids are bytea's hex ::text");
  });
});

describe('BLOB keys on SQLite', () => {
  const s = useSource(sqliteKit);

  it('BLOB keys with non-UTF-8 bytes: one document per row, a later row once', {
    timeout: TIMEOUT_MS,
  }, async () => {
    // A BLOB column has BLOB affinity: its text form carries the storage class ('b:' + hex).
    const id = (k: Buffer) => `b:${k.toString('hex').toUpperCase()}`;
    await binaryKeyCase(sqliteKit, s, {
      table: 'blobs',
      keyType: 'BLOB',
      keys: BINARY_KEYS,
      later: bin16('fd'),
      id,
    });
  });
});
