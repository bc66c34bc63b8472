/**
 * Which hosts a knowledge base's `embedding.base_url` may name (issue 8: a user who can create a
 * knowledge base must not make the server send requests, with its API key, to a service on the
 * server's own network, such as a cloud metadata endpoint).
 *
 * - `KBSYNC_EMBEDDING_HOSTS` set: only the listed hosts (`api.openai.com`, `host:port`,
 *   `*.example.com` for subdomains), compared with the URL's host.
 * - Unset and authentication off (a loopback, single-user server): any host, e.g. a local model
 *   server on localhost.
 * - Unset and authentication on: any host except literal loopback, private, link-local and
 *   unspecified addresses and `localhost`. A name that resolves to such an address is only
 *   stopped by the allow-list; the docs say to set it when exposing the server.
 */
import net from 'node:net';

export type EmbeddingHostPolicy = { kind: 'any' } | { kind: 'public' } | { kind: 'list'; hosts: readonly string[] };

/**
 * Why `baseUrl` is refused, or null when it is allowed. `field` names it in the reason (a job's
 * `webhook_url` follows the same rules: the server would POST to it).
 */
export function embeddingHostRefusal(baseUrl: string, policy: EmbeddingHostPolicy, field = 'embedding.base_url'): string | null {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    return `${field} is not a valid URL`;
  }
  const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  if (policy.kind === 'any') return null;
  if (policy.kind === 'list') {
    const ok = policy.hosts.some((entry) => hostMatches(entry.toLowerCase(), host, port));
    return ok ? null : `${field} host '${host}' is not in KBSYNC_EMBEDDING_HOSTS (${policy.hosts.join(', ')})`;
  }
  if (host === 'localhost' || host.endsWith('.localhost') || isInternalAddress(host)) {
    return `${field} host '${host}' is an address on the server's own network; an administrator can allow it with KBSYNC_EMBEDDING_HOSTS`;
  }
  return null;
}

function hostMatches(entry: string, host: string, port: string): boolean {
  const m = /^(.*?)(?::(\d+))?$/.exec(entry.replace(/^\[(.*)\]/, '$1'));
  const [name, entryPort] = [m?.[1] ?? entry, m?.[2]];
  if (entryPort !== undefined && entryPort !== port) return false;
  if (name.startsWith('*.')) return host.endsWith(name.slice(1)) && host.length > name.length - 1;
  return name === host;
}

/** Literal IPv4/IPv6 loopback, private, link-local, CGNAT and unspecified addresses. */
export function isInternalAddress(host: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  const ip = mapped ? mapped[1]! : host;
  if (net.isIPv4(ip)) {
    const [a, b] = ip.split('.').map(Number) as [number, number];
    return a === 0 || a === 10 || a === 127 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127);
  }
  if (net.isIPv6(ip)) {
    const lower = ip.toLowerCase();
    return lower === '::' || lower === '::1' || /^f[cd]/.test(lower) || /^fe[89ab]/.test(lower);
  }
  return false;
}
