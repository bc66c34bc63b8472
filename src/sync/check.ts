/**
 * The check before a scheduled run (issue 9): whether the run would find anything to do, asked
 * with one source query (SourceConnector.probe) and read-only. Nothing to do means all of:
 *
 * - no row past the watermark (SEMANTICS.md, "Incremental read");
 * - the lookback window as it was when its rows were last read and written ("Late rows"), so
 *   re-reading it would change nothing;
 * - with `deletes: "reconcile"`, the source's keys add up to the knowledge base's (the first
 *   round of reconciliation, which is where a run without deletes stops anyway: "Deletes").
 *
 * Then the scheduler records the run in one write, without a run slot. Otherwise — or when
 * anything here is not known or not as expected (first run, a column gone, the window start not
 * computed yet, an error) — the answer is "run in full", and the full run finds and reports it.
 */
import { type LagMeasurement, measureLag } from '../core/lag.js';
import type { JobRecord, ReconcileStats } from '../store/port.js';
import { cancelOnStop, missingColumns, probeColumns, type SyncDeps } from './run-sync.js';

/** What a run that finds nothing new records. */
export interface NothingNew {
  /** Rows whose filter value is NULL (the run's rows_skipped). */
  rowsSkipped: number;
  /** Reconciliation's one round (null when the job does not reconcile deletes). */
  reconcile: ReconcileStats | null;
  /** The job's lag as the probe found it (caught up: nothing past the watermark); absent when not measured. */
  lag?: LagMeasurement;
}

/**
 * NothingNew when a run of `job` (as read now) would find nothing to do; null when it must run
 * in full. Throws only when stopped (`signals`: shutdown, pause or delete cancel the query).
 */
export async function checkNothingNew(
  deps: SyncDeps,
  job: JobRecord,
  signals: Array<AbortSignal | undefined>,
): Promise<NothingNew | null> {
  if (!job.started) return null;
  const watermark = job.watermark;
  let from: string | null = null;
  if (watermark !== null && job.lookbackSeconds > 0) {
    // Known only once a full run has computed it for this watermark (and read the window).
    const start = deps.lookback?.start(job);
    if (start === undefined) return null;
    from = start;
  }
  const kb = await deps.store.getKnowledgeBase(job.accountId, job.kbName);
  const database = await deps.store.getDatabase(job.accountId, job.databaseName);
  if (kb === null || database === null) return null;
  const reconcile = (job.deletes ?? 'reconcile') === 'reconcile';
  return deps.databases.withConnector(database, async (source) => {
    const unlink = cancelOnStop(source, signals);
    try {
      const table = await source.describeTable(
        { schema: job.tableSchema, name: job.tableName },
        { cached: true },
      );
      if (table === null || missingColumns(job, table).length > 0) return null;
      const started = performance.now();
      const reconcileFrom = job.reconcileFrom;
      const probe = await source.probe({
        table: { schema: table.schema, name: table.name },
        filterColumn: job.filterColumn,
        keyColumns: job.keyColumns,
        watermark,
        columns: probeColumns(job),
        window: from === null ? null : { from },
        keys: reconcile
          ? {
              softDeleteColumn: job.softDeleteColumn ?? null,
              after:
                reconcileFrom !== undefined && reconcileFrom.filterColumn === job.filterColumn
                  ? reconcileFrom.position
                  : null,
            }
          : null,
      });
      if (probe.pastWatermark) return null;
      const filterKind = table.columns.find((c) => c.name === job.filterColumn)?.kind;
      const lag = probe.oldestPending === undefined ? undefined : measureLag(filterKind, probe.oldestPending, deps.clock.now());
      if (from !== null && !deps.lookback?.unchanged(job, from, probe.window)) return null;
      let stats: ReconcileStats | null = null;
      if (reconcile) {
        // Documents without a key hash are given one by a full run first.
        if (
          (await deps.keys.documentsWithoutKeyHash(kb.id, job.sourceTable, { after: null, limit: 1 }))
            .length > 0
        )
          return null;
        const ours = (await deps.keys.keyHashBuckets(kb.id, 0, null))[0] ?? {
          bucket: '',
          count: 0,
          sum: '0',
        };
        const theirs = probe.keys!;
        if (theirs.count !== ours.count || (theirs.count > 0 && theirs.sum !== ours.sum)) return null;
        stats = {
          rounds: 1,
          sourceAggregates: theirs.count > 0 ? 1 : 0,
          sourceKeys: 0,
          complete: true,
          durationMs: Math.round(performance.now() - started),
        };
      }
      return { rowsSkipped: probe.nullFilter, reconcile: stats, ...(lag !== undefined ? { lag } : {}) };
    } finally {
      unlink();
    }
  });
}
