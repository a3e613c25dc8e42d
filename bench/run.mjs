// The benchmark driver behind ./bench/run.sh: serves the page, our module, tractbench, the peers'
// npm packages and the photos from one local origin; drives Debian's headless Chromium through
// playwright-core; runs the native and trainer benchmarks; writes BENCHMARKS.md and
// bench/out/results.json. Timings are reported as medians with p10/p90 over many runs, and every
// comparison as the median (p10-p90) of ratios paired round by round, so both sides of a ratio
// saw the same moment of a noisy machine.

import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';
import { utkBench, utkReport } from './utk.mjs';
import { openBenchPage } from './session.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = path.join(root, 'bench');
const outDir = path.join(benchDir, 'out');
const data = process.env.AGEGENDER_DATA || '/work/shared/data';
const quick = process.argv.includes('--quick');
const skip = new Set((process.env.BENCH_SKIP || '').split(',').filter(Boolean));
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run',
];
// A cold start that has not finished in this long is stuck: fail the run rather than hang it.
const COLD_TIMEOUT_MS = 120_000;
// Rounds: model-level measures are cheap, per-image ones are not.
const ROUNDS = quick
  ? { models: 3, images: 2, cold: 1, native: 3, epochs: 1 }
  : { models: 30, images: 7, cold: 3, native: 10, epochs: 2 };
const SIZES = quick ? ['640x480', '1920x1080'] : ['640x480', '1280x720', '1920x1080', '4032x3024'];
// AGEGENDER_CLASSIFIER swaps in another classifier file (served as /model/agegender.onnx).
const classifierFile = process.env.AGEGENDER_CLASSIFIER || path.join(root, 'model/agegender.onnx');
const hasClassifier = fs.existsSync(classifierFile) && fs.statSync(classifierFile).size > 0;
const photosDir = path.join(data, 'photos');
const photos = fs.existsSync(photosDir)
  ? fs.readdirSync(photosDir).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort()
  : [];
if (quick) photos.splice(2);
fs.mkdirSync(outDir, { recursive: true });
const log = (...a) => console.error('bench:', ...a);

// ---- statistics ---------------------------------------------------------------------------------

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const i = (s.length - 1) * q;
  const lo = Math.floor(i);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo);
}
const stats = (xs) => ({ n: xs.length, median: quantile(xs, 0.5), p10: quantile(xs, 0.1), p90: quantile(xs, 0.9) });
/** Ratios a/b paired by round. */
const ratio = (a, b) => stats(a.map((x, i) => x / b[i]).filter(Number.isFinite));
const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(x >= 100 ? 0 : d) : 'n/a');
const fmtS = (s, d) => (s ? `${fmt(s.median, d)} (${fmt(s.p10, d)}–${fmt(s.p90, d)})` : 'n/a');
const kb = (b) => `${(b / 1024).toFixed(0)} KiB`;

// `--report`: rewrite BENCHMARKS.md from bench/out/results.json (after editing ANALYSIS.md).
if (process.argv.includes('--report')) {
  fs.writeFileSync(path.join(root, 'BENCHMARKS.md'), report(JSON.parse(fs.readFileSync(path.join(outDir, 'results.json'), 'utf8'))));
  log('rewrote BENCHMARKS.md from bench/out/results.json');
  process.exit(0);
}

// ---- the server ---------------------------------------------------------------------------------

const MIME = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.wasm': 'application/wasm', '.json': 'application/json', '.css': 'text/css', '.onnx': 'application/octet-stream',
  '.bin': 'application/octet-stream', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.png': 'image/png',
};
const mounts = [
  ['/bench-page/', path.join(benchDir, 'page')],
  ['/tb/', path.join(benchDir, 'target-wasm/pkg')],
  ['/node_modules/', path.join(benchDir, 'node_modules')],
  ['/model/', path.join(root, 'model')],
  ['/photos/', photosDir],
  ['/utk/', path.join(data, 'utkface')],
  ['/www/', path.join(root, 'www')],
  ['/', path.join(root, 'www')],
];
/** Every file served since the last reset: path -> raw bytes. */
let served = new Map();
const gzCache = new Map();
function gzipSize(file) {
  if (!gzCache.has(file)) gzCache.set(file, zlib.gzipSync(fs.readFileSync(file), { level: 9 }).length);
  return gzCache.get(file);
}
const server = http.createServer((req, res) => {
  const url = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  const [prefix, dir] = mounts.find(([p]) => url.startsWith(p));
  let file = url === '/model/agegender.onnx' ? classifierFile : path.join(dir, url.slice(prefix.length));
  if (!file.startsWith(dir) && file !== classifierFile) return res.writeHead(403).end();
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
  if (!fs.existsSync(file)) return res.writeHead(404).end();
  const body = fs.readFileSync(file);
  served.set(file, body.length);
  res.writeHead(200, {
    'Content-Type': MIME[path.extname(file)] || 'application/octet-stream',
    'Cache-Control': 'no-cache',
  });
  res.end(body);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${server.address().port}`;

/** Bytes of what was served, excluding the benchmark page itself and the photos. */
function downloaded() {
  const files = [...served.keys()].filter(
    (f) => !f.startsWith(path.join(benchDir, 'page')) && !f.startsWith(photosDir),
  );
  return {
    files: files.map((f) => ({ file: path.relative(root, f), raw: served.get(f), gzip: gzipSize(f) })),
    raw: files.reduce((s, f) => s + served.get(f), 0),
    gzip: files.reduce((s, f) => s + gzipSize(f), 0),
  };
}

// ---- run ------------------------------------------------------------------------------------------

const results = {
  date: new Date().toISOString(),
  quick,
  machine: machine(),
  versions: versions(),
  classifier: hasClassifier ? { file: path.relative(root, classifierFile), bytes: fs.statSync(classifierFile).size } : null,
  photos,
  sizes: SIZES,
  rounds: ROUNDS,
};

// The previous full run, read before it is overwritten: a skipped trainer comparison keeps its
// figures (marked with their date) rather than vanishing from the report.
const previousFile = path.join(outDir, 'results.json');
const previous = !quick && fs.existsSync(previousFile) ? JSON.parse(fs.readFileSync(previousFile, 'utf8')) : null;

try {
  // Skipped sections keep the previous run's figures, marked with their date in the report.
  const carry = (keys, section) => {
    if (!previous || !keys.some((k) => previous[k] !== undefined)) return;
    for (const k of keys) if (previous[k] !== undefined) results[k] = previous[k];
    results.carried = { ...results.carried, [section]: previous.carried?.[section] || previous.date };
  };
  if (!skip.has('browser')) {
    await browserBench();
    webcamBench();
  } else {
    carry(['cold', 'images', 'setup', 'faceCounts', 'models', 'perImage', 'browserProblems', 'webcam'], 'browser');
    // The browser-side versions belong to those figures, not to this run.
    for (const k of ['chromium', 'faceapi']) if (previous?.versions?.[k]) results.versions[k] = previous.versions[k];
  }
  if (!skip.has('native')) nativeBench();
  else carry(['native'], 'native');
  // The header's classifier is the one the carried browser and native figures measured.
  if (results.carried?.browser && results.carried?.native && previous.classifier) results.classifier = previous.classifier;
  if (!skip.has('trainer')) trainerBench();
  else if (previous?.trainer) results.trainer = { ...previous.trainer, from: previous.trainer.from || previous.date };
  if (!skip.has('utk')) await utkSection();
  else if (previous?.utk) results.utk = { ...previous.utk, from: previous.utk.from || previous.utk.date };
} finally {
  server.close();
  fs.writeFileSync(path.join(outDir, quick ? 'results-quick.json' : 'results.json'), JSON.stringify(results, null, 2));
}
// A --quick smoke run never overwrites the real report.
const reportFile = quick ? path.join(outDir, 'BENCHMARKS-quick.md') : path.join(root, 'BENCHMARKS.md');
fs.writeFileSync(reportFile, report(results));
log(`wrote ${path.relative(root, reportFile)} and its results JSON in bench/out/`);

/** Webcam frames analysed a second (`bench/webcam.mjs`), when the end-to-end test has left its
 * fake camera's still. */
function webcamBench() {
  if (!fs.existsSync(path.join(root, 'tests/artifacts/webcam-still.y4m'))) {
    return log('no tests/artifacts/webcam-still.y4m (run the end-to-end test): webcam skipped');
  }
  const run = spawnSync('node', [path.join(root, 'bench/webcam.mjs'), String(quick ? 1 : 4)], { encoding: 'utf8' });
  if (run.status !== 0) return log(`webcam bench failed: ${run.stderr.slice(-500)}`);
  results.webcam = JSON.parse(run.stdout);
  log('webcam', JSON.stringify(results.webcam.rounds.map((r) => r.fps)));
}

async function browserBench() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
  results.versions.chromium = browser.version();
  try {
    const photo = photos.length ? `/photos/${encodeURIComponent(photos[0])}` : null;
    // 1. Cold starts, each in a fresh context (empty cache): our page, then face-api.js.
    results.cold = { ours: [], faceapi: [] };
    for (let r = 0; r < ROUNDS.cold && photo; r++) {
      results.cold.ours.push(await coldOurs(browser, path.join(photosDir, photos[0])));
      results.cold.faceapi.push(await coldFaceApi(browser, photo));
      log('cold start', r + 1, JSON.stringify(results.cold.ours.at(-1).firstResultMs), JSON.stringify(results.cold.faceapi.at(-1).firstResultMs));
    }

    // 2. Everything side by side in one page session.
    const context = await browser.newContext();
    const { page, problems } = await openBenchPage(context, origin);
    results.images = await page.evaluate(
      ([p, s]) => window.bench.loadImages(p, s),
      [photos.map((f) => `/photos/${encodeURIComponent(f)}`), photos.length ? SIZES : []],
    );
    results.setup = {
      ours: await page.evaluate((c) => window.bench.setupOurs(c), hasClassifier),
      ort: await page.evaluate((c) => window.bench.setupOrt(c), hasClassifier),
      faceapi: await page.evaluate(() => window.bench.setupFaceApi()),
    };
    results.versions.onnxruntimeWeb = results.setup.ort.version;
    results.versions.faceapi = `${results.setup.faceapi.version} (tfjs ${results.setup.faceapi.tfjs}, ${results.setup.faceapi.backend} backend, SIMD ${results.setup.faceapi.simd})`;
    log('setup', JSON.stringify(results.setup));
    results.faceCounts = await page.evaluate(() => window.bench.faceCounts());
    log('models:', ROUNDS.models, 'rounds');
    results.models = await page.evaluate((r) => window.bench.runModels(r), ROUNDS.models);
    results.perImage = [];
    for (let i = 0; i < results.images.length; i++) {
      const t = await page.evaluate(([i, r]) => window.bench.runImage(i, r), [i, ROUNDS.images]);
      results.perImage.push({ ...results.images[i], times: t });
      log('image', results.images[i].name, Object.entries(t).map(([k, v]) => `${k} ${fmt(stats(v).median)}`).join(', '));
    }
    results.browserProblems = problems;
    await context.close();
  } finally {
    await browser.close();
  }
}

/** Our page from navigation to the first result for `file` (chosen with the file input), with
 * the page's own load phases (ms; its `agegender:phase` events, README "Page events"). */
async function coldOurs(browser, file) {
  const context = await browser.newContext();
  await context.addInitScript(() => {
    const seen = { ready: false, state: null, phases: {} };
    window.seen = seen;
    document.addEventListener('agegender:phase', (e) => (seen.phases[e.detail.phase] = e.detail.ms));
    document.addEventListener('agegender:ready', () => (seen.ready = true));
    document.addEventListener('agegender:result', (e) => (seen.state ??= e.detail.state));
  });
  const page = await context.newPage();
  served = new Map();
  const t0 = Date.now();
  await page.goto(`${origin}/`);
  await page.setInputFiles('#file', file);
  await page.waitForFunction(() => window.seen.ready, null, { timeout: COLD_TIMEOUT_MS, polling: 20 });
  const readyMs = Date.now() - t0;
  await page.waitForFunction(() => window.seen.state, null, { timeout: COLD_TIMEOUT_MS, polling: 20 });
  const firstResultMs = Date.now() - t0;
  const { state, phases } = await page.evaluate(() => window.seen);
  const d = downloaded();
  await context.close();
  return { readyMs, firstResultMs, state, phases, ...d };
}

/** face-api.js from navigation to the first detection + age/gender result. */
async function coldFaceApi(browser, photoUrl) {
  const context = await browser.newContext();
  const page = await context.newPage();
  served = new Map();
  const t0 = Date.now();
  await page.goto(`${origin}/bench-page/`);
  await page.waitForSelector('body[data-ready="true"]');
  const r = await page.evaluate((u) => window.bench.faceApiCold(u), photoUrl);
  const firstResultMs = Date.now() - t0;
  const d = downloaded();
  await context.close();
  return { readyMs: firstResultMs - (r.firstResultMs - r.readyMs), firstResultMs, faces: r.faces, ...d };
}

/** Accuracy on the UTKFace test split, face-api.js against ours (bench/utk.mjs). */
async function utkSection() {
  const launch = () => chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
  const r = await utkBench({ root, benchDir, data, origin, quick, classifierFile, launch, log });
  if (!r) return;
  results.utk = r.summary;
  fs.writeFileSync(path.join(outDir, quick ? 'utk-predictions-quick.json' : 'utk-predictions.json'), JSON.stringify(r.predictions));
}

function nativeBench() {
  const bin = path.join(benchDir, 'target/release/tractbench');
  if (!fs.existsSync(bin)) return log('no native tractbench: skipped');
  log('native tract:', ROUNDS.native, 'runs');
  const out = execFileSync(
    bin,
    ['--classifier', classifierFile, '--photos', photos.length ? photosDir : '', '--runs', String(ROUNDS.native),
      '--sizes', SIZES.join(',')],
    { cwd: root, maxBuffer: 1 << 26, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const n = JSON.parse(out);
  if (quick && n.images) n.images = n.images.filter((im) => !im.name.startsWith('generated') || SIZES.some((s) => im.name.endsWith(s)));
  results.native = n;
}

function trainerBench() {
  const utk = path.join(data, 'utkface');
  if (!fs.existsSync(utk)) return log('no utkface data: trainer comparison skipped');
  results.trainer = { ours: [], torch: null };
  // Ours: the project's trainer, 1000 images, one epoch per run.
  for (let r = 0; r < ROUNDS.epochs; r++) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'agegender-bench-train-'));
    const p = spawnSync(
      'cargo', ['run', '--quiet', '--release', '-p', 'trainer', '--', 'train', '--data', utk, '--limit', '1000',
        '--epochs', '1', '--out', dir],
      { cwd: root, encoding: 'utf8', maxBuffer: 1 << 26 },
    );
    fs.rmSync(dir, { recursive: true, force: true });
    const text = `${p.stdout}\n${p.stderr}`;
    const m = [...text.matchAll(/([\d.]+) img\/s/g)].pop();
    if (p.status !== 0 || !m) {
      results.trainer.error = `trainer failed (exit ${p.status}): ${text.trim().split('\n').slice(-5).join(' | ')}`;
      log(results.trainer.error);
      break;
    }
    results.trainer.ours.push(Number(m[1]));
    log('trainer epoch', Number(m[1]), 'img/s');
  }
  const py = path.join(benchDir, '.venv/bin/python');
  if (skip.has('torch') || !fs.existsSync(py)) return log('no PyTorch venv: skipped');
  results.trainer.torch = [];
  for (const threads of [1, 2]) {
    const p = spawnSync(
      py, [path.join(benchDir, 'torch_train.py'), '--data', utk, '--limit', '1000', '--epochs', String(ROUNDS.epochs),
        '--threads', String(threads), '--batch', '64'],
      { cwd: root, encoding: 'utf8' },
    );
    if (p.status !== 0) {
      results.trainer.torchError = p.stderr.trim().split('\n').slice(-3).join(' | ');
      return log(results.trainer.torchError);
    }
    const j = JSON.parse(p.stdout.trim().split('\n').pop());
    results.versions.torch = j.torch;
    results.trainer.torch.push(j);
    log('torch', threads, 'threads', j.img_per_s.map((x) => x.toFixed(0)).join(', '), 'img/s');
  }
}

// ---- machine and versions -----------------------------------------------------------------------

function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function machine() {
  const lscpu = sh('lscpu', []) || '';
  const field = (k) => (lscpu.match(new RegExp(`^${k}:\\s*(.+)$`, 'm')) || [])[1];
  return {
    model: field('Model name') || os.cpus()[0]?.model,
    cpus: field('CPU\\(s\\)') || String(os.cpus().length),
    memory: `${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`,
    load: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    kernel: os.release(),
  };
}

function versions() {
  const lock = fs.readFileSync(path.join(root, 'Cargo.lock'), 'utf8');
  const crate = (n) => (lock.match(new RegExp(`name = "${n}"\\nversion = "([^"]+)"`)) || [])[1];
  const pkg = (n) => {
    try {
      return JSON.parse(fs.readFileSync(path.join(benchDir, 'node_modules', n, 'package.json'), 'utf8')).version;
    } catch {
      return null;
    }
  };
  return {
    rustc: sh('rustc', ['--version']),
    node: process.version,
    tract: crate('tract-core'),
    playwrightCore: pkg('playwright-core'),
    onnxruntimeWebPackage: pkg('onnxruntime-web'),
    faceapiPackage: pkg('@vladmandic/face-api'),
    tfjsBackendWasm: pkg('@tensorflow/tfjs-backend-wasm'),
  };
}

// ---- the report ---------------------------------------------------------------------------------

function report(R) {
  const L = [];
  const p = (s = '') => L.push(s);
  const M = R.models || {};
  const S = (k) => (M[k] ? stats(M[k]) : null);
  const Rt = (a, b) => (M[a] && M[b] ? ratio(M[a], M[b]) : null);
  p('# Benchmarks');
  p();
  p(`Written by \`./bench/run.sh${R.quick ? ' --quick' : ''}\` on ${R.date}${R.quick ? ' — **a --quick smoke run: too few rounds to trust**' : ''}. Regenerate it with`);
  p('`./bench/run.sh` (the full run takes tens of minutes here); the raw numbers are in `bench/out/results.json` (not committed).');
  p('Times are in ms: median (p10–p90) over the runs. Ratios are computed round by round (both sides');
  p('measured back to back in the same round) and summarised the same way: below 1 means ours is faster.');
  p();
  p('## Machine and versions');
  p();
  p(`- CPU: ${R.machine.model}, ${R.machine.cpus} CPUs, ${R.machine.memory} RAM; load average at start ${R.machine.load}`);
  p('  (a shared machine: builds or a training run may use its two cores meanwhile, which is why ratios are paired round by round).');
  const v = R.versions;
  p(`- Chromium ${v.chromium ?? 'n/a'} (headless, software only), Node ${v.node}, playwright-core ${v.playwrightCore}`);
  p(`- ours: tract-core ${v.tract} narrowed by \`tools/lean-tract/\` (the page's module; tractbench links tract as published), ${v.rustc}; wasm32 with +simd128, profile \`wasm\` (release: opt-level "s", LTO; dependencies "z" but tract-linalg 3), single thread`);
  p(`- onnxruntime-web ${v.onnxruntimeWebPackage} (wasm backend, SIMD build, 1 thread, graph optimisation "all")`);
  p(`- face-api.js: @vladmandic/face-api ${v.faceapi ?? v.faceapiPackage}; TinyFaceDetector (input 416) + AgeGenderNet`);
  p(`- PyTorch ${v.torch ?? R.trainer?.torch?.[0]?.torch ?? 'n/a'} (CPU)`);
  p(`- classifier: ${R.classifier ? `\`${R.classifier.file}\`, ${kb(R.classifier.bytes)}` : '**model/agegender.onnx missing: classifier measures skipped**'}`);
  if (R.setup) {
    const info = R.setup.ours.shippedInfo;
    p(`- shipped module (\`www/pkg\`): ${info.classifier ? `classifier embedded (${info.classifier})` : '**detector only: the shipped module has no classifier embedded, so "ours pipeline" below excludes classification**'}; tractbench loads ${R.classifier ? 'the classifier above' : 'no classifier'}`);
  }
  p(`- photos: ${R.photos.length ? R.photos.join(', ') : 'none'}; generated: ${R.photos.length ? R.sizes.join(', ') : 'none'} (the first photo scaled)`);
  p(`- rounds: ${JSON.stringify(R.rounds)}`);
  for (const [section, date] of Object.entries(R.carried || {})) {
    p(`- **${section} figures not rerun here (\`BENCH_SKIP=${section}\`): they are from the run of ${date}.**`);
  }
  p();

  // Goals.
  const goals = [];
  const oursFace = S('ours classify stage b1');
  const faFace = S('face-api age/gender b1');
  const oursFace8 = S('ours classify stage b8');
  const faFace8 = S('face-api age/gender b8');
  const coldO = R.cold?.ours?.at(-1);
  const coldF = R.cold?.faceapi?.at(-1);
  if (oursFace && faFace) {
    const r = Rt('ours classify stage b1', 'face-api age/gender b1');
    goals.push(['Per-face classifier time at or below face-api.js\'s', `ours ${fmtS(oursFace, 2)} ms vs face-api ${fmtS(faFace, 2)} ms per face (batch 1); batch 8: ${fmt(oursFace8.median / 8, 2)} vs ${fmt(faFace8.median / 8, 2)} ms per face; ratio (b1) ${fmtS(r, 2)}`, r.median <= 1]);
  }
  if (R.webcam) {
    const fps = R.webcam.rounds.map((r) => fmt(r.fps));
    goals.push(['Webcam: at least 15 frames analysed a second (fake 640x480 camera, `bench/webcam.mjs`)', `median ${fmt(R.webcam.medianFps)} (rounds ${fps.join(', ')}; above the camera's 30 some frames are analysed twice)`, R.webcam.medianFps >= 15]);
  }
  if (coldO && coldF) {
    goals.push(['Total download (gzipped) below face-api.js\'s', `ours ${kb(coldO.gzip)} (raw ${kb(coldO.raw)}) vs face-api ${kb(coldF.gzip)} (raw ${kb(coldF.raw)})`, coldO.gzip < coldF.gzip]);
  }
  for (const [name, a, b] of [
    ['detector', 'tract detector model', 'ort detector model'],
    ['classifier b1', 'tract classifier model b1', 'ort classifier model b1'],
    ['classifier b8', 'tract classifier model b8', 'ort classifier model b8'],
  ]) {
    const r = Rt(a, b);
    if (r) goals.push([`wasm tract within 1.5x of onnxruntime-web (${name})`, `tract/ORT ${fmtS(r, 2)}`, r.median <= 1.5]);
  }
  const T = R.trainer;
  if (T?.ours?.length && T.torch?.length) {
    const ours = stats(T.ours).median;
    // Against PyTorch's best thread count: on a shared machine more threads can be slower.
    const best = T.torch
      .map((t) => ({ threads: t.threads, rate: stats(t.img_per_s).median }))
      .sort((a, b) => b.rate - a.rate)[0];
    goals.push(['Trainer at least half PyTorch\'s CPU speed', `ours ${fmt(ours)} img/s vs PyTorch ${fmt(best.rate)} img/s (its best: ${best.threads} thread${best.threads > 1 ? 's' : ''}, batch 64): ${fmt(ours / best.rate, 2)}x${T.from ? ` (not rerun: the run of ${T.from})` : ''}`, ours / best.rate >= 0.5]);
  }
  p('## Against the goals');
  p();
  p('| goal | measured | met |');
  p('|---|---|---|');
  for (const [g, m, ok] of goals) p(`| ${g} | ${m} | ${ok ? 'yes' : '**no**'} |`);
  if (!goals.length) p('| (nothing measured) | | |');
  p();

  if (R.cold) {
    p('## Cold start and download');
    p();
    p('From navigation (fresh browser context, empty cache) to the first result on');
    p(`\`${R.photos[0]}\`. Ours is the real page (\`www/\`, the photo chosen with its file input, the`);
    p('wasm module with the embedded models running in its worker); face-api.js is a page that');
    p('imports its bundle, starts the tfjs wasm backend, loads both models and runs');
    p('`detectAllFaces(...).withAgeAndGender()`. Gzip sizes are `gzip -9` of each file served.');
    p();
    p('| | ready (ms) | first result (ms) | downloaded raw | gzipped |');
    p('|---|---|---|---|---|');
    for (const [name, runs] of [['ours', R.cold.ours], ['face-api.js', R.cold.faceapi]]) {
      if (!runs.length) continue;
      const last = runs.at(-1);
      p(`| ${name} | ${fmtS(stats(runs.map((r) => r.readyMs)))} | ${fmtS(stats(runs.map((r) => r.firstResultMs)))} | ${kb(last.raw)} | ${kb(last.gzip)} |`);
    }
    p();
    const phased = R.cold.ours.filter((r) => r.phases);
    if (phased.length) {
      // The worker's own clock; the photo was chosen at once, so it waited for the model.
      p('Our load phases, as the page reports them (ms): the download, the compilation left once the');
      p('last byte is in (the module compiles while it streams), the model preparation');
      p('(`new Analyzer()`) and the first analysis.');
      p();
      const names = ['download', 'compile', 'prepare', 'firstAnalysis'].filter((k) => phased.some((r) => r.phases[k] !== undefined));
      p(`| ${names.join(' | ')} |`);
      p(`|${names.map(() => '---').join('|')}|`);
      p(`| ${names.map((k) => fmtS(stats(phased.map((r) => r.phases[k]).filter(Number.isFinite)))).join(' | ')} |`);
      p();
    }
    for (const [name, runs] of [['ours', R.cold.ours], ['face-api.js', R.cold.faceapi]]) {
      if (!runs.length) continue;
      p(`<details><summary>${name}: files</summary>`);
      p();
      p('| file | raw | gzip |');
      p('|---|---|---|');
      for (const f of runs.at(-1).files.sort((a, b) => b.gzip - a.gzip)) p(`| \`${f.file}\` | ${kb(f.raw)} | ${kb(f.gzip)} |`);
      p();
      p('</details>');
      p();
    }
  }

  if (R.models) {
    p('## Models: tract (wasm) against onnxruntime-web, same page, same inputs');
    p();
    p('The same ONNX files, one inference each, single thread. "classify stage" is our whole');
    p('classification step as the pipeline runs it: crop to tensor, the model on each face **and on its');
    p('mirror image** (test-time augmentation: 2 model runs per face), decoding. face-api\'s');
    p('age/gender is `ageGenderNet.predictAgeAndGender` on 112x112 crops (its resize included).');
    p();
    p('| measure | ms | per face (ms) |');
    p('|---|---|---|');
    for (const [k, xs] of Object.entries(M)) {
      const s = stats(xs);
      const b = Number((k.match(/b(\d+)$/) || [])[1] || 0);
      p(`| ${k} | ${fmtS(s, 2)} | ${b ? fmt(s.median / b, 2) : ''} |`);
    }
    p();
    p('| ratio | median (p10–p90) |');
    p('|---|---|');
    for (const [a, b] of [
      ['tract detector model', 'ort detector model'],
      ['tract classifier model b1', 'ort classifier model b1'],
      ['tract classifier model b8', 'ort classifier model b8'],
      ['ours classify stage b1', 'face-api age/gender b1'],
      ['ours classify stage b8', 'face-api age/gender b8'],
    ]) {
      const r = Rt(a, b);
      if (r) p(`| ${a} / ${b} | ${fmtS(r, 2)} |`);
    }
    p();
  }

  if (R.perImage) {
    p('## Per image: detector and whole pipeline, ours against face-api.js');
    p();
    p('"ours detect" is the pipeline\'s detection stage (the canvas, one YuNet pass, the second look at tilted faces, NMS)');
    p('through tractbench; "ours pipeline" is the shipped `Analyzer.analyze` on the RGBA pixels');
    p('(detection, alignment, quality checks, classification). face-api: `detectAllFaces` with');
    p('TinyFaceDetector (input 416), then `.withAgeAndGender()`. Faces found: ours / face-api.');
    p();
    p('| image | size | faces | ours detect | face-api detect | ratio | ours pipeline | face-api pipeline | ratio |');
    p('|---|---|---|---|---|---|---|---|---|');
    for (const im of R.perImage) {
      const t = im.times;
      const fc = R.faceCounts?.find((f) => f.name === im.name);
      const cell = (k) => (t[k] ? fmtS(stats(t[k])) : 'n/a');
      const rr = (a, b) => (t[a] && t[b] ? fmtS(ratio(t[a], t[b]), 2) : 'n/a');
      p(`| ${im.name} | ${im.width}x${im.height} | ${fc ? `${fc.ours} / ${fc.faceapi}` : ''} | ${cell('ours detect')} | ${cell('face-api detect')} | ${rr('ours detect', 'face-api detect')} | ${cell('ours pipeline')} | ${cell('face-api pipeline')} | ${rr('ours pipeline', 'face-api pipeline')} |`);
    }
    p();
  }

  if (R.native) {
    const N = R.native;
    p('## Native tract against wasm tract: what SIMD in wasm recovers');
    p();
    p('The same code (`bench/tractbench`, same release profile), natively on this CPU (x86-64,');
    p('tract picks its AVX2/FMA kernels at run time) and in the page (wasm32 +simd128). Native runs in');
    p('a separate process, so these ratios are not paired by round.');
    p();
    p('| measure | native (ms) | wasm (ms) | wasm / native |');
    p('|---|---|---|---|');
    const pair = (label, nat, wasm) => {
      if (!nat || !wasm) return;
      const a = stats(nat);
      const b = stats(wasm);
      p(`| ${label} | ${fmtS(a, 2)} | ${fmtS(b, 2)} | ${fmt(b.median / a.median, 2)} |`);
    };
    pair('detector model', N.raw_detector, M['tract detector model']);
    pair('classifier model b1', N.raw_classifier_1, M['tract classifier model b1']);
    pair('classifier model b8', N.raw_classifier_8, M['tract classifier model b8']);
    pair('classify stage b1', N.classify_1, M['ours classify stage b1']);
    pair('classify stage b8', N.classify_8, M['ours classify stage b8']);
    for (const im of N.images || []) {
      const w = R.perImage?.find((x) => x.name === im.name);
      pair(`detect: ${im.name}`, im.detect, w?.times['ours detect']);
      pair(`pipeline: ${im.name}`, im.analyze, w?.times['ours pipeline']);
    }
    p();
  }

  if (R.trainer) {
    const T2 = R.trainer;
    p('## Trainer: ours (burn, CPU) against PyTorch (CPU), same architecture, batch 64');
    p();
    p('Ours: `cargo run --release -p trainer -- train --data utkface --limit 1000 --epochs 1`, its');
    p('reported img/s (decoding and augmentation overlapped on a second thread). PyTorch:');
    p('`bench/torch_train.py`, the architecture of `trainer/src/model.rs` (standard widths) and the');
    p('loss of `trainer/src/training/loss.rs` with AdamW, the same 1000 images decoded and resized before');
    p('timing (so PyTorch\'s figure is compute only: an upper bound for it).');
    if (T2.from) p(`**Not rerun in this run (\`BENCH_SKIP=trainer\`): these figures are from the run of ${T2.from}.**`);
    p();
    p('| trainer | img/s per epoch | median |');
    p('|---|---|---|');
    if (T2.ours.length) p(`| ours | ${T2.ours.map((x) => fmt(x)).join(', ')} | ${fmt(stats(T2.ours).median)} |`);
    if (T2.error) p(`| ours | ${T2.error.replace(/\|/g, '\\|')} | |`);
    for (const t of T2.torch || []) p(`| PyTorch, ${t.threads} thread${t.threads > 1 ? 's' : ''} | ${t.img_per_s.map((x) => fmt(x)).join(', ')} | ${fmt(stats(t.img_per_s).median)} |`);
    if (T2.torchError) p(`| PyTorch | ${T2.torchError.replace(/\|/g, '\\|')} | |`);
    p();
  }

  if (R.utk) utkReport(R.utk, p);

  p('## Where we fall short, and why');
  p();
  p(fs.existsSync(path.join(benchDir, 'ANALYSIS.md')) ? fs.readFileSync(path.join(benchDir, 'ANALYSIS.md'), 'utf8').trim() : '(see bench/ANALYSIS.md)');
  p();
  if (R.browserProblems?.length) {
    p('## Browser console errors during the run');
    p();
    for (const e of R.browserProblems) p(`- ${e}`);
    p();
  }
  return `${L.join('\n')}\n`;
}
