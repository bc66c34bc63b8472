/**
 * The docs stand on their own in the repository: a relative link in README.md, CHANGELOG.md or
 * docs/*.md points at a file that exists inside the repository, and no text sends the reader to a
 * path outside it (`../shared/…`, which only the development machine had). The README's first
 * query comes after running the job and says why it may answer nothing.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FILES = [
  'README.md',
  'CHANGELOG.md',
  ...fs
    .readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

describe('docs', () => {
  it('link only to files inside the repository, and they exist', () => {
    let links = 0;
    for (const file of FILES) {
      const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
      for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = match[1]!.split('#')[0]!;
        if (target === '' || /^[a-z]+:/i.test(target)) continue; // an anchor in the same file, or a URL
        links++;
        const resolved = path.resolve(path.dirname(path.join(ROOT, file)), decodeURIComponent(target));
        assert.ok(resolved.startsWith(ROOT + path.sep), `${file}: '${target}' leaves the repository`);
        assert.ok(fs.existsSync(resolved), `${file}: '${target}' does not exist`);
      }
    }
    assert.ok(links > 5, `${links} relative links checked`);
  });

  it('name no path outside the repository', () => {
    for (const file of FILES) {
      const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
      for (const match of text.matchAll(/(?:^|[\s`'"(])(\.\.\/[\w./-]*|\/work\/[\w./-]*)/gm)) {
        const mention = match[1]!;
        const resolved = path.resolve(path.dirname(path.join(ROOT, file)), mention);
        const inside =
          !mention.startsWith('/') && resolved.startsWith(ROOT + path.sep) && fs.existsSync(resolved);
        assert.ok(inside, `${file}: '${mention}' is not a file of the repository`);
      }
    }
  });

  it("the README's first query says why it may be empty, and runs the job before it", () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const query = readme.indexOf('/knowledge_bases/orders_kb/query');
    assert.ok(query > 0, 'the README queries the demo knowledge base');
    const before = readme.slice(readme.indexOf('/jobs/create'), query);
    assert.match(before, /"results": \[\]/, 'says what an empty answer looks like');
    assert.match(before, /run the job now|wait for the start time/i, 'says why, and what to do');
    assert.match(before, /\/jobs\/sync_orders\/run\b/, 'runs the job before the first query');
  });
});
