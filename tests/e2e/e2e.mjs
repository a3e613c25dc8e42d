// End-to-end test of the page in headless Debian Chromium (playwright-core, no browser download).
//
// Serves www/ with tools/serve.py, loads the page, drops photos on it and chooses others with the
// file picker, then checks what was drawn and listed, that the worker answers errors and keeps
// serving, that the page logged no error (CSP violations included) and that no network request was
// made after the model had loaded. Screenshots go to tests/artifacts/ (gitignored).
//
// Photos come from AGEGENDER_DATA (photos/group-1.jpg, nonface/*.png) when it is set; without it
// only a generated gradient (no face) and the error paths are checked.
//
//   node tests/e2e/e2e.mjs        (after ./build.sh has built www/pkg; ./build.sh test runs it)
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const artifacts = path.join(root, 'tests/artifacts');
const data = process.env.AGEGENDER_DATA ? path.resolve(process.env.AGEGENDER_DATA) : null;
const TIMEOUT = 180_000;
// The network here is closed; these keep Chromium from trying to reach Google services.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-gpu',
];

fs.mkdirSync(artifacts, { recursive: true });
assert.ok(
  fs.existsSync(path.join(root, 'www/pkg/agegender_bg.wasm')),
  'www/pkg is missing: run ./build.sh first',
);

// ---- server -----------------------------------------------------------------------------------

const server = spawn('python3', [path.join(root, 'tools/serve.py'), '--port', '0'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const [firstLine] = await once(createInterface({ input: server.stdout }), 'line');
const origin = new URL(firstLine.replace(/^serving /, '')).origin;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: CHROMIUM_ARGS,
});

const summary = { origin, cases: {} };
try {
  await run();
} finally {
  await browser.close();
  server.kill();
  fs.writeFileSync(path.join(artifacts, 'e2e-summary.json'), JSON.stringify(summary, null, 2));
}
console.log('e2e: passed', JSON.stringify(summary.cases));

// ---- the test ---------------------------------------------------------------------------------

async function run() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const requests = [];
  let loaded = false;
  context.on('request', (r) => requests.push({ url: r.url(), afterLoad: loaded }));
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });

  const t0 = Date.now();
  await page.goto(origin + '/');
  await page.waitForSelector('body[data-ready="true"]', { timeout: TIMEOUT });
  summary.loadMs = Date.now() - t0;
  loaded = true;
  summary.modelInfo = await page.textContent('#model-info');
  await page.screenshot({ path: path.join(artifacts, 'ready.png') });

  // Everything during load came from the page's own origin (no CDN, no model hub).
  const foreign = requests.filter((r) => !r.url.startsWith(origin + '/') && !r.url.startsWith('data:'));
  assert.deepEqual(foreign, [], 'requests to other origins during load');

  // 1. Drop several files at once: a photo of a group, a photo without a face, a generated image,
  //    and a file that is not an image at all.
  const dropped = [];
  if (data) {
    dropped.push(fileSpec(path.join(data, 'photos/group-1.jpg'), 'image/jpeg'));
    dropped.push(fileSpec(path.join(data, 'nonface/chelsea.png'), 'image/png'));
  }
  dropped.push({ name: 'not-an-image <b>x</b>.txt', type: 'text/plain', base64: Buffer.from('hello').toString('base64') });
  await dropFiles(page, dropped, /* with a generated gradient */ true);
  const expectedCards = dropped.length + 1;
  await waitForCards(page, expectedCards);

  // 2. Choose files with the picker (the "Choose photos" button), group-1 again for a warm timing.
  if (data) {
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.click('#choose')]);
    assert.ok(chooser.isMultiple(), 'the picker accepts several files');
    await chooser.setFiles([path.join(data, 'nonface/coffee.png'), path.join(data, 'photos/group-1.jpg')]);
    await waitForCards(page, expectedCards + 2);
  }

  // Screenshots first, so that a failing check below can be looked at.
  await page.screenshot({ path: path.join(artifacts, 'results-desktop.png'), fullPage: true });
  const first = page.locator('.result').first();
  await first.screenshot({ path: path.join(artifacts, 'result-first.png') });
  const cards = await readCards(page);
  summary.cards = cards.map(({ title, state, faces, ms, summary: s }) => ({ title, state, faces, ms, summary: s }));

  for (const card of cards) {
    if (card.title.endsWith('.txt')) {
      assert.equal(card.state, 'error', 'a text file is reported, not analysed');
      assert.match(card.summary, /cannot read it as an image/);
      // The file name is shown as text, not parsed as HTML.
      assert.equal(card.title, 'not-an-image <b>x</b>.txt');
      continue;
    }
    assert.equal(card.state, 'done', `${card.title}: ${card.summary}`);
    assert.equal(card.items.length, card.faces, `${card.title}: one list entry per face`);
    assert.equal(card.boxesDrawn, card.faces, `${card.title}: one box drawn per face`);
    if (card.faces === 0) {
      assert.match(card.summary, /^no face found/, card.title);
    }
    for (const [i, item] of card.items.entries()) {
      const est = card.estimates[i];
      if (est) {
        assert.match(item, /^Face \d+: age \d+ \(likely \d+–\d+\), (female|male) \(\d+% confidence\)|gender uncertain/);
        if (!est.gender_reliable) assert.match(item, /gender uncertain/);
      } else {
        // Never a made-up age or gender when there is no estimate.
        assert.match(item, /no age or gender estimate/);
        assert.doesNotMatch(item, /male|female|age \d/);
      }
    }
  }
  const byTitle = (t) => cards.filter((c) => c.title === t);
  if (data) {
    const group = byTitle('group-1.jpg');
    assert.equal(group.length, 2);
    assert.ok(group[0].faces >= 3, `group-1.jpg: expected several faces, got ${group[0].faces}`);
    assert.equal(group[0].faces, group[1].faces, 'same photo, same faces');
    for (const t of ['chelsea.png', 'coffee.png']) assert.equal(byTitle(t)[0].faces, 0, `${t} has no face`);
    summary.cases['group-1.jpg'] = {
      faces: group[0].faces,
      firstMs: Math.round(group[0].ms),
      warmMs: Math.round(group[1].ms),
    };
  }
  assert.equal(byTitle('generated-gradient.png')[0].faces, 0, 'a gradient has no face');


  // 3. Narrow viewport: the layout stacks and still fits.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than a narrow viewport`);
  await page.screenshot({ path: path.join(artifacts, 'results-narrow.png'), fullPage: true });

  // 4. Nothing left the device: no request at all after the model had loaded.
  summary.requestsDuringLoad = requests.filter((r) => !r.afterLoad).map((r) => r.url.replace(origin, ''));
  const late = requests.filter((r) => r.afterLoad).map((r) => r.url);
  assert.deepEqual(late, [], 'network requests after load');
  assert.deepEqual(problems, [], 'errors or warnings in the page console');

  // 5. The worker answers a bad request with an error and keeps serving (its own protocol).
  const protocol = await page.evaluate(workerProtocolCheck);
  assert.match(protocol.error, /RGBA buffer has 5 bytes/, 'wrong-length buffer gives an error message');
  assert.equal(protocol.after, 0, 'after the error the worker still analyses images');
  assert.deepEqual(problems, [], 'errors or warnings in the page console');

  await context.close();
}

function fileSpec(file, type) {
  return { name: path.basename(file), type, base64: fs.readFileSync(file).toString('base64') };
}

/** Dispatches a real drop event carrying `files` (and optionally a generated PNG) on the drop zone. */
async function dropFiles(page, files, withGradient) {
  const dt = await page.evaluateHandle(
    async ({ files, withGradient }) => {
      const dt = new DataTransfer();
      for (const f of files) {
        const bytes = Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0));
        dt.items.add(new File([bytes], f.name, { type: f.type }));
      }
      if (withGradient) {
        const c = new OffscreenCanvas(640, 480);
        const g = c.getContext('2d');
        const grad = g.createLinearGradient(0, 0, 640, 480);
        grad.addColorStop(0, '#204080');
        grad.addColorStop(1, '#f0c060');
        g.fillStyle = grad;
        g.fillRect(0, 0, 640, 480);
        const blob = await c.convertToBlob({ type: 'image/png' });
        dt.items.add(new File([blob], 'generated-gradient.png', { type: 'image/png' }));
      }
      return dt;
    },
    { files, withGradient },
  );
  await page.dispatchEvent('#drop', 'dragover', { dataTransfer: dt });
  await page.dispatchEvent('#drop', 'drop', { dataTransfer: dt });
}

async function waitForCards(page, n) {
  await page.waitForFunction(
    (n) => {
      const cards = [...document.querySelectorAll('.result')];
      return cards.length === n && cards.every((c) => c.dataset.state === 'done' || c.dataset.state === 'error');
    },
    n,
    { timeout: TIMEOUT, polling: 250 },
  );
}

/** What each result card shows, and how many face boxes are actually visible on its canvas. */
async function readCards(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('.result')].map((node) => {
      const canvas = node.querySelector('canvas');
      const faces = node.analysis?.faces ?? [];
      // A box is drawn if the middle of one of its edges (inside the image; a neighbour's label
      // may hide some) has a bright, saturated box colour.
      const ctx = canvas.getContext('2d');
      const boxColour = ([x, y]) => {
        if (x < 0 || y < 0 || x >= canvas.width || y >= canvas.height) return false;
        const [r, g, b] = ctx.getImageData(Math.floor(x), Math.floor(y), 1, 1).data;
        return Math.max(r, g, b) > 200 && Math.max(r, g, b) - Math.min(r, g, b) > 100;
      };
      const boxesDrawn = faces.filter(({ box_px: [x, y, w, h] }) =>
        [[x + w / 2, y], [x + w / 2, y + h], [x, y + h / 2], [x + w, y + h / 2]].some(boxColour),
      ).length;
      return {
        title: node.querySelector('.result-title').textContent,
        state: node.dataset.state,
        faces: Number(node.dataset.faces ?? -1),
        ms: Number(node.dataset.ms ?? NaN),
        summary: node.querySelector('.result-summary').textContent,
        items: [...node.querySelectorAll('.result-faces li')].map((li) => li.textContent),
        estimates: faces.map((f) => f.estimate ?? null),
        boxesDrawn,
      };
    }),
  );
}

/** Runs in the page (after the network check: it loads the module again in a second worker):
 * the worker gets a wrong-length buffer, then a valid image. */
async function workerProtocolCheck() {
  const w = new Worker('worker.js', { type: 'module' });
  const next = (pred) =>
    new Promise((resolve) => {
      const on = ({ data }) => {
        if (pred(data)) {
          w.removeEventListener('message', on);
          resolve(data);
        }
      };
      w.addEventListener('message', on);
    });
  const bad = next((d) => d.id === 1 && !d.status);
  w.postMessage({ id: 1, rgba: new ArrayBuffer(5), width: 2, height: 2, options: {} });
  const { error } = await bad;
  const good = next((d) => d.id === 2 && !d.status);
  const rgba = new Uint8Array(64 * 64 * 4).fill(128);
  w.postMessage({ id: 2, rgba: rgba.buffer, width: 64, height: 64, options: {} }, [rgba.buffer]);
  const { result } = await good;
  w.terminate();
  return { error, after: result ? result.faces.length : -1 };
}
