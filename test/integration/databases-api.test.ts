/**
 * /databases over HTTP against real PostgreSQL and MariaDB: the connection is tested before it
 * is saved, CONNECTION_FAILED carries the driver's reason, passwords are never returned and are
 * encrypted at rest, tables are introspected (composite keys, spaces, reserved words).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { skipUnlessServer, type TempDatabase, withTempMysqlDatabase, withTempPostgresDatabase } from '../helpers/databases.js';

const PASSWORD = 'hunter2-Very-Secret';

function storeFileContains(t: TestApp, needle: string): boolean {
  // The WAL holds recent writes before a checkpoint; look at every file of the store.
  return fs
    .readdirSync(t.dataDir)
    .filter((f) => f.startsWith('kbsync.db'))
    .some((f) => fs.readFileSync(path.join(t.dataDir, f)).includes(needle));
}

describe('PostgreSQL databases', async () => {
  const skip = await skipUnlessServer('postgres');
  let t: TestApp;
  let db: TempDatabase;
  before(async () => {
    if (skip) return;
    t = await startTestApp();
    db = await withTempPostgresDatabase();
    await db.exec(`
      CREATE SCHEMA sales;
      CREATE TABLE sales."Order Items" (order_id int NOT NULL, line int NOT NULL, "select" text, updated_at timestamptz, PRIMARY KEY (order_id, line));
      CREATE TABLE public.orders (id bigint PRIMARY KEY, product text, created_at timestamp);
    `);
  });
  after(async () => {
    if (skip) return;
    await t.close();
    await db.close();
  });

  it('registers with a password that is masked in every response and encrypted at rest', { skip }, async () => {
    const u = new URL(db.url);
    const res = await t.request('POST', '/databases/create', {
      name: 'pg_src',
      engine: 'postgres',
      parameters: { host: u.hostname, port: Number(u.port || 5432), user: u.username || 'postgres', password: PASSWORD, database: u.pathname.slice(1) },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.data.parameters.password, '****');
    const get = await t.request('GET', '/databases/pg_src');
    assert.equal(get.body.data.parameters.password, '****');
    const list = await t.request('GET', '/databases');
    assert.ok(!JSON.stringify(list.body).includes(PASSWORD));
    assert.ok(!storeFileContains(t, PASSWORD), 'the password is not stored in clear');
  });

  it('a url with a password is stored without it and shown masked', { skip }, async () => {
    const u = new URL(db.url);
    u.password = PASSWORD;
    const res = await t.request('POST', '/databases', { name: 'pg_url', engine: 'postgres', parameters: { url: u.toString() } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.ok(!JSON.stringify(res.body).includes(PASSWORD));
    assert.match(res.body.data.parameters.url, /:\*{4}@/);
    assert.ok(!storeFileContains(t, PASSWORD));
  });

  it('lists tables across schemas with composite keys and awkward names', { skip }, async () => {
    const res = await t.request('GET', '/databases/pg_src/tables');
    assert.equal(res.status, 200);
    const items = res.body.data.tables.find((x: { name: string }) => x.name === 'Order Items');
    assert.equal(items.schema, 'sales');
    assert.deepEqual(items.primary_key, ['order_id', 'line']);
    assert.ok(items.columns.some((c: { name: string; kind: string }) => c.name === 'select' && c.kind === 'text'));
    assert.equal(items.columns.find((c: { name: string }) => c.name === 'updated_at').kind, 'timestamptz');
  });

  it('a job on database.schema.table with a reserved-word column is accepted', { skip }, async () => {
    await t.request('POST', '/knowledge_bases', { kb_name: 'kb' });
    const res = await t.request('POST', '/jobs/create', {
      job_name: 'items',
      source_table: 'pg_src.sales.Order Items',
      kb_name: 'kb',
      content_columns: ['select'],
      filter_column: 'updated_at',
      interval: '5 MINUTES',
      start_time: '2099-01-01T00:00:00',
      end_time: '2099-01-02T00:00:00',
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual(res.body.data.key_columns, ['order_id', 'line']);
    const bad = await t.request('POST', '/jobs/create', {
      job_name: 'items2',
      source_table: 'pg_src.public.Order Items',
      kb_name: 'kb',
      content_columns: ['select'],
      filter_column: 'updated_at',
      interval: '5 MINUTES',
      start_time: '2099-01-01T00:00:00',
      end_time: '2099-01-02T00:00:00',
    });
    assert.equal(bad.body.error.code, 'INVALID_TABLE');
  });

  it('ssl: true is honoured with a url (this server has no TLS, so the connection is refused)', { skip }, async () => {
    const res = await t.request('POST', '/databases', { name: 'pg_tls', engine: 'postgres', parameters: { url: db.url, ssl: true } });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'CONNECTION_FAILED');
    assert.match(res.body.error.details[0], /SSL/i);
  });

  it('a password in the url query is refused, never stored', { skip }, async () => {
    const u = new URL(db.url);
    u.searchParams.set('password', PASSWORD);
    const res = await t.request('POST', '/databases', { name: 'pg_q', engine: 'postgres', parameters: { url: u.toString() } });
    assert.equal(res.status, 400);
    assert.match(res.body.error.details[0], /not in its query/);
    assert.ok(!JSON.stringify(res.body).includes(PASSWORD));
    assert.ok(!storeFileContains(t, PASSWORD));
  });

  it('an unreachable server is 400 CONNECTION_FAILED with the driver reason, and nothing is saved', { skip }, async () => {
    const res = await t.request('POST', '/databases/create', {
      name: 'pg_down',
      engine: 'postgres',
      parameters: { host: '127.0.0.1', port: 1, user: 'postgres', password: PASSWORD, database: 'x' },
    });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'CONNECTION_FAILED');
    assert.match(res.body.error.details[0], /pg_down.*(ECONNREFUSED|refused|connect)/i);
    assert.ok(!JSON.stringify(res.body).includes(PASSWORD));
    assert.equal((await t.request('GET', '/databases/pg_down')).status, 404);
  });

  it('a name that is taken is 409 DUPLICATE_DATABASE; deleting frees it once no job uses it', { skip }, async () => {
    const dup = await t.request('POST', '/databases', { name: 'pg_url', engine: 'postgres', parameters: { url: db.url } });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.code, 'DUPLICATE_DATABASE');
    assert.equal((await t.request('DELETE', '/databases/pg_url')).status, 200);
    assert.equal((await t.request('DELETE', '/databases/pg_src')).status, 409, 'job items uses it');
  });
});

describe('MariaDB databases', async () => {
  const skip = await skipUnlessServer('mysql');
  let t: TestApp;
  let db: TempDatabase;
  let user: string;
  before(async () => {
    if (skip) return;
    t = await startTestApp();
    db = await withTempMysqlDatabase();
    user = `kbs_${Math.random().toString(36).slice(2, 8)}`;
    const dbName = new URL(db.url).pathname.slice(1);
    await db.exec(`CREATE USER '${user}'@'%' IDENTIFIED BY '${PASSWORD}'`);
    await db.exec(`GRANT SELECT ON \`${dbName}\`.* TO '${user}'@'%'`);
    await db.exec('CREATE TABLE `Order Items` (order_id INT NOT NULL, line INT NOT NULL, `select` TEXT, updated_at DATETIME(6), PRIMARY KEY (order_id, line))');
  });
  after(async () => {
    if (skip) return;
    await db.exec(`DROP USER IF EXISTS '${user}'@'%'`);
    await t.close();
    await db.close();
  });

  it('registers with a real password, masks it, lists the composite key', { skip }, async () => {
    const dbName = new URL(db.url).pathname.slice(1);
    const res = await t.request('POST', '/databases/create', {
      name: 'maria',
      engine: 'mysql',
      parameters: { host: '127.0.0.1', port: 3306, user, password: PASSWORD, database: dbName },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.equal(res.body.data.parameters.password, '****');
    assert.ok(!storeFileContains(t, PASSWORD));
    const tables = await t.request('GET', '/databases/maria/tables');
    const items = tables.body.data.tables.find((x: { name: string }) => x.name === 'Order Items');
    assert.deepEqual(items.primary_key, ['order_id', 'line']);
    assert.ok(items.columns.some((c: { name: string }) => c.name === 'select'));
  });

  it('a wrong password is CONNECTION_FAILED with the server reason and without the password', { skip }, async () => {
    const dbName = new URL(db.url).pathname.slice(1);
    const res = await t.request('POST', '/databases/create', {
      name: 'maria_bad',
      engine: 'mysql',
      parameters: { host: '127.0.0.1', port: 3306, user, password: `${PASSWORD}-wrong`, database: dbName },
    });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'CONNECTION_FAILED');
    assert.match(res.body.error.details[0], /Access denied/);
    assert.ok(!JSON.stringify(res.body).includes(PASSWORD));
  });
});
