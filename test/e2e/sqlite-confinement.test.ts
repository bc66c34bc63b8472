/**
 * SQLite sources confined (issue 8, point 5): a SQLite source path must be absolute, without
 * NUL, and its real path an existing file inside KBSYNC_SQLITE_ROOTS and outside kbsync's own data
 * folder (its sources/ folder excepted). Every refusal answers the same 400, so the answer never
 * tells whether a file exists; the connector checks again when it opens the file.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ConfigError, defaultSqliteRoots, loadConfig } from '../../src/config.js';
import { allowedSqlitePath } from '../../src/sources/sqlite/confine.js';
import { makeSqliteSource, startTestApp, type TestApp, tempDir } from '../helpers/app.js';

function sqliteFile(file: string): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT, ts TEXT); INSERT INTO t VALUES (1, 'x', '2025-01-01')");
  db.close();
  return file;
}

describe('SQLite source paths', () => {
  let root: string;
  let outside: string;
  let dataDir: string;
  let t: TestApp;
  let n = 0;
  const register = (p: unknown) => t.request('POST', '/databases', { name: `db_${++n}`, engine: 'sqlite', parameters: { path: p } });

  before(async () => {
    root = fs.realpathSync(tempDir('kbsync-root-'));
    outside = fs.realpathSync(tempDir('kbsync-outside-'));
    // The data dir inside the allowed root: its own files must stay refused all the same.
    dataDir = path.join(root, 'data');
    t = await startTestApp({ dataDir, config: { sqliteRoots: [root] } });
  });
  after(async () => {
    await t?.close();
    for (const dir of [root, outside]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a file inside a root, or in the data dir\'s sources/ folder, is accepted', async () => {
    const res = await register(sqliteFile(path.join(root, 'nested', 'ok.db')));
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const tables = await t.request('GET', `/databases/db_${n}/tables`);
    assert.equal(tables.status, 200, JSON.stringify(tables.body));
    const inSources = await register(makeSqliteSource(dataDir));
    assert.equal(inSources.status, 201, JSON.stringify(inSources.body));
  });

  it('every refusal gives the same 400 message: relative, .., symlink into the data dir, kbsync.db, NUL, missing, outside', async () => {
    const ok = sqliteFile(path.join(root, 'ok2.db'));
    const foreign = sqliteFile(path.join(outside, 'foreign.db'));
    fs.symlinkSync(path.join(dataDir, 'kbsync.db'), path.join(root, 'link-to-store.db'));
    fs.symlinkSync(path.join(dataDir, 'kbsync.db'), path.join(dataDir, 'sources', 'store-link.db'));
    fs.symlinkSync(dataDir, path.join(root, 'data-link'));
    // A hard link has no path back to the data dir; the same file is still refused.
    let hardLink: string | null = path.join(root, 'hard-link.db');
    try {
      fs.linkSync(path.join(dataDir, 'kbsync.db'), hardLink);
    } catch {
      hardLink = null; // another file system than the data dir's: no hard link possible
    }
    const cases: Array<[string, unknown]> = [
      ...(hardLink === null ? [] : [['hard link to kbsync.db', hardLink] as [string, unknown]]),
      ['relative path', path.relative(process.cwd(), ok)],
      ['bare file name', 'ok2.db'],
      ['.. out of the root', path.join(root, '..', path.basename(outside), 'foreign.db')],
      ['.. into the data dir', path.join(dataDir, 'sources', '..', 'kbsync.db')],
      ['symlink into the data dir', path.join(root, 'link-to-store.db')],
      ['symlink in sources/ to the store', path.join(dataDir, 'sources', 'store-link.db')],
      ['symlinked folder to the data dir', path.join(root, 'data-link', 'kbsync.db')],
      ["the data dir's kbsync.db", path.join(dataDir, 'kbsync.db')],
      ["the data dir's secret key", path.join(dataDir, 'secret.key')],
      ['NUL byte', `${ok}\u0000.txt`],
      ['a missing file outside the roots', path.join(outside, 'missing.db')],
      ['a missing file inside a root', path.join(root, 'missing.db')],
      ['an existing database outside the roots', foreign],
      ['a folder', root],
    ];
    let first: unknown = null;
    for (const [what, p] of cases) {
      const res = await register(p);
      assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
      if (first === null) {
        first = res.body.error;
        assert.equal(res.body.error.code, 'INVALID_REQUEST');
        assert.match(JSON.stringify(res.body.error), /KBSYNC_SQLITE_ROOTS/, 'says what to set');
      } else {
        assert.deepEqual(res.body.error, first, `${what}: the same answer as every other refusal`);
      }
    }
    assert.equal((await t.request('GET', '/databases')).body.data.databases.length, 2, 'nothing refused was registered');
  });

  it('checked again when the file is opened: a registered file swapped for a symlink to the store is refused', async () => {
    const file = sqliteFile(path.join(root, 'swap', 'src.db'));
    const res = await register(file);
    assert.equal(res.status, 201, JSON.stringify(res.body));
    fs.rmSync(file);
    fs.symlinkSync(path.join(dataDir, 'kbsync.db'), file);
    const tables = await t.request('GET', `/databases/db_${n}/tables`);
    assert.notEqual(tables.status, 200);
    assert.doesNotMatch(JSON.stringify(tables.body), /jobs|knowledge_bases|accounts/, 'no table of the store is shown');
    assert.match(JSON.stringify(tables.body), /not allowed/);
  });
});

describe('KBSYNC_SQLITE_ROOTS', () => {
  const env = (extra: Record<string, string>) => ({ LOG_LEVEL: 'silent', KBSYNC_DATA_DIR: '/srv/kbsync', ...extra }) as NodeJS.ProcessEnv;

  it('unset: the data dir\'s sources/ and demo/ folders and the files directly in the current directory', () => {
    assert.deepEqual(loadConfig(env({})).sqliteRoots, ['/srv/kbsync/sources', '/srv/kbsync/demo', path.join(process.cwd(), '*')]);
    assert.deepEqual(defaultSqliteRoots('/d', false, '/work'), ['/d/sources', '/d/demo', '/work/*']);
  });

  it('unset with authentication on: no SQLite source is allowed', () => {
    assert.deepEqual(defaultSqliteRoots('/d', true), []);
    assert.deepEqual(loadConfig(env({ KBSYNC_ADMIN_KEY: 'k'.repeat(40) })).sqliteRoots, []);
  });

  it('a list of absolute folders; none or empty allows nothing; a relative entry is refused at start', () => {
    assert.deepEqual(loadConfig(env({ KBSYNC_SQLITE_ROOTS: '/a/b:/c/../d:/e/*' })).sqliteRoots, ['/a/b', '/d', '/e/*']);
    assert.deepEqual(loadConfig(env({ KBSYNC_SQLITE_ROOTS: 'none' })).sqliteRoots, []);
    assert.deepEqual(loadConfig(env({ KBSYNC_SQLITE_ROOTS: '' })).sqliteRoots, []);
    assert.throws(() => loadConfig(env({ KBSYNC_SQLITE_ROOTS: '/a:relative/dir' })), ConfigError);
  });

  it('DIR/* allows the files directly in DIR, not those in its subfolders', () => {
    const dir = fs.realpathSync(tempDir('kbsync-files-'));
    try {
      const top = sqliteFile(path.join(dir, 'top.db'));
      const deep = sqliteFile(path.join(dir, 'sub', 'deep.db'));
      const confinement = { roots: [path.join(dir, '*')], dataDir: path.join(os.tmpdir(), 'kbsync-no-such-data-dir') };
      assert.equal(allowedSqlitePath(top, confinement), top);
      assert.equal(allowedSqlitePath(deep, confinement), null);
      assert.equal(allowedSqlitePath(deep, { ...confinement, roots: [dir] }), deep);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('source and shutdown timeouts: defaults and validation', () => {
    const c = loadConfig(env({}));
    assert.equal(c.sourceStatementTimeoutMs, 60_000);
    assert.equal(c.sourceLockTimeoutMs, 10_000);
    assert.equal(c.shutdownTimeoutMs, 10_000);
    assert.equal(loadConfig(env({ KBSYNC_SOURCE_LOCK_TIMEOUT_MS: '2500' })).sourceLockTimeoutMs, 2500);
    assert.throws(() => loadConfig(env({ KBSYNC_SOURCE_STATEMENT_TIMEOUT_MS: '0' })), /KBSYNC_SOURCE_STATEMENT_TIMEOUT_MS/);
    assert.throws(() => loadConfig(env({ KBSYNC_SOURCE_LOCK_TIMEOUT_MS: 'soon' })), /KBSYNC_SOURCE_LOCK_TIMEOUT_MS/);
    assert.throws(() => loadConfig(env({ KBSYNC_SHUTDOWN_TIMEOUT_MS: '-1' })), /KBSYNC_SHUTDOWN_TIMEOUT_MS/);
  });
});
