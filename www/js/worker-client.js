// The analysis worker (www/worker.js) seen from the page: requests become promises, its status
// messages go to one handler, and a worker whose wasm trapped is replaced by a fresh one.

let worker = null;
let nextId = 1;
const pending = new Map(); // id -> { resolve, reject }
let handlers = null;
// A photo chosen before the worker exists waits for it.
let started;
const whenStarted = new Promise((resolve) => (started = resolve));

/** Starts the worker. `onStatus(msg)` gets its `{ status, ... }` messages, `onError(message)`
 * a worker that could not start at all; `storeModel`: the worker puts the module into the
 * offline cache itself; `simd`: 'simd128' asks for the plain module (www/worker.js). */
export function startWorker(onStatus, onError, { storeModel = false, simd = null } = {}) {
  handlers = { onStatus, onError, storeModel, simd };
  const url = new URL('../worker.js', import.meta.url);
  if (storeModel) url.searchParams.set('store', '1');
  if (simd) url.searchParams.set('simd', simd);
  worker = new Worker(url, { type: 'module' });
  worker.onmessage = ({ data }) => {
    if (data.status) {
      handlers.onStatus(data);
    } else if (pending.has(data.id)) {
      const { resolve, reject } = pending.get(data.id);
      pending.delete(data.id);
      if (data.error !== undefined) reject(new Error(data.error));
      else resolve(data);
      if (data.fatal) restartWorker('the model stopped after an internal error; reloading it');
    }
  };
  worker.onerror = (e) => {
    e.preventDefault();
    handlers.onError(e.message || 'unknown error');
    failAll(new Error('the analysis worker could not start'));
  };
  started();
}

function failAll(err) {
  for (const { reject } of pending.values()) reject(err);
  pending.clear();
}

/** After a trap the wasm instance cannot be trusted again: start a fresh worker. */
function restartWorker(why) {
  worker.terminate();
  failAll(new Error(why));
  startWorker(handlers.onStatus, handlers.onError, handlers);
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
