// One result card per photo: its canvas (the photo with boxes and labels), a summary line, the
// face list and the download buttons.

import { paintPhoto } from './decode.js';
import { drawFaces } from './draw.js';
import { listItems } from './face-list.js';
import { VERDICTS, checkSentence, facesFound, gateSentence, gateText, listText, tally } from './text.js';

const template = document.getElementById('result-template');

/** A new card for the file `name`, waiting, at the end of `parent`. `bitmap` (set by the caller
 * once decoded) is what the canvas repaints from; `analysis` and `reply` come from the worker. */
export function newCard(name, parent) {
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
  parent.append(node);
  return card;
}

export function showRunning(card) {
  card.node.dataset.state = 'running';
  card.summary.textContent = 'Analysing…';
}

export function showError(card, message) {
  card.node.dataset.state = 'error'; // styled: the message in red, no canvas
  card.summary.textContent = `Could not analyse this file: ${message}`;
  card.canvas.setAttribute('aria-label', `${card.name}: not analysed`);
}

/** Draws and lists `card.analysis` with the answers in `card.reply`. */
export function showResult(card, hasClassifier) {
  const { canvas, list, summary, node, name, analysis, reply } = card;
  const faces = analysis.faces;
  const { checks, gates, checkError, request } = reply;
  const view = { faces, ids: faces.map((_, i) => i + 1), checks, gates, claim: request.claim, hasClassifier };
  drawFaces(paintPhoto(canvas, card.bitmap), canvas.width, canvas.height, view);
  list.replaceChildren(...listItems(view));

  const found = facesFound(faces.length);
  const parts = [found];
  if (checks?.length) parts.push(tally(checks, (c) => VERDICTS[c.verdict]));
  if (gates?.length) parts.push(tally(gates, gateText));
  if (checkError) parts.push(`cannot check: ${checkError}`);
  parts.push(`analysed in ${Math.round(reply.ms)} ms`);
  summary.textContent = parts.join(' · ');
  if (checkError) document.getElementById('mode-message').textContent = `Cannot check: ${checkError}`;

  node.dataset.state = 'done';
  card.savePng.disabled = false;
  card.saveJson.disabled = false;
  const words = faces.map((f, i) => [listText(i + 1, f, hasClassifier),
    checks?.[i] ? checkSentence(checks[i], request.claim) : '',
    gates?.[i] ? gateSentence(gates[i]) : ''].join(' ').trim());
  canvas.setAttribute('aria-label', `${name}: ${found}${faces.length ? '. ' + words.join(' ') : ''}`);
}
