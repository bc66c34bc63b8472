/**
 * The server in this process for `kbsync serve` / `kbsync demo`. Prints one human line when ready
 * (stderr; the JSON logs stay on stdout), and a clear message with exit code 5 when the port is
 * taken (no stack).
 */
import { DEFAULT_ACCOUNT } from '../api/auth.js';
import { createApp } from '../app.js';
import { type Config, ConfigError, loadConfig } from '../config.js';
import { demoCurl, demoJobBody, setUpDemo } from '../demo.js';
import { VERSION } from '../version.js';
import { CliError, EXIT } from './errors.js';
import { DEFAULT_URL } from './http.js';

class StartError extends CliError {
  override name = 'StartError';
  constructor(exitCode: number, code: string, message: string, details: string[] = []) {
    super(exitCode, { success: false, error: { code, message, details } });
  }
}

export async function serve(mode: 'serve' | 'demo'): Promise<void> {
  let config: Readonly<Config>;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) throw new StartError(EXIT.usage, 'CONFIG', err.message);
    throw err;
  }
  const app = await createApp(config);
  let address: string;
  try {
    if (mode === 'demo') await setUpDemo(app);
    address = await app.listen();
  } catch (err) {
    await app.close().catch(() => undefined);
    throw listenError(err, config);
  }
  app.logger.info({ address, dataDir: config.dataDir, mode }, `kbsync listening on ${address}`);
  process.stderr.write(`${readyLine(config, address)}\n`);
  if (mode === 'demo') {
    // A demo data dir used before may hold the job already: the curl would only answer DUPLICATE_JOB.
    const existing = await app.services.store.getJob(DEFAULT_ACCOUNT, 'sync_orders').catch(() => null);
    process.stderr.write(`${demoHelp(baseUrlOf(config, address), existing !== null)}\n`);
  }

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      app.logger.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await app.close();
}

/** A port in use or not ours to take says what to set; anything else goes on as it was. */
function listenError(err: unknown, config: Readonly<Config>): unknown {
  const code = (err as { code?: string } | null)?.code;
  if (code === 'EADDRINUSE') {
    return new StartError(
      EXIT.portInUse,
      'PORT_IN_USE',
      `port ${config.port} on ${config.host} is already in use`,
      [
        'another kbsync (or another program) is listening there: stop it, or',
        `set PORT to a free port, e.g. PORT=${config.port === 65535 ? 8001 : config.port + 1} kbsync serve`,
      ],
    );
  }
  if (code === 'EACCES') {
    return new StartError(
      EXIT.portInUse,
      'PORT_NOT_ALLOWED',
      `not allowed to listen on ${config.host}:${config.port}`,
      ['ports below 1024 need privileges: set PORT to 1024 or above (the default is 8000)'],
    );
  }
  if (code === 'EADDRNOTAVAIL') {
    return new StartError(
      EXIT.usage,
      'HOST_NOT_AVAILABLE',
      `${config.host} is not an address of this machine`,
      ['set HOST to one of its addresses, e.g. HOST=127.0.0.1'],
    );
  }
  return err;
}

/** Where a browser on this machine reaches the server (a wildcard bind is reached on loopback). */
export function baseUrlOf(config: Readonly<Config>, address: string): string {
  let port = String(config.port);
  try {
    port = new URL(address).port || port;
  } catch {
    // keep the configured port
  }
  const host = config.host;
  const linkHost =
    host === '0.0.0.0'
      ? '127.0.0.1'
      : host === '::' || host === '[::]'
        ? '[::1]'
        : host.includes(':') && !host.startsWith('[')
          ? `[${host}]`
          : host;
  return `http://${linkHost}:${port}`;
}

export function readyLine(config: Readonly<Config>, address: string): string {
  const base = baseUrlOf(config, address);
  return `kbsync ${VERSION} ready on ${base} — dashboard ${base}/ · API docs ${base}/docs · data ${config.dataDir}`;
}

function demoHelp(base: string, jobExists: boolean): string {
  const cli = base === DEFAULT_URL ? 'npx kbsync' : `npx kbsync --url ${base}`;
  const body = demoJobBody(Date.now());
  const create = jobExists
    ? [
        `demo: database orders_db, knowledge base orders_kb and job sync_orders exist from an earlier demo in this data dir (${cli} jobs get sync_orders).`,
      ]
    : [
        `demo: database orders_db (table orders) and knowledge base orders_kb are ready. Create the seed's job (first run at ${body.start_time} UTC, then every 10 minutes):`,
        '',
        demoCurl(base, body),
      ];
  return [
    ...create,
    '',
    'then, from another terminal:',
    `  ${cli} jobs list`,
    `  ${cli} jobs run sync_orders --wait`,
    `  ${cli} kb query orders_kb "something warm for camping in the snow"`,
  ].join('\n');
}
