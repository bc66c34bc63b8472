/**
 * The vector-index benchmark's corpus: deterministic product and support texts (product sheets,
 * tickets, reviews, FAQ answers, shipping and return notes, how-tos, chat lines), embedded once
 * with the real local model and cached under bench/.cache/ (git-ignored), keyed by the generator's
 * version, so a second run reads 200 MB instead of embedding for minutes.
 *
 * Recall of a binary-quantized index depends on how real vectors spread (on uniformly random ones
 * it is poor, on tight clusters perfect), so it is measured on these: many templates crossed with
 * brands, products, issues, adjectives, materials, places and numbers give ~100k distinct texts
 * that share vocabulary the way a shop's knowledge base does. Queries come from a held-out stream
 * of the same generator (other seed) plus short customer questions, never inserted.
 *
 *   npx tsx bench/vector-index-corpus.ts [count]     embeds (or checks) the cache and prints samples
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Bump whenever the texts change: the cache files are keyed by it. */
export const CORPUS_VERSION = 1;
export const CORPUS_SEED = 20261130;
export const QUERY_SEED = 7_700_001;
export const CACHE_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '.cache');

export interface CorpusText {
  text: string;
  category: string;
  kind: string;
}

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

const BRANDS = [
  'Aldermoor',
  'Brightwell',
  'Cobalt Peak',
  'Dunmore',
  'Everline',
  'Fjordhaus',
  'Granite & Co',
  'Halcyon',
  'Ironbark',
  'Juniper Lane',
  'Kitewell',
  'Lumora',
  'Marlowe',
  'Northvale',
  'Oakridge',
  'Pinecrest',
  'Quillon',
  'Redfern',
  'Saltmarsh',
  'Tamsin',
  'Umberto',
  'Valemont',
  'Westbrook',
  'Yarrow',
  'Zephyrine',
  'Ashgrove',
  'Bramblecote',
  'Caldera',
  'Driftwood',
  'Emberly',
  'Foxglove',
  'Greywell',
  'Hollins',
  'Ivel',
  'Larkspur',
  'Meridian',
  'Nettlebed',
  'Orwell',
  'Penrose',
  'Rookery',
];

/** category -> products, features and category-specific problems. */
const CATEGORIES: Record<string, { products: string[]; features: string[]; issues: string[] }> = {
  kitchen: {
    products: [
      'espresso machine',
      'stand mixer',
      'cast iron skillet',
      'chef knife',
      'kettle',
      'toaster',
      'blender',
      'air fryer',
      'rice cooker',
      'coffee grinder',
      'food processor',
      'dutch oven',
    ],
    features: [
      'a ceramic burr set',
      'a 1.7 litre capacity',
      'dishwasher-safe parts',
      'a steam wand',
      'a keep-warm mode',
      'a stainless steel body',
      'twelve speed settings',
      'a non-stick coating',
      'an auto shut-off',
      'a glass jug',
    ],
    issues: [
      'leaks water from the base',
      'makes a grinding noise',
      'trips the fuse when switched on',
      'the coating is peeling off',
      'the lid does not close properly',
      'heats unevenly',
      'shows a descale warning that never clears',
      'the blade came loose',
      'smells of burnt plastic',
      'the display stays blank',
    ],
  },
  electronics: {
    products: [
      'wireless earbuds',
      'bluetooth speaker',
      'smartwatch',
      'tablet',
      'e-reader',
      'wifi router',
      'mechanical keyboard',
      'gaming mouse',
      'webcam',
      'portable charger',
      'noise cancelling headphones',
      'smart thermostat',
    ],
    features: [
      'a 30 hour battery',
      'USB-C fast charging',
      'active noise cancelling',
      'a water resistant shell',
      'dual band wifi',
      'a backlit display',
      'swappable switches',
      'a companion app',
      'voice assistant support',
      'a 4K sensor',
    ],
    issues: [
      'will not pair with my phone',
      'the battery drains overnight',
      'keeps disconnecting every few minutes',
      'the firmware update failed',
      'the screen flickers',
      'one side is much quieter',
      'does not charge with the supplied cable',
      'overheats while charging',
      'the touch controls stopped responding',
      'reboots randomly',
    ],
  },
  outdoor: {
    products: [
      'hiking boot',
      'trail running shoe',
      'rain jacket',
      'down sleeping bag',
      'two person tent',
      'trekking pole',
      'daypack',
      'camping stove',
      'water filter',
      'headlamp',
      'insulated bottle',
      'climbing harness',
    ],
    features: [
      'a waterproof membrane',
      'taped seams',
      'a Vibram sole',
      'a 700 fill down',
      'an aluminium frame',
      'reflective trim',
      'a hip belt with pockets',
      'a piezo igniter',
      'a hollow fibre cartridge',
      'a red night mode',
    ],
    issues: [
      'the seam started leaking after two trips',
      'the zip broke on the first use',
      'the sole is separating at the toe',
      'a pole section snapped',
      'the buckle cracked in the cold',
      'the stitching is coming undone',
      'the stove will not light',
      'the filter flow slowed to a trickle',
      'the lid leaks in my bag',
      'the fabric pilled badly',
    ],
  },
  clothing: {
    products: [
      'merino base layer',
      'denim jacket',
      'wool jumper',
      'linen shirt',
      'chino trousers',
      'winter coat',
      'running tights',
      'fleece hoodie',
      'leather belt',
      'cotton t-shirt',
      'silk scarf',
      'raincoat',
    ],
    features: [
      'a relaxed fit',
      'flat-lock seams',
      'organic cotton',
      'a brushed lining',
      'recycled polyester',
      'a two way zip',
      'reinforced elbows',
      'stretch fabric',
      'a detachable hood',
      'horn buttons',
    ],
    issues: [
      'shrank after the first wash',
      'the colour ran onto other clothes',
      'the size runs small',
      'a button fell off',
      'the hem is uneven',
      'has a hole near the seam',
      'is much thinner than pictured',
      'the zip keeps splitting',
      'smells of chemicals',
      'the print cracked after washing',
    ],
  },
  home: {
    products: [
      'robot vacuum',
      'memory foam pillow',
      'standing desk',
      'office chair',
      'table lamp',
      'bookshelf',
      'duvet',
      'air purifier',
      'dehumidifier',
      'curtain set',
      'ceiling fan',
      'bath towel set',
    ],
    features: [
      'a HEPA filter',
      'an electric height adjustment',
      'a lumbar support',
      'a dimmable LED',
      'solid oak shelves',
      'a hypoallergenic filling',
      'a quiet night mode',
      'blackout lining',
      'a remote control',
      'Egyptian cotton',
    ],
    issues: [
      'arrived with a missing screw pack',
      'wobbles even after tightening',
      'the motor hums loudly',
      'the filter light stays on',
      'the gas lift sinks slowly',
      'the panel arrived scratched',
      'the app cannot find the device',
      'the fabric has a stain',
      'the instructions are missing a step',
      'the remote does not work',
    ],
  },
  garden: {
    products: [
      'cordless lawn mower',
      'hedge trimmer',
      'garden hose',
      'raised bed kit',
      'compost bin',
      'pressure washer',
      'pruning shears',
      'patio heater',
      'bird feeder',
      'greenhouse',
      'leaf blower',
      'watering can',
    ],
    features: [
      'a 40V battery',
      'a mulching blade',
      'an anti-kink hose',
      'untreated larch boards',
      'a 300 litre capacity',
      'a variable spray nozzle',
      'a bypass blade',
      'a tip-over switch',
      'squirrel-proof ports',
      'polycarbonate panels',
    ],
    issues: [
      'the battery will not hold a charge',
      'the hose split at the connector',
      'the blade is blunt out of the box',
      'the panels do not line up',
      'the pump loses pressure',
      'the handle snapped',
      'rusted within a month',
      'the lid blew off in the wind',
      'the cord retracts too fast',
      'the wheels jam',
    ],
  },
  bikes: {
    products: [
      'e-bike',
      'road bike',
      'bike helmet',
      'bike lock',
      'pannier bag',
      'bike pump',
      'cycling jersey',
      'front light',
      'child seat',
      'turbo trainer',
      'saddle',
      'mudguard set',
    ],
    features: [
      'a hydraulic disc brake',
      'an 11 speed groupset',
      'MIPS protection',
      'a hardened shackle',
      'a roll-top closure',
      'a pressure gauge',
      'a 500 lumen beam',
      'a carbon fork',
      'a smart resistance unit',
      'a cut-out channel',
    ],
    issues: [
      'the gears skip under load',
      'the brakes squeal',
      'the motor cuts out uphill',
      'the key broke in the lock',
      'the mount cracked',
      'the valve adapter leaks',
      'the light fills with water',
      'the chain keeps dropping',
      'the display shows error 21',
      'the trainer loses connection to the app',
    ],
  },
  beauty: {
    products: [
      'hair dryer',
      'electric toothbrush',
      'face serum',
      'beard trimmer',
      'sunscreen',
      'moisturiser',
      'hair straightener',
      'perfume',
      'shampoo bar',
      'makeup brush set',
      'nail kit',
      'body lotion',
    ],
    features: [
      'an ionic mode',
      'a pressure sensor',
      'vitamin C',
      'a precision comb',
      'SPF 50',
      'hyaluronic acid',
      'ceramic plates',
      'a travel case',
      'a fragrance-free formula',
      'vegan bristles',
    ],
    issues: [
      'caused a rash on my skin',
      'the bottle arrived half empty',
      'the pump does not dispense',
      'stops after a few seconds',
      'the scent is not what was described',
      'the brush head does not fit',
      'the seal was broken on arrival',
      'gets too hot to hold',
      'left a white cast',
      'the cap cracked',
    ],
  },
  pets: {
    products: [
      'dog harness',
      'cat tree',
      'pet fountain',
      'dog bed',
      'automatic feeder',
      'cat litter box',
      'dog lead',
      'aquarium filter',
      'pet carrier',
      'chew toy',
      'grooming brush',
      'bird cage',
    ],
    features: [
      'a padded chest plate',
      'sisal scratching posts',
      'a carbon filter',
      'a washable cover',
      'a portion timer',
      'a odour seal lid',
      'a reflective stitch',
      'an adjustable flow',
      'airline approval',
      'natural rubber',
    ],
    issues: [
      'my dog slipped out of it',
      'the base is unstable',
      'the pump stopped after a week',
      'the cover tore in the wash',
      'dispenses the wrong amount',
      'the lid does not seal',
      'the clip broke',
      'makes a rattling noise',
      'the door latch is loose',
      'fell apart in a day',
    ],
  },
  office: {
    products: [
      'laser printer',
      'monitor arm',
      'desk organiser',
      'paper shredder',
      'label maker',
      'notebook',
      'fountain pen',
      'ergonomic mouse',
      'docking station',
      'whiteboard',
      'desk mat',
      'filing cabinet',
    ],
    features: [
      'duplex printing',
      'a gas spring arm',
      'bamboo trays',
      'a cross-cut blade',
      'a thermal print head',
      'dot grid pages',
      'a steel nib',
      'a vertical grip',
      'dual 4K output',
      'a magnetic surface',
    ],
    issues: [
      'jams on every page',
      'the arm droops under my monitor',
      'the shredder overheats after two minutes',
      'prints faint lines',
      'the nib scratches',
      'the dock does not detect a second screen',
      'the drawer sticks',
      'the ink smudges',
      'the labels peel off',
      'the wheel squeaks',
    ],
  },
};

const GENERIC_ISSUES = [
  'arrived damaged in the box',
  'never arrived although tracking says delivered',
  'was charged twice',
  'the refund has not reached my account',
  'received the wrong colour',
  'the parcel was left outside in the rain',
  'is missing the charger',
  'the discount code was not applied',
  'the invoice shows the wrong address',
  'cannot find the warranty card',
  'the delivery date keeps moving',
  'the courier says the address does not exist',
];

const ADJECTIVES = [
  'lightweight',
  'durable',
  'compact',
  'premium',
  'affordable',
  'quiet',
  'powerful',
  'sturdy',
  'stylish',
  'versatile',
  'ergonomic',
  'eco-friendly',
  'portable',
  'heavy-duty',
  'minimalist',
  'cosy',
  'breathable',
  'rugged',
  'sleek',
  'budget',
  'professional',
  'beginner-friendly',
  'foldable',
  'handmade',
  'classic',
  'modern',
  'reliable',
  'high-end',
  'waterproof',
  'travel-sized',
];
const COLOURS = [
  'black',
  'white',
  'navy',
  'olive',
  'graphite',
  'sand',
  'red',
  'forest green',
  'slate blue',
  'mustard',
  'charcoal',
  'burgundy',
];
const CUSTOMERS = [
  'Anna',
  'Ben',
  'Chloe',
  'David',
  'Elena',
  'Farid',
  'Grace',
  'Hugo',
  'Isla',
  'Jonas',
  'Kira',
  'Liam',
  'Maya',
  'Nils',
  'Olivia',
  'Pavel',
  'Rosa',
  'Sami',
  'Tara',
  'Yusuf',
];
const CITIES = [
  'Leeds',
  'Bristol',
  'Glasgow',
  'Cardiff',
  'Dublin',
  'Lyon',
  'Ghent',
  'Utrecht',
  'Porto',
  'Bergen',
  'Aarhus',
  'Graz',
  'Bologna',
  'Krakow',
  'Tallinn',
];
const CARRIERS = ['DPD', 'Royal Mail', 'DHL', 'UPS', 'our own van', 'GLS', 'Evri'];
const ACTIONS = [
  'we have sent a replacement',
  'a full refund has been issued',
  'please send us a photo of the label',
  'we have escalated this to the warehouse',
  'a prepaid return label is attached',
  'the part is on back order for two weeks',
  'we booked a collection for Thursday',
  'please reset the device by holding the button for ten seconds',
  'we offered a 20% goodwill voucher',
  'the repair centre will contact you',
  'please try the cable from another charger',
  'we updated the delivery address',
  'the case is closed after no reply',
  'we asked the courier to investigate',
];
const USES = [
  'daily commuting',
  'a week in the Alps',
  'my small flat',
  'a family of five',
  'weekend camping',
  'long shifts at work',
  'marathon training',
  'working from home',
  'a rainy winter',
  'my first apartment',
  'a beach holiday',
  'a busy cafe',
];
const STEPS = [
  'unplug it and let it cool',
  'remove the filter and rinse it under warm water',
  'hold the reset button for ten seconds',
  'check the fuse in the plug',
  'update the app to the latest version',
  'tighten the screws with the supplied key',
  'wipe it with a damp cloth only',
  'charge it fully before the first use',
  'descale it with citric acid once a month',
  'store it dry and out of direct sunlight',
  'oil the moving parts twice a season',
  'wash it cold and dry it flat',
];

export function generateTexts(count: number, seed = CORPUS_SEED): CorpusText[] {
  const random = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const categories = Object.keys(CATEGORIES);
  const out: CorpusText[] = [];
  const seen = new Set<string>();
  while (out.length < count) {
    const category = pick(categories);
    const c = CATEGORIES[category]!;
    const product = pick(c.products);
    const brand = pick(BRANDS);
    const model = `${brand} ${pick(['Pro', 'Lite', 'Max', 'One', 'Air', 'Go', 'X', 'S', 'Plus', 'Mini'])} ${int(2, 900)}`;
    const issue = random() < 0.75 ? pick(c.issues) : pick(GENERIC_ISSUES);
    const adj = pick(ADJECTIVES);
    const adj2 = pick(ADJECTIVES);
    const feature = pick(c.features);
    const feature2 = pick(c.features);
    const who = pick(CUSTOMERS);
    const order = `#${int(100000, 999999)}`;
    const days = int(2, 60);
    const price = `${int(9, 899)}.${pick(['00', '49', '95', '99'])}`;
    const r = random();
    let kind: string;
    let text: string;
    if (r < 0.16) {
      kind = 'product';
      text = `The ${model} is a ${adj} ${product} with ${feature} and ${feature2}. Available in ${pick(COLOURS)} for ${price} EUR. ${pick(['Ideal for', 'Made for', 'A favourite for'])} ${pick(USES)}.`;
    } else if (r < 0.36) {
      kind = 'ticket';
      text = `Ticket ${int(10000, 99999)} from ${who} in ${pick(CITIES)}: order ${order}, my ${brand} ${product}: ${issue}. ${pick(['Bought', 'Delivered', 'Received'])} ${days} days ago. Agent note: ${pick(ACTIONS)}.`;
    } else if (r < 0.52) {
      kind = 'review';
      const stars = int(1, 5);
      text = `${stars} star${stars === 1 ? '' : 's'}. I used the ${model} ${product} for ${pick(USES)}. ${stars >= 4 ? `Really ${adj} and ${adj2}; ${feature} makes a difference.` : `Disappointed: ${issue}.`} ${pick(['Would buy again.', 'Returned it.', 'Customer service was helpful.', 'Not worth the price.', 'Great value.', 'Took ages to arrive.'])}`;
    } else if (r < 0.64) {
      kind = 'faq';
      text = `Q: My ${product}: ${issue}. What should I do? A: First ${pick(STEPS)}, then ${pick(STEPS)}. If that does not help, contact support with your order number and ${pick(ACTIONS)}.`;
    } else if (r < 0.72) {
      kind = 'shipping';
      text = `Order ${order} (${brand} ${product}, ${pick(COLOURS)}) shipped with ${pick(CARRIERS)} from our ${pick(CITIES)} warehouse. Expected delivery in ${int(1, 9)} working days; ${pick(['signature required', 'can be left with a neighbour', 'tracking updates by email', 'delivered to a pickup point'])}.`;
    } else if (r < 0.8) {
      kind = 'returns';
      text = `Returns for ${category} items like the ${product}: within ${pick([14, 30, 60, 100])} days, unused and in the original box. ${pick(['Refunds take 5 to 10 working days.', 'Return shipping is free for members.', 'Opened hygiene products cannot be returned.', 'Faulty items are covered by a 2 year warranty.'])} ${pick(ACTIONS)}.`;
    } else if (r < 0.9) {
      kind = 'howto';
      text = `How to care for your ${adj} ${product}: ${pick(STEPS)}; ${pick(STEPS)}; and ${pick(STEPS)}. Models with ${feature} also need ${pick(['a new filter every six months', 'a firmware check after each update', 'a waterproofing spray each season', 'the seals checked yearly', 'nothing else'])}.`;
    } else {
      kind = 'chat';
      text = `Chat with ${who}: "Hi, problem with my ${brand} ${product}: ${issue}. I need it for ${pick(USES)}." Agent: "Sorry to hear that, ${pick(ACTIONS)}." Customer rated the chat ${int(1, 5)} of 5.`;
    }
    if (seen.has(text)) continue;
    seen.add(text);
    out.push({ text, category, kind });
  }
  return out;
}

/** Held-out queries: texts of a separate stream of the generator, and short customer questions. */
export function generateQueries(count: number, seed = QUERY_SEED): string[] {
  const random = mulberry32(seed + 1);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const heldOut = generateTexts(count, seed);
  const categories = Object.keys(CATEGORIES);
  return heldOut.map((t, i) => {
    if (i % 2 === 0) return t.text;
    const c = CATEGORIES[pick(categories)]!;
    return pick([
      () => `my ${pick(c.products)}: ${pick(c.issues)}, what can I do?`,
      () => `${pick(ADJECTIVES)} ${pick(c.products)} with ${pick(c.features)}`,
      () => `how do I return a ${pick(c.products)} that ${pick(GENERIC_ISSUES)}`,
      () => `how to clean a ${pick(c.products)}`,
    ])();
  });
}

/** `count` held-out queries, none equal to a text of the corpus. */
export function heldOutQueries(count: number, corpus: ReadonlySet<string>): string[] {
  return generateQueries(Math.ceil(count * 1.1) + 20)
    .filter((q) => !corpus.has(q))
    .slice(0, count);
}

interface CacheMeta {
  version: number;
  count: number;
  dimensions: number;
  sha256: string;
  model: string;
}

function textsDigest(texts: string[]): string {
  const h = crypto.createHash('sha256');
  for (const t of texts) h.update(t).update('\n');
  return h.digest('hex');
}

/**
 * Vectors of `texts`, from bench/.cache/<name>-v<version>-<count>.f32 when its digest matches,
 * else embedded with the local model (2 threads) and written there.
 */
export async function cachedEmbeddings(
  name: string,
  texts: string[],
  log: (line: string) => void = console.log,
): Promise<Float32Array[]> {
  const base = path.join(CACHE_DIR, `${name}-v${CORPUS_VERSION}-${texts.length}`);
  const digest = textsDigest(texts);
  try {
    const meta = JSON.parse(fs.readFileSync(`${base}.json`, 'utf8')) as CacheMeta;
    if (meta.sha256 === digest && meta.count === texts.length) {
      const buf = fs.readFileSync(`${base}.f32`);
      const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
      if (all.length === meta.count * meta.dimensions) {
        return Array.from({ length: meta.count }, (_, i) =>
          all.subarray(i * meta.dimensions, (i + 1) * meta.dimensions),
        );
      }
    }
  } catch {
    // no cache yet, or a stale one: embed
  }
  // Imported here so reading the cache never starts the model.
  const { LocalEmbeddingProvider, LOCAL_MODEL } = await import('../src/embeddings/local/index.js');
  const provider = new LocalEmbeddingProvider({ threads: 2 });
  const vectors: Float32Array[] = [];
  const started = performance.now();
  try {
    for (let i = 0; i < texts.length; i += 512) {
      vectors.push(...(await provider.embed(texts.slice(i, i + 512))));
      if ((i / 512) % 20 === 0) {
        const s = (performance.now() - started) / 1000;
        log(`  embedded ${vectors.length}/${texts.length} ${name} texts (${s.toFixed(0)} s)`);
      }
    }
  } finally {
    await provider.close();
  }
  const dimensions = vectors[0]?.length ?? 0;
  const all = new Float32Array(texts.length * dimensions);
  for (const [i, v] of vectors.entries()) all.set(v, i * dimensions);
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  fs.writeFileSync(`${base}.f32`, Buffer.from(all.buffer));
  const meta: CacheMeta = {
    version: CORPUS_VERSION,
    count: texts.length,
    dimensions,
    sha256: digest,
    model: LOCAL_MODEL,
  };
  fs.writeFileSync(`${base}.json`, `${JSON.stringify(meta, null, 2)}\n`);
  log(
    `  embedded ${texts.length} ${name} texts in ${((performance.now() - started) / 1000).toFixed(0)} s -> ${base}.f32`,
  );
  return Array.from({ length: texts.length }, (_, i) => all.subarray(i * dimensions, (i + 1) * dimensions));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const count = Number(process.argv[2] ?? 100_000);
  const texts = generateTexts(count).map((t) => t.text);
  const queries = heldOutQueries(1000, new Set(texts));
  for (const t of texts.slice(0, 5)) console.log(`text: ${t}`);
  for (const q of queries.slice(0, 5)) console.log(`query: ${q}`);
  const q = await cachedEmbeddings('queries', queries);
  const v = await cachedEmbeddings('corpus', texts);
  console.log(`${v.length} corpus and ${q.length} query vectors of ${v[0]?.length} dimensions`);
}
