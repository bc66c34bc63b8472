/**
 * `kbsync keys create --account NAME [--json]`: admin, on the server's machine. Opens the store of
 * KBSYNC_DATA_DIR directly (no server needed) and prints a new API key once.
 */
import path from 'node:path';
import type { Command } from 'commander';
import { dataDirFrom } from '../../config.js';
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
  const { SqliteControlStore } = await import('../../store/sqlite/control-store.js');
  const { openSqliteFile } = await import('../../store/sqlite/open.js');
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
  } catch (err) {
    if (err instanceof AppError) throw new UsageError(err.message, err.details);
    throw err;
  } finally {
    await store.close();
  }
}
