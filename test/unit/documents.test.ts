import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildRowDocument, documentIdFromKey, valueToText } from '../../src/core/documents.js';

const spec = { sourceTable: 'shop.orders', contentColumns: ['product', 'description'], metadataColumns: ['amount'], filterColumn: 'created_at' };

describe('row documents', () => {
  it('content is `column: value` lines; metadata has table, key, filter value and metadata columns', () => {
    const doc = buildRowDocument(spec, {
      key: ['17'],
      filter: '2025-01-01 10:00:00.123456',
      values: { product: 'Boots', description: 'Waterproof', amount: 12.5 },
    });
    assert.equal(doc.id, '17');
    assert.equal(doc.content, 'product: Boots\ndescription: Waterproof');
    assert.deepEqual(doc.metadata, { amount: 12.5, created_at: '2025-01-01 10:00:00.123456', source_table: 'shop.orders', row_key: '17' });
  });
  it('skips empty values and formats dates, buffers and bigints', () => {
    const doc = buildRowDocument(spec, { key: ['1'], filter: 'x', values: { product: null, description: new Date(Date.UTC(2025, 0, 1)), amount: 9007199254740993n } });
    assert.equal(doc.content, 'description: 2025-01-01T00:00:00.000Z');
    assert.equal(doc.metadata.amount, '9007199254740993');
    assert.equal(valueToText(Buffer.from('abc')), '<3 bytes>');
  });
  it('composite keys cannot collide through a separator', () => {
    assert.notEqual(documentIdFromKey(['a/b', 'c']), documentIdFromKey(['a', 'b/c']));
    assert.equal(documentIdFromKey(['1', '2']), '["1","2"]');
  });
});
