/**
 * Databases: the sources a job reads (`database` in `database.table`). Connections are tested
 * before they are saved; passwords are stored encrypted and never returned.
 */
import { type Clock, systemClock } from '../core/clock.js';
import { AppError, conflict, notFound, problemsToError, type Problem } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { createHash } from 'node:crypto';
import { formatTime } from '../core/time.js';
import { CreateDatabaseBody } from '../core/schemas.js';
import { issuesToProblems } from '../core/validation.js';
import type { SecretBox } from '../secrets/crypto.js';
import type { SourcePools } from '../sources/pools.js';
import type { ConnectionParameters, SourceConnector, SourceEngine, TableInfo } from '../sources/port.js';
import { allowedSqlitePath, SQLITE_PATH_REFUSED, type SqliteConfinement } from '../sources/sqlite/confine.js';
import type { ControlStore, DatabaseRecord } from '../store/port.js';

export type ConnectorFactory = (engine: SourceEngine, params: ConnectionParameters) => SourceConnector;

const MASK = '****';

/** Connection-URL query parameters that would replace the session settings kbsync sets. */
const SESSION_OVERRIDES = /^(options|statement_timeout|lock_timeout|query_timeout|idle_in_transaction_session_timeout|timezone)$/i;

function overriddenSetting(url: string): string | null {
  return [...new URL(url).searchParams.keys()].find((k) => SESSION_OVERRIDES.test(k)) ?? null;
}

/** Splits a connection URL's password out so the stored URL holds none. */
function splitUrlSecret(url: string): { url: string; password: string | null } | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return null;
  }
  // Drivers also read secrets from the query (`?password=`, `?sslpassword=`): refuse those rather
  // than store them in clear.
  if ([...parsed.searchParams.keys()].some((k) => /pass|secret|key/i.test(k))) return null;
  // A bad percent-escape (`%ZZ`) is the caller's typo, not a 500 (decodeURIComponent throws URIError).
  const decoded = (part: 'username' | 'password'): string | null => {
    if (!parsed[part]) return null;
    try {
      return decodeURIComponent(parsed[part]);
    } catch {
      throw new AppError('INVALID_REQUEST', 'Invalid database configuration', [
        `parameters.url: the ${part === 'password' ? 'password' : 'user name'} is not valid percent-encoding (write a literal % as %25)`,
      ]);
    }
  };
  decoded('username');
  const password = decoded('password');
  parsed.password = '';
  return { url: parsed.toString(), password };
}

function withUrlPassword(url: string, password: string): string {
  const parsed = new URL(url);
  parsed.password = encodeURIComponent(password);
  return parsed.toString();
}

export class DatabaseService {
  constructor(
    private readonly store: ControlStore,
    private readonly secrets: SecretBox,
    /** One pool per registered database, kept across runs (sources/pools.ts). */
    private readonly sources: SourcePools,
    private readonly clock: Clock = systemClock,
    /** The files a SQLite source may name (KBSYNC_SQLITE_ROOTS); unset: not checked here. */
    private readonly sqlite: SqliteConfinement | null = null,
  ) {}

  async create(accountId: string, body: unknown): Promise<DatabaseRecord> {
    const parsed = CreateDatabaseBody.safeParse(body, { reportInput: true });
    if (!parsed.success) throw problemsToError(issuesToProblems(parsed.error.issues), 'Invalid database configuration');
    const { name, engine, parameters } = parsed.data;

    const problems: Problem[] = [];
    const bad = (detail: string) => problems.push({ code: 'INVALID_REQUEST', detail });
    const stored: Record<string, unknown> = {};
    let password: string | null = null;
    if (engine === 'sqlite') {
      if (!parameters.path) bad('parameters.path is required for engine sqlite');
      // One message for every refusal (relative, NUL, outside the roots, inside the data dir, no
      // such file): the answer never tells whether a file exists. The connector checks again
      // when it opens the file.
      else if (this.sqlite !== null && allowedSqlitePath(parameters.path, this.sqlite) === null) bad(SQLITE_PATH_REFUSED);
      for (const k of Object.keys(parameters)) if (k !== 'path') bad(`parameters.${k} does not apply to engine sqlite`);
      stored.path = parameters.path;
    } else if (parameters.url !== undefined) {
      const split = splitUrlSecret(parameters.url);
      const scheme = engine === 'postgres' ? /^postgres(ql)?:$/ : /^(mysql|mariadb):$/;
      if (!split || !scheme.test(new URL(split.url).protocol)) {
        bad(
          `parameters.url must be a ${engine === 'postgres' ? 'postgres://' : 'mysql://'} URL, with any password in its user info (user:password@host), not in its query`,
        );
      } else if (overriddenSetting(split.url) !== null) {
        // The driver would let these replace the session settings kbsync runs sources under (its
        // statement and lock timeouts, UTC, exact float text): refused, not silently dropped.
        bad(`parameters.url: the query parameter '${overriddenSetting(split.url)}' cannot be set; kbsync sets the session's timeouts and options itself (see KBSYNC_SOURCE_STATEMENT_TIMEOUT_MS)`);
      } else {
        stored.url = split.url;
        password = split.password;
      }
      for (const k of Object.keys(parameters)) {
        if (k !== 'url' && k !== 'schema' && k !== 'ssl') bad(`parameters.${k} cannot be combined with parameters.url`);
      }
      if (parameters.schema !== undefined) stored.schema = parameters.schema;
      if (parameters.ssl !== undefined) stored.ssl = parameters.ssl;
    } else {
      if (!parameters.host) bad(`parameters.host (or parameters.url) is required for engine ${engine}`);
      if (!parameters.database) bad(`parameters.database is required for engine ${engine}`);
      if (parameters.path !== undefined) bad(`parameters.path applies only to engine sqlite`);
      if (parameters.schema !== undefined && engine !== 'postgres') bad('parameters.schema applies only to engine postgres');
      for (const k of ['host', 'port', 'user', 'database', 'schema', 'ssl'] as const) {
        if (parameters[k] !== undefined) stored[k] = parameters[k];
      }
      password = parameters.password ?? null;
    }
    if (problems.length > 0) throw problemsToError(problems, 'Invalid database configuration');

    const record: DatabaseRecord = {
      id: newId('db'),
      accountId,
      name,
      engine,
      parameters: stored,
      secret: password === null ? null : this.secrets.encrypt(password),
      createdAt: this.clock.now(),
    };
    if (await this.store.getDatabase(accountId, name)) throw duplicate(name);
    await this.test(record);
    if ((await this.store.insertDatabase(record)) === 'duplicate') throw duplicate(name);
    return record;
  }

  async get(accountId: string, name: string): Promise<DatabaseRecord> {
    const record = await this.store.getDatabase(accountId, name);
    if (!record) throw notFound('database', name);
    return record;
  }

  list(accountId: string): Promise<DatabaseRecord[]> {
    return this.store.listDatabases(accountId);
  }

  async delete(accountId: string, name: string): Promise<void> {
    const record = await this.get(accountId, name);
    // Refused in the same statement while a job uses it (no job can be left without its database).
    if (!(await this.store.deleteDatabase(accountId, name))) {
      const users = await this.store.countJobsUsingDatabase(accountId, name);
      if (users === 0) throw notFound('database', name);
      throw conflict('Database is in use', [`database '${name}' is used by ${users} job(s); delete them first`]);
    }
    // Its connections close now, not when they would have idled out.
    await this.sources.drop(record.id);
  }

  async tables(accountId: string, name: string): Promise<TableInfo[]> {
    const record = await this.get(accountId, name);
    return this.withConnector(record, async (c) => {
      try {
        return await c.listTables();
      } catch (err) {
        throw connectionFailed(name, err);
      }
    });
  }

  /**
   * Takes a connector from the database's pool (made on first use, with the decrypted secret),
   * runs `fn`, always closes the connector; the pool stays for the next run.
   */
  async withConnector<T>(record: DatabaseRecord, fn: (c: SourceConnector) => Promise<T>): Promise<T> {
    const connector = this.sources.connector(record.id, fingerprint(record), record.engine, () => this.connectionParameters(record));
    try {
      return await fn(connector);
    } finally {
      await connector.close().catch(() => undefined);
    }
  }

  /** The parameters a driver needs, secret included. Never log or return the result. */
  connectionParameters(record: DatabaseRecord): ConnectionParameters {
    const params = { ...record.parameters } as Record<string, unknown>;
    const password = record.secret === null ? undefined : this.secrets.decrypt(record.secret);
    if (password !== undefined) {
      if (typeof params.url === 'string') params.url = withUrlPassword(params.url, password);
      else params.password = password;
    }
    return params as ConnectionParameters;
  }

  /** The record as the API shows it: secrets masked. */
  static present(record: DatabaseRecord): Record<string, unknown> {
    const parameters = { ...record.parameters };
    if (record.secret !== null) {
      if (typeof parameters.url === 'string') parameters.url = withUrlPassword(parameters.url, MASK);
      else parameters.password = MASK;
    }
    return {
      name: record.name,
      engine: record.engine,
      parameters,
      created_at: formatTime(record.createdAt),
    };
  }

  /** A connection of its own, closed after: a database that fails its test leaves no pool behind. */
  private async test(record: DatabaseRecord): Promise<void> {
    const pool = this.sources.standalone(record.engine, this.connectionParameters(record));
    const c = pool.connector();
    try {
      await c.ping();
    } catch (err) {
      const password = record.secret === null ? null : this.secrets.decrypt(record.secret);
      throw connectionFailed(record.name, err, password);
    } finally {
      await c.close().catch(() => undefined);
      await pool.close().catch(() => undefined);
    }
  }
}

/** Identifies a database's connection settings, credentials included (never the secret in clear). */
function fingerprint(record: DatabaseRecord): string {
  return createHash('sha256').update(JSON.stringify([record.engine, record.parameters, record.secret])).digest('base64url');
}

const duplicate = (name: string) =>
  new AppError('DUPLICATE_DATABASE', 'Database already exists', [`a database named '${name}' already exists`]);

/** The driver's reason, without anything that could carry a secret beyond what the driver said. */
export function connectionFailed(name: string, err: unknown, secret: string | null = null): AppError {
  let reason = err instanceof Error ? err.message : String(err);
  if (secret) reason = reason.split(secret).join('****');
  return new AppError('CONNECTION_FAILED', 'Could not connect to the database', [`database '${name}': ${reason}`], {
    cause: err,
  });
}
