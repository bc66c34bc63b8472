/**
 * Chunking speed: splitText on 1, 2, 5 and 10 MB of three text shapes (prose with paragraphs and
 * sentences; short words with nothing but spaces; one run without whitespace), best of 5 each.
 * Linear time shows as a flat MB/s column and a 10 MB / 1 MB ratio near 10 (quadratic would be
 * near 100). The ratio is taken on this process's CPU time, which other processes on a shared
 * machine disturb far less than wall time. The test suite checks the same property by counting character reads
 * (test/unit/chunking.test.ts), without a stopwatch.
 *
 *   npx tsx bench/chunking.ts        prints the table
 */
import { cpus } from 'node:os';
import { DEFAULT_CHUNKING, splitText } from '../src/core/chunking.js';

const SIZES_MB = [1, 2, 5, 10];
const REPEATS = 5;
const PROSE = 'The quick brown fox jumps over the lazy dog. Was it lazy? Yes!\nAnother line.\n\n';
const SHAPES: Array<[string, (n: number) => string]> = [
  ['prose', (n) => PROSE.repeat(Math.ceil(n / PROSE.length)).slice(0, n)],
  ['short words', (n) => 'ab '.repeat(Math.ceil(n / 3)).slice(0, n)],
  ['no whitespace', (n) => 'x'.repeat(n)],
];

function bestOf(text: string): { ms: number; cpuMs: number; chunks: number } {
  let best = Number.POSITIVE_INFINITY;
  let bestCpu = Number.POSITIVE_INFINITY;
  let chunks = 0;
  for (let r = 0; r < REPEATS; r++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const out = splitText(text, DEFAULT_CHUNKING);
    const cpu = process.cpuUsage(c0);
    best = Math.min(best, performance.now() - t0);
    bestCpu = Math.min(bestCpu, (cpu.user + cpu.system) / 1000);
    chunks = out.length;
    // The figure is only worth something if the split is whole.
    if (out.at(-1)?.end !== text.trimEnd().length) throw new Error('the last chunk does not end the text');
  }
  return { ms: best, cpuMs: bestCpu, chunks };
}

console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`);
console.log(`splitText with chunk_size ${DEFAULT_CHUNKING.chunkSize}, overlap ${DEFAULT_CHUNKING.chunkOverlap}; best of ${REPEATS}\n`);
console.log('shape          |   MB |  chunks | wall ms |  CPU ms | MB/s (CPU) | CPU / CPU(1 MB)');
console.log('---------------|------|---------|---------|---------|------------|----------------');
splitText(SHAPES[0]![1](1e6), DEFAULT_CHUNKING); // warm the JIT before the first figure
for (const [name, make] of SHAPES) {
  let base = 0;
  for (const mb of SIZES_MB) {
    const { ms, cpuMs, chunks } = bestOf(make(mb * 1e6));
    if (mb === 1) base = cpuMs;
    console.log(
      `${name.padEnd(14)} | ${String(mb).padStart(4)} | ${String(chunks).padStart(7)} | ${ms.toFixed(0).padStart(7)} | ${cpuMs.toFixed(0).padStart(7)} | ${(mb / (cpuMs / 1000)).toFixed(1).padStart(10)} | ${(cpuMs / base).toFixed(1).padStart(5)} (linear: ${mb})`,
    );
  }
}
