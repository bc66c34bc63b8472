/**
 * The smaller items of issue 8 (point 7): each answer a user got wrong, now right.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { loadConfig } from '../../src/config.js';
import { startFakeOpenAIServer, type FakeOpenAIServer } from '../helpers/fake-openai.js';
import { startTestApp, tempDir, type TestApp } from '../helpers/app.js';

describe('bad input in URLs answers 400 in the envelope', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp();
  });
  after(() => t.close());

  it('a database password with a bad percent-escape (%ZZ) is 400, not 500', async () => {
    const res = await t.request('POST', '/databases', {
      name: 'pg',
      engine: 'postgres',
      parameters: { url: 'postgres://app:pa%ZZss@127.0.0.1:1/db' },
    });
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'INVALID_REQUEST');
    assert.match(res.body.error.details[0], /password is not valid percent-encoding/);
    assert.doesNotMatch(JSON.stringify(res.body), /pa%ZZss/, 'the password is not echoed');
  });

  it('a connection URL may not replace the session settings sources run under (options, timeouts)', async () => {
    for (const query of ['options=-c%20statement_timeout%3D0', 'statement_timeout=0', 'lock_timeout=0', 'OPTIONS=x']) {
      const res = await t.request('POST', '/databases', { name: 'pg', engine: 'postgres', parameters: { url: `postgres://app@127.0.0.1:1/db?${query}` } });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.match(res.body.error.details.join(' '), /cannot be set; kbsync sets the session's timeouts/);
    }
  });

  it('GET /jobs/%ZZ answers in the kbsync envelope', async () => {
    const res = await t.request('GET', '/jobs/%ZZ');
    assert.equal(res.status, 400);
    assert.equal(res.body.success, false);
    assert.equal(res.body.error.code, 'INVALID_REQUEST');
    assert.ok(Array.isArray(res.body.error.details));
  });

  it('?limit=abc says what limit must be and what it got', async () => {
    for (const [value, shown] of [
      ['abc', 'abc'],
      ['2.5', '2.5'],
      ['0', '0'],
      ['201', '201'],
    ] as const) {
      const res = await t.request('GET', `/jobs?limit=${value}`);
      assert.equal(res.status, 400);
      assert.deepEqual(res.body.error.details, [`limit must be a whole number from 1 to 200, got '${shown}'`]);
    }
    assert.equal((await t.request('GET', '/jobs?limit=200')).status, 200);
    assert.equal((await t.request('GET', '/knowledge_bases/nope/documents?limit=x')).status, 400);
  });
});

describe('the store file is private', () => {
  it('kbsync.db, its -wal and -shm are 0600 and a new data dir is 0700', async () => {
    const dataDir = path.join(tempDir(), 'data');
    const t = await startTestApp({ dataDir });
    try {
      assert.equal((await t.request('POST', '/knowledge_bases', { kb_name: 'kb' })).status, 201);
      const mode = (f: string) => (fs.statSync(f).mode & 0o777).toString(8);
      assert.equal(mode(dataDir), '700');
      for (const f of ['kbsync.db', 'kbsync.db-wal', 'kbsync.db-shm']) assert.equal(mode(path.join(dataDir, f)), '600', f);
    } finally {
      await t.close();
    }
  });

  it('an existing 0644 store is tightened at start', async () => {
    const dataDir = tempDir();
    const first = await startTestApp({ dataDir });
    await first.close();
    fs.chmodSync(path.join(dataDir, 'kbsync.db'), 0o644);
    const second = await startTestApp({ dataDir });
    try {
      assert.equal((fs.statSync(path.join(dataDir, 'kbsync.db')).mode & 0o777).toString(8), '600');
    } finally {
      await second.close();
    }
  });
});

describe('LOG_LEVEL=debug logs more than info', () => {
  const capture = async (level: 'info' | 'debug') => {
    const lines: Array<{ level: number; msg: string }> = [];
    const stream = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n')) if (line.trim()) lines.push(JSON.parse(line));
        done();
      },
    });
    const dataDir = tempDir();
    const logger = pino({ level }, stream);
    const t = await startTestApp({ dataDir, logger, config: loadConfig({ LOG_LEVEL: level } as NodeJS.ProcessEnv, { dataDir, scheduler: false }) });
    try {
      await t.request('GET', '/jobs');
      await t.request('GET', '/health');
    } finally {
      await t.close();
    }
    return lines;
  };

  it('requests are logged at debug, not at info', async () => {
    const info = await capture('info');
    const debug = await capture('debug');
    assert.equal(info.filter((l) => l.msg === 'request').length, 0, 'no per-request lines at info');
    const requests = debug.filter((l) => l.msg === 'request');
    assert.equal(requests.length, 2, JSON.stringify(debug));
    assert.ok(requests.every((l) => l.level === 20));
    assert.ok(debug.length > info.length);
  });
});

describe('a knowledge base whose provider hangs', () => {
  let fake: FakeOpenAIServer;
  let t: TestApp;
  before(async () => {
    fake = await startFakeOpenAIServer({ script: () => 'hang' });
    t = await startTestApp({ config: { embeddingProbeTimeoutMs: 500 } });
  });
  after(async () => {
    await t.close();
    await fake.close();
  });

  it('fails the creation with CONNECTION_FAILED after one probe, within the probe timeout', async () => {
    const t0 = performance.now();
    const res = await t.request('POST', '/knowledge_bases', {
      kb_name: 'hangs',
      embedding: { provider: 'openai', base_url: fake.baseUrl, model: 'text-embedding-3-small', api_key: 'sk-test' },
    });
    const ms = performance.now() - t0;
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error.code, 'CONNECTION_FAILED');
    assert.match(res.body.error.details.join(' '), /did not answer within 500 ms/);
    // The probe timeout ends it, not the fake (which never answers): 5 × 500 ms + 5 s leaves a
    // loaded machine room; without the timeout the request would hang for good.
    assert.ok(ms < 7_500, `answered in ${ms.toFixed(0)} ms`);
    assert.equal(fake.requests.length, 1, 'one attempt, no retries');
    assert.equal((await t.request('GET', '/knowledge_bases/hangs')).status, 404, 'nothing was created');
  });
});
