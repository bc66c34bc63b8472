/**
 * An HTTP receiver for job webhooks on 127.0.0.1 (tests only): records every POST with its raw
 * body and headers, checks the X-Kbsync-Signature HMAC independently of the service's code, and
 * can be told to answer a status other than 204 for a delivery's first attempts.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedHook {
  path: string;
  headers: IncomingHttpHeaders;
  /** The body exactly as received. */
  raw: string;
  /** The status this receiver answered. */
  answered: number;
}

export interface WebhookReceiver {
  url(path?: string): string;
  received: ReceivedHook[];
  /** Answers `status` to the first `times` attempts of each delivery sent to `path`. */
  failFirst(path: string, times: number, status?: number): void;
  /** Resolves once `predicate` holds for the hooks received (polls; fails after `ms`). */
  waitFor(predicate: (hooks: ReceivedHook[]) => boolean, ms?: number): Promise<void>;
  close(): Promise<void>;
}

/** Whether `header` is `sha256=<hex HMAC-SHA256 of raw with secret>`, compared in constant time. */
export function validSignature(secret: string, raw: string, header: string | string[] | undefined): boolean {
  if (typeof header !== 'string' || !header.startsWith('sha256=')) return false;
  const expected = Buffer.from(createHmac('sha256', secret).update(raw, 'utf8').digest('hex'));
  const given = Buffer.from(header.slice('sha256='.length));
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const received: ReceivedHook[] = [];
  const failing = new Map<string, { times: number; status: number }>();
  const seen = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '/';
      const delivery = String(req.headers['x-kbsync-delivery'] ?? '');
      const attempt = (seen.get(delivery) ?? 0) + 1;
      seen.set(delivery, attempt);
      const rule = failing.get(path);
      const answered = rule && attempt <= rule.times ? rule.status : 204;
      received.push({ path, headers: req.headers, raw: Buffer.concat(chunks).toString('utf8'), answered });
      res.writeHead(answered).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    url: (path = '/hook') => `http://127.0.0.1:${port}${path}`,
    received,
    failFirst(path, times, status = 500) {
      failing.set(path, { times, status });
    },
    async waitFor(predicate, ms = 30_000) {
      const until = Date.now() + ms;
      while (!predicate(received)) {
        if (Date.now() > until) throw new Error(`webhook receiver: timed out; got ${JSON.stringify(received.map((r) => [r.path, r.raw.slice(0, 80), r.answered]))}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
