// Runs the wasm pipeline off the main thread. Gets the module compiled from the page
// (js/module-loader.js, which downloads it as soon as the page is parsed), prepares its embedded
// models once, then answers requests:
//   { type: 'init', module, simd, phases } | { type: 'init', error }   first: the compiled module
//                                      (or why there is none), the loader's phase timings
//   { type: 'init', module, role: 'helper', port }   instead, for a helper: this worker only
//                                      classifies crops for the worker at the other end of `port`
//   { type: 'helper', port }           a helper at the other end of `port` (js/worker-client.js
//                                      starts one after the first photo, given a second core)
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
//   { status: 'loading', phase: 'prepare' }   the models' preparation began (the loader reports
//                                      'download' and 'compile' the same way, on the page)
//   { status: 'phase', phase, ms }     that phase ended after `ms`; the first analysis after
//                                      loading is reported too, as 'firstAnalysis'
//   { status: 'ready' | 'running' | 'failed', ... }   'ready' has `phases` (phase -> ms) and
//                                      `simd`: the module running, 'relaxed' or 'simd128'
//   { id, result, tracked, checks, gates, checkError, ms }        `tracked`, `checks`, `gates` are
//                                                                 null unless asked for
//   { id, error, fatal }               a message; the worker keeps serving unless `fatal` (the wasm
//                                      trapped)
import init, { Analyzer, Tracker, ageGate, verify, version } from './pkg/agegender.js';

let analyzer = null;
let tracker = null;
let analysed = 0;

// A second worker that classifies part of a photo's faces (js/worker-client.js starts one where
// the device has more than one core): a group photo's faces are classified half here, half
// there, at once. `null` until it says it is ready, and again if it fails.
let helper = null;

// The page's `init` message, the first it sends.
let gotModule;
const moduleGiven = new Promise((resolve) => (gotModule = resolve));

const ready = (async () => {
  const given = await moduleGiven;
  if (given.error !== undefined) throw new Error(given.error);
  if (given.role === 'helper') return serveAsHelper(given);
  const { simd } = given;
  const phases = { ...given.phases };
  const phase = (name, ms) => {
    phases[name] = ms;
    postMessage({ status: 'phase', phase: name, ms });
  };
  await init({ module_or_path: given.module });
  const t = performance.now();
  postMessage({ status: 'loading', phase: 'prepare' });
  analyzer = new Analyzer();
  phase('prepare', performance.now() - t);
  // No warm-up inference: measured (bench/warmup.mjs), one delays "ready" by about 0.3 s and the
  // first result of a photo chosen at once comes no sooner; run while idle instead, a drawn
  // face's analysis made a photo chosen at load wait for it (bench/ANALYSIS.md, 2026-12-05).
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

/** The helper's side: loads the models, says so on `port`, then answers
 * `{ id, crops, options }` with `{ id, estimates }` or `{ id, error }`. */
async function serveAsHelper({ module, port }) {
  try {
    await init({ module_or_path: module });
    analyzer = new Analyzer();
  } catch (e) {
    port.postMessage({ failed: messageOf(e) });
    return;
  }
  port.onmessage = ({ data: { id, crops, options } }) => {
    try {
      port.postMessage({ id, estimates: analyzer.classifyCrops(crops, options) });
    } catch (e) {
      // After a trap this instance is unusable; the worker it helps classifies alone from then.
      port.postMessage({ id, error: messageOf(e) });
    }
  };
  port.postMessage({ ready: true });
}

/** The main worker's side of the helper's port. */
function listenToHelper(port) {
  const waiting = new Map();
  let next = 1;
  port.onmessage = ({ data }) => {
    if (data.ready) {
      helper = {
        classify(crops, options) {
          const id = next++;
          return new Promise((resolve, reject) => {
            waiting.set(id, { resolve, reject });
            port.postMessage({ id, crops, options }, [crops.buffer]);
          });
        },
      };
    } else if (data.failed !== undefined) {
      helper = null;
    } else if (waiting.has(data.id)) {
      const { resolve, reject } = waiting.get(data.id);
      waiting.delete(data.id);
      if (data.error !== undefined) {
        helper = null;
        reject(new Error(data.error));
      } else {
        resolve(data.estimates);
      }
    }
  };
}

/** `analyzer.analyze` with the classification shared with the (ready) helper when there are two
 * faces or more to classify: the same estimates (each face is classified alone, whichever worker
 * does it), in about two thirds of the time for a group photo. Returns the analysis, or a
 * promise of it while the helper classifies its part. */
function analyzeShared(rgba, width, height, options) {
  const { analysis, classify, crops } = analyzer.findFaces(rgba, width, height, options);
  const finish = (estimates) => {
    classify.forEach((face, i) => (analysis.faces[face].estimate = estimates[i]));
    return analysis;
  };
  if (classify.length < 2) return finish(analyzer.classifyCrops(crops, options));
  // The helper takes the smaller half: its share also pays the messages.
  const mine = Math.ceil(classify.length / 2) * (crops.length / classify.length);
  const theirs = helper.classify(crops.slice(mine), options);
  const own = analyzer.classifyCrops(crops.subarray(0, mine), options);
  return theirs.then(
    (rest) => finish([...own, ...rest]),
    () => finish([...own, ...analyzer.classifyCrops(crops.subarray(mine), options)]),
  );
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
  if (type === 'init') {
    gotModule(data);
    return;
  }
  if (type === 'helper') {
    listenToHelper(data.port);
    return;
  }
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
      // Without a helper, the plain call, as before. The pixels stay inline: held in a `const`
      // here, the webcam's frames (the branch above) measured slower (bench/ANALYSIS.md, 2026-12-05).
      result = helper
        ? await analyzeShared(new Uint8Array(rgba), width, height, options ?? {})
        : analyzer.analyze(new Uint8Array(rgba), width, height, options ?? {});
    }
    const ms = performance.now() - t0;
    if (analysed++ === 0) postMessage({ status: 'phase', phase: 'firstAnalysis', ms });
    postMessage({ id, result, tracked, ms, ...checksFor(tracked ?? result, data.claim, data.gate) });
  } catch (e) {
    // A trap (a Rust panic) leaves the instance unusable: `fatal` asks the page for a new worker.
    postMessage({ id, error: messageOf(e), fatal: e instanceof WebAssembly.RuntimeError });
  }
};
