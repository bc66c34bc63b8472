#!/usr/bin/env node
/** `kbsync serve | demo | help` */
import { createApp } from './app.js';
import { ConfigError, loadConfig, OPTIONS } from './config.js';
import { setUpDemo } from './demo.js';
import { VERSION } from './version.js';

const USAGE = `kbsync ${VERSION}: keep an AI knowledge base in sync with your tables

Usage:
  kbsync serve     start the HTTP API (and the scheduler)
  kbsync demo      serve with a sample database 'orders_db' and knowledge base 'orders_kb'
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

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`kbsync: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
