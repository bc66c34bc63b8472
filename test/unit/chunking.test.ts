import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type Chunk, DEFAULT_CHUNKING, splitText, validateChunking } from '../../src/core/chunking.js';

const isWs = (s: string) => s.trim() === '';

/** Invariants every split must satisfy, whatever the input. */
function checkInvariants(text: string, chunks: Chunk[], chunkSize: number, chunkOverlap: number): void {
  if (isWs(text)) {
    assert.deepEqual(chunks, []);
    return;
  }
  assert.ok(chunks.length > 0);
  const first = text.length - text.trimStart().length;
  const last = text.trimEnd().length;
  assert.equal(chunks[0]!.start, first, 'first chunk starts at the first non-space character');
  assert.equal(chunks.at(-1)!.end, last, 'last chunk ends after the last non-space character');
  chunks.forEach((c, i) => {
    assert.equal(c.index, i);
    assert.equal(c.text, text.slice(c.start, c.end));
    assert.ok(c.end - c.start <= chunkSize, `chunk ${i} has ${c.end - c.start} > ${chunkSize} characters`);
    assert.ok(c.text.length > 0 && c.text === c.text.trim(), `chunk ${i} is trimmed and not empty`);
    if (i === 0) return;
    const prev = chunks[i - 1]!;
    assert.ok(c.start > prev.start && c.end > prev.end, 'chunks advance');
    if (c.start < prev.end) {
      assert.ok(prev.end - c.start <= chunkOverlap, `overlap ${prev.end - c.start} > ${chunkOverlap}`);
    } else {
      assert.ok(isWs(text.slice(prev.end, c.start)), 'only whitespace between chunks');
    }
  });
}

const words = fc.string({
  unit: fc.constantFrom('a', 'b', 'c', 'x', 'é', 'ß', '中', '😀', '.', ',', '!', '?', '"'),
  minLength: 1,
  maxLength: 12,
});
const separators = fc.constantFrom(' ', ' ', ' ', '  ', '\n', '\n\n', '\n \n', '\t', '. ', '! ', '\u3000');
/** Text of words (at most 12 UTF-16 units... 24 with surrogate pairs) and assorted whitespace. */
const prose = fc
  .array(fc.tuple(words, separators), { maxLength: 120 })
  .map((parts) => parts.map(([w, s]) => w + s).join(''));
const anyText = fc.oneof(
  prose,
  fc.string({ maxLength: 400 }),
  fc.string({ unit: 'grapheme', maxLength: 200 }),
);
const options = fc
  .integer({ min: 1, max: 300 })
  .chain((chunkSize) =>
    fc.record({
      chunkSize: fc.constant(chunkSize),
      chunkOverlap: fc.integer({ min: 0, max: chunkSize - 1 }),
    }),
  );

describe('splitText', () => {
  it('gives no chunks for empty or whitespace-only text', () => {
    assert.deepEqual(splitText('', DEFAULT_CHUNKING), []);
    assert.deepEqual(splitText(' \n\t\n \u3000', DEFAULT_CHUNKING), []);
  });

  it('keeps a text that fits as one (trimmed) chunk', () => {
    assert.deepEqual(splitText('  hello world \n', DEFAULT_CHUNKING), [
      { index: 0, text: 'hello world', start: 2, end: 13 },
    ]);
    const exact = 'x'.repeat(1000);
    assert.deepEqual(splitText(exact, DEFAULT_CHUNKING), [{ index: 0, text: exact, start: 0, end: 1000 }]);
  });

  it('prefers paragraph, then sentence boundaries', () => {
    const p1 = 'First paragraph has two sentences. This is the second one of them.';
    const p2 = 'Second paragraph is here. It also has two sentences, more or less.';
    const text = `${p1}\n\n${p2}`;
    const chunks = splitText(text, { chunkSize: 100, chunkOverlap: 0 });
    assert.deepEqual(
      chunks.map((c) => c.text),
      [p1, p2],
    );
    const sentences = splitText(p1, { chunkSize: 50, chunkOverlap: 0 });
    assert.deepEqual(
      sentences.map((c) => c.text),
      ['First paragraph has two sentences.', 'This is the second one of them.'],
    );
  });

  it('ends a chunk on a paragraph break rather than mid-paragraph when both fit', () => {
    const a = 'alpha '.repeat(10).trim(); // 59: a candidate, as it keeps the chunk over half full
    const b = 'beta gamma. '.repeat(10).trim(); // 119
    const chunks = splitText(`${a}\n\n${b}`, { chunkSize: 100, chunkOverlap: 0 });
    assert.equal(chunks[0]!.text, a);
  });

  it('overlaps consecutive chunks on word boundaries', () => {
    const text = Array.from({ length: 200 }, (_, i) => `word${i}`).join(' ');
    const chunks = splitText(text, { chunkSize: 100, chunkOverlap: 30 });
    assert.ok(chunks.length > 5);
    for (let i = 1; i < chunks.length; i++) {
      const prev = chunks[i - 1]!;
      const cur = chunks[i]!;
      const overlap = prev.end - cur.start;
      assert.ok(overlap > 0 && overlap <= 30, `overlap ${overlap}`);
      assert.equal(text[cur.start - 1], ' ', 'starts at a word');
    }
  });

  it('cuts a single over-long word by characters, never inside a surrogate pair', () => {
    const text = '😀'.repeat(30); // 60 UTF-16 units
    const chunks = splitText(text, { chunkSize: 7, chunkOverlap: 2 });
    for (const c of chunks) {
      assert.ok(c.text.length <= 7);
      assert.equal(c.text, '😀'.repeat(c.text.length / 2), 'whole emoji only');
    }
    assert.equal(chunks.map((c) => c.text).join(''), text);
  });

  it('splits text without spaces on full-width sentence ends', () => {
    const s = '这是一个句子。'; // 7
    const chunks = splitText(s.repeat(6), { chunkSize: 15, chunkOverlap: 0 });
    assert.ok(chunks.every((c) => c.text.endsWith('。')));
  });

  it('rejects impossible options', () => {
    assert.throws(() => splitText('abc', { chunkSize: 0, chunkOverlap: 0 }), RangeError);
    assert.throws(() => splitText('abc', { chunkSize: 10, chunkOverlap: 10 }), RangeError);
    assert.throws(() => splitText('abc', { chunkSize: 10, chunkOverlap: -1 }), RangeError);
  });

  it('property: invariants hold for any text and options', () => {
    fc.assert(
      fc.property(anyText, options, (text, opts) => {
        checkInvariants(text, splitText(text, opts), opts.chunkSize, opts.chunkOverlap);
      }),
      { numRuns: 1500 },
    );
  });

  it('property: never splits inside a word when every word fits', () => {
    fc.assert(
      fc.property(
        prose,
        fc.integer({ min: 24, max: 200 }),
        fc.integer({ min: 0, max: 11 }),
        (text, chunkSize, chunkOverlap) => {
          for (const c of splitText(text, { chunkSize, chunkOverlap })) {
            assert.ok(c.start === 0 || isWs(text[c.start - 1]!), `chunk ${c.index} starts inside a word`);
            assert.ok(c.end === text.length || isWs(text[c.end]!), `chunk ${c.index} ends inside a word`);
          }
        },
      ),
      { numRuns: 800 },
    );
  });

  it('property: deterministic', () => {
    fc.assert(
      fc.property(anyText, options, (text, opts) => {
        assert.deepEqual(splitText(text, opts), splitText(text, opts));
      }),
      { numRuns: 300 },
    );
  });

  // No time bound but the test's own timeout, over 20 times what it takes on a loaded 2-core machine:
  // a quadratic splitter would need hours here.
  it('splits 10 MB texts into chunks that cover them', { timeout: 300_000 }, () => {
    for (const [name, make] of LONG_TEXTS) {
      const text = make(10e6);
      const chunks = splitText(text, DEFAULT_CHUNKING);
      assert.ok(chunks.length >= 10_000, `${name}: ${chunks.length} chunks`);
      assert.equal(chunks[0]!.start, 0, name);
      assert.equal(chunks.at(-1)!.end, text.trimEnd().length, name);
      for (let i = 1; i < chunks.length; i++) {
        const prev = chunks[i - 1]!;
        const c = chunks[i]!;
        if (c.end - c.start > DEFAULT_CHUNKING.chunkSize || c.start <= prev.start || c.end <= prev.end) {
          assert.fail(`${name}: chunk ${i} [${c.start}, ${c.end}) after [${prev.start}, ${prev.end})`);
        }
        // Nothing but whitespace is left out between chunks.
        if (c.start > prev.end && text.slice(prev.end, c.start).trim() !== '') {
          assert.fail(`${name}: text between chunks ${i - 1} and ${i} is in neither`);
        }
      }
    }
  });

  // Linear time without a stopwatch: the text is handed in behind a proxy that counts every
  // character the splitter touches (charCodeAt, an index, the length of each slice; any other
  // string method counts as a pass over the whole text). A linear splitter touches each character
  // a constant number of times, whatever the length; one that rescans or copies the rest of the
  // text per chunk touches more per character as the text grows. Speed is in `npm run bench chunking`.
  // Last in this file: a proxied string makes the splitter's string accesses megamorphic, which
  // would slow every later split in this process.
  it('touches each character a bounded number of times, the same at 100 kB as at 400 kB', () => {
    const costPerChar = (text: string) => {
      const counted = countingText(text);
      const chunks = splitText(counted.text, DEFAULT_CHUNKING);
      assert.equal(chunks.at(-1)!.end, text.trimEnd().length);
      return counted.touched() / text.length;
    };
    for (const [name, make] of LONG_TEXTS) {
      const small = costPerChar(make(100_000));
      const large = costPerChar(make(400_000));
      assert.ok(small <= 16, `${name}: ${small.toFixed(2)} character reads per character`);
      assert.ok(large <= small * 1.1, `${name}: ${small.toFixed(2)} reads per character at 100 kB, ${large.toFixed(2)} at 400 kB`);
    }
  });
});

/** Long texts of `n` characters in the three shapes that stress different levels of the splitter. */
const LONG_TEXTS: Array<[string, (n: number) => string]> = [
  ['prose', (n) => PROSE.repeat(Math.ceil(n / PROSE.length)).slice(0, n)],
  ['short words', (n) => 'ab '.repeat(Math.ceil(n / 3)).slice(0, n)],
  ['no whitespace', (n) => 'x'.repeat(n)],
];
const PROSE = 'The quick brown fox jumps over the lazy dog. Was it lazy? Yes!\nAnother line.\n\n';

/**
 * `text` behind a proxy that counts the characters read through it. What splitText uses
 * (charCodeAt, slice, length) is counted exactly; any other property costs a whole pass, so a
 * change that reaches the text another way is counted pessimistically rather than missed.
 */
function countingText(text: string): { text: string; touched: () => number } {
  let touched = 0;
  const perChar = new Set<PropertyKey>(['charCodeAt', 'codePointAt', 'charAt', 'at']);
  const perSlice = new Set<PropertyKey>(['slice', 'substring']);
  const proxy = new Proxy(new String(text), {
    get(_target, key) {
      if (key === 'length') return text.length;
      const method = (text as unknown as Record<PropertyKey, unknown>)[key];
      if (perChar.has(key)) {
        return (...args: unknown[]) => {
          touched++;
          return (method as (...a: unknown[]) => unknown).apply(text, args);
        };
      }
      if (perSlice.has(key)) {
        return (...args: unknown[]) => {
          const s = (method as (...a: unknown[]) => string).apply(text, args);
          touched += s.length;
          return s;
        };
      }
      if (typeof key === 'string' && /^\d+$/.test(key)) {
        touched++;
        return text[Number(key)];
      }
      touched += text.length;
      return typeof method === 'function' ? (...args: unknown[]) => method.apply(text, args) : method;
    },
  });
  return { text: proxy as unknown as string, touched: () => touched };
}

describe('validateChunking', () => {
  it('accepts the defaults and the bounds', () => {
    assert.deepEqual(validateChunking(DEFAULT_CHUNKING), []);
    assert.deepEqual(validateChunking({ chunkSize: 50, chunkOverlap: 24 }), []);
    assert.deepEqual(validateChunking({ chunkSize: 8000, chunkOverlap: 0 }), []);
  });

  it('reports each problem as a sentence', () => {
    assert.match(validateChunking({ chunkSize: 49, chunkOverlap: 0 })[0]!, /between 50 and 8000/);
    assert.match(validateChunking({ chunkSize: 8001, chunkOverlap: 0 })[0]!, /between 50 and 8000/);
    assert.match(validateChunking({ chunkSize: 100.5, chunkOverlap: 0 })[0]!, /integer/);
    assert.match(validateChunking({ chunkSize: 100, chunkOverlap: 50 })[0]!, /less than half/);
    assert.match(validateChunking({ chunkSize: 100, chunkOverlap: -1 })[0]!, /negative/);
    assert.equal(validateChunking({ chunkSize: 'x', chunkOverlap: 'y' }).length, 2);
  });
});
