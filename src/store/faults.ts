/**
 * Store faults (issue 8, "Store faults"): a write the store cannot make — the disk is full, an
 * I/O error, a read-only file — is not a bug and not the caller's mistake. It answers 503
 * STORE_UNAVAILABLE (nothing was half-written: every write is one transaction), `/health` reports
 * the store as failing until a write succeeds again, and the scheduler keeps the end of a run and
 * writes it once the store takes writes again. No driver is imported: faults are known by the
 * error codes drivers and Node put on their errors.
 */
import { AppError } from '../core/errors.js';

// SQLite result codes (extended ones carry the primary code as their prefix), Node's errno codes,
// and PostgreSQL's disk-full / I/O SQLSTATEs for a future PostgreSQL store.
const FAULT_CODES = [/^SQLITE_FULL/, /^SQLITE_IOERR/, /^SQLITE_READONLY/, /^SQLITE_CANTOPEN/, /^ENOSPC$/, /^EIO$/, /^EROFS$/, /^53100$/, /^58030$/];

export function isStoreFault(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && FAULT_CODES.some((re) => re.test(code));
}

/** What the store's write health is, as the process has seen it. */
export class StoreHealth {
  #failure: { code: string; message: string; since: number } | null = null;

  /**
   * `freeBytes`: room left where the store writes (null when unknown). After a fault the store
   * counts as failing while less than `minFreeBytes` is left, even if a small write fits (SQLite
   * reuses its WAL file, so a tiny write can succeed on a full disk while a batch cannot).
   */
  constructor(private readonly options: { freeBytes?: () => number | null; minFreeBytes?: number } = {}) {}

  /** After a fault: whether there is room again for more than a tiny write. */
  hasRoom(): boolean {
    const free = this.options.freeBytes?.() ?? null;
    return free === null || free >= (this.options.minFreeBytes ?? 16 * 2 ** 20);
  }

  /** Records `err` when it is a store fault; answers whether it was. */
  failed(err: unknown, now = Date.now()): boolean {
    if (!isStoreFault(err)) return false;
    const code = String((err as { code: string }).code);
    this.#failure ??= { code, message: describe(code), since: now };
    return true;
  }

  /** A write went through: the store takes writes again. */
  succeeded(): void {
    this.#failure = null;
  }

  get failure(): { code: string; message: string; since: number } | null {
    return this.#failure;
  }

  /** The 503 a request gets while the store cannot be written. */
  error(): AppError {
    const f = this.#failure;
    return new AppError(
      'STORE_UNAVAILABLE',
      'The store cannot be written',
      [`${f ? f.message : 'the store refused a write'}; nothing was half-written — retry once it takes writes again`],
    );
  }
}

function describe(code: string): string {
  if (code.startsWith('SQLITE_FULL') || code === 'ENOSPC' || code === '53100') return 'the disk holding the store is full';
  if (code.startsWith('SQLITE_READONLY') || code === 'EROFS') return 'the store file is read-only';
  return `the store had an I/O error (${code})`;
}
