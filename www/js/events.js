// The page's events: what it has loaded and shown, as `CustomEvent`s on `document`, for scripts
// that watch the page (the end-to-end test, the benchmark). README's "Page events" lists them:
//   agegender:phase   { phase, ms }  a load phase ended ('download' also has `bytes`)
//   agegender:ready   { version, info, phases, serviceWorker }  the model is ready
//   agegender:result  { index, name, state, ... }  a photo's card was drawn or re-checked
//   agegender:frame   { frame, checks, gates, frames, dropped, fps }  a webcam frame was drawn

/** Dispatches `agegender:<name>` on `document` with `detail`. */
export function emit(name, detail) {
  document.dispatchEvent(new CustomEvent(`agegender:${name}`, { detail }));
}
