// kgembed.js: embed text in the browser and get the vectors kgserve's /v1/embeddings returns.
//
//   import { embed, rank, rerank } from 'http://kgserve:8000/browser/kgembed.js';
//   const [q] = await embed(['what is pgvector?'], { inputType: 'query' });
//
// The module reads GET /embedding/config, loads the active model's browser export (served by
// kgserve under /browser/models/<model id>/, transformers.js layout) with transformers.js and
// ONNX Runtime Web from kgserve's own origin, and computes vectors as the server does: task
// prefixes, truncation at max_seq_length, pooling, Normalize, Matryoshka truncation, then
// normalisation. Model files and the WebAssembly runtime stay in the browser's Cache Storage, so
// a page keeps embedding offline. It follows config changes: every `followSeconds` it reads the
// config again and loads the new model when the config id changes.

import * as transformers from './vendor/transformers.min.js';

const { env, AutoModel, AutoTokenizer, Tensor } = transformers;
const HERE = new URL('./', import.meta.url);
const STORE = 'kgembed.config';
const TRANSFORMERS_CACHE = 'transformers-cache';

const settings = {
  server: new URL('../', HERE).href, // kgserve's base URL (this module lives in <base>/browser/)
  apiToken: null, // Bearer token for /v1/embeddings (KG_API_TOKEN), used by rerank()
  followSeconds: 30, // how often to look for a config change; 0 turns following off
  quantized: null, // null: what the server offers; true/false: the int8-weight or float graph
  device: 'wasm',
  batchSize: 8,
};

// Nothing leaves this server: transformers.js's "remote" host is kgserve's /browser/models/,
// and ONNX Runtime's WebAssembly files are kgserve's copies (its default is a CDN).
env.allowLocalModels = false;
env.allowRemoteModels = true;
env.remotePathTemplate = '{model}/';
env.backends.onnx.wasm.wasmPaths = {
  mjs: new URL('vendor/ort-wasm-simd-threaded.asyncify.mjs', HERE).href,
  wasm: new URL('vendor/ort-wasm-simd-threaded.asyncify.wasm', HERE).href,
};

/** Events: 'progress' (a model file downloading), 'ready' (a model loaded), 'configchange'. */
export const events = new EventTarget();

let config = null; // the last GET /embedding/config answer
let loading = null; // Promise of the loaded model for `config`
let loadedKey = null;
let timer = null;

/** Change settings (see `settings` above); returns the settings now in force. */
export function configure(options = {}) {
  Object.assign(settings, options);
  if ('server' in options) settings.server = new URL(settings.server, location.href).href;
  if (timer !== null || 'followSeconds' in options) follow();
  return { ...settings };
}

/** The active config as the server last described it (fetched when not known yet). */
export async function serverConfig() {
  if (config === null) config = await fetchConfig();
  return config;
}

/** Load the active config's model now (embed() does it on first use); returns info(). */
export async function ready() {
  let m = await current();
  // The config may change while a model loads (the follow timer): wait for the newest one.
  while (loading && loading.settled !== m) m = await current();
  return describeLoaded(m);
}

/** What is loaded: config id, model, model id, quantized, dimensions, load time in ms. */
export function info() {
  return loading && loading.settled ? describeLoaded(loading.settled) : null;
}

function describeLoaded(m) {
  return { configId: m.config.config_id, model: m.config.model, modelId: m.browser.model_id,
    quantized: m.quantized, dimensions: m.browser.dimensions, loadMs: m.loadMs, offline: m.offline };
}

/** Read the config again now; load the new model if it changed. Returns true on a change. */
export async function refresh() {
  const fresh = await fetchConfig();
  const changed = config !== null && keyOf(fresh) !== keyOf(config);
  const previous = config;
  config = fresh;
  if (changed) {
    events.dispatchEvent(new CustomEvent('configchange', { detail: { from: previous, to: fresh } }));
    if (loading) current().catch(() => {}); // load the new model now: the page follows
  }
  return changed;
}

/**
 * Embed `texts` (a string or an array of strings) like POST /v1/embeddings does.
 * inputType: 'query' | 'document' | undefined (the model's default prefix);
 * dimensions: 1..the config's dimensions (Matryoshka truncation). Returns Float32Arrays.
 */
export async function embed(texts, { inputType, dimensions } = {}) {
  const list = typeof texts === 'string' ? [texts] : texts;
  if (!Array.isArray(list) || !list.every((t) => typeof t === 'string')) {
    throw new TypeError('texts must be a string or an array of strings');
  }
  const m = await current();
  const b = m.browser;
  if (inputType != null && inputType !== 'query' && inputType !== 'document') {
    throw new RangeError(`inputType must be 'query' or 'document', not ${JSON.stringify(inputType)}`);
  }
  const size = dimensions ?? b.dimensions;
  if (!Number.isInteger(size) || size < 1 || size > b.dimensions) {
    throw new RangeError(`dimensions must be an integer from 1 to ${b.dimensions}`);
  }
  const prefix = inputType == null ? b.default_prefix || '' : b.prefixes[inputType] || '';
  const order = list.map((_, i) => i).sort((x, y) => list[x].length - list[y].length);
  const out = new Array(list.length);
  for (let start = 0; start < order.length; start += settings.batchSize) {
    const rows = order.slice(start, start + settings.batchSize);
    const vectors = await run(m, rows.map((i) => prefix + list[i]));
    rows.forEach((row, j) => { out[row] = finish(vectors[j], b, size); });
  }
  return out;
}

/**
 * Client-side vector search: score `docs` (vectors, or objects with .vector or .embedding)
 * against `query` (a text, embedded as a query, or a vector); the best `k` first.
 * Returns [{ index, score }] with cosine scores.
 */
export async function rank(query, docs, { k = docs.length, inputType = 'query' } = {}) {
  const q = typeof query === 'string' ? (await embed([query], { inputType }))[0] : toVector(query);
  return topK(docs.map((d, index) => ({ index, score: cosine(q, toVector(d)) })), k);
}

/**
 * Two passes: the browser ranks every candidate (texts, or { text, vector }), then the server
 * re-scores the best `k` through POST /v1/embeddings. Returns the k as
 * [{ index, score, browserScore, browserRank }], ordered by the server's score.
 */
export async function rerank(query, candidates, { k = 10 } = {}) {
  const texts = candidates.map((c) => (typeof c === 'string' ? c : c.text));
  if (!texts.every((t) => typeof t === 'string')) {
    throw new TypeError('candidates must be strings or objects with a text');
  }
  const missing = candidates.map((c, i) => (c.vector || c.embedding ? -1 : i)).filter((i) => i >= 0);
  const vectors = candidates.map((c) => (c.vector || c.embedding ? toVector(c) : null));
  const embedded = await embed(missing.map((i) => texts[i]), { inputType: 'document' });
  missing.forEach((i, j) => { vectors[i] = embedded[j]; });
  const first = await rank(query, vectors, { k });
  const [[q], docs] = await Promise.all([
    serverEmbed([query], { inputType: 'query' }),
    serverEmbed(first.map((r) => texts[r.index]), { inputType: 'document' }),
  ]);
  const rescored = first.map((r, j) => ({ index: r.index, score: cosine(q, docs[j]),
    browserScore: r.score, browserRank: j }));
  return topK(rescored, k);
}

/** POST /v1/embeddings (a round trip to kgserve); returns Float32Arrays. */
export async function serverEmbed(texts, { inputType, dimensions } = {}) {
  const body = { input: texts, encoding_format: 'base64' };
  if (inputType != null) body.input_type = inputType;
  if (dimensions != null) body.dimensions = dimensions;
  const headers = { 'Content-Type': 'application/json' };
  if (settings.apiToken) headers.Authorization = `Bearer ${settings.apiToken}`;
  const resp = await fetch(new URL('v1/embeddings', settings.server), {
    method: 'POST', headers, body: JSON.stringify(body) });
  const json = await resp.json().catch(() => null);
  if (!resp.ok) {
    throw new Error(`kgserve /v1/embeddings answered ${resp.status}: ${json?.error?.message ?? resp.statusText}`);
  }
  return json.data.map((d) => {
    const bytes = Uint8Array.from(atob(d.embedding), (c) => c.charCodeAt(0));
    return new Float32Array(bytes.buffer);
  });
}

/** Cosine similarity over the dimensions both vectors have (Matryoshka prefixes compare). */
export function cosine(a, b) {
  const n = Math.min(a.length, b.length);
  let dot = 0; let na = 0; let nb = 0;
  for (let i = 0; i < n; i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
  return dot / Math.max(Math.sqrt(na) * Math.sqrt(nb), 1e-12);
}

// -- loading and following ------------------------------------------------------------------

async function fetchConfig() {
  let resp;
  try {
    resp = await fetch(new URL('embedding/config', settings.server), { cache: 'no-store' });
  } catch (err) { // offline: the last config this browser saw, with its cached model
    const saved = localStorage.getItem(`${STORE}:${settings.server}`);
    if (saved) return { ...JSON.parse(saved), offline: true };
    throw new Error(`kgserve at ${settings.server} is unreachable and no config is cached: ${err}`);
  }
  const body = await resp.json().catch(() => null);
  if (!resp.ok || !body) {
    throw new Error(`GET /embedding/config answered ${resp.status}: ${body?.message ?? resp.statusText}`);
  }
  if (resp.headers.get('X-Kgembed-From') === 'offline-cache') return { ...body, offline: true };
  try { localStorage.setItem(`${STORE}:${settings.server}`, JSON.stringify(body)); } catch { /* full */ }
  return body;
}

function keyOf(cfg) {
  const b = cfg.browser || {};
  return JSON.stringify([cfg.config_id, b.model_url, b.quantized, b.dimensions]);
}

function loadKey(cfg) {
  return keyOf(cfg) + String(settings.quantized) + settings.device;
}

async function current() {
  if (config === null) config = await fetchConfig();
  if (loading === null || loadKey(config) !== loadedKey) {
    const previous = loading;
    const pending = load(config);
    loadedKey = loadKey(config);
    loading = pending;
    pending.then((m) => {
      pending.settled = m;
      if (previous) forget(previous, m.base);
    }, () => {});
    if (timer === null) follow();
  }
  const pending = loading;
  try {
    return await pending;
  } catch (err) {
    if (loading === pending) loading = null; // try again on the next call
    throw err;
  }
}

async function load(cfg, retried = false) {
  if (!cfg.supports_browser || !cfg.browser) {
    throw new Error(`the active config cannot run in a browser: ${cfg.browser_unavailable ?? 'no browser export'}`);
  }
  const b = cfg.browser;
  const base = new URL(b.model_url, settings.server);
  env.remoteHost = new URL('../', base).href;
  const id = b.model_id;
  const quantized = settings.quantized ?? b.quantized;
  const started = performance.now();
  const progress_callback = (p) => events.dispatchEvent(new CustomEvent('progress', { detail: p }));
  let tokenizer;
  let model;
  try {
    [tokenizer, model] = await Promise.all([
      AutoTokenizer.from_pretrained(id, { progress_callback }),
      AutoModel.from_pretrained(id, { dtype: quantized ? 'q8' : 'fp32', device: settings.device,
        progress_callback }),
    ]);
  } catch (err) {
    // The config changed under us (the server answers 404 for another config's files), or the
    // server refused the quantized graph on its first download (not accurate enough): read the
    // config again and follow it.
    if (cfg.offline || retried) throw err;
    const fresh = await fetchConfig();
    if (keyOf(fresh) === keyOf(cfg)) throw err;
    config = fresh;
    loadedKey = loadKey(fresh);
    return load(fresh, true);
  }
  const loaded = { config: cfg, browser: b, base: base.href, tokenizer, model, quantized,
    loadMs: performance.now() - started, offline: Boolean(cfg.offline) };
  events.dispatchEvent(new CustomEvent('ready', { detail: { ...loaded, tokenizer: undefined, model: undefined } }));
  return loaded;
}

async function forget(previous, keep) {
  let old;
  try { old = await previous; } catch { return; }
  await old.model.dispose?.();
  if (old.base === keep || typeof caches === 'undefined') return;
  // The old model's files are of no further use: free the browser's storage.
  const cache = await caches.open(TRANSFORMERS_CACHE);
  for (const request of await cache.keys()) {
    if (request.url.startsWith(old.base)) await cache.delete(request);
  }
}

function follow() {
  if (timer !== null) clearInterval(timer);
  timer = null;
  if (settings.followSeconds > 0) {
    timer = setInterval(() => refresh().catch(() => {}), settings.followSeconds * 1000);
  }
}

// -- the math the server does after the transformer -------------------------------------------

async function run(m, texts) {
  const b = m.browser;
  const inputs = encode(m.tokenizer, texts, b.max_seq_length || m.tokenizer.model_max_length);
  const outputs = await m.model(inputs);
  const hidden = outputs.last_hidden_state ?? Object.values(outputs)[0];
  const vectors = pool(hidden.data, inputs.attention_mask.data, hidden.dims, b.pooling);
  hidden.dispose?.();
  return vectors;
}

// Tokenize like the server's (Hugging Face) tokenizer: a text longer than `max` loses words from
// its end, never its closing special tokens. transformers.js's own truncation cuts the encoded
// sequence, [SEP] included, which changes every long text's vector.
function encode(tokenizer, texts, max) {
  const trailing = trailingSpecials(tokenizer);
  const rows = texts.map((text) => {
    const row = tokenizer(text, { return_tensor: false });
    if (row.input_ids.length > max) {
      for (const key of Object.keys(row)) {
        const ids = row[key];
        row[key] = [...ids.slice(0, max - trailing), ...ids.slice(ids.length - trailing)];
      }
    }
    return row;
  });
  const width = Math.max(...rows.map((r) => r.input_ids.length));
  const feeds = {};
  for (const key of Object.keys(rows[0])) {
    const fill = BigInt(key === 'input_ids' ? tokenizer.pad_token_id ?? 0 : 0);
    const data = new BigInt64Array(rows.length * width).fill(fill); // padded on the right
    rows.forEach((row, i) => row[key].forEach((v, j) => { data[i * width + j] = BigInt(v); }));
    feeds[key] = new Tensor('int64', data, [rows.length, width]);
  }
  return feeds;
}

// How many special tokens the tokenizer puts after a text ([SEP], </s>): found by encoding one.
function trailingSpecials(tokenizer) {
  if (tokenizer.kgTrailing === undefined) {
    const plain = tokenizer('a', { add_special_tokens: false, return_tensor: false }).input_ids;
    const full = tokenizer('a', { return_tensor: false }).input_ids;
    const at = full.findIndex((_, i) => plain.every((id, j) => full[i + j] === id));
    tokenizer.kgTrailing = at < 0 ? 0 : full.length - at - plain.length;
  }
  return tokenizer.kgTrailing;
}

function pool(data, mask, [batch, tokens, width], mode) {
  const out = [];
  for (let r = 0; r < batch; r++) {
    const v = new Float32Array(width);
    let count = 0;
    let last = 0;
    for (let t = 0; t < tokens; t++) if (Number(mask[r * tokens + t])) { count++; last = t; }
    const at = (t) => (r * tokens + t) * width;
    if (mode === 'cls' || mode === 'lasttoken') {
      v.set(data.subarray(at(mode === 'cls' ? 0 : last), at(mode === 'cls' ? 0 : last) + width));
    } else if (mode === 'max') {
      v.fill(-1e9);
      for (let t = 0; t < tokens; t++) {
        if (!Number(mask[r * tokens + t])) continue;
        for (let j = 0; j < width; j++) v[j] = Math.max(v[j], data[at(t) + j]);
      }
    } else { // mean over the real tokens
      for (let t = 0; t < tokens; t++) {
        if (!Number(mask[r * tokens + t])) continue;
        for (let j = 0; j < width; j++) v[j] += data[at(t) + j];
      }
      for (let j = 0; j < width; j++) v[j] /= Math.max(count, 1e-9);
    }
    out.push(v);
  }
  return out;
}

function finish(vector, b, size) {
  let v = b.model_normalize ? normalized(vector) : vector;
  v = v.slice(0, size);
  return b.normalize ? normalized(v) : v;
}

function normalized(v) {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i] * v[i];
  const norm = Math.max(Math.sqrt(sum), 1e-12);
  return v.map((x) => x / norm);
}

function toVector(d) {
  const v = d instanceof Float32Array || Array.isArray(d) ? d : d?.vector ?? d?.embedding;
  if (!v || typeof v.length !== 'number') throw new TypeError('each doc must be a vector or have .vector');
  return v;
}

function topK(scored, k) {
  return scored.sort((x, y) => y.score - x.score).slice(0, Math.max(0, k));
}
