/**
 * One pool per registered database, kept across runs (issue 9): a run takes a connector from its
 * database's pool instead of opening connections and reading the catalog from scratch. A pool is
 * made on first use, made again when the database's connection settings differ from the ones it
 * was made with, closed when the database is deleted, and closed once no connector has used it
 * for `idleMs` (its connections close on their own after that long idle, too).
 */
import type { ConnectionParameters, SourceConnector, SourceEngine, SourcePool } from './port.js';

export type PoolFactory = (engine: SourceEngine, params: ConnectionParameters) => SourcePool;

interface Entry {
  fingerprint: string;
  pool: SourcePool;
}

export class SourcePools {
  private readonly entries = new Map<string, Entry>();
  private sweeper: NodeJS.Timeout | null = null;

  constructor(
    private readonly create: PoolFactory,
    private readonly idleMs: number,
  ) {}

  /**
   * A connector on the pool of database `id`. `fingerprint` identifies its connection settings
   * (credentials included); `params` is called only when a pool has to be made.
   */
  connector(
    id: string,
    fingerprint: string,
    engine: SourceEngine,
    params: () => ConnectionParameters,
  ): SourceConnector {
    let entry = this.entries.get(id);
    if (entry !== undefined && entry.fingerprint !== fingerprint) {
      // Settings changed under the same id: connectors still open on the old pool fail their next query.
      this.entries.delete(id);
      void entry.pool.close().catch(() => undefined);
      entry = undefined;
    }
    if (entry === undefined) {
      entry = { fingerprint, pool: this.create(engine, params()) };
      this.entries.set(id, entry);
      this.arm();
    }
    return entry.pool.connector();
  }

  /** A pool of its own, not kept (a connection test before a database is saved); the caller closes it. */
  standalone(engine: SourceEngine, params: ConnectionParameters): SourcePool {
    return this.create(engine, params);
  }

  /** The pool of database `id`, if one is open (tests, metrics). */
  pool(id: string): SourcePool | null {
    return this.entries.get(id)?.pool ?? null;
  }

  /** Closes the pool of a deleted database. */
  async drop(id: string): Promise<void> {
    const entry = this.entries.get(id);
    if (entry === undefined) return;
    this.entries.delete(id);
    await entry.pool.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
    const pools = [...this.entries.values()].map((e) => e.pool);
    this.entries.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => undefined)));
  }

  /** Looks for idle pools every half idle time, while there are pools (an unref'd timer). */
  private arm(): void {
    if (this.sweeper !== null) return;
    this.sweeper = setInterval(() => this.sweep(), Math.max(1_000, Math.floor(this.idleMs / 2)));
    this.sweeper.unref();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, entry] of this.entries) {
      const since = entry.pool.idleSince();
      if (since !== null && now - since >= this.idleMs) {
        this.entries.delete(id);
        void entry.pool.close().catch(() => undefined);
      }
    }
    if (this.entries.size === 0 && this.sweeper !== null) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }
}

/**
 * A pool that makes a new connector for every use and keeps nothing between them: for a
 * connector factory given from outside (tests wrap real connectors to change their behaviour).
 */
export function unpooled(engine: SourceEngine, make: () => SourceConnector): SourcePool {
  let open = 0;
  let since = Date.now();
  return {
    engine,
    connector() {
      const connector = make();
      open++;
      const close = connector.close.bind(connector);
      let closed = false;
      connector.close = async () => {
        if (!closed) {
          closed = true;
          open--;
          if (open === 0) since = Date.now();
        }
        await close();
      };
      return connector;
    },
    idleSince: () => (open === 0 ? since : null),
    close: async () => undefined,
  };
}
