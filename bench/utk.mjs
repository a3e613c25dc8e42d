// The `utk` section of bench/run.mjs: accuracy of face-api.js and of our shipped classifier on the
// UTKFace test split, side by side. face-api.js runs in the benchmark page (headless Chromium,
// tfjs wasm backend, its bundled AgeGenderNet and TinyFaceDetector); ours runs through
// `trainer predict`, the same tract model and preprocessing the wasm module runs (a parity test
// keeps them equal). Per-image predictions go to bench/out/utk-predictions.json; the summaries to
// results.json under `utk`.

import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { openBenchPage } from './session.mjs';

// ---- the split: trainer/src/dataset.rs (`fnv1a`, `split_of`, `parse_utk_name`) in JS -------------

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const U64 = (1n << 64n) - 1n;

/** FNV-1a, 64 bit, of the UTF-8 bytes of `s` (as `dataset::fnv1a(name.as_bytes())`). */
export function fnv1a64(s) {
  let h = FNV_OFFSET;
  for (const b of Buffer.from(s, 'utf8')) h = ((h ^ BigInt(b)) * FNV_PRIME) & U64;
  return h;
}

/** `dataset::split_of`: FNV-1a of the file name (no directories) mod 100; 0-79 train, 80-89 val, 90-99 test. */
export function splitOf(name) {
  const m = Number(fnv1a64(name) % 100n);
  return m < 80 ? 'train' : m < 90 ? 'val' : 'test';
}

// Known FNV-1a 64 vectors, so that a broken port fails loudly rather than picking another split.
for (const [s, h] of [['', 0xcbf29ce484222325n], ['a', 0xaf63dc4c8601ec8cn], ['foobar', 0x85944171f73967e8n]]) {
  if (fnv1a64(s) !== h) throw new Error(`fnv1a64(${JSON.stringify(s)}) = ${fnv1a64(s).toString(16)}, expected ${h.toString(16)}`);
}

export const RACES = ['white', 'black', 'asian', 'indian', 'others'];
export const BANDS = [['0-12', 0, 12], ['13-19', 13, 19], ['20-39', 20, 39], ['40-59', 40, 59], ['60+', 60, Infinity]];

/** `dataset::parse_utk_name`: `age_gender_race_datetime.jpg.chip.jpg`; race may be missing (null); else null. */
export function parseUtkName(name) {
  const f = name.split('_');
  if (f.length < 3 || !/^\d+$/.test(f[0])) return null;
  const age = Number(f[0]);
  if (age > 120 || (f[1] !== '0' && f[1] !== '1')) return null;
  let race = null;
  if (f.length >= 4) {
    if (!/^\d+$/.test(f[2]) || Number(f[2]) > 4) return null;
    race = Number(f[2]);
  }
  return { age, gender: Number(f[1]), race };
}

/** The test split of a UTKFace folder: [{ name, age, gender, race }], by name; malformed names skipped. */
export function testSplit(dir) {
  const all = fs.readdirSync(dir).filter((n) => /\.(jpe?g|png)$/i.test(n)).sort();
  const malformed = [];
  const test = [];
  for (const name of all) {
    const label = parseUtkName(name);
    if (!label) malformed.push(name);
    else if (splitOf(name) === 'test') test.push({ name, ...label });
  }
  return { files: all.length, malformed, test };
}

// UTKFace's aligned-and-cropped set has 23,708 files, 2,303 of them in the test split (the count
// `trainer eval` reports): with the full set anything else means the port above is wrong.
const UTK_FILES = 23708;
const UTK_TEST = 2303;
// `padded`: the crop centred on a mid-grey canvas this many crop widths larger on each side (200 -> 600).
const PAD = 1;

// ---- metrics ------------------------------------------------------------------------------------

const bandOf = (age) => BANDS.find(([, lo, hi]) => age >= lo && age <= hi)[0];

/**
 * rows: [{ age, gender, race, pred: { age, pFemale, reliable? } | null }].
 * Gender accuracy is forced choice (P(female) >= 0.5 on every face with a prediction); where the
 * model can withhold gender (`reliable`), also the share withheld and the accuracy where shown.
 */
function metrics(rows) {
  const withPred = rows.filter((r) => r.pred);
  const n = withPred.length;
  const out = { n: rows.length, predicted: n };
  if (!n) return out;
  const right = (r) => (r.pred.pFemale >= 0.5) === (r.gender === 1);
  out.ageMae = withPred.reduce((s, r) => s + Math.abs(r.pred.age - r.age), 0) / n;
  out.ageBias = withPred.reduce((s, r) => s + (r.pred.age - r.age), 0) / n;
  out.genderAccuracy = withPred.filter(right).length / n;
  if (withPred.some((r) => r.pred.reliable !== undefined)) {
    const shown = withPred.filter((r) => r.pred.reliable);
    out.genderWithheld = 1 - shown.length / n;
    out.genderAccuracyWhenShown = shown.length ? shown.filter(right).length / shown.length : null;
  }
  return out;
}

function breakdown(rows) {
  return {
    overall: metrics(rows),
    byAgeBand: Object.fromEntries(BANDS.map(([b]) => [b, metrics(rows.filter((r) => bandOf(r.age) === b))])),
    byEthnicity: Object.fromEntries(RACES.map((e, i) => [e, metrics(rows.filter((r) => r.race === i))])),
  };
}

// ---- the runs -----------------------------------------------------------------------------------

const fileInfo = (f, root) => {
  const body = fs.readFileSync(f);
  return {
    file: path.relative(root, f),
    bytes: body.length,
    gzip: zlib.gzipSync(body, { level: 9 }).length,
    sha256: crypto.createHash('sha256').update(body).digest('hex'),
  };
};

/** The trainer binary: AGEGENDER_TRAINER, or the project's own release build (cargo, as the trainer section). */
function trainerBinary(root, log) {
  if (process.env.AGEGENDER_TRAINER) return process.env.AGEGENDER_TRAINER;
  log('utk: cargo build --release -p trainer');
  const p = spawnSync('cargo', ['build', '--quiet', '--release', '-p', 'trainer'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (p.status !== 0) return null;
  return path.join(path.resolve(root, process.env.CARGO_TARGET_DIR || 'target'), 'release/trainer');
}

/** Ours on every file: `trainer predict [--crops] --model <classifier>`; one JSON line per image. */
function predictOurs(bin, classifierFile, files, crops, root) {
  const args = ['predict', ...(crops ? ['--crops'] : []), '--model', classifierFile, ...files];
  const p = spawnSync(bin, args, { cwd: root, encoding: 'utf8', maxBuffer: 1 << 29, stdio: ['ignore', 'pipe', 'pipe'] });
  if (p.status !== 0) throw new Error(`trainer predict failed (exit ${p.status}): ${p.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  const lines = p.stdout.trim().split('\n').map((l) => JSON.parse(l));
  if (lines.length !== files.length) throw new Error(`trainer predict: ${lines.length} lines for ${files.length} files`);
  return lines.map((l, i) => {
    if (l.path !== files[i]) throw new Error(`trainer predict: line ${i} is ${l.path}, expected ${files[i]}`);
    // Pipeline mode: `age` is present only when a face was found and large enough for an estimate.
    return l.age === undefined ? { faces: l.faces ?? 0, error: l.error } : {
      faces: l.faces, age: l.age, pFemale: l.p_female, reliable: l.gender_reliable,
    };
  });
}

/**
 * Runs the section; returns { summary (for results.json), predictions (per image) }.
 * env: { root, benchDir, data, origin, quick, classifierFile, launch (() => playwright Browser), log }.
 */
export async function utkBench(env) {
  const { root, benchDir, data, origin, quick, classifierFile, launch, log } = env;
  const dir = path.join(data, 'utkface');
  if (!fs.existsSync(dir)) {
    log('no utkface data: utk section skipped');
    return null;
  }
  const split = testSplit(dir);
  log(`utk: ${split.files} files, ${split.malformed.length} malformed names, ${split.test.length} in the test split`);
  if (split.files === UTK_FILES && split.test.length !== UTK_TEST) {
    throw new Error(`utk: ${split.test.length} test files, expected ${UTK_TEST}: the split port disagrees with trainer/src/dataset.rs`);
  }
  // A --quick smoke run: every 20th test face.
  const items = quick ? split.test.filter((_, i) => i % 20 === 0) : split.test;
  const files = items.map((it) => path.join(dir, it.name));

  const faDir = path.join(benchDir, 'node_modules/@vladmandic/face-api/model');
  const summary = {
    date: new Date().toISOString(),
    quick,
    data: dir,
    files: split.files,
    malformed: split.malformed.length,
    testFiles: split.test.length,
    evaluated: items.length,
    models: {
      ours: fileInfo(classifierFile, root),
      faceapi: ['age_gender_model-weights_manifest.json', 'age_gender_model.bin'].map((f) => fileInfo(path.join(faDir, f), root)),
    },
    seconds: {},
    modes: {},
  };
  const predictions = { date: summary.date, names: items.map((it) => it.name), modes: {} };

  // Ours on the files as they are, first, so the classifier file is read at the moment its hash was
  // taken: `crop` (no detection) and `photo` (the whole pipeline on the 200x200 image).
  const bin = trainerBinary(root, log);
  if (!bin || !fs.existsSync(bin)) throw new Error(`utk: no trainer binary (${bin})`);
  summary.trainer = path.relative(root, bin).startsWith('..') ? bin : path.relative(root, bin);
  const ours = { crop: null, photo: null, padded: [] };
  const timed = (key, f) => {
    const t0 = Date.now();
    const r = f();
    summary.seconds[key] = (summary.seconds[key] || 0) + (Date.now() - t0) / 1000;
    return r;
  };
  for (const mode of ['crop', 'photo']) {
    ours[mode] = timed(`ours ${mode}`, () => predictOurs(bin, classifierFile, files, mode === 'crop', root));
    log(`utk: ours ${mode}: ${items.length} images in ${summary.seconds[`ours ${mode}`].toFixed(1)} s`);
  }

  // face-api.js in the page, in chunks (progress in the log). `padded`: the page also returns the
  // padded canvas as PNG, and ours runs its pipeline on those very pixels (a temporary folder).
  const browser = await launch();
  const faceapi = { crop: [], photo: [], padded: [] };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'agegender-utk-'));
  try {
    const { page, problems } = await openBenchPage(browser, origin);
    const setup = await page.evaluate(() => window.bench.setupFaceApi());
    summary.faceapiVersion = `${setup.version} (tfjs ${setup.tfjs}, ${setup.backend} backend, SIMD ${setup.simd})`;
    summary.browser = browser.version();
    const CHUNK = 32;
    for (const mode of ['crop', 'photo', 'padded']) {
      const pad = mode === 'padded' ? PAD : 0;
      for (let i = 0; i < items.length; i += CHUNK) {
        const chunk = items.slice(i, i + CHUNK);
        const urls = chunk.map((it) => `/utk/${encodeURIComponent(it.name)}`);
        const t0 = Date.now();
        const r = await page.evaluate(([u, m, p]) => window.bench.utkFaceApi(u, m, p, p > 0), [urls, mode === 'crop' ? 'crop' : 'photo', pad]);
        summary.seconds[`face-api ${mode}`] = (summary.seconds[`face-api ${mode}`] || 0) + (Date.now() - t0) / 1000;
        faceapi[mode].push(...r.results);
        if (mode === 'padded') {
          const pngs = chunk.map((it, k) => {
            const f = path.join(tmp, `${it.name}.png`);
            fs.writeFileSync(f, Buffer.from(r.pngs[k], 'base64'));
            return f;
          });
          ours.padded.push(...timed('ours padded', () => predictOurs(bin, classifierFile, pngs, false, root)));
          for (const f of pngs) fs.rmSync(f);
        }
        if ((i / CHUNK) % 16 === 0) log(`utk: ${mode} ${Math.min(i + CHUNK, items.length)}/${items.length}`);
      }
      log(`utk: face-api ${mode}: ${items.length} images in ${summary.seconds[`face-api ${mode}`].toFixed(1)} s`);
    }
    summary.browserProblems = problems;
  } finally {
    await browser.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  if (fileInfo(classifierFile, root).sha256 !== summary.models.ours.sha256) throw new Error('utk: the classifier file changed during the run');

  for (const mode of ['crop', 'photo', 'padded']) {
    const o = (i) => (ours[mode][i].age === undefined ? null : ours[mode][i]);
    const f = (i) => faceapi[mode][i];
    const rows = (pred, idx) => idx.map((i) => ({ ...items[i], pred: pred(i) }));
    const all = items.map((_, i) => i);
    summary.modes[mode] = { ours: breakdown(rows(o, all)), faceapi: breakdown(rows(f, all)) };
    if (mode !== 'crop') {
      // The same faces for both: those where both found a face (and gave an estimate).
      const both = all.filter((i) => o(i) && f(i));
      summary.modes[mode].bothFound = { n: both.length, ours: metrics(rows(o, both)), faceapi: metrics(rows(f, both)) };
      summary.modes[mode].oursNoFace = ours[mode].filter((x) => !x.faces).length;
    }
    predictions.modes[mode] = { ours: ours[mode], faceapi: faceapi[mode] };
  }
  summary.pad = PAD;
  return { summary, predictions };
}

// ---- the report ---------------------------------------------------------------------------------

const pct = (x) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : 'n/a');
const num = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const kib = (b) => `${(b / 1024).toFixed(0)} KiB`;

/** The section for BENCHMARKS.md; `p` appends a line. */
export function utkReport(U, p) {
  const C = U.modes.crop;
  const P = U.modes.padded;
  const A = U.modes.photo;
  const ours = U.models.ours;
  const fa = U.models.faceapi;
  const faBytes = fa.reduce((s, f) => s + f.bytes, 0);
  const faGzip = fa.reduce((s, f) => s + f.gzip, 0);
  p('## Accuracy on the UTKFace test split: ours against face-api.js');
  p();
  if (U.from) p(`**Not rerun in this run (\`BENCH_SKIP=utk\`): these figures are from the run of ${U.from}.**`);
  if (U.quick) p('**A --quick smoke run: every 20th test face only.**');
  p(`The test split of \`trainer/\` (FNV-1a 64 of the file name mod 100 in 90-99; ${U.testFiles} of the ${U.files}`);
  p(`UTKFace aligned crops${U.evaluated !== U.testFiles ? `, ${U.evaluated} of them evaluated here` : ''}), labels from the file names. Ours never saw these faces in`);
  p('training. face-api.js\'s AgeGenderNet was trained on 80% of UTKFace (its own 80/20 split, with');
  p('seven other datasets): if its split is independent of ours, about 80% of these faces were in');
  p('its training set, which favours it. It advertises UTKFace age MAE 5.25 and gender accuracy 93%.');
  p();
  p('- **crop**: the 200x200 aligned crop given to the age/gender model directly, the way such');
  p('  UTKFace figures are produced. face-api.js: `nets.ageGenderNet.predictAgeAndGender(canvas)`');
  p(`  (@vladmandic/face-api ${U.faceapiVersion ?? ''}; Chromium ${U.browser ?? ''}); ours:`);
  p('  `trainer predict --crops --model model/agegender.onnx` (the tract model and preprocessing the');
  p('  page runs, mirror averaged).');
  p('- Gender "forced" is every face\'s more likely gender (face-api.js always answers). Ours also');
  p('  says "gender uncertain" for unsure predictions and faces estimated under 6: "withheld" is that');
  p('  share, "where shown" the accuracy on the rest (what the page displays).');
  p(`- Model bytes: ours \`${ours.file}\` ${kib(ours.bytes)} (gzip ${kib(ours.gzip)}; sha256 ${ours.sha256.slice(0, 12)}); face-api.js`);
  p(`  \`age_gender_model.bin\` + its manifest ${kib(faBytes)} (gzip ${kib(faGzip)}).`);
  p();
  p('| crop | n | age MAE ours | age MAE face-api | gender ours (forced) | gender face-api | ours withheld | ours where shown |');
  p('|---|---|---|---|---|---|---|---|');
  const row = (label, o, f) => p(`| ${label} | ${o.n} | ${num(o.ageMae)} | ${num(f.ageMae)} | ${pct(o.genderAccuracy)} | ${pct(f.genderAccuracy)} | ${pct(o.genderWithheld)} | ${pct(o.genderAccuracyWhenShown)} |`);
  row('**all**', C.ours.overall, C.faceapi.overall);
  for (const b of Object.keys(C.ours.byAgeBand)) row(`age ${b}`, C.ours.byAgeBand[b], C.faceapi.byAgeBand[b]);
  for (const e of Object.keys(C.ours.byEthnicity)) row(e, C.ours.byEthnicity[e], C.faceapi.byEthnicity[e]);
  const unknown = C.ours.overall.n - Object.values(C.ours.byEthnicity).reduce((s, m) => s + m.n, 0);
  p();
  if (unknown) p(`(${unknown} name${unknown > 1 ? 's lack' : ' lacks'} the ethnicity field: counted in "all" only.)`);
  p();
  if (P && A) {
    const side = 200 * (1 + 2 * (U.pad ?? 1));
    p('- **photo**: each library\'s whole pipeline, detector first, on the crop as a photo. face-api.js:');
    p('  `detectSingleFace(canvas, new TinyFaceDetectorOptions({ inputSize: 416, scoreThreshold: 0.5 })).withAgeAndGender()`;');
    p('  ours: `trainer predict` (the page\'s pipeline: YuNet, alignment by the eyes; the largest');
    p(`  face with an estimate). "padded": the crop centred on a mid-grey ${side}x${side} canvas, a face in a`);
    p('  photo (ours reads the very same pixels, as PNG); "as is": the 200x200 crop itself, a face filling');
    p('  the frame, which face-api.js\'s detector mostly misses. A face not found (or too small for an');
    p('  estimate) counts as missing: MAE and accuracy are over the faces found, and "found by both"');
    p('  compares the two on the same faces.');
    p();
    p('| photo | n | found ours | found face-api | age MAE ours | age MAE face-api | gender ours (forced) | gender face-api |');
    p('|---|---|---|---|---|---|---|---|');
    const prow = (label, o, f) => p(`| ${label} | ${o.n} | ${pct(o.predicted / o.n)} | ${pct(f.predicted / f.n)} | ${num(o.ageMae)} | ${num(f.ageMae)} | ${pct(o.genderAccuracy)} | ${pct(f.genderAccuracy)} |`);
    const both = (label, B) => p(`| ${label} | ${B.n} | | | ${num(B.ours.ageMae)} | ${num(B.faceapi.ageMae)} | ${pct(B.ours.genderAccuracy)} | ${pct(B.faceapi.genderAccuracy)} |`);
    prow('**padded: all**', P.ours.overall, P.faceapi.overall);
    for (const b of Object.keys(P.ours.byAgeBand)) prow(`padded: age ${b}`, P.ours.byAgeBand[b], P.faceapi.byAgeBand[b]);
    both('padded: found by both', P.bothFound);
    prow('**as is: all**', A.ours.overall, A.faceapi.overall);
    both('as is: found by both', A.bothFound);
    p();
  }
  p(`Wall time (s, niced, shared machine; not a speed measure): ${Object.entries(U.seconds).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}.`);
  if (U.browserProblems?.length) p(`Browser console errors: ${U.browserProblems.length} (first: ${U.browserProblems[0]}).`);
  p();
}
