/**
 * Search quality is measured, not guessed: recall@1 and recall@5 of semantic, keyword and hybrid
 * search on the labelled retrieval set (bench/data/retrieval-set.json), with the real local
 * embedding model, through the HTTP API (bench/search-quality.ts does the measuring).
 *
 * recall@k = fraction of queries whose top k results contain at least one relevant document.
 *
 * Two settings: the labelled set alone (70 documents), and the same set among 2000 generated
 * distractors (plausible product sheets, reviews, advice, store notes; seeded, so the same every
 * run) - closer to a real knowledge base, where an exact product code's document is rarely among
 * the semantic neighbours of the code.
 *
 * Acceptance, on all queries, in both settings: hybrid is at least as good as the better single
 * mode, at 1 and at 5, with no tolerance. And each single mode does its job: semantic beats keyword
 * on paraphrased queries, keyword is at least as good as semantic on exact product codes and model
 * names.
 *
 * The model is deterministic (same vectors on every run and thread count), so these are fixed
 * figures, not samples: a change that moves them is a change in search quality (or in the set).
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import { before, describe, it } from 'node:test';
import {
  benchSearchQuality,
  formatTable,
  type Mode,
  type QualityResult,
  type QualityRow,
} from '../../bench/search-quality.js';

const DISTRACTORS = 2000;

const settings = [
  { name: 'labelled set alone', distractors: 0 },
  { name: `labelled set among ${DISTRACTORS} distractors`, distractors: DISTRACTORS },
];

for (const setting of settings) {
  describe(setting.name, () => {
    let result: QualityResult;
    let table: string;

    before(async () => {
      // The figures do not depend on the thread count; a second thread only embeds faster.
      const threads = setting.distractors > 0 ? Math.min(2, os.availableParallelism()) : 1;
      result = await benchSearchQuality({ distractors: setting.distractors, threads });
      table = formatTable(result);
    });

    function row(mode: Mode, kind: QualityRow['kind']): QualityRow {
      const found = result.rows.find((r) => r.mode === mode && r.kind === kind);
      assert.ok(found, `no row for ${mode}/${kind}`);
      return found;
    }

    it('measures every mode on the whole set, per query kind', (t) => {
      t.diagnostic(`\n${table}`);
      assert.equal(result.rows.length, 9);
      assert.equal(result.distractors, setting.distractors);
      assert.ok(result.documents - result.distractors >= 60, `${result.documents} documents`);
      assert.ok(row('hybrid', 'all').queries >= 40);
      assert.ok(row('hybrid', 'paraphrase').queries > 0 && row('hybrid', 'exact').queries > 0);
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
