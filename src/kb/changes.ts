/**
 * What writing a batch of documents would do, decided from the hashes the knowledge base holds:
 * which documents are unchanged (nothing to do), which changed only in metadata (rewritten
 * without embedding), which must be chunked and embedded, and which are too long to take. The
 * engine's write (engine.ts) and what it would cost (estimates, the per-run token budget) both
 * come from here, so an estimate embeds exactly what a run would.
 */
import { type Chunk, splitText } from '../core/chunking.js';
import { contentHash } from '../core/hash.js';
import type { Metadata } from '../store/vector-port.js';

export interface ChangeOptions {
  /** Longest content accepted, in characters (KBSYNC_MAX_DOCUMENT_CHARS). */
  maxChars: number;
  chunking: { chunk_size: number; chunk_overlap: number };
}

export interface DocumentChanges<D> {
  unchanged: D[];
  /** Same content, other metadata: the stored hash and metadata are rewritten, nothing is embedded. */
  metadataOnly: Array<{ doc: D; hash: string }>;
  /** New or changed content, with the chunks to embed. */
  toEmbed: Array<{ doc: D; hash: string; isNew: boolean; chunks: Chunk[] }>;
  tooLong: Array<{ id: string; reason: string }>;
}

/**
 * The stored hash covers content and metadata separately ("<content>.<metadata>"), so a row whose
 * metadata moved (its updated_at) but whose text did not is updated without re-embedding.
 */
export function documentHash(content: string, metadata: Metadata): { full: string; content: string } {
  const c = contentHash(content);
  const keys = Object.keys(metadata).sort();
  const m = contentHash(JSON.stringify(keys.map((k) => [k, metadata[k]])));
  return { full: `${c}.${m}`, content: c };
}

/** The documents whose content is within the limit (the only ones whose stored hash matters). */
export function withinLimit<D extends { content: string }>(docs: readonly D[], maxChars: number): D[] {
  return docs.filter((doc) => doc.content.length <= maxChars);
}

/** Sorts `docs` by what writing them would do; `stored`: the knowledge base's hashes by document id. */
export function classifyDocuments<D extends { id: string; content: string; metadata: Metadata }>(
  docs: readonly D[],
  stored: ReadonlyMap<string, string>,
  options: ChangeOptions,
): DocumentChanges<D> {
  const out: DocumentChanges<D> = { unchanged: [], metadataOnly: [], toEmbed: [], tooLong: [] };
  for (const doc of docs) {
    if (doc.content.length > options.maxChars) {
      out.tooLong.push({
        id: doc.id,
        reason: `content has ${doc.content.length} characters; the limit is ${options.maxChars} (KBSYNC_MAX_DOCUMENT_CHARS)`,
      });
      continue;
    }
    const hash = documentHash(doc.content, doc.metadata);
    const previous = stored.get(doc.id);
    if (previous === hash.full) out.unchanged.push(doc);
    else if (previous !== undefined && previous.split('.')[0] === hash.content)
      out.metadataOnly.push({ doc, hash: hash.full });
    else {
      const chunks = splitText(doc.content, {
        chunkSize: options.chunking.chunk_size,
        chunkOverlap: options.chunking.chunk_overlap,
      });
      out.toEmbed.push({ doc, hash: hash.full, isNew: previous === undefined, chunks });
    }
  }
  return out;
}
