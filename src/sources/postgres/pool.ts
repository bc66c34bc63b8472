/**
 * A registered PostgreSQL database's connections (a pg.Pool, created on first use) and table
 * descriptions, shared by every run on it (SourcePool). Session settings, statement and lock
 * timeouts are set when a connection opens, so every connection of the pool carries them.
 */
import pg from 'pg';
import {
  type ConnectionParameters,
  DEFAULT_POOL_LIMITS,
  DEFAULT_SOURCE_LIMITS,
  type SourceConnector,
  type SourceLimits,
  type SourcePool,
  type SourcePoolLimits,
  SourceQueryCancelled,
} from '../port.js';
import { ConnectorUse, type InFlightQueries, TableCache } from '../shared.js';
import { PostgresConnector } from './connector.js';
import type { PgColumnExtra } from './sql.js';

export type PostgresParameters = Exclude<ConnectionParameters, { path: string }>;

// Stable text forms whatever the server's defaults: timestamptz in UTC, ISO dates, and
// shortest-exact floats (0 would round doubles to 15 digits and lose the watermark).
// Every query also runs under the configured statement and lock timeouts (SEMANTICS.md, "One
// configuration per run"): a table locked by another session fails the query, not the service.
const SESSION_OPTIONS = '-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=1';
const limitOptions = (limits: SourceLimits) =>
  `-c statement_timeout=${Math.round(limits.statementTimeoutMs)} -c lock_timeout=${Math.round(limits.lockTimeoutMs)}`;

// date, timestamp and timestamptz values come back as the server's text (ISO, UTC in this
// session), not as a JavaScript Date, which would drop microseconds and read a date or a naive
// timestamp in this process's time zone. Typed metadata is made from that text (core/typed-values.ts).
const TEXT_TYPE_OIDS = new Set([1082, 1114, 1184]);
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    TEXT_TYPE_OIDS.has(oid) && format !== 'binary'
      ? (text: string) => text
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

export class PostgresPool implements SourcePool {
  readonly engine = 'postgres' as const;
  readonly config: pg.PoolConfig;
  readonly defaultSchema: string;
  readonly secrets: (string | undefined)[];
  readonly tables: TableCache<PgColumnExtra>;
  readonly use = new ConnectorUse();
  private pool: pg.Pool | null = null;
  private closed = false;

  constructor(
    params: PostgresParameters,
    readonly limits: SourceLimits = DEFAULT_SOURCE_LIMITS,
    poolLimits: SourcePoolLimits = DEFAULT_POOL_LIMITS,
  ) {
    this.tables = new TableCache<PgColumnExtra>(poolLimits.describeMaxAgeMs);
    const common: pg.PoolConfig = {
      max: poolLimits.size,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: poolLimits.idleMs,
      // An idle pool must not keep a CLI or test process alive; close() still ends it.
      allowExitOnIdle: true,
      options: `${SESSION_OPTIONS} ${limitOptions(limits)}`,
      application_name: 'kbsync',
      types: TYPES,
      // The server's timeouts do nothing when the server (or the network) stops answering: the
      // client gives up too, a little after them, and keepalive notices a dead peer.
      query_timeout: clientDeadline(limits),
      keepAlive: true,
    };
    if ('url' in params) {
      // ssl: true asks for TLS even when the URL does not say sslmode (an explicit sslmode wins).
      this.config = { ...common, connectionString: params.url, ...(params.ssl ? { ssl: {} } : {}) };
      this.secrets = [passwordOfUrl(params.url)];
    } else {
      this.config = {
        ...common,
        host: params.host ?? 'localhost',
        port: params.port ?? 5432,
        user: params.user,
        password: params.password,
        database: params.database,
        ssl: params.ssl ? {} : undefined,
      };
      this.secrets = [params.password];
    }
    this.defaultSchema = params.schema ?? 'public';
  }

  /** `closesPool`: the connector owns this pool and closes it with itself (createSourceConnector). */
  connector(options: { closesPool?: boolean } = {}): SourceConnector {
    return new PostgresConnector(this, options.closesPool ?? false);
  }

  idleSince(): number | null {
    return this.use.idleSince();
  }

  private getPool(): pg.Pool {
    if (this.closed) throw new Error('PostgreSQL source connector is closed');
    if (this.pool === null) {
      const pool = new pg.Pool(this.config);
      // An idle client that loses its server emits on the pool; unheard, it would crash the
      // process. The next query checks out a fresh client and reports its own error.
      pool.on('error', () => {});
      this.pool = pool;
    }
    return this.pool;
  }

  /**
   * Runs `fn` on a pooled client whose backend `inFlight` knows while it runs (the connector's
   * cancel() targets it). A client that ran a query of a cancelled connector, or failed other
   * than with a server error, is closed rather than reused: a pg_cancel_backend still on its way
   * must never reach another run's query, nor a half-read answer the next one.
   */
  async withClient<T>(inFlight: InFlightQueries, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.getPool().connect();
    const pid = backendPid(client);
    if (pid !== null) inFlight.add(pid);
    let discard = false;
    try {
      if (inFlight.cancelled) throw new SourceQueryCancelled();
      return await fn(client);
    } catch (err) {
      discard = !isServerError(err);
      throw err;
    } finally {
      if (pid !== null) inFlight.delete(pid);
      client.release(discard || inFlight.cancelled ? true : undefined);
    }
  }

  /** pg_cancel_backend on these backends, from a connection of its own. */
  async cancelBackends(pids: number[]): Promise<void> {
    const client = new pg.Client({ ...this.config, connectionTimeoutMillis: 5_000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('SELECT pg_cancel_backend(pid) FROM unnest($1::int[]) AS pid', [pids]);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    this.closed = true;
    this.tables.clear();
    if (pool !== null) await pool.end();
  }
}

/** An error the server sent about a statement (a SQLSTATE code): the connection is still sound. */
function isServerError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && code !== '57P01';
}

function backendPid(client: unknown): number | null {
  const pid = (client as { processID?: unknown } | null)?.processID;
  return typeof pid === 'number' && Number.isSafeInteger(pid) ? pid : null;
}

function passwordOfUrl(url: string): string | undefined {
  try {
    const p = new URL(url).password;
    return p === '' ? undefined : decodeURIComponent(p);
  } catch {
    return undefined;
  }
}

/** How long the client waits for any answer: the server's own limits plus a margin. */
function clientDeadline(limits: SourceLimits): number {
  return Math.round(limits.statementTimeoutMs + limits.lockTimeoutMs + 5_000);
}
