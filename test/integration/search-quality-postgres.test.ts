/**
 * The search-quality acceptance of test/integration/search-quality.test.ts, with the same
 * thresholds and the same labelled set and distractors, on the PostgreSQL vector store (pgvector
 * HNSW + tsvector BM25): the second backend must find what the first finds.
 *
 * app.ts does not select the PostgreSQL store yet (it will with the PostgreSQL control store), so
 * this composes what createApp composes for a query — registry, engine, local embedding model —
 * with the PostgreSQL vector store in place of the SQLite one, and calls the engine the routes call
 * (upsertFromApi, query). The control plane stays in a temporary SQLite file.
 *
 * The HNSW index answers every vector search here (indexMinChunks 0), so the figures are the
 * index's, not an exact scan's.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  formatTable,
  generateDistractors,
  loadRetrievalSet,
  MODES,
  type Mode,
  type QualityResult,
  type QualityRow,
  type QueryOutcome,
  RECALL_DEFINITION,
  summarise,
  TOP_K,
} from '../../bench/search-quality.js';
import { createEmbeddingProvider } from '../../src/embeddings/factory.js';
import type { EmbeddingProvider } from '../../src/embeddings/port.js';
import { KnowledgeBaseEngine } from '../../src/kb/engine.js';
import { KnowledgeBaseRegistry } from '../../src/kb/registry.js';
import { SecretBox } from '../../src/secrets/crypto.js';
import { openPostgresVectorStore, type PostgresVectorStore } from '../../src/store/postgres/vector-store.js';
import { SqliteControlStore } from '../../src/store/sqlite/control-store.js';
import { openSqliteFile } from '../../src/store/sqlite/open.js';
import { skipUnlessPgvector, type TempDatabase, withTempPostgresDatabase } from '../helpers/pgvector.js';

const DISTRACTORS = 2000;
const ACCOUNT = 'default';

const skip = await skipUnlessPgvector();

/** What bench/search-quality.ts measures through HTTP, on the engine with the given vector store. */
async function measure(
  vectors: PostgresVectorStore,
  local: EmbeddingProvider,
  distractors: number,
): Promise<QualityResult> {
  const labelled = loadRetrievalSet();
  const documents = [...labelled.documents, ...generateDistractors(distractors, labelled)];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kbsync-quality-pg-'));
  const control = new SqliteControlStore(openSqliteFile(path.join(dir, 'kbsync.db')), { ownsDb: true });
  const registry = new KnowledgeBaseRegistry(
    control,
    SecretBox.fromSetting('search-quality-postgres-test-key'),
  );
  const engine = new KnowledgeBaseEngine(
    vectors,
    registry,
    (config) => {
      if (config.provider !== 'local') throw new Error('only the local model here');
      // Shared across knowledge bases and closed once, as app.ts does.
      return {
        id: local.id,
        dimensions: () => local.dimensions(),
        embed: (t, o) => local.embed(t, o),
        close: async () => undefined,
      };
    },
    { maxDocumentChars: 1_000_000 },
  );
  registry.setHooks(engine.hooks());
  const kbName = `quality_${distractors}`;
  try {
    await registry.create(ACCOUNT, { kb_name: kbName });
    const loadStarted = performance.now();
    for (let i = 0; i < documents.length; i += 1000) {
      const batch = documents.slice(i, i + 1000);
      const counts = await engine.upsertFromApi(ACCOUNT, kbName, { documents: batch });
      assert.equal(counts.added, batch.length);
    }
    const load = (performance.now() - loadStarted) / 1000;
    const queryStarted = performance.now();
    const perQuery: QueryOutcome[] = [];
    for (const q of labelled.queries) {
      const ranked = {} as Record<Mode, string[]>;
      for (const mode of MODES) {
        const { results } = await engine.query(ACCOUNT, kbName, { query: q.query, mode, top_k: TOP_K });
        ranked[mode] = [...new Set(results.map((r) => r.document_id))];
      }
      perQuery.push({ query: q.query, kind: q.kind, relevant: q.relevant, ranked });
    }
    return {
      rows: summarise(perQuery),
      perQuery,
      definition: RECALL_DEFINITION,
      documents: documents.length,
      distractors,
      seconds: { load, queries: (performance.now() - queryStarted) / 1000 },
    };
  } finally {
    await engine.close();
    control.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('search quality on PostgreSQL (pgvector HNSW + BM25)', { skip }, () => {
  let database: TempDatabase;
  let vectors: PostgresVectorStore;
  let local: EmbeddingProvider;

  before(async () => {
    database = await withTempPostgresDatabase();
    vectors = await openPostgresVectorStore(database.url, 'kbsync_quality', { indexMinChunks: 0, max: 4 });
    // The figures do not depend on the thread count; a second thread only embeds faster.
    local = createEmbeddingProvider(
      { provider: 'local' },
      { local: { threads: Math.min(2, os.availableParallelism()) } },
    );
  });
  after(async () => {
    await local?.close();
    await vectors?.close();
    await database?.close();
  });

  for (const setting of [
    { name: 'labelled set alone', distractors: 0 },
    { name: `labelled set among ${DISTRACTORS} distractors`, distractors: DISTRACTORS },
  ]) {
    describe(setting.name, () => {
      let result: QualityResult;
      let table: string;

      before(async () => {
        result = await measure(vectors, local, setting.distractors);
        table = formatTable(result);
      });

      function row(mode: Mode, kind: QualityRow['kind']): QualityRow {
        const found = result.rows.find((r) => r.mode === mode && r.kind === kind);
        assert.ok(found, `no row for ${mode}/${kind}`);
        return found;
      }

      it('measures every mode on the whole set, per query kind, with the HNSW index answering', (t) => {
        t.diagnostic(`\n${table}\nplans: ${JSON.stringify(vectors.planCounts)}`);
        assert.equal(result.rows.length, 9);
        assert.ok(row('hybrid', 'all').queries >= 40);
        assert.ok(row('hybrid', 'paraphrase').queries > 0 && row('hybrid', 'exact').queries > 0);
        assert.ok(
          vectors.planCounts.index > 0 && vectors.planCounts.exact === 0,
          JSON.stringify(vectors.planCounts),
        );
      });

      it('hybrid is at least as good as the better single mode (recall@5 and recall@1, no tolerance)', () => {
        const [semantic, keyword, hybrid] = [
          row('semantic', 'all'),
          row('keyword', 'all'),
          row('hybrid', 'all'),
        ];
        assert.ok(hybrid.recallAt5 >= Math.max(semantic.recallAt5, keyword.recallAt5), `recall@5\n${table}`);
        assert.ok(hybrid.recallAt1 >= Math.max(semantic.recallAt1, keyword.recallAt1), `recall@1\n${table}`);
      });

      it('semantic search beats keyword search on paraphrased queries', () => {
        const [semantic, keyword] = [row('semantic', 'paraphrase'), row('keyword', 'paraphrase')];
        assert.ok(semantic.recallAt5 > keyword.recallAt5, `recall@5\n${table}`);
        assert.ok(semantic.recallAt1 > keyword.recallAt1, `recall@1\n${table}`);
      });

      it('keyword search is at least as good as semantic search on exact product codes and names', () => {
        const [semantic, keyword] = [row('semantic', 'exact'), row('keyword', 'exact')];
        assert.ok(keyword.recallAt5 >= semantic.recallAt5, `recall@5\n${table}`);
        assert.ok(keyword.recallAt1 >= semantic.recallAt1, `recall@1\n${table}`);
      });
    });
  }
});
