/**
 * `kbsync serve` and `kbsync demo` (the server itself is in cli/serve.ts, loaded only by these
 * two, so the API commands do not load the server's modules).
 */
import type { Command } from 'commander';
import { OPTIONS } from '../../config.js';

const CONFIG_HELP = `
Configuration (environment variables):
${OPTIONS.map((o) => `  ${o.env.padEnd(34)} ${o.describe} Default: ${o.default}`).join('\n')}`;

export function serverCommands(program: Command): void {
  program
    .command('serve')
    .description(
      'start the HTTP API and the scheduler (configuration: environment variables, in kbsync serve --help)',
    )
    .addHelpText('after', CONFIG_HELP)
    .action(async () => (await import('../serve.js')).serve('serve'));
  program
    .command('demo')
    .description(
      "serve with a sample SQLite database 'orders_db' (table orders) and a knowledge base 'orders_kb'",
    )
    .addHelpText('after', CONFIG_HELP)
    .action(async () => (await import('../serve.js')).serve('demo'));
}
