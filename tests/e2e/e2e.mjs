// End-to-end test of the page in headless Debian Chromium (playwright-core, no browser download).
//
// Serves www/ with tools/serve.py, loads the page, drops photos on it and chooses others with the
// file picker, then checks what was drawn and listed, that the worker answers errors and keeps
// serving, that the page logged no error (CSP violations included) and that no network request was
// made after the model had loaded. It reads what a user sees (text, ARIA attributes, the canvas)
// and the page's documented `agegender:*` events (README, "Page events"), recorded from the
// start by watchPage(). Screenshots go to tests/artifacts/ (gitignored).
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
// The page's two builds of the module (build.sh), by the worker's `simd` name.
const MODULE_FILES = { relaxed: 'www/pkg/agegender_relaxed_bg.wasm', simd128: 'www/pkg/agegender_bg.wasm' };
/** The main run's analysis of group-1.jpg (relaxed-SIMD module), when there is data. */
let groupAnalysis = null;
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

/** Starts tools/serve.py on a free port; resolves to the process and its origin. */
async function startServer(stderr = 'inherit') {
  const proc = spawn('python3', [path.join(root, 'tools/serve.py'), '--port', '0'], {
    stdio: ['ignore', 'pipe', stderr],
  });
  const [line] = await once(createInterface({ input: proc.stdout }), 'line');
  return { proc, origin: new URL(line.replace(/^serving /, '')).origin };
}

const { proc: server, origin } = await startServer();

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

// ---- watching the page ------------------------------------------------------------------------

/** Records, in every page of `context` from its start, each status line shown and the page's
 * events: `window.seen` = { statuses, phases (name -> detail), ready, results (by card index,
 * the latest), frames (webcam: the count and the latest) }. */
async function watchPage(context) {
  await context.addInitScript(() => {
    const seen = { statuses: [], phases: {}, ready: null, results: [], frames: 0, frame: null };
    window.seen = seen;
    document.addEventListener('agegender:phase', (e) => (seen.phases[e.detail.phase] = e.detail));
    document.addEventListener('agegender:ready', (e) => (seen.ready = e.detail));
    document.addEventListener('agegender:result', (e) => (seen.results[e.detail.index] = e.detail));
    document.addEventListener('agegender:frame', (e) => {
      seen.frames++;
      seen.frame = e.detail;
    });
    // Each text set in #status, from the mutation records: two statuses set in one task (a fast
    // download's progress, then "Compiling") are both kept, where reading the element would see
    // the last. Watched from the document's start, not from DOMContentLoaded: main.js runs
    // before it and replays the load's progress that js/boot.js's loader reported meanwhile.
    const inStatus = (n) => (n.nodeType === 1 ? n : n.parentElement)?.closest('#status');
    new MutationObserver((records) => {
      for (const r of records) {
        if (!inStatus(r.target)) continue;
        if (r.type === 'characterData') seen.statuses.push(r.target.data);
        for (const n of r.addedNodes) seen.statuses.push(n.textContent);
      }
    }).observe(document, { childList: true, characterData: true, subtree: true });
  });
}

/** A new page of `context`, watched (see watchPage), with the page errors it raises collected in
 * `problems`. */
async function watchedPage(context) {
  await watchPage(context);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  return { page, problems };
}

async function waitReady(page) {
  try {
    await page.waitForFunction(() => window.seen.ready, null, { timeout: TIMEOUT, polling: 100 });
  } catch (e) {
    // A bare timeout says nothing: name what the page showed and how far the load got.
    const state = await page
      .evaluate(() => ({ statuses: window.seen?.statuses, phases: window.seen?.phases, controlled: !!navigator.serviceWorker?.controller, title: document.title, body: document.body?.innerText.slice(0, 300) }))
      .catch((err) => `(page not readable: ${err.message})`);
    throw new Error(`the page never became ready: ${JSON.stringify(state)}`, { cause: e });
  }
}

// ---- the test ---------------------------------------------------------------------------------

async function run() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const requests = [];
  let loaded = false;
  context.on('request', (r) => requests.push({ url: r.url(), afterLoad: loaded }));
  const { page, problems } = await watchedPage(context);
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });

  const t0 = Date.now();
  await page.goto(origin + '/');
  await waitReady(page);
  summary.loadMs = Date.now() - t0;
  // Loading ends with the offline copy: sw.js registers once the model is ready (and the photos
  // chosen meanwhile are analysed), and its install fetches the page's own files.
  await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
  loaded = true;
  summary.modelInfo = await page.textContent('#model-info');
  const seen = await page.evaluate(() => window.seen);
  summary.loadStatuses = seen.statuses;
  assert.ok(summary.loadStatuses.some((t) => /^Loading the model… \d+% of \d+\.\d MB$/.test(t)), `download progress is shown: ${JSON.stringify(summary.loadStatuses)}`);
  assert.ok(summary.loadStatuses.includes('Compiling the model…'));
  assert.ok(summary.loadStatuses.includes('Preparing the model…'));
  // Each load phase is timed, announced as an event and shown in the ready line.
  summary.phases = seen.ready.phases;
  for (const phase of ['download', 'compile', 'prepare']) {
    assert.ok(seen.phases[phase]?.ms >= 0, `the ${phase} phase is reported`);
    assert.equal(seen.ready.phases[phase], seen.phases[phase].ms);
  }
  // Chromium has relaxed SIMD: the faster of the two modules runs (www/worker.js).
  assert.equal(seen.ready.simd, 'relaxed', 'the relaxed-SIMD module is chosen');
  assert.match(summary.modelInfo, /wasm relaxed SIMD/);
  assert.equal(seen.phases.download.bytes, fs.statSync(path.join(root, MODULE_FILES.relaxed)).size);
  assert.match(await page.textContent('#status'),
    /^Ready \(loaded in \d+\.\d s: download \d+\.\d s, compile \d+\.\d s, model preparation \d+\.\d s\)\. /);
  // The service worker caches every module of the page, so it reloads offline.
  const sw = fs.readFileSync(path.join(root, 'www/sw.js'), 'utf8');
  for (const f of fs.readdirSync(path.join(root, 'www/js'))) assert.ok(sw.includes(`'js/${f}'`), `www/sw.js caches js/${f}`);
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
    // The summary says what the result event holds.
    assert.match(card.summary, card.faces === 0 ? /^no face found/ : new RegExp(`^${card.faces} faces? found`), card.title);
    for (const [i, item] of card.items.entries()) {
      const est = card.estimates[i];
      if (est) {
        assert.match(item, /^Face \d+: age \d+ \(likely \d+–\d+\), (female|male) \(>?\d+% confidence\)|gender uncertain/);
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
    groupAnalysis = await page.evaluate((i) => window.seen.results[i].analysis, cards.indexOf(group[0]));
    summary.cases['group-1.jpg'] = {
      faces: group[0].faces,
      firstMs: Math.round(group[0].ms),
      warmMs: Math.round(group[1].ms),
    };
    // The worker's first analysis is a load phase of its own (the group photo came first).
    const first = await page.evaluate(() => window.seen.phases.firstAnalysis);
    assert.equal(first?.ms, group[0].ms, 'the first analysis is reported as a phase');
  }
  assert.equal(byTitle('generated-gradient.png')[0].faces, 0, 'a gradient has no face');

  // 3. Verification and age-gate modes.
  await checkModes(page);
  await page.screenshot({ path: path.join(artifacts, 'modes-desktop.png'), fullPage: true });

  // 4. Export: the annotated image as PNG, the results as JSON.
  summary.cases.export = await checkExport(page);

  // 5. Offline after load: the model is in memory, another photo is analysed without a network.
  await context.setOffline(true);
  const before = await page.locator('.result').count();
  await dropFiles(page, data ? [faceSpec(labelledFaces(data).adults[0])] : [], true);
  await waitForCards(page, before + (data ? 2 : 1));
  const offline = (await readCards(page)).slice(before);
  for (const c of offline) assert.equal(c.state, 'done', `offline: ${c.title}: ${c.summary}`);
  if (data) assert.equal(offline[0].faces, 1, 'offline: the face is found');
  await context.setOffline(false);
  summary.cases.offline = offline.map((c) => c.summary);

  // 6. Narrow viewport: the layout stacks and still fits.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than a narrow viewport`);
  await page.screenshot({ path: path.join(artifacts, 'results-narrow.png'), fullPage: true });
  // The whole page is long; these two are what a phone shows first and one result.
  await page.screenshot({ path: path.join(artifacts, 'narrow-top.png'), fullPage: true, clip: { x: 0, y: 0, width: 390, height: 1500 } });
  await page.locator('.result[data-state="done"]').first().screenshot({ path: path.join(artifacts, 'narrow-result.png') });

  // 7. Nothing left the device: no request at all after the model had loaded (the exports'
  //    blob: URLs are local objects, not requests to anywhere).
  summary.requestsDuringLoad = requests.filter((r) => !r.afterLoad).map((r) => r.url.replace(origin, ''));
  const late = requests.filter((r) => r.afterLoad && !r.url.startsWith('blob:')).map((r) => r.url);
  assert.deepEqual(late, [], 'network requests after load');
  assert.deepEqual(problems, [], 'errors or warnings in the page console');

  // 8. The worker answers a bad request with an error and keeps serving (its own protocol).
  const protocol = await page.evaluate(workerProtocolCheck);
  assert.match(protocol.error, /RGBA buffer has 5 bytes/, 'wrong-length buffer gives an error message');
  assert.equal(protocol.after, 0, 'after the error the worker still analyses images');
  // A face whose range straddles 18 and whose gender is unsure: "check ID" and "cannot tell".
  const near = await page.evaluate(workerCheckNearTheLine);
  assert.equal(near.checks[0].verdict, 'cannot_tell');
  assert.match(near.checks[0].reason, /unsure of the gender/);
  assert.equal(near.gates[0].decision, 'check_id');
  assert.match(near.gates[0].reason, /too close to 18/);
  assert.deepEqual(problems, [], 'errors or warnings in the page console');

  await context.close();

  // 8b. The plain simd128 module, for browsers without relaxed SIMD, gives the same results.
  summary.cases.plainModule = await checkPlainModule();

  // 9. Reload without a network: the service worker serves the page and the model from its cache.
  summary.cases.offlineReload = await checkOfflineReload();

  // 10. Webcam, with Chromium's fake camera (a still of an adult and a child when there is data).
  summary.cases.webcam = await checkWebcam();
}

// ---- the plain module ---------------------------------------------------------------------------

/** Loads the page with `?simd=simd128` (the module browsers without relaxed SIMD get) and checks
 * that it analyses group-1 as the relaxed-SIMD module did: fused multiply-adds round differently,
 * so equal within float noise, not bit for bit. */
async function checkPlainModule() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  try {
    const { page, problems } = await watchedPage(context);
    await page.goto(origin + '/?simd=simd128');
    await waitReady(page);
    const seen = await page.evaluate(() => window.seen);
    assert.equal(seen.ready.simd, 'simd128', 'the plain module is chosen when asked for');
    assert.equal(seen.phases.download.bytes, fs.statSync(path.join(root, MODULE_FILES.simd128)).size);
    await dropFiles(page, data ? [fileSpec(path.join(data, 'photos/group-1.jpg'), 'image/jpeg')] : [], !data);
    await waitForCards(page, 1);
    const [card] = await readCards(page);
    assert.equal(card.state, 'done', card.summary);
    assert.deepEqual(problems, [], 'errors in the page with the plain module');
    if (!groupAnalysis) return { faces: card.faces };
    const plain = await page.evaluate(() => window.seen.results[0].analysis);
    assert.equal(plain.faces.length, groupAnalysis.faces.length, 'the same faces in group-1.jpg');
    let maxBox = 0;
    let maxAge = 0;
    let maxP = 0;
    for (const [i, f] of plain.faces.entries()) {
      const r = groupAnalysis.faces[i];
      for (const k of [0, 1, 2, 3]) maxBox = Math.max(maxBox, Math.abs(f.box_px[k] - r.box_px[k]));
      assert.equal(!f.estimate, !r.estimate, `face ${i}: estimated by both or neither`);
      if (!f.estimate) continue;
      maxAge = Math.max(maxAge, Math.abs(f.estimate.age - r.estimate.age));
      maxP = Math.max(maxP, Math.abs(f.estimate.p_female - r.estimate.p_female));
    }
    assert.ok(maxBox < 0.5 && maxAge < 0.1 && maxP < 0.002, `plain vs relaxed: box ${maxBox} px, age ${maxAge}, p_female ${maxP}`);
    return { faces: card.faces, ms: Math.round(card.ms), maxBoxPx: maxBox, maxAge, maxPFemale: maxP };
  } finally {
    await context.close();
  }
}

// ---- offline reload ---------------------------------------------------------------------------

/** Loads the page from a server of its own, stops that server, reloads: the page must come back
 * from the service worker's cache and analyse a photo (a face when there is data). */
async function checkOfflineReload() {
  const { proc: own, origin: ownOrigin } = await startServer('ignore');
  const url = ownOrigin + '/';
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  try {
    const { page, problems } = await watchedPage(context);
    const consoleLog = [];
    page.on('console', (m) => consoleLog.push(`${m.type()}: ${m.text()}`));
    context.on('weberror', (e) => consoleLog.push(`weberror: ${e.error().message}`));
    try {
      return await offlineReloadSteps(page, own, url, problems);
    } catch (e) {
      throw new Error(`offline reload failed; the page's console: ${JSON.stringify(consoleLog)}`, { cause: e });
    }
  } finally {
    own.kill();
    await context.close();
  }
}

/** The steps of checkOfflineReload, in its context and with its server `own`. */
async function offlineReloadSteps(page, own, url, problems) {
  await page.goto(url);
  // A photo chosen while the page is still starting waits for the model.
  await page.setInputFiles('#file', path.join(root, 'model/report/confusion.png'));
  await waitReady(page);
  assert.ok(['pending', 'ready'].includes(await page.evaluate(() => window.seen.ready.serviceWorker)), 'the service worker registers (the model does not wait for it)');
  await waitForCards(page, 1);
  const [early] = await readCards(page);
  assert.equal(early.state, 'done', `a photo chosen during loading: ${early.summary}`);
  // sw.js registers once the model is ready and the photos chosen meanwhile are analysed.
  await page.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: TIMEOUT, polling: 100 });
  // The model is stored on this first visit (by the page's loader: the page was not yet
  // controlled when it started), in the background. Not `caches.match`: that already finds an
  // entry whose body is still being written, and the reload would cut it off.
  await page.waitForFunction(() => window.seen.phases.store, null, { timeout: TIMEOUT, polling: 100 });
  const stored = MODULE_FILES[await page.evaluate(() => window.seen.ready.simd)].replace(/^www\//, '');
  assert.ok(await page.evaluate(async (f) => !!(await caches.match(f)), stored), `${stored} is in the offline cache`);
  own.kill();
  await once(own, 'exit');
  // Nothing listens on the port any more: a reload can only come from the cache.
  await assert.rejects(fetch(url), 'the server is down');
  await page.reload();
  await waitReady(page);
  await dropFiles(page, data ? [faceSpec(labelledFaces(data).adults[1])] : [], true);
  await waitForCards(page, data ? 2 : 1);
  const cards = await readCards(page);
  for (const c of cards) assert.equal(c.state, 'done', `offline reload: ${c.title}: ${c.summary}`);
  if (data) assert.equal(cards[0].faces, 1, 'offline reload: the face is found');
  assert.deepEqual(problems, [], 'errors in the page after an offline reload');
  return cards.map((c) => c.summary);
}

// ---- verification and age gate ----------------------------------------------------------------

/** UTKFace crops with known labels (`age_gender_race_date.jpg.chip.jpg`, gender 1 = female):
 * clear adults (30-50) and young children (1-4), a few of each spread over the folder. */
function labelledFaces(data) {
  const dir = path.join(data, 'utkface');
  const all = fs.readdirSync(dir).filter((f) => /^\d+_[01]_\d_\d+\.jpg\.chip\.jpg$/.test(f)).sort();
  const pick = (pred, n) => {
    const hits = all.filter((f) => pred(Number(f.split('_')[0])));
    return Array.from({ length: n }, (_, i) => path.join(dir, hits[Math.floor(((i + 0.5) * hits.length) / n)]));
  };
  return { adults: pick((a) => a >= 30 && a <= 50, 4), children: pick((a) => a >= 1 && a <= 4, 3) };
}

function label(file) {
  const [age, g] = path.basename(file).split('_');
  return { age: Number(age), gender: g === '1' ? 'female' : 'male' };
}

async function setMode(page, mode, fields = {}) {
  await page.check(`input[name="mode"][value="${mode}"]`);
  for (const [id, value] of Object.entries(fields)) {
    if (id === 'stated-gender') await page.selectOption(`#${id}`, value);
    else {
      await page.fill(`#${id}`, String(value));
      await page.dispatchEvent(`#${id}`, 'change');
    }
  }
}

/** Waits until every done card shows the answers (`key`: 'checks' or 'gates') to `request`
 * (`{ claim: { age?, gender? } }` or `{ gate }`, as the mode's fields were set: the page
 * re-checks the cards after a change), returns them by title. */
async function answers(page, key, request) {
  const shown = await page.waitForFunction(({ key, request }) => {
    const out = [];
    for (const [i, n] of [...document.querySelectorAll('.result')].entries()) {
      if (n.dataset.state !== 'done') continue;
      const r = window.seen.results[i];
      const same = r && r.request.gate === request.gate && r.request.claim?.age === request.claim?.age
        && r.request.claim?.gender === request.claim?.gender;
      if (!same || !Array.isArray(r[key])) return null;
      out.push({
        title: n.querySelector('.result-title').textContent,
        answers: r[key],
        items: [...n.querySelectorAll('.result-faces li .answer')].map((p) => p.textContent),
        summary: n.querySelector('.result-summary').textContent,
      });
    }
    return out;
  }, { key, request }, { timeout: TIMEOUT, polling: 250 });
  return shown.jsonValue();
}

async function checkModes(page) {
  // Keyboard and screen reader: the modes are a radio group worked with the arrow keys, every
  // field has a label, results are announced politely.
  await page.focus('input[name="mode"][value="estimate"]');
  await page.keyboard.press('ArrowRight');
  const mode = () => page.evaluate(() => document.querySelector('input[name="mode"]:checked').value);
  assert.equal(await mode(), 'verify', 'arrow key changes the mode');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'stated-age', 'Tab reaches the stated age');
  await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('ArrowRight');
  assert.equal(await mode(), 'gate');
  for (const name of ['Stated age', 'Stated gender', 'Minimum age']) assert.equal(await page.getByLabel(name, { exact: true }).count(), 1, name);
  for (const name of ['Choose photos…', 'Take a photo…', 'Start webcam']) {
    assert.equal(await page.getByRole('button', { name }).count(), 1, name);
  }
  assert.equal(await page.getAttribute('#results', 'aria-live'), 'polite');
  assert.ok((await page.getByRole('button', { name: /^Download the annotated image of / }).count()) >= 1);
  // Verify with nothing stated: the page asks for a claim instead of answering.
  await setMode(page, 'verify');
  assert.match(await page.textContent('#mode-message'), /Enter a stated age/);
  // A bad threshold is reported, not guessed around.
  await setMode(page, 'gate', { threshold: 0 });
  await page.waitForFunction(() => /threshold/.test(document.getElementById('mode-message').textContent));
  await setMode(page, 'estimate');

  if (!data) {
    // No labelled faces: the modes run on the generated image (no face, so no answer); step 8
    // checks the answers for a face near the line.
    await setMode(page, 'verify', { 'stated-age': 30 });
    for (const c of await answers(page, 'checks', { claim: { age: 30 } })) assert.deepEqual(c.answers, [], c.title);
    await setMode(page, 'gate', { threshold: 18 });
    for (const c of await answers(page, 'gates', { gate: 18 })) assert.deepEqual(c.answers, [], c.title);
    await setMode(page, 'estimate');
    return;
  }

  // Each labelled face, dropped with its true age and gender stated: (almost) never
  // "inconsistent".
  const { adults, children } = labelledFaces(data);
  const results = [];
  for (const file of [...adults, ...children]) {
    const truth = label(file);
    await setMode(page, 'verify', { 'stated-age': truth.age, 'stated-gender': truth.gender });
    const n = await page.locator('.result').count();
    await dropFiles(page, [faceSpec(file)], false);
    await waitForCards(page, n + 1);
    const card = await page.evaluate(() => {
      const r = window.seen.results.at(-1);
      return { faces: r.analysis?.faces.length, checks: r.checks, estimate: r.analysis?.faces[0]?.estimate };
    });
    assert.equal(card.faces, 1, `${path.basename(file)}: one face`);
    results.push({ file: path.basename(file) + '.png', truth, est: card.estimate, check: card.checks[0] });
  }
  summary.cases.verification = results.map((r) => ({
    file: r.file,
    truth: r.truth,
    age: Math.round(r.est.age),
    range: [Math.round(r.est.age_low), Math.round(r.est.age_high)],
    verdict: r.check.verdict,
    reason: r.check.reason,
  }));
  // The model is wrong on gender a few percent of the time even where it is sure: one miss of
  // seven is tolerated, two are not.
  const refuted = results.filter((r) => r.check.verdict === 'inconsistent');
  assert.ok(refuted.length <= 1, `true claims called inconsistent: ${JSON.stringify(refuted)}`);
  for (const r of results) {
    if (r.truth.age < 6) {
      assert.equal(r.check.gender.verdict, 'cannot_tell', `${r.file}: no gender verdict on a child`);
    }
  }
  assert.ok(results.some((r) => r.check.verdict === 'consistent'), 'some true claims are confirmed');
  const byName = new Map(results.map((r) => [r.file, r]));

  // A claim far from everyone (age 75, on adults 30-50 and children): never "consistent", and
  // "inconsistent" for the children.
  await setMode(page, 'verify', { 'stated-age': 75, 'stated-gender': '' });
  for (const c of await answers(page, 'checks', { claim: { age: 75 } })) {
    const r = byName.get(c.title);
    if (!r) continue;
    assert.notEqual(c.answers[0].verdict, 'consistent', `${c.title}: age 75 is not consistent`);
    if (r.truth.age < 6) assert.equal(c.answers[0].verdict, 'inconsistent', `${c.title}: ${c.answers[0].reason}`);
    assert.match(c.items[0], /^Stated age 75: (inconsistent|cannot tell) \(/);
  }

  // Age gate at 18: adults never "clearly under", children never "clearly over"; and the gate is
  // not useless: some face gets a clear answer on each side.
  await setMode(page, 'gate', { threshold: 18 });
  const gates = (await answers(page, 'gates', { gate: 18 })).filter((c) => byName.has(c.title));
  summary.cases.ageGate18 = gates.map((c) => ({ title: c.title, decision: c.answers[0].decision }));
  for (const c of gates) {
    const { truth } = byName.get(c.title);
    const wrong = truth.age >= 18 ? 'clearly_under' : 'clearly_over';
    assert.notEqual(c.answers[0].decision, wrong, `${c.title} (age ${truth.age}): ${c.answers[0].reason}`);
  }
  assert.ok(gates.some((c) => c.answers[0].decision === 'clearly_over'), 'some adult is clearly over 18');
  assert.ok(gates.some((c) => c.answers[0].decision === 'clearly_under'), 'some child is clearly under 18');
  // The group photo in age-gate mode: every face has an answer drawn and listed.
  const group = (await answers(page, 'gates', { gate: 18 })).find((c) => c.title === 'group-1.jpg');
  assert.equal(group.items.length, group.answers.length);
  assert.match(group.summary, /clearly over 18|check ID|clearly under 18/);
  await page.locator('.result').filter({ hasText: 'group-1.jpg' }).first()
    .screenshot({ path: path.join(artifacts, 'age-gate-group.png') });
  await setMode(page, 'verify', { 'stated-age': 40, 'stated-gender': 'female' });
  await answers(page, 'checks', { claim: { age: 40, gender: 'female' } });
  await page.locator('.result').filter({ hasText: 'group-1.jpg' }).first()
    .screenshot({ path: path.join(artifacts, 'verify-group.png') });
}

/** Runs in the page: the worker's `check` request on a face whose estimate straddles 18. */
async function workerCheckNearTheLine() {
  const w = new Worker('worker.js', { type: 'module' });
  // Its first message is the compiled module, from the page's loader.
  const { loadModule } = await import('./js/module-loader.js');
  const { module, simd, phases } = await loadModule({}, () => {});
  w.postMessage({ type: 'init', module, simd, phases });
  const face = {
    box_px: [10, 10, 50, 50], box_norm: [0.1, 0.1, 0.5, 0.5], score: 0.9,
    keypoints: [[0, 0], [0, 0], [0, 0], [0, 0], [0, 0]],
    estimate: { age: 19, age_std: 3, age_low: 16, age_high: 22, p_female: 0.6, gender_reliable: false },
    quality: { too_small: false, blurry: false, cut_off: false, eye_distance: 30, sharpness: 200 },
  };
  const reply = new Promise((resolve) => {
    w.addEventListener('message', ({ data }) => {
      if (data.id === 1) resolve(data);
    });
  });
  w.postMessage({ id: 1, type: 'check', analysis: { width: 100, height: 100, faces: [face] },
    claim: { gender: 'female' }, gate: 18 });
  const data = await reply;
  w.terminate();
  return data;
}

// ---- export -----------------------------------------------------------------------------------

async function checkExport(page) {
  const card = page.locator('.result[data-state="done"]').first();
  const title = await card.locator('.result-title').textContent();
  const [png] = await Promise.all([page.waitForEvent('download'), card.locator('.save-png').click()]);
  const pngPath = path.join(artifacts, 'export-' + png.suggestedFilename());
  await png.saveAs(pngPath);
  const bytes = fs.readFileSync(pngPath);
  assert.equal(bytes.subarray(1, 4).toString(), 'PNG', 'the image download is a PNG');
  const size = [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
  const canvas = await card.evaluate((n) => [n.querySelector('canvas').width, n.querySelector('canvas').height]);
  assert.deepEqual(size, canvas, 'the PNG is the annotated canvas, full size');

  const [json] = await Promise.all([page.waitForEvent('download'), card.locator('.save-json').click()]);
  const jsonPath = path.join(artifacts, 'export-' + json.suggestedFilename());
  await json.saveAs(jsonPath);
  const doc = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
  assert.equal(doc.file, title);
  const faces = await card.locator('.result-faces li').count();
  assert.equal(doc.analysis.faces.length, faces, 'the JSON holds every face');
  assert.ok(doc.tool.startsWith('agegender '));
  assert.ok(png.suggestedFilename().endsWith('.png') && json.suggestedFilename().endsWith('.json'));
  return { png: png.suggestedFilename(), size, json: json.suggestedFilename(), faces, mode: doc.mode };
}

// ---- webcam -----------------------------------------------------------------------------------

async function checkWebcam() {
  const args = [...CHROMIUM_ARGS, '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'];
  const faces = data ? labelledFaces(data) : null;
  const still = faces && [faces.adults[2], faces.children[0]];
  if (still) args.push(`--use-file-for-fake-video-capture=${await stillVideo(still)}`);
  const camBrowser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args,
  });
  try {
    const context = await camBrowser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.grantPermissions(['camera'], { origin });
    const { page, problems } = await watchedPage(context);
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    const requests = [];
    await page.goto(origin + '/');
    await waitReady(page);
    page.on('request', (r) => requests.push(r.url()));
    await setMode(page, 'gate', { threshold: 18 });
    await page.click('#webcam-toggle');
    await page.waitForFunction(
      () => document.getElementById('webcam-toggle').getAttribute('aria-pressed') === 'true'
        || document.getElementById('status').dataset.state === 'error',
      null,
      { timeout: TIMEOUT },
    );
    assert.equal(await page.getAttribute('#webcam-toggle', 'aria-pressed'), 'true', await page.textContent('#status'));
    // Enough frames for the rate to settle; the fake camera runs at 30 frames/s, faster than the
    // model, so frames must have been dropped.
    await page.waitForFunction(() => window.seen.frames >= 8, null, { timeout: TIMEOUT, polling: 200 });
    const first = await page.evaluate(() => window.seen.frame.frame.faces.map((f) => f.id));
    await page.waitForFunction(() => window.seen.frames >= 14, null, { timeout: TIMEOUT, polling: 200 });
    await page.screenshot({ path: path.join(artifacts, 'webcam.png'), fullPage: true });
    const state = await page.evaluate(() => {
      const { frame, gates, frames, dropped, fps } = window.seen.frame;
      return {
        frames,
        dropped,
        fps,
        stats: document.getElementById('webcam-stats').textContent,
        ids: frame.faces.map((f) => f.id),
        trackFrames: frame.faces.map((f) => f.frames),
        estimateFrames: frame.faces.map((f) => f.estimate_frames),
        ages: frame.faces.map((f) => f.estimate?.age),
        gates: (gates ?? []).map((g) => g.decision),
        items: document.querySelectorAll('#webcam-faces li').length,
      };
    });
    // What the stats line says: the rate and the frames skipped.
    const [, fps, dropped] = state.stats.match(/^(\d+\.\d) frames\/s analysed · (\d+) skipped while busy/) ?? [];
    assert.ok(Number(fps) > 0, `a frame rate is shown: ${state.stats}`);
    assert.ok(Number(dropped) > 0, 'frames are dropped while the worker is busy');
    assert.equal(state.items, state.ids.length, 'one list entry per tracked face');
    assert.equal(state.gates.length, state.ids.length, 'the age gate answers in webcam mode too');
    if (still) {
      // An adult on the left, a child on the right, still: the same two ids frame after frame,
      // and the age gate tells them apart (the adult is never "clearly under").
      assert.equal(state.ids.length, 2, `faces in the webcam still: ${state.ids}`);
      assert.deepEqual(state.ids, first, 'ids kept across frames');
      assert.ok(Math.min(...state.trackFrames) >= 10, `tracks span the frames: ${state.trackFrames}`);
      // Both faces classified in the first frame, then at most one face a frame (src/track.rs),
      // and each face again now and then.
      const estimates = state.estimateFrames.reduce((a, b) => a + b, 0);
      assert.ok(estimates <= Math.max(...state.trackFrames) + 1, `at most one face classified a frame: ${state.estimateFrames} of ${state.trackFrames}`);
      assert.ok(Math.min(...state.estimateFrames) >= 2, `each face classified again: ${state.estimateFrames}`);
      assert.notEqual(state.gates[0], 'clearly_under', 'adult');
      assert.equal(state.gates[1], 'clearly_under', 'child');
    }
    await page.click('#webcam-toggle');
    assert.equal(await page.getAttribute('#webcam-toggle', 'aria-pressed'), 'false');
    assert.deepEqual(requests.filter((u) => !u.startsWith('blob:')), [], 'webcam: network requests after load');
    assert.deepEqual(problems, [], 'webcam: errors in the page console');
    await context.close();
    return {
      fps: Number(state.fps.toFixed(2)),
      frames: state.frames,
      dropped: state.dropped,
      ids: state.ids,
      trackFrames: state.trackFrames,
      estimateFrames: state.estimateFrames,
      ages: state.ages.map((a) => a && Math.round(a)),
      gates: state.gates,
    };
  } finally {
    await camBrowser.close();
  }
}

/** A one-frame 640x480 Y4M video of face crops side by side on grey, for Chromium's fake camera:
 * drawn and converted to I420 in a blank page of the main browser, so no video tool is needed. */
async function stillVideo(files) {
  const page = await browser.newPage();
  try {
    const b64 = await page.evaluate(async (crops) => {
      const W = 640, H = 480;
      const c = new OffscreenCanvas(W, H);
      const g = c.getContext('2d');
      g.fillStyle = '#808080';
      g.fillRect(0, 0, W, H);
      for (const [i, b64] of crops.entries()) {
        const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
        const bitmap = await createImageBitmap(new Blob([bytes]));
        g.drawImage(bitmap, 60 + i * 320, 140, 200, 200);
      }
      const px = g.getImageData(0, 0, W, H).data;
      const out = new Uint8Array(W * H * 3 / 2);
      // BT.601 limited range, chroma averaged over 2x2 blocks.
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const i = 4 * (y * W + x);
          out[y * W + x] = Math.round(16 + 0.257 * px[i] + 0.504 * px[i + 1] + 0.098 * px[i + 2]);
        }
      }
      for (let y = 0; y < H / 2; y++) {
        for (let x = 0; x < W / 2; x++) {
          let r = 0, gg = 0, b = 0;
          for (const [dx, dy] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
            const i = 4 * ((2 * y + dy) * W + 2 * x + dx);
            r += px[i] / 4; gg += px[i + 1] / 4; b += px[i + 2] / 4;
          }
          out[W * H + y * W / 2 + x] = Math.round(128 - 0.148 * r - 0.291 * gg + 0.439 * b);
          out[W * H * 5 / 4 + y * W / 2 + x] = Math.round(128 + 0.439 * r - 0.368 * gg - 0.071 * b);
        }
      }
      let s = '';
      for (let i = 0; i < out.length; i += 0x8000) s += String.fromCharCode(...out.subarray(i, i + 0x8000));
      return btoa(s);
    }, files.map((f) => fs.readFileSync(f).toString('base64')));
    const y4m = path.join(artifacts, 'webcam-still.y4m');
    fs.writeFileSync(y4m, Buffer.concat([
      Buffer.from('YUV4MPEG2 W640 H480 F30:1 Ip A1:1 C420jpeg\nFRAME\n'),
      Buffer.from(b64, 'base64'),
    ]));
    return y4m;
  } finally {
    await page.close();
  }
}

function fileSpec(file, type) {
  return { name: path.basename(file), type, base64: fs.readFileSync(file).toString('base64') };
}

/** A UTKFace crop, padded into a photo-like picture in the page (see dropFiles). */
function faceSpec(file) {
  return { ...fileSpec(file, 'image/jpeg'), name: path.basename(file) + '.png', pad: true };
}

/** Dispatches a real drop event carrying `files` (and optionally a generated PNG) on the drop zone. */
async function dropFiles(page, files, withGradient) {
  const dt = await page.evaluateHandle(
    async ({ files, withGradient }) => {
      const dt = new DataTransfer();
      for (const f of files) {
        const bytes = Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0));
        if (!f.pad) {
          dt.items.add(new File([bytes], f.name, { type: f.type }));
          continue;
        }
        // A tight face crop (UTKFace) becomes a photo-like picture: centred on twice its size,
        // padded with its mean colour, as tests/calibrate_template.rs does for the detector.
        const bitmap = await createImageBitmap(new Blob([bytes]));
        const [w, h] = [bitmap.width, bitmap.height];
        const c = new OffscreenCanvas(2 * w, 2 * h);
        const g = c.getContext('2d');
        g.drawImage(bitmap, 0, 0, 1, 1);
        const [r, gr, b] = g.getImageData(0, 0, 1, 1).data; // the crop's mean colour
        g.fillStyle = `rgb(${r},${gr},${b})`;
        g.fillRect(0, 0, 2 * w, 2 * h);
        g.drawImage(bitmap, w / 2, h / 2);
        const blob = await c.convertToBlob({ type: 'image/png' });
        dt.items.add(new File([blob], f.name, { type: 'image/png' }));
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

/** What each result card shows, with its result event, and how many face boxes are actually
 * visible on its canvas. */
async function readCards(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('.result')].map((node, i) => {
      const canvas = node.querySelector('canvas');
      const shown = window.seen.results[i];
      const faces = shown?.analysis?.faces ?? [];
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
        faces: shown?.analysis ? faces.length : -1,
        ms: shown?.ms ?? NaN,
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
  // Its first message is the compiled module, from the page's loader.
  const { loadModule } = await import('./js/module-loader.js');
  const { module, simd, phases } = await loadModule({}, () => {});
  w.postMessage({ type: 'init', module, simd, phases });
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
