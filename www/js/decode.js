// Photo decoding: the browser decodes (EXIF orientation applied), a canvas gives the RGBA pixels.
// Imported by the page and, as is, by the browser test tests/web_bad_input.rs (wasm-bindgen copies
// this one file, so it must import nothing).

/** Longest side sent to the worker; larger photos are downscaled here first (memory, speed). */
export const MAX_SIDE = 4096;

/** Paints `bitmap` over the whole of `canvas` on white (transparent pixels look white on the
 * page, and are analysed so); returns the 2D context. */
export function paintPhoto(canvas, bitmap) {
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return ctx;
}

/**
 * Decodes `blob` onto `canvas` (an HTMLCanvasElement or OffscreenCanvas, resized to the photo,
 * its longest side at most MAX_SIDE). Resolves to `{ rgba, width, height, source, bitmap }`:
 * `rgba` the opaque pixels drawn (an ArrayBuffer, ready to transfer), `source` the decoded
 * `[width, height]`, `bitmap` what to repaint from (owned by the caller, who closes it).
 * Rejects with "the browser cannot read it as an image" when it is not one.
 */
export async function decodeImage(blob, canvas) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image' });
  } catch {
    throw new Error('the browser cannot read it as an image');
  }
  const source = [bitmap.width, bitmap.height];
  const k = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const width = Math.max(1, Math.round(bitmap.width * k));
  const height = Math.max(1, Math.round(bitmap.height * k));
  canvas.width = width;
  canvas.height = height;
  const rgba = paintPhoto(canvas, bitmap).getImageData(0, 0, width, height).data.buffer;
  if (k < 1) {
    // Keep only the drawn size for repainting: a 50 MP photo's full bitmap holds 200 MB.
    const drawn = await createImageBitmap(canvas);
    bitmap.close();
    bitmap = drawn;
  }
  return { rgba, width, height, source, bitmap };
}
