/**
 * The dashboard (docs/dashboard.md): `GET /` answers the page, `/ui/…` its modules, styles and the
 * vendor files, all built into dist/web by scripts/build-dashboard.mjs. Loading them needs no API
 * key (they hold no data; the page's API calls carry the key), and none of them is in the OpenAPI
 * document. Every answer here carries a strict Content-Security-Policy (nothing but this server:
 * no inline script, no CDN) and is revalidated on each load (`no-cache` with an ETag), so a new
 * build is picked up at once without bundler hashes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

const CSP = [
  "default-src 'self'",
  "base-uri 'none'",
  "object-src 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join('; ');

const HEADERS: Record<string, string> = {
  'content-security-policy': CSP,
  'cache-control': 'no-cache',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/**
 * dist/web of this installation: found from this file upwards (src/api/routes under tsx,
 * dist/src/api/routes when built), so it is the same place in development, tests and a package.
 */
export function dashboardDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return path.join(dir, 'dist', 'web');
}

export const dashboardRoutes =
  (webDir: string = dashboardDir()) =>
  async (app: FastifyInstance) => {
    // This plugin is encapsulated: the hooks below touch only the dashboard's routes.
    app.addHook('onRoute', (route) => {
      route.config = { ...(route.config ?? {}), auth: 'public' };
    });
    app.addHook('onSend', async (_request, reply, payload) => {
      reply.headers(HEADERS);
      return payload;
    });

    if (!fs.existsSync(path.join(webDir, 'index.html'))) {
      app.log.warn({ dir: webDir }, 'the dashboard is not built: run `npm run build`');
      app.get('/', { schema: { hide: true } }, async (_request, reply) =>
        reply
          .code(503)
          .type('text/plain; charset=utf-8')
          .send(
            `The dashboard is not built (no ${path.join(webDir, 'index.html')}): run \`npm run build\`.\n`,
          ),
      );
      return;
    }

    await app.register(fastifyStatic, {
      root: path.join(webDir, 'ui'),
      prefix: '/ui/',
      // Files are read at request time (a rebuild needs no restart); a directory is no page.
      wildcard: true,
      index: false,
      dotfiles: 'deny',
      preCompressed: true,
      cacheControl: false,
    });
    app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.sendFile('index.html', webDir));
  };
