#!/usr/bin/env node
/** `kbsync serve | demo | keys create | help` */
import path from 'node:path';
import { AccountService } from './accounts/service.js';
import { createApp } from './app.js';
import { ConfigError, dataDirFrom, loadConfig, OPTIONS } from './config.js';
import { AppError } from './core/errors.js';
import { SqliteControlStore } from './store/sqlite/control-store.js';
import { openSqliteFile } from './store/sqlite/open.js';
import { setUpDemo } from './demo.js';
import { VERSION } from './version.js';

const USAGE = `kbsync ${VERSION}: keep an AI knowledge base in sync with your tables

Usage:
  kbsync serve     start the HTTP API (and the scheduler)
  kbsync demo      serve with a sample database 'orders_db' and knowledge base 'orders_kb'
  kbsync keys create --account NAME [--json]
                   admin, on the server's machine: a new API key for account NAME (created
                   when missing) in the store of KBSYNC_DATA_DIR, printed once; the key works
                   when the server runs with KBSYNC_ADMIN_KEY set
  kbsync help      this text

Configuration (environment variables):
${OPTIONS.map((o) => `  ${o.env.padEnd(32)} ${o.describe} Default: ${o.default}`).join('\n')}
`;

async function main(argv: string[]): Promise<number> {
  const command = argv[0] ?? 'help';
  if (command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command === '--version' || command === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  if (command === 'keys') return keysCommand(argv.slice(1));
  if (command !== 'serve' && command !== 'demo') {
    process.stderr.write(`unknown command '${command}'\n\n${USAGE}`);
    return 2;
  }
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`kbsync: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const app = await createApp(config);
  if (command === 'demo') {
    await setUpDemo(app);
    app.logger.info('demo ready: database orders_db (table orders), knowledge base orders_kb');
  }
  const address = await app.listen();
  app.logger.info({ address, dataDir: config.dataDir }, `kbsync listening on ${address}`);

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      app.logger.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await app.close();
  return 0;
}

/** `kbsync keys create --account NAME [--json]`: opens the store directly (no server needed). */
async function keysCommand(args: string[]): Promise<number> {
  const usage = 'usage: kbsync keys create --account NAME [--json]\n';
  let account: string | null = null;
  let json = false;
  const [sub, ...rest] = args;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    if (arg === '--json') json = true;
    else if (arg === '--account' && rest[i + 1] !== undefined) account = rest[++i]!;
    else if (arg.startsWith('--account=')) account = arg.slice('--account='.length);
    else {
      process.stderr.write(`kbsync: unknown argument '${arg}'\n${usage}`);
      return 2;
    }
  }
  if (sub !== 'create' || account === null) {
    process.stderr.write(usage);
    return 2;
  }
  const dataDir = dataDirFrom();
  const store = new SqliteControlStore(openSqliteFile(path.join(dataDir, 'kbsync.db')), { ownsDb: true });
  try {
    const accounts = new AccountService(store);
    const { account: record, created } = await accounts.ensure(account);
    const { key } = await accounts.createKey(record.id);
    if (json) {
      process.stdout.write(
        `${JSON.stringify({ account_id: record.id, name: record.name, account_created: created, key_id: key.record.id, prefix: key.record.prefix, api_key: key.key })}\n`,
      );
    } else {
      process.stderr.write(
        `${created ? 'created account' : 'account'} ${record.name} (${record.id}) in ${dataDir}; new key ${key.record.id}, shown once:\n`,
      );
      process.stdout.write(`${key.key}\n`);
    }
    return 0;
  } catch (err) {
    if (err instanceof AppError) {
      process.stderr.write(`kbsync: ${err.message}: ${err.details.join('; ')}\n`);
      return 2;
    }
    throw err;
  } finally {
    await store.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`kbsync: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
