// A card's downloads: the annotated photo as PNG, the analysis and its settings as JSON.

function baseName(name) {
  return name.replace(/\.[^.]*$/, '').replace(/[^\w.-]+/g, '_') || 'photo';
}

function download(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** The card's canvas, full size, as `<name>-agegender.png`. */
export function savePng(card) {
  card.canvas.toBlob((blob) => {
    if (blob) download(blob, `${baseName(card.name)}-agegender.png`);
  }, 'image/png');
}

/** The card's analysis, settings and answers as `<name>-agegender.json`; `model` is
 * `{ version, info }` from the worker. */
export function saveJson(card, model) {
  const { request, checks, gates } = card.reply;
  const doc = {
    file: card.name,
    tool: `agegender ${model.version}`,
    model: model.info,
    mode: request.claim ? 'verify' : request.gate !== undefined ? 'gate' : 'estimate',
    claim: request.claim ?? null,
    threshold: request.gate ?? null,
    analysis: card.analysis,
    verification: checks ?? null,
    age_gate: gates ?? null,
  };
  const blob = new Blob([JSON.stringify(doc, null, 2)], { type: 'application/json' });
  download(blob, `${baseName(card.name)}-agegender.json`);
}
