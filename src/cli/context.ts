/**
 * What every API command receives: the client built from the API options (--url, --api-key) and
 * the output mode (--json: the envelope's `data` as JSON on stdout; otherwise text).
 *
 * The API options may stand before the command (`kbsync --json jobs list`, the program's own,
 * which also read KBSYNC_URL / KBSYNC_API_KEY and the defaults) or after it (`kbsync jobs list
 * --json`, added to each API command by `addApiOptions`); the one nearer the command wins.
 * `db add` has a --url of its own (the database's), so there the server URL goes before the
 * command or in KBSYNC_URL.
 */
import { type Command, Option } from 'commander';
import { ApiClient, DEFAULT_URL } from './http.js';

export interface Context {
  client: ApiClient;
  json: boolean;
  /** Prints `data` as JSON with --json, else what `human` returns (both on stdout). */
  emit(data: unknown, human: () => string): void;
  /** Text for people only (progress, hints): stderr, and nothing with --json. */
  note(text: string): void;
}

/** Commands whose `--url` is the server's (not `db add`, whose --url is the database's). */
const serverUrlCommands = new WeakSet<Command>();

/** The program's API options, read from the environment when not given. */
export function addGlobalApiOptions(program: Command): void {
  program
    .addOption(new Option('--url <url>', 'kbsync server URL').env('KBSYNC_URL').default(DEFAULT_URL))
    .addOption(
      new Option(
        '--api-key <key>',
        'API key, sent as Authorization: Bearer (needed when the server has KBSYNC_ADMIN_KEY)',
      ).env('KBSYNC_API_KEY'),
    )
    .option(
      '--json',
      "machine output: the answer's data as JSON on stdout; errors as the error envelope on stderr",
    );
  serverUrlCommands.add(program);
}

/** The same options after the command (no env/defaults here: the program's hold them). */
export function addApiOptions(command: Command): void {
  const names = new Set(command.options.map((o) => o.long));
  if (!names.has('--url')) {
    command.option('--url <url>', 'kbsync server URL (default: KBSYNC_URL or http://127.0.0.1:8000)');
    serverUrlCommands.add(command);
  }
  if (!names.has('--api-key')) command.option('--api-key <key>', 'API key (default: KBSYNC_API_KEY)');
  if (!names.has('--json')) command.option('--json', 'machine output (see kbsync help)');
}

function nearest<T>(
  command: Command,
  key: string,
  allowed: (c: Command) => boolean = () => true,
): T | undefined {
  for (let c: Command | null = command; c; c = c.parent) {
    if (!allowed(c)) continue;
    const value = c.getOptionValue(key) as T | undefined;
    if (value !== undefined) return value;
  }
  return undefined;
}

/** Whether --json was given before or after the command. */
export const jsonMode = (command: Command) => nearest<boolean>(command, 'json') === true;

export function contextOf(command: Command): Context {
  const json = jsonMode(command);
  const url = nearest<string>(command, 'url', (c) => serverUrlCommands.has(c)) ?? DEFAULT_URL;
  const apiKey = nearest<string>(command, 'apiKey');
  return {
    client: new ApiClient({ url, apiKey }),
    json,
    emit(data, human) {
      process.stdout.write(json ? `${JSON.stringify(data, null, 2)}\n` : `${human()}\n`);
    },
    note(text) {
      if (!json) process.stderr.write(`${text}\n`);
    },
  };
}

/**
 * Wraps a command's handler: commander passes (arguments…, options, command); the handler gets
 * the context, the positional arguments and the command's own options.
 */
export function act<O = Record<string, unknown>>(
  handler: (ctx: Context, args: string[], options: O) => Promise<void>,
): (...all: unknown[]) => Promise<void> {
  return async (...all) => {
    const command = all[all.length - 1] as Command;
    await handler(contextOf(command), command.processedArgs as string[], command.opts() as O);
  };
}
