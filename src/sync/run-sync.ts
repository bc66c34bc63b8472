/**
 * One sync run (SEMANTICS.md, "Incremental read" and "Write"): read the source in keyset order
 * on (filter column, key) in bounded batches, turn rows into documents, upsert them into the
 * knowledge base, and only then advance the watermark (a checkpoint per batch).
 */
import { buildRowDocument, type RowDocument } from '../core/documents.js';
import type { Clock } from '../core/clock.js';
import type { DatabaseService } from '../databases/service.js';
import type { KeysetPosition, SourceConnector, TableInfo } from '../sources/port.js';
import type { ControlStore, JobRecord, KnowledgeBaseRecord, RunRecord } from '../store/port.js';
import { isTransientSourceError, PermanentSyncError, RunCancelled } from './errors.js';

export interface UpsertCounts {
  added: number;
  updated: number;
  unchanged: number;
  chunksWritten: number;
}

/** Where documents go: the knowledge-base engine. */
export interface DocumentSink {
  /** Upserts one batch atomically; unchanged content is not re-embedded. */
  upsertDocuments(kb: KnowledgeBaseRecord, docs: RowDocument[], signal?: AbortSignal): Promise<UpsertCounts>;
}

export interface SyncDeps {
  store: ControlStore;
  databases: DatabaseService;
  sink: DocumentSink;
  clock: Clock;
  /** Retries of a failing source read inside the run, with exponential backoff from `retryBaseMs`. */
  readAttempts: number;
  retryBaseMs: number;
  sleep(ms: number): Promise<void>;
}

/**
 * Executes `run` for the job with id `jobId`. Resolves with the finished run record; permanent
 * failures throw PermanentSyncError, cancellation throws RunCancelled, anything else is transient.
 * The caller records the outcome (jobs/scheduler.ts).
 */
export async function executeSync(deps: SyncDeps, jobId: string, run: RunRecord, signal: AbortSignal): Promise<RunRecord> {
  const job = await deps.store.getJobById(jobId);
  if (!job) throw new RunCancelled('job deleted');
  const kb = await deps.store.getKnowledgeBase(job.accountId, job.kbName);
  if (!kb) {
    throw new PermanentSyncError('KB_MISSING', `knowledge base '${job.kbName}' no longer exists: create it again, then resume the job`);
  }
  const database = await deps.store.getDatabase(job.accountId, job.databaseName);
  if (!database) {
    throw new PermanentSyncError('DATABASE_MISSING', `database '${job.databaseName}' is no longer registered: register it again, then resume the job`);
  }
  return deps.databases.withConnector(database, (connector) => new SyncRun(deps, job, kb, connector, run, signal).execute());
}

class SyncRun {
  private job: JobRecord;

  constructor(
    private readonly deps: SyncDeps,
    job: JobRecord,
    private readonly kb: KnowledgeBaseRecord,
    private readonly source: SourceConnector,
    private readonly run: RunRecord,
    private readonly signal: AbortSignal,
  ) {
    this.job = job;
  }

  async execute(): Promise<RunRecord> {
    const table = await this.checkTable();
    const ref = { schema: table.schema, name: table.name };
    const { filterColumn, keyColumns } = this.job;
    this.run.rowsSkipped = await this.withRetry(() => this.source.countNullFilter(ref, filterColumn));
    // The upper bound is fixed now, so a run under constant inserts still ends; rows beyond it
    // are the next run's.
    const until = await this.withRetry(() => this.source.maxPosition(ref, filterColumn, keyColumns));
    const watermark = this.job.watermark;
    this.run.watermarkStart = watermark;
    this.run.watermarkEnd = watermark;

    if (!this.job.started && !this.job.backfill) {
      // backfill: false — like MindsDB's LAST: the first run only places the watermark.
      await this.checkpoint(until ?? null, { added: 0, updated: 0, unchanged: 0, chunksWritten: 0 }, 0, true);
      return this.run;
    }
    if (until === null) {
      await this.checkpoint(watermark, { added: 0, updated: 0, unchanged: 0, chunksWritten: 0 }, 0, true);
      return this.run;
    }

    // Phase 1, lookback: re-read [watermark − lookback, watermark] for rows that committed late
    // with an older filter value. The watermark does not move; unchanged rows cost no embedding.
    if (watermark && this.job.lookbackSeconds > 0) {
      const from = await this.withRetry(() => this.source.lookbackFrom(ref, filterColumn, watermark.filter, this.job.lookbackSeconds));
      if (from !== null) await this.readRange(table, { atLeast: from }, watermark, false);
    }
    // Phase 2: everything after the watermark up to the bound, checkpointing each batch.
    await this.readRange(table, watermark ? { after: watermark } : null, until, true);
    return this.run;
  }

  private async readRange(
    table: TableInfo,
    start: { after: KeysetPosition } | { atLeast: string } | null,
    until: KeysetPosition,
    advance: boolean,
  ): Promise<void> {
    const columns = [...new Set([...this.job.contentColumns, ...this.job.metadataColumns])];
    let from = start;
    for (;;) {
      this.throwIfAborted();
      const rows = await this.withRetry(() =>
        this.source.readBatch({
          table: { schema: table.schema, name: table.name },
          columns,
          filterColumn: this.job.filterColumn,
          keyColumns: this.job.keyColumns,
          from,
          until,
          limit: this.job.batchSize,
        }),
      );
      if (rows.length === 0) break;
      const docs = rows.map((row) =>
        buildRowDocument(
          {
            sourceTable: this.job.sourceTable,
            contentColumns: this.job.contentColumns,
            metadataColumns: this.job.metadataColumns,
            filterColumn: this.job.filterColumn,
          },
          { key: row.position.key, filter: row.position.filter, values: row.values },
        ),
      );
      let counts: UpsertCounts;
      try {
        counts = await this.deps.sink.upsertDocuments(this.kb, dedupeById(docs), this.signal);
      } catch (err) {
        // The batch is not written and the watermark stays before it; the run fails with the
        // reason, and the next run retries these rows.
        this.run.rowsFailed += rows.length;
        throw err;
      }
      const last = rows[rows.length - 1]!.position;
      await this.checkpoint(advance ? last : this.job.watermark, counts, rows.length, advance);
      if (rows.length < this.job.batchSize) break;
      from = { after: last };
    }
  }

  /**
   * Records a batch: the watermark (only now that the documents are durable), the run's counters
   * and the job's totals, in one transaction. A pause or delete seen here stops the run.
   */
  private async checkpoint(watermark: KeysetPosition | null, counts: UpsertCounts, rowsRead: number, advance: boolean): Promise<void> {
    const r = this.run;
    r.rowsRead += rowsRead;
    r.documentsAdded += counts.added;
    r.documentsUpdated += counts.updated;
    r.documentsUnchanged += counts.unchanged;
    r.chunksWritten += counts.chunksWritten;
    if (advance) r.watermarkEnd = watermark;
    let stop = false;
    const stored = await this.deps.store.mutateJob(this.job.id, (current) => {
      stop = current.status === 'paused';
      const totals = { ...current.totals };
      totals.rows_read += rowsRead;
      totals.documents_added += counts.added;
      totals.documents_updated += counts.updated;
      totals.documents_unchanged += counts.unchanged;
      totals.chunks_written += counts.chunksWritten;
      return {
        ...current,
        watermark: advance ? watermark : current.watermark,
        started: current.started || advance,
        totals,
        updatedAt: this.deps.clock.now(),
      };
    }, r);
    if (!stored) throw new RunCancelled('job deleted');
    this.job = stored;
    if (stop) throw new RunCancelled('job paused');
  }

  /** The table and every column the job names must still exist; otherwise the job cannot heal by waiting. */
  private async checkTable(): Promise<TableInfo> {
    const ref = { schema: this.job.tableSchema, name: this.job.tableName };
    const table = await this.withRetry(() => this.source.describeTable(ref), false);
    if (!table) {
      throw new PermanentSyncError(
        'TABLE_MISSING',
        `source table '${this.job.sourceTable}' no longer exists: restore it (or delete this job), then resume the job`,
      );
    }
    const names = new Set(table.columns.map((c) => c.name));
    const wanted: Array<[string, string]> = [
      ...this.job.contentColumns.map((c) => ['content column', c] as [string, string]),
      ...this.job.metadataColumns.map((c) => ['metadata column', c] as [string, string]),
      ['filter column', this.job.filterColumn],
      ...this.job.keyColumns.map((c) => ['key column', c] as [string, string]),
    ];
    const missing = wanted.filter(([, c]) => !names.has(c));
    if (missing.length > 0) {
      throw new PermanentSyncError(
        'COLUMN_MISSING',
        `${missing.map(([kind, c]) => `${kind} '${c}'`).join(', ')} no longer exist${missing.length === 1 ? 's' : ''} in '${this.job.sourceTable}': restore ${missing.length === 1 ? 'it' : 'them'} or PATCH the job's columns, then resume the job`,
      );
    }
    return table;
  }

  /** Retries transient source errors with exponential backoff; a changed schema becomes permanent. */
  private async withRetry<T>(fn: () => Promise<T>, recheckSchema = true): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof PermanentSyncError || err instanceof RunCancelled) throw err;
        if (isTransientSourceError(err) && attempt < this.deps.readAttempts) {
          this.throwIfAborted();
          await this.deps.sleep(this.deps.retryBaseMs * 2 ** (attempt - 1) * (0.5 + Math.random()));
          continue;
        }
        // A read that fails for good may mean the table or a column went away under us.
        if (recheckSchema) await this.checkTable().catch((e) => (e instanceof PermanentSyncError ? Promise.reject(e) : undefined));
        throw err;
      }
    }
  }

  private throwIfAborted(): void {
    if (this.signal.aborted) throw new RunCancelled('stopped');
  }
}

/**
 * A batch can hold the same document twice only if a key repeats (never for a real primary
 * key); keep the last so an upsert batch has unique ids.
 */
function dedupeById(docs: RowDocument[]): RowDocument[] {
  const byId = new Map<string, RowDocument>();
  for (const doc of docs) byId.set(doc.id, doc);
  return byId.size === docs.length ? docs : [...byId.values()];
}
