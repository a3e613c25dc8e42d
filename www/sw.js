// Service worker: once the page has loaded, it reloads without a network (the photos never needed
// one). Network first, so an online visit always gets the current files and behaves exactly as
// without this worker; the cache is only the fallback when the network fails.
// js/module-loader.js stores the module here too (same name) on a visit this worker did not
// control.
const CACHE = 'agegender-v2';
// The page's shell, cached at install; the wasm module is cached as it is fetched: through here
// once the page is controlled, by the page's loader (js/module-loader.js) itself before. Every
// file in js/ is listed (the end-to-end test checks it).
const SHELL = [
  './', 'index.html', 'main.js', 'worker.js', 'style.css', 'pkg/agegender.js',
  'js/boot.js', 'js/cards.js', 'js/decode.js', 'js/draw.js', 'js/events.js', 'js/export.js',
  'js/face-list.js', 'js/modes.js', 'js/module-loader.js', 'js/status.js', 'js/text.js',
  'js/webcam.js', 'js/worker-client.js',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith(networkFirst(event, request));
});

async function networkFirst(event, request) {
  try {
    const response = await fetch(request);
    // Stored in the background: awaiting it would hold the response until the whole body had
    // arrived and the page's download progress would jump from 0 to 100%.
    if (response.ok) {
      const copy = response.clone();
      event.waitUntil(caches.open(CACHE).then((cache) => cache.put(request, copy)));
    }
    return response;
  } catch (err) {
    const hit = await caches.match(request, { ignoreSearch: true, cacheName: CACHE });
    if (hit) return hit;
    throw err;
  }
}
