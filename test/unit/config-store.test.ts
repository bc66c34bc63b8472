/** KBSYNC_STORE_URL and KBSYNC_STORE_SCHEMA: parsed, validated, and never echoed with a password. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';
import { maskUrl } from '../../src/store/open-stores.js';

const env = (vars: Record<string, string>) => ({ ...vars }) as NodeJS.ProcessEnv;

describe('scale-out store options', () => {
  it('default to the embedded store and the schema kbsync', () => {
    const config = loadConfig(env({}));
    assert.equal(config.storeUrl, null);
    assert.equal(config.storeSchema, 'kbsync');
    assert.equal(loadConfig(env({ KBSYNC_STORE_URL: '  ' })).storeUrl, null);
  });

  it('take a postgres:// or postgresql:// URL and a plain lower-case schema', () => {
    const config = loadConfig(
      env({ KBSYNC_STORE_URL: 'postgresql://kb:pw@db.internal:5432/kb', KBSYNC_STORE_SCHEMA: 'kb_prod_2' }),
    );
    assert.equal(config.storeUrl, 'postgresql://kb:pw@db.internal:5432/kb');
    assert.equal(config.storeSchema, 'kb_prod_2');
    assert.equal(
      loadConfig(env({ KBSYNC_STORE_URL: 'postgres://127.0.0.1/kb' })).storeUrl,
      'postgres://127.0.0.1/kb',
    );
  });

  it('refuse anything else with a message that says what to set, without the password', () => {
    for (const url of ['mysql://u:s3cret@h/db', 'postgres://', 'not a url s3cret', 'sqlite:///tmp/x.db']) {
      assert.throws(
        () => loadConfig(env({ KBSYNC_STORE_URL: url })),
        (e: unknown) =>
          e instanceof ConfigError && /KBSYNC_STORE_URL/.test(e.message) && !e.message.includes('s3cret'),
        url,
      );
    }
    for (const schema of ['Kbsync', 'kb-sync', '1kb', 'kb sync', 'a'.repeat(64), 'x;drop']) {
      assert.throws(() => loadConfig(env({ KBSYNC_STORE_SCHEMA: schema })), /KBSYNC_STORE_SCHEMA/, schema);
    }
  });

  it('bound the store’s pools and statements: defaults, and values out of range refused', () => {
    const defaults = loadConfig(env({}));
    assert.equal(defaults.storePoolSize, 5);
    assert.equal(defaults.storeStatementTimeoutMs, 30_000);
    const set = loadConfig(env({ KBSYNC_STORE_POOL_SIZE: '12', KBSYNC_STORE_STATEMENT_TIMEOUT_MS: '2500' }));
    assert.equal(set.storePoolSize, 12);
    assert.equal(set.storeStatementTimeoutMs, 2500);
    for (const [name, value] of [
      ['KBSYNC_STORE_POOL_SIZE', '0'],
      ['KBSYNC_STORE_POOL_SIZE', '101'],
      ['KBSYNC_STORE_STATEMENT_TIMEOUT_MS', '0'],
      ['KBSYNC_STORE_STATEMENT_TIMEOUT_MS', '99'],
      ['KBSYNC_STORE_STATEMENT_TIMEOUT_MS', 'soon'],
    ] as const) {
      assert.throws(() => loadConfig(env({ [name]: value })), new RegExp(name), `${name}=${value}`);
    }
  });
});

describe('maskUrl (what logs, errors and the CLI show of the store URL)', () => {
  it('replaces the password, in the authority or a password parameter, and keeps the rest', () => {
    assert.equal(maskUrl('postgres://kb:s3cret@db.internal:5432/kb'), 'postgres://kb:****@db.internal:5432/kb');
    assert.equal(maskUrl('postgres://kb:p%40ss%2Fw@db/kb?sslmode=require'), 'postgres://kb:****@db/kb?sslmode=require');
    assert.equal(maskUrl('postgres://kb@db/kb?password=s3cret&application_name=x'), 'postgres://kb@db/kb?password=****&application_name=x');
    assert.equal(maskUrl('postgres://db.internal/kb'), 'postgres://db.internal/kb');
  });
});
