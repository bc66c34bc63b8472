/**
 * Store selection: the one place that turns the configuration into stores (app.ts, `kbsync keys`).
 *
 * - KBSYNC_STORE_URL unset: the embedded SQLite file KBSYNC_DATA_DIR/kbsync.db holds the control
 *   plane, the vectors and the keyword index; searches run on reader threads
 *   (KBSYNC_SEARCH_THREADS) with their own read-only connections.
 * - postgres://…: the control store and the pgvector store in schema KBSYNC_STORE_SCHEMA, migrated
 *   under the advisory lock. Two pools of KBSYNC_STORE_POOL_SIZE connections each, so control-plane
 *   writes (checkpoints, leases, /health) never queue behind searches holding every connection;
 *   searches run on the server, so there are no reader threads. Every statement is bounded by
 *   KBSYNC_STORE_STATEMENT_TIMEOUT_MS.
 *
 * The URL may hold a password: it is never logged nor put in an error; `location` shows it masked.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import type { ControlStore } from './port.js';
import { openPostgresControlStore } from './postgres/control-store.js';
import type { OpenOptions } from './postgres/open.js';
import { openPostgresVectorStore, type PostgresVectorStore } from './postgres/vector-store.js';
import { SqliteControlStore } from './sqlite/control-store.js';
import { openSqliteFile } from './sqlite/open.js';
import { SqliteReader } from './sqlite/reader.js';
import { SqliteVectorStore } from './sqlite/vector-store.js';
import type { VectorStore } from './vector-port.js';

export type StoreBackend = 'sqlite' | 'postgres';

export type StoreSettings = Pick<
  Config,
  | 'dataDir'
  | 'storeUrl'
  | 'storeSchema'
  | 'storePoolSize'
  | 'storeStatementTimeoutMs'
  | 'searchThreads'
  | 'workerNice'
  | 'vectorIndexMinChunks'
>;

export interface Stores {
  backend: StoreBackend;
  /** Where the store is, safe to log: the file, or the URL with its password masked and the schema. */
  location: string;
  controlStore: ControlStore;
  vectorStore: VectorStore;
  /** SQLite's search threads (null on PostgreSQL, or with KBSYNC_SEARCH_THREADS=0). */
  searchReader: { close(): Promise<void> } | null;
  /** Room left where the store writes, in bytes; null when unknown (a store on another machine). */
  freeBytes(): number | null;
  /** Closes everything opened here, the reader threads first. */
  close(): Promise<void>;
}

/** The embedded store's file in the data dir. */
export const storeFile = (dataDir: string) => path.join(dataDir, 'kbsync.db');

export async function openStores(settings: StoreSettings, log?: (backend: StoreBackend, location: string) => void): Promise<Stores> {
  const stores = settings.storeUrl === null ? openSqliteStores(settings) : await openPostgresStores(settings.storeUrl, settings);
  log?.(stores.backend, stores.location);
  return stores;
}

/** The control store alone (`kbsync keys create`, on the server's machine), with the same selection. */
export async function openControlStore(
  settings: Pick<StoreSettings, 'dataDir' | 'storeUrl' | 'storeSchema' | 'storePoolSize' | 'storeStatementTimeoutMs'>,
): Promise<{ store: ControlStore; location: string }> {
  if (settings.storeUrl === null) {
    const file = storeFile(settings.dataDir);
    return { store: new SqliteControlStore(openSqliteFile(file), { ownsDb: true }), location: file };
  }
  const url = settings.storeUrl;
  const location = postgresLocation(url, settings.storeSchema);
  const store = await opening(url, location, () =>
    openPostgresControlStore(url, settings.storeSchema, { ...poolOptions(settings, 'control'), max: 1 }),
  );
  return { store, location };
}

function openSqliteStores(settings: StoreSettings): Stores {
  const file = storeFile(settings.dataDir);
  const db = openSqliteFile(file);
  const controlStore = new SqliteControlStore(db, { ownsDb: true }); // migrates the file
  const vectorStore = new SqliteVectorStore(db, { indexMinChunks: settings.vectorIndexMinChunks });
  const reader = settings.searchThreads > 0 ? new SqliteReader(file, settings.searchThreads, settings.workerNice) : null;
  vectorStore.useReader(reader);
  return {
    backend: 'sqlite',
    location: file,
    controlStore,
    vectorStore,
    searchReader: reader,
    freeBytes: () => {
      try {
        const stats = fs.statfsSync(settings.dataDir);
        return stats.bavail * stats.bsize;
      } catch {
        return null;
      }
    },
    async close() {
      await reader?.close();
      await controlStore.close(); // closes the file (the vector store shares it)
    },
  };
}

async function openPostgresStores(url: string, settings: StoreSettings): Promise<Stores> {
  const location = postgresLocation(url, settings.storeSchema);
  // One after the other: the first migrates; the second finds everything applied.
  const controlStore = await opening(url, location, () =>
    openPostgresControlStore(url, settings.storeSchema, poolOptions(settings, 'control')),
  );
  let vectorStore: PostgresVectorStore;
  try {
    // The HNSW threshold keeps the PostgreSQL default (KBSYNC_VECTOR_INDEX_MIN_CHUNKS is SQLite's index).
    vectorStore = await opening(url, location, () => openPostgresVectorStore(url, settings.storeSchema, poolOptions(settings, 'vectors')));
  } catch (err) {
    await controlStore.close();
    throw err;
  }
  return {
    backend: 'postgres',
    location,
    controlStore,
    vectorStore,
    searchReader: null,
    freeBytes: () => null,
    async close() {
      await Promise.all([controlStore.close(), vectorStore.close()]);
    },
  };
}

function poolOptions(settings: Pick<StoreSettings, 'storePoolSize' | 'storeStatementTimeoutMs'>, role: string): OpenOptions {
  return { max: settings.storePoolSize, statementTimeoutMs: settings.storeStatementTimeoutMs, applicationName: `kbsync ${role}` };
}

function postgresLocation(url: string, schema: string): string {
  return `${maskUrl(url)} (schema ${schema})`;
}

/**
 * Runs an opening step; a failure says which store could not be opened, with the URL masked, and
 * without the driver's error as a cause (nothing that could carry the URL travels on).
 */
async function opening<T>(url: string, location: string, open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    const message = scrub(err instanceof Error ? err.message : String(err), url);
    throw Object.assign(new Error(`cannot open the PostgreSQL store at ${location}: ${message}`), typeof code === 'string' ? { code } : {});
  }
}

/** The URL with its password (in the authority or a `password` parameter) replaced by ****. */
export function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '****';
    if (u.searchParams.has('password')) u.searchParams.set('password', '****');
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

/** A driver message with any part of the URL that is secret removed. */
function scrub(message: string, url: string): string {
  let out = message.split(url).join(maskUrl(url));
  try {
    const u = new URL(url);
    for (const secret of [u.password, decodeURIComponent(u.password), u.searchParams.get('password') ?? '']) {
      if (secret.length >= 3) out = out.split(secret).join('****');
    }
  } catch {
    // not a URL: nothing more to find
  }
  return out;
}
