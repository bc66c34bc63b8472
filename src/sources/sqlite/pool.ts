/**
 * A registered SQLite file's read-only handle and table descriptions, shared by every run on it
 * (SourcePool). Queries are synchronous, so one handle serves every connector. Each connector
 * checks the path again (confinement, KBSYNC_SQLITE_ROOTS) before its first query, and the
 * handle is reopened when the path now names another file.
 */
import fs from 'node:fs';
import Database from 'better-sqlite3';
import { DEFAULT_POOL_LIMITS, type SourceConnector, type SourcePool } from '../port.js';
import { ConnectorUse, TableCache } from '../shared.js';
import { confineSqlitePath, type SqliteConfinement } from './confine.js';
import { SqliteConnector } from './connector.js';
import { registerKeyHash, type SqliteColumnExtra } from './sql.js';

/**
 * Longest busy timeout: better-sqlite3 is synchronous, so a query waiting for a writer's lock
 * stops the whole process (every request, every run) while it waits.
 */
export const SQLITE_MAX_BUSY_TIMEOUT_MS = 5_000;

export interface SqlitePoolOptions {
  /** How long a query waits for another connection's write lock (capped at SQLITE_MAX_BUSY_TIMEOUT_MS). */
  busyTimeoutMs?: number;
  /** When set, the path is checked against it again before each connector's first query (defence in depth). */
  confinement?: SqliteConfinement;
  /** A table description is read again once this old, in ms. */
  describeMaxAgeMs?: number;
}

export class SqlitePool implements SourcePool {
  readonly engine = 'sqlite' as const;
  readonly busyTimeoutMs: number;
  readonly tables: TableCache<SqliteColumnExtra>;
  readonly use = new ConnectorUse();
  private db: Database.Database | null = null;
  /** The file the handle has open: its checked real path and identity. */
  private opened: { file: string; dev: number; ino: number } | null = null;
  private closed = false;

  constructor(
    private readonly path: string,
    private readonly options: SqlitePoolOptions = {},
  ) {
    this.busyTimeoutMs = Math.min(
      Math.max(0, Math.round(options.busyTimeoutMs ?? SQLITE_MAX_BUSY_TIMEOUT_MS)),
      SQLITE_MAX_BUSY_TIMEOUT_MS,
    );
    this.tables = new TableCache<SqliteColumnExtra>(
      options.describeMaxAgeMs ?? DEFAULT_POOL_LIMITS.describeMaxAgeMs,
    );
  }

  /** `closesPool`: the connector owns this pool and closes it with itself (createSourceConnector). */
  connector(options: { closesPool?: boolean } = {}): SourceConnector {
    return new SqliteConnector(this, options.closesPool ?? false);
  }

  idleSince(): number | null {
    return this.use.idleSince();
  }

  /**
   * The open handle. `verify`: check the path again first (a connector's first query), and open
   * the file it names now if that is not the one open.
   */
  handle(verify: boolean): Database.Database {
    if (this.closed) throw new Error('SQLite source connector is closed');
    if (this.db !== null && !verify) return this.db;
    // The file actually opened is the checked real path, not the name as given.
    const file = this.options.confinement
      ? confineSqlitePath(this.path, this.options.confinement)
      : this.path;
    const id = identity(file);
    if (
      this.db !== null &&
      this.opened !== null &&
      id !== null &&
      this.opened.file === file &&
      this.opened.dev === id.dev &&
      this.opened.ino === id.ino
    ) {
      return this.db;
    }
    this.discard();
    // Read-only: kbsync must never change a user's file, nor create one at a mistyped path.
    // `timeout` waits that long for a writer's lock instead of failing at once.
    const db = new Database(file, { readonly: true, fileMustExist: true, timeout: this.busyTimeoutMs });
    registerKeyHash(db);
    this.db = db;
    this.opened = id === null ? null : { file, ...id };
    return db;
  }

  /** Closes the handle (a file that is not a database is not kept open); the next query opens it again. */
  discard(): void {
    const db = this.db;
    this.db = null;
    this.opened = null;
    this.tables.clear();
    db?.close();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.discard();
  }
}

function identity(file: string): { dev: number; ino: number } | null {
  try {
    const stat = fs.statSync(file);
    return { dev: stat.dev, ino: stat.ino };
  } catch {
    return null;
  }
}
