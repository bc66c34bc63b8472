/**
 * `kbsync demo`: a sample SQLite database registered as `orders_db` (table `orders`) and a
 * knowledge base `orders_kb`, so the seed's curl, Python and JavaScript examples work as written.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { App } from './app.js';
import { DEFAULT_ACCOUNT } from './api/server.js';

const PRODUCTS: ReadonlyArray<readonly [string, string]> = [
  ['Trailblazer hiking boots', 'Waterproof leather hiking boots with a grippy Vibram sole, for rocky mountain trails.'],
  ['Summit 45L backpack', 'Lightweight 45-litre trekking backpack with a ventilated back panel and rain cover.'],
  ['Aurora down jacket', 'Packable goose-down jacket rated to minus ten degrees, ideal for winter camping.'],
  ['Breeze running shoes', 'Breathable road-running shoes with responsive foam cushioning for long distances.'],
  ['Nimbus rain poncho', 'Ultralight rain poncho that doubles as a ground sheet or emergency shelter.'],
  ['Ember camp stove', 'Compact gas camping stove that boils a litre of water in under four minutes.'],
  ['Polar sleeping bag', 'Mummy sleeping bag with synthetic insulation, comfortable down to minus five.'],
  ['Drift kayak paddle', 'Carbon-fibre kayak paddle, two-piece, feather angle adjustable.'],
  ['Lumen headlamp', 'Rechargeable LED headlamp, 400 lumens, red night-vision mode, USB-C charging.'],
  ['Terra trekking poles', 'Collapsible aluminium trekking poles with cork grips and quick locks.'],
  ['Cascade water filter', 'Squeeze water filter that removes bacteria and protozoa from stream water.'],
  ['Sierra camping tent', 'Two-person freestanding tent, three-season, sets up in five minutes.'],
  ['Glide yoga mat', 'Non-slip natural rubber yoga mat, 5 mm thick, with a carrying strap.'],
  ['Volt cycling helmet', 'Aerodynamic road-cycling helmet with MIPS protection and magnetic buckle.'],
  ['Harbor insulated bottle', 'Stainless steel bottle that keeps drinks cold for 24 hours or hot for 12.'],
  ['Ridge climbing harness', 'Adjustable climbing harness with four gear loops for sport and trad routes.'],
  ['Tidal wetsuit', '4/3 mm full wetsuit for surfing in cold water, with a chest zip.'],
  ['Canyon sunglasses', 'Polarised sport sunglasses with a wraparound frame and UV400 lenses.'],
  ['Fjord fleece pullover', 'Warm recycled-polyester fleece pullover for layering on chilly hikes.'],
  ['Orbit smart watch', 'GPS sports watch with heart-rate tracking, route navigation and a 14-day battery.'],
];

const NOTES = [
  'Gift wrapped.',
  'Customer asked for express delivery.',
  'Second purchase this month.',
  'Ordered in size M.',
  'Ordered in size L.',
  'Colour: forest green.',
  'Colour: midnight blue.',
  'Back-ordered item, ships next week.',
  '',
];

/** Deterministic rows: the same demo every time (a small LCG, no Math.random). */
export function demoRows(count = 300, startMs = Date.UTC(2025, 0, 1)): Array<[number, string, string, string]> {
  let seed = 42;
  const rand = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed / 2_147_483_648;
  };
  const rows: Array<[number, string, string, string]> = [];
  let t = startMs;
  for (let id = 1; id <= count; id++) {
    const [product, description] = PRODUCTS[Math.floor(rand() * PRODUCTS.length)]!;
    const note = NOTES[Math.floor(rand() * NOTES.length)]!;
    t += Math.floor(rand() * 6 * 3600_000);
    const createdAt = new Date(t).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, '');
    rows.push([id, product, `${description}${note ? ` ${note}` : ''}`, createdAt]);
  }
  return rows;
}

/** Writes dataDir/demo/orders.db once; returns its path. */
export function ensureDemoDatabase(dataDir: string): string {
  const file = path.join(dataDir, 'demo', 'orders.db');
  if (fs.existsSync(file)) return file;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  try {
    db.exec(`CREATE TABLE orders (
      id INTEGER PRIMARY KEY,
      product TEXT NOT NULL,
      description TEXT NOT NULL,
      created_at TIMESTAMP NOT NULL
    )`);
    const insert = db.prepare('INSERT INTO orders (id, product, description, created_at) VALUES (?, ?, ?, ?)');
    db.transaction(() => {
      for (const row of demoRows()) insert.run(...row);
    })();
  } finally {
    db.close();
  }
  return file;
}

/** Registers orders_db and orders_kb unless they exist. */
export async function setUpDemo(app: App): Promise<void> {
  const { databases, kbs, store } = app.services;
  const file = ensureDemoDatabase(app.config.dataDir);
  if (!(await store.getDatabase(DEFAULT_ACCOUNT, 'orders_db'))) {
    await databases.create(DEFAULT_ACCOUNT, { name: 'orders_db', engine: 'sqlite', parameters: { path: file } });
  }
  if (!(await store.getKnowledgeBase(DEFAULT_ACCOUNT, 'orders_kb'))) {
    await kbs.create(DEFAULT_ACCOUNT, { kb_name: 'orders_kb', description: 'Demo: outdoor-shop orders' });
  }
}

/** `YYYY-MM-DDTHH:MM:SS`, UTC without an offset: the seed's format. */
const seedTime = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '');

/**
 * The seed's create-job body for the demo, starting at the first whole minute at least a minute
 * from `nowMs` (time to paste it), ending a day later.
 */
export function demoJobBody(nowMs: number): Record<string, unknown> {
  const start = Math.ceil((nowMs + 60_000) / 60_000) * 60_000;
  return {
    job_name: 'sync_orders',
    source_table: 'orders_db.orders',
    kb_name: 'orders_kb',
    content_columns: ['product', 'description'],
    filter_column: 'created_at',
    interval: '10 MINUTES',
    start_time: seedTime(start),
    end_time: seedTime(start + 24 * 3600_000),
  };
}

/** The seed's cURL example against `baseUrl` with `body` (demoJobBody), ready to paste. */
export function demoCurl(baseUrl: string, jobBody: Record<string, unknown>): string {
  // One field a line, arrays inline: the seed's layout.
  const fields = Object.entries(jobBody).map(([k, v]) => `"${k}": ${JSON.stringify(v).replace(/","/g, '", "')}`);
  const body = `{\n${fields.join(',\n')}\n}`;
  return `curl -X POST "${baseUrl}/jobs/create" \\\n  -H "Content-Type: application/json" \\\n  -d '${body}'`;
}
