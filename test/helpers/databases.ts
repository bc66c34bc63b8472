/**
 * Real databases for integration tests: a fresh, uniquely named database per test, dropped on
 * close (STYLE.md 5, "No mocks of a database").
 *
 * Skipping rule: when a server is unreachable, tests skip with the reason — except under
 * CI=true, where a missing server is a broken CI and the tests must fail instead.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { parseMysqlUrl } from '../../src/sources/mysql/connector.js';
import type { ConnectionParameters } from '../../src/sources/port.js';

export type ServerKind = 'postgres' | 'mysql';

export interface TempDatabase {
  /** A URL for the database (a `file:` URL for SQLite). */
  url: string;
  /** What a connector is created with. */
  params: ConnectionParameters;
  /** Runs SQL on a writable connection (several statements allowed without params); rows if any. */
  exec(sql: string, params?: unknown[]): Promise<unknown[]>;
  /** Closes the connection and drops the database. */
  close(): Promise<void>;
}

export function postgresTestUrl(): string {
  return process.env.KBSYNC_TEST_PG_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
}

export function mysqlTestUrl(): string {
  return process.env.KBSYNC_TEST_MYSQL_URL || 'mysql://root@127.0.0.1:3306/test';
}

const LABEL: Record<ServerKind, string> = { postgres: 'PostgreSQL', mysql: 'MySQL/MariaDB' };

/** A URL fit for a message: the password replaced. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^/:@\s]*:)[^@\s]*@/, '$1***@');
}

const availability = new Map<ServerKind, Promise<boolean>>();

/** Whether the test server answers (one short attempt per process, remembered). */
export function serverAvailable(kind: ServerKind): Promise<boolean> {
  let p = availability.get(kind);
  if (p === undefined) {
    p = (kind === 'postgres' ? probePostgres() : probeMysql()).then(
      () => true,
      () => false,
    );
    availability.set(kind, p);
  }
  return p;
}

async function probePostgres(): Promise<void> {
  const client = new pg.Client({ connectionString: postgresTestUrl(), connectionTimeoutMillis: 3_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
  } finally {
    await client.end().catch(() => {});
  }
}

async function probeMysql(): Promise<void> {
  const conn = await mysql.createConnection({ ...mysqlAdminOptions(), connectTimeout: 3_000 });
  await conn.end();
}

export function unreachableMessage(kind: ServerKind): string {
  const url = kind === 'postgres' ? postgresTestUrl() : mysqlTestUrl();
  const env = kind === 'postgres' ? 'KBSYNC_TEST_PG_URL' : 'KBSYNC_TEST_MYSQL_URL';
  return `${LABEL[kind]} not reachable at ${redactUrl(url)} (set ${env})`;
}

/**
 * The `skip` option for a suite needing `kind`: the reason when the server is unreachable,
 * false when it answers — and false under CI=true, so the suite runs and fails loudly.
 */
export async function skipUnlessServer(kind: ServerKind): Promise<string | false> {
  if (await serverAvailable(kind)) return false;
  return process.env.CI === 'true' ? false : unreachableMessage(kind);
}

function uniqueName(): string {
  return `kbsync_t_${process.pid}_${randomBytes(5).toString('hex')}`;
}

export async function withTempPostgresDatabase(): Promise<TempDatabase> {
  const name = uniqueName();
  const admin = async (sql: string): Promise<void> => {
    const client = new pg.Client({ connectionString: postgresTestUrl(), connectionTimeoutMillis: 5_000 });
    client.on('error', () => {});
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE "${name}"`);
  const u = new URL(postgresTestUrl());
  u.pathname = `/${name}`;
  const url = u.toString();
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    await admin(`DROP DATABASE IF EXISTS "${name}"`);
    throw err;
  }
  return {
    url,
    params: { url },
    async exec(sql, params) {
      const res = await client.query(sql, params as unknown[] | undefined);
      // A multi-statement string yields one result per statement.
      return Array.isArray(res) ? res.flatMap((r: pg.QueryResult) => r.rows ?? []) : res.rows;
    },
    async close() {
      await client.end().catch(() => {});
      // FORCE ends connections a failing test left open, so the drop never waits.
      await admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    },
  };
}

function mysqlAdminOptions(): mysql.ConnectionOptions {
  const t = parseMysqlUrl(mysqlTestUrl());
  // No database: the one in the URL (`test`) need not exist to create a fresh one.
  return { host: t.host ?? '127.0.0.1', port: t.port ?? 3306, user: t.user, password: t.password };
}

export async function withTempMysqlDatabase(): Promise<TempDatabase> {
  const name = uniqueName();
  const admin = await mysql.createConnection({ ...mysqlAdminOptions(), connectTimeout: 5_000 });
  let conn: mysql.Connection;
  try {
    await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4`);
    conn = await mysql.createConnection({
      ...mysqlAdminOptions(),
      database: name,
      multipleStatements: true,
      connectTimeout: 5_000,
    });
  } catch (err) {
    await admin.query(`DROP DATABASE IF EXISTS \`${name}\``).catch(() => {});
    await admin.end();
    throw err;
  }
  const u = new URL(mysqlTestUrl());
  u.pathname = `/${name}`;
  const url = u.toString();
  return {
    url,
    params: { url },
    async exec(sql, params) {
      const [res] = await conn.query(sql, params);
      return Array.isArray(res) ? (res as unknown[]) : [];
    },
    async close() {
      await conn.end().catch(() => {});
      await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await admin.end();
    },
  };
}

/** A path for a SQLite file in a fresh temporary directory; remove() deletes the directory. */
export function tempSqliteFile(): { path: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'kbsync-test-'));
  return { path: join(dir, 'source.db'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A SQLite file with a writable handle for setting up tables; the connector reads it separately. */
export async function withTempSqliteDatabase(): Promise<TempDatabase> {
  const file = tempSqliteFile();
  const db = new Database(file.path);
  return {
    url: `file:${file.path}`,
    params: { path: file.path },
    async exec(sql, params) {
      if (params === undefined && !/^\s*select\b/i.test(sql)) {
        db.exec(sql);
        return [];
      }
      const stmt = db.prepare(sql);
      if (stmt.reader) return stmt.all(...(params ?? []));
      stmt.run(...(params ?? []));
      return [];
    },
    async close() {
      db.close();
      file.remove();
    },
  };
}
