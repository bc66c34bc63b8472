import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';
import { newId } from '../../src/core/ids.js';
import { SecretBox } from '../../src/secrets/crypto.js';

describe('ids', () => {
  it('are prefixed, unique and sort by creation', () => {
    const ids = Array.from({ length: 2000 }, () => newId('job'));
    assert.ok(ids.every((id) => /^job_[0-9a-z]{26}$/.test(id)));
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual([...ids].sort(), ids);
  });
});

describe('SecretBox', () => {
  it('round-trips and does not contain the plain text', () => {
    const box = SecretBox.fromSetting('a passphrase of some length');
    const sealed = box.encrypt('s3cret-pa55');
    assert.ok(!sealed.includes('s3cret'));
    assert.equal(box.decrypt(sealed), 's3cret-pa55');
    assert.throws(() => SecretBox.fromSetting('another passphrase here').decrypt(sealed));
  });
  it('generates a key file with mode 0600 once and reuses it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kbsync-key-'));
    const sealed = SecretBox.fromDataDir(dir).encrypt('x');
    const stat = fs.statSync(path.join(dir, 'secret.key'));
    assert.equal(stat.mode & 0o777, 0o600);
    assert.equal(SecretBox.fromDataDir(dir).decrypt(sealed), 'x');
  });
});

describe('config', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.port, 8000);
    assert.equal(c.dataDir, path.resolve('./data'));
    assert.equal(c.logLevel, 'info');
    assert.equal(c.maxActiveJobs, 100);
    assert.ok(Object.isFrozen(c));
  });
  it('fails fast with a message that says what to set', () => {
    assert.throws(() => loadConfig({ PORT: 'eighty' }), (e: unknown) => e instanceof ConfigError && /set PORT to a whole number/.test(e.message));
    assert.throws(() => loadConfig({ PORT: '70000' }), ConfigError);
    assert.throws(() => loadConfig({ LOG_LEVEL: 'loud' }), /set LOG_LEVEL to one of/);
    assert.throws(() => loadConfig({ KBSYNC_SECRET_KEY: 'short' }), /KBSYNC_SECRET_KEY/);
    assert.throws(() => loadConfig({ KBSYNC_SCHEDULER: 'maybe' }), /set KBSYNC_SCHEDULER to on or off/);
  });
  it('refuses a non-loopback address unless told the risk is accepted (no authentication yet)', () => {
    assert.throws(() => loadConfig({ HOST: '0.0.0.0' }), /no authentication yet: set HOST=127\.0\.0\.1/);
    assert.equal(loadConfig({ HOST: '0.0.0.0', KBSYNC_INSECURE_BIND: 'on' }).host, '0.0.0.0');
    assert.equal(loadConfig({ HOST: 'localhost' }).host, 'localhost');
  });
});
