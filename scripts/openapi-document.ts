/**
 * Writes the OpenAPI document a server would serve at /openapi.json, built in-process (a
 * throwaway data dir, nothing listens, no scheduler). Usage:
 *   tsx scripts/openapi-document.ts OUT.json [--auth]
 * `--auth`: as with KBSYNC_ADMIN_KEY set (every operation needs a key).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';

const [out, ...flags] = process.argv.slice(2);
if (!out) {
  console.error('usage: tsx scripts/openapi-document.ts OUT.json [--auth]');
  process.exit(2);
}
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kbsync-openapi-'));
try {
  const env: NodeJS.ProcessEnv = { LOG_LEVEL: 'silent', KBSYNC_DATA_DIR: dataDir, KBSYNC_SCHEDULER: 'off' };
  if (flags.includes('--auth')) env.KBSYNC_ADMIN_KEY = 'openapi-document-only-0123456789abcdef';
  const app = await createApp(loadConfig(env));
  try {
    await app.server.ready();
    fs.writeFileSync(out, `${JSON.stringify(app.server.swagger(), null, 2)}\n`);
  } finally {
    await app.close();
  }
} finally {
  fs.rmSync(dataDir, { recursive: true, force: true });
}
