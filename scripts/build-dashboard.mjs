#!/usr/bin/env node
/**
 * Builds the dashboard (docs/dashboard.md) into dist/web: no bundler, no CDN. The sources in web/
 * are ES modules that import the vendor files by relative path; this copies them next to the
 * vendor ES modules taken from the npm packages (preact, preact/hooks, htm, uPlot), and writes
 * brotli and gzip twins that @fastify/static serves to browsers that accept them.
 *
 *   dist/web/index.html       served at GET /
 *   dist/web/ui/…             web/ (but index.html), served under /ui/
 *   dist/web/ui/vendor/…      the npm packages' files, with their licences
 *
 * Safe to run while a server reads dist/web, and twice at once (two test runs): every file is
 * written to a temporary name and renamed over the old one, only when its bytes changed, and the
 * directory is never removed as a whole. Run by `npm run build` (and so by `npm ci`).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WEB = path.join(ROOT, 'web');
const OUT = path.join(ROOT, 'dist', 'web');
const require = createRequire(path.join(ROOT, 'package.json'));

/**
 * A file of an npm package, found where Node would look for the package (hoisted or not); by its
 * folder, since not every package exports its package.json.
 */
function packageFile(pkg, file) {
  for (const dir of require.resolve.paths(pkg) ?? []) {
    if (fs.existsSync(path.join(dir, pkg, 'package.json'))) return path.join(dir, pkg, file);
  }
  throw new Error(`build-dashboard: package ${pkg} is not installed (npm ci)`);
}

/** out path (relative to dist/web) → bytes. */
const outputs = new Map();

function addTree(dir, outDir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const from = path.join(dir, entry.name);
    if (entry.isDirectory()) addTree(from, path.join(outDir, entry.name));
    else if (entry.isFile()) outputs.set(path.join(outDir, entry.name), fs.readFileSync(from));
  }
}

// The page at / sits above ui/, so its links are `ui/…`; everything else goes under ui/.
for (const entry of fs.readdirSync(WEB, { withFileTypes: true })) {
  const from = path.join(WEB, entry.name);
  if (entry.name === 'index.html') outputs.set('index.html', fs.readFileSync(from));
  else if (entry.isDirectory()) addTree(from, path.join('ui', entry.name));
  else if (entry.isFile()) outputs.set(path.join('ui', entry.name), fs.readFileSync(from));
}

const vendor = (name, bytes) => outputs.set(path.join('ui', 'vendor', name), bytes);
vendor('preact.module.js', fs.readFileSync(packageFile('preact', 'dist/preact.module.js')));
// preact/hooks imports the bare name "preact", which a browser cannot resolve without an import
// map (an inline script, which the dashboard's CSP forbids): point it at the file beside it.
const hooks = fs.readFileSync(packageFile('preact', 'hooks/dist/hooks.module.js'), 'utf8');
const bare = /from\s*["']preact["']/g;
const found = hooks.match(bare)?.length ?? 0;
if (found !== 1) {
  throw new Error(
    `build-dashboard: expected one import of "preact" in preact/hooks, found ${found}; check the preact upgrade`,
  );
}
vendor('hooks.module.js', Buffer.from(hooks.replace(bare, 'from"./preact.module.js"')));
vendor('htm.module.js', fs.readFileSync(packageFile('htm', 'dist/htm.module.js')));
vendor('uPlot.esm.js', fs.readFileSync(packageFile('uplot', 'dist/uPlot.esm.js')));
vendor('uPlot.min.css', fs.readFileSync(packageFile('uplot', 'dist/uPlot.min.css')));
for (const pkg of ['preact', 'htm', 'uplot'])
  vendor(`${pkg}.LICENSE.txt`, fs.readFileSync(packageFile(pkg, 'LICENSE')));

// Compressed twins of text files worth compressing; zlib's output is the same for the same input,
// so two builds at once write the same bytes.
for (const [file, bytes] of [...outputs]) {
  if (!/\.(js|css|html|svg)$/.test(file) || bytes.length < 1024) continue;
  outputs.set(
    `${file}.br`,
    zlib.brotliCompressSync(bytes, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11 } }),
  );
  outputs.set(`${file}.gz`, zlib.gzipSync(bytes, { level: 9 }));
}

let written = 0;
for (const [file, bytes] of outputs) {
  const target = path.join(OUT, file);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  let same = false;
  try {
    same = fs.readFileSync(target).equals(bytes);
  } catch {
    // not there yet
  }
  if (same) continue;
  const temp = `${target}.${process.pid}.tmp`;
  fs.writeFileSync(temp, bytes);
  fs.renameSync(temp, target);
  written++;
}

// Files of an earlier build that this one no longer has (a renamed module); never another
// build's temporary file.
let removed = 0;
const neededDirs = new Set();
for (const file of outputs.keys()) {
  for (let dir = path.dirname(file); dir !== '.'; dir = path.dirname(dir)) neededDirs.add(dir);
}
function prune(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    const rel = path.relative(OUT, full);
    if (entry.isDirectory()) {
      prune(full);
      // Only folders this build has no file in: another build may be about to write into ours.
      if (!neededDirs.has(rel) && fs.readdirSync(full).length === 0)
        fs.rmSync(full, { recursive: true, force: true });
    } else if (!outputs.has(rel) && !entry.name.endsWith('.tmp')) {
      fs.rmSync(full, { force: true });
      removed++;
    }
  }
}
prune(OUT);

// What a browser downloads: each file, as brotli where it has a twin.
const originals = [...outputs.keys()].filter((f) => !/\.(br|gz)$/.test(f));
const size = originals.reduce((n, f) => n + outputs.get(f).length, 0);
const brotli = originals.reduce((n, f) => n + (outputs.get(`${f}.br`) ?? outputs.get(f)).length, 0);
console.log(
  `dashboard: ${outputs.size} files in ${path.relative(ROOT, OUT)} (${written} written, ${removed} removed; ` +
    `${(size / 1024).toFixed(0)} KiB, ${(brotli / 1024).toFixed(0)} KiB as brotli)`,
);
