// "What to check": the mode (estimate, verify, age gate) and its fields, as the request the worker
// answers besides the estimate.

const $ = (id) => document.getElementById(id);

export function currentMode() {
  return document.querySelector('input[name="mode"]:checked')?.value ?? 'estimate';
}

/** `{}`, `{ claim: { age?, gender? } }` or `{ gate }` from the mode and its fields. */
export function checkRequest() {
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

/** Shows the current mode's fields and calls `onChange(request)` now and whenever the mode or a
 * field changes (typed numbers after a pause). */
export function watchModes(onChange) {
  const changed = () => {
    const mode = currentMode();
    $('verify-options').hidden = mode !== 'verify';
    $('gate-options').hidden = mode !== 'gate';
    const request = checkRequest();
    $('mode-message').textContent =
      mode === 'verify' && !request.claim ? 'Enter a stated age, a gender or both to check the faces.' : '';
    onChange(request);
  };
  for (const el of document.querySelectorAll('input[name="mode"], #stated-age, #stated-gender, #threshold')) {
    el.addEventListener('change', changed);
    if (el.type === 'number') el.addEventListener('input', debounce(changed, 300));
  }
  changed();
}

function debounce(fn, ms) {
  let timer = 0;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}
