/**
 * What a job's next run would cost (POST /jobs/{job}/estimate, `dry_run` on create) and what its
 * knowledge base has cost so far (API.md, "Cost and freshness"): the run's figures from
 * sync/estimate.ts, priced with the knowledge base's `price_per_million_tokens`.
 */
import { embeddingCost, runsForTokens } from '../core/cost.js';
import type { EmbeddingUsage } from '../embeddings/port.js';
import { TOKENIZER } from '../embeddings/usage.js';
import type { ControlStore, JobRecord } from '../store/port.js';
import type { RunEstimate } from '../sync/estimate.js';

/** sync/estimate.ts estimateNextRun, bound to the app's dependencies (app.ts). */
export type Estimator = (
  job: JobRecord,
  options: { maxRows: number; signal?: AbortSignal },
) => Promise<RunEstimate>;

export interface JobEstimate extends RunEstimate {
  jobName: string;
  /** Answered to `dry_run` on create: the job does not exist. */
  dryRun: boolean;
  /** What counted the tokens. */
  tokenizer: string;
  pricePerMillionTokens: number | null;
  /** tokens × price; null without a price. */
  cost: number | null;
  maxTokensPerRun: number | null;
  /** Runs the job needs to embed it all: 1, or more with max_tokens_per_run (0 when nothing). */
  runs: number;
  maxRows: number;
}

export async function estimateJob(
  store: ControlStore,
  estimator: Estimator,
  job: JobRecord,
  options: { dryRun: boolean; maxRows: number; signal?: AbortSignal },
): Promise<JobEstimate> {
  const estimate = await estimator(job, {
    maxRows: options.maxRows,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const kb = await store.getKnowledgeBase(job.accountId, job.kbName);
  const price = kb?.embedding.price_per_million_tokens ?? null;
  const budget = job.maxTokensPerRun ?? null;
  return {
    ...estimate,
    jobName: job.name,
    dryRun: options.dryRun,
    tokenizer: TOKENIZER,
    pricePerMillionTokens: price,
    cost: embeddingCost(estimate.tokens, price),
    maxTokensPerRun: budget,
    runs: runsForTokens(estimate.tokens, budget),
    maxRows: options.maxRows,
  };
}

/**
 * A knowledge base's embedding so far: the totals of the jobs that sync into it, summed (a deleted
 * job's runs leave the sum with it; documents written through the documents API are not runs).
 */
export async function knowledgeBaseUsage(
  store: ControlStore,
  accountId: string,
  kbName: string,
): Promise<EmbeddingUsage> {
  const usage: EmbeddingUsage = { tokens: 0, requests: 0 };
  let cursor: string | null = null;
  do {
    const page = await store.listJobs(accountId, { kbName, limit: 200, cursor });
    for (const job of page.items) {
      usage.tokens += job.totals.embedding_tokens ?? 0;
      usage.requests += job.totals.embedding_requests ?? 0;
    }
    cursor = page.next;
  } while (cursor !== null);
  return usage;
}
