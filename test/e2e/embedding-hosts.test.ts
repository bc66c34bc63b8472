/**
 * Where a knowledge base's embedding provider may live (core/embedding-hosts.ts): with
 * authentication on, a user cannot point `embedding.base_url` at the server's own network (a
 * cloud metadata endpoint, a database port on localhost); KBSYNC_EMBEDDING_HOSTS lists the
 * allowed hosts. Refused before any request is sent, with INVALID_REQUEST and the reason.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { type App, createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { embeddingHostRefusal, isInternalAddress } from '../../src/core/embedding-hosts.js';
import { tempDir } from '../helpers/app.js';

const ADMIN = 'admin-key-for-tests-0123456789abcdef';

async function startApp(extra: Record<string, string>): Promise<{ app: App }> {
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    KBSYNC_DATA_DIR: tempDir(),
    KBSYNC_SCHEDULER: 'off',
    KBSYNC_EMBEDDING_PROBE_TIMEOUT_MS: '2000',
    ...extra,
  } as NodeJS.ProcessEnv);
  return { app: await createApp(config) };
}

/** A new account's API key (the admin key only manages accounts). */
async function accountKey(app: App): Promise<string> {
  const res = await app.server.inject({ method: 'POST', url: '/accounts', headers: { authorization: `Bearer ${ADMIN}` }, payload: { name: 'team' } });
  assert.equal(res.statusCode, 201, res.body);
  return res.json().data.api_key;
}

async function createKb(app: App, key: string | null, baseUrl: string): Promise<{ status: number; body: any }> {
  const res = await app.server.inject({
    method: 'POST',
    url: '/knowledge_bases/create',
    headers: key === null ? {} : { authorization: `Bearer ${key}` },
    payload: { kb_name: `kb_${Math.random().toString(36).slice(2, 8)}`, embedding: { provider: 'openai', base_url: baseUrl, api_key: 'sk-test', model: 'm' } },
  });
  return { status: res.statusCode, body: res.json() };
}

describe('embedding hosts policy (pure)', () => {
  it('recognises internal literal addresses', () => {
    for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '0.0.0.0', '100.64.0.1', '::1', '::', 'fd00::1', 'fe80::1', '::ffff:127.0.0.1']) {
      assert.equal(isInternalAddress(a), true, a);
    }
    for (const a of ['8.8.8.8', '172.32.0.1', '2001:db8::1', 'api.openai.com']) assert.equal(isInternalAddress(a), false, a);
  });

  it('applies any / public / list', () => {
    assert.equal(embeddingHostRefusal('http://127.0.0.1:11434/v1', { kind: 'any' }), null);
    assert.match(embeddingHostRefusal('http://169.254.169.254/latest', { kind: 'public' }) ?? '', /own network/);
    assert.match(embeddingHostRefusal('http://localhost:5432', { kind: 'public' }) ?? '', /own network/);
    assert.match(embeddingHostRefusal('http://[::1]:8080/v1', { kind: 'public' }) ?? '', /own network/);
    assert.equal(embeddingHostRefusal('https://api.openai.com/v1', { kind: 'public' }), null);
    const list = { kind: 'list' as const, hosts: ['api.openai.com', 'llm.internal:8080', '*.example.com'] };
    assert.equal(embeddingHostRefusal('https://api.openai.com/v1', list), null);
    assert.equal(embeddingHostRefusal('http://llm.internal:8080/v1', list), null);
    assert.match(embeddingHostRefusal('http://llm.internal:9090/v1', list) ?? '', /not in KBSYNC_EMBEDDING_HOSTS/);
    assert.equal(embeddingHostRefusal('https://eu.example.com/v1', list), null);
    assert.match(embeddingHostRefusal('https://example.com.evil.io/v1', list) ?? '', /not in/);
    assert.match(embeddingHostRefusal('https://badexample.com/v1', list) ?? '', /not in/);
  });

  it('refuses a malformed KBSYNC_EMBEDDING_HOSTS at start-up', () => {
    assert.throws(() => loadConfig({ KBSYNC_EMBEDDING_HOSTS: 'http://x/y' } as NodeJS.ProcessEnv), /KBSYNC_EMBEDDING_HOSTS/);
  });
});

describe('embedding hosts over the API', () => {
  // A local OpenAI-compatible peer that counts the requests it receives.
  let hits = 0;
  const peer = http.createServer((_req, res) => {
    hits++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ data: [{ index: 0, embedding: [1, 0, 0, 0] }], model: 'm' }));
  });
  let peerUrl = '';
  before(async () => {
    await new Promise<void>((r) => peer.listen(0, '127.0.0.1', () => r()));
    const a = peer.address();
    peerUrl = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/v1`;
  });
  after(() => new Promise<void>((r) => peer.close(() => r())));

  it('with auth on and no list: a loopback base_url is refused before any request is sent', async () => {
    const { app } = await startApp({ KBSYNC_ADMIN_KEY: ADMIN });
    try {
      const before = hits;
      const res = await createKb(app, await accountKey(app), peerUrl);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(res.body.error.code, 'INVALID_REQUEST');
      assert.match(res.body.error.details.join(' '), /127\.0\.0\.1.*own network.*KBSYNC_EMBEDDING_HOSTS/);
      assert.equal(hits, before, 'no request reached the address');
    } finally {
      await app.close();
    }
  });

  it('with auth on and the host listed: allowed (the probe reaches it)', async () => {
    const { app } = await startApp({ KBSYNC_ADMIN_KEY: ADMIN, KBSYNC_EMBEDDING_HOSTS: `api.openai.com, ${new URL(peerUrl).host}` });
    try {
      const before = hits;
      const res = await createKb(app, await accountKey(app), peerUrl);
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.ok(hits > before, 'the probe reached the listed host');
    } finally {
      await app.close();
    }
  });

  it('without auth (loopback, single user): a local model server is allowed', async () => {
    const { app } = await startApp({});
    try {
      const res = await createKb(app, null, peerUrl);
      assert.equal(res.status, 201, JSON.stringify(res.body));
    } finally {
      await app.close();
    }
  });
});
