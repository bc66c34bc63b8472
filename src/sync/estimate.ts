/**
 * What the next run of a job would embed, found without embedding anything (API.md, "Cost and
 * freshness"; POST /jobs/{job}/estimate and `dry_run` on create).
 *
 * It takes the run's own path, read-only: the table's description, the probe that fixes the
 * run's upper bound, the lookback window unless the run would skip it, then the rows past the
 * watermark in keyset order and in the job's batches; each row becomes the document the run would
 * build (sync/row-documents.ts), compared with the hashes the knowledge base holds and chunked as
 * the engine would (kb/changes.ts); only new or changed documents cost tokens, counted with the
 * tokenizer (embeddings/usage.ts). Reading stops after `maxRows` rows or `timeBudgetMs`: the answer
 * then says it is a lower bound. Every query runs under the source's statement and lock timeouts,
 * and `signal` (the client went away) cancels the query in flight, as pause does for a run.
 *
 * Not counted: rows delete reconciliation would find missing from the knowledge base (a row
 * re-inserted with an old filter value), and failed rows a retry would read again.
 */
import { AppError } from '../core/errors.js';
import type { DatabaseService } from '../databases/service.js';
import {
  type ColumnKind,
  type KeysetPosition,
  type SourceConnector,
  SourceQueryCancelled,
  type SourceRow,
  SourceTimeoutError,
  type TableInfo,
} from '../sources/port.js';
import type { ControlStore, JobRecord, KnowledgeBaseRecord } from '../store/port.js';
import type { DocumentCost, EmbeddingCosts } from './budget.js';
import type { LookbackMemory } from './lookback-memory.js';
import { readColumns, rowDocument } from './row-documents.js';
import { cancelOnStop, missingColumns, probeColumns, type SyncedDocument } from './run-sync.js';

/** Rows an estimate reads at most unless asked otherwise. */
export const DEFAULT_ESTIMATE_ROWS = 100_000;
/** Longest an estimate reads rows; then it answers what it has counted, as a lower bound. */
export const ESTIMATE_TIME_BUDGET_MS = 30_000;

/** What the estimate needs of the run's dependencies (SyncDeps has all of it). */
export interface EstimateDeps {
  store: ControlStore;
  databases: DatabaseService;
  costs: EmbeddingCosts;
  lookback?: LookbackMemory;
}

export interface EstimateOptions {
  maxRows: number;
  /** Default ESTIMATE_TIME_BUDGET_MS. */
  timeBudgetMs?: number;
  /** Aborted when the client goes away: the query in flight is cancelled. */
  signal?: AbortSignal;
}

export interface RunEstimate {
  /** Rows the run would read (the lookback window it would re-read included). */
  rows: number;
  /** Documents it would embed: new ones and ones whose content changed. */
  documents: number;
  /** Documents it would write without embedding: unchanged, or only their metadata changed. */
  documentsUnchanged: number;
  chunks: number;
  tokens: number;
  /** False when reading stopped at `maxRows` or the time budget: the figures are a lower bound. */
  complete: boolean;
  limitedBy: 'max_rows' | 'time' | null;
}

export async function estimateNextRun(
  deps: EstimateDeps,
  job: JobRecord,
  options: EstimateOptions,
): Promise<RunEstimate> {
  const kb = await deps.store.getKnowledgeBase(job.accountId, job.kbName);
  if (!kb)
    throw new AppError('INVALID_KB', 'Cannot estimate the run', [
      `knowledge base '${job.kbName}' does not exist`,
    ]);
  const database = await deps.store.getDatabase(job.accountId, job.databaseName);
  if (!database) {
    throw new AppError('INVALID_TABLE', 'Cannot estimate the run', [
      `database '${job.databaseName}' is not registered`,
    ]);
  }
  const tally = new Tally(options);
  // backfill: false — the first run only places the watermark at the current maximum.
  if (!job.started && !job.backfill) return tally.result();
  try {
    return await deps.databases.withConnector(database, async (source) => {
      const unlink = cancelOnStop(source, [options.signal]);
      try {
        await new Estimation(deps, job, kb, source, tally).run();
        return tally.result();
      } finally {
        unlink();
      }
    });
  } catch (err) {
    throw sourceFailure(err, job, options.signal);
  }
}

class Estimation {
  private kinds: Record<string, ColumnKind> = {};

  constructor(
    private readonly deps: EstimateDeps,
    private readonly job: JobRecord,
    private readonly kb: KnowledgeBaseRecord,
    private readonly source: SourceConnector,
    private readonly tally: Tally,
  ) {}

  async run(): Promise<void> {
    const table = await this.describe();
    this.kinds = Object.fromEntries(table.columns.map((c) => [c.name, c.kind]));
    const ref = { schema: table.schema, name: table.name };
    const { job } = this;
    const watermark = job.watermark;
    let lookbackFrom: string | null = null;
    if (watermark !== null && job.lookbackSeconds > 0) {
      const known = this.deps.lookback?.start(job);
      lookbackFrom =
        known !== undefined
          ? known
          : await this.source.lookbackFrom(ref, job.filterColumn, watermark.filter, job.lookbackSeconds);
    }
    // The run's first statement: its upper bound, and the lookback window's fingerprint.
    const probe = await this.source.probe({
      table: ref,
      filterColumn: job.filterColumn,
      keyColumns: job.keyColumns,
      watermark,
      columns: probeColumns(job),
      window: lookbackFrom === null ? null : { from: lookbackFrom },
      keys: null,
    });
    if (probe.max === null) return;
    // The run re-reads the window unless its rows are as they were when it last read them.
    if (
      watermark !== null &&
      lookbackFrom !== null &&
      !this.deps.lookback?.unchanged(job, lookbackFrom, probe.window)
    ) {
      await this.readRange(table, { atLeast: lookbackFrom }, watermark);
    }
    if (probe.pastWatermark) await this.readRange(table, watermark ? { after: watermark } : null, probe.max);
  }

  /** The table as a run checks it: every column the job names must be there. */
  private async describe(): Promise<TableInfo> {
    const ref = { schema: this.job.tableSchema, name: this.job.tableName };
    let table = await this.source.describeTable(ref, { cached: true });
    if (table === null || missingColumns(this.job, table).length > 0)
      table = await this.source.describeTable(ref);
    const problem =
      table === null
        ? `source table '${this.job.sourceTable}' no longer exists`
        : missingColumns(this.job, table)
            .map(([kind, c]) => `${kind} '${c}' no longer exists in '${this.job.sourceTable}'`)
            .join('; ');
    if (table === null || problem !== '')
      throw new AppError('INVALID_TABLE', 'Cannot estimate the run', [problem]);
    return table;
  }

  /** Reads like the run's readRange, costing each batch instead of writing it, until a limit. */
  private async readRange(
    table: TableInfo,
    start: { after: KeysetPosition } | { atLeast: string } | null,
    until: KeysetPosition,
  ): Promise<void> {
    let from = start;
    for (;;) {
      const limit = Math.min(this.job.batchSize, this.tally.rowsLeft());
      if (!this.tally.mayRead(limit)) return;
      const rows = await this.source.readBatch({
        table: { schema: table.schema, name: table.name },
        columns: readColumns(this.job),
        filterColumn: this.job.filterColumn,
        keyColumns: this.job.keyColumns,
        from,
        until,
        limit,
        softDeleteColumn: this.job.softDeleteColumn ?? null,
      });
      if (rows.length === 0) return;
      await this.cost(rows);
      const last = rows[rows.length - 1]!.position;
      if (rows.length < limit || samePosition(last, until)) return;
      from = { after: last };
    }
  }

  private async cost(rows: SourceRow[]): Promise<void> {
    const byId = new Map<string, SyncedDocument>();
    for (const row of rows) {
      const doc = rowDocument(this.job, this.kinds, row);
      if (doc !== null) byId.set(doc.id, doc);
    }
    this.tally.add(rows.length, await this.deps.costs.embeddingCosts(this.kb, [...byId.values()]));
  }
}

/** The counts so far, and whether reading may go on. */
class Tally {
  private readonly counts: RunEstimate = {
    rows: 0,
    documents: 0,
    documentsUnchanged: 0,
    chunks: 0,
    tokens: 0,
    complete: true,
    limitedBy: null,
  };
  private readonly deadline: number;

  constructor(private readonly options: EstimateOptions) {
    this.deadline = performance.now() + (options.timeBudgetMs ?? ESTIMATE_TIME_BUDGET_MS);
  }

  rowsLeft(): number {
    return this.options.maxRows - this.counts.rows;
  }

  /** Whether another read of `limit` rows may start; when not, the answer becomes a lower bound. */
  mayRead(limit: number): boolean {
    if (this.counts.limitedBy !== null) return false;
    if (limit <= 0) this.counts.limitedBy = 'max_rows';
    else if (performance.now() >= this.deadline) this.counts.limitedBy = 'time';
    else return true;
    this.counts.complete = false;
    return false;
  }

  add(rows: number, costs: Map<string, DocumentCost>): void {
    this.counts.rows += rows;
    for (const cost of costs.values()) {
      if (cost.outcome === 'embed') {
        this.counts.documents++;
        this.counts.chunks += cost.chunks;
        this.counts.tokens += cost.tokens;
      } else if (cost.outcome !== 'too_long') this.counts.documentsUnchanged++;
    }
  }

  result(): RunEstimate {
    return { ...this.counts };
  }
}

/** A source that cannot be read now is the caller's to retry (503), never a 500. */
function sourceFailure(err: unknown, job: JobRecord, signal: AbortSignal | undefined): unknown {
  if (err instanceof AppError || signal?.aborted || err instanceof SourceQueryCancelled) return err;
  const reason = err instanceof Error ? err.message : String(err);
  const message =
    err instanceof SourceTimeoutError ? 'The source did not answer in time' : 'The source could not be read';
  return new AppError('CONNECTION_FAILED', message, [`reading '${job.sourceTable}': ${reason}`], {
    cause: err,
    status: 503,
  });
}

function samePosition(a: KeysetPosition, b: KeysetPosition): boolean {
  return a.filter === b.filter && a.key.length === b.key.length && a.key.every((k, i) => k === b.key[i]);
}
