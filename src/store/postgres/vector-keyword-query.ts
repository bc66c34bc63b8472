/**
 * Keyword search on PostgreSQL: the same query terms as on SQLite, ranked by the same BM25.
 *
 * Terms: the user's text goes through the SQLite adapter's own term rules (sqlite/
 * vector-keyword-query.ts: quoted phrases, stop words dropped unless every term is one, codes
 * kept, at most 32 terms), so both backends search for the same words. Each term becomes a phrase
 * tsquery over the kbsync_english configuration (migrations.ts), ORed: a chunk matching some of
 * the words still ranks, as with FTS5.
 *
 * Ranking: BM25 with FTS5's constants (k1 = 1.2, b = 0.75, idf = ln((N - n + 0.5) / (n + 0.5)),
 * floored at 1e-6), so the raw score is on the scale kb/relevance.ts maps to [0, 1] (`bm25 /
 * (bm25 + 5)`) and a `min_relevance` means the same on both backends. ts_rank_cd would not: it has
 * no document frequencies, so a rare product code and a common word would weigh the same, and its
 * scale is unrelated. N and the average chunk length come from the collection's running counts;
 * n (chunks holding a term) is counted among the candidates, which are every chunk holding any
 * term, before the metadata filter, as FTS5 computes its statistics over the whole table. A
 * phrase's frequency is its number of occurrences, as FTS5 counts phrase instances.
 *
 * The cost is one pass over the chunks that hold any query term (the GIN index finds them), like
 * FTS5's ORDER BY rank: fine for terms in thousands of chunks, slower for a word in most of a
 * very large collection (stop words never get here).
 */
import { toFtsMatchExpression } from '../sqlite/vector-keyword-query.js';

const K1 = 1.2;
const B = 0.75;

/**
 * The query's terms as plain phrases (no quotes), or null when none can match. Read back from the
 * FTS5 expression, `"t1" OR "t2"`: its terms never contain a double quote, so `" OR "` only ever
 * separates two of them.
 */
export function keywordPhrases(input: string): string[] | null {
  const expression = toFtsMatchExpression(input);
  if (expression === null) return null;
  return expression.slice(1, -1).split('" OR "');
}

/**
 * The BM25 ranking statement over a collection's chunk table for `phrases` query phrases.
 * Parameters: $1 the phrases (text[]), $2 the collection id, then the filter's, then top K
 * (`limitParam`).
 *
 * A phrase's frequency in a chunk is `ts_rank_cd` with every weight 1 and no normalisation: with
 * those settings cover density counts the phrase's occurrences (each cover of an exact phrase, or
 * of one word, adds 1), computed in C. The statement is written out per phrase (the count is
 * known here), so no per-row subquery runs: one pass over the candidates computes the
 * frequencies, one aggregate the document frequencies, one more the scores.
 */
export function keywordSearchSql(
  chunks: string,
  filterSql: string,
  limitParam: string,
  phrases: number,
): string {
  const indexes = Array.from({ length: phrases }, (_, i) => i + 1);
  const tf = indexes.map(
    (i) =>
      `coalesce(ts_rank_cd('{1,1,1,1}', c.tsv, (SELECT q.query FROM q WHERE q.ord = ${i} AND numnode(q.query) > 0)), 0)::float8`,
  );
  const df = indexes.map((i) => `count(*) FILTER (WHERE m.tf[${i}] > 0)::float8 AS n${i}`);
  const lengthNorm = `${K1} * (${1 - B} + ${B} * m.tokens / stats.avgdl)`;
  const terms = indexes.map(
    (i) =>
      `greatest(ln((stats.n - df.n${i} + 0.5) / (df.n${i} + 0.5)), 1e-6) * (m.tf[${i}] * ${K1 + 1}) / (m.tf[${i}] + ${lengthNorm})`,
  );
  return `
    WITH q AS MATERIALIZED (
      SELECT t.ord, phraseto_tsquery('kbsync_english', kbsync_keyword_text(t.raw)) AS query
      FROM unnest($1::text[]) WITH ORDINALITY AS t(raw, ord)
    ),
    stats AS MATERIALIZED (
      SELECT greatest(chunk_count, 1)::float8 AS n, greatest(token_count, 1)::float8 / greatest(chunk_count, 1) AS avgdl
      FROM kb_collections WHERE id = $2
    ),
    m AS MATERIALIZED (
      SELECT c.id, c.tokens, (${filterSql}) AS admitted, ARRAY[${tf.join(', ')}] AS tf
      FROM ${chunks} c
      WHERE c.tsv @@ (SELECT kbsync_tsquery_or(q.query ORDER BY q.ord) FROM q WHERE numnode(q.query) > 0)
    ),
    df AS MATERIALIZED (SELECT ${df.join(', ')} FROM m),
    scored AS MATERIALIZED (
      SELECT m.id, ${terms.join(' + ')} AS score
      FROM m, stats, df
      WHERE m.admitted
      ORDER BY score DESC, m.id
      LIMIT ${limitParam}
    )
    SELECT c.doc_id, c.chunk_index, c.text, c.metadata, s.score
    FROM scored s JOIN ${chunks} c ON c.id = s.id
    ORDER BY s.score DESC, s.id`;
}
