/** The one place a source engine name becomes an adapter. */
import { AppError } from '../core/errors.js';
import { MysqlConnector } from './mysql/connector.js';
import type { ConnectionParameters, SourceConnector, SourceEngine } from './port.js';
import { PostgresConnector } from './postgres/connector.js';
import { SqliteConnector } from './sqlite/connector.js';

/** Builds a connector without connecting; `ping()` is the first contact with the database. */
export function createSourceConnector(engine: SourceEngine, params: ConnectionParameters): SourceConnector {
  switch (engine) {
    case 'postgres':
      if ('path' in params) throw badParams(engine, 'a url or host/port/user/password/database');
      return new PostgresConnector(params);
    case 'mysql':
      if ('path' in params) throw badParams(engine, 'a url or host/port/user/password/database');
      return new MysqlConnector(params);
    case 'sqlite':
      return new SqliteConnector(sqlitePath(params));
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
