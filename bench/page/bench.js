// The in-browser side of bench/run.mjs. Everything runs on this page's main thread, one library
// at a time, interleaved round by round so that all of them see the same machine noise. run.mjs
// calls the functions on `window.bench` through page.evaluate and gets plain arrays of ms back.
//
// Served paths (bench/run.mjs): /www/ (the page and its built pkg/), /tb/ (tractbench, the same
// agegender code with stage-level exports), /node_modules/ (bench/node_modules), /model/, /photos/,
// /utk/ (the UTKFace folder, for the accuracy section).

const now = () => performance.now();
const state = { images: [], crops: [] };

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

function canvasOf(w, h) {
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  return c;
}

/** Decodes the photos and makes the generated sizes (the first photo scaled, as natively). */
async function loadImages(photos, sizes) {
  const bitmaps = [];
  for (const url of photos) {
    const bmp = await createImageBitmap(new Blob([await fetchBytes(url)]), { imageOrientation: 'from-image' });
    bitmaps.push({ name: decodeURIComponent(url.split('/').pop()), bmp, w: bmp.width, h: bmp.height });
  }
  for (const s of sizes) {
    const [w, h] = s.split('x').map(Number);
    bitmaps.push({ name: `generated ${s}`, bmp: bitmaps[0].bmp, w, h });
  }
  state.images = bitmaps.map(({ name, bmp, w, h }) => {
    const canvas = canvasOf(w, h);
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(bmp, 0, 0, w, h);
    const data = ctx.getImageData(0, 0, w, h);
    return { name, width: w, height: h, canvas, rgba: new Uint8Array(data.data.buffer) };
  });
  // face-api's classifier input: 112x112 face crops.
  state.crops = Array.from({ length: 8 }, (_, k) => {
    const c = canvasOf(112, 112);
    c.getContext('2d').drawImage(state.images[0].canvas, k * 10, k * 10, 200, 200, 0, 0, 112, 112);
    return c;
  });
  return state.images.map(({ name, width, height }) => ({ name, width, height }));
}

// ---- ours: the shipped module (whole pipeline) and tractbench (models and stages) ----------------

async function setupOurs(hasClassifierFile) {
  const t0 = now();
  const pkg = await import('/www/pkg/agegender.js');
  await pkg.default();
  state.analyzer = new pkg.Analyzer();
  const shippedMs = now() - t0;
  const tb = await import('/tb/tractbench.js');
  await tb.default();
  const cls = hasClassifierFile ? await fetchBytes('/model/agegender.onnx') : new Uint8Array();
  state.tract = new tb.TractBench(cls);
  for (const img of state.images) img.tb = state.tract.addImage(img.rgba, img.width, img.height);
  return {
    shippedLoadMs: shippedMs,
    shippedInfo: state.analyzer.modelInfo(),
    tractbenchClassifier: state.tract.hasClassifier(),
  };
}

// ---- onnxruntime-web, wasm backend, single thread ------------------------------------------------

async function setupOrt(hasClassifierFile) {
  const ort = await import('/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs');
  ort.env.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  ort.env.logLevel = 'error';
  const opts = { executionProviders: ['wasm'], graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  state.ort = ort;
  state.ortDet = await ort.InferenceSession.create(await fetchBytes('/model/yunet_n.onnx'), opts);
  if (hasClassifierFile) {
    state.ortCls = await ort.InferenceSession.create(await fetchBytes('/model/agegender.onnx'), opts);
  }
  return { version: ort.env.versions?.web ?? ort.env.versions?.common ?? '?', detInputs: state.ortDet.inputNames };
}

// ---- face-api.js (@vladmandic/face-api, its bundled tfjs, wasm backend) --------------------------

async function setupFaceApi() {
  const faceapi = await import('/node_modules/@vladmandic/face-api/dist/face-api.esm.js');
  faceapi.tf.setWasmPaths('/node_modules/@tensorflow/tfjs-backend-wasm/dist/');
  await faceapi.tf.setBackend('wasm');
  await faceapi.tf.ready();
  const base = '/node_modules/@vladmandic/face-api/model/';
  await faceapi.nets.tinyFaceDetector.loadFromUri(base);
  await faceapi.nets.ageGenderNet.loadFromUri(base);
  state.faceapi = faceapi;
  state.faOpts = new faceapi.TinyFaceDetectorOptions({ inputSize: 416, scoreThreshold: 0.5 });
  return { version: faceapi.version, tfjs: faceapi.tf.version_core, backend: faceapi.tf.getBackend(), simd: await faceapi.tf.env().getAsync('WASM_HAS_SIMD_SUPPORT') };
}

// ---- the measures -------------------------------------------------------------------------------

const inputs = {};
function input(len) {
  if (!inputs[len]) {
    const a = new Float32Array(len);
    for (let i = 0; i < len; i++) a[i] = ((i * 37) % 201) / 100 - 1;
    inputs[len] = a;
  }
  return inputs[len];
}

/** Model-level and per-face measures: name -> function doing one unit of work. */
function modelMeasures() {
  const m = {};
  // One 640x480 frame, as tractbench's RAW_DETECTOR_SHAPE.
  const det = input(3 * 480 * 640);
  if (state.tract) m['tract detector model'] = () => state.tract.rawDetector(det);
  if (state.ortDet) {
    const t = new state.ort.Tensor('float32', det, [1, 3, 480, 640]);
    const name = state.ortDet.inputNames[0];
    m['ort detector model'] = () => state.ortDet.run({ [name]: t });
  }
  // The classifier's input side, from the model itself (64 for models without a tract build).
  const side = state.tract?.hasClassifier() ? state.tract.inputSize() : 64;
  for (const n of [1, 8]) {
    const x = input(n * 3 * side * side);
    if (state.tract?.hasClassifier()) {
      m[`tract classifier model b${n}`] = () => state.tract.rawClassifier(n, x);
      m[`ours classify stage b${n}`] = () => state.tract.classify(n);
    }
    if (state.ortCls) {
        const t = new state.ort.Tensor('float32', x, [n, 3, side, side]);
      m[`ort classifier model b${n}`] = () => state.ortCls.run({ input: t });
    }
  }
  if (state.faceapi) {
    const fa = state.faceapi;
    m['face-api age/gender b1'] = () => fa.nets.ageGenderNet.predictAgeAndGender(state.crops[0]);
    m['face-api age/gender b8'] = () => fa.nets.ageGenderNet.predictAgeAndGender(state.crops);
  }
  return m;
}

/** Per-image measures for image i. */
function imageMeasures(i) {
  const img = state.images[i];
  const m = {};
  if (state.tract) m['ours detect'] = () => state.tract.detect(img.tb);
  if (state.analyzer) m['ours pipeline'] = () => state.analyzer.analyze(img.rgba, img.width, img.height, {});
  if (state.faceapi) {
    const fa = state.faceapi;
    m['face-api detect'] = () => fa.detectAllFaces(img.canvas, state.faOpts);
    m['face-api pipeline'] = () => fa.detectAllFaces(img.canvas, state.faOpts).withAgeAndGender();
  }
  return m;
}

async function once(f) {
  const t0 = now();
  await f();
  return now() - t0;
}

/** `rounds` rounds; in each, every measure runs once, in order. Returns name -> [ms]. */
async function runRounds(measures, rounds) {
  const out = Object.fromEntries(Object.keys(measures).map((k) => [k, []]));
  for (const f of Object.values(measures)) await f(); // warm-up
  for (let r = 0; r < rounds; r++) {
    for (const [k, f] of Object.entries(measures)) out[k].push(await once(f));
  }
  return out;
}

/** Faces each library finds in each image (a sanity check that they do comparable work). */
async function faceCounts() {
  return Promise.all(
    state.images.map(async (img) => ({
      name: img.name,
      ours: state.analyzer?.analyze(img.rgba, img.width, img.height, {}).faces.length ?? null,
      faceapi: state.faceapi ? (await state.faceapi.detectAllFaces(img.canvas, state.faOpts)).length : null,
    })),
  );
}

/** Cold start of face-api.js alone: library, backend, models, first result on `url`. */
async function faceApiCold(url) {
  const t0 = now();
  await setupFaceApi();
  const ready = now() - t0;
  const bmp = await createImageBitmap(new Blob([await fetchBytes(url)]));
  const c = canvasOf(bmp.width, bmp.height);
  c.getContext('2d').drawImage(bmp, 0, 0);
  const faces = await state.faceapi.detectAllFaces(c, state.faOpts).withAgeAndGender();
  return { readyMs: ready, firstResultMs: now() - t0, faces: faces.length };
}

/**
 * UTKFace accuracy (bench/utk.mjs): face-api.js on each 200x200 aligned crop at `urls`, in order.
 * `crop`: AgeGenderNet on the whole crop (one batch); `photo`: TinyFaceDetector on the image as a
 * photo, then AgeGenderNet on its best face (null where none is found). `pad` > 0 centres the crop
 * on a mid-grey canvas `pad` crop widths larger on each side; `png` also returns that canvas as
 * base64 PNG (so that ours sees the same pixels).
 */
async function utkFaceApi(urls, mode, pad = 0, png = false) {
  const fa = state.faceapi;
  const canvases = [];
  for (const url of urls) {
    const bmp = await createImageBitmap(new Blob([await fetchBytes(url)]), { imageOrientation: 'from-image' });
    const p = Math.round(bmp.width * pad);
    const c = canvasOf(bmp.width + 2 * p, bmp.height + 2 * p);
    const ctx = c.getContext('2d');
    ctx.fillStyle = 'rgb(128, 128, 128)';
    ctx.fillRect(0, 0, c.width, c.height);
    ctx.drawImage(bmp, p, p);
    bmp.close();
    canvases.push(c);
  }
  const pFemale = (gender, p) => (gender === 'female' ? p : 1 - p);
  let results;
  if (mode === 'crop') {
    const r = await fa.nets.ageGenderNet.predictAgeAndGender(canvases);
    results = (Array.isArray(r) ? r : [r]).map((x) => ({ age: x.age, pFemale: pFemale(x.gender, x.genderProbability) }));
  } else {
    results = [];
    for (const c of canvases) {
      const d = await fa.detectSingleFace(c, state.faOpts).withAgeAndGender();
      results.push(d ? { age: d.age, pFemale: pFemale(d.gender, d.genderProbability), score: d.detection.score } : null);
    }
  }
  const pngs = [];
  for (const c of png ? canvases : []) {
    const blob = await new Promise((resolve) => c.toBlob(resolve, 'image/png'));
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let bin = '';
    for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    pngs.push(btoa(bin));
  }
  return { results, pngs };
}

window.bench = {
  loadImages,
  setupOurs,
  setupOrt,
  setupFaceApi,
  faceCounts,
  faceApiCold,
  runModels: (rounds) => runRounds(modelMeasures(), rounds),
  runImage: (i, rounds) => runRounds(imageMeasures(i), rounds),
  utkFaceApi,
  ua: () => navigator.userAgent,
  state, // for debugging from the console
};
document.getElementById('status').textContent = 'ready';
document.body.dataset.ready = 'true';
