/** `kbsync db …`: list, add (register and test a connection), tables (and get, delete). */
import { type Command, Option } from 'commander';
import type { Database, Table } from '../api-types.js';
import { act } from '../context.js';
import { UsageError } from '../errors.js';
import { keyValues, table } from '../format.js';
import { seg } from '../http.js';
import { positiveInt } from './options.js';

interface AddOptions {
  engine: 'postgres' | 'mysql' | 'sqlite';
  url?: string;
  path?: string;
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
  schema?: string;
  ssl?: boolean;
}

export function dbCommand(program: Command): void {
  const db = program.command('db').description('source databases: register, list, look at tables');

  db.command('list')
    .description('list registered databases (passwords masked)')
    .action(
      act(async (ctx) => {
        const data = await ctx.client.get<{ databases: Database[] }>('/databases');
        ctx.emit(data, () =>
          data.databases.length === 0
            ? 'no databases (register one: kbsync db add NAME --engine postgres --url postgres://…)'
            : table(
                ['NAME', 'ENGINE', 'CONNECTION', 'CREATED'],
                data.databases.map((d) => [d.name, d.engine, connection(d), d.created_at]),
              ),
        );
      }),
    );

  db.command('get')
    .description('one registered database (password masked)')
    .argument('<name>', 'database name')
    .action(
      act(async (ctx, [name]) => {
        const d = await ctx.client.get<Database>(`/databases/${seg(name!)}`);
        ctx.emit(d, () =>
          keyValues([
            ['database', d.name],
            ['engine', d.engine],
            ...Object.entries(d.parameters),
            ['created', d.created_at],
          ]),
        );
      }),
    );

  db.command('add')
    .description('register a database; the server tests the connection before saving it')
    .argument('<name>', 'name used in source_table (NAME.table)')
    .addOption(
      new Option('-e, --engine <engine>', 'database engine')
        .choices(['postgres', 'mysql', 'sqlite'])
        .makeOptionMandatory(),
    )
    .option('--url <url>', 'connection URL (postgres://…, mysql://…)')
    .option('--path <path>', "sqlite: absolute path of the file on the server's machine")
    .option('--host <host>', 'host (instead of --url)')
    .option('--port <port>', 'port', positiveInt)
    .option('--user <user>', 'user')
    // From the environment too, so a password need not stand in the shell's history.
    .addOption(new Option('--password <password>', 'password').env('KBSYNC_DB_PASSWORD'))
    .option('--database <database>', 'database name on the server')
    .option('--schema <schema>', 'postgres: default schema (public)')
    .option('--ssl', 'connect with TLS')
    .addHelpText(
      'after',
      `
Examples:
  kbsync db add shop --engine postgres --url postgres://reader@db.internal:5432/shop
  kbsync db add crm --engine mysql --host 127.0.0.1 --user root --database crm
  kbsync db add orders --engine sqlite --path /srv/data/orders.db

Here --url is the database's: give the server's before the command (kbsync --url SERVER db add …)
or in KBSYNC_URL.`,
    )
    .action(
      act<AddOptions>(async (ctx, [name], o) => {
        // The global --url is the server's; this command's own --url shadows it (see main.ts).
        const parameters = {
          ...(o.url !== undefined ? { url: o.url } : {}),
          ...(o.path !== undefined ? { path: o.path } : {}),
          ...(o.host !== undefined ? { host: o.host } : {}),
          ...(o.port !== undefined ? { port: o.port } : {}),
          ...(o.user !== undefined ? { user: o.user } : {}),
          ...(o.password !== undefined ? { password: o.password } : {}),
          ...(o.database !== undefined ? { database: o.database } : {}),
          ...(o.schema !== undefined ? { schema: o.schema } : {}),
          ...(o.ssl ? { ssl: true } : {}),
        };
        if (Object.keys(parameters).length === 0) {
          throw new UsageError('db add needs connection parameters', [
            o.engine === 'sqlite' ? 'give --path FILE' : 'give --url URL, or --host/--port/--user/--database',
          ]);
        }
        const d = await ctx.client.post<Database>('/databases/create', {
          name,
          engine: o.engine,
          parameters,
        });
        ctx.emit(d, () => `database ${d.name} registered (${d.engine}, ${connection(d)}); connection tested`);
      }),
    );

  db.command('tables')
    .description('tables of a database with their columns, types and primary key')
    .argument('<name>', 'database name')
    .action(
      act(async (ctx, [name]) => {
        const data = await ctx.client.get<{ tables: Table[] }>(`/databases/${seg(name!)}/tables`);
        ctx.emit(data, () =>
          data.tables.length === 0
            ? `database ${name} has no tables kbsync can read`
            : data.tables
                .map((t) => {
                  const title = `${t.schema ? `${t.schema}.` : ''}${t.name}  primary key: ${t.primary_key?.join(', ') || '-'}`;
                  const columns = table(
                    ['COLUMN', 'TYPE', 'KIND', 'NULL'],
                    t.columns.map((c) => [
                      c.name,
                      c.type,
                      c.kind,
                      c.nullable === undefined ? null : c.nullable ? 'yes' : 'no',
                    ]),
                  );
                  return `${title}\n${columns.replace(/^/gm, '  ')}`;
                })
                .join('\n\n'),
        );
      }),
    );

  db.command('delete')
    .description('delete a registered database (refused while jobs use it)')
    .argument('<name>', 'database name')
    .action(
      act(async (ctx, [name]) => {
        const data = await ctx.client.delete<{ name: string }>(`/databases/${seg(name!)}`);
        ctx.emit(data, () => `database ${data.name} deleted`);
      }),
    );
}

/** Where a database is, without secrets (the server already masks the password). */
function connection(d: Database): string {
  const p = d.parameters;
  if (typeof p.url === 'string') return p.url;
  if (typeof p.path === 'string') return p.path;
  const where = `${p.host ?? '?'}${p.port ? `:${p.port}` : ''}`;
  return `${p.user ? `${p.user}@` : ''}${where}/${p.database ?? ''}`;
}
