/**
 * What embedding costs a run, and the job's token budget per run (API.md, "Cost and freshness").
 *
 * `max_tokens_per_run`: a run embeds the leading rows of each batch whose documents fit what is
 * left of the budget, checkpoints them, and stops; it ends `succeeded` with `budget_reached`, and
 * the next tick continues from that checkpoint (the rows after it were read but not written, so
 * they are read again: none lost, none embedded twice). A batch is costed before anything is sent,
 * with the tokenizer estimates use (embeddings/usage.ts), so the budget decides the same way an
 * estimate counts; what the run records is what the provider reports. A run that has embedded
 * nothing yet always takes its first document, even one larger than the whole budget, so a job
 * never stalls on one long row.
 */
import type { RowDocument } from '../core/documents.js';
import type { JobTotals, KnowledgeBaseRecord, RunRecord } from '../store/port.js';

/** What writing one document would embed: nothing unless `outcome` is `embed`. */
export interface DocumentCost {
  outcome: 'embed' | 'unchanged' | 'metadata' | 'too_long';
  tokens: number;
  chunks: number;
}

/** The knowledge base's side: what documents would cost, without embedding (kb/engine.ts). */
export interface EmbeddingCosts {
  embeddingCosts(kb: KnowledgeBaseRecord, docs: RowDocument[]): Promise<Map<string, DocumentCost>>;
}

/** Thrown after the checkpoint of the batch that reached the budget; the run ends succeeded. */
export class BudgetReached extends Error {
  override name = 'BudgetReached';
  constructor() {
    super('the run reached max_tokens_per_run');
  }
}

/** One run's budget: null max, no limit. */
export class TokenBudget {
  /** Set once a batch was cut: the run stops after its checkpoint. */
  reached = false;

  /** `spent`: what the run has embedded already (a run resumed after a takeover). */
  constructor(
    readonly max: number | null,
    private spent = 0,
  ) {}

  get limited(): boolean {
    return this.max !== null;
  }

  /**
   * How many of the leading items (rows, each with the tokens it would embed) fit what is left,
   * reserving them. The first costly item of a run that has spent nothing is always taken.
   */
  fit(costs: readonly number[]): number {
    if (this.max === null) return costs.length;
    let used = this.spent;
    for (let i = 0; i < costs.length; i++) {
      const cost = costs[i]!;
      if (used + cost > this.max && used > 0) {
        this.spent = used;
        this.reached = true;
        return i;
      }
      used += cost;
    }
    this.spent = used;
    return costs.length;
  }

  /**
   * The rows of a batch that fit, in order: each row costs the tokens of its document (a row
   * that makes no document — soft-deleted — costs nothing). Without a budget, all of them and
   * nothing is costed.
   */
  async admit<R>(
    rows: R[],
    documentOf: (row: R) => RowDocument | null,
    costs: (docs: RowDocument[]) => Promise<Map<string, DocumentCost>>,
  ): Promise<R[]> {
    if (this.max === null || rows.length === 0) return rows;
    const docs = rows.map(documentOf);
    const known = await costs(docs.filter((d): d is RowDocument => d !== null));
    const kept = this.fit(docs.map((d) => (d === null ? 0 : (known.get(d.id)?.tokens ?? 0))));
    return kept === rows.length ? rows : rows.slice(0, kept);
  }
}

/** What a written batch cost (kb/engine.ts fills these in UpsertCounts). */
export interface BatchUsage {
  embeddingTokens?: number;
  embeddingRequests?: number;
}

/** Adds a batch's usage to the run (runs stored before these fields existed read them as 0). */
export function addRunUsage(run: RunRecord, batch: BatchUsage): void {
  run.embeddingTokens = (run.embeddingTokens ?? 0) + (batch.embeddingTokens ?? 0);
  run.embeddingRequests = (run.embeddingRequests ?? 0) + (batch.embeddingRequests ?? 0);
}

/** Adds a batch's usage to the job's totals, in the checkpoint's transaction. */
export function addTotalsUsage(totals: JobTotals, batch: BatchUsage): void {
  totals.embedding_tokens = (totals.embedding_tokens ?? 0) + (batch.embeddingTokens ?? 0);
  totals.embedding_requests = (totals.embedding_requests ?? 0) + (batch.embeddingRequests ?? 0);
}

/**
 * For `executeSync`: a run stopped by its budget (BudgetReached) resolves with its record marked
 * `budgetReached`; anything else is rethrown.
 */
export function endAtBudget(run: RunRecord): (err: unknown) => RunRecord {
  return (err) => {
    if (!(err instanceof BudgetReached)) throw err;
    run.budgetReached = true;
    return run;
  };
}
