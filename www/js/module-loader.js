// Downloads and compiles the wasm module on the page's side, as soon as the page is parsed
// (js/boot.js): the worker gets it compiled (a WebAssembly.Module is shared, not copied), so its
// download no longer waits for the worker to start and fetch its own scripts first.

// sw.js's cache, where a page not yet controlled by sw.js stores the module itself (its fetch
// passes sw.js by).
const OFFLINE_CACHE = 'agegender-v2';

// Two builds of one module (build.sh; one glue script serves both): with relaxed SIMD, tract's
// matrix kernels use fused multiply-adds (about 0.9x the time per photo, bench/ANALYSIS.md), but
// that module does not compile where the browser lacks relaxed SIMD (Safari). `simd128` asks
// for the plain one (the end-to-end test compares the two).
const MODULES = {
  relaxed: new URL('../pkg/agegender_relaxed_bg.wasm', import.meta.url),
  simd128: new URL('../pkg/agegender_bg.wasm', import.meta.url),
};
// (module (func (result v128) i32.const 1 i8x16.splat i32.const 2 i8x16.splat
//   i8x16.relaxed_swizzle)): valid only where relaxed SIMD is (as wasm-feature-detect checks it).
const RELAXED_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 15, 1, 13, 0, 65, 1, 253, 15,
  65, 2, 253, 15, 253, 128, 2, 11,
]);

/** Downloads and compiles the module, reporting to `report(msg)` as the worker reports its own
 * phases (`{ status: 'loading', phase, loaded?, total? }` as each begins, `{ status: 'phase',
 * phase, ms, bytes? }` as each ends). Resolves to `{ module, simd, phases }`. */
export async function loadModule({ simd: asked = null, storeModel = false }, report) {
  const phases = {};
  const phase = (name, ms, extra) => {
    phases[name] = ms;
    report({ status: 'phase', phase: name, ms, ...extra });
  };
  let simd = asked !== 'simd128' && WebAssembly.validate(RELAXED_PROBE) ? 'relaxed' : 'simd128';
  let module;
  try {
    module = await download(MODULES[simd], { storeModel, report, phase });
  } catch (e) {
    // Relaxed SIMD that the probe passed but the real module did not, or a host that serves
    // only the plain module: that one instead.
    if (simd !== 'relaxed') throw e;
    simd = 'simd128';
    module = await download(MODULES[simd], { storeModel, report, phase });
  }
  return { module, simd, phases };
}

async function download(url, { storeModel, report, phase }) {
  report({ status: 'loading', phase: 'download' });
  const t = performance.now();
  // The module compiles while it streams in: `compile` is the part left after the last byte.
  const { response, downloaded } = await fetchCounted(url, storeModel, report);
  const compiled = WebAssembly.compileStreaming(response);
  // (A compile error ends the stream early: then `compiled` rejects first.)
  const { bytes } = await Promise.race([downloaded, compiled.then(() => downloaded)]);
  const tDownloaded = performance.now();
  phase('download', tDownloaded - t, { bytes });
  report({ status: 'loading', phase: 'compile' });
  const module = await compiled;
  phase('compile', performance.now() - tDownloaded);
  return module;
}

/** The module's response, passed through a counter that reports download progress (the module
 * is about 2.5 MB); `downloaded` resolves to `{ bytes }` when its last byte has arrived. */
async function fetchCounted(url, storeModel, report) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`could not load the model (HTTP ${res.status})`);
  if (storeModel && self.caches) {
    const copy = res.clone();
    const t = performance.now();
    // Best effort: a page that cannot store (quota, private mode) still runs. The copy is only
    // safe once `put` resolves (a reload before then loses it), hence the `store` phase.
    caches
      .open(OFFLINE_CACHE)
      .then((cache) => cache.put(url, copy))
      .then(() => report({ status: 'phase', phase: 'store', ms: performance.now() - t }))
      .catch(() => {});
  }
  const total = Number(res.headers.get('Content-Length')) || 0;
  let loaded = 0;
  // The first chunk always reports, however soon after the request it comes.
  let last = -Infinity;
  let done;
  const downloaded = new Promise((resolve) => (done = resolve));
  const counted = res.body.pipeThrough(new TransformStream({
    transform(chunk, out) {
      loaded += chunk.byteLength;
      const now = performance.now();
      if (now - last > 100) {
        last = now;
        // A compressed transfer's length is not the body's: then only bytes are reported.
        report({ status: 'loading', phase: 'download', loaded, total: loaded <= total ? total : 0 });
      }
      out.enqueue(chunk);
    },
    flush() {
      done({ bytes: loaded });
    },
  }));
  return { response: new Response(counted, { headers: { 'Content-Type': 'application/wasm' } }), downloaded };
}
