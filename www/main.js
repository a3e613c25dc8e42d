// Main thread: takes photos in (drop, picker, camera, paste, webcam), decodes them with the
// browser, hands the RGBA pixels to the worker and draws what comes back. No inference and no
// decision happens here: the worker runs the wasm pipeline and its verify/ageGate/Tracker code.
// Every string that reaches the DOM goes through textContent or setAttribute, never innerHTML.

/** Longest side sent to the worker; larger photos are downscaled here first (memory, speed). */
const MAX_SIDE = 4096;
/** Longest side of a webcam frame sent to the worker: enough for faces at arm's length. */
const WEBCAM_SIDE = 640;

const $ = (id) => document.getElementById(id);
const statusEl = $('status');
const progressBox = $('progress-box');
const progressEl = $('progress');
const resultsEl = $('results');
const template = $('result-template');

// ---- worker -----------------------------------------------------------------------------------

let worker = null;
let nextId = 1;
const pending = new Map(); // id -> { resolve, reject }
let modelVersion = '';
let modelInfo = null;

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

/** Sends one request (ArrayBuffers in `transfer` are moved, not copied); resolves to the reply. */
function ask(message, transfer = []) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, ...message }, transfer);
  });
}

/** Analyses one image with the current mode's checks; resolves to { result, checks, gates, ms }. */
function analyze(rgba, width, height, extra = {}) {
  return ask({ type: 'analyze', rgba, width, height, options: {}, ...checkRequest(), ...extra }, [rgba]);
}

function onStatus(msg) {
  switch (msg.status) {
    case 'loading':
      if (msg.stage === 'models') setStatus('Preparing the model…', 'busy');
      else if (msg.total) {
        const pct = Math.floor((100 * msg.loaded) / msg.total);
        setStatus(`Loading the model… ${pct}% of ${(msg.total / 1e6).toFixed(1)} MB`, 'busy', msg.loaded, msg.total);
      } else if (msg.loaded) setStatus(`Loading the model… ${(msg.loaded / 1e6).toFixed(1)} MB`, 'busy');
      else setStatus('Loading the model…', 'busy');
      break;
    case 'ready':
      setStatus('Ready. Drop, choose or paste photos, or start the webcam.', 'idle');
      modelVersion = msg.version;
      modelInfo = msg.info;
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

function setStatus(text, state, done, total) {
  statusEl.textContent = text;
  statusEl.dataset.state = state;
  progressBox.classList.toggle('busy', state === 'busy');
  // A batch shows how far it got; loading and single photos show an indeterminate bar.
  if (state === 'busy' && total > 1) {
    progressEl.max = total;
    progressEl.value = done;
  } else {
    progressEl.removeAttribute('value');
  }
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

// ---- modes ------------------------------------------------------------------------------------

const modeMessage = $('mode-message');

function currentMode() {
  return document.querySelector('input[name="mode"]:checked')?.value ?? 'estimate';
}

/** What the worker should check besides the estimate, from the mode and its fields. */
function checkRequest() {
  const mode = currentMode();
  if (mode === 'verify') {
    const claim = {};
    const age = $('stated-age').value.trim();
    if (age !== '') claim.age = Number(age);
    const gender = $('stated-gender').value;
    if (gender) claim.gender = gender;
    return Object.keys(claim).length ? { claim } : {};
  }
  if (mode === 'gate') {
    const t = $('threshold').value.trim();
    return { gate: t === '' ? NaN : Number(t) };
  }
  return {};
}

function claimText(claim) {
  const parts = [];
  if (claim.age !== undefined) parts.push(`age ${claim.age}`);
  if (claim.gender) parts.push(claim.gender);
  return `Stated ${parts.join(', ')}`;
}

function onModeChange() {
  const mode = currentMode();
  $('verify-options').hidden = mode !== 'verify';
  $('gate-options').hidden = mode !== 'gate';
  document.body.dataset.mode = mode;
  const req = checkRequest();
  document.body.dataset.request = JSON.stringify(req); // cards say which settings they show
  modeMessage.textContent =
    mode === 'verify' && !req.claim ? 'Enter a stated age, a gender or both to check the faces.' : '';
  recheckCards();
}

for (const el of document.querySelectorAll('input[name="mode"], #stated-age, #stated-gender, #threshold')) {
  el.addEventListener('change', onModeChange);
  if (el.type === 'number') el.addEventListener('input', debounce(onModeChange, 300));
}

function debounce(fn, ms) {
  let timer = 0;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

/** The cards already analysed get the new mode's answers (no new analysis, just the checks). */
let recheckToken = 0;
async function recheckCards() {
  const token = ++recheckToken;
  const req = checkRequest();
  for (const card of cards) {
    if (!card.analysis) continue;
    let reply;
    try {
      reply = await ask({ type: 'check', analysis: card.analysis, ...req });
    } catch {
      continue;
    }
    if (token !== recheckToken) return; // the settings changed again meanwhile
    card.reply = { ...card.reply, ...reply, request: req };
    render(card);
  }
}

// ---- input ------------------------------------------------------------------------------------

const cards = [];
let queue = Promise.resolve();
let batchTotal = 0;
let batchDone = 0;

function addFiles(files) {
  for (const file of files) {
    const card = makeCard(file.name || 'pasted image');
    batchTotal++;
    queue = queue.then(() => process(file, card)).finally(() => {
      batchDone++;
      if (batchDone === batchTotal) {
        batchDone = batchTotal = 0;
        if (document.body.dataset.ready) setStatus('Ready. Drop, choose or paste more photos.', 'idle');
      }
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
    savePng: node.querySelector('.save-png'),
    saveJson: node.querySelector('.save-json'),
    bitmap: null,
    analysis: null,
    reply: null,
  };
  node.querySelector('.result-title').textContent = name;
  node.dataset.state = 'waiting';
  card.summary.textContent = 'Waiting…';
  card.canvas.setAttribute('aria-label', `${name}: not analysed yet`);
  card.savePng.setAttribute('aria-label', `Download the annotated image of ${name}`);
  card.saveJson.setAttribute('aria-label', `Download the results for ${name} as JSON`);
  card.savePng.addEventListener('click', () => savePng(card));
  card.saveJson.addEventListener('click', () => saveJson(card));
  resultsEl.append(node);
  cards.push(card);
  return card;
}

async function process(file, card) {
  card.node.dataset.state = 'running';
  card.summary.textContent = 'Analysing…';
  const position = batchTotal > 1 ? ` (${batchDone + 1} of ${batchTotal})` : '';
  setStatus(`Analysing ${card.name}${position}…`, 'busy', batchDone, batchTotal);
  try {
    const { rgba, width, height } = await decode(file, card);
    const request = checkRequest();
    const reply = await analyze(rgba, width, height);
    card.analysis = reply.result;
    card.reply = { ...reply, request };
    render(card);
  } catch (err) {
    card.node.dataset.state = 'error';
    card.summary.textContent = `Could not analyse this file: ${err.message}`;
    card.canvas.setAttribute('aria-label', `${card.name}: not analysed`);
  }
}

/** Decodes with the browser (EXIF orientation applied), keeps the bitmap for redrawing, returns
 * opaque RGBA. */
async function decode(file, card) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  } catch {
    throw new Error('the browser cannot read it as an image');
  }
  const k = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const width = Math.max(1, Math.round(bitmap.width * k));
  const height = Math.max(1, Math.round(bitmap.height * k));
  card.bitmap = bitmap;
  const { canvas } = card;
  canvas.width = width;
  canvas.height = height;
  const ctx = paintPhoto(card);
  const rgba = ctx.getImageData(0, 0, width, height).data.buffer;
  if (k < 1) {
    // Keep only the drawn size for redrawing: a 50 MP photo's full bitmap holds 200 MB.
    card.bitmap = await createImageBitmap(canvas);
    bitmap.close();
  }
  return { rgba, width, height };
}

function paintPhoto(card) {
  const { canvas, bitmap } = card;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.fillStyle = '#fff'; // transparent pixels become white, as they look on the page
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return ctx;
}

// ---- words ------------------------------------------------------------------------------------

const BOX_COLOURS = ['#ffd400', '#00e5ff', '#ff4fd8', '#7cff4f', '#ff8a00', '#b18cff'];
const VERDICTS = { consistent: 'consistent', inconsistent: 'inconsistent', cannot_tell: 'cannot tell' };

function gateText(g) {
  const t = Math.round(g.threshold);
  return { clearly_over: `clearly over ${t}`, clearly_under: `clearly under ${t}`, check_id: 'check ID' }[g.decision];
}

function ageText(est) {
  return `${Math.round(est.age)} (${Math.round(est.age_low)}–${Math.round(est.age_high)})`;
}

function genderText(est) {
  if (!est.gender_reliable) return 'gender uncertain';
  const female = est.p_female >= 0.5;
  const p = female ? est.p_female : 1 - est.p_female;
  // Never "100%": a rounded-up certainty the model does not have.
  const conf = p >= 0.995 ? '>99' : String(Math.round(100 * p));
  return `${female ? 'female' : 'male'} ${conf}%`;
}

/** Why a face has no estimate. */
function missingReason(face) {
  if (!hasClassifier) return 'no age/gender model in this build';
  if (face.quality.too_small) return 'face too small to judge';
  return 'not estimated';
}

function qualityNotes(face) {
  const notes = [];
  if (face.quality.blurry) notes.push('blurry');
  if (face.quality.cut_off) notes.push('cut off at the edge');
  return notes;
}

/** The label drawn on the photo: one or two lines. */
function boxLabel(n, face, check, gate) {
  const est = face.estimate;
  let first;
  if (!est) first = `${n}: ${face.quality.too_small && hasClassifier ? 'too small' : 'face'}`;
  else first = `${n}: ${ageText(est)} · ${genderText(est)}${face.quality.blurry ? ' · blurry' : ''}`;
  const lines = [first];
  if (check) lines.push(VERDICTS[check.verdict]);
  if (gate) lines.push(gateText(gate));
  return lines;
}

/** The sentence in the results list. */
function listText(n, face) {
  const est = face.estimate;
  if (!est) return `Face ${n}: no age or gender estimate (${missingReason(face)}).`;
  const gender = est.gender_reliable
    ? genderText(est).replace(/ (>?\d+)%$/, ' ($1% confidence)')
    : 'gender uncertain';
  const caveats = qualityNotes(face);
  const note = caveats.length ? ` Less reliable: ${caveats.join(', ')}.` : '';
  return `Face ${n}: age ${Math.round(est.age)} (likely ${Math.round(est.age_low)}–${Math.round(est.age_high)}), ${gender}.${note}`;
}

function checkSentence(check, claim) {
  return `${claimText(claim)}: ${VERDICTS[check.verdict]} (${check.reason}).`;
}

function gateSentence(gate) {
  const answer = gateText(gate);
  return `Age gate: ${answer.charAt(0).toUpperCase()}${answer.slice(1)} (${gate.reason}).`;
}

/** Counts like "2 consistent, 1 cannot tell". */
function tally(items, key, words) {
  const counts = new Map();
  for (const it of items) counts.set(words(it), (counts.get(words(it)) ?? 0) + 1);
  return [...counts].map(([w, c]) => `${c} ${w}`).join(', ');
}

// ---- drawing ----------------------------------------------------------------------------------

/** Boxes and labels for `faces` on `ctx` (image pixels). `ids[i]` numbers face i and picks its
 * colour; `checks`/`gates` are the worker's answers (or null). */
function drawFaces(ctx, width, height, faces, ids, checks, gates) {
  const side = Math.max(width, height);
  const line = Math.max(2, Math.round(side / 400));
  ctx.lineJoin = 'round';
  ctx.textBaseline = 'top';
  faces.forEach((face, i) => {
    const [x, y, w, h] = face.box_px; // image pixels, may reach past the edges
    const colour = BOX_COLOURS[(ids[i] - 1) % BOX_COLOURS.length];
    // Poor faces (too small, blurred) get a dashed box.
    const poor = face.quality.too_small || face.quality.blurry;
    ctx.setLineDash(poor ? [line * 3, line * 2] : []);
    ctx.lineWidth = line + 2;
    ctx.strokeStyle = 'rgba(0,0,0,0.7)';
    ctx.strokeRect(x, y, w, h);
    ctx.lineWidth = line;
    ctx.strokeStyle = colour;
    ctx.strokeRect(x, y, w, h);
    ctx.setLineDash([]);
  });

  // Labels on dark plates, above or below their box, clear of the other labels and faces; in a
  // crowd where there is no such place, just the face's number (the list has the rest).
  const placed = faces.map((f) => f.box_px);
  faces.forEach((face, i) => {
    const [x, y, w, h] = face.box_px;
    const colour = BOX_COLOURS[(ids[i] - 1) % BOX_COLOURS.length];
    const font = Math.round(Math.min(Math.max(w * 0.16, side * 0.016), side * 0.03));
    ctx.font = `600 ${font}px system-ui, sans-serif`;
    const pad = Math.round(font * 0.25);
    const lh = Math.round(font * 1.15);
    const size = (lines) => [Math.max(...lines.map((t) => ctx.measureText(t).width)) + 2 * pad, lh * lines.length + 2 * pad];
    let lines = boxLabel(ids[i], face, checks?.[i], gates?.[i]);
    let [tw, th] = size(lines);
    const lx = Math.min(Math.max(0, x), Math.max(0, width - tw));
    const others = placed.filter((_, k) => k !== i);
    let spot = null;
    for (const ly of labelRows(y, h, th, line)) {
      if (ly < 0 || ly + th > height) continue;
      const r = [lx, ly, tw, th];
      if (!others.some((o) => overlap(o, r))) {
        spot = r;
        break;
      }
    }
    if (!spot) {
      lines = [String(ids[i])];
      [tw, th] = size(lines);
      spot = [Math.max(0, x), Math.max(0, y), tw, th]; // inside the box's top-left corner
    }
    placed.push(spot);
    const [sx, sy] = spot;
    ctx.fillStyle = 'rgba(0,0,0,0.78)';
    ctx.fillRect(sx, sy, tw, th);
    lines.forEach((t, k) => {
      ctx.fillStyle = k === 0 ? colour : '#ffffff';
      ctx.fillText(t, sx + pad, sy + pad + k * lh);
    });
  });
}

/** Label tops to try: just above the box, just below, then a little further out. */
function labelRows(y, h, th, line) {
  const rows = [y - th - line, y + h + line];
  for (let k = 1; k <= 2; k++) rows.push(y - th - line - k * th, y + h + line + k * th);
  return rows;
}

function overlap([ax, ay, aw, ah], [bx, by, bw, bh]) {
  return ax < bx + bw && bx < ax + aw && ay < by + bh && by < ay + ah;
}

/** List entries for `faces`: the estimate, then the check's and gate's answers with reasons. */
function listItems(faces, ids, checks, gates, claim) {
  return faces.map((face, i) => {
    const li = document.createElement('li');
    li.style.setProperty('--swatch', BOX_COLOURS[(ids[i] - 1) % BOX_COLOURS.length]);
    const main = document.createElement('span');
    main.className = 'face-text';
    main.textContent = listText(ids[i], face);
    li.append(main);
    if (checks?.[i]) li.append(answer(checkSentence(checks[i], claim), checks[i].verdict));
    if (gates?.[i]) li.append(answer(gateSentence(gates[i]), gates[i].decision));
    return li;
  });
}

function answer(text, kind) {
  const p = document.createElement('p');
  p.className = 'answer';
  p.dataset.answer = kind;
  p.textContent = text;
  return p;
}

function render(card) {
  const { canvas, list, summary, node, name, analysis, reply } = card;
  const faces = analysis.faces;
  const ids = faces.map((_, i) => i + 1);
  const { checks, gates, checkError, request } = reply;
  const ctx = paintPhoto(card);
  drawFaces(ctx, canvas.width, canvas.height, faces, ids, checks, gates);
  list.replaceChildren(...listItems(faces, ids, checks, gates, request.claim));

  const found = faces.length === 0
    ? 'no face found'
    : `${faces.length} face${faces.length === 1 ? '' : 's'} found`;
  const parts = [found];
  if (checks?.length) parts.push(tally(checks, 'verdict', (c) => VERDICTS[c.verdict]));
  if (gates?.length) parts.push(tally(gates, 'decision', gateText));
  if (checkError) parts.push(`cannot check: ${checkError}`);
  parts.push(`analysed in ${Math.round(reply.ms)} ms`);
  summary.textContent = parts.join(' · ');
  modeMessage.textContent = checkError ? `Cannot check: ${checkError}` : modeMessage.textContent;

  node.analysis = analysis; // kept for the end-to-end test's checks of the drawing
  node.checks = checks;
  node.gates = gates;
  node.dataset.request = JSON.stringify(request);
  node.dataset.state = 'done';
  node.dataset.faces = String(faces.length);
  node.dataset.ms = String(reply.ms);
  card.savePng.disabled = false;
  card.saveJson.disabled = false;
  const words = faces.map((f, i) => [listText(i + 1, f),
    checks?.[i] ? checkSentence(checks[i], request.claim) : '',
    gates?.[i] ? gateSentence(gates[i]) : ''].join(' ').trim());
  canvas.setAttribute('aria-label', `${name}: ${found}${faces.length ? '. ' + words.join(' ') : ''}`);
}

// ---- export -----------------------------------------------------------------------------------

function baseName(name) {
  return name.replace(/\.[^.]*$/, '').replace(/[^\w.-]+/g, '_') || 'photo';
}

function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function savePng(card) {
  card.canvas.toBlob((blob) => {
    if (blob) download(blob, `${baseName(card.name)}-agegender.png`);
  }, 'image/png');
}

function saveJson(card) {
  const { request, checks, gates } = card.reply;
  const doc = {
    file: card.name,
    tool: `agegender ${modelVersion}`,
    model: modelInfo,
    mode: request.claim ? 'verify' : request.gate !== undefined ? 'gate' : 'estimate',
    claim: request.claim ?? null,
    threshold: request.gate ?? null,
    analysis: card.analysis,
    verification: checks ?? null,
    age_gate: gates ?? null,
  };
  const blob = new Blob([JSON.stringify(doc, null, 2)], { type: 'application/json' });
  download(blob, `${baseName(card.name)}-agegender.json`);
}

// ---- webcam -----------------------------------------------------------------------------------

const cam = {
  stream: null,
  busy: false,
  frames: 0, // analysed
  dropped: 0, // skipped while the worker was busy
  fps: 0,
  lastDone: 0,
  grab: null, // canvas the frames are read from
};
const camSection = $('webcam');
const camVideo = $('webcam-video');
const camOverlay = $('webcam-overlay');
const camStats = $('webcam-stats');
const camToggle = $('webcam-toggle');

camToggle.addEventListener('click', () => (cam.stream ? stopWebcam() : startWebcam()));

async function startWebcam() {
  if (!navigator.mediaDevices?.getUserMedia) {
    setStatus('This browser gives the page no camera access.', 'error');
    return;
  }
  camToggle.disabled = true;
  try {
    cam.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 1280 }, height: { ideal: 720 }, facingMode: 'user' },
      audio: false,
    });
  } catch (e) {
    setStatus(`The camera could not be started: ${e.message || e.name}`, 'error');
    camToggle.disabled = false;
    return;
  }
  Object.assign(cam, { busy: false, frames: 0, dropped: 0, fps: 0, lastDone: 0 });
  await ask({ type: 'track-reset' }).catch(() => {});
  camVideo.srcObject = cam.stream;
  await camVideo.play();
  camSection.hidden = false;
  camToggle.textContent = 'Stop webcam';
  camToggle.setAttribute('aria-pressed', 'true');
  camToggle.disabled = false;
  document.body.dataset.webcam = 'running';
  camStats.textContent = 'Starting…';
  nextVideoFrame();
}

function stopWebcam() {
  for (const t of cam.stream?.getTracks() ?? []) t.stop();
  cam.stream = null;
  camVideo.srcObject = null;
  camSection.hidden = true;
  camToggle.textContent = 'Start webcam';
  camToggle.setAttribute('aria-pressed', 'false');
  document.body.dataset.webcam = 'stopped';
}

/** Called once per new video frame (requestVideoFrameCallback where there is one). */
function nextVideoFrame() {
  if (!cam.stream) return;
  if ('requestVideoFrameCallback' in camVideo) camVideo.requestVideoFrameCallback(onVideoFrame);
  else requestAnimationFrame(onVideoFrame);
}

function onVideoFrame() {
  if (!cam.stream) return;
  nextVideoFrame();
  // The worker is still on an earlier frame: drop this one rather than queue it.
  if (cam.busy) {
    cam.dropped++;
    return;
  }
  const vw = camVideo.videoWidth;
  const vh = camVideo.videoHeight;
  if (!vw || !vh) return;
  const k = Math.min(1, WEBCAM_SIDE / Math.max(vw, vh));
  const width = Math.round(vw * k);
  const height = Math.round(vh * k);
  cam.grab ??= document.createElement('canvas');
  if (cam.grab.width !== width || cam.grab.height !== height) {
    cam.grab.width = width;
    cam.grab.height = height;
  }
  const ctx = cam.grab.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(camVideo, 0, 0, width, height);
  const rgba = ctx.getImageData(0, 0, width, height).data.buffer;
  cam.busy = true;
  const request = checkRequest();
  analyze(rgba, width, height, { track: true, time: performance.now() })
    .then((reply) => {
      if (cam.stream) showWebcamFrame(reply, request);
    })
    .catch((e) => {
      camStats.textContent = `Frame not analysed: ${e.message}`;
    })
    .finally(() => {
      cam.busy = false;
    });
}

function showWebcamFrame(reply, request) {
  const now = performance.now();
  cam.frames++;
  if (cam.lastDone) {
    // Frames analysed per second, averaged over about a second.
    const inst = 1000 / Math.max(1, now - cam.lastDone);
    cam.fps = cam.fps ? cam.fps + 0.3 * (inst - cam.fps) : inst;
  }
  cam.lastDone = now;
  const frame = reply.tracked;
  const faces = frame.faces;
  const ids = faces.map((f) => f.id);
  camOverlay.width = frame.width;
  camOverlay.height = frame.height;
  const ctx = camOverlay.getContext('2d');
  ctx.clearRect(0, 0, frame.width, frame.height);
  drawFaces(ctx, frame.width, frame.height, faces, ids, reply.checks, reply.gates);
  $('webcam-faces').replaceChildren(...listItems(faces, ids, reply.checks, reply.gates, request.claim));
  const found = faces.length === 0 ? 'no face in view' : `${faces.length} face${faces.length === 1 ? '' : 's'}`;
  camStats.textContent = `${cam.fps.toFixed(1)} frames/s analysed · ${cam.dropped} skipped while busy · ${found}`;
  Object.assign(camSection.dataset, {
    frames: String(cam.frames),
    dropped: String(cam.dropped),
    fps: cam.fps.toFixed(2),
    faces: String(faces.length),
  });
  camSection.tracked = frame; // for the end-to-end test
  camSection.checks = reply.checks;
  camSection.gates = reply.gates;
}

/** Registers the service worker that lets the page reload offline, and waits for it briefly:
 * the analysis worker started next then fetches the model through it, so even a first visit is
 * cached. Never blocks the page for long and never fails it (file://, insecure origins). */
async function offlineSupport() {
  if (!('serviceWorker' in navigator)) return 'unsupported';
  try {
    await navigator.serviceWorker.register('./sw.js');
    const timeout = new Promise((resolve) => setTimeout(() => resolve('timeout'), 3000));
    return await Promise.race([navigator.serviceWorker.ready.then(() => 'ready'), timeout]);
  } catch {
    return 'unavailable';
  }
}

onModeChange();
offlineSupport().then((state) => {
  document.body.dataset.offline = state;
  startWorker();
});
