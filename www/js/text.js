// The words the page shows for a face, a check and an age-gate answer: on the photo, in the list
// and in the canvas's accessible name. They reach the DOM through textContent only, never HTML.

export const VERDICTS = { consistent: 'consistent', inconsistent: 'inconsistent', cannot_tell: 'cannot tell' };

export function gateText(g) {
  const t = Math.round(g.threshold);
  return { clearly_over: `clearly over ${t}`, clearly_under: `clearly under ${t}`, check_id: 'check ID' }[g.decision];
}

function ageText(est) {
  return `${Math.round(est.age)} (${Math.round(est.age_low)}–${Math.round(est.age_high)})`;
}

function genderText(est) {
  if (!est.gender_reliable) return 'gender uncertain';
  const female = est.p_female >= 0.5;
  const p = female ? est.p_female : 1 - est.p_female;
  // Never "100%": a rounded-up certainty the model does not have.
  const conf = p >= 0.995 ? '>99' : String(Math.round(100 * p));
  return `${female ? 'female' : 'male'} ${conf}%`;
}

/** Why a face has no estimate. */
function missingReason(face, hasClassifier) {
  if (!hasClassifier) return 'no age/gender model in this build';
  if (face.quality.too_small) return 'face too small to judge';
  return 'not estimated';
}

function qualityNotes(face) {
  const notes = [];
  if (face.quality.blurry) notes.push('blurry');
  if (face.quality.cut_off) notes.push('cut off at the edge');
  return notes;
}

/** The label drawn on the photo for face `n`: one line, plus one per answer. */
export function boxLabel(n, face, check, gate, hasClassifier) {
  const est = face.estimate;
  let first;
  if (!est) first = `${n}: ${face.quality.too_small && hasClassifier ? 'too small' : 'face'}`;
  else first = `${n}: ${ageText(est)} · ${genderText(est)}${face.quality.blurry ? ' · blurry' : ''}`;
  const lines = [first];
  if (check) lines.push(VERDICTS[check.verdict]);
  if (gate) lines.push(gateText(gate));
  return lines;
}

/** The sentence in the results list for face `n`. */
export function listText(n, face, hasClassifier) {
  const est = face.estimate;
  if (!est) return `Face ${n}: no age or gender estimate (${missingReason(face, hasClassifier)}).`;
  const gender = est.gender_reliable
    ? genderText(est).replace(/ (>?\d+)%$/, ' ($1% confidence)')
    : 'gender uncertain';
  const caveats = qualityNotes(face);
  const note = caveats.length ? ` Less reliable: ${caveats.join(', ')}.` : '';
  return `Face ${n}: age ${Math.round(est.age)} (likely ${Math.round(est.age_low)}–${Math.round(est.age_high)}), ${gender}.${note}`;
}

function claimText(claim) {
  const parts = [];
  if (claim.age !== undefined) parts.push(`age ${claim.age}`);
  if (claim.gender) parts.push(claim.gender);
  return `Stated ${parts.join(', ')}`;
}

export function checkSentence(check, claim) {
  return `${claimText(claim)}: ${VERDICTS[check.verdict]} (${check.reason}).`;
}

export function gateSentence(gate) {
  const answer = gateText(gate);
  return `Age gate: ${answer.charAt(0).toUpperCase()}${answer.slice(1)} (${gate.reason}).`;
}

/** Counts like "2 consistent, 1 cannot tell" (`words` names an item). */
export function tally(items, words) {
  const counts = new Map();
  for (const it of items) counts.set(words(it), (counts.get(words(it)) ?? 0) + 1);
  return [...counts].map(([w, c]) => `${c} ${w}`).join(', ');
}

/** "14 faces found" or "no face found". */
export function facesFound(n) {
  return n === 0 ? 'no face found' : `${n} face${n === 1 ? '' : 's'} found`;
}

