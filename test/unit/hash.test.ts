import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { contentHash } from '../../src/core/hash.js';

describe('contentHash', () => {
  it('is the SHA-256 of the UTF-8 bytes, in lower-case hex', () => {
    // Published test vectors, so the stored hashes stay comparable with any other implementation.
    assert.equal(contentHash(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    assert.equal(contentHash('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('encodes non-ASCII text as UTF-8', () => {
    assert.equal(contentHash('é'), contentHash(Buffer.from('c3a9', 'hex').toString('utf8')));
    assert.notEqual(
      contentHash('é'),
      contentHash('e\u0301'),
      'no Unicode normalisation: the bytes are what changed',
    );
    assert.match(contentHash('日本語 😀'), /^[0-9a-f]{64}$/);
  });

  it('is deterministic and sensitive to any change', () => {
    assert.equal(contentHash('row 1'), contentHash('row 1'));
    assert.notEqual(contentHash('row 1'), contentHash('row 1 '));
  });
});
