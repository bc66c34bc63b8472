/** Databases: the registered ones, and one database's tables with columns and keys. */
import { api, seg } from '../api.js';
import { ErrorBox, html, Loading, usePolling, useTitle } from '../components.js';
import { useEffect, useState } from '../vendor/hooks.module.js';
import { databaseWhere, utc } from '../model.js';

export function DatabasesPage() {
  useTitle('Databases');
  const [{ data, error }] = usePolling(
    async () => ({ dbs: (await api('GET', 'databases')).databases ?? [] }),
    [],
  );
  if (data === undefined) return error ? html`<${ErrorBox} error=${error} />` : html`<${Loading} />`;
  return html`
    <section>
      <header class="page-head"><h1>Databases</h1></header>
      <${ErrorBox} error=${error} title="Could not refresh" />
      ${
        data.dbs.length === 0
          ? html`<div class="empty"><p>No databases registered.</p>
            <p class="secondary">Register one with <code>POST /databases/create</code> or <code>kbsync db add</code>.</p></div>`
          : html`
            <table class="list dbs">
              <thead><tr><th>Database</th><th>Engine</th><th>Where</th><th>Registered</th></tr></thead>
              <tbody>
                ${data.dbs.map(
                  (db) => html`<tr key=${db.name} data-db=${db.name}>
                    <td><a href=${`#/databases/${seg(db.name)}`}>${db.name}</a></td>
                    <td>${db.engine}</td>
                    <td class="mono">${databaseWhere(db)}</td>
                    <td>${utc(db.created_at)}</td>
                  </tr>`,
                )}
              </tbody>
            </table>
          `
      }
    </section>
  `;
}

/**
 * Tables are read from the source database itself (introspection): loaded once, and again on
 * demand, never polled.
 */
export function DatabasePage({ name }) {
  useTitle(name);
  const [state, setState] = useState({ db: null, tables: null, error: null });
  const [nonce, setNonce] = useState(0);
  useEffect(() => {
    let alive = true;
    Promise.all([api('GET', `databases/${seg(name)}`), api('GET', `databases/${seg(name)}/tables`)])
      .then(([db, t]) => alive && setState({ db, tables: t.tables ?? [], error: null }))
      .catch((error) => alive && error.status !== 401 && setState((s) => ({ ...s, error })));
    return () => {
      alive = false;
    };
  }, [name, nonce]);
  const { db, tables, error } = state;
  if (db === null) return error ? html`<${ErrorBox} error=${error} />` : html`<${Loading} />`;
  return html`
    <section class="database">
      <header class="page-head">
        <p class="crumbs"><a href="#/databases">Databases</a> /</p>
        <h1>${db.name} <span class="secondary">${db.engine}</span></h1>
        <p class="mono secondary">${databaseWhere(db)}</p>
        <div class="actions"><button type="button" onClick=${() => setNonce((n) => n + 1)}>Reload tables</button></div>
      </header>
      <${ErrorBox} error=${error} title="Could not read the tables" />
      ${
        tables.length === 0
          ? html`<p class="muted">No tables.</p>`
          : html`
            <table class="list tables">
              <thead><tr><th>Table</th><th>Columns</th><th>Primary key</th><th>Source table for a job</th></tr></thead>
              <tbody>
                ${tables.map((t) => {
                  const full =
                    t.schema && db.engine === 'postgres' && t.schema !== 'public'
                      ? `${t.schema}.${t.name}`
                      : t.name;
                  return html`<tr key=${`${t.schema}.${t.name}`} data-table=${t.name}>
                    <td class="mono">${full}</td>
                    <td>
                      <ul class="columns">
                        ${t.columns.map(
                          (c) =>
                            html`<li><span class="mono">${c.name}</span> <span class="secondary">${c.type}${c.nullable ? '' : ' not null'}</span></li>`,
                        )}
                      </ul>
                    </td>
                    <td class="mono">${t.primary_key?.length ? t.primary_key.join(', ') : '–'}</td>
                    <td class="mono">${db.name}.${full}</td>
                  </tr>`;
                })}
              </tbody>
            </table>
          `
      }
    </section>
  `;
}
