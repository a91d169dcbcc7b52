// The page's service worker: the page, its scripts and transformers.js come from this cache when
// kgserve cannot be reached, so /browser/ keeps working offline after one visit. Model files and
// the WebAssembly runtime are not kept here: transformers.js keeps them in its own cache.
const SHELL = 'kgembed-shell-v1';
const BASE = new URL('./', self.location).pathname; // /browser/
const CONFIG = new URL('../embedding/config', self.location).pathname;
const FILES = ['./', 'page.js', 'page.css', 'kgembed.js', 'vendor/transformers.min.js',
  'vendor/ort-wasm-simd-threaded.asyncify.mjs'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin) return;
  const shell = url.pathname.startsWith(BASE) && !url.pathname.startsWith(`${BASE}models/`)
    && !url.pathname.endsWith('.wasm');
  if (shell || url.pathname === CONFIG) event.respondWith(networkFirst(event.request));
});

async function networkFirst(request) {
  const cache = await caches.open(SHELL);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(request, response.clone());
    return response;
  } catch (err) {
    const cached = await cache.match(request);
    if (!cached) throw err;
    const headers = new Headers(cached.headers);
    headers.set('X-Kgembed-From', 'offline-cache'); // kgembed.js marks the config as offline
    return new Response(cached.body, { status: cached.status, statusText: cached.statusText, headers });
  }
}
