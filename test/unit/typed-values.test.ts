import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { buildRowDocument } from '../../src/core/documents.js';
import { canonicalDecimal, toUtcIso, typedValue } from '../../src/core/typed-values.js';
import type { ColumnKind } from '../../src/sources/port.js';

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

function check(kind: ColumnKind, cases: Array<[unknown, unknown]>): void {
  for (const [raw, want] of cases) {
    const got = typedValue(kind, raw);
    assert.ok(
      Object.is(got, want),
      `${kind} ${String(raw)}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`,
    );
  }
}

describe('typedValue', () => {
  it('NULL is null for every kind', () => {
    const kinds: ColumnKind[] = [
      'timestamptz',
      'timestamp',
      'date',
      'integer',
      'numeric',
      'text',
      'boolean',
      'other',
    ];
    for (const kind of kinds) {
      assert.equal(typedValue(kind, null), null);
      assert.equal(typedValue(kind, undefined), null);
    }
  });

  it('integers: numbers up to 2^53, exact text beyond', () => {
    check('integer', [
      [42, 42],
      ['42', 42],
      ['-12', -12],
      ['+7', 7],
      ['007', 7],
      ['-0', 0],
      [-0, 0],
      [9007199254740991n, 9007199254740991],
      ['9007199254740991', 9007199254740991],
      ['9007199254740992', '9007199254740992'],
      ['9007199254740993', '9007199254740993'],
      [9007199254740993n, '9007199254740993'],
      ['-9223372036854775808', '-9223372036854775808'],
      // Not an integer text: kept as it came.
      ['abc', 'abc'],
      ['', ''],
    ]);
  });

  it('decimals: numbers when a double holds them exactly, else the source text', () => {
    check('numeric', [
      ['75.00', 75],
      ['150.00', 150],
      ['99.5', 99.5],
      ['0.1', 0.1],
      ['0.10', 0.1],
      ['.5', 0.5],
      ['5.', 5],
      ['-1200.50', -1200.5],
      ['-0.00', 0],
      ['0', 0],
      [-0, 0],
      ['1.5E3', 1500],
      ['1.5e-3', 0.0015],
      ['2.5e+2', 250],
      ['1e21', 1e21],
      ['123456789012345678901234567890', '123456789012345678901234567890'],
      ['12345678901234567.5', '12345678901234567.5'],
      ['0.1000000000000000055511151231257827', '0.1000000000000000055511151231257827'],
      ['9007199254740993', '9007199254740993'],
      ['1e400', '1e400'],
      ['1e-400', '1e-400'],
      ['NaN', 'NaN'],
      ['Infinity', 'Infinity'],
      ['-Infinity', '-Infinity'],
      [Number.NaN, 'NaN'],
      [Number.POSITIVE_INFINITY, 'Infinity'],
      [12.25, 12.25],
      [5n, 5],
      ['12 kg', '12 kg'],
    ]);
  });

  it('the exactness rule is "shortest round-trip text of Number(x) equals the canonical decimal of x"', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (d) => {
        // Every double's shortest text is itself exact.
        const text = String(d);
        const got = typedValue('numeric', text);
        assert.ok(Object.is(got, d === 0 ? 0 : d), `${text} -> ${String(got)}`);
        // Appending a non-zero digit far beyond a double's precision never stays exact.
        if (d !== 0 && !text.includes('e')) {
          const longer = `${text}${text.includes('.') ? '' : '.'}00000000000000000000001`;
          assert.equal(typedValue('numeric', longer), longer);
        }
      }),
      { numRuns: 500 },
    );
    assert.deepEqual(canonicalDecimal('075.0100'), { negative: false, digits: '7501', exponent: 2 });
    assert.deepEqual(canonicalDecimal('-0.000'), { negative: false, digits: '', exponent: 0 });
    assert.equal(canonicalDecimal('1.2.3'), null);
    assert.equal(canonicalDecimal('.'), null);
  });

  it('booleans: true/false, also from 0/1 (MySQL TINYINT(1), SQLite BOOLEAN)', () => {
    check('boolean', [
      [true, true],
      [false, false],
      [1, true],
      [0, false],
      [1n, true],
      [0n, false],
      ['1', true],
      ['0', false],
      ['true', true],
      ['FALSE', false],
      // Anything else keeps its value rather than guessing.
      [2, 2],
      [-1, -1],
      ['yes', 'yes'],
    ]);
  });

  it('timestamps: UTC ISO 8601 with Z and every stored fraction digit', () => {
    const cases: Array<[unknown, unknown]> = [
      // PostgreSQL timestamptz text (session in UTC) and other offsets.
      ['2026-01-01 15:00:00+00', '2026-01-01T15:00:00Z'],
      ['2026-01-01 15:00:00.123+02', '2026-01-01T13:00:00.123Z'],
      ['2026-01-01 15:00:00+05:30', '2026-01-01T09:30:00Z'],
      ['2026-01-01T15:00:00.5+0530', '2026-01-01T09:30:00.5Z'],
      ['2026-01-01 15:00:00-08', '2026-01-01T23:00:00Z'],
      ['2025-12-31 20:00:00-08:00', '2026-01-01T04:00:00Z'],
      ['2026-01-01 00:30:00+01', '2025-12-31T23:30:00Z'],
      ['1850-06-01 00:00:00+00:53:28', '1850-05-31T23:06:32Z'],
      ['2026-01-01T15:00:00Z', '2026-01-01T15:00:00Z'],
      ['2026-01-01t15:00:00z', '2026-01-01T15:00:00Z'],
      ['2026-01-01 15:00:00 +02:00', '2026-01-01T13:00:00Z'],
      // Naive: UTC (MySQL DATETIME, PostgreSQL timestamp, SQLite text).
      ['2026-01-01 15:00:00', '2026-01-01T15:00:00Z'],
      ['2026-01-01T15:00', '2026-01-01T15:00:00Z'],
      ['2026-01-01', '2026-01-01T00:00:00Z'],
      ['2024-02-29 23:59:59', '2024-02-29T23:59:59Z'],
      // Fractions of 1..9 digits (and more) are kept as stored, trailing zeros included.
      ['2026-01-01 10:30:00.5', '2026-01-01T10:30:00.5Z'],
      ['2026-01-01 10:30:00.12', '2026-01-01T10:30:00.12Z'],
      ['2026-01-01 10:30:00.123', '2026-01-01T10:30:00.123Z'],
      ['2026-01-01 10:30:00.1234', '2026-01-01T10:30:00.1234Z'],
      ['2026-01-01 10:30:00.12345', '2026-01-01T10:30:00.12345Z'],
      ['2026-01-01 10:30:00.123456', '2026-01-01T10:30:00.123456Z'],
      ['2026-01-01 10:30:00.000000', '2026-01-01T10:30:00.000000Z'],
      ['2026-01-01 10:30:00.1234567', '2026-01-01T10:30:00.1234567Z'],
      ['2026-01-01 10:30:00.12345678', '2026-01-01T10:30:00.12345678Z'],
      ['2026-01-01 10:30:00.123456789', '2026-01-01T10:30:00.123456789Z'],
      ['2026-01-01 10:30:00,25', '2026-01-01T10:30:00.25Z'],
      ['0001-01-01 00:00:00', '0001-01-01T00:00:00Z'],
      ['0099-03-01 12:00:00', '0099-03-01T12:00:00Z'],
      // Invalid or unknown layouts are kept as text.
      ['0000-00-00 00:00:00', '0000-00-00 00:00:00'],
      ['2025-02-29 00:00:00', '2025-02-29 00:00:00'],
      ['2026-13-01 00:00:00', '2026-13-01 00:00:00'],
      ['2026-01-01 24:00:00', '2026-01-01 24:00:00'],
      ['2026-01-01 23:60:00', '2026-01-01 23:60:00'],
      ['2026-01-01 23:59:60', '2026-01-01 23:59:60'],
      ['2026-01-01 10:00:00+25', '2026-01-01 10:00:00+25'],
      ['9999-12-31 23:00:00-02', '9999-12-31 23:00:00-02'],
      ['infinity', 'infinity'],
      ['-infinity', '-infinity'],
      ['2026-01-01 10:00:00 BC', '2026-01-01 10:00:00 BC'],
      ['01/02/2026 10:00', '01/02/2026 10:00'],
      ['yesterday', 'yesterday'],
      // A Unix time number (SQLite) stays a number.
      [1767225600, 1767225600],
      // A Date (a driver that still makes one) is its UTC instant, in milliseconds.
      [new Date(Date.UTC(2026, 0, 1, 15)), '2026-01-01T15:00:00.000Z'],
    ];
    check('timestamptz', cases);
    check('timestamp', cases);
    for (const [, want] of cases) {
      if (typeof want === 'string' && want.endsWith('Z')) assert.match(want, ISO_UTC);
    }
  });

  it('toUtcIso agrees with Date on whole milliseconds', () => {
    fc.assert(
      fc.property(
        fc.date({
          min: new Date('1000-01-01T00:00:00Z'),
          max: new Date('9998-12-31T00:00:00Z'),
          noInvalidDate: true,
        }),
        fc.integer({ min: -14 * 60, max: 14 * 60 }),
        (date, offsetMinutes) => {
          const local = new Date(date.getTime() + offsetMinutes * 60_000)
            .toISOString()
            .slice(0, 23)
            .replace('T', ' ');
          const sign = offsetMinutes < 0 ? '-' : '+';
          const abs = Math.abs(offsetMinutes);
          const zone = `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
          assert.equal(toUtcIso(`${local}${zone}`), date.toISOString());
        },
      ),
      { numRuns: 300 },
    );
  });

  it('dates stay YYYY-MM-DD; invalid ones stay as they are', () => {
    check('date', [
      ['2026-01-01', '2026-01-01'],
      ['0000-00-00', '0000-00-00'],
      ['infinity', 'infinity'],
      [new Date(Date.UTC(2026, 0, 2)), '2026-01-02'],
    ]);
  });

  it('text and other kinds keep the driver type', () => {
    check('text', [
      ['75.00', '75.00'],
      ['2026-01-01 15:00:00', '2026-01-01 15:00:00'],
      [12, 12],
      [9007199254740993n, '9007199254740993'],
      [true, true],
    ]);
    check('other', [
      [{ a: 1 }, '{"a":1}'],
      [Buffer.from('abc'), '<3 bytes>'],
      ['x', 'x'],
    ]);
  });
});

describe('buildRowDocument with column kinds', () => {
  const spec = {
    sourceTable: 'shop.products',
    contentColumns: ['name', 'price', 'updated_at'],
    metadataColumns: ['price', 'in_stock', 'big', 'label'],
    filterColumn: 'updated_at',
  };
  const row = {
    key: ['7'],
    filter: '2026-01-01 15:00:00.123456+02',
    values: {
      name: 'Lamp',
      price: '75.00',
      in_stock: 1,
      big: '12345678901234567890',
      label: '010',
      updated_at: '2026-01-01 15:00:00.123456+02',
    },
  };

  it('types metadata columns and the filter value; content stays the source text', () => {
    const doc = buildRowDocument(
      {
        ...spec,
        columnKinds: {
          price: 'numeric',
          in_stock: 'boolean',
          big: 'integer',
          label: 'text',
          updated_at: 'timestamptz',
        },
      },
      row,
    );
    assert.deepEqual(doc.metadata, {
      price: 75,
      in_stock: true,
      big: '12345678901234567890',
      label: '010',
      updated_at: '2026-01-01T13:00:00.123456Z',
      source_table: 'shop.products',
      row_key: '7',
    });
    assert.equal(doc.content, 'name: Lamp\nprice: 75.00\nupdated_at: 2026-01-01 15:00:00.123456+02');
  });

  it('without kinds: the driver types and the filter text, as before', () => {
    const doc = buildRowDocument(spec, row);
    assert.deepEqual(doc.metadata, {
      price: '75.00',
      in_stock: 1,
      big: '12345678901234567890',
      label: '010',
      updated_at: '2026-01-01 15:00:00.123456+02',
      source_table: 'shop.products',
      row_key: '7',
    });
    const typed = buildRowDocument({ ...spec, columnKinds: { price: 'numeric' } }, row);
    assert.equal(typed.content, doc.content, 'kinds never change the content');
  });

  it('a column missing from the kinds keeps its driver type', () => {
    const doc = buildRowDocument({ ...spec, columnKinds: { in_stock: 'boolean' } }, row);
    assert.equal(doc.metadata.in_stock, true);
    assert.equal(doc.metadata.price, '75.00');
    assert.equal(doc.metadata.updated_at, '2026-01-01 15:00:00.123456+02');
  });
});
