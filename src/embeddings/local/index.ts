export {
  LOCAL_DIMENSIONS,
  LOCAL_MODEL,
  LocalEmbeddingProvider,
  type LocalEmbeddingOptions,
} from './provider.js';
