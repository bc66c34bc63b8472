/**
 * User text -> FTS5 MATCH expression. Pure, so hostile input is tested without a database.
 *
 * Every term becomes a quoted FTS5 string, so nothing the user types is FTS5 syntax: operators
 * (AND, OR, NOT, NEAR), parentheses, `*`, `^`, `-` and `column:` are just text inside a phrase.
 * Text in balanced double quotes stays one phrase; an unbalanced quote is dropped. Terms are ORed
 * so a chunk matching some of the words still ranks, and BM25 puts chunks matching more (and
 * rarer) terms first.
 *
 * The index uses FTS5's unicode61 tokenizer, which splits `SKU-4471-B` into `sku 4471 b`; the same
 * tokenizer runs over the quoted query term, turning it into the phrase "sku 4471 b" - so the exact
 * code matches, `SKU-4471-A` does not, and a partial `4471` still finds it.
 */

/** Bounds the work one query can ask of the index. */
export const MAX_QUERY_TERMS = 32;

/** Returns null when no term can match anything (empty, whitespace or punctuation only). */
export function toFtsMatchExpression(input: string): string | null {
  const terms: string[] = [];
  const seen = new Set<string>();
  // FTS5 reads the expression as a C string, so a NUL would cut it short ("unterminated string");
  // other control characters and lone surrogates are never part of a word either.
  const text = input.replace(/[\p{Cc}\p{Cs}]/gu, ' ');
  for (const match of text.matchAll(/"([^"]*)"|(\S+)/g)) {
    const raw = (match[1] ?? match[2] ?? '').replaceAll('"', ' ').trim();
    // unicode61 indexes only letters, numbers and private-use characters; a term without any
    // would be an empty phrase.
    if (!/[\p{L}\p{N}\p{Co}]/u.test(raw)) continue;
    const key = raw.toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    terms.push(`"${raw}"`);
    if (terms.length === MAX_QUERY_TERMS) break;
  }
  return terms.length === 0 ? null : terms.join(' OR ');
}
