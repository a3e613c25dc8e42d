// Runs the wasm pipeline off the main thread. Loads the module and its embedded models once, then
// answers requests:
//   { id, type: 'analyze' (default), rgba: ArrayBuffer, width, height, options,
//     claim?, gate?, track?, time? }   analyse one image; with `track`, a webcam frame for the
//                                      tracker, which classifies only the faces due (`time`: the
//                                      frame's performance.now()); with `claim`
//                                      ({ age?, gender? }) / `gate` (years), also check the faces
//   { id, type: 'check', analysis, claim?, gate? }   check an earlier result again (new settings)
//   { id, type: 'track-reset' }        forget the tracked faces (webcam started again)
//   { id, type: 'prepare', options, width?, height? }   make the detector's plans for these
//                                      options (for images of this size) now
// Replies:
//   { status: 'loading', phase, loaded?, total? }   a load phase began: 'download' (repeated with
//                                      `loaded`/`total` bytes), 'compile', 'prepare'
//   { status: 'phase', phase, ms, bytes? }   that phase ended after `ms`; the first analysis
//                                      after loading is reported too, as 'firstAnalysis', and
//                                      with `?store`, the module's offline copy, as 'store'
//   { status: 'ready' | 'running' | 'failed', ... }   'ready' has `phases` (phase -> ms) and
//                                      `simd`: the module running, 'relaxed' or 'simd128'
//   { id, result, tracked, checks, gates, checkError, ms }        `tracked`, `checks`, `gates` are
//                                                                 null unless asked for
//   { id, error, fatal }               a message; the worker keeps serving unless `fatal` (the wasm
//                                      trapped)
import init, { Analyzer, Tracker, ageGate, verify, version } from './pkg/agegender.js';

// sw.js's cache, where the page started this worker with `?store` (the page was not yet
// controlled by sw.js, so this worker's fetch passes it by): the module is stored here.
const OFFLINE_CACHE = 'agegender-v2';
const params = new URL(self.location.href).searchParams;
const storeModel = params.has('store');

// Two builds of one module (build.sh; one glue script serves both): with relaxed SIMD, tract's
// matrix kernels use fused multiply-adds (about 0.9x the time per photo, bench/ANALYSIS.md), but
// that module does not compile where the browser lacks relaxed SIMD (Safari). `?simd=simd128`
// asks for the plain one (the end-to-end test compares the two).
const MODULES = { relaxed: './pkg/agegender_relaxed_bg.wasm', simd128: './pkg/agegender_bg.wasm' };
// (module (func (result v128) i32.const 1 i8x16.splat i32.const 2 i8x16.splat
//   i8x16.relaxed_swizzle)): valid only where relaxed SIMD is (as wasm-feature-detect checks it).
const RELAXED_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 15, 1, 13, 0, 65, 1, 253, 15,
  65, 2, 253, 15, 253, 128, 2, 11,
]);
const wantsRelaxed = params.get('simd') !== 'simd128' && WebAssembly.validate(RELAXED_PROBE);

let analyzer = null;
let tracker = null;
let analysed = 0;

const ready = (async () => {
  const phases = {};
  const phase = (name, ms, extra) => {
    phases[name] = ms;
    postMessage({ status: 'phase', phase: name, ms, ...extra });
  };
  let simd = wantsRelaxed ? 'relaxed' : 'simd128';
  try {
    await loadModule(MODULES[simd], phase);
  } catch (e) {
    // Relaxed SIMD that the probe passed but the real module did not, or a host that serves
    // only the plain module: that one instead.
    if (simd !== 'relaxed') throw e;
    simd = 'simd128';
    await loadModule(MODULES[simd], phase);
  }
  const t = performance.now();
  postMessage({ status: 'loading', phase: 'prepare' });
  analyzer = new Analyzer();
  phase('prepare', performance.now() - t);
  // No warm-up inference: measured (bench/warmup.mjs), one delays "ready" by about 0.3 s and the
  // first result of a photo chosen at once comes no sooner.
  postMessage({ status: 'ready', version: version(), info: analyzer.modelInfo(), phases, simd });
  // The detector's plans (one per canvas shape, about 0.1 s each, and the second look's) are made
  // one at a time while the worker is idle, not before "ready": a request that arrives meanwhile
  // runs before the next one (and makes the plan it needs itself if that is not made yet).
  const prepareNext = () => {
    try {
      if (analyzer.prepareNext({})) setTimeout(prepareNext, 0);
    } catch {
      // Made on first use instead.
    }
  };
  setTimeout(prepareNext, 0);
})();
// A failed load is reported once here and again to every request below.
ready.catch((e) => postMessage({ status: 'failed', error: messageOf(e) }));

/** Downloads and compiles the module at `path` (relative to this script), reporting both phases
 * with `phase(name, ms, extra)`. */
async function loadModule(path, phase) {
  postMessage({ status: 'loading', phase: 'download' });
  const t = performance.now();
  // The module compiles while it streams in: `compile` is the part left after the last byte.
  const { response, downloaded } = await fetchCounted(new URL(path, import.meta.url));
  const compiled = init({ module_or_path: response });
  // (A compile error ends the stream early: then `compiled` rejects first.)
  const { bytes } = await Promise.race([downloaded, compiled.then(() => downloaded)]);
  const tDownloaded = performance.now();
  phase('download', tDownloaded - t, { bytes });
  postMessage({ status: 'loading', phase: 'compile' });
  await compiled;
  phase('compile', performance.now() - tDownloaded);
}

/** The module's response, passed through a counter that reports download progress (the module
 * is about 3 MB); `downloaded` resolves to `{ bytes }` when its last byte has arrived. */
async function fetchCounted(url) {
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
      .then(() => postMessage({ status: 'phase', phase: 'store', ms: performance.now() - t }))
      .catch(() => {});
  }
  const total = Number(res.headers.get('Content-Length')) || 0;
  let loaded = 0;
  // The first chunk always reports: a worker's clock starts near 0, so `last = 0` kept a fast
  // download (the module is about 1 MB gzipped) from showing any progress at all.
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
        postMessage({ status: 'loading', phase: 'download', loaded, total: loaded <= total ? total : 0 });
      }
      out.enqueue(chunk);
    },
    flush() {
      done({ bytes: loaded });
    },
  }));
  const response = new Response(counted, { headers: { 'Content-Type': 'application/wasm' } });
  return { response, downloaded };
}

function messageOf(e) {
  return e instanceof Error ? e.message : String(e);
}

/** Verification and age gate for `subject`'s faces; a bad claim is reported, not thrown. */
function checksFor(subject, claim, gate) {
  try {
    return {
      checks: claim ? verify(subject, claim) : null,
      gates: gate != null ? ageGate(subject, gate) : null,
      checkError: null,
    };
  } catch (e) {
    return { checks: null, gates: null, checkError: messageOf(e) };
  }
}

self.onmessage = async ({ data }) => {
  const { id, type = 'analyze' } = data;
  try {
    await ready;
    if (type === 'track-reset') {
      tracker?.free();
      tracker = null;
      postMessage({ id, result: null });
      return;
    }
    if (type === 'prepare') {
      analyzer.prepare(data.options ?? {}, data.width, data.height);
      postMessage({ id, result: null });
      return;
    }
    if (type === 'check') {
      postMessage({ id, result: data.analysis, ...checksFor(data.analysis, data.claim, data.gate) });
      return;
    }
    const { rgba, width, height, options } = data;
    if (!data.track) postMessage({ status: 'running', id });
    const t0 = performance.now();
    let result;
    let tracked = null;
    if (data.track) {
      // The tracker picks the faces to classify in this frame (new ones, then one in turn).
      tracker ??= new Tracker();
      ({ analysis: result, frame: tracked } = analyzer.analyzeTracked(
        new Uint8Array(rgba), width, height, options ?? {}, tracker, data.time ?? t0));
    } else {
      result = analyzer.analyze(new Uint8Array(rgba), width, height, options ?? {});
    }
    const ms = performance.now() - t0;
    if (analysed++ === 0) postMessage({ status: 'phase', phase: 'firstAnalysis', ms });
    postMessage({ id, result, tracked, ms, ...checksFor(tracked ?? result, data.claim, data.gate) });
  } catch (e) {
    // A trap (a Rust panic) leaves the instance unusable: `fatal` asks the page for a new worker.
    postMessage({ id, error: messageOf(e), fatal: e instanceof WebAssembly.RuntimeError });
  }
};
