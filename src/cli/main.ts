/**
 * The `kbsync` program (commander): server commands run in this process, the rest talk to a
 * server over the HTTP API. Every failure ends here and becomes an exit code (errors.ts).
 */
import { Command, CommanderError } from 'commander';
import { VERSION } from '../version.js';
import { dbCommand } from './commands/db.js';
import { jobsCommand } from './commands/jobs.js';
import { kbCommand } from './commands/kb.js';
import { keysCommand } from './commands/keys.js';
import { serverCommands } from './commands/server.js';
import { storeCommand } from './commands/store.js';
import { addApiOptions, addGlobalApiOptions, jsonMode } from './context.js';
import { CliError, describeError, EXIT } from './errors.js';

/** Commands that talk to a server: each gets --url/--api-key/--json after its name too. */
const API_GROUPS = ['jobs', 'kb', 'db'];

const FOOTER = `
Server and key: --url / KBSYNC_URL (default http://127.0.0.1:8000), --api-key / KBSYNC_API_KEY
(sent as Authorization: Bearer). They and --json go before or after the command.

Output: tables for people; --json prints the answer's data as JSON on stdout, and an error as
the error envelope {"success": false, "error": {code, message, details}} on stderr.

Exit codes: 0 ok · 1 the server answered with an error · 2 usage (bad command, option, file or
configuration) · 3 cannot connect (nothing or not kbsync at --url) · 4 jobs run --wait: the run
failed or was cancelled · 5 serve/demo: the port is in use (set PORT).

More: kbsync COMMAND --help, and docs/cli.md.`;

export function buildProgram(): Command {
  const program = new Command('kbsync')
    .description(`kbsync ${VERSION}: keep an AI knowledge base in sync with your tables`)
    .version(VERSION, '-V, --version')
    // Global options before the command are the program's; commands may repeat them (context.ts).
    .enablePositionalOptions()
    .exitOverride()
    .showHelpAfterError('(kbsync help, or the command with --help, lists the usage)')
    .configureHelp({ sortSubcommands: false, showGlobalOptions: false });
  addGlobalApiOptions(program);
  serverCommands(program);
  jobsCommand(program);
  kbCommand(program);
  dbCommand(program);
  keysCommand(program);
  storeCommand(program);
  for (const group of program.commands.filter((c) => API_GROUPS.includes(c.name()))) {
    for (const leaf of group.commands) addApiOptions(leaf);
  }
  program.addHelpText('after', () => `\nAll commands:\n${everyCommand(program)}\n${FOOTER}`);
  return program;
}

/** `kbsync jobs create --file <file>   description`, for every leaf command (options: its --help). */
function everyCommand(program: Command): string {
  const lines: Array<[string, string]> = [];
  const walk = (cmd: Command, prefix: string) => {
    for (const sub of cmd.commands) {
      const name = `${prefix} ${sub.name()}`;
      if (sub.commands.length > 0) walk(sub, name);
      else {
        const required = sub.options
          .filter((o) => o.mandatory)
          .map((o) => `${o.long} ${o.flags.split(' ').pop()}`);
        const args = sub.registeredArguments.map((a) => (a.required ? `<${a.name()}>` : `[${a.name()}]`));
        lines.push([[name, ...required, ...args].join(' '), sub.description()]);
      }
    }
  };
  walk(program, 'kbsync');
  const width = Math.min(48, Math.max(...lines.map(([l]) => l.length)));
  return lines
    .map(([usage, describe]) => `  ${usage.padEnd(width)}  ${describe.split(/[.;(]/)[0]!.trim()}`)
    .join('\n');
}

/** Runs the CLI on `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  let active: Command = program;
  program.hook('preAction', (_program, actionCommand) => {
    active = actionCommand;
  });
  if (argv.length === 0) {
    program.outputHelp();
    return EXIT.ok;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    return report(err, active);
  }
}

function report(err: unknown, command: Command): number {
  if (err instanceof CommanderError) {
    // Commander has printed its message (or the help) already.
    // Help asked for (kbsync help, --help) is 0; help shown for a missing subcommand is a usage error.
    return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  if (err instanceof CliError) {
    process.stderr.write(jsonMode(command) ? `${JSON.stringify(err.envelope)}\n` : `${describeError(err)}\n`);
    return err.exitCode;
  }
  // A bug: the message, and the stack only when asked for (LOG_LEVEL=debug).
  const debug = process.env.LOG_LEVEL?.trim().toLowerCase() === 'debug' && err instanceof Error;
  process.stderr.write(
    `kbsync: unexpected error: ${debug ? err.stack : err instanceof Error ? err.message : String(err)}\n`,
  );
  return EXIT.serverError;
}
