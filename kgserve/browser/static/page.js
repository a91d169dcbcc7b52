// The /browser/ page: embed a query and documents here and on the server, compare the two.
import * as kg from './kgembed.js';

const $ = (id) => document.getElementById(id);
const state = { last: null, error: null };
window.kgPage = state; // for tests and curious users: the last comparison

function status(text, kind = 'busy') {
  $('status').textContent = text;
  $('status').dataset.state = kind;
}

function describe(cfg) {
  const b = cfg.browser;
  if (!cfg.supports_browser) return `${cfg.model}: ${cfg.browser_unavailable}`;
  const accuracy = b.accuracy ? `, quantized min cosine ${b.accuracy.min_cosine.toFixed(4)} to torch on ${b.accuracy.probes} probes` : '';
  return `config ${cfg.config_id}: ${cfg.provider} ${cfg.model}, ${b.dimensions} dimensions, ` +
    `${b.pooling} pooling${b.prefixes.query ? `, query prefix "${b.prefixes.query}"` : ''}${accuracy}` +
    `${cfg.offline ? ' (offline: last known config)' : ''}`;
}

async function start() {
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('sw.js').catch((err) => console.warn('no offline shell:', err));
  }
  kg.events.addEventListener('progress', (e) => {
    const p = e.detail;
    if (p.status === 'progress' && p.total) {
      status(`downloading ${p.file}: ${Math.round((100 * p.loaded) / p.total)}%`);
    }
  });
  kg.events.addEventListener('ready', (e) => {
    const m = e.detail;
    status(`model ready in ${m.loadMs.toFixed(0)} ms (${m.quantized ? 'int8 weights' : 'float32'})`, 'ready');
  });
  kg.events.addEventListener('configchange', (e) => {
    $('model').textContent = describe(e.detail.to);
    $('quantized').checked = Boolean(e.detail.to.browser?.quantized);
    status('the server switched configs: loading the new model…');
  });
  try {
    const cfg = await kg.serverConfig();
    $('model').textContent = describe(cfg);
    $('quantized').checked = Boolean(cfg.browser?.quantized);
    status('loading the model…');
    await kg.ready();
  } catch (err) {
    state.error = String(err);
    status(String(err.message || err), 'error');
  }
}

async function compare(event) {
  event.preventDefault();
  const query = $('query').value.trim();
  const docs = $('docs').value.split('\n').map((d) => d.trim()).filter(Boolean);
  if (!query || !docs.length) return;
  $('go').disabled = true;
  try {
    status('embedding…');
    let t = performance.now();
    const [q] = await kg.embed([query], { inputType: 'query' });
    const dv = await kg.embed(docs, { inputType: 'document' });
    const browserMs = performance.now() - t;
    let server = null;
    let serverMs = null;
    try {
      t = performance.now();
      const [[sq], sd] = await Promise.all([kg.serverEmbed([query], { inputType: 'query' }),
        kg.serverEmbed(docs, { inputType: 'document' })]);
      serverMs = performance.now() - t;
      server = { q: sq, docs: sd, rank: await kg.rank(sq, sd) };
    } catch (err) {
      server = { error: String(err.message || err) };
    }
    const browserRank = await kg.rank(q, dv);
    render(query, docs, { q, docs: dv, rank: browserRank, ms: browserMs }, server, serverMs);
    status(`done (${kg.info().quantized ? 'int8 weights' : 'float32'} model)`, 'ready');
  } catch (err) {
    state.error = String(err);
    status(String(err.message || err), 'error');
  } finally {
    $('go').disabled = false;
  }
}

function render(query, docs, browser, server, serverMs) {
  const position = (ranking) => Object.fromEntries(ranking.map((r, i) => [r.index, i + 1]));
  const bPos = position(browser.rank);
  const sPos = server.rank ? position(server.rank) : {};
  const sScore = server.rank ? Object.fromEntries(server.rank.map((r) => [r.index, r.score])) : {};
  const rows = browser.rank.map((r) => ({
    doc: docs[r.index], browserScore: r.score, browserRank: bPos[r.index],
    serverScore: sScore[r.index] ?? null, serverRank: sPos[r.index] ?? null,
    cosine: server.docs ? kg.cosine(browser.docs[r.index], server.docs[r.index]) : null,
  }));
  const fmt = (x) => (x === null ? '–' : x.toFixed(4));
  $('rows').replaceChildren(...rows.map((row) => {
    const tr = document.createElement('tr');
    for (const [value, num] of [[row.doc, false], [fmt(row.browserScore), true], [row.browserRank, true],
      [fmt(row.serverScore), true], [row.serverRank ?? '–', true], [fmt(row.cosine), true]]) {
      const td = document.createElement('td');
      td.textContent = value;
      if (num) td.className = 'num';
      tr.append(td);
    }
    return tr;
  }));
  const queryCosine = server.q ? kg.cosine(browser.q, server.q) : null;
  $('timings').textContent = `browser: ${browser.ms.toFixed(1)} ms for ${docs.length + 1} texts` +
    (serverMs === null ? ` · server: ${server.error}` : ` · server round trip: ${serverMs.toFixed(1)} ms`) +
    ` · model load: ${kg.info().loadMs.toFixed(0)} ms`;
  $('query-cosine').textContent = queryCosine === null ? '' :
    `cosine(browser, server) for the query: ${queryCosine.toFixed(5)}`;
  $('results').hidden = false;
  state.last = { query, rows, queryCosine, browserMs: browser.ms, serverMs, serverError: server.error ?? null };
}

$('form').addEventListener('submit', compare);
$('quantized').addEventListener('change', (e) => {
  kg.configure({ quantized: e.target.checked });
  status('loading the model…');
  kg.ready().catch((err) => status(String(err.message || err), 'error'));
});
start();
