/**
 * Search quality: recall@1 and recall@5 of the three query modes (semantic, keyword, hybrid) on a
 * small hand-labelled retrieval set (bench/data/retrieval-set.json), through the real HTTP API and
 * the real default embedding provider (the local Universal Sentence Encoder lite model).
 *
 *   npx tsx bench/search-quality.ts            the table
 *   npx tsx bench/search-quality.ts --queries  the table, then every query's top 5 per mode
 *   npx tsx bench/search-quality.ts --variants the table, then recall of fusion variants computed
 *                                              here from the raw semantic and keyword lists
 *
 * recall@k here is the fraction of queries whose top k results contain at least one document
 * labelled relevant (a "success@k" or "hit rate@k"; most queries have exactly one relevant
 * document, so it equals classic recall for those).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';

export const MODES = ['semantic', 'keyword', 'hybrid'] as const;
export type Mode = (typeof MODES)[number];
export type QueryKind = 'paraphrase' | 'exact';

export const TOP_K = 5;
export const RECALL_DEFINITION =
  'recall@k = fraction of queries whose top-k results contain at least one document labelled relevant';

export interface RetrievalSet {
  documents: Array<{
    id: string;
    content: string;
    metadata?: Record<string, string | number | boolean | null>;
  }>;
  queries: Array<{ query: string; relevant: string[]; kind: QueryKind }>;
}

export interface QualityRow {
  mode: Mode;
  kind: QueryKind | 'all';
  recallAt1: number;
  recallAt5: number;
  queries: number;
}

export interface QueryOutcome {
  query: string;
  kind: QueryKind;
  relevant: string[];
  /** Document ids of the top 5 per mode, best first. */
  ranked: Record<Mode, string[]>;
  /** With `listDepth`: the semantic and keyword result lists at that depth, for fusion experiments. */
  lists?: { semantic: ListHit[]; keyword: ListHit[]; keywordNoStopwords: ListHit[] };
}

/** One API result, as a fusion input: `relevance` is monotone in the store's raw score. */
export interface ListHit {
  documentId: string;
  chunkId: string;
  relevance: number;
}

export interface QualityResult {
  rows: QualityRow[];
  /** Every query's ranking per mode, for analysing misses. */
  perQuery: QueryOutcome[];
  definition: string;
  documents: number;
}

const DATA_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'data', 'retrieval-set.json');

export function loadRetrievalSet(file = DATA_FILE): RetrievalSet {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as RetrievalSet;
}

/** Fraction of outcomes whose top k (in `mode`) holds a relevant document. */
function recallAt(outcomes: QueryOutcome[], mode: Mode, k: number): number {
  if (outcomes.length === 0) return 0;
  const hits = outcomes.filter((o) =>
    o.ranked[mode].slice(0, k).some((id) => o.relevant.includes(id)),
  ).length;
  return hits / outcomes.length;
}

export function summarise(perQuery: QueryOutcome[]): QualityRow[] {
  const rows: QualityRow[] = [];
  for (const mode of MODES) {
    for (const kind of ['all', 'paraphrase', 'exact'] as const) {
      const subset = kind === 'all' ? perQuery : perQuery.filter((o) => o.kind === kind);
      rows.push({
        mode,
        kind,
        recallAt1: recallAt(subset, mode, 1),
        recallAt5: recallAt(subset, mode, TOP_K),
        queries: subset.length,
      });
    }
  }
  return rows;
}

/**
 * Starts an app on a temporary data directory (scheduler off, logs silent, default embedding
 * provider), loads the retrieval set through POST /knowledge_bases/{kb}/documents, asks every query
 * in every mode with top_k 5, and closes the app (and removes the directory) whatever happens.
 *
 * One embedding worker thread: the model is loaded once, and the figures do not depend on the
 * thread count (each text is embedded on its own by the same deterministic model).
 */
export async function benchSearchQuality(
  options: { set?: RetrievalSet; threads?: number; listDepth?: number } = {},
): Promise<QualityResult> {
  const set = options.set ?? loadRetrievalSet();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kbsync-search-quality-'));
  const config = loadConfig({ LOG_LEVEL: 'silent' } as NodeJS.ProcessEnv, {
    dataDir,
    scheduler: false,
    localEmbeddingThreads: options.threads ?? 1,
  });
  const app = await createApp(config);
  /** The `data` of a successful answer; anything else throws with the answer's body. */
  const request = async <T>(url: string, payload: object): Promise<T> => {
    const res = await app.server.inject({ method: 'POST', url, payload });
    if (res.statusCode >= 300)
      throw new Error(`POST ${url} answered ${res.statusCode}: ${res.body.slice(0, 500)}`);
    return (res.json() as { data: T }).data;
  };
  type Results = { results: Array<{ document_id: string; chunk_id: string; relevance: number }> };
  try {
    await request('/knowledge_bases', { kb_name: 'quality' });
    const counts = await request<{ added: number }>('/knowledge_bases/quality/documents', {
      documents: set.documents,
    });
    if (counts.added !== set.documents.length)
      throw new Error(`expected ${set.documents.length} documents added, got ${JSON.stringify(counts)}`);

    const perQuery: QueryOutcome[] = [];
    for (const q of set.queries) {
      const ranked = {} as Record<Mode, string[]>;
      for (const mode of MODES) {
        const data = await request<Results>('/knowledge_bases/quality/query', {
          query: q.query,
          mode,
          top_k: TOP_K,
        });
        // Results are chunks; a document split into several chunks counts once, at its best rank.
        ranked[mode] = [...new Set(data.results.map((r) => r.document_id))];
      }
      const outcome: QueryOutcome = { query: q.query, kind: q.kind, relevant: q.relevant, ranked };
      if (options.listDepth !== undefined) {
        const list = async (mode: 'semantic' | 'keyword', query = q.query): Promise<ListHit[]> => {
          const data = await request<Results>('/knowledge_bases/quality/query', {
            query,
            mode,
            top_k: options.listDepth,
          });
          return data.results.map((r) => ({
            documentId: r.document_id,
            chunkId: r.chunk_id,
            relevance: r.relevance,
          }));
        };
        outcome.lists = {
          semantic: await list('semantic'),
          keyword: await list('keyword'),
          keywordNoStopwords: await list('keyword', withoutStopwords(q.query)),
        };
      }
      perQuery.push(outcome);
    }
    return {
      rows: summarise(perQuery),
      perQuery,
      definition: RECALL_DEFINITION,
      documents: set.documents.length,
    };
  } finally {
    await app.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

// ---------------------------------------------------------------------------------------------
// Fusion experiments (--variants). Not used by the test: they re-rank the raw lists the API returns
// for `semantic` and `keyword` at the engine's hybrid depth, to compare other fusions with the
// engine's on the same inputs. The first variant copies src/kb/relevance.ts `fuse` and
// src/kb/engine.ts's depth; `checkEngineCopy` verifies it ranks exactly like the API's hybrid.

/** src/kb/engine.ts: `Math.min(Math.max(topK * 4, 40), 400)` for top_k 5. */
export const ENGINE_HYBRID_DEPTH = Math.min(Math.max(TOP_K * 4, 40), 400);

/**
 * The classic NLTK English stop-word list (179 words, as of NLTK 3.x without the contractions):
 * used to try a keyword query that ignores them, which would be a change to
 * src/store/sqlite/vector-keyword-query.ts. Not tuned on this set.
 */
export const STOPWORDS = new Set(
  `i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
  herself it its itself they them their theirs themselves what which who whom this that these those am is are
  was were be been being have has had having do does did doing a an the and but if or because as until while
  of at by for with about against between into through during before after above below to from up down in out
  on off over under again further then once here there when where why how all any both each few more most
  other some such no nor not only own same so than too very s t can will just don should now`.split(/\s+/),
);

/** The query without stop words; unchanged when nothing else is left. */
export function withoutStopwords(query: string): string {
  const kept = query
    .split(/\s+/)
    .filter((w) => w !== '' && !STOPWORDS.has(w.toLowerCase().replace(/[^\p{L}\p{N}]/gu, '')));
  return kept.length === 0 ? query : kept.join(' ');
}

/** Ranks document ids from the two lists (best first). */
export type Fusion = (semantic: ListHit[], keyword: ListHit[]) => string[];

function rankDocuments(scores: Map<string, { hit: ListHit; score: number }>): string[] {
  // Array.prototype.sort is stable: ties keep insertion order (semantic list first), as in the engine.
  const sorted = [...scores.values()].sort((a, b) => b.score - a.score);
  return [...new Set(sorted.map((s) => s.hit.documentId))].slice(0, TOP_K);
}

/** Weighted reciprocal-rank fusion over the first `depth` hits of each list. */
export function rrf(options: {
  k: number;
  depth?: number;
  semanticWeight?: number;
  keywordWeight?: number;
}): Fusion {
  const { k, depth = ENGINE_HYBRID_DEPTH, semanticWeight = 1, keywordWeight = 1 } = options;
  return (semantic, keyword) => {
    const fused = new Map<string, { hit: ListHit; score: number }>();
    for (const [list, weight] of [
      [semantic, semanticWeight],
      [keyword, keywordWeight],
    ] as const) {
      list.slice(0, depth).forEach((hit, rank) => {
        const entry = fused.get(hit.chunkId) ?? { hit, score: 0 };
        entry.score += weight / (k + rank + 1);
        fused.set(hit.chunkId, entry);
      });
    }
    return rankDocuments(fused);
  };
}

/** alpha * semantic relevance + (1 - alpha) * keyword relevance (the API's [0, 1] relevances). */
export function relevanceSum(alpha: number): Fusion {
  return (semantic, keyword) => {
    const fused = new Map<string, { hit: ListHit; score: number }>();
    for (const [list, weight] of [
      [semantic, alpha],
      [keyword, 1 - alpha],
    ] as const) {
      for (const hit of list) {
        const entry = fused.get(hit.chunkId) ?? { hit, score: 0 };
        entry.score += weight * hit.relevance;
        fused.set(hit.chunkId, entry);
      }
    }
    return rankDocuments(fused);
  };
}

/** Each list's relevances rescaled to [0, 1] by its own min and max, then alpha : 1 - alpha. */
export function minMaxSum(alpha: number): Fusion {
  const scale = (list: ListHit[]) => {
    const values = list.map((h) => h.relevance);
    const lo = Math.min(...values);
    const span = Math.max(...values) - lo;
    return list.map((h) => ({ ...h, relevance: span > 0 ? (h.relevance - lo) / span : 1 }));
  };
  const sum = relevanceSum(alpha);
  return (semantic, keyword) => sum(scale(semantic), scale(keyword));
}

/** Ranks by the keyword list alone: keyword mode, as a variant (for the stop-word list). */
const keywordOnly: Fusion = (_semantic, keyword) =>
  [...new Set(keyword.map((h) => h.documentId))].slice(0, TOP_K);

export interface FusionVariant {
  name: string;
  fuse: Fusion;
  /** Which keyword list to fuse: as the API builds it today, or with stop words dropped. */
  keywordList?: 'keyword' | 'keywordNoStopwords';
}

export const FUSION_VARIANTS: FusionVariant[] = [
  { name: 'engine: RRF k=60, depth 40, weights 1:1', fuse: rrf({ k: 60 }) },
  { name: 'RRF k=60, depth 20', fuse: rrf({ k: 60, depth: 20 }) },
  { name: 'RRF k=60, depth 10', fuse: rrf({ k: 60, depth: 10 }) },
  { name: 'RRF k=60, depth 5', fuse: rrf({ k: 60, depth: 5 }) },
  { name: 'RRF k=20, depth 40', fuse: rrf({ k: 20 }) },
  { name: 'RRF k=10, depth 40', fuse: rrf({ k: 10 }) },
  { name: 'RRF k=1, depth 40', fuse: rrf({ k: 1 }) },
  { name: 'RRF k=60, depth 40, weights 1:0.5', fuse: rrf({ k: 60, keywordWeight: 0.5 }) },
  { name: 'RRF k=60, depth 40, weights 1:0.25', fuse: rrf({ k: 60, keywordWeight: 0.25 }) },
  { name: 'RRF k=10, depth 40, weights 1:0.5', fuse: rrf({ k: 10, keywordWeight: 0.5 }) },
  { name: 'relevance sum 0.5:0.5', fuse: relevanceSum(0.5) },
  { name: 'relevance sum 0.7:0.3', fuse: relevanceSum(0.7) },
  { name: 'min-max score fusion 0.5:0.5', fuse: minMaxSum(0.5) },
  { name: 'stop words dropped: keyword alone', fuse: keywordOnly, keywordList: 'keywordNoStopwords' },
  {
    name: 'stop words dropped: RRF k=60, depth 40, 1:1',
    fuse: rrf({ k: 60 }),
    keywordList: 'keywordNoStopwords',
  },
  {
    name: 'stop words dropped: RRF k=60, depth 40, 1:0.5',
    fuse: rrf({ k: 60, keywordWeight: 0.5 }),
    keywordList: 'keywordNoStopwords',
  },
  {
    name: 'stop words dropped: relevance sum 0.5:0.5',
    fuse: relevanceSum(0.5),
    keywordList: 'keywordNoStopwords',
  },
];

export interface VariantRow {
  name: string;
  all: { recallAt1: number; recallAt5: number };
  paraphrase: { recallAt1: number; recallAt5: number };
  exact: { recallAt1: number; recallAt5: number };
  /**
   * Exact queries with the relevant documents removed from the semantic list: what happens in a
   * large knowledge base, where a product code's document is rarely among the semantic top 40.
   */
  exactNotInSemantic: { recallAt1: number; recallAt5: number };
}

export function evaluateFusions(perQuery: QueryOutcome[], variants = FUSION_VARIANTS): VariantRow[] {
  return variants.map(({ name, fuse, keywordList = 'keyword' }) => {
    const outcomes = perQuery.map((o) => {
      if (!o.lists) throw new Error('evaluateFusions needs benchSearchQuality({ listDepth })');
      return { ...o, ranked: { ...o.ranked, hybrid: fuse(o.lists.semantic, o.lists[keywordList]) } };
    });
    const rows = summarise(outcomes).filter((r) => r.mode === 'hybrid');
    const pick = (kind: QualityRow['kind']) => {
      const r = rows.find((x) => x.kind === kind)!;
      return { recallAt1: r.recallAt1, recallAt5: r.recallAt5 };
    };
    const stressed = perQuery
      .filter((o) => o.kind === 'exact')
      .map((o) => {
        const semantic = o.lists!.semantic.filter((h) => !o.relevant.includes(h.documentId));
        return { ...o, ranked: { ...o.ranked, hybrid: fuse(semantic, o.lists![keywordList]) } };
      });
    return {
      name,
      all: pick('all'),
      paraphrase: pick('paraphrase'),
      exact: pick('exact'),
      exactNotInSemantic: {
        recallAt1: recallAt(stressed, 'hybrid', 1),
        recallAt5: recallAt(stressed, 'hybrid', TOP_K),
      },
    };
  });
}

/** Queries whose API hybrid top 5 differs from the copy of the engine's fusion (should be none). */
export function checkEngineCopy(perQuery: QueryOutcome[]): string[] {
  const engine = rrf({ k: 60 });
  return perQuery
    .filter((o) => o.lists && engine(o.lists.semantic, o.lists.keyword).join() !== o.ranked.hybrid.join())
    .map((o) => o.query);
}

export function formatVariants(rows: VariantRow[]): string {
  const cell = (x: { recallAt1: number; recallAt5: number }) =>
    `${pct(x.recallAt1).padStart(6)} ${pct(x.recallAt5).padStart(6)}`;
  const width = Math.max(...rows.map((r) => r.name.length));
  return [
    `${'hybrid fusion variant'.padEnd(width)}  ${'all @1/@5'.padStart(13)}  ${'paraphrase'.padStart(13)}  ${'exact'.padStart(13)}  ${'exact, not in sem.'.padStart(18)}`,
    ...rows.map(
      (r) =>
        `${r.name.padEnd(width)}  ${cell(r.all)}  ${cell(r.paraphrase)}  ${cell(r.exact)}  ${cell(r.exactNotInSemantic).padStart(18)}`,
    ),
  ].join('\n');
}

export function formatTable(result: QualityResult): string {
  const header = ['mode', 'queries', 'kind', 'recall@1', 'recall@5'];
  const lines = result.rows.map((r) => [
    r.mode,
    String(r.queries),
    r.kind,
    pct(r.recallAt1),
    pct(r.recallAt5),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) =>
    cells.map((c, i) => (i >= 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  return [
    `Search quality: ${result.documents} documents, ${result.perQuery.length} queries, top_k ${TOP_K}, local embedding model (USE lite)`,
    result.definition,
    '',
    fmt(header),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...lines.map(fmt),
  ].join('\n');
}

export function formatQueries(result: QualityResult): string {
  const out: string[] = [];
  for (const o of result.perQuery) {
    out.push(`[${o.kind}] ${o.query}   relevant: ${o.relevant.join(', ')}`);
    for (const mode of MODES) {
      const marks = o.ranked[mode].map((id) => (o.relevant.includes(id) ? `*${id}*` : id));
      out.push(`  ${mode.padEnd(8)} ${marks.join(', ') || '(no results)'}`);
    }
  }
  return out.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = performance.now();
  const variants = process.argv.includes('--variants');
  const result = await benchSearchQuality(variants ? { listDepth: ENGINE_HYBRID_DEPTH } : {});
  console.log(formatTable(result));
  if (process.argv.includes('--queries')) console.log(`\n${formatQueries(result)}`);
  if (variants) {
    const mismatches = checkEngineCopy(result.perQuery);
    console.log(
      `\nFusion variants on the same semantic and keyword lists (depth ${ENGINE_HYBRID_DEPTH}); recall@1 recall@5:`,
    );
    console.log(formatVariants(evaluateFusions(result.perQuery)));
    console.log(
      mismatches.length === 0
        ? 'the engine copy ranks every query exactly like the API'
        : `engine copy differs on: ${mismatches.join(' | ')}`,
    );
  }
  console.log(`\ntotal ${((performance.now() - started) / 1000).toFixed(1)} s`);
}
