// Webcam frames analysed per second (issue #17's target: at least 15 at 640x480), in headless
// Chromium with a fake camera showing the end-to-end test's still (two UTKFace faces in a 640x480
// frame, tests/artifacts/webcam-still.y4m, written by `node tests/e2e/e2e.mjs`). Each round a
// fresh browser: the page's webcam is started, given WARM_S seconds, then the frames the page
// reports analysed (its `agegender:frame` events) are counted over MEASURE_S seconds. Per round
// to stderr, the rounds and their median to stdout (JSON).
//
//   node bench/webcam.mjs [ROUNDS]     (after ./build.sh and the end-to-end test; npm ci here)
// bench/run.mjs runs it (4 rounds) after its browser section when the still is there.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serveWww } from './session.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const still = path.join(root, 'tests/artifacts/webcam-still.y4m');
if (!fs.existsSync(still)) throw new Error(`${still} is missing: run node tests/e2e/e2e.mjs first (with AGEGENDER_DATA)`);
const rounds = Number(process.argv[2] || 3);
const WARM_S = 3;
const MEASURE_S = 10;

const { proc, origin } = await serveWww();

async function round() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
      `--use-file-for-fake-video-capture=${still}`],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.grantPermissions(['camera'], { origin });
    await context.addInitScript(() => {
      window.seen = { ready: false, frames: 0, faces: 0 };
      document.addEventListener('agegender:ready', () => (window.seen.ready = true));
      document.addEventListener('agegender:frame', (e) => {
        window.seen.frames++;
        window.seen.faces = e.detail.frame.faces.length;
      });
    });
    const page = await context.newPage();
    await page.goto(origin + '/');
    await page.waitForFunction(() => window.seen.ready, null, { timeout: 120_000, polling: 100 });
    await page.click('#webcam-toggle');
    await page.waitForFunction(() => window.seen.frames > 0, null, { timeout: 60_000, polling: 50 });
    await page.waitForTimeout(WARM_S * 1000);
    const t0 = await page.evaluate(() => [window.seen.frames, performance.now()]);
    await page.waitForTimeout(MEASURE_S * 1000);
    const [frames, t1, faces, stats] = await page.evaluate(() => [
      window.seen.frames, performance.now(), window.seen.faces, document.getElementById('webcam-stats').textContent,
    ]);
    return { fps: Number((((frames - t0[0]) * 1000) / (t1 - t0[1])).toFixed(2)), faces, stats };
  } finally {
    await browser.close();
  }
}

const out = [];
try {
  for (let r = 0; r < rounds; r++) {
    out.push(await round());
    console.error('round', r + 1, JSON.stringify(out.at(-1)));
  }
} finally {
  proc.kill();
}
const fps = out.map((r) => r.fps).sort((a, b) => a - b);
console.log(JSON.stringify({ rounds: out, medianFps: fps[(fps.length - 1) >> 1] / 2 + fps[fps.length >> 1] / 2 }, null, 1));
