/**
 * The one config module: reads the environment, validates, fails fast with a message that says
 * what to set, and freezes. Every option, its default and its meaning are listed in OPTIONS, which
 * the README's configuration table mirrors.
 */
import path from 'node:path';
import { SCHEMA_PATTERN } from './store/postgres/open.js';
import type { EmbeddingHostPolicy } from './core/embedding-hosts.js';

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
  /**
   * Due jobs this process checks at once for anything new (one source query each); a check that
   * finds nothing records its run in one write, one that finds rows waits for a run slot.
   */
  maxConcurrentChecks: number;
  /** Connections at most per registered source database (one pool each, kept across runs). */
  sourcePoolSize: number;
  /** A source connection unused this long is closed, and a database's pool unused this long too, in ms. */
  sourceIdleMs: number;
  /** Longest document content accepted through the documents API, in characters. */
  maxDocumentChars: number;
  /** Worker threads of the local embedding model; 0 = one per core. */
  localEmbeddingThreads: number;
  /** Knowledge-base queries this process runs at once; more wait in a queue (admission control). */
  maxConcurrentQueries: number;
  /** Queries allowed to wait for a slot; beyond that: 429 RATE_LIMITED. */
  queryQueue: number;
  /** Longest wait for a query slot, in ms; then 429 RATE_LIMITED. */
  queryQueueWaitMs: number;
  /** Document writes (POST /knowledge_bases/{kb}/documents) this process runs at once. */
  maxConcurrentWrites: number;
  /** Document writes allowed to wait for a slot. */
  writeQueue: number;
  /** Longest wait for a document-write slot, in ms. */
  writeQueueWaitMs: number;
  /** Requests per minute per client key (a burst of as many); 0 = no rate limit. */
  rateLimitPerMinute: number;
  /** Knowledge-base creation probes a remote embedding provider once, for at most this many ms. */
  embeddingProbeTimeoutMs: number;
  /** Threads that run searches off the event loop; 0 = on the main thread. */
  searchThreads: number;
  /** Knowledge bases with at least this many chunks search the vector index (rescored exactly); smaller ones scan exactly. */
  vectorIndexMinChunks: number;
  /** Nice value of the search and local-embedding worker threads (0-19). */
  workerNice: number;
  /** KBSYNC_ADMIN_KEY: set = authentication on (API keys required, admin routes use this key); null = off. */
  adminKey: string | null;
  /** Longest a source query may run, in ms (statement_timeout, max_statement_time, MAX_EXECUTION_TIME). */
  sourceStatementTimeoutMs: number;
  /** Longest a source query may wait for a lock, in ms (lock_timeout, lock_wait_timeout; SQLite busy timeout, at most 5 s). */
  sourceLockTimeoutMs: number;
  /** Longest shutdown waits for runs to stop before abandoning them to start-up recovery, in ms. */
  shutdownTimeoutMs: number;
  /** Life of a run's claim and of a process's heartbeat, in ms (renewed every third of it); a lapsed one is taken over. */
  leaseTtlMs: number;
  /**
   * Folders a SQLite source may be in (absolute; `DIR/*`: files directly in DIR only); empty: no
   * SQLite source. Never the data dir itself (src/sources/sqlite/confine.ts).
   */
  sqliteRoots: readonly string[];
  /**
   * KBSYNC_STORE_URL: the scale-out store, a postgres:// URL (PostgreSQL with pgvector); null = the
   * embedded SQLite store in dataDir (store/open-stores.ts selects). May hold a password: never logged.
   */
  storeUrl: string | null;
  /** KBSYNC_STORE_SCHEMA: the schema kbsync keeps its tables in, on the scale-out store. */
  storeSchema: string;
  /** Connections at most of each of the scale-out store's two pools (control plane; vectors and searches). */
  storePoolSize: number;
  /** Longest a scale-out store statement may run or wait for a lock, in ms (statement_timeout). */
  storeStatementTimeoutMs: number;
  /** Hosts a knowledge base's embedding.base_url may name (core/embedding-hosts.ts). */
  embeddingHosts: EmbeddingHostPolicy;
}

/**
 * KBSYNC_SQLITE_ROOTS when unset. With authentication on: none (a client must not name files on
 * the server). Without (loopback only): the data dir's `sources/` folder, the demo's folder and
 * the files directly in the current directory (not its subfolders: a service started in `/`
 * would otherwise open every file).
 */
export function defaultSqliteRoots(dataDir: string, authOn: boolean, cwd: string = process.cwd()): string[] {
  if (authOn) return [];
  return [path.join(dataDir, 'sources'), path.join(dataDir, 'demo'), path.join(cwd, '*')];
}

/** KBSYNC_SQLITE_ROOTS: absolute folders separated by the path delimiter (`:`); `none` or empty: no SQLite sources. */
function sqliteRootsOption(env: NodeJS.ProcessEnv, dataDir: string, authOn: boolean): string[] {
  const raw = env.KBSYNC_SQLITE_ROOTS;
  if (raw === undefined) return defaultSqliteRoots(dataDir, authOn);
  const trimmed = raw.trim();
  if (trimmed === '' || trimmed.toLowerCase() === 'none') return [];
  const roots = trimmed.split(path.delimiter).map((r) => r.trim()).filter((r) => r !== '');
  const bad = roots.find((r) => !path.isAbsolute(r) || r.includes('\0'));
  if (bad !== undefined) {
    throw new ConfigError(
      `KBSYNC_SQLITE_ROOTS=${JSON.stringify(raw)} is not valid: ${JSON.stringify(bad)} is not an absolute path; list absolute folders separated by '${path.delimiter}' (DIR/* for the files directly in DIR), or set it to none.`,
    );
  }
  return roots.map((r) => (r.endsWith(`${path.sep}*`) ? path.join(path.resolve(r.slice(0, -2) || path.sep), '*') : path.resolve(r)));
}

function embeddingHostsOption(env: NodeJS.ProcessEnv, authOn: boolean): EmbeddingHostPolicy {
  const raw = env.KBSYNC_EMBEDDING_HOSTS?.trim();
  if (raw === undefined || raw === '') return authOn ? { kind: 'public' } : { kind: 'any' };
  if (raw === '*') return { kind: 'any' };
  const hosts = raw.split(',').map((h) => h.trim()).filter((h) => h !== '');
  const bad = hosts.find((h) => !/^(\*\.)?[a-z0-9.\-]+(:\d{1,5})?$|^\[[0-9a-f:.]+\](:\d{1,5})?$/i.test(h));
  if (bad !== undefined) {
    throw new ConfigError(
      `KBSYNC_EMBEDDING_HOSTS=${JSON.stringify(raw)} is not valid: ${JSON.stringify(bad)} is not a host; list hosts separated by commas (api.openai.com, llm.internal:8080, *.example.com), or * for any.`,
    );
  }
  return { kind: 'list', hosts };
}

/** Shortest accepted KBSYNC_ADMIN_KEY. */
export const MIN_ADMIN_KEY_CHARS = 24;

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
  {
    env: 'KBSYNC_STORE_URL',
    default: '(unset)',
    describe:
      'postgres://user:password@host:5432/database of the scale-out store (PostgreSQL 13+ with pgvector 0.8+, UTF8): control plane and vectors in PostgreSQL, shared by any number of kbsync processes (give them all the same KBSYNC_SECRET_KEY). Unset: the embedded SQLite store in KBSYNC_DATA_DIR. The password is never logged nor shown.',
  },
  {
    env: 'KBSYNC_STORE_SCHEMA',
    default: 'kbsync',
    describe: 'Schema of the scale-out store (created if missing): 1-63 lower-case letters, digits and _, not starting with a digit.',
  },
  {
    env: 'KBSYNC_STORE_POOL_SIZE',
    default: '5',
    describe:
      'Connections at most of each of the two pools a process opens on the scale-out store (1-100): one for the control plane, one for vectors and searches, so checkpoints and /health never wait behind searches.',
  },
  {
    env: 'KBSYNC_STORE_STATEMENT_TIMEOUT_MS',
    default: '30000',
    describe:
      'Longest a statement on the scale-out store may run or wait for a lock, and a session may sit idle in a transaction, in ms (100-3600000): a stuck store fails the request or run instead of wedging the process. Migrations at start-up are not bounded.',
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
    env: 'KBSYNC_ADMIN_KEY',
    default: '(unset)',
    describe:
      'Set (at least 24 characters, e.g. `openssl rand -base64 32`): authentication on; every route but /health needs an API key, admin routes (/accounts) this key, and any HOST is allowed. Unset: one default account without keys, loopback only.',
  },
  {
    env: 'KBSYNC_INSECURE_BIND',
    default: 'off',
    describe: 'on: allow a non-loopback HOST without authentication (KBSYNC_ADMIN_KEY unset).',
  },
  { env: 'KBSYNC_MAX_CONCURRENT_RUNS', default: '2', describe: 'Sync runs this process executes at once.' },
  {
    env: 'KBSYNC_MAX_CONCURRENT_CHECKS',
    default: '16',
    describe:
      'Due jobs checked at once for anything new (1-256): one source query each; a check that finds nothing records its run in one write without taking a run slot, one that finds rows waits for a run slot.',
  },
  {
    env: 'KBSYNC_SOURCE_POOL_SIZE',
    default: '4',
    describe: 'Connections at most per registered source database (1-100); each database keeps one pool across runs.',
  },
  {
    env: 'KBSYNC_SOURCE_IDLE_MS',
    default: '300000',
    describe: 'A source connection unused this long is closed, and so is a database pool no run has used this long, in ms (1000-86400000).',
  },
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
  {
    env: 'KBSYNC_MAX_CONCURRENT_QUERIES',
    default: '4',
    describe: 'Knowledge-base queries this process runs at once (1-256); more wait in a queue.',
  },
  {
    env: 'KBSYNC_QUERY_QUEUE',
    default: '64',
    describe: 'Queries allowed to wait for a slot (0-10000); beyond that the answer is 429 RATE_LIMITED with Retry-After.',
  },
  {
    env: 'KBSYNC_QUERY_QUEUE_WAIT_MS',
    default: '1000',
    describe: 'Longest a query waits for a slot, in ms (1-60000); a query still waiting then is answered 429 RATE_LIMITED.',
  },
  { env: 'KBSYNC_MAX_CONCURRENT_WRITES', default: '2', describe: 'Document writes (POST /knowledge_bases/{kb}/documents) run at once (1-256).' },
  { env: 'KBSYNC_WRITE_QUEUE', default: '16', describe: 'Document writes allowed to wait for a slot (0-10000); beyond that 429 RATE_LIMITED.' },
  { env: 'KBSYNC_WRITE_QUEUE_WAIT_MS', default: '5000', describe: 'Longest a document write waits for a slot, in ms (1-600000).' },
  {
    env: 'KBSYNC_SEARCH_THREADS',
    default: '2',
    describe:
      'Worker threads that run knowledge-base searches (vector and keyword) on their own read-only connections, so a heavy search never blocks other requests (0-64; 0 = on the main thread).',
  },
  {
    env: 'KBSYNC_EMBEDDING_HOSTS',
    default: '',
    describe:
      "Hosts a knowledge base's embedding.base_url may name, comma-separated (api.openai.com, llm.internal:8080, *.example.com; * = any). Unset: any host without authentication; with it, any but localhost and literal private, loopback and link-local addresses.",
  },
  {
    env: 'KBSYNC_WORKER_NICE',
    default: '10',
    describe:
      'Scheduling priority (nice, 0-19) of the search and local-embedding worker threads: above 0 the thread that answers HTTP requests, /health included, gets the CPU first when they compete (Linux; ignored elsewhere). The local model\'s query worker stays at the main thread\'s priority, so a search\'s embedding goes before a sync\'s.',
  },
  {
    env: 'KBSYNC_VECTOR_INDEX_MIN_CHUNKS',
    default: '20000',
    describe:
      'Knowledge bases with at least this many chunks answer semantic queries from a binary-quantized vector index whose candidates are rescored exactly (recall@10 0.97 measured at 100k chunks, 0.86 at 1M; ~7x faster at 100k); smaller ones scan every vector exactly (0-1000000000; 0 = always the index, 1000000000 = never). The index is kept up to date either way.',
  },
  {
    env: 'KBSYNC_EMBEDDING_PROBE_TIMEOUT_MS',
    default: '10000',
    describe:
      'Creating a knowledge base with the openai provider sends one probe request (no retries); a provider that has not answered within this many ms (100-120000) fails the creation with CONNECTION_FAILED.',
  },
  {
    env: 'KBSYNC_RATE_LIMIT_PER_MINUTE',
    default: '6000',
    describe:
      'Requests per minute per client (its API key when auth is on, else its address): a burst of as many, refilled continuously; beyond it 429 RATE_LIMITED with Retry-After. /health and /metrics are never limited. 0 = off.',
  },
  {
    env: 'KBSYNC_SOURCE_STATEMENT_TIMEOUT_MS',
    default: '60000',
    describe:
      'Longest a query on a source database may run, in ms (100-86400000): PostgreSQL statement_timeout, MariaDB max_statement_time, MySQL MAX_EXECUTION_TIME. The run then fails with SOURCE_TIMEOUT; the job stays scheduled.',
  },
  {
    env: 'KBSYNC_SOURCE_LOCK_TIMEOUT_MS',
    default: '10000',
    describe:
      'Longest a source query may wait for a lock another session holds, in ms (100-3600000): PostgreSQL lock_timeout, MySQL/MariaDB lock_wait_timeout and innodb_lock_wait_timeout (whole seconds), SQLite busy timeout (at most 5000). The run then fails with SOURCE_TIMEOUT.',
  },
  {
    env: 'KBSYNC_SHUTDOWN_TIMEOUT_MS',
    default: '10000',
    describe: 'On SIGTERM/SIGINT, how long to wait for runs to stop (their source queries are cancelled) before abandoning them, in ms (0-600000); an abandoned run is closed as INTERRUPTED at the next start.',
  },
  {
    env: 'KBSYNC_LEASE_TTL_MS',
    default: '30000',
    describe:
      "Life of a run's claim and of a process's heartbeat in a fleet, in ms (1000-600000), renewed every third of it: a process that dies or stalls this long loses its runs, and another process resumes them from their last checkpoint (docs/operations.md, \"Running a fleet\").",
  },
  {
    env: 'KBSYNC_SQLITE_ROOTS',
    default: '(see docs)',
    describe:
      "Folders SQLite sources may be in, absolute, separated by ':' (DIR/* = only the files directly in DIR); none = no SQLite sources. Unset: none when KBSYNC_ADMIN_KEY is set, else KBSYNC_DATA_DIR/sources, KBSYNC_DATA_DIR/demo and the files of the current directory. The data dir itself (kbsync.db, secret.key) is never allowed.",
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

/** KBSYNC_STORE_URL: a postgres:// or postgresql:// URL, or null when unset. Messages never echo it (it may hold a password). */
function storeUrlOption(env: NodeJS.ProcessEnv): string | null {
  const raw = env.KBSYNC_STORE_URL?.trim() ?? '';
  if (raw === '') return null;
  let url: URL | null = null;
  try {
    url = new URL(raw);
  } catch {
    // reported below
  }
  if (url === null || !['postgres:', 'postgresql:'].includes(url.protocol) || url.hostname === '') {
    throw new ConfigError(
      'KBSYNC_STORE_URL is not valid: set it to a postgres://user:password@host:5432/database URL, or leave it unset for the embedded SQLite store.',
    );
  }
  return raw;
}

function storeSchemaOption(env: NodeJS.ProcessEnv): string {
  const schema = (env.KBSYNC_STORE_SCHEMA ?? 'kbsync').trim();
  if (!SCHEMA_PATTERN.test(schema)) {
    throw new ConfigError(
      `KBSYNC_STORE_SCHEMA=${JSON.stringify(schema)} is not valid: set it to 1-63 lower-case letters, digits and _, not starting with a digit (default kbsync).`,
    );
  }
  return schema;
}

/** KBSYNC_DATA_DIR, absolute (also for commands that need nothing else, like `kbsync keys create`). */
export function dataDirFrom(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.KBSYNC_DATA_DIR?.trim() || './data');
}

/** Builds the frozen configuration; `overrides` lets tests and the CLI set options directly. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Readonly<Config> {
  const host = (env.HOST ?? '127.0.0.1').trim();
  if (host === '') throw new ConfigError('HOST is empty: set HOST to an address such as 127.0.0.1.');
  // Without KBSYNC_ADMIN_KEY there are no API keys (API.md "Accounts and keys"): serving beyond
  // this machine would hand every database and knowledge base to anyone who can reach the port.
  const adminKey = env.KBSYNC_ADMIN_KEY?.trim() || null;
  if (adminKey !== null && adminKey.length < MIN_ADMIN_KEY_CHARS) {
    throw new ConfigError(
      `KBSYNC_ADMIN_KEY is too short (${adminKey.length} characters): set it to at least ${MIN_ADMIN_KEY_CHARS} random characters (e.g. \`openssl rand -base64 32\`).`,
    );
  }
  const loopback = /^(127\.\d+\.\d+\.\d+|localhost|::1|\[::1\])$/i.test(host);
  if (!loopback && adminKey === null && !boolOption(env, 'KBSYNC_INSECURE_BIND', 'off')) {
    throw new ConfigError(
      `HOST=${host} is not a loopback address and kbsync has no authentication yet: set HOST=127.0.0.1 (and put an authenticating proxy in front), set KBSYNC_ADMIN_KEY to require API keys, or set KBSYNC_INSECURE_BIND=on to accept the risk.`,
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
    dataDir: dataDirFrom(env),
    logLevel: logLevel as Config['logLevel'],
    secretKey: secret ? secret : null,
    maxActiveJobs: intOption(env, 'KBSYNC_MAX_ACTIVE_JOBS', '100', 1, 1_000_000),
    bodyLimitBytes: intOption(env, 'KBSYNC_BODY_LIMIT', '1048576', 1024, 1024 * 1024 * 1024),
    scheduler: boolOption(env, 'KBSYNC_SCHEDULER', 'on'),
    maxConcurrentRuns: intOption(env, 'KBSYNC_MAX_CONCURRENT_RUNS', '2', 1, 64),
    maxConcurrentChecks: intOption(env, 'KBSYNC_MAX_CONCURRENT_CHECKS', '16', 1, 256),
    sourcePoolSize: intOption(env, 'KBSYNC_SOURCE_POOL_SIZE', '4', 1, 100),
    sourceIdleMs: intOption(env, 'KBSYNC_SOURCE_IDLE_MS', '300000', 1000, 86_400_000),
    maxDocumentChars: intOption(env, 'KBSYNC_MAX_DOCUMENT_CHARS', '1000000', 1000, 100_000_000),
    localEmbeddingThreads: intOption(env, 'KBSYNC_LOCAL_EMBEDDING_THREADS', '0', 0, 64),
    maxConcurrentQueries: intOption(env, 'KBSYNC_MAX_CONCURRENT_QUERIES', '4', 1, 256),
    queryQueue: intOption(env, 'KBSYNC_QUERY_QUEUE', '64', 0, 10_000),
    queryQueueWaitMs: intOption(env, 'KBSYNC_QUERY_QUEUE_WAIT_MS', '1000', 1, 60_000),
    maxConcurrentWrites: intOption(env, 'KBSYNC_MAX_CONCURRENT_WRITES', '2', 1, 256),
    writeQueue: intOption(env, 'KBSYNC_WRITE_QUEUE', '16', 0, 10_000),
    writeQueueWaitMs: intOption(env, 'KBSYNC_WRITE_QUEUE_WAIT_MS', '5000', 1, 600_000),
    rateLimitPerMinute: intOption(env, 'KBSYNC_RATE_LIMIT_PER_MINUTE', '6000', 0, 100_000_000),
    embeddingProbeTimeoutMs: intOption(env, 'KBSYNC_EMBEDDING_PROBE_TIMEOUT_MS', '10000', 100, 120_000),
    searchThreads: intOption(env, 'KBSYNC_SEARCH_THREADS', '2', 0, 64),
    vectorIndexMinChunks: intOption(env, 'KBSYNC_VECTOR_INDEX_MIN_CHUNKS', '20000', 0, 1_000_000_000),
    workerNice: intOption(env, 'KBSYNC_WORKER_NICE', '10', 0, 19),
    adminKey,
    sourceStatementTimeoutMs: intOption(env, 'KBSYNC_SOURCE_STATEMENT_TIMEOUT_MS', '60000', 100, 86_400_000),
    sourceLockTimeoutMs: intOption(env, 'KBSYNC_SOURCE_LOCK_TIMEOUT_MS', '10000', 100, 3_600_000),
    shutdownTimeoutMs: intOption(env, 'KBSYNC_SHUTDOWN_TIMEOUT_MS', '10000', 0, 600_000),
    leaseTtlMs: intOption(env, 'KBSYNC_LEASE_TTL_MS', '30000', 1000, 600_000),
    sqliteRoots: [],
    storeUrl: storeUrlOption(env),
    storeSchema: storeSchemaOption(env),
    storePoolSize: intOption(env, 'KBSYNC_STORE_POOL_SIZE', '5', 1, 100),
    storeStatementTimeoutMs: intOption(env, 'KBSYNC_STORE_STATEMENT_TIMEOUT_MS', '30000', 100, 3_600_000),
    embeddingHosts: { kind: 'any' },
    ...overrides,
  };
  // After the overrides: the default roots follow the data dir and authentication finally chosen.
  if (overrides.sqliteRoots === undefined) config.sqliteRoots = sqliteRootsOption(env, config.dataDir, config.adminKey !== null);
  if (overrides.embeddingHosts === undefined) config.embeddingHosts = embeddingHostsOption(env, config.adminKey !== null);
  return Object.freeze(config);
}
