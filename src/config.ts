/**
 * The one config module: reads the environment, validates, fails fast with a message that says
 * what to set, and freezes. Every option, its default and its meaning are listed in OPTIONS, which
 * the README's configuration table mirrors.
 */
import path from 'node:path';

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** 32-byte key (hex or base64) or passphrase for secrets at rest; null = generate one into dataDir. */
  secretKey: string | null;
  /** Active (scheduled, running, paused) jobs allowed per account. */
  maxActiveJobs: number;
  /** Largest request body in bytes. */
  bodyLimitBytes: number;
  /** Run the scheduler in this process. */
  scheduler: boolean;
  /** Sync runs this process executes at once. */
  maxConcurrentRuns: number;
  /** Longest document content accepted through the documents API, in characters. */
  maxDocumentChars: number;
  /** Worker threads of the local embedding model; 0 = one per core. */
  localEmbeddingThreads: number;
}

interface OptionSpec {
  env: string;
  default: string;
  describe: string;
}

export const OPTIONS: readonly OptionSpec[] = [
  { env: 'HOST', default: '127.0.0.1', describe: 'Address the HTTP server binds to.' },
  { env: 'PORT', default: '8000', describe: 'TCP port of the HTTP server (1-65535).' },
  {
    env: 'KBSYNC_DATA_DIR',
    default: './data',
    describe: 'Folder for the embedded store (kbsync.db) and the generated secret key.',
  },
  { env: 'LOG_LEVEL', default: 'info', describe: 'fatal, error, warn, info, debug, trace or silent.' },
  {
    env: 'KBSYNC_SECRET_KEY',
    default: '(generated)',
    describe:
      'Key that encrypts database passwords and API keys at rest. Unset: a random key is generated into KBSYNC_DATA_DIR/secret.key (mode 0600).',
  },
  { env: 'KBSYNC_MAX_ACTIVE_JOBS', default: '100', describe: 'Active (scheduled, running, paused) jobs per account.' },
  { env: 'KBSYNC_BODY_LIMIT', default: '1048576', describe: 'Largest accepted request body, in bytes.' },
  { env: 'KBSYNC_SCHEDULER', default: 'on', describe: 'on: this process runs due jobs; off: API only.' },
  {
    env: 'KBSYNC_INSECURE_BIND',
    default: 'off',
    describe: 'on: allow a non-loopback HOST although the API has no authentication yet.',
  },
  { env: 'KBSYNC_MAX_CONCURRENT_RUNS', default: '2', describe: 'Sync runs this process executes at once.' },
  {
    env: 'KBSYNC_MAX_DOCUMENT_CHARS',
    default: '1000000',
    describe: 'Longest document content accepted by POST /knowledge_bases/{kb}/documents, in characters.',
  },
  {
    env: 'KBSYNC_LOCAL_EMBEDDING_THREADS',
    default: '0',
    describe: 'Worker threads of the local embedding model (each holds a copy, ~150 MB); 0 = one per core.',
  },
];

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function intOption(env: NodeJS.ProcessEnv, name: string, fallback: string, min: number, max: number): number {
  const raw = (env[name] ?? fallback).trim();
  const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name}=${JSON.stringify(raw)} is not valid: set ${name} to a whole number from ${min} to ${max}.`);
  }
  return value;
}

function boolOption(env: NodeJS.ProcessEnv, name: string, fallback: string): boolean {
  const raw = (env[name] ?? fallback).trim().toLowerCase();
  if (['on', 'true', '1', 'yes'].includes(raw)) return true;
  if (['off', 'false', '0', 'no'].includes(raw)) return false;
  throw new ConfigError(`${name}=${JSON.stringify(raw)} is not valid: set ${name} to on or off.`);
}

/** Builds the frozen configuration; `overrides` lets tests and the CLI set options directly. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Readonly<Config> {
  const host = (env.HOST ?? '127.0.0.1').trim();
  if (host === '') throw new ConfigError('HOST is empty: set HOST to an address such as 127.0.0.1.');
  // There are no API keys yet (API.md "Accounts and keys"): serving beyond this machine would
  // hand every database and knowledge base to anyone who can reach the port.
  const loopback = /^(127\.\d+\.\d+\.\d+|localhost|::1|\[::1\])$/i.test(host);
  if (!loopback && !boolOption(env, 'KBSYNC_INSECURE_BIND', 'off')) {
    throw new ConfigError(
      `HOST=${host} is not a loopback address and kbsync has no authentication yet: set HOST=127.0.0.1 (and put an authenticating proxy in front), or set KBSYNC_INSECURE_BIND=on to accept the risk.`,
    );
  }
  const logLevel = (env.LOG_LEVEL ?? 'info').trim().toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL=${JSON.stringify(logLevel)} is not valid: set LOG_LEVEL to one of ${LOG_LEVELS.join(', ')}.`);
  }
  const secret = env.KBSYNC_SECRET_KEY?.trim();
  if (secret !== undefined && secret !== '' && secret.length < 16) {
    throw new ConfigError('KBSYNC_SECRET_KEY is too short: set it to at least 16 characters (e.g. `openssl rand -hex 32`).');
  }
  const config: Config = {
    host,
    port: intOption(env, 'PORT', '8000', 1, 65535),
    dataDir: path.resolve(env.KBSYNC_DATA_DIR?.trim() || './data'),
    logLevel: logLevel as Config['logLevel'],
    secretKey: secret ? secret : null,
    maxActiveJobs: intOption(env, 'KBSYNC_MAX_ACTIVE_JOBS', '100', 1, 1_000_000),
    bodyLimitBytes: intOption(env, 'KBSYNC_BODY_LIMIT', '1048576', 1024, 1024 * 1024 * 1024),
    scheduler: boolOption(env, 'KBSYNC_SCHEDULER', 'on'),
    maxConcurrentRuns: intOption(env, 'KBSYNC_MAX_CONCURRENT_RUNS', '2', 1, 64),
    maxDocumentChars: intOption(env, 'KBSYNC_MAX_DOCUMENT_CHARS', '1000000', 1000, 100_000_000),
    localEmbeddingThreads: intOption(env, 'KBSYNC_LOCAL_EMBEDDING_THREADS', '0', 0, 64),
    ...overrides,
  };
  return Object.freeze(config);
}
