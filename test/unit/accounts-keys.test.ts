/** API keys and the admin-key configuration (API.md, "Accounts and keys"). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  bearerToken,
  displayPrefix,
  generateApiKey,
  hashApiKey,
  secretsEqual,
} from '../../src/accounts/keys.js';
import { ConfigError, loadConfig } from '../../src/config.js';

const ADMIN = 'x'.repeat(24);

describe('API keys', () => {
  it('are kbs_ + 43 base64url characters, all different, hashed to hex SHA-256', () => {
    const keys = new Set(Array.from({ length: 200 }, generateApiKey));
    assert.equal(keys.size, 200);
    for (const key of keys) assert.match(key, /^kbs_[A-Za-z0-9_-]{43}$/);
    const key = [...keys][0]!;
    assert.match(hashApiKey(key), /^[0-9a-f]{64}$/);
    assert.equal(hashApiKey(key), hashApiKey(key));
    assert.notEqual(hashApiKey(key), hashApiKey(`${key}x`));
    assert.equal(displayPrefix(key), key.slice(0, 12));
  });

  it('bearerToken reads only `Bearer <token>`', () => {
    assert.equal(bearerToken('Bearer kbs_abc'), 'kbs_abc');
    assert.equal(bearerToken('bearer   kbs_abc  '), 'kbs_abc');
    for (const bad of [
      undefined,
      '',
      'Bearer',
      'Bearer ',
      'Basic a2V5',
      'kbs_abc',
      'Bearer a b',
      ['Bearer a'],
    ]) {
      assert.equal(bearerToken(bad as string | undefined), null, JSON.stringify(bad));
    }
  });

  it('secretsEqual compares whole values of any length', () => {
    assert.equal(secretsEqual(ADMIN, ADMIN), true);
    assert.equal(secretsEqual(`${ADMIN}x`, ADMIN), false);
    assert.equal(secretsEqual(ADMIN.slice(1), ADMIN), false);
    assert.equal(secretsEqual('', ADMIN), false);
  });
});

describe('KBSYNC_ADMIN_KEY', () => {
  it('unset or empty: authentication off', () => {
    assert.equal(loadConfig({}).adminKey, null);
    assert.equal(loadConfig({ KBSYNC_ADMIN_KEY: '  ' }).adminKey, null);
  });

  it('must be at least 24 characters', () => {
    assert.throws(
      () => loadConfig({ KBSYNC_ADMIN_KEY: 'x'.repeat(23) }),
      (e: unknown) =>
        e instanceof ConfigError && /KBSYNC_ADMIN_KEY is too short.*at least 24/.test(e.message),
    );
    assert.equal(loadConfig({ KBSYNC_ADMIN_KEY: ` ${ADMIN} ` }).adminKey, ADMIN);
  });

  it('allows any HOST; without it a non-loopback HOST is refused with a way out', () => {
    assert.equal(loadConfig({ HOST: '0.0.0.0', KBSYNC_ADMIN_KEY: ADMIN }).host, '0.0.0.0');
    assert.equal(
      loadConfig({ HOST: '10.1.2.3', KBSYNC_ADMIN_KEY: ADMIN, KBSYNC_INSECURE_BIND: 'off' }).host,
      '10.1.2.3',
    );
    assert.throws(() => loadConfig({ HOST: '0.0.0.0' }), /set KBSYNC_ADMIN_KEY to require API keys/);
  });
});
