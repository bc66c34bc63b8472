/**
 * Asked for when the server answers 401 (authentication on, KBSYNC_ADMIN_KEY set): an account's
 * API key, checked against the server before it is kept.
 */
import { api, keyStore } from '../api.js';
import { ErrorBox, html, useTitle } from '../components.js';
import { useState } from '../vendor/hooks.module.js';

export function KeyPrompt({ reason, onKey }) {
  useTitle('API key');
  const [key, setKey] = useState('');
  const [remember, setRemember] = useState(false);
  const [state, setState] = useState({ pending: false, error: null });

  const submit = async (e) => {
    e.preventDefault();
    const candidate = key.trim();
    setState({ pending: true, error: null });
    try {
      await api('GET', 'jobs?limit=1', { key: candidate, quiet: true });
    } catch (error) {
      const refused = error.status === 401;
      setState({
        pending: false,
        error: refused
          ? {
              message: 'The server refused this key',
              code: error.code,
              details: ["use an account's API key (kbs_…); the admin key only manages accounts and keys"],
            }
          : error,
      });
      return;
    }
    keyStore.set(candidate, remember);
    onKey();
  };

  return html`
    <section class="login card">
      <h1>API key</h1>
      <p>${reason ?? 'This server needs an API key.'} The dashboard sends it as <code>Authorization: Bearer</code>, like the CLI.</p>
      <form onSubmit=${submit}>
        <label>API key
          <input name="api_key" type="password" autocomplete="off" placeholder="kbs_…" required value=${key}
            onInput=${(e) => setKey(e.currentTarget.value)} />
        </label>
        <label class="inline"><input name="remember" type="checkbox" checked=${remember}
          onChange=${(e) => setRemember(e.currentTarget.checked)} /> Remember on this browser</label>
        <p class="secondary">Kept in this tab's session storage (gone when the tab closes); remembered keys are kept in local storage until you sign out.</p>
        <button type="submit" class="primary" disabled=${state.pending}>${state.pending ? 'Checking…' : 'Sign in'}</button>
      </form>
      <${ErrorBox} error=${state.error} />
    </section>
  `;
}
