/**
 * Which files a SQLite source may name (issue 8, point 5): an absolute path, without NUL, whose
 * real path (symlinks and `..` resolved) is an existing file inside one of the allowed roots
 * (KBSYNC_SQLITE_ROOTS) and not inside kbsync's own data folder, whose `sources/` and `demo/`
 * folders excepted — so the service's own kbsync.db and secret.key are never reachable.
 *
 * Every refusal answers with the same message, whatever the reason, so the answer never tells
 * whether a file exists.
 */
import fs from 'node:fs';
import path from 'node:path';
import { AppError } from '../../core/errors.js';

export interface SqliteConfinement {
  /**
   * Allowed folders, absolute. A folder allows the files anywhere under it; a folder written
   * `DIR/*` allows only the files directly in DIR. Empty: no SQLite source is allowed.
   */
  roots: readonly string[];
  /** kbsync's data folder (KBSYNC_DATA_DIR): refused, except its SQLITE_DATA_SUBFOLDERS. */
  dataDir: string;
}

/** Folders of the data dir that may hold SQLite sources: `sources/` for the user's, `demo/` for `kbsync demo`'s. */
export const SQLITE_DATA_SUBFOLDERS: readonly string[] = ['sources', 'demo'];

export const SQLITE_PATH_REFUSED =
  'parameters.path must be the absolute path of an existing SQLite file in a folder allowed by KBSYNC_SQLITE_ROOTS, outside kbsync\'s own data folder (its sources/ folder excepted); see docs/operations.md, "SQLite sources"';

/** The one error of every refusal. */
export function sqlitePathRefused(): AppError {
  return new AppError('INVALID_REQUEST', 'SQLite source path not allowed', [SQLITE_PATH_REFUSED]);
}

/**
 * The real path of `raw` when it is an allowed SQLite source; null otherwise. Reads the file
 * system (realpath, stat) every time: a symlink changed since the last check is seen.
 */
export function allowedSqlitePath(raw: unknown, confinement: SqliteConfinement): string | null {
  if (typeof raw !== 'string' || raw === '' || raw.includes('\0') || !path.isAbsolute(raw)) return null;
  let real: string;
  let stat: fs.Stats;
  try {
    // .native: the case the file system has (a case-insensitive one would keep the case typed).
    real = fs.realpathSync.native(raw);
    stat = fs.statSync(real);
    if (!stat.isFile()) return null;
  } catch {
    return null;
  }
  const dataDir = realOrResolved(confinement.dataDir);
  // A hard link has no path to resolve: the service's own files are recognised by their inode.
  if (OWN_FILES.some((name) => sameFile(stat, path.join(dataDir, name)))) return null;
  if (inside(real, dataDir)) {
    // Only through a subfolder that really is one (a `sources` symlink to the data dir itself,
    // or to a folder holding it, opens nothing).
    const viaSubfolder = SQLITE_DATA_SUBFOLDERS.some((name) => {
      const sub = realOrNull(path.join(dataDir, name));
      return sub !== null && inside(sub, dataDir) && sub !== dataDir && inside(real, sub);
    });
    if (!viaSubfolder) return null;
  }
  const allowed = confinement.roots.some((root) => {
    const filesOnly = root.endsWith(`${path.sep}*`);
    const dir = realOrNull(filesOnly ? root.slice(0, -2) || path.sep : root);
    if (dir === null) return false;
    return filesOnly ? path.dirname(real) === dir : inside(real, dir);
  });
  return allowed ? real : null;
}

/** allowedSqlitePath, or the one refusal. */
export function confineSqlitePath(raw: unknown, confinement: SqliteConfinement): string {
  const real = allowedSqlitePath(raw, confinement);
  if (real === null) throw sqlitePathRefused();
  return real;
}

/** The service's own files in its data dir, refused also through a hard link elsewhere. */
const OWN_FILES = ['kbsync.db', 'kbsync.db-wal', 'kbsync.db-shm', 'secret.key'];

function sameFile(stat: fs.Stats, other: string): boolean {
  try {
    const o = fs.statSync(other);
    return o.ino === stat.ino && o.dev === stat.dev;
  } catch {
    return false;
  }
}

/** Whether `child` is `parent` or below it (both real, absolute). */
function inside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith(`..${path.sep}`) && rel !== '..' && !path.isAbsolute(rel));
}

function realOrNull(p: string): string | null {
  try {
    return path.isAbsolute(p) ? fs.realpathSync.native(p) : null;
  } catch {
    return null;
  }
}

function realOrResolved(p: string): string {
  return realOrNull(path.resolve(p)) ?? path.resolve(p);
}
