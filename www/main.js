// Main thread: takes photos in (drop, picker, camera, paste), decodes them with the browser,
// hands the RGBA pixels to the worker and draws what comes back. No inference happens here.
// Every string that reaches the DOM goes through textContent or setAttribute, never innerHTML.

/** Longest side sent to the worker; larger photos are downscaled here first (memory, speed). */
const MAX_SIDE = 4096;

const $ = (id) => document.getElementById(id);
const statusEl = $('status');
const progressBox = $('progress-box');
const resultsEl = $('results');
const template = $('result-template');

// ---- worker -----------------------------------------------------------------------------------

let worker = null;
let nextId = 1;
const pending = new Map(); // id -> { resolve, reject }

function startWorker() {
  worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  worker.onmessage = ({ data }) => {
    if (data.status) {
      onStatus(data);
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
    setStatus(`The analysis worker could not start: ${e.message || 'unknown error'}`, 'error');
    failAll(new Error('the analysis worker could not start'));
  };
}

function failAll(err) {
  for (const { reject } of pending.values()) reject(err);
  pending.clear();
}

/** After a trap the wasm instance cannot be trusted again: start a fresh worker. */
function restartWorker(why) {
  worker.terminate();
  failAll(new Error(why));
  startWorker();
}

/** Sends one image (its buffer is transferred, not copied); resolves to { result, ms }. */
function analyze(rgba, width, height) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, rgba, width, height, options: {} }, [rgba]);
  });
}

function onStatus(msg) {
  switch (msg.status) {
    case 'loading':
      setStatus('Loading the model…', 'busy');
      break;
    case 'ready':
      setStatus('Ready. Drop, choose or paste photos.', 'idle');
      showModelInfo(msg.version, msg.info);
      document.body.dataset.ready = 'true';
      break;
    case 'failed':
      setStatus(`The model could not be loaded: ${msg.error}`, 'error');
      break;
    case 'running':
      // The per-file status is set by process(); nothing more to say here.
      break;
  }
}

function setStatus(text, state) {
  statusEl.textContent = text;
  statusEl.dataset.state = state;
  progressBox.classList.toggle('busy', state === 'busy');
}

let hasClassifier = false;

function showModelInfo(version, info) {
  hasClassifier = Boolean(info?.classifier);
  const parts = [`agegender ${version}`];
  if (info?.detector) parts.push(`detector: ${info.detector}`);
  parts.push(
    info?.classifier
      ? `age/gender model: ${info.classifier}`
      : 'no age/gender model in this build: faces are found, but no age or gender is estimated',
  );
  $('model-info').textContent = parts.join(' · ');
}

// ---- input ------------------------------------------------------------------------------------

let queue = Promise.resolve();
let busyCount = 0;

function addFiles(files) {
  for (const file of files) {
    const card = makeCard(file.name || 'pasted image');
    busyCount++;
    queue = queue.then(() => process(file, card)).finally(() => {
      busyCount--;
      if (busyCount === 0 && document.body.dataset.ready) setStatus('Ready. Drop, choose or paste more photos.', 'idle');
    });
  }
}

$('choose').addEventListener('click', () => $('file').click());
$('take').addEventListener('click', () => $('camera').click());
for (const input of [$('file'), $('camera')]) {
  input.addEventListener('change', () => {
    addFiles([...input.files]);
    input.value = '';
  });
}

const drop = $('drop');
document.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
document.addEventListener('dragleave', (e) => {
  if (e.target === document.documentElement || e.relatedTarget === null) drop.classList.remove('over');
});
document.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const files = [...(e.dataTransfer?.files ?? [])];
  if (files.length) addFiles(files);
});
document.addEventListener('paste', (e) => {
  const files = [...(e.clipboardData?.files ?? [])].filter((f) => f.type.startsWith('image/'));
  if (files.length) {
    e.preventDefault();
    addFiles(files);
  }
});

// ---- one photo --------------------------------------------------------------------------------

function makeCard(name) {
  const node = template.content.firstElementChild.cloneNode(true);
  const card = {
    node,
    name,
    canvas: node.querySelector('.result-canvas'),
    summary: node.querySelector('.result-summary'),
    list: node.querySelector('.result-faces'),
  };
  node.querySelector('.result-title').textContent = name;
  node.dataset.state = 'waiting';
  card.summary.textContent = 'Waiting…';
  card.canvas.setAttribute('aria-label', `${name}: not analysed yet`);
  resultsEl.append(node);
  return card;
}

async function process(file, card) {
  card.node.dataset.state = 'running';
  card.summary.textContent = 'Analysing…';
  setStatus(`Analysing ${card.name}…`, 'busy');
  try {
    const { rgba, width, height } = await decode(file, card.canvas);
    const { result, ms } = await analyze(rgba, width, height);
    drawResult(card, result, ms);
  } catch (err) {
    card.node.dataset.state = 'error';
    card.summary.textContent = `Could not analyse this file: ${err.message}`;
    card.canvas.setAttribute('aria-label', `${card.name}: not analysed`);
  }
}

/** Decodes with the browser (EXIF orientation applied), draws the photo, returns opaque RGBA. */
async function decode(file, canvas) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  } catch {
    throw new Error('the browser cannot read it as an image');
  }
  const k = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const width = Math.max(1, Math.round(bitmap.width * k));
  const height = Math.max(1, Math.round(bitmap.height * k));
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.fillStyle = '#fff'; // transparent pixels become white, as they look on the page
  ctx.fillRect(0, 0, width, height);
  ctx.drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, width, height).data.buffer;
  return { rgba, width, height };
}

// ---- drawing ----------------------------------------------------------------------------------

const BOX_COLOURS = ['#ffd400', '#00e5ff', '#ff4fd8', '#7cff4f', '#ff8a00', '#b18cff'];

function ageText(est) {
  return `${Math.round(est.age)} (${Math.round(est.age_low)}–${Math.round(est.age_high)})`;
}

function genderText(est) {
  if (!est.gender_reliable) return 'gender uncertain';
  const female = est.p_female >= 0.5;
  const conf = Math.round(100 * (female ? est.p_female : 1 - est.p_female));
  return `${female ? 'female' : 'male'} ${conf}%`;
}

/** Why a face has no estimate. */
function missingReason(face) {
  if (!hasClassifier) return 'no age/gender model in this build';
  if (face.quality.too_small) return 'face too small to judge';
  return 'not estimated';
}

/** The short label drawn on the photo. */
function boxLabel(i, face) {
  const est = face.estimate;
  if (!est) return `${i + 1}: ${face.quality.too_small && hasClassifier ? 'too small' : 'face'}`;
  return `${i + 1}: ${ageText(est)} · ${genderText(est)}`;
}

/** The sentence in the results list. */
function listText(i, face) {
  const est = face.estimate;
  if (!est) return `Face ${i + 1}: no age or gender estimate (${missingReason(face)}).`;
  const gender = est.gender_reliable
    ? genderText(est).replace(/ (\d+)%$/, ' ($1% confidence)')
    : 'gender uncertain';
  const caveats = [];
  if (face.quality.blurry) caveats.push('blurry');
  if (face.quality.cut_off) caveats.push('cut off at the edge');
  const note = caveats.length ? ` Less reliable: ${caveats.join(', ')}.` : '';
  return `Face ${i + 1}: age ${Math.round(est.age)} (likely ${Math.round(est.age_low)}–${Math.round(est.age_high)}), ${gender}.${note}`;
}

function drawResult(card, analysis, ms) {
  const { canvas, list, summary, node, name } = card;
  const faces = analysis.faces;
  const ctx = canvas.getContext('2d');
  const side = Math.max(canvas.width, canvas.height);
  const line = Math.max(2, Math.round(side / 400));
  ctx.lineJoin = 'round';
  ctx.textBaseline = 'top';

  faces.forEach((face, i) => {
    const [x, y, w, h] = face.box_px; // image pixels, may reach past the edges
    const colour = BOX_COLOURS[i % BOX_COLOURS.length];
    ctx.lineWidth = line + 2;
    ctx.strokeStyle = 'rgba(0,0,0,0.7)';
    ctx.strokeRect(x, y, w, h);
    ctx.lineWidth = line;
    ctx.strokeStyle = colour;
    ctx.strokeRect(x, y, w, h);

    // Label on a dark plate above the box (below it when there is no room above).
    const font = Math.round(Math.min(Math.max(w * 0.2, side * 0.016), side * 0.035));
    ctx.font = `600 ${font}px system-ui, sans-serif`;
    const text = boxLabel(i, face);
    const pad = Math.round(font * 0.25);
    const tw = ctx.measureText(text).width + 2 * pad;
    const th = font + 2 * pad;
    const lx = Math.min(Math.max(0, x), Math.max(0, canvas.width - tw));
    const ly = y - th - line >= 0 ? y - th - line : Math.min(y + h + line, canvas.height - th);
    ctx.fillStyle = 'rgba(0,0,0,0.78)';
    ctx.fillRect(lx, ly, tw, th);
    ctx.fillStyle = colour;
    ctx.fillText(text, lx + pad, ly + pad);
  });

  list.replaceChildren(
    ...faces.map((face, i) => {
      const li = document.createElement('li');
      li.textContent = listText(i, face);
      li.style.setProperty('--swatch', BOX_COLOURS[i % BOX_COLOURS.length]);
      return li;
    }),
  );

  const found = faces.length === 0
    ? 'no face found'
    : `${faces.length} face${faces.length === 1 ? '' : 's'} found`;
  summary.textContent = `${found} · analysed in ${Math.round(ms)} ms`;
  node.analysis = analysis; // kept for the end-to-end test's checks of the drawing
  node.dataset.state = 'done';
  node.dataset.faces = String(faces.length);
  node.dataset.ms = String(ms);
  canvas.setAttribute(
    'aria-label',
    `${name}: ${found}${faces.length ? '. ' + faces.map((f, i) => listText(i, f)).join(' ') : ''}`,
  );
}

startWorker();
