/**
 * The kbsync HTTP API from the browser: the envelope unwrapped, errors as ApiError, and the API
 * key sent as `Authorization: Bearer` like the CLI (API.md "Accounts and keys").
 *
 * The key lives in sessionStorage (gone when the tab closes) unless "remember on this browser" is
 * ticked, then in localStorage. Paths are relative ("jobs", not "/jobs"), so a dashboard served
 * behind a proxy under a path prefix calls the API under the same prefix.
 */

const STORAGE_NAME = 'kbsync.apiKey';

export class ApiError extends Error {
  constructor(status, code, message, details = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export const keyStore = {
  get() {
    return sessionStorage.getItem(STORAGE_NAME) ?? localStorage.getItem(STORAGE_NAME);
  },
  set(key, remember) {
    this.clear();
    (remember ? localStorage : sessionStorage).setItem(STORAGE_NAME, key);
  },
  clear() {
    sessionStorage.removeItem(STORAGE_NAME);
    localStorage.removeItem(STORAGE_NAME);
  },
};

let onUnauthorized = () => {};

/** Called with the error when an answer is 401: the app then asks for a key. */
export function whenUnauthorized(listener) {
  onUnauthorized = listener;
}

/**
 * One request; resolves with `data` of the envelope. `key` overrides the stored key (checking a
 * key typed in); `quiet` keeps a 401 from reaching the listener.
 */
export async function api(method, path, { body, key = keyStore.get(), quiet = false } = {}) {
  const headers = { accept: 'application/json' };
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (err) {
    throw new ApiError(0, 'NETWORK', 'The server did not answer', [String(err?.message ?? err)]);
  }
  let json = null;
  try {
    json = await res.json();
  } catch {
    // not JSON: reported below from the status
  }
  if (res.ok && json?.success === true) return json.data;
  const e = json?.error ?? {};
  const error = new ApiError(
    res.status,
    e.code ?? `HTTP_${res.status}`,
    e.message ?? res.statusText,
    e.details ?? [],
  );
  if (res.status === 401 && !quiet) onUnauthorized(error);
  throw error;
}

/** Every page of a list route (`data: {<field>: [...], next_cursor}`). */
export async function listAll(path, field) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < 50; page++) {
    const sep = path.includes('?') ? '&' : '?';
    const data = await api(
      'GET',
      `${path}${sep}limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    items.push(...(data[field] ?? []));
    cursor = data.next_cursor ?? null;
    if (!cursor) break;
  }
  return items;
}

/** A path segment (job names, run ids, knowledge base names). */
export const seg = encodeURIComponent;
