// The shipped module's `Analyzer.analyze` in headless Chromium under several option sets (detector
// working size, mirror run), round by round on the same photos, so their costs compare as ratios
// on a noisy machine. A tool for choosing defaults (bench/ANALYSIS.md), not a test.
//
//   node bench/stages.mjs [ROUNDS] [CONFIGS]
//   CONFIGS: ';'-separated JSON option objects, default: the defaults, then working size 512,
//   then working size 512 with one classifier run ('plain').
// Needs www/pkg (./build.sh) and AGEGENDER_DATA (photos/); CHROMIUM as for the e2e test.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { serveWww } from './session.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// playwright-core comes from the e2e test's packages (no second copy).
const { chromium } = createRequire(path.join(root, 'tests/e2e/package.json'))('playwright-core');
const data = path.resolve(process.env.AGEGENDER_DATA || '/work/shared/data');
const rounds = Number(process.argv[2] || 5);
const configs = (process.argv[3] || '{};{"detect":{"working_size":512}};{"detect":{"working_size":512},"mirror":"plain"}')
  .split(';')
  .map((s) => JSON.parse(s));

const { proc, origin } = await serveWww();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
});
try {
  const page = await (await browser.newContext({ bypassCSP: true })).newPage();
  await page.goto(`${origin}/pkg/agegender.js`);
  await page.evaluate(async () => {
    const m = await import('/pkg/agegender.js');
    await m.default();
    window.analyzer = new m.Analyzer();
    window.images = {};
  });
  const photos = fs.readdirSync(path.join(data, 'photos')).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort();
  for (const name of photos) {
    const b64 = fs.readFileSync(path.join(data, 'photos', name)).toString('base64');
    await page.evaluate(async ({ name, b64 }) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const bitmap = await createImageBitmap(new Blob([bytes]), { imageOrientation: 'from-image' });
      const c = new OffscreenCanvas(bitmap.width, bitmap.height);
      const ctx = c.getContext('2d');
      ctx.drawImage(bitmap, 0, 0);
      const rgba = ctx.getImageData(0, 0, c.width, c.height).data;
      window.images[name] = { rgba, width: c.width, height: c.height };
    }, { name, b64 });
  }
  // Plans for every working size first (and one warm-up run each).
  for (const options of configs) {
    await page.evaluate((o) => window.analyzer.prepare(o), options);
  }
  const times = {}; // name -> config index -> [ms]
  const faces = {};
  for (let r = 0; r <= rounds; r++) {
    for (const name of photos) {
      for (const [i, options] of configs.entries()) {
        const { ms, n } = await page.evaluate(({ name, options }) => {
          const { rgba, width, height } = window.images[name];
          const t = performance.now();
          const a = window.analyzer.analyze(rgba, width, height, options);
          return { ms: performance.now() - t, n: a.faces.length };
        }, { name, options });
        if (r === 0) continue; // warm-up round
        ((times[name] ??= {})[i] ??= []).push(ms);
        (faces[name] ??= {})[i] = n;
      }
    }
  }
  const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  console.log(`configs: ${configs.map((c, i) => `[${i}] ${JSON.stringify(c)}`).join('  ')}`);
  console.log(`${rounds} rounds; ms median (faces); ratio to [0] paired by round`);
  for (const name of photos) {
    const cells = configs.map((_, i) => {
      const t = times[name][i];
      const ratio = median(t.map((v, k) => v / times[name][0][k]));
      return `${median(t).toFixed(0).padStart(5)} (${faces[name][i]}) x${ratio.toFixed(2)}`;
    });
    console.log(`${name.padEnd(22)} ${cells.join('  ')}`);
  }
} finally {
  await browser.close();
  proc.kill();
}
