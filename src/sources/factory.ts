/** The one place a source engine name becomes an adapter. */
import { AppError } from '../core/errors.js';
import { MysqlConnector } from './mysql/connector.js';
import { type ConnectionParameters, DEFAULT_SOURCE_LIMITS, type SourceConnector, type SourceEngine, type SourceLimits } from './port.js';
import { PostgresConnector } from './postgres/connector.js';
import type { SqliteConfinement } from './sqlite/confine.js';
import { SqliteConnector } from './sqlite/connector.js';

/** What the composition root (app.ts) gives every connector, from the configuration. */
export interface SourceOptions {
  /** Statement and lock timeouts of every query (SQLite: the lock timeout is the busy timeout). */
  limits?: SourceLimits;
  /** The files a SQLite source may open; unset: any (callers that check paths themselves, tests). */
  sqlite?: SqliteConfinement;
}

/** Builds a connector without connecting; `ping()` is the first contact with the database. */
export function createSourceConnector(engine: SourceEngine, params: ConnectionParameters, options: SourceOptions = {}): SourceConnector {
  const limits = options.limits ?? DEFAULT_SOURCE_LIMITS;
  switch (engine) {
    case 'postgres':
      if ('path' in params) throw badParams(engine, 'a url or host/port/user/password/database');
      return new PostgresConnector(params, limits);
    case 'mysql':
      if ('path' in params) throw badParams(engine, 'a url or host/port/user/password/database');
      return new MysqlConnector(params, limits);
    case 'sqlite':
      return new SqliteConnector(sqlitePath(params), {
        busyTimeoutMs: limits.lockTimeoutMs,
        ...(options.sqlite ? { confinement: options.sqlite } : {}),
      });
    default:
      throw new AppError('INVALID_REQUEST', `Unknown source engine ${JSON.stringify(engine as string)}`);
  }
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
