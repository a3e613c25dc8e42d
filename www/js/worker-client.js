// The analysis worker (www/worker.js) seen from the page: requests become promises, its status
// messages go to one handler, and a worker whose wasm trapped is replaced by a fresh one.
// Imported by js/boot.js (which starts the worker early) and by the page's modules: one instance.
import { loadModule } from './module-loader.js';

let worker = null;
// A second worker that classifies half of a group photo's faces while the worker classifies
// the other half (www/worker.js), where the device has a second core; or null. Its scripts load
// when the worker is ready (so no request is made once the page has loaded), but it gets the
// module, and loads the models, only once the first photo has been analysed or the worker has
// idled HELPER_AFTER_MS since: loaded beside the worker, it slowed the cold first result by 5%
// on 2 cores (bench/ANALYSIS.md).
let helperWorker = null;
let helperStarted = false;
const HELPER_AFTER_MS = 2000;
let nextId = 1;
const pending = new Map(); // id -> { resolve, reject }
let options = null;
// The compiled module (js/module-loader.js): loaded once, given again to a restarted worker.
let loaded = null;
// The page's handlers (listen()); until main.js has loaded and set them, what the worker says is
// kept and replayed to them in order.
let handlers = null;
const early = [];
// A photo chosen before the worker exists waits for it.
let started;
const whenStarted = new Promise((resolve) => (started = resolve));

/** Starts the module's download and the worker (js/boot.js does, as soon as the page is
 * parsed), and hands the worker the compiled module. `storeModel`: the module is put into the
 * offline cache too; `simd`: 'simd128' asks for the plain module (js/module-loader.js). */
export function startWorker({ storeModel = false, simd = null } = {}) {
  options = { storeModel, simd };
  // The loader reports its phases as the worker reports the rest.
  loaded ??= loadModule(options, (msg) => tell('onStatus', msg));
  worker = new Worker(new URL('../worker.js', import.meta.url), { type: 'module' });
  helperStarted = false;
  helperWorker = null;
  const own = worker;
  loaded.then(
    ({ module, simd: built, phases }) => own.postMessage({ type: 'init', module, simd: built, phases }),
    (e) => own.postMessage({ type: 'init', error: e instanceof Error ? e.message : String(e) }),
  );
  worker.onmessage = ({ data }) => {
    if (data.status) {
      if (data.status === 'ready') {
        // The helper's scripts load now, while the page still loads (no request after that).
        if ((navigator.hardwareConcurrency ?? 1) > 1) {
          helperWorker = new Worker(new URL('../worker.js', import.meta.url), { type: 'module' });
          // A helper that could not start is no loss: the worker classifies alone.
          helperWorker.onerror = (e) => e.preventDefault();
        }
        setTimeout(() => startHelper(own), HELPER_AFTER_MS);
      }
      tell('onStatus', data);
    } else if (pending.has(data.id)) {
      startHelper(own);
      const { resolve, reject } = pending.get(data.id);
      pending.delete(data.id);
      if (data.error !== undefined) reject(new Error(data.error));
      else resolve(data);
      if (data.fatal) restartWorker('the model stopped after an internal error; reloading it');
    }
  };
  worker.onerror = (e) => {
    e.preventDefault();
    tell('onError', e.message || 'unknown error');
    failAll(new Error('the analysis worker could not start'));
  };
  started();
}

/** Starts the helper worker of `forWorker` (the current worker), once: it gets the compiled
 * module and one end of a channel, the worker the other end. */
function startHelper(forWorker) {
  if (helperStarted || !helperWorker || forWorker !== worker) return;
  helperStarted = true;
  const helper = helperWorker;
  loaded.then(({ module }) => {
    const { port1, port2 } = new MessageChannel();
    helper.postMessage({ type: 'init', module, role: 'helper', port: port2 }, [port2]);
    forWorker.postMessage({ type: 'helper', port: port1 }, [port1]);
  }, () => {});
}

/** The page's handlers: `onStatus(msg)` gets the worker's `{ status, ... }` messages (those sent
 * before this call first), `onError(message)` a worker that could not start at all. */
export function listen(onStatus, onError) {
  handlers = { onStatus, onError };
  for (const [kind, arg] of early.splice(0)) handlers[kind](arg);
}

function tell(kind, arg) {
  if (handlers) handlers[kind](arg);
  else early.push([kind, arg]);
}

function failAll(err) {
  for (const { reject } of pending.values()) reject(err);
  pending.clear();
}

/** After a trap the wasm instance cannot be trusted again: start a fresh worker. */
function restartWorker(why) {
  worker.terminate();
  helperWorker?.terminate();
  failAll(new Error(why));
  startWorker(options);
}

/** Sends one request (ArrayBuffers in `transfer` are moved, not copied); resolves to the reply. */
export async function ask(message, transfer = []) {
  await whenStarted;
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, ...message }, transfer);
  });
}

/** Analyses one image (its RGBA buffer is moved to the worker) and checks its faces as `request`
 * asks (`{ claim?, gate? }`); resolves to `{ result, tracked, checks, gates, checkError, ms }`. */
export function analyze(rgba, width, height, request, extra = {}) {
  return ask({ type: 'analyze', rgba, width, height, options: {}, ...request, ...extra }, [rgba]);
}
