// Runs the wasm pipeline off the main thread. Loads the module and its embedded models once, then
// answers requests:
//   { id, type: 'analyze' (default), rgba: ArrayBuffer, width, height, options,
//     claim?, gate?, track?, time? }   analyse one image; with `track`, feed the webcam tracker
//                                      (`time`: the frame's performance.now()); with `claim`
//                                      ({ age?, gender? }) / `gate` (years), also check the faces
//   { id, type: 'check', analysis, claim?, gate? }   check an earlier result again (new settings)
//   { id, type: 'track-reset' }        forget the tracked faces (webcam started again)
// Replies:
//   { status: 'loading' | 'ready' | 'running' | 'failed', ... }   progress
//   { id, result, tracked, checks, gates, checkError, ms }        `tracked`, `checks`, `gates` are
//                                                                 null unless asked for
//   { id, error, fatal }               a message; the worker keeps serving unless `fatal` (the wasm
//                                      trapped)
import init, { Analyzer, Tracker, ageGate, verify, version } from './pkg/agegender.js';

let analyzer = null;
let tracker = null;

const ready = (async () => {
  postMessage({ status: 'loading' });
  const t0 = performance.now();
  await init();
  analyzer = new Analyzer();
  postMessage({
    status: 'ready',
    version: version(),
    info: analyzer.modelInfo(),
    loadMs: performance.now() - t0,
  });
})();
// A failed load is reported once here and again to every request below.
ready.catch((e) => postMessage({ status: 'failed', error: messageOf(e) }));

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
    if (type === 'check') {
      postMessage({ id, result: data.analysis, ...checksFor(data.analysis, data.claim, data.gate) });
      return;
    }
    const { rgba, width, height, options } = data;
    if (!data.track) postMessage({ status: 'running', id });
    const t0 = performance.now();
    const result = analyzer.analyze(new Uint8Array(rgba), width, height, options ?? {});
    let tracked = null;
    if (data.track) {
      tracker ??= new Tracker();
      tracked = tracker.update(result, data.time ?? t0);
    }
    const ms = performance.now() - t0;
    postMessage({ id, result, tracked, ms, ...checksFor(tracked ?? result, data.claim, data.gate) });
  } catch (e) {
    // A trap (a Rust panic) leaves the instance unusable: `fatal` asks the page for a new worker.
    postMessage({ id, error: messageOf(e), fatal: e instanceof WebAssembly.RuntimeError });
  }
};
