// The page: takes photos in (drop, picker, camera, paste; the webcam in js/webcam.js), decodes
// them with the browser, hands the RGBA pixels to the worker and shows what comes back. No
// inference and no decision happens here: the worker runs the wasm pipeline and its
// verify/ageGate/Tracker code. Every string that reaches the DOM goes through textContent or
// setAttribute, never innerHTML.

import { newCard, showError, showResult, showRunning } from './js/cards.js';
import { decodeImage } from './js/decode.js';
import { emit } from './js/events.js';
import { savePng, saveJson } from './js/export.js';
import { checkRequest, watchModes } from './js/modes.js';
import { loadTimes, setStatus, showLoading } from './js/status.js';
import { setUpWebcam } from './js/webcam.js';
import { analyze, ask, listen } from './js/worker-client.js';

const $ = (id) => document.getElementById(id);

/** What the worker loaded: `version` and `info` once ready. */
const model = { ready: false, version: '', info: null, simd: null, hasClassifier: false };
let serviceWorker = 'pending';

// ---- the worker's status ----------------------------------------------------------------------

function onStatus(msg) {
  switch (msg.status) {
    case 'loading':
      showLoading(msg);
      break;
    case 'phase': {
      const { phase, ms, bytes } = msg;
      emit('phase', bytes === undefined ? { phase, ms } : { phase, ms, bytes });
      break;
    }
    case 'ready':
      Object.assign(model, { ready: true, version: msg.version, info: msg.info, simd: msg.simd, hasClassifier: Boolean(msg.info?.classifier) });
      setStatus(`Ready (${loadTimes(msg.phases)}). Drop, choose or paste photos, or start the webcam.`, 'idle');
      showModelInfo();
      emit('ready', { version: msg.version, info: msg.info, phases: msg.phases, simd: msg.simd, serviceWorker });
      // The service worker's install fetches the page's 18 files: not while the module loads
      // or the photos chosen meanwhile are analysed (it slowed the first result).
      queue.finally(() => offlineSupport().then((state) => (serviceWorker = state)));
      break;
    case 'failed':
      setStatus(`The model could not be loaded: ${msg.error}`, 'error');
      break;
    case 'running':
      // The per-file status is set by process(); nothing more to say here.
      break;
  }
}

function showModelInfo() {
  const { version, info } = model;
  const parts = [`agegender ${version}`, model.simd === 'relaxed' ? 'wasm relaxed SIMD' : 'wasm SIMD'];
  if (info?.detector) parts.push(`detector: ${info.detector}`);
  parts.push(
    info?.classifier
      ? `age/gender model: ${info.classifier}`
      : 'no age/gender model in this build: faces are found, but no age or gender is estimated',
  );
  $('model-info').textContent = parts.join(' · ');
}

// ---- photos -----------------------------------------------------------------------------------

const cards = [];
let queue = Promise.resolve();
let batchTotal = 0;
let batchDone = 0;

function addFiles(files) {
  for (const file of files) {
    const card = newCard(file.name || 'pasted image', $('results'));
    card.savePng.addEventListener('click', () => savePng(card));
    card.saveJson.addEventListener('click', () => saveJson(card, model));
    cards.push(card);
    batchTotal++;
    queue = queue.then(() => process(file, card)).finally(() => {
      batchDone++;
      if (batchDone === batchTotal) {
        batchDone = batchTotal = 0;
        if (model.ready) setStatus('Ready. Drop, choose or paste more photos.', 'idle');
      }
    });
  }
}

async function process(file, card) {
  showRunning(card);
  const position = batchTotal > 1 ? ` (${batchDone + 1} of ${batchTotal})` : '';
  setStatus(`Analysing ${card.name}${position}…`, 'busy', batchDone, batchTotal);
  try {
    const { rgba, width, height, bitmap } = await decodeImage(file, card.canvas);
    card.bitmap = bitmap;
    const request = checkRequest();
    const reply = await analyze(rgba, width, height, request);
    card.analysis = reply.result;
    card.reply = { ...reply, request };
    shown(card);
  } catch (err) {
    showError(card, err.message);
    emit('result', { index: cards.indexOf(card), name: card.name, state: 'error', error: err.message });
  }
}

/** Draws a card's result and tells the page's watchers. */
function shown(card) {
  showResult(card, model.hasClassifier);
  const { result: analysis, checks, gates, checkError, request, ms } = card.reply;
  emit('result', { index: cards.indexOf(card), name: card.name, state: 'done', analysis, checks, gates, checkError, request, ms });
}

/** The cards already analysed get the new mode's answers (no new analysis, just the checks). */
let recheckToken = 0;
async function recheckCards(request) {
  const token = ++recheckToken;
  for (const card of cards) {
    if (!card.analysis) continue;
    let reply;
    try {
      reply = await ask({ type: 'check', analysis: card.analysis, ...request });
    } catch {
      continue;
    }
    if (token !== recheckToken) return; // the settings changed again meanwhile
    card.reply = { ...card.reply, ...reply, request };
    shown(card);
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

// ---- start ------------------------------------------------------------------------------------

/** Registers the service worker that lets the page reload offline, after the analysis worker is
 * ready rather than before: waiting for it cost a first visit its install time, and every visit
 * the full wait where service workers are blocked. Never fails the page (file://, insecure
 * origins). */
async function offlineSupport() {
  if (!('serviceWorker' in navigator)) return 'unsupported';
  try {
    await navigator.serviceWorker.register('./sw.js');
    await navigator.serviceWorker.ready;
    return 'ready';
  } catch {
    return 'unavailable';
  }
}

watchModes(recheckCards);
setUpWebcam(model);
// js/boot.js started the worker; what it said meanwhile comes now.
listen(onStatus, (message) => {
  setStatus(`The analysis worker could not start: ${message}`, 'error');
});
