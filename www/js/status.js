// The status line and its progress bar: the model's load phases, then which photo of a batch is
// being analysed.

const statusEl = document.getElementById('status');
const progressBox = document.getElementById('progress-box');
const progressEl = document.getElementById('progress');

/** Shows `text`; `state` is 'busy', 'idle' or 'error'. A batch passes `done` of `total`. */
export function setStatus(text, state, done, total) {
  statusEl.textContent = text;
  statusEl.dataset.state = state; // styled: errors stand out
  progressBox.classList.toggle('busy', state === 'busy');
  // A batch shows how far it got; loading and single photos show an indeterminate bar.
  if (state === 'busy' && total > 1) {
    progressEl.max = total;
    progressEl.value = done;
  } else {
    progressEl.removeAttribute('value');
  }
}

/** The status for a worker's `loading` message (the phase under way). */
export function showLoading(msg) {
  switch (msg.phase) {
    case 'download':
      if (msg.total) {
        const pct = Math.floor((100 * msg.loaded) / msg.total);
        setStatus(`Loading the model… ${pct}% of ${mb(msg.total)} MB`, 'busy', msg.loaded, msg.total);
      } else if (msg.loaded) setStatus(`Loading the model… ${mb(msg.loaded)} MB`, 'busy');
      else setStatus('Loading the model…', 'busy');
      break;
    case 'compile':
      setStatus('Compiling the model…', 'busy');
      break;
    case 'prepare':
      setStatus('Preparing the model…', 'busy');
      break;
  }
}

/** "loaded in 2.4 s: download 0.3 s, compile 0.5 s, ..." from the worker's phase timings (ms). */
export function loadTimes(phases) {
  const names = { download: 'download', compile: 'compile', prepare: 'model preparation' };
  const parts = Object.entries(names)
    .filter(([k]) => phases[k] !== undefined)
    .map(([k, name]) => `${name} ${seconds(phases[k])}`);
  const total = Object.values(phases).reduce((a, b) => a + b, 0);
  return `loaded in ${seconds(total)}: ${parts.join(', ')}`;
}

const mb = (bytes) => (bytes / 1e6).toFixed(1);
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
