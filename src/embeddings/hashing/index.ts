export { HashingEmbeddingProvider, type HashingEmbeddingOptions } from './provider.js';
