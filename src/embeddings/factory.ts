/**
 * The one place an embedding backend is chosen from configuration (ARCHITECTURE.md: "Backends are
 * chosen once, from configuration, by one factory").
 */
import { AppError } from '../core/errors.js';
import { HashingEmbeddingProvider } from './hashing/provider.js';
import {
  LOCAL_DIMENSIONS,
  LOCAL_MODEL,
  LocalEmbeddingProvider,
  type LocalEmbeddingOptions,
} from './local/provider.js';
import { OpenAIEmbeddingProvider, type OpenAIEmbeddingOptions } from './openai/provider.js';
import type { EmbeddingConfig, EmbeddingProvider } from './port.js';

/**
 * The test/benchmark provider (see hashing/provider.ts). Deliberately not part of
 * `EmbeddingConfig`: users cannot choose it unless a deployment sets `allowHashing`.
 */
export interface HashingEmbeddingConfig {
  provider: 'hashing';
  dimensions?: number;
}

export interface EmbeddingFactoryOptions {
  /** Tuning of the local provider (threads, batch size). */
  local?: LocalEmbeddingOptions;
  /** Tuning of the OpenAI-compatible provider (limits, timeouts, retries); the config wins on overlap. */
  openai?: Omit<OpenAIEmbeddingOptions, 'apiKey' | 'baseUrl' | 'model' | 'dimensions'>;
  /** Accept `provider: 'hashing'` (tests, benchmarks, demos without a model). Default false. */
  allowHashing?: boolean;
}

/** Names the local provider answers to, besides leaving `model` out. */
const LOCAL_MODEL_NAMES = new Set([LOCAL_MODEL, 'use-lite']);

export function createEmbeddingProvider(
  config: EmbeddingConfig | HashingEmbeddingConfig,
  options: EmbeddingFactoryOptions = {},
): EmbeddingProvider {
  switch (config.provider) {
    case 'local': {
      const problems: string[] = [];
      if (config.model !== undefined && !LOCAL_MODEL_NAMES.has(config.model)) {
        problems.push(`the local provider has one model, '${LOCAL_MODEL}' (got '${config.model}')`);
      }
      if (config.dimensions !== undefined && config.dimensions !== LOCAL_DIMENSIONS) {
        problems.push(
          `the local model produces ${LOCAL_DIMENSIONS}-dimensional vectors (got dimensions ${config.dimensions})`,
        );
      }
      if (config.base_url !== undefined || config.api_key !== undefined) {
        problems.push('base_url and api_key apply to the openai provider only');
      }
      if (problems.length > 0) throw new AppError('INVALID_REQUEST', 'Invalid embedding configuration', problems);
      return new LocalEmbeddingProvider(options.local);
    }
    case 'openai':
      try {
        return new OpenAIEmbeddingProvider({
          ...options.openai,
          ...(config.api_key !== undefined ? { apiKey: config.api_key } : {}),
          ...(config.base_url !== undefined ? { baseUrl: config.base_url } : {}),
          ...(config.model !== undefined ? { model: config.model } : {}),
          ...(config.dimensions !== undefined ? { dimensions: config.dimensions } : {}),
        });
      } catch (e) {
        if (e instanceof RangeError)
          throw new AppError('INVALID_REQUEST', 'Invalid embedding configuration', [e.message]);
        throw e;
      }
    case 'hashing':
      if (!options.allowHashing) {
        throw new AppError('INVALID_REQUEST', 'Invalid embedding configuration', [
          "provider must be 'local' or 'openai'",
        ]);
      }
      try {
        return new HashingEmbeddingProvider(
          config.dimensions !== undefined ? { dimensions: config.dimensions } : {},
        );
      } catch (e) {
        if (e instanceof RangeError)
          throw new AppError('INVALID_REQUEST', 'Invalid embedding configuration', [e.message]);
        throw e;
      }
    default: {
      const provider: unknown = (config as { provider: unknown }).provider;
      throw new AppError('INVALID_REQUEST', 'Invalid embedding configuration', [
        `provider must be 'local' or 'openai' (got ${JSON.stringify(provider)})`,
      ]);
    }
  }
}
