// The list of faces beside a photo or the webcam view: one entry per face, its swatch in the
// face's box colour, the estimate in words, then the check's and age gate's answers.

import { boxColour } from './draw.js';
import { checkSentence, gateSentence, listText } from './text.js';

/** The list entries for `view` (as drawFaces takes it, plus the request's `claim`): the estimate,
 * then the check's and gate's answers with their reasons. */
export function listItems(view) {
  const { faces, ids, checks, gates, claim, hasClassifier } = view;
  return faces.map((face, i) => {
    const li = document.createElement('li');
    li.style.setProperty('--swatch', boxColour(ids[i]));
    const main = document.createElement('span');
    main.className = 'face-text';
    main.textContent = listText(ids[i], face, hasClassifier);
    li.append(main);
    if (checks?.[i]) li.append(answer(checkSentence(checks[i], claim), checks[i].verdict));
    if (gates?.[i]) li.append(answer(gateSentence(gates[i]), gates[i].decision));
    return li;
  });
}

function answer(text, kind) {
  const p = document.createElement('p');
  p.className = 'answer';
  p.dataset.answer = kind; // styled by kind
  p.textContent = text;
  return p;
}
