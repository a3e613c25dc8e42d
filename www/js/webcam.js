// The live webcam: frames at most WEBCAM_SIDE px go to the worker's tracker, which finds the faces
// in every frame but classifies only new faces and at most one tracked face per frame, in turn
// (src/track.rs), so a frame costs at most about one classifier run however many faces are in view. A
// video frame that arrives while the worker is busy is dropped, not queued; but shortly before the
// worker is due to finish, the newest frame is read and sent, so it waits in the worker's queue
// instead of the worker idling while the page waits for, reads and sends a frame. The tracked
// faces are drawn on an overlay.

import { drawFaces } from './draw.js';
import { emit } from './events.js';
import { listItems } from './face-list.js';
import { checkRequest } from './modes.js';
import { setStatus } from './status.js';
import { analyze, ask } from './worker-client.js';

/** Longest side of a webcam frame sent to the worker: enough for faces at arm's length. */
const WEBCAM_SIDE = 640;
/** Frames are detected on a 320 px canvas (a quarter of a photo's cost): faces at arm's length
 * stay 40-60 px there, and the frame rate is what the webcam needs most. A tilted head gets one
 * turned look, not a photo's three: three took the webcam bench from 42 to 21 frames a second
 * with the still turned 25 degrees (75 upright), and the tracker smooths what one look leaves. */
const WEBCAM_OPTIONS = { detect: { working_size: 320, turned_looks: 1 } };
/** How long before the worker is due to finish (by its last analysis time) the next frame is
 * sent: about what reading and sending a frame takes. With two faces at 640x480, paired against
 * sending only to an idle worker: 1.08-1.22x the frames analysed per second, each shown about
 * 35 ms later; keeping a frame always queued gained as much but showed each frame about one
 * analysis later (bench/ANALYSIS.md). */
const LEAD_MS = 40;

const $ = (id) => document.getElementById(id);
const section = $('webcam');
const video = $('webcam-video');
const overlay = $('webcam-overlay');
const stats = $('webcam-stats');
const toggle = $('webcam-toggle');

const cam = {
  stream: null,
  inFlight: 0, // frames sent and not yet answered
  lastMs: 0, // the worker's time for the last frame
  early: 0, // timer that sends the next frame before the worker finishes
  frames: 0, // analysed
  dropped: 0, // skipped while the worker was busy
  fps: 0,
  lastDone: 0,
  grab: null, // canvas the frames are read from
  model: null,
};

/** Wires the "Start webcam" button; `model.hasClassifier` is read at each frame. */
export function setUpWebcam(model) {
  cam.model = model;
  toggle.addEventListener('click', () => (cam.stream ? stop() : start()));
}

async function start() {
  if (!navigator.mediaDevices?.getUserMedia) {
    setStatus('This browser gives the page no camera access.', 'error');
    return;
  }
  toggle.disabled = true;
  try {
    cam.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 1280 }, height: { ideal: 720 }, facingMode: 'user' },
      audio: false,
    });
  } catch (e) {
    setStatus(`The camera could not be started: ${e.message || e.name}`, 'error');
    toggle.disabled = false;
    return;
  }
  // (`inFlight` is not reset: frames sent before a stop still come back and count down.)
  Object.assign(cam, { frames: 0, dropped: 0, fps: 0, lastDone: 0 });
  await ask({ type: 'track-reset' }).catch(() => {});
  video.srcObject = cam.stream;
  await video.play();
  // The detector's plan for the frames' size is made now, not on the first frame.
  const { width, height } = frameSize();
  await ask({ type: 'prepare', options: WEBCAM_OPTIONS, width, height }).catch(() => {});
  section.hidden = false;
  toggle.textContent = 'Stop webcam';
  toggle.setAttribute('aria-pressed', 'true');
  toggle.disabled = false;
  stats.textContent = 'Starting…';
  nextVideoFrame();
}

function stop() {
  for (const t of cam.stream?.getTracks() ?? []) t.stop();
  cam.stream = null;
  video.srcObject = null;
  section.hidden = true;
  toggle.textContent = 'Start webcam';
  toggle.setAttribute('aria-pressed', 'false');
}

/** Called once per new video frame (requestVideoFrameCallback where there is one). */
function nextVideoFrame() {
  if (!cam.stream) return;
  if ('requestVideoFrameCallback' in video) video.requestVideoFrameCallback(onVideoFrame);
  else requestAnimationFrame(onVideoFrame);
}

function onVideoFrame() {
  if (!cam.stream) return;
  nextVideoFrame();
  // The worker is busy: drop this frame (the next is sent shortly before it finishes).
  if (cam.inFlight > 0) {
    cam.dropped++;
    return;
  }
  send();
}

/** Reads the newest video frame and sends it to the worker, unless one already waits there. */
function send() {
  if (!cam.stream || cam.inFlight > 1) return;
  const { width, height } = frameSize();
  if (!width || !height) return;
  cam.grab ??= document.createElement('canvas');
  if (cam.grab.width !== width || cam.grab.height !== height) {
    cam.grab.width = width;
    cam.grab.height = height;
  }
  const ctx = cam.grab.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, width, height);
  const rgba = ctx.getImageData(0, 0, width, height).data.buffer;
  // An idle worker starts on this frame now: send the next one shortly before it is done.
  if (cam.inFlight++ === 0) sendNextBeforeDone();
  const request = checkRequest();
  let answered = false;
  analyze(rgba, width, height, request, { track: true, time: performance.now(), options: WEBCAM_OPTIONS })
    .then((reply) => {
      answered = true;
      cam.lastMs = reply.ms;
      if (cam.stream) showFrame(reply, request);
    })
    .catch((e) => {
      stats.textContent = `Frame not analysed: ${e.message}`;
    })
    .finally(() => {
      // The frame waiting in the worker's queue starts now; with none waiting, send one at once.
      // After a failure the next frame waits for the video frame callback: a worker that fails
      // every request is not asked again as fast as it answers.
      if (!answered) cam.inFlight--;
      else if (--cam.inFlight === 1) sendNextBeforeDone();
      else if (cam.inFlight === 0) send();
    });
}

/** The size frames are sent at: the video's, scaled down to at most `WEBCAM_SIDE`. */
function frameSize() {
  const vw = video.videoWidth;
  const vh = video.videoHeight;
  const k = Math.min(1, WEBCAM_SIDE / Math.max(vw, vh, 1));
  return { width: Math.round(vw * k), height: Math.round(vh * k) };
}

/** Sends the next frame `LEAD_MS` before the frame the worker starts now is due to be done. */
function sendNextBeforeDone() {
  clearTimeout(cam.early);
  if (cam.lastMs > 0) cam.early = setTimeout(send, Math.max(0, cam.lastMs - LEAD_MS));
}

function showFrame(reply, request) {
  const now = performance.now();
  cam.frames++;
  if (cam.lastDone) {
    // Frames analysed per second, averaged over about a second.
    const inst = 1000 / Math.max(1, now - cam.lastDone);
    cam.fps = cam.fps ? cam.fps + 0.3 * (inst - cam.fps) : inst;
  }
  cam.lastDone = now;
  const frame = reply.tracked;
  const { faces } = frame;
  const { checks, gates } = reply;
  const view = { faces, ids: faces.map((f) => f.id), checks, gates, claim: request.claim, hasClassifier: cam.model.hasClassifier };
  overlay.width = frame.width;
  overlay.height = frame.height;
  const ctx = overlay.getContext('2d');
  ctx.clearRect(0, 0, frame.width, frame.height);
  drawFaces(ctx, frame.width, frame.height, view);
  $('webcam-faces').replaceChildren(...listItems(view));
  const found = faces.length === 0 ? 'no face in view' : `${faces.length} face${faces.length === 1 ? '' : 's'}`;
  stats.textContent = `${cam.fps.toFixed(1)} frames/s analysed · ${cam.dropped} skipped while busy · ${found}`;
  emit('frame', { frame, checks, gates, frames: cam.frames, dropped: cam.dropped, fps: cam.fps });
}
