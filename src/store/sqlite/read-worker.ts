/**
 * Worker-thread side of SqliteReader (reader.ts): its own read-only connection to the store file
 * (WAL lets it read while the main connection writes), sqlite-vec loaded, prepared statements
 * cached by SQL. Receives {id, sql, params}, answers {id, rows} or {id, error}.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { MMAP_BYTES } from './open.js';
import * as sqliteVec from 'sqlite-vec';
import { lowerThisThreadPriority } from '../../threads/priority.js';

interface Request {
  id: number;
  sql: string;
  params: unknown[];
}

const { file, nice } = workerData as { file: string; nice?: number };
lowerThisThreadPriority(nice ?? 0);
const db = new Database(file, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
// As the main connection (open.ts): searches read the candidate index from a memory map.
db.pragma(`mmap_size = ${MMAP_BYTES}`);
sqliteVec.load(db);

const statements = new Map<string, Database.Statement>();
const MAX_STATEMENTS = 512;

parentPort!.on('message', (msg: Request) => {
  try {
    let stmt = statements.get(msg.sql);
    if (stmt === undefined) {
      if (statements.size >= MAX_STATEMENTS) statements.clear();
      stmt = db.prepare(msg.sql);
      statements.set(msg.sql, stmt);
    }
    const rows = stmt.all(...(msg.params as unknown[]));
    parentPort!.postMessage({ id: msg.id, rows });
  } catch (err) {
    const e = err as { message?: string; code?: string };
    parentPort!.postMessage({ id: msg.id, error: { message: String(e.message ?? err), code: e.code ?? null } });
  }
});
