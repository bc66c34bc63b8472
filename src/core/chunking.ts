/**
 * Splitting document text into chunks for embedding. Pure: no I/O.
 *
 * A recursive splitter: the text is cut at the coarsest boundary that yields pieces of at most
 * `chunkSize` characters (paragraphs, then lines, then sentences, then words, and characters only
 * for a single "word" longer than a chunk), and those pieces are merged back into chunks of up to
 * `chunkSize` characters. Consecutive chunks share about `chunkOverlap` characters, starting on a
 * word boundary, so a sentence cut at a chunk edge is still seen whole by one of them.
 *
 * Every pass is a single left-to-right scan over character codes of the original string and
 * chunks are `slice`s of it, so a 10 MB text costs a few linear passes and no string building.
 */

export interface Chunk {
  /** 0-based position of the chunk in the document. */
  index: number;
  /** `text.slice(start, end)` of the original: leading and trailing whitespace trimmed. */
  text: string;
  /** Offset (UTF-16 code units) of the first character in the original text. */
  start: number;
  /** Offset just past the last character. */
  end: number;
}

export interface ChunkingOptions {
  /** Maximum chunk length in characters (UTF-16 code units). */
  chunkSize: number;
  /** Characters shared by consecutive chunks, approximately (it is cut on a word boundary). */
  chunkOverlap: number;
}

export const DEFAULT_CHUNKING: Readonly<ChunkingOptions> = Object.freeze({
  chunkSize: 1000,
  chunkOverlap: 100,
});

export const CHUNK_SIZE_MIN = 50;
export const CHUNK_SIZE_MAX = 8000;

/**
 * Problems with user-supplied chunking settings, as readable sentences; empty when valid.
 * The bounds are product limits (a chunk must fit any embedding model we support and still carry
 * some meaning); `splitText` itself accepts any positive size, because providers split over-long
 * inputs with sizes outside these bounds.
 */
export function validateChunking(opts: { chunkSize?: unknown; chunkOverlap?: unknown }): string[] {
  const problems: string[] = [];
  const { chunkSize, chunkOverlap } = opts;
  const sizeOk = typeof chunkSize === 'number' && Number.isInteger(chunkSize);
  if (!sizeOk) {
    problems.push('chunk_size must be an integer');
  } else if (chunkSize < CHUNK_SIZE_MIN || chunkSize > CHUNK_SIZE_MAX) {
    problems.push(`chunk_size must be between ${CHUNK_SIZE_MIN} and ${CHUNK_SIZE_MAX} (got ${chunkSize})`);
  }
  if (typeof chunkOverlap !== 'number' || !Number.isInteger(chunkOverlap)) {
    problems.push('chunk_overlap must be an integer');
  } else if (chunkOverlap < 0) {
    problems.push(`chunk_overlap must not be negative (got ${chunkOverlap})`);
  } else if (sizeOk && chunkOverlap >= chunkSize / 2) {
    problems.push(
      `chunk_overlap must be less than half of chunk_size (got ${chunkOverlap} for chunk_size ${chunkSize})`,
    );
  }
  return problems;
}

// Boundary levels, coarsest first. The strength of a cut is used when choosing where a chunk ends:
// ending on a paragraph break beats ending mid-paragraph on a sentence break, and so on.
const PARAGRAPH = 0;
const LINE = 1;
const SENTENCE = 2;
const WORD = 3;
const CHAR = 4;
const STRENGTH = [4, 3, 2, 1, 0] as const; // indexed by level
const END_OF_TEXT = 5;

/**
 * The pieces that fit in a chunk: [start, end) with no leading/trailing whitespace, and the
 * strength of the boundary right after each. Kept in typed arrays because a long text of short
 * words yields millions of them, which as objects would cost hundreds of megabytes.
 */
class Atoms {
  length = 0;
  start = new Int32Array(1024);
  end = new Int32Array(1024);
  strength = new Uint8Array(1024);

  push(start: number, end: number, strength: number): void {
    if (this.length === this.start.length) {
      const grow = <T extends Int32Array | Uint8Array>(a: T, make: (n: number) => T): T => {
        const b = make(a.length * 2);
        b.set(a);
        return b;
      };
      this.start = grow(this.start, (n) => new Int32Array(n));
      this.end = grow(this.end, (n) => new Int32Array(n));
      this.strength = grow(this.strength, (n) => new Uint8Array(n));
    }
    this.start[this.length] = start;
    this.end[this.length] = end;
    this.strength[this.length] = strength;
    this.length++;
  }
}

export function splitText(text: string, opts: ChunkingOptions): Chunk[] {
  const { chunkSize, chunkOverlap } = opts;
  if (!Number.isInteger(chunkSize) || chunkSize < 1) {
    throw new RangeError(`chunkSize must be a positive integer (got ${chunkSize})`);
  }
  if (!Number.isInteger(chunkOverlap) || chunkOverlap < 0 || chunkOverlap >= chunkSize) {
    throw new RangeError(`chunkOverlap must be an integer in [0, chunkSize) (got ${chunkOverlap})`);
  }
  const [start, end] = trim(text, 0, text.length);
  if (start >= end) return [];
  if (end - start <= chunkSize) return [{ index: 0, text: text.slice(start, end), start, end }];

  const atoms = new Atoms();
  splitRange(text, start, end, PARAGRAPH, END_OF_TEXT, chunkSize, atoms);
  return mergeAtoms(text, atoms, chunkSize, chunkOverlap);
}

/**
 * Cuts [a, b) at boundaries of `level`; pieces that fit become atoms, the rest are cut at the
 * next finer level. Recursion depth is bounded by the number of levels.
 */
function splitRange(
  text: string,
  a: number,
  b: number,
  level: number,
  endStrength: number,
  chunkSize: number,
  out: Atoms,
): void {
  if (level === CHAR) {
    hardSplit(text, a, b, endStrength, chunkSize, out);
    return;
  }
  let pieceStart = a;
  const emit = (pieceEnd: number) => {
    const [s, e] = trim(text, pieceStart, pieceEnd);
    pieceStart = pieceEnd;
    if (s >= e) return;
    const strength = pieceEnd >= b ? endStrength : STRENGTH[level]!;
    if (e - s <= chunkSize) out.push(s, e, strength);
    else splitRange(text, s, e, level + 1, strength, chunkSize, out);
  };
  let i = a;
  while (i < b) {
    const c = text.charCodeAt(i);
    if (isWhitespace(c)) {
      // A run of whitespace: the cut, if any, goes after the run so that pieces stay contiguous.
      const runStart = i;
      let newlines = 0;
      while (i < b && isWhitespace(text.charCodeAt(i))) {
        if (text.charCodeAt(i) === 10) newlines++;
        i++;
      }
      if (i >= b) break;
      let cut = false;
      if (level === PARAGRAPH) cut = newlines >= 2;
      else if (level === LINE) cut = newlines >= 1;
      else if (level === WORD) cut = true;
      else cut = endsSentence(text, runStart, a);
      if (cut) emit(i);
    } else {
      i++;
      // Scripts without spaces between sentences (CJK) end them with full-width punctuation.
      if (level === SENTENCE && isFullWidthTerminator(c) && i < b && !isWhitespace(text.charCodeAt(i)))
        emit(i);
    }
  }
  emit(b);
}

/** Last resort for a run without any whitespace that is longer than a chunk. */
function hardSplit(
  text: string,
  a: number,
  b: number,
  endStrength: number,
  chunkSize: number,
  out: Atoms,
): void {
  let s = a;
  while (s < b) {
    let e = Math.min(b, s + chunkSize);
    // Never separate the halves of a surrogate pair (an emoji, a rare CJK character).
    if (e < b && e - s > 1 && isHighSurrogate(text.charCodeAt(e - 1))) e--;
    out.push(s, e, e >= b ? endStrength : STRENGTH[CHAR]);
    s = e;
  }
}

/**
 * Greedy merge with a preference for strong boundaries: a chunk grows while it fits, then ends at
 * the strongest boundary among those that keep it at least half full.
 */
function mergeAtoms(text: string, atoms: Atoms, chunkSize: number, chunkOverlap: number): Chunk[] {
  const { start: as, end: ae, strength: st, length: n } = atoms;
  const chunks: Chunk[] = [];
  const minLength = Math.floor(chunkSize / 2);
  let i = 0;
  let start = as[0]!;
  while (i < n) {
    let last = i;
    while (last + 1 < n && ae[last + 1]! - start <= chunkSize) last++;
    let best = last;
    if (last + 1 < n) {
      for (let j = last - 1; j >= i && ae[j]! - start >= minLength; j--) {
        if (st[j]! > st[best]!) best = j;
      }
    }
    const end = ae[best]!;
    chunks.push({ index: chunks.length, text: text.slice(start, end), start, end });
    i = best + 1;
    if (i >= n) break;
    start = nextStart(text, start, end, as[i]!, ae[i]!, chunkSize, chunkOverlap);
  }
  return chunks;
}

/**
 * Where the chunk after [prevStart, prevEnd) begins: the first word start inside the last
 * `chunkOverlap` characters of the previous chunk that still lets the next atom fit, or the next
 * atom itself when there is no such word start (no overlap rather than a cut word).
 */
function nextStart(
  text: string,
  prevStart: number,
  prevEnd: number,
  nextAtomStart: number,
  nextAtomEnd: number,
  chunkSize: number,
  chunkOverlap: number,
): number {
  if (chunkOverlap === 0) return nextAtomStart;
  const lo = Math.max(prevEnd - chunkOverlap, prevStart + 1, nextAtomEnd - chunkSize);
  for (let p = lo; p < prevEnd; p++) {
    if (!isWhitespace(text.charCodeAt(p)) && isWhitespace(text.charCodeAt(p - 1))) return p;
  }
  return nextAtomStart;
}

/** Is the whitespace run at `ws` preceded by sentence-ending punctuation (closing quotes allowed)? */
function endsSentence(text: string, ws: number, floor: number): boolean {
  let k = ws - 1;
  while (k >= floor && isClosing(text.charCodeAt(k))) k--;
  if (k < floor) return false;
  const c = text.charCodeAt(k);
  return (
    c === 46 /* . */ ||
    c === 33 /* ! */ ||
    c === 63 /* ? */ ||
    c === 0x2026 /* … */ ||
    isFullWidthTerminator(c)
  );
}

function isClosing(c: number): boolean {
  return c === 34 || c === 39 || c === 41 || c === 93 || c === 0x201d || c === 0x2019 || c === 0xbb;
}

function isFullWidthTerminator(c: number): boolean {
  return c === 0x3002 || c === 0xff01 || c === 0xff1f;
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

/** The characters `String.prototype.trim` removes, tested by code so scans allocate nothing. */
function isWhitespace(c: number): boolean {
  if (c <= 32) return c === 32 || (c >= 9 && c <= 13);
  if (c < 0xa0) return false;
  return (
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

function trim(text: string, a: number, b: number): [number, number] {
  while (a < b && isWhitespace(text.charCodeAt(a))) a++;
  while (b > a && isWhitespace(text.charCodeAt(b - 1))) b--;
  return [a, b];
}
