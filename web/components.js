/**
 * The pieces every page uses: `html` (htm bound to preact), a polling hook, status badges, the
 * progress bar, times and error boxes. Vendor modules come from ./vendor/, copied from the npm
 * packages by scripts/build-dashboard.mjs.
 */
import htm from './vendor/htm.module.js';
import { useEffect, useRef, useState } from './vendor/hooks.module.js';
import { h } from './vendor/preact.module.js';
import { progressFrame, progressText, relative, utc } from './model.js';

export const html = htm.bind(h);

/** Poll periods: fast while something runs (a live progress bar), slow otherwise. */
export const FAST_MS = 1000;
export const SLOW_MS = 10_000;

/**
 * Loads `load()` now and again after each answer: after FAST_MS when the answer says `busy`, else
 * SLOW_MS (and never two loads at once). Returns the state and a function that reloads at once
 * (after a button press). A 401 stops it: the app asks for a key and mounts the page again.
 */
export function usePolling(load, deps) {
  const [state, setState] = useState({ data: undefined, error: null });
  const [nonce, setNonce] = useState(0);
  useEffect(() => {
    let alive = true;
    let timer;
    const tick = async () => {
      let busy = false;
      try {
        const data = await load();
        if (!alive) return;
        busy = data?.busy === true;
        setState({ data, error: null });
      } catch (error) {
        if (!alive || error?.status === 401) return;
        setState((s) => ({ data: s.data, error }));
      }
      timer = setTimeout(tick, busy ? FAST_MS : document.hidden ? SLOW_MS * 3 : SLOW_MS);
    };
    tick();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [...deps, nonce]);
  return [state, () => setNonce((n) => n + 1)];
}

/** Re-renders every `ms` so relative times ("12 s ago") stay true between polls. */
export function useNow(ms = 1000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

export function Status({ value }) {
  return html`<span class="status status-${value}" data-status=${value}>${value ?? '–'}</span>`;
}

/** A time as "in 4 min" / "3 s ago", with the exact UTC time on hover. */
export function When({ iso, now }) {
  if (!iso) return html`<span class="muted">–</span>`;
  return html`<time datetime=${iso} title=${utc(iso)}>${relative(iso, now)}</time>`;
}

/**
 * A running run's progress: a bar with percent, rows and ETA when the server estimates a total;
 * otherwise a moving stripe with the rows read so far.
 */
export function Progress({ run }) {
  const frame = progressFrame(run);
  const known = frame.percent !== null;
  return html`
    <div class="progress" data-test="run-progress">
      <div
        class=${known ? 'progress-track' : 'progress-track indeterminate'}
        role="progressbar"
        aria-valuemin="0"
        aria-valuemax="100"
        aria-valuenow=${known ? Math.floor(frame.percent) : undefined}
      >
        <div class="progress-fill" style=${{ width: known ? `${frame.percent}%` : '100%' }}></div>
      </div>
      <span class="progress-text">${progressText(frame)}</span>
    </div>
  `;
}

export function ErrorBox({ error, title }) {
  if (!error) return null;
  const details = error.details ?? [];
  return html`
    <div class="error-box" role="alert">
      <strong>${title ?? error.message}</strong>
      ${error.code ? html` <code>${error.code}</code>` : null}
      ${title ? html`<div>${error.message}</div>` : null}
      ${details.length ? html`<ul>${details.map((d) => html`<li>${d}</li>`)}</ul>` : null}
    </div>
  `;
}

/** A list of facts: [label, value] pairs; null values are left out. */
export function Facts({ rows }) {
  return html`
    <dl class="facts">
      ${rows
        .filter(([, v]) => v !== null && v !== undefined && v !== '')
        .map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}
    </dl>
  `;
}

export function Loading() {
  return html`<p class="muted loading">Loading…</p>`;
}

/** Sets the document title while a page is shown. */
export function useTitle(title) {
  const previous = useRef(document.title);
  useEffect(() => {
    document.title = title ? `${title} · kbsync` : 'kbsync';
    const before = previous.current;
    return () => {
      document.title = before;
    };
  }, [title]);
}
