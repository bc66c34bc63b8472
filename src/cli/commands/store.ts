/**
 * `kbsync store copy --to postgres://… [--schema NAME] [--json]`: admin, on the server's machine.
 * Copies the embedded store of KBSYNC_DATA_DIR into PostgreSQL without embedding anything again
 * (store/copy.ts), verifies the counts, and leaves the source as it was. Stop `kbsync serve` first:
 * a run in progress is refused.
 */
import fs from 'node:fs';
import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../../config.js';
import { UsageError } from '../errors.js';

interface CopyFlags {
  to: string;
  schema?: string;
  json?: boolean;
}

export function storeCommand(program: Command): void {
  const store = program.command('store').description("admin, on the server's machine: the store itself");
  store
    .command('copy')
    .description(
      'copy the embedded store of KBSYNC_DATA_DIR (databases, knowledge bases with their vectors, jobs with watermarks and history, accounts and keys) into an empty PostgreSQL store, without re-embedding; the source is left untouched',
    )
    .requiredOption('--to <url>', 'the PostgreSQL store: postgres://user:password@host:5432/database')
    .option('--schema <name>', 'schema of the target store (default KBSYNC_STORE_SCHEMA, else kbsync)')
    .option('--json', 'print what was copied as JSON')
    .action(async (flags: CopyFlags) => {
      await copy(flags);
    });
}

async function copy(flags: CopyFlags): Promise<void> {
  // Loaded here, not at the top: the API commands need none of the store's modules.
  const { openStores, storeFile } = await import('../../store/open-stores.js');
  const { copyStore, StoreCopyError } = await import('../../store/copy.js');
  let source: ReturnType<typeof loadConfig>;
  let target: ReturnType<typeof loadConfig>;
  try {
    const env = { ...process.env, KBSYNC_STORE_URL: '' };
    // The source: always the embedded file; searches are not needed, so no reader threads.
    source = loadConfig(env, { searchThreads: 0 });
    target = loadConfig(
      { ...env, KBSYNC_STORE_URL: flags.to, ...(flags.schema !== undefined ? { KBSYNC_STORE_SCHEMA: flags.schema } : {}) },
      { searchThreads: 0 },
    );
  } catch (err) {
    // The message names the option (--to is KBSYNC_STORE_URL) and never echoes the URL.
    if (err instanceof ConfigError) throw new UsageError(err.message.replace('KBSYNC_STORE_URL', '--to'));
    throw err;
  }
  if (!fs.existsSync(storeFile(source.dataDir))) {
    throw new UsageError(`no embedded store at ${storeFile(source.dataDir)}`, [
      'set KBSYNC_DATA_DIR to the data dir of the kbsync you are moving',
    ]);
  }
  const from = await openStores(source);
  try {
    const to = await openStores(target).catch((err: unknown) => {
      // Unreachable, refused, no pgvector: the message names the store with its password masked.
      throw new UsageError(err instanceof Error ? err.message : String(err));
    });
    try {
      const say = (line: string) => {
        if (!flags.json) process.stderr.write(`${line}\n`);
      };
      say(`copying ${from.location} into ${to.location}`);
      let lastDocuments = -1;
      const counts = await copyStore(
        { control: from.controlStore, vectors: from.vectorStore },
        { control: to.controlStore, vectors: to.vectorStore },
        {
          onProgress: (what, c) => {
            // One line per step, and per 10,000 documents within a knowledge base.
            if (what.startsWith('knowledge base ') && Math.floor(c.documents / 10_000) === Math.floor(lastDocuments / 10_000)) return;
            lastDocuments = c.documents;
            say(`  ${what}: ${c.documents} documents, ${c.chunks} chunks so far`);
          },
        },
      ).catch((err: unknown) => {
        if (err instanceof StoreCopyError) throw new UsageError(`store copy: ${err.message}`, err.details);
        throw err;
      });
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ source: from.location, target: to.location, copied: counts, verified: true })}\n`);
        return;
      }
      const rows = Object.entries(counts);
      const width = Math.max(...rows.map(([k]) => k.length));
      process.stdout.write(`${rows.map(([k, v]) => `${k.replace(/_/g, ' ').padEnd(width)}  ${v}`).join('\n')}\n`);
      say(
        [
          'verified: the target holds as many of each as the source; nothing was embedded again.',
          `Start kbsync on it with KBSYNC_STORE_URL (and KBSYNC_STORE_SCHEMA=${target.storeSchema}) and the same secret key:`,
          source.secretKey !== null
            ? 'KBSYNC_SECRET_KEY as set now (database passwords and API keys were copied encrypted with it).'
            : `KBSYNC_SECRET_KEY=$(cat ${source.dataDir}/secret.key) (database passwords and API keys were copied encrypted with it).`,
        ].join('\n'),
      );
    } finally {
      await to.close();
    }
  } finally {
    await from.close();
  }
}
