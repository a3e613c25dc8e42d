// Shared by run.mjs and utk.mjs: opens the benchmark page and collects its errors.

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
