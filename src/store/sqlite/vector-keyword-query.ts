/**
 * User text -> FTS5 MATCH expression. Pure, so hostile input is tested without a database.
 *
 * Every term becomes a quoted FTS5 string, so nothing the user types is FTS5 syntax: operators
 * (AND, OR, NOT, NEAR), parentheses, `*`, `^`, `-` and `column:` are just text inside a phrase.
 * Text in balanced double quotes stays one phrase; an unbalanced quote is dropped. Terms are ORed
 * so a chunk matching some of the words still ranks, and BM25 puts chunks matching more (and
 * rarer) terms first.
 *
 * Common English function words ("the", "and", "of", ...; see STOPWORDS) are left out: ORed,
 * they put nearly every chunk in the result list, where hybrid search counted them as keyword
 * matches. A term is never dropped when it looks like a code or a number (it holds a digit, or
 * letters joined by `-`, `.`, `/`, `_` and the like), nor when it was quoted, nor when every term
 * of the query is a stop word ("to be or not to be" still searches for those words).
 *
 * The index uses FTS5's unicode61 tokenizer, which splits `SKU-4471-B` into `sku 4471 b`; the same
 * tokenizer runs over the quoted query term, turning it into the phrase "sku 4471 b" - so the exact
 * code matches, `SKU-4471-A` does not, and a partial `4471` still finds it. With the porter stemmer
 * in front (collections created since, see vector-schema.ts) the query's words are stemmed the same
 * way as the index's, so "boots" also finds "boot".
 */

/** Bounds the work one query can ask of the index. */
export const MAX_QUERY_TERMS = 32;

/**
 * Lucene's default English stop set (EnglishAnalyzer, 33 words), taken as it is rather than tuned on
 * a test set. Measured in bench/search-quality.ts: this short list helps keyword search a little;
 * the 179-word NLTK list (which also drops "my", "how", "do", "can", ...) made it worse, because
 * the labelled answers share such words with the questions.
 */
export const STOPWORDS: ReadonlySet<string> = new Set(
  `a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to was will with`.split(
    /\s+/,
  ),
);

/** A digit anywhere, or letters/digits on both sides of a joining character other than an apostrophe. */
const CODE_LIKE = /\p{N}|[\p{L}\p{N}][^\p{L}\p{N}\p{Co}\s'\u2019][\p{L}\p{N}]/u;

/** True when every word unicode61 would index from `term` is a stop word, and it is no code. */
export function isStopTerm(term: string): boolean {
  if (CODE_LIKE.test(term)) return false;
  const words = term
    .toLowerCase()
    .split(/[^\p{L}\p{N}\p{Co}]+/u)
    .filter((w) => w !== '');
  return words.length > 0 && words.every((w) => STOPWORDS.has(w));
}

/** Returns null when no term can match anything (empty, whitespace or punctuation only). */
export function toFtsMatchExpression(input: string): string | null {
  const terms: Array<{ phrase: string; stop: boolean }> = [];
  const seen = new Set<string>();
  // FTS5 reads the expression as a C string, so a NUL would cut it short ("unterminated string");
  // other control characters and lone surrogates are never part of a word either.
  const text = input.replace(/[\p{Cc}\p{Cs}]/gu, ' ');
  for (const match of text.matchAll(/"([^"]*)"|(\S+)/g)) {
    const quoted = match[1] !== undefined;
    const raw = (match[1] ?? match[2] ?? '').replaceAll('"', ' ').trim();
    // unicode61 indexes only letters, numbers and private-use characters; a term without any
    // would be an empty phrase.
    if (!/[\p{L}\p{N}\p{Co}]/u.test(raw)) continue;
    const key = raw.toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    terms.push({ phrase: `"${raw}"`, stop: !quoted && isStopTerm(raw) });
  }
  const content = terms.filter((t) => !t.stop);
  const kept = (content.length > 0 ? content : terms).slice(0, MAX_QUERY_TERMS);
  return kept.length === 0 ? null : kept.map((t) => t.phrase).join(' OR ');
}
