// Shared by the bench scripts: serves www/ and opens the benchmark page, collecting its errors.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Starts `tools/serve.py` on a free port: `{ proc, origin }` once it listens (kill `proc` when
 * done). */
export async function serveWww() {
  const proc = spawn('python3', [path.join(root, 'tools/serve.py'), '--port', '0'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const [line] = await once(createInterface({ input: proc.stdout }), 'line');
  return { proc, origin: new URL(line.replace(/^serving /, '')).origin };
}

/**
 * Opens `${origin}/bench-page/` in a new page of `target` (a playwright Browser or context) and
 * waits until it is ready. Page errors and console errors are collected in `problems`.
 */
export async function openBenchPage(target, origin) {
  const page = await target.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
  await page.goto(`${origin}/bench-page/`);
  await page.waitForSelector('body[data-ready="true"]');
  page.setDefaultTimeout(0);
  return { page, problems };
}
