// Face boxes and their labels on a canvas (a photo's or the webcam overlay), in image pixels.

import { boxLabel } from './text.js';

const BOX_COLOURS = ['#ffd400', '#00e5ff', '#ff4fd8', '#7cff4f', '#ff8a00', '#b18cff'];

/** The colour of face number `id` (1-based), on the photo and as the list's swatch. */
export function boxColour(id) {
  return BOX_COLOURS[(id - 1) % BOX_COLOURS.length];
}

/**
 * Boxes and labels for `view.faces` on `ctx` (a `width` x `height` image). `view`: `{ faces, ids,
 * checks, gates, hasClassifier }`; `ids[i]` numbers face i and picks its colour; `checks`/`gates`
 * are the worker's answers (or null).
 */
export function drawFaces(ctx, width, height, view) {
  const { faces, ids, checks, gates, hasClassifier } = view;
  const side = Math.max(width, height);
  const line = Math.max(2, Math.round(side / 400));
  ctx.lineJoin = 'round';
  ctx.textBaseline = 'top';
  faces.forEach((face, i) => {
    const [x, y, w, h] = face.box_px; // image pixels, may reach past the edges
    // Poor faces (too small, blurred) get a dashed box.
    const poor = face.quality.too_small || face.quality.blurry;
    ctx.setLineDash(poor ? [line * 3, line * 2] : []);
    ctx.lineWidth = line + 2;
    ctx.strokeStyle = 'rgba(0,0,0,0.7)';
    ctx.strokeRect(x, y, w, h);
    ctx.lineWidth = line;
    ctx.strokeStyle = boxColour(ids[i]);
    ctx.strokeRect(x, y, w, h);
    ctx.setLineDash([]);
  });

  // Labels on dark plates, above or below their box, clear of the other labels and faces; in a
  // crowd where there is no such place, just the face's number (the list has the rest).
  const placed = faces.map((f) => f.box_px);
  faces.forEach((face, i) => {
    const [x, y, w, h] = face.box_px;
    const font = Math.round(Math.min(Math.max(w * 0.16, side * 0.016), side * 0.03));
    ctx.font = `600 ${font}px system-ui, sans-serif`;
    const pad = Math.round(font * 0.25);
    const lh = Math.round(font * 1.15);
    const size = (lines) => [Math.max(...lines.map((t) => ctx.measureText(t).width)) + 2 * pad, lh * lines.length + 2 * pad];
    let lines = boxLabel(ids[i], face, checks?.[i], gates?.[i], hasClassifier);
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
      ctx.fillStyle = k === 0 ? boxColour(ids[i]) : '#ffffff';
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
