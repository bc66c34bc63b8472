/** The one place a source engine name becomes an adapter. */
import { AppError } from '../core/errors.js';
import { MysqlPool } from './mysql/pool.js';
import {
  type ConnectionParameters,
  DEFAULT_POOL_LIMITS,
  DEFAULT_SOURCE_LIMITS,
  type SourceConnector,
  type SourceEngine,
  type SourceLimits,
  type SourcePool,
  type SourcePoolLimits,
} from './port.js';
import { PostgresPool } from './postgres/pool.js';
import type { SqliteConfinement } from './sqlite/confine.js';
import { SqlitePool } from './sqlite/pool.js';

/** What the composition root (app.ts) gives every connector, from the configuration. */
export interface SourceOptions {
  /** Statement and lock timeouts of every query (SQLite: the lock timeout is the busy timeout). */
  limits?: SourceLimits;
  /** Connections per pool, their idle time, the age of table descriptions. */
  pool?: SourcePoolLimits;
  /** The files a SQLite source may open; unset: any (callers that check paths themselves, tests). */
  sqlite?: SqliteConfinement;
}

/** Builds a pool without connecting; a connector's first query is the first contact with the database. */
export function createSourcePool(engine: SourceEngine, params: ConnectionParameters, options: SourceOptions = {}): SourcePool & {
  connector(options?: { closesPool?: boolean }): SourceConnector;
} {
  const limits = options.limits ?? DEFAULT_SOURCE_LIMITS;
  const pool = options.pool ?? DEFAULT_POOL_LIMITS;
  switch (engine) {
    case 'postgres':
      if ('path' in params) throw badParams(engine, 'a url or host/port/user/password/database');
      return new PostgresPool(params, limits, pool);
    case 'mysql':
      if ('path' in params) throw badParams(engine, 'a url or host/port/user/password/database');
      return new MysqlPool(params, limits, pool);
    case 'sqlite':
      return new SqlitePool(sqlitePath(params), {
        busyTimeoutMs: limits.lockTimeoutMs,
        describeMaxAgeMs: pool.describeMaxAgeMs,
        ...(options.sqlite ? { confinement: options.sqlite } : {}),
      });
    default:
      throw new AppError('INVALID_REQUEST', `Unknown source engine ${JSON.stringify(engine as string)}`);
  }
}

/**
 * A connector with a pool of its own, closed with it (tests, the CLI): `ping()` is the first
 * contact with the database. The service takes connectors from its pools (sources/pools.ts).
 */
export function createSourceConnector(engine: SourceEngine, params: ConnectionParameters, options: SourceOptions = {}): SourceConnector {
  return createSourcePool(engine, params, options).connector({ closesPool: true });
}

/** `{path}`, or a `file:` / `sqlite:` URL for callers that only carry URLs. */
function sqlitePath(params: ConnectionParameters): string {
  if ('path' in params && typeof params.path === 'string' && params.path !== '') return params.path;
  if ('url' in params && typeof params.url === 'string') {
    const m = /^(?:sqlite|file):(?:\/\/)?(.+)$/.exec(params.url);
    if (m?.[1]) return decodeURIComponent(m[1]);
  }
  throw badParams('sqlite', 'a path');
}

function badParams(engine: SourceEngine, expected: string): AppError {
  return new AppError('INVALID_REQUEST', `Connection parameters for ${engine} need ${expected}`);
}
