/**
 * The pure parts of issue 12's "Cost": prices, runs for a budget, the per-run token budget's
 * cut, what writing documents would do (kb/changes.ts), the token count of what is sent, and
 * reading `usage` from an OpenAI-compatible answer.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { embeddingCost, runsForTokens } from '../../src/core/cost.js';
import { parseEmbeddingsResponse } from '../../src/embeddings/openai/response.js';
import { countInputTokens } from '../../src/embeddings/usage.js';
import { classifyDocuments, documentHash } from '../../src/kb/changes.js';
import {
  addRunUsage,
  addTotalsUsage,
  BudgetReached,
  endAtBudget,
  TokenBudget,
} from '../../src/sync/budget.js';
import { EMPTY_TOTALS, type JobTotals, type RunRecord } from '../../src/store/port.js';

describe('embeddingCost', () => {
  it('is null without a price, never a guessed one', () => {
    assert.equal(embeddingCost(1_000_000, null), null);
    assert.equal(embeddingCost(1_000_000, undefined), null);
  });

  it('is tokens × price per million, without float noise', () => {
    assert.equal(embeddingCost(1_000_000, 0.02), 0.02);
    assert.equal(embeddingCost(182_730, 0.02), 0.0036546);
    assert.equal(embeddingCost(3, 0.1), 0.0000003);
    assert.equal(embeddingCost(0, 0.13), 0);
    assert.equal(embeddingCost(5_000, 0), 0);
  });
});

describe('runsForTokens', () => {
  it('none for nothing, one without a budget, ceil(tokens / budget) with one', () => {
    assert.equal(runsForTokens(0, 100), 0);
    assert.equal(runsForTokens(0, null), 0);
    assert.equal(runsForTokens(5_000, null), 1);
    assert.equal(runsForTokens(100, 100), 1);
    assert.equal(runsForTokens(101, 100), 2);
    assert.equal(runsForTokens(1_000, 300), 4);
  });
});

describe('TokenBudget', () => {
  it('without a maximum takes everything and never stops', () => {
    const b = new TokenBudget(null);
    assert.equal(b.fit([10, 10_000, 1e9]), 3);
    assert.equal(b.reached, false);
    assert.equal(b.limited, false);
  });

  it('takes the leading rows that fit, across batches, and stops at the first that does not', () => {
    const b = new TokenBudget(100);
    assert.equal(b.fit([30, 30]), 2);
    assert.equal(b.reached, false);
    // 60 spent: 30 fits (90), 20 does not (110).
    assert.equal(b.fit([30, 20, 5]), 1);
    assert.equal(b.reached, true);
  });

  it('exactly at the maximum is within it; rows that cost nothing pass until a costly one', () => {
    const b = new TokenBudget(100);
    assert.equal(b.fit([50, 50]), 2);
    assert.equal(b.reached, false);
    assert.equal(b.fit([0, 0, 1, 0]), 2);
    assert.equal(b.reached, true);
  });

  it('a run that has embedded nothing takes its first document even when it alone exceeds the budget', () => {
    const b = new TokenBudget(10);
    assert.equal(b.fit([0, 500, 1]), 2);
    assert.equal(b.reached, true);
    const fresh = new TokenBudget(10);
    assert.equal(fresh.fit([500]), 1);
    assert.equal(fresh.reached, false);
    assert.equal(fresh.fit([1]), 0);
    assert.equal(fresh.reached, true);
  });

  it('a run resumed after a takeover starts with what it had embedded', () => {
    const b = new TokenBudget(100, 80);
    assert.equal(b.fit([15, 10]), 1);
    assert.equal(b.reached, true);
  });

  it('admit costs the rows by their documents; soft-deleted rows cost nothing', async () => {
    const rows = ['a', 'b', 'deleted', 'c'];
    const costs = new Map([
      ['a', { outcome: 'embed' as const, tokens: 40, chunks: 1 }],
      ['b', { outcome: 'unchanged' as const, tokens: 0, chunks: 0 }],
      ['c', { outcome: 'embed' as const, tokens: 70, chunks: 2 }],
    ]);
    let asked: string[] = [];
    const b = new TokenBudget(100);
    const kept = await b.admit(
      rows,
      (row) => (row === 'deleted' ? null : { id: row, content: row, metadata: {} }),
      async (docs) => {
        asked = docs.map((d) => d.id);
        return costs;
      },
    );
    assert.deepEqual(asked, ['a', 'b', 'c']);
    assert.deepEqual(kept, ['a', 'b', 'deleted']);
    assert.equal(b.reached, true);
  });

  it('admit without a budget costs nothing (no query to the knowledge base)', async () => {
    let calls = 0;
    const kept = await new TokenBudget(null).admit(
      [1, 2, 3],
      () => null,
      async () => {
        calls++;
        return new Map();
      },
    );
    assert.deepEqual(kept, [1, 2, 3]);
    assert.equal(calls, 0);
  });

  it('endAtBudget turns BudgetReached into a run marked budget_reached and rethrows anything else', () => {
    const run = { id: 'run_1' } as RunRecord;
    assert.equal(endAtBudget(run)(new BudgetReached()), run);
    assert.equal(run.budgetReached, true);
    const other = new Error('boom');
    assert.throws(
      () => endAtBudget({ id: 'run_2' } as RunRecord)(other),
      (e) => e === other,
    );
  });

  it('usage adds up on runs and totals stored before it existed (absent reads as 0)', () => {
    const run = {} as RunRecord;
    addRunUsage(run, { embeddingTokens: 12, embeddingRequests: 1 });
    addRunUsage(run, {});
    addRunUsage(run, { embeddingTokens: 3, embeddingRequests: 2 });
    assert.equal(run.embeddingTokens, 15);
    assert.equal(run.embeddingRequests, 3);
    const { embedding_tokens: _t, embedding_requests: _r, ...old } = EMPTY_TOTALS;
    const totals: JobTotals = { ...old };
    addTotalsUsage(totals, { embeddingTokens: 7, embeddingRequests: 1 });
    assert.equal(totals.embedding_tokens, 7);
    assert.equal(totals.embedding_requests, 1);
  });
});

describe('classifyDocuments', () => {
  const options = { maxChars: 50, chunking: { chunk_size: 50, chunk_overlap: 0 } };
  const doc = (id: string, content: string, metadata: Record<string, string | number> = {}) => ({
    id,
    content,
    metadata,
  });

  it('sorts documents into unchanged, metadata only, to embed (new or changed) and too long', () => {
    const same = doc('same', 'alpha', { v: 1 });
    const meta = doc('meta', 'beta', { v: 2 });
    const changed = doc('changed', 'gamma new', { v: 1 });
    const stored = new Map([
      ['same', documentHash('alpha', { v: 1 }).full],
      ['meta', documentHash('beta', { v: 1 }).full],
      ['changed', documentHash('gamma', { v: 1 }).full],
    ]);
    const out = classifyDocuments(
      [same, meta, changed, doc('new', 'delta'), doc('long', 'x'.repeat(51))],
      stored,
      options,
    );
    assert.deepEqual(
      out.unchanged.map((d) => d.id),
      ['same'],
    );
    assert.deepEqual(
      out.metadataOnly.map((m) => m.doc.id),
      ['meta'],
    );
    assert.deepEqual(
      out.toEmbed.map((e) => [e.doc.id, e.isNew]),
      [
        ['changed', false],
        ['new', true],
      ],
    );
    assert.deepEqual(
      out.tooLong.map((t) => t.id),
      ['long'],
    );
    assert.match(out.tooLong[0]!.reason, /51 characters; the limit is 50/);
  });

  it('chunks what it would embed as the knowledge base is configured', () => {
    const text = Array.from({ length: 30 }, (_, i) => `word${i}`).join(' ');
    const out = classifyDocuments([doc('a', text)], new Map(), {
      maxChars: 10_000,
      chunking: { chunk_size: 60, chunk_overlap: 0 },
    });
    assert.ok(out.toEmbed[0]!.chunks.length > 1);
    assert.equal(
      out.toEmbed[0]!.chunks.map((c) => c.text)
        .join(' ')
        .replace(/\s+/g, ' '),
      text,
    );
  });
});

describe('countInputTokens', () => {
  it('counts cl100k tokens of what is sent; a blank text goes out as one space (1 token)', async () => {
    assert.equal(await countInputTokens([]), 0);
    assert.equal(await countInputTokens(['hello world']), 2);
    assert.equal(await countInputTokens(['', '   ']), 2);
    // Special-token text from a database counts as plain text instead of throwing.
    assert.ok((await countInputTokens(['a <|endoftext|> b'])) > 3);
  });
});

describe('parseEmbeddingsResponse', () => {
  const answer = (usage?: unknown) =>
    JSON.stringify({
      data: [
        { index: 1, embedding: [0, 2] },
        { index: 0, embedding: [3, 4] },
      ],
      model: 'm',
      ...(usage === undefined ? {} : { usage }),
    });

  it('reads the vectors by index and what the server billed', () => {
    const parsed = parseEmbeddingsResponse(answer({ prompt_tokens: 9, total_tokens: 11 }), 2, undefined);
    assert.ok(!('invalid' in parsed));
    assert.deepEqual(Array.from(parsed.vectors[0]!), [0.6000000238418579, 0.800000011920929]);
    assert.equal(parsed.usageTokens, 11);
    assert.equal(parsed.model, 'm');
  });

  it('falls back to prompt_tokens, and says nothing when usage is absent or malformed', () => {
    const get = (usage: unknown) => {
      const p = parseEmbeddingsResponse(answer(usage), 2, undefined);
      assert.ok(!('invalid' in p));
      return p.usageTokens;
    };
    assert.equal(get({ prompt_tokens: 9 }), 9);
    assert.equal(get(undefined), undefined);
    assert.equal(get({ total_tokens: -1 }), undefined);
    assert.equal(get({ total_tokens: '12' }), undefined);
    assert.equal(get('lots'), undefined);
  });

  it('still refuses a malformed answer', () => {
    assert.deepEqual(parseEmbeddingsResponse('nope', 1, undefined), { invalid: 'not JSON' });
    assert.deepEqual(parseEmbeddingsResponse(answer(), 3, undefined), {
      invalid: '2 embeddings for 3 inputs',
    });
    assert.match(
      (parseEmbeddingsResponse(answer(), 2, { dims: 4, requested: true }) as { invalid: string }).invalid,
      /dimensions=4 was configured/,
    );
  });
});
