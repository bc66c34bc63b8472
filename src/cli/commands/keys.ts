/**
 * `kbsync keys create --account NAME [--json]`: admin, on the server's machine. Opens the server's
 * store directly (no server needed): the one KBSYNC_STORE_URL names, else the file in
 * KBSYNC_DATA_DIR; and prints a new API key once.
 */
import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../../config.js';
import { UsageError } from '../errors.js';

export function keysCommand(program: Command): void {
  const keys = program
    .command('keys')
    .description("admin, on the server's machine: API keys in the local store");
  keys
    .command('create')
    .description(
      'a new API key for an account (created when missing) in the store of KBSYNC_DATA_DIR, printed once; it works when the server runs with KBSYNC_ADMIN_KEY set',
    )
    .requiredOption('--account <name>', 'account name')
    .option('--json', 'print {account_id, name, account_created, key_id, prefix, api_key} as JSON')
    .action(async (o: { account: string; json?: boolean }) => {
      await createKey(o.account, o.json === true);
    });
}

async function createKey(account: string, json: boolean): Promise<void> {
  // Loaded here, not at the top: the API commands need none of the store's modules.
  const { AccountService } = await import('../../accounts/service.js');
  const { AppError } = await import('../../core/errors.js');
  const { openControlStore } = await import('../../store/open-stores.js');
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
  // The same selection as the server's (store/open-stores.ts); `location` has any password masked.
  const { store, location } = await openControlStore(config);
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
        `${created ? 'created account' : 'account'} ${record.name} (${record.id}) in ${location}; new key ${key.record.id}, shown once:\n`,
      );
      process.stdout.write(`${key.key}\n`);
    }
  } catch (err) {
    if (err instanceof AppError) throw new UsageError(err.message, err.details);
    throw err;
  } finally {
    await store.close();
  }
}
