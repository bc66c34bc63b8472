/**
 * The kbsync dashboard (docs/dashboard.md): preact + htm, no build step beyond copying files.
 * Pages by URL fragment (#/jobs, #/jobs/NAME, #/kbs, #/kbs/NAME, #/databases, #/databases/NAME),
 * so the server answers one page at / and a reload keeps the place.
 */
import { api, keyStore, whenUnauthorized } from './api.js';
import { html } from './components.js';
import { useEffect, useState } from './vendor/hooks.module.js';
import { render } from './vendor/preact.module.js';
import { DatabasePage, DatabasesPage } from './views/databases.js';
import { JobPage } from './views/job.js';
import { JobsPage } from './views/jobs.js';
import { KnowledgeBasePage, KnowledgeBasesPage } from './views/kbs.js';
import { KeyPrompt } from './views/login.js';

function parseRoute(hash) {
  const [section = 'jobs', ...rest] = hash.replace(/^#\/?/, '').split('/');
  let name = null;
  try {
    name = rest.length ? decodeURIComponent(rest.join('/')) : null;
  } catch {
    name = null;
  }
  if (section === 'kbs' || section === 'databases') return { section, name };
  return { section: 'jobs', name };
}

function Page({ route }) {
  const { section, name } = route;
  if (section === 'kbs')
    return name ? html`<${KnowledgeBasePage} name=${name} />` : html`<${KnowledgeBasesPage} />`;
  if (section === 'databases')
    return name ? html`<${DatabasePage} name=${name} />` : html`<${DatabasesPage} />`;
  return name ? html`<${JobPage} name=${name} />` : html`<${JobsPage} />`;
}

function App() {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  // `epoch` remounts the page (and restarts its polling) after a key is given or removed.
  const [auth, setAuth] = useState({ needed: false, reason: null, epoch: 0 });
  const [version, setVersion] = useState(null);

  useEffect(() => {
    const onHash = () => setRoute(parseRoute(location.hash));
    window.addEventListener('hashchange', onHash);
    whenUnauthorized(() => {
      const hadKey = keyStore.get() !== null;
      keyStore.clear();
      setAuth((a) => ({
        ...a,
        needed: true,
        reason: hadKey ? 'The saved API key was refused (revoked, or for another server).' : null,
      }));
    });
    // /health needs no key: the server's version in the header.
    api('GET', 'health', { quiet: true })
      .then((h) => setVersion(h.version ?? null))
      .catch(() => {});
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  const signedIn = keyStore.get() !== null;
  const signOut = () => {
    keyStore.clear();
    setAuth((a) => ({ needed: false, reason: null, epoch: a.epoch + 1 }));
  };
  const nav = (section, label) =>
    html`<a href=${`#/${section}`} class=${route.section === section ? 'active' : ''} aria-current=${route.section === section ? 'page' : undefined}>${label}</a>`;

  return html`
    <header class="top">
      <a class="brand" href="#/jobs">kbsync</a>
      <nav>${nav('jobs', 'Jobs')}${nav('kbs', 'Knowledge bases')}${nav('databases', 'Databases')}</nav>
      <span class="top-right">
        <a href="docs" class="secondary">API docs</a>
        ${version ? html`<span class="secondary">v${version}</span>` : null}
        ${signedIn && !auth.needed ? html`<button type="button" class="link" onClick=${signOut}>Sign out</button>` : null}
      </span>
    </header>
    <main>
      ${
        auth.needed
          ? html`<${KeyPrompt} reason=${auth.reason} onKey=${() => setAuth((a) => ({ needed: false, reason: null, epoch: a.epoch + 1 }))} />`
          : html`<${Page} key=${`${auth.epoch}:${route.section}:${route.name}`} route=${route} />`
      }
    </main>
  `;
}

const root = document.getElementById('app');
root.textContent = ''; // the "Loading…" line, which preact would keep beside the app
render(html`<${App} />`, root);
