// Would a warm-up inference right after loading (a 64x64 grey image, as issue #18 suggests)
// shorten the first real analysis? Each round, in fresh contexts, alternately as built and with
// that warm-up put into the worker: the worker alone, given group-1.jpg's pixels three times
// once loaded (the first analysis against the best of the other two), and the page from
// navigation with the photo chosen at once, as run.mjs's cold start does (its load phases from
// the agegender:phase events, ready and first-result times). Medians to stdout (JSON), each
// round to stderr.
//
// With `--pkg DIR` the second variant is instead another build of the module (DIR holds its
// agegender.js and agegender_bg.wasm, say a copy of www/pkg from before a change), served in
// place of www/pkg: a paired cold-start comparison of two modules.
//
//   node bench/warmup.mjs [ROUNDS] [--pkg DIR]     (after ./build.sh and npm ci here)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serveWww } from './session.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const photo = path.join(process.env.AGEGENDER_DATA || '/work/shared/data', 'photos/group-1.jpg');
const args = process.argv.slice(2);
const pkgAt = args.indexOf('--pkg');
const otherPkg = pkgAt >= 0 ? path.resolve(args.splice(pkgAt, 2)[1]) : null;
// A cold start that has not finished in this long is stuck: fail the run rather than hang it.
const COLD_TIMEOUT_MS = 120_000;
const rounds = Number(args[0] || 5);
const worker = fs.readFileSync(path.join(root, 'www/worker.js'), 'utf8');
const WARM_UP = `
  const tWarm = performance.now();
  analyzer.analyze(new Uint8Array(64 * 64 * 4).fill(128), 64, 64, {});
  phase('warmup', performance.now() - tWarm);
`;
const warmed = worker.replace(/^ *phase\('prepare'.*\n/m, (line) => line + WARM_UP);
if (warmed === worker) throw new Error("no phase('prepare', ...) line in worker.js to put the warm-up after");

const { proc, origin } = await serveWww();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-gpu'],
});

/** The page from navigation, `photo` chosen at once (it waits for the model): its load phases,
 * ready time and first result (ms since navigation), and the worker's time for that analysis. */
async function page(other) {
  const context = await newContext(other);
  await context.addInitScript(() => {
    const seen = { phases: {}, ready: 0, result: null };
    window.seen = seen;
    document.addEventListener('agegender:phase', (e) => (seen.phases[e.detail.phase] = e.detail.ms));
    document.addEventListener('agegender:ready', () => (seen.ready = performance.now()));
    document.addEventListener('agegender:result', (e) => (seen.result ??= { t: performance.now(), ms: e.detail.ms }));
  });
  const tab = await context.newPage();
  await tab.goto(origin + '/');
  await tab.setInputFiles('#file', photo);
  await tab.waitForFunction(() => window.seen.result, null, { timeout: COLD_TIMEOUT_MS, polling: 20 });
  const { phases, ready, result } = await tab.evaluate(() => window.seen);
  await context.close();
  if (!Number.isFinite(result.ms)) throw new Error('the photo was not analysed');
  return { ...phases, readyMs: ready, firstResultMs: result.t, first: result.ms };
}

/** The worker alone (no page drawing beside it): loaded, then given the photo's pixels three
 * times in a row; `first` and the best of the other two (`later`), in ms. */
async function workerOnly(other) {
  const context = await newContext(other);
  const tab = await context.newPage();
  await tab.goto(origin + '/pkg/'); // a page of the origin that starts no worker of its own
  const r = await tab.evaluate(async (b64) => {
    const bitmap = await createImageBitmap(new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))]));
    const { width, height } = bitmap;
    const g = new OffscreenCanvas(width, height).getContext('2d');
    g.drawImage(bitmap, 0, 0);
    const rgba = g.getImageData(0, 0, width, height).data;
    const w = new Worker('/worker.js', { type: 'module' });
    // Its first message is the compiled module, from the page's loader.
    const { loadModule } = await import('/js/module-loader.js');
    const loaded = await loadModule({}, () => {});
    w.postMessage({ type: 'init', ...loaded });
    const phases = { ...loaded.phases };
    const reply = (id) => new Promise((resolve) => {
      const on = ({ data }) => {
        if (data.status === 'phase') phases[data.phase] = data.ms;
        if ((id === 0 && data.status === 'ready') || (id && data.id === id && !data.status)) {
          w.removeEventListener('message', on);
          resolve(data);
        }
      };
      w.addEventListener('message', on);
    });
    await reply(0);
    const ms = [];
    for (let id = 1; id <= 3; id++) {
      const copy = rgba.slice().buffer;
      const answer = reply(id);
      w.postMessage({ id, rgba: copy, width, height, options: {} }, [copy]);
      ms.push((await answer).ms);
    }
    w.terminate();
    return { phases, ms };
  }, fs.readFileSync(photo).toString('base64'));
  await context.close();
  const later = Math.min(r.ms[1], r.ms[2]);
  return { ...r.phases, first: r.ms[0], later, extra: r.ms[0] - later };
}

async function newContext(other) {
  // No service worker: the routes below must see the worker's and the module's requests.
  const context = await browser.newContext({ serviceWorkers: 'block' });
  // Both variants served the same way.
  await context.route('**/worker.js', (r) =>
    r.fulfill({ body: other && !otherPkg ? warmed : worker, contentType: 'text/javascript' }));
  if (other && otherPkg) {
    await context.route('**/pkg/agegender*', (r) => {
      const file = path.join(otherPkg, path.basename(new URL(r.request().url()).pathname));
      r.fulfill({ body: fs.readFileSync(file), contentType: file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript' });
    });
  }
  return context;
}

const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[(s.length - 1) >> 1] / 2 + s[s.length >> 1] / 2 : NaN;
};
// "On": the warm-up put in, or with --pkg the other module; "Off": as built.
const out = { workerOn: [], workerOff: [], pageOn: [], pageOff: [] };
try {
  for (let r = 0; r < rounds; r++) {
    for (const other of r % 2 ? [false, true] : [true, false]) {
      const v = other ? 'On' : 'Off';
      out[`worker${v}`].push(await workerOnly(other));
      out[`page${v}`].push(await page(other));
    }
    console.error('round', r + 1, JSON.stringify(Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.at(-1)]))));
  }
} finally {
  await browser.close();
  proc.kill();
}
const table = {};
for (const [k, runs] of Object.entries(out)) {
  table[k] = Object.fromEntries(
    ['download', 'compile', 'prepare', 'warmup', 'first', 'later', 'extra', 'readyMs', 'firstResultMs']
      .map((f) => [f, Math.round(median(runs.map((r) => r[f])))]),
  );
}
// Paired ratios (On / Off, round by round) of the page's ready and first-result times.
const ratio = (f) => median(out.pageOn.map((r, i) => r[f] / out.pageOff[i][f]));
const paired = { readyMs: ratio('readyMs'), firstResultMs: ratio('firstResultMs') };
console.log(JSON.stringify({ rounds, on: otherPkg ?? 'warm-up', medians: table, paired, runs: out }, null, 1));
