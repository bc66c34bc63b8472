/** Knowledge bases: the list with counts, and one knowledge base with a search box. */
import { api, seg } from '../api.js';
import { ErrorBox, Facts, html, Loading, usePolling, useTitle } from '../components.js';
import { useState } from '../vendor/hooks.module.js';
import { count, showValue, utc } from '../model.js';

const embeddingText = (e) =>
  e
    ? [e.provider, e.model, e.dimensions ? `${e.dimensions} dimensions` : null].filter(Boolean).join(' · ')
    : '–';

export function KnowledgeBasesPage() {
  useTitle('Knowledge bases');
  const [{ data, error }] = usePolling(
    async () => ({ kbs: (await api('GET', 'knowledge_bases')).knowledge_bases ?? [] }),
    [],
  );
  if (data === undefined) return error ? html`<${ErrorBox} error=${error} />` : html`<${Loading} />`;
  return html`
    <section>
      <header class="page-head"><h1>Knowledge bases</h1></header>
      <${ErrorBox} error=${error} title="Could not refresh" />
      ${
        data.kbs.length === 0
          ? html`<div class="empty"><p>No knowledge bases yet.</p>
            <p class="secondary">Create one with <code>POST /knowledge_bases/create</code> or <code>kbsync kb create</code>.</p></div>`
          : html`
            <table class="list kbs">
              <thead><tr><th>Knowledge base</th><th class="num">Documents</th><th class="num">Chunks</th><th>Embedding</th><th>Description</th></tr></thead>
              <tbody>
                ${data.kbs.map(
                  (kb) => html`<tr key=${kb.kb_name} data-kb=${kb.kb_name}>
                    <td><a href=${`#/kbs/${seg(kb.kb_name)}`}>${kb.kb_name}</a></td>
                    <td class="num" data-col="documents">${count(kb.document_count)}</td>
                    <td class="num">${count(kb.chunk_count)}</td>
                    <td>${embeddingText(kb.embedding)}</td>
                    <td class="secondary">${kb.description ?? ''}</td>
                  </tr>`,
                )}
              </tbody>
            </table>
          `
      }
    </section>
  `;
}

/** The query form and its results; the form's state stays while the counts above refresh. */
function Search({ kb }) {
  const [form, setForm] = useState({ query: '', mode: 'semantic', top_k: 10, min_relevance: '', filter: '' });
  const [state, setState] = useState({ pending: false, results: null, error: null, mode: null });
  const set = (field) => (e) => setForm({ ...form, [field]: e.currentTarget.value });

  const submit = async (e) => {
    e.preventDefault();
    const body = { query: form.query, mode: form.mode, top_k: Number(form.top_k) || 10 };
    if (form.min_relevance !== '') body.min_relevance = Number(form.min_relevance);
    if (form.filter.trim() !== '') {
      try {
        body.filter = JSON.parse(form.filter);
      } catch (err) {
        setState({
          pending: false,
          results: null,
          mode: null,
          error: { message: 'The filter is not JSON', details: [err.message] },
        });
        return;
      }
    }
    setState({ ...state, pending: true, error: null });
    try {
      const data = await api('POST', `knowledge_bases/${seg(kb)}/query`, { body });
      setState({ pending: false, results: data.results ?? [], mode: data.mode ?? form.mode, error: null });
    } catch (error) {
      setState({ pending: false, results: null, mode: null, error });
    }
  };

  return html`
    <form class="search card" onSubmit=${submit} role="search">
      <div class="search-row">
        <input name="query" type="search" placeholder="Ask in plain words, e.g. something warm for winter camping"
          value=${form.query} onInput=${set('query')} required autocomplete="off" aria-label="Query" />
        <button type="submit" class="primary" disabled=${state.pending}>${state.pending ? 'Searching…' : 'Search'}</button>
      </div>
      <div class="search-options">
        <fieldset class="modes">
          <legend>Mode</legend>
          ${['semantic', 'keyword', 'hybrid'].map(
            (m) =>
              html`<label><input type="radio" name="mode" value=${m} checked=${form.mode === m} onChange=${set('mode')} /> ${m}</label>`,
          )}
        </fieldset>
        <label>Top k <input name="top_k" type="number" min="1" max="100" value=${form.top_k} onInput=${set('top_k')} /></label>
        <label>Min relevance <input name="min_relevance" type="number" min="0" max="1" step="0.05" placeholder="0"
          value=${form.min_relevance} onInput=${set('min_relevance')} /></label>
        <label class="grow">Metadata filter (JSON) <input name="filter" type="text" placeholder='{"product": "Aurora down jacket"}'
          value=${form.filter} onInput=${set('filter')} autocomplete="off" /></label>
      </div>
    </form>
    <${ErrorBox} error=${state.error} />
    ${state.results === null ? null : html`<${Results} results=${state.results} mode=${state.mode} />`}
  `;
}

function Results({ results, mode }) {
  if (results.length === 0) return html`<p class="muted" data-test="results">No results (${mode}).</p>`;
  return html`
    <ol class="results" data-test="results">
      ${results.map(
        (r) => html`<li key=${r.chunk_id ?? r.document_id} class="result card">
          <div class="result-head">
            <span class="relevance" title="relevance in [0, 1]">
              <span class="relevance-bar"><span style=${{ width: `${Math.round(r.relevance * 100)}%` }}></span></span>
              ${r.relevance.toFixed(3)}
            </span>
            <span class="mono secondary">${r.document_id}</span>
          </div>
          <div class="content">${r.content}</div>
          ${
            r.metadata && Object.keys(r.metadata).length
              ? html`<dl class="metadata">
                ${Object.entries(r.metadata).map(([k, v]) => html`<dt>${k}</dt><dd class="mono">${showValue(v)}</dd>`)}
              </dl>`
              : null
          }
        </li>`,
      )}
    </ol>
  `;
}

export function KnowledgeBasePage({ name }) {
  useTitle(name);
  const [{ data, error }] = usePolling(
    async () => ({ kb: await api('GET', `knowledge_bases/${seg(name)}`) }),
    [name],
  );
  if (data === undefined) return error ? html`<${ErrorBox} error=${error} />` : html`<${Loading} />`;
  const { kb } = data;
  const rebuild = kb.rebuild;
  return html`
    <section class="kb">
      <header class="page-head">
        <p class="crumbs"><a href="#/kbs">Knowledge bases</a> /</p>
        <h1>${kb.kb_name}</h1>
        ${kb.description ? html`<p class="secondary">${kb.description}</p>` : null}
      </header>
      <${ErrorBox} error=${error} title="Could not refresh" />
      <div class="card">
        <${Facts}
          rows=${[
            ['Documents', count(kb.document_count)],
            ['Chunks', count(kb.chunk_count)],
            ['Embedding', embeddingText(kb.embedding)],
            [
              'Chunking',
              kb.chunking
                ? `${count(kb.chunking.chunk_size)} characters, ${count(kb.chunking.chunk_overlap)} overlap`
                : null,
            ],
            [
              'Rebuild',
              rebuild
                ? `${rebuild.status}: ${count(rebuild.documents_done)} / ${count(rebuild.documents_total)} documents`
                : null,
            ],
            ['Created', utc(kb.created_at)],
          ]}
        />
      </div>
      <h2>Search</h2>
      <${Search} kb=${kb.kb_name} />
    </section>
  `;
}
