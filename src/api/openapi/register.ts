/**
 * The OpenAPI document at /openapi.json and the interactive docs at /docs. @fastify/swagger builds
 * the document from the routes' schemas (api/openapi/operation.ts); the shared response schemas
 * (schemas.ts) are added to the server first, so they appear once under `components.schemas`
 * under their own names.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { componentSchemas } from './schemas.js';

export interface OpenApiOptions {
  version: string;
  /** Authentication on (KBSYNC_ADMIN_KEY): every operation needs a key; off: a key is optional. */
  authOn: boolean;
}

const TAGS = [
  {
    name: 'jobs',
    description: 'Scheduled syncs of a source table into a knowledge base, their runs and failed rows',
  },
  { name: 'databases', description: 'Source databases (the `database` in `database.table`)' },
  { name: 'knowledge bases', description: 'Knowledge bases: documents, chunks, embeddings and search' },
  { name: 'accounts', description: 'Accounts and API keys (the admin key, with authentication on)' },
  { name: 'system', description: 'Health and metrics' },
];

export async function registerOpenApi(app: FastifyInstance, options: OpenApiOptions): Promise<void> {
  for (const schema of componentSchemas()) app.addSchema(schema);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'kbsync API',
        version: options.version,
        description:
          'Keep an AI knowledge base in sync with your tables. Every answer is JSON in an envelope: ' +
          '`{success: true, message, data}` or `{success: false, error: {code, message, details}}`. ' +
          'Times in answers are RFC 3339 UTC with `Z`; times in requests are ISO 8601, UTC when they have no offset.',
        license: { name: 'Apache-2.0', url: 'https://www.apache.org/licenses/LICENSE-2.0' },
      },
      // Relative: "Try it out" calls the server the docs were loaded from, whatever address it has.
      servers: [{ url: '/', description: 'This server' }],
      tags: TAGS,
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description:
              'An API key (kbs_…) as `Authorization: Bearer <key>`, needed when the server runs with KBSYNC_ADMIN_KEY; admin routes take the admin key.',
          },
        },
      },
      // With authentication off (a loopback server), a key is optional: `{}` is "no key needed".
      security: options.authOn ? [{ bearerAuth: [] }] : [{}, { bearerAuth: [] }],
    },
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) =>
        typeof json.$id === 'string' ? json.$id : `def-${i}`,
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
}
