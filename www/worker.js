// Runs the wasm pipeline off the main thread. Loads the module and its embedded models once, then
// answers each request { id, rgba: ArrayBuffer, width, height, options } with
//   { status: 'loading' | 'ready' | 'running', ... }  progress,
//   { id, result, ms }                                  the Analysis of one image,
//   { id, error, fatal }                                a message; the worker keeps serving
//                                                       unless `fatal` (the wasm trapped).
import init, { Analyzer, version } from './pkg/agegender.js';

let analyzer = null;

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

self.onmessage = async ({ data }) => {
  const { id, rgba, width, height, options } = data;
  try {
    await ready;
    postMessage({ status: 'running', id });
    const t0 = performance.now();
    const result = analyzer.analyze(new Uint8Array(rgba), width, height, options ?? {});
    postMessage({ id, result, ms: performance.now() - t0 });
  } catch (e) {
    // A trap (a Rust panic) leaves the instance unusable: `fatal` asks the page for a new worker.
    postMessage({ id, error: messageOf(e), fatal: e instanceof WebAssembly.RuntimeError });
  }
};
