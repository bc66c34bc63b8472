/**
 * Search quality: recall@1 and recall@5 of the three query modes (semantic, keyword, hybrid) on a
 * small hand-labelled retrieval set (bench/data/retrieval-set.json), through the real HTTP API and
 * the real default embedding provider (the local Universal Sentence Encoder lite model).
 *
 *   npx tsx bench/search-quality.ts            the table
 *   npx tsx bench/search-quality.ts --queries  the table, then every query's top 5 per mode
 *   npx tsx bench/search-quality.ts --variants the table, then recall of fusion variants computed
 *                                              here from the raw semantic and keyword lists
 *   ... --distractors N [--seed S] [--threads T]
 *       the same among N generated distractor documents (see generateDistractors), as in a larger
 *       knowledge base; 2000-5000 is a useful range (about 100 documents/s to embed on 2 threads)
 *
 * recall@k here is the fraction of queries whose top k results contain at least one document
 * labelled relevant (a "success@k" or "hit rate@k"; most queries have exactly one relevant
 * document, so it equals classic recall for those).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { bm25OfKeywordRelevance } from '../src/kb/relevance.js';

export const MODES = ['semantic', 'keyword', 'hybrid'] as const;
export type Mode = (typeof MODES)[number];
export type QueryKind = 'paraphrase' | 'exact';

export const TOP_K = 5;
export const RECALL_DEFINITION =
  'recall@k = fraction of queries whose top-k results contain at least one document labelled relevant';

export interface RetrievalSet {
  documents: Array<{
    id: string;
    content: string;
    metadata?: Record<string, string | number | boolean | null>;
  }>;
  queries: Array<{ query: string; relevant: string[]; kind: QueryKind }>;
}

export interface QualityRow {
  mode: Mode;
  kind: QueryKind | 'all';
  recallAt1: number;
  recallAt5: number;
  queries: number;
}

export interface QueryOutcome {
  query: string;
  kind: QueryKind;
  relevant: string[];
  /** Document ids of the top 5 per mode, best first. */
  ranked: Record<Mode, string[]>;
  /** With `listDepth`: the semantic and keyword result lists at that depth, for fusion experiments. */
  lists?: { semantic: ListHit[]; keyword: ListHit[] };
}

/** One API result, as a fusion input: `relevance` is monotone in the store's raw score. */
export interface ListHit {
  documentId: string;
  chunkId: string;
  relevance: number;
}

export interface QualityResult {
  rows: QualityRow[];
  /** Every query's ranking per mode, for analysing misses. */
  perQuery: QueryOutcome[];
  definition: string;
  /** Documents in the knowledge base, distractors included. */
  documents: number;
  distractors: number;
  /** Wall time of loading (embedding) the documents and of asking the queries. */
  seconds: { load: number; queries: number };
}

const DATA_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'data', 'retrieval-set.json');

export function loadRetrievalSet(file = DATA_FILE): RetrievalSet {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as RetrievalSet;
}

/** Fraction of outcomes whose top k (in `mode`) holds a relevant document. */
function recallAt(outcomes: QueryOutcome[], mode: Mode, k: number): number {
  if (outcomes.length === 0) return 0;
  const hits = outcomes.filter((o) =>
    o.ranked[mode].slice(0, k).some((id) => o.relevant.includes(id)),
  ).length;
  return hits / outcomes.length;
}

export function summarise(perQuery: QueryOutcome[]): QualityRow[] {
  const rows: QualityRow[] = [];
  for (const mode of MODES) {
    for (const kind of ['all', 'paraphrase', 'exact'] as const) {
      const subset = kind === 'all' ? perQuery : perQuery.filter((o) => o.kind === kind);
      rows.push({
        mode,
        kind,
        recallAt1: recallAt(subset, mode, 1),
        recallAt5: recallAt(subset, mode, TOP_K),
        queries: subset.length,
      });
    }
  }
  return rows;
}

/**
 * Starts an app on a temporary data directory (scheduler off, logs silent, default embedding
 * provider), loads the retrieval set through POST /knowledge_bases/{kb}/documents, asks every query
 * in every mode with top_k 5, and closes the app (and removes the directory) whatever happens.
 *
 * One embedding worker thread: the model is loaded once, and the figures do not depend on the
 * thread count (each text is embedded on its own by the same deterministic model).
 */
export async function benchSearchQuality(
  options: {
    set?: RetrievalSet;
    threads?: number;
    listDepth?: number;
    distractors?: number;
    seed?: number;
  } = {},
): Promise<QualityResult> {
  const labelled = options.set ?? loadRetrievalSet();
  const set: RetrievalSet = {
    documents: [
      ...labelled.documents,
      ...generateDistractors(options.distractors ?? 0, labelled, options.seed),
    ],
    queries: labelled.queries,
  };
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kbsync-search-quality-'));
  const config = loadConfig({ LOG_LEVEL: 'silent' } as NodeJS.ProcessEnv, {
    dataDir,
    scheduler: false,
    localEmbeddingThreads: options.threads ?? 1,
  });
  const app = await createApp(config);
  /** The `data` of a successful answer; anything else throws with the answer's body. */
  const request = async <T>(url: string, payload: object): Promise<T> => {
    const res = await app.server.inject({ method: 'POST', url, payload });
    if (res.statusCode >= 300)
      throw new Error(`POST ${url} answered ${res.statusCode}: ${res.body.slice(0, 500)}`);
    return (res.json() as { data: T }).data;
  };
  type Results = { results: Array<{ document_id: string; chunk_id: string; relevance: number }> };
  try {
    await request('/knowledge_bases', { kb_name: 'quality' });
    const loadStarted = performance.now();
    // The API takes at most 1000 documents per request.
    for (let i = 0; i < set.documents.length; i += 1000) {
      const batch = set.documents.slice(i, i + 1000);
      const counts = await request<{ added: number }>('/knowledge_bases/quality/documents', {
        documents: batch,
      });
      if (counts.added !== batch.length)
        throw new Error(`expected ${batch.length} documents added, got ${JSON.stringify(counts)}`);
    }

    const loadSeconds = (performance.now() - loadStarted) / 1000;
    const queryStarted = performance.now();
    const perQuery: QueryOutcome[] = [];
    for (const q of set.queries) {
      const ranked = {} as Record<Mode, string[]>;
      for (const mode of MODES) {
        const data = await request<Results>('/knowledge_bases/quality/query', {
          query: q.query,
          mode,
          top_k: TOP_K,
        });
        // Results are chunks; a document split into several chunks counts once, at its best rank.
        ranked[mode] = [...new Set(data.results.map((r) => r.document_id))];
      }
      const outcome: QueryOutcome = { query: q.query, kind: q.kind, relevant: q.relevant, ranked };
      if (options.listDepth !== undefined) {
        const list = async (mode: 'semantic' | 'keyword'): Promise<ListHit[]> => {
          const data = await request<Results>('/knowledge_bases/quality/query', {
            query: q.query,
            mode,
            top_k: options.listDepth,
          });
          return data.results.map((r) => ({
            documentId: r.document_id,
            chunkId: r.chunk_id,
            relevance: r.relevance,
          }));
        };
        outcome.lists = {
          semantic: await list('semantic'),
          keyword: await list('keyword'),
        };
      }
      perQuery.push(outcome);
    }
    return {
      rows: summarise(perQuery),
      perQuery,
      definition: RECALL_DEFINITION,
      documents: set.documents.length,
      distractors: set.documents.length - labelled.documents.length,
      seconds: { load: loadSeconds, queries: (performance.now() - queryStarted) / 1000 },
    };
  } finally {
    await app.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Distractors (--distractors N): generated product sheets, customer reviews, advice articles, store
// notices, trail notes and support tickets, so the labelled documents have to be found among
// thousands of plausible neighbours, as in a real knowledge base. Deterministic (seeded PRNG): the
// same N and seed give the same texts on every run. They are never labelled relevant. They share
// the set's vocabulary and style (product words, second-person advice with "your" and "the", codes
// like SKU-1234-X) but are built not to answer any labelled query: their products are none of
// headlamps, sleeping bags, hammocks, coolers, satellite messengers, solar panels, large packs,
// first-aid kits, inflatable boats or crampons, and their advice (care, sizing, safety, spare parts,
// shop help) is about those other products, never returns, warranty, delivery, firmware, pairing,
// batteries, down or waterproofing, boot fit or tent repair. Some are near misses on purpose
// ("rinse your chalk bag" against "how to clean a feather-filled bag"). A name used in the set
// (Kestrel, Osprey, ...) or one of its codes is never generated.

/** mulberry32: a small, fast, well-distributed 32-bit PRNG; enough for test data. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NAMES =
  `Alder Basalt Cirrus Dune Echo Fjord Granite Harbor Juniper Kodiak Larch Meridian Nimbus Onyx Pika
  Quartz Raven Sable Talus Umbra Vista Willow Yarrow Zephyr Cobalt Flint Heron Ibex Lynx Marmot Otter Puffin
  Tundra Sierra Canyon Cascade Boulder Cedar Aspen Birch Falcon Condor Mesa Moraine Cairn Corrie Tarn Scarp
  Bluff Fern Heather Lichen Spruce Thistle Bramble Orca Wren Lark Finch Plover Tern Gannet Merlin`.split(
    /\s+/,
  );

/** Product types no labelled query asks for: [noun, category, typical grams, features]. */
const PRODUCT_TYPES: Array<[string, string, number, string[]]> = [
  [
    'folding camp chair',
    'furniture',
    1100,
    ['a cup holder', 'a side pocket', 'aluminium legs', 'a high back', 'a carry bag', 'a 120 kg load rating'],
  ],
  [
    'roll-top camp table',
    'furniture',
    1500,
    ['an aluminium slat top', 'adjustable legs', 'a mesh shelf', 'a carry bag', 'a wipe-clean surface'],
  ],
  [
    'merino hiking socks',
    'clothing',
    90,
    ['a cushioned heel', 'a ribbed arch band', 'flat seams', 'a reinforced heel', 'odour resistance'],
  ],
  [
    'merino base layer top',
    'clothing',
    180,
    ['flatlock seams', 'a crew neck', 'thumb loops', 'a longer back hem', 'odour resistance'],
  ],
  [
    'softshell trousers',
    'clothing',
    420,
    ['articulated knees', 'a zipped thigh pocket', 'stretch fabric', 'adjustable hems', 'a belt'],
  ],
  ['wide-brim sun hat', 'clothing', 110, ['UPF 50 fabric', 'a chin cord', 'a mesh crown', 'a packable brim']],
  [
    'sport sunglasses',
    'optics',
    30,
    ['category 3 lenses', 'rubber nose pads', 'wraparound frames', 'a hard case'],
  ],
  [
    'stainless water bottle',
    'cooking',
    350,
    ['a leak-proof lid', 'a wide mouth', 'a powder-coated finish', 'a carry loop'],
  ],
  ['roll-top dry bag', 'packs', 120, ['welded seams', 'a D-ring', 'a shoulder strap', 'a clear window']],
  [
    'locking carabiner',
    'climbing',
    60,
    ['a screwgate', 'a keylock nose', 'a 24 kN major axis rating', 'an anodised finish'],
  ],
  [
    'dynamic climbing rope',
    'climbing',
    3600,
    ['a middle mark', 'a dry treatment', 'a 9.5 mm diameter', 'a rope bag'],
  ],
  [
    'climbing harness',
    'climbing',
    380,
    ['four gear loops', 'adjustable leg loops', 'a belay loop', 'padded waist belt'],
  ],
  [
    'climbing helmet',
    'climbing',
    320,
    ['an EPS foam shell', 'a headlamp clip', 'vents', 'a dial adjustment'],
  ],
  ['chalk bag', 'climbing', 80, ['a brush holder', 'a drawcord closure', 'a belt', 'a fleece lining']],
  [
    'bouldering crash pad',
    'climbing',
    4200,
    ['a taco fold', 'shoulder straps', 'a carpet landing strip', 'dual-density foam'],
  ],
  ['trail running vest', 'packs', 240, ['two soft flasks', 'chest pockets', 'a whistle', 'a pole holder']],
  [
    'cycling gloves',
    'clothing',
    70,
    ['gel palm pads', 'touchscreen fingertips', 'a terry thumb', 'pull tabs'],
  ],
  [
    'folding bike lock',
    'cycling',
    1100,
    ['hardened steel links', 'a frame mount', 'two keys', 'a rubber coating'],
  ],
  [
    'telescopic fishing rod',
    'fishing',
    260,
    ['a cork handle', 'a graphite blank', 'a spinning reel seat', 'a travel tube'],
  ],
  ['insulated camp mug', 'cooking', 240, ['a sliding lid', 'a double wall', 'a handle', 'a non-slip base']],
  ['hard-anodised cook set', 'cooking', 650, ['two pots', 'a frying pan', 'folding handles', 'a mesh bag']],
  ['titanium spork', 'cooking', 18, ['a bottle opener', 'a serrated edge', 'a carry loop']],
  [
    'pocket multi-tool',
    'accessories',
    190,
    ['pliers', 'a wire cutter', 'screwdriver bits', 'a bottle opener', 'a nylon sheath'],
  ],
  [
    'folding saw',
    'accessories',
    300,
    ['a 21 cm blade', 'a locking hinge', 'a rubber grip', 'replaceable blades'],
  ],
  [
    'dog harness',
    'dogs',
    200,
    ['a handle on the back', 'reflective trim', 'two leash points', 'padded straps'],
  ],
  [
    'trekking umbrella',
    'accessories',
    250,
    ['a reflective canopy', 'a hands-free mount', 'a fibreglass frame'],
  ],
  [
    'baseplate compass',
    'navigation',
    45,
    ['a sighting mirror', 'a declination adjustment', 'a magnifier', 'a lanyard'],
  ],
  [
    'microfibre travel towel',
    'accessories',
    150,
    ['a hanging loop', 'a mesh pouch', 'antibacterial treatment'],
  ],
  ['insect repellent spray', 'health', 110, ['20% icaridin', 'a pump bottle', 'eight hours of protection']],
  ['mineral sunscreen', 'health', 100, ['SPF 50', 'water resistance', 'a squeeze tube', 'no fragrance']],
  ['knit beanie', 'clothing', 70, ['a fleece band', 'a turn-up cuff', 'a pompom']],
  ['inflatable camp pillow', 'furniture', 90, ['a brushed cover', 'a one-way valve', 'a stuff sack']],
  [
    'hydration bladder',
    'packs',
    170,
    ['a bite valve', 'a quick-disconnect hose', 'a wide opening', 'a hanging slot'],
  ],
  [
    'folded trail map',
    'navigation',
    80,
    ['a 1:25 000 scale', 'waterproof paper', 'marked huts', 'an index of peaks'],
  ],
  ['camp axe', 'accessories', 900, ['a forged head', 'a hickory handle', 'a leather sheath']],
  ['lightweight tarp', 'accessories', 450, ['eight tie-outs', 'silnylon fabric', 'reinforced corners']],
];

/** Advice articles: care, sizing, safety, spare parts and shop help, for the distractor products. */
const ADVICE: Array<
  (a: { name: string; type: string; code: string; place: string; n: number; random: () => number }) => string
> = [
  (a) =>
    `Rinse your ${a.type} in fresh water after a trip and let it dry away from direct heat before you put it away. A mild soap is enough; solvents and bleach shorten its life.`,
  (a) =>
    `If you are between two sizes of the ${a.name} ${a.type}, choose the larger one. Our size chart lists the measurements in centimetres, and the staff in ${a.place} can measure you in the store.`,
  (a) =>
    `Replace your ${a.type} after ${a.n} years of regular use, or straight away if it shows cracks, cuts or deep scratches. The production date is printed on the label inside.`,
  (a) =>
    `Spare parts for the ${a.name} ${a.type} can be ordered from our service desk with part number ${a.code}. Fitting them takes about ${a.n * 5} minutes with the tools supplied.`,
  (a) =>
    `The ${a.name} ${a.type} is made in a factory that we visit every year. We publish the audit report on our website, and you can ask us for the list of materials it contains.`,
  (a) =>
    `Our ${a.place} store is open Monday to Friday from 9:00 to ${17 + (a.n % 3)}:00 and on Saturday until 16:00. Customers park free for the first ${2 + (a.n % 3)} hours in the garage next door.`,
  () =>
    `You can change the e-mail address and the password of your account under My account > Settings. We never ask for your password by e-mail or on the phone.`,
  (a) =>
    `Before your first outing with the ${a.name} ${a.type}, read the leaflet in the box: it explains how to adjust it and which parts you can ${a.random() < 0.5 ? 'oil' : 'tighten'} yourself.`,
  (a) =>
    `Children under ${a.n + 4} should use the ${a.type} only with an adult nearby. Keep the small parts away from toddlers, and teach them how it works at home first.`,
  (a) =>
    `Members of our climbing and paddling clubs in ${a.place} get a group discount on the ${a.type} when they order ${a.n + 4} or more at once. Ask the club secretary for the code.`,
];

const COLOURS = [
  'black',
  'olive',
  'slate blue',
  'rust',
  'sand',
  'forest green',
  'charcoal',
  'teal',
  'burgundy',
  'grey',
];
const PLACES = [
  'Innsbruck',
  'Salzburg',
  'Graz',
  'Munich',
  'Zurich',
  'Bolzano',
  'Linz',
  'Bern',
  'Lucerne',
  'Villach',
];
const TRIPS = [
  'a week in the Dolomites',
  'a weekend by the lake',
  'a family holiday in Norway',
  'my commute',
  'a climbing trip to Arco',
  'a fishing weekend',
  'a bike tour along the Danube',
  'a school trip',
  'the garden',
  'a road trip through France',
];
const PRAISE = [
  'It feels well made',
  'Good value for the price',
  'Does exactly what it says',
  'My partner liked it so much she bought one too',
  'The colour is nicer than in the photos',
  'It survived a lot of use without a scratch',
];
const GRIPES = [
  'the carry bag is a bit tight',
  'the instructions were only in German',
  'it is heavier than I expected',
  'the strap could be longer',
  'the colour faded a little in the sun',
  'it took a while to arrive in my size',
];
const STARS = ['Five stars', 'Four stars', 'Three stars', 'Would buy again', 'Recommended'];
const EVENTS = [
  'a knot-tying workshop',
  'a map-reading evening',
  'a bouldering meet-up',
  'a kids’ craft afternoon',
  'a photo talk about the Alps',
  'a trail running club start',
  'a bike maintenance class',
  'a fly-fishing casting clinic',
];
const WEEKDAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const TICKET_TOPICS = [
  (n: string, t: string, c: string) =>
    `customer asked whether the ${n} ${t} comes in ${c}; told them ${c} arrives next season`,
  (_n: string, _t: string, _c: string) =>
    'customer could not log in to the web shop; sent a password reset link and it worked',
  (_n: string, _t: string, _c: string) =>
    'customer wanted an invoice with their company VAT number; reissued the invoice from the back office',
  (n: string, t: string, _c: string) =>
    `customer asked if the ${n} ${t} can be engraved; we do not offer engraving`,
  (_n: string, _t: string, _c: string) =>
    'customer asked for gift wrapping; added a note to the order for the packing team',
  (n: string, t: string, _c: string) =>
    `customer asked how many of the ${n} ${t} the Graz store has in stock; checked and reserved one`,
  (_n: string, _t: string, _c: string) =>
    'customer unsubscribed from the newsletter but still received one; removed the address from the list',
  (n: string, t: string, _c: string) =>
    `customer asked about bulk pricing for 40 units of the ${n} ${t} for a school club; forwarded to the sales team`,
];

/**
 * `count` distractor documents (ids `x-00001`...), seeded. Codes and names already in `avoid` (the
 * labelled set) are skipped, so a distractor never holds a labelled query's code.
 */
export function generateDistractors(
  count: number,
  avoid: RetrievalSet,
  seed = 20240601,
): RetrievalSet['documents'] {
  const random = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const letter = () => String.fromCharCode(65 + int(0, 25));
  const setText = avoid.documents.map((d) => d.content).join(' ');
  const setWords = new Set(setText.toLowerCase().match(/\p{L}+/gu) ?? []);
  const names = NAMES.filter((n) => !setWords.has(n.toLowerCase()));
  const usedCodes = new Set(setText.match(/\b[A-Z0-9]+(?:-[A-Z0-9]+)+\b/g) ?? []);
  const code = (): string => {
    for (;;) {
      const c = pick([
        () => `SKU-${int(1000, 9999)}-${letter()}`,
        () => `${letter()}${letter()}-${int(10, 999)}`,
        () => `${letter()}${letter()}${letter()}-${int(10, 99)}${letter()}`,
      ])();
      if (!usedCodes.has(c)) {
        usedCodes.add(c);
        return c;
      }
    }
  };
  const product = () => {
    const [type, category, grams, features] = pick(PRODUCT_TYPES);
    return { name: `${pick(names)} ${int(2, 95)}`, type, category, grams, features };
  };
  const two = (xs: string[]): [string, string] => {
    const a = pick(xs);
    let b = pick(xs);
    while (b === a) b = pick(xs);
    return [a, b];
  };

  const docs: RetrievalSet['documents'] = [];
  for (let i = 1; i <= count; i++) {
    const id = `x-${String(i).padStart(5, '0')}`;
    const p = product();
    const r = random();
    let content: string;
    let metadata: Record<string, string>;
    if (r < 0.35) {
      const [f1, f2] = two(p.features);
      const c = code();
      const label = c.startsWith('SKU-')
        ? pick(['Product code', 'Item'])
        : pick(['Part number', 'Model', 'SKU']);
      const [c1, c2] = two(COLOURS);
      const extra = pick([
        `Weighs ${Math.round(p.grams * (0.7 + 0.6 * random()))} g.`,
        `Available in ${c1} and ${c2}.`,
        `Made from ${int(30, 100)}% recycled material.`,
        p.category === 'clothing'
          ? `Sizes ${pick(['S to XL', 'XS to L', 'M to XXL'])}.`
          : 'Sold in our stores and online.',
      ]);
      content = `${p.name} ${p.type} with ${f1} and ${f2}. ${label} ${c}. ${extra}`;
      metadata = { type: 'product', category: p.category };
    } else if (r < 0.5) {
      content = `I bought the ${p.name} ${p.type} for ${pick(TRIPS)}. ${pick(PRAISE)}, but ${pick(GRIPES)}. ${pick(STARS)}.`;
      metadata = { type: 'review', category: p.category };
    } else if (r < 0.75) {
      // Advice in the labelled articles' own style (second person, full sentences), on other topics.
      content = pick(ADVICE)({
        name: p.name,
        type: p.type,
        code: code(),
        place: pick(PLACES),
        n: int(2, 12),
        random,
      });
      metadata = { type: 'article', topic: p.category };
    } else if (r < 0.85) {
      content = `Our ${pick(PLACES)} store hosts ${pick(EVENTS)} on the first ${pick(WEEKDAYS)} of every month at ${int(17, 19)}:00. Places are limited to ${int(8, 30)}; sign up at the till or on the events page.`;
      metadata = { type: 'article', topic: 'stores' };
    } else if (r < 0.92) {
      content = `The ${pick(names)} ${pick(['loop', 'ridge walk', 'valley path', 'lake circuit'])} near ${pick(PLACES)} is ${int(4, 24)} km long with ${int(100, 1400)} m of ascent; allow ${int(2, 8)} hours. ${pick(['There is a hut for lunch halfway.', 'Parking at the start costs a few euros.', 'The last section follows a forest road.', 'Dogs must stay on a lead in the nature reserve.'])}`;
      metadata = { type: 'article', topic: 'trails' };
    } else {
      content = `Ticket T-${int(10000, 99999)}: ${pick(TICKET_TOPICS)(p.name, p.type, pick(COLOURS))}.`;
      metadata = { type: 'ticket', topic: 'support' };
    }
    docs.push({ id, content, metadata });
  }
  return docs;
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

// ---------------------------------------------------------------------------------------------
// Fusion experiments (--variants). Not used by the test: they re-rank the raw lists the API returns
// for `semantic` and `keyword` at the engine's hybrid depth, to compare other fusions with the
// engine's on the same inputs. The first variant copies src/kb/relevance.ts `fuse` and
// src/kb/engine.ts's depth; `checkEngineCopy` verifies it ranks exactly like the API's hybrid.
// Keyword-side changes (the tokenizer, the stop words) cannot be replayed from API lists: they were
// compared by running this bench on each version of the code (see the commit that added them).

/** src/kb/engine.ts: `Math.min(Math.max(topK * 4, 40), 400)` for top_k 5. */
export const ENGINE_HYBRID_DEPTH = Math.min(Math.max(TOP_K * 4, 40), 400);

/** Ranks document ids from the two lists (best first). */
export type Fusion = (semantic: ListHit[], keyword: ListHit[]) => string[];

type Scored = { hit: ListHit; score: number; tie: number };

/** Best score first; equal scores by `tie`, higher first; then insertion order (semantic list first). */
function rankDocuments(scores: Map<string, Scored>): string[] {
  const sorted = [...scores.values()].sort((a, b) => b.score - a.score || b.tie - a.tie);
  return [...new Set(sorted.map((s) => s.hit.documentId))].slice(0, TOP_K);
}

/**
 * How reciprocal-rank fusion breaks a tie in fused score: `semantic` keeps the semantic list's
 * order (the engine before), `keyword` puts the better keyword rank first (the engine now),
 * `relevance` puts the higher [0, 1] relevance of either list first.
 */
export type RrfTie = 'semantic' | 'keyword' | 'relevance';

/** Weighted reciprocal-rank fusion over the first `depth` hits of each list. */
export function rrf(options: {
  k: number;
  depth?: number;
  semanticWeight?: number;
  keywordWeight?: number;
  tie?: RrfTie;
  /** Multiply each contribution by the hit's relevance ("score-weighted RRF"). */
  byRelevance?: boolean;
}): Fusion {
  const { k, depth = ENGINE_HYBRID_DEPTH, semanticWeight = 1, keywordWeight = 1, tie = 'semantic' } = options;
  return (semantic, keyword) => {
    const fused = new Map<string, Scored>();
    for (const [list, weight, isKeyword] of [
      [semantic, semanticWeight, false],
      [keyword, keywordWeight, true],
    ] as const) {
      list.slice(0, depth).forEach((hit, rank) => {
        const entry = fused.get(hit.chunkId) ?? { hit, score: 0, tie: Number.NEGATIVE_INFINITY };
        entry.score += (weight * (options.byRelevance ? hit.relevance : 1)) / (k + rank + 1);
        if (tie === 'keyword' && isKeyword) entry.tie = -rank;
        if (tie === 'relevance') entry.tie = Math.max(entry.tie, hit.relevance);
        fused.set(hit.chunkId, entry);
      });
    }
    return rankDocuments(fused);
  };
}

/** alpha * semantic + (1 - alpha) * keyword, on the API's [0, 1] relevances or a rescaling of them. */
export function relevanceSum(
  alpha: number,
  scale: (list: ListHit[]) => ListHit[] = (list) => list,
  depth = ENGINE_HYBRID_DEPTH,
): Fusion {
  return (semantic, keyword) => {
    const fused = new Map<string, Scored>();
    for (const [list, weight] of [
      [semantic, alpha],
      [keyword, 1 - alpha],
    ] as const) {
      for (const hit of scale(list.slice(0, depth))) {
        const entry = fused.get(hit.chunkId) ?? { hit, score: 0, tie: 0 };
        entry.score += weight * hit.relevance;
        fused.set(hit.chunkId, entry);
      }
    }
    return rankDocuments(fused);
  };
}

/** Each list's relevances rescaled to [0, 1] by its own min and max. */
const minMax = (list: ListHit[]): ListHit[] => {
  const values = list.map((h) => h.relevance);
  const lo = Math.min(...values);
  const span = Math.max(...values) - lo;
  return list.map((h) => ({ ...h, relevance: span > 0 ? (h.relevance - lo) / span : 1 }));
};

/** Each list's relevances as z-scores (distribution-based score fusion). */
const zScore = (list: ListHit[]): ListHit[] => {
  const values = list.map((h) => h.relevance);
  const mean = values.reduce((a, b) => a + b, 0) / (values.length || 1);
  const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length || 1)) || 1;
  return list.map((h) => ({ ...h, relevance: (h.relevance - mean) / sd }));
};

/** Keyword relevance re-mapped as bm25 / (bm25 + half) instead of the engine's half of 5. */
const keywordHalf =
  (half: number) =>
  (list: ListHit[]): ListHit[] =>
    list.map((h) => {
      const bm25 = bm25OfKeywordRelevance(h.relevance);
      return { ...h, relevance: bm25 / (bm25 + half) };
    });

export interface FusionVariant {
  name: string;
  fuse: Fusion;
}

/** The engine's fusion, copied: RRF k=60 at the hybrid depth, ties to the better keyword rank. */
export const ENGINE_FUSION: Fusion = rrf({ k: 60, tie: 'keyword' });

export const FUSION_VARIANTS: FusionVariant[] = [
  { name: 'engine: RRF k=60, depth 40, ties to keyword', fuse: ENGINE_FUSION },
  { name: 'RRF k=60, ties in semantic order (before)', fuse: rrf({ k: 60 }) },
  { name: 'RRF k=60, ties to higher relevance', fuse: rrf({ k: 60, tie: 'relevance' }) },
  { name: 'RRF k=20, ties to keyword', fuse: rrf({ k: 20, tie: 'keyword' }) },
  { name: 'RRF k=10, ties to keyword', fuse: rrf({ k: 10, tie: 'keyword' }) },
  { name: 'RRF k=60, depth 10, ties to keyword', fuse: rrf({ k: 60, depth: 10, tie: 'keyword' }) },
  { name: 'RRF k=60, weights 1:0.5', fuse: rrf({ k: 60, keywordWeight: 0.5 }) },
  { name: 'RRF k=60 x relevance', fuse: rrf({ k: 60, byRelevance: true }) },
  { name: 'relevance sum 0.5:0.5', fuse: relevanceSum(0.5) },
  { name: 'relevance sum 0.6:0.4', fuse: relevanceSum(0.6) },
  { name: 'relevance sum 0.4:0.6', fuse: relevanceSum(0.4) },
  {
    name: 'relevance sum 0.5:0.5, bm25 half 2.5',
    fuse: (s, k) => relevanceSum(0.5)(s, keywordHalf(2.5)(k)),
  },
  { name: 'min-max score fusion 0.5:0.5', fuse: relevanceSum(0.5, minMax) },
  { name: 'z-score fusion 0.5:0.5', fuse: relevanceSum(0.5, zScore) },
];

export interface VariantRow {
  name: string;
  all: { recallAt1: number; recallAt5: number };
  paraphrase: { recallAt1: number; recallAt5: number };
  exact: { recallAt1: number; recallAt5: number };
  /**
   * Exact queries with the relevant documents removed from the semantic list: what happens in a
   * large knowledge base, where a product code's document is rarely among the semantic top 40.
   */
  exactNotInSemantic: { recallAt1: number; recallAt5: number };
}

export function evaluateFusions(perQuery: QueryOutcome[], variants = FUSION_VARIANTS): VariantRow[] {
  return variants.map(({ name, fuse }) => {
    const outcomes = perQuery.map((o) => {
      if (!o.lists) throw new Error('evaluateFusions needs benchSearchQuality({ listDepth })');
      return { ...o, ranked: { ...o.ranked, hybrid: fuse(o.lists.semantic, o.lists.keyword) } };
    });
    const rows = summarise(outcomes).filter((r) => r.mode === 'hybrid');
    const pick = (kind: QualityRow['kind']) => {
      const r = rows.find((x) => x.kind === kind)!;
      return { recallAt1: r.recallAt1, recallAt5: r.recallAt5 };
    };
    const stressed = perQuery
      .filter((o) => o.kind === 'exact')
      .map((o) => {
        const semantic = o.lists!.semantic.filter((h) => !o.relevant.includes(h.documentId));
        return { ...o, ranked: { ...o.ranked, hybrid: fuse(semantic, o.lists!.keyword) } };
      });
    return {
      name,
      all: pick('all'),
      paraphrase: pick('paraphrase'),
      exact: pick('exact'),
      exactNotInSemantic: {
        recallAt1: recallAt(stressed, 'hybrid', 1),
        recallAt5: recallAt(stressed, 'hybrid', TOP_K),
      },
    };
  });
}

/** Queries whose API hybrid top 5 differs from the copy of the engine's fusion (should be none). */
export function checkEngineCopy(perQuery: QueryOutcome[]): string[] {
  return perQuery
    .filter(
      (o) => o.lists && ENGINE_FUSION(o.lists.semantic, o.lists.keyword).join() !== o.ranked.hybrid.join(),
    )
    .map((o) => o.query);
}

export function formatVariants(rows: VariantRow[]): string {
  const cell = (x: { recallAt1: number; recallAt5: number }) =>
    `${pct(x.recallAt1).padStart(6)} ${pct(x.recallAt5).padStart(6)}`;
  const width = Math.max(...rows.map((r) => r.name.length));
  return [
    `${'hybrid fusion variant'.padEnd(width)}  ${'all @1/@5'.padStart(13)}  ${'paraphrase'.padStart(13)}  ${'exact'.padStart(13)}  ${'exact, not in sem.'.padStart(18)}`,
    ...rows.map(
      (r) =>
        `${r.name.padEnd(width)}  ${cell(r.all)}  ${cell(r.paraphrase)}  ${cell(r.exact)}  ${cell(r.exactNotInSemantic).padStart(18)}`,
    ),
  ].join('\n');
}

export function formatTable(result: QualityResult): string {
  const header = ['mode', 'queries', 'kind', 'recall@1', 'recall@5'];
  const lines = result.rows.map((r) => [
    r.mode,
    String(r.queries),
    r.kind,
    pct(r.recallAt1),
    pct(r.recallAt5),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) =>
    cells.map((c, i) => (i >= 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  return [
    `Search quality: ${result.documents} documents (${result.distractors} of them generated distractors), ${result.perQuery.length} queries, top_k ${TOP_K}, local embedding model (USE lite)`,
    result.definition,
    '',
    fmt(header),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...lines.map(fmt),
  ].join('\n');
}

export function formatQueries(result: QualityResult): string {
  const out: string[] = [];
  for (const o of result.perQuery) {
    out.push(`[${o.kind}] ${o.query}   relevant: ${o.relevant.join(', ')}`);
    for (const mode of MODES) {
      const marks = o.ranked[mode].map((id) => (o.relevant.includes(id) ? `*${id}*` : id));
      out.push(`  ${mode.padEnd(8)} ${marks.join(', ') || '(no results)'}`);
    }
  }
  return out.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = performance.now();
  const variants = process.argv.includes('--variants');
  const option = (name: string): number | undefined => {
    const i = process.argv.indexOf(name);
    if (i < 0) return undefined;
    const value = Number(process.argv[i + 1]);
    if (!Number.isInteger(value) || value < 0) throw new Error(`${name} needs a whole number`);
    return value;
  };
  const distractors = option('--distractors') ?? 0;
  const result = await benchSearchQuality({
    distractors,
    ...(option('--seed') !== undefined ? { seed: option('--seed') } : {}),
    // The figures do not depend on the thread count; more threads only embed the distractors faster.
    threads: option('--threads') ?? (distractors > 0 ? 2 : 1),
    ...(variants ? { listDepth: ENGINE_HYBRID_DEPTH } : {}),
  });
  console.log(formatTable(result));
  if (process.argv.includes('--queries')) console.log(`\n${formatQueries(result)}`);
  if (variants) {
    const mismatches = checkEngineCopy(result.perQuery);
    console.log(
      `\nFusion variants on the same semantic and keyword lists (depth ${ENGINE_HYBRID_DEPTH}); recall@1 recall@5:`,
    );
    console.log(formatVariants(evaluateFusions(result.perQuery)));
    console.log(
      mismatches.length === 0
        ? 'the engine copy ranks every query exactly like the API'
        : `engine copy differs on: ${mismatches.join(' | ')}`,
    );
  }
  console.log(
    `\ntotal ${((performance.now() - started) / 1000).toFixed(1)} s (loading ${result.seconds.load.toFixed(1)} s, queries ${result.seconds.queries.toFixed(1)} s)`,
  );
}
