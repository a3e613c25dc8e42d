// Would a warm-up inference right after loading (a 64x64 grey image, as issue #18 suggests)
// shorten the first real analysis? Loads the page in fresh contexts, alternately as built and
// with that warm-up put into the worker, and records the page's load phases (its agegender:phase
// events), the first analysis of group-1.jpg chosen once the page is ready against the best of
// the next two, and the navigation-to-first-result time when the photo is chosen at once (as
// run.mjs's cold start does). Medians to stdout (JSON), each round to stderr.
//
//   node bench/warmup.mjs [ROUNDS]     (after ./build.sh and npm ci here)
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const photo = path.join(process.env.AGEGENDER_DATA || '/work/shared/data', 'photos/group-1.jpg');
const rounds = Number(process.argv[2] || 5);
const worker = fs.readFileSync(path.join(root, 'www/worker.js'), 'utf8');
const WARM_UP = `
  t = performance.now();
  analyzer.analyze(new Uint8Array(64 * 64 * 4).fill(128), 64, 64, {});
  phase('warmup', performance.now() - t);
`;
const warmed = worker.replace(/^ *phase\('prepare'.*\n/m, (line) => line + WARM_UP);
if (warmed === worker) throw new Error("no phase('prepare', ...) line in worker.js to put the warm-up after");

const proc = spawn('python3', [path.join(root, 'tools/serve.py'), '--port', '0'], { stdio: ['ignore', 'pipe', 'ignore'] });
const [line] = await once(createInterface({ input: proc.stdout }), 'line');
const origin = new URL(line.replace(/^serving /, '')).origin;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-gpu'],
});

async function load(warm, early) {
  // No service worker: the route below must see the worker script's request.
  const context = await browser.newContext({ serviceWorkers: 'block' });
  // Both variants served the same way.
  await context.route('**/worker.js', (r) => r.fulfill({ body: warm ? warmed : worker, contentType: 'text/javascript' }));
  await context.addInitScript(() => {
    const seen = { phases: {}, ready: 0, results: [] };
    window.seen = seen;
    document.addEventListener('agegender:phase', (e) => (seen.phases[e.detail.phase] = e.detail.ms));
    document.addEventListener('agegender:ready', () => (seen.ready = performance.now()));
    document.addEventListener('agegender:result', (e) => seen.results.push({ t: performance.now(), ms: e.detail.ms }));
  });
  const page = await context.newPage();
  await page.goto(origin + '/');
  if (early) await page.setInputFiles('#file', photo);
  await page.waitForFunction(() => window.seen.ready, null, { timeout: 0, polling: 20 });
  if (!early) {
    await page.waitForTimeout(500);
    await page.setInputFiles('#file', [photo, photo, photo]);
  }
  await page.waitForFunction((n) => window.seen.results.length >= n, early ? 1 : 3, { timeout: 0, polling: 20 });
  const seen = await page.evaluate(() => window.seen);
  await context.close();
  const ms = seen.results.map((r) => r.ms);
  if (!ms.every(Number.isFinite)) throw new Error(`a photo was not analysed: ${JSON.stringify(seen.results)}`);
  // `extra`: the first analysis's time over the later ones' (the same photo).
  return { phases: seen.phases, readyMs: seen.ready, firstResultMs: seen.results[0].t, first: ms[0], later: early ? undefined : Math.min(ms[1], ms[2]), extra: early ? undefined : ms[0] - Math.min(ms[1], ms[2]) };
}

const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[(s.length - 1) >> 1] / 2 + s[s.length >> 1] / 2 : NaN;
};
const out = { on: [], off: [], onEarly: [], offEarly: [] };
try {
  for (let r = 0; r < rounds; r++) {
    for (const warm of r % 2 ? [false, true] : [true, false]) {
      out[warm ? 'on' : 'off'].push(await load(warm, false));
      out[warm ? 'onEarly' : 'offEarly'].push(await load(warm, true));
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
      .map((f) => [f, Math.round(median(runs.map((r) => r[f] ?? r.phases[f])))]),
  );
}
console.log(JSON.stringify({ rounds, medians: table, runs: out }, null, 1));
