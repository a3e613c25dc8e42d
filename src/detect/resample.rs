//! Downscaling a photo straight into the detector's input planes, and a face's region before
//! its crop is warped.
//!
//! Hand-written rather than `image::imageops::resize`, which measured 15-38 ms natively on the
//! shared photos (it converts every pixel to RGBA f32 through generic code), or
//! `fast_image_resize`, which measured as fast but added 320 KB gzipped to the wasm module (its
//! kernels for every pixel type and CPU). This is one separable filter on RGB bytes, written into
//! the BGR planes with no intermediate image.

use image::RgbImage;

/// Which filter a reduction uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Filter {
    /// The tent (bilinear) filter stretched over the reduction, as `imageops::FilterType::Triangle`:
    /// finer than a box at mild reductions, which keeps small faces.
    Triangle,
    /// Area averaging: at large reductions a stretched tent spans many pixels for no gain.
    Box,
}

/// For each output index, the first input index and the normalised weights of the inputs from
/// there on.
fn weights(input: usize, output: usize, filter: Filter) -> Vec<(usize, Vec<f32>)> {
    let ratio = input as f32 / output as f32;
    // Downscaling widens the kernel by the ratio; an upscale (never asked for by the canvas, but
    // valid) keeps the plain tent.
    let scale = ratio.max(1.0);
    let support = match filter {
        Filter::Triangle => scale,
        Filter::Box => scale / 2.0,
    };
    (0..output)
        .map(|o| {
            let centre = (o as f32 + 0.5) * ratio;
            let first = (centre - support).floor().max(0.0) as usize;
            let last = ((centre + support).ceil() as usize).min(input);
            let mut w: Vec<f32> = (first..last)
                .map(|i| {
                    let d = (i as f32 + 0.5 - centre).abs() / scale;
                    match filter {
                        Filter::Triangle => (1.0 - d).max(0.0),
                        Filter::Box => f32::from(u8::from(d <= 0.5)),
                    }
                })
                .collect();
            // Never zero: the input pixel under the centre lies within the support (at least
            // half a pixel wide), at most half a pixel away, so its weight is positive.
            let sum: f32 = w.iter().sum();
            w.iter_mut().for_each(|v| *v /= sum);
            (first, w)
        })
        .collect()
}

/// Resamples the RGB bytes `src` (`width` x `height`, row-major) to `out_w` x `out_h` and writes
/// them as BGR planes (0-255) into `planes` (`3 x height x width`, `canvas` = `(width, height)`)
/// at `offset`; with `transpose`, into the transposed planes (`3 x width x height`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn into_bgr_planes(
    src: &[u8],
    (width, height): (usize, usize),
    (out_w, out_h): (usize, usize),
    filter: Filter,
    planes: &mut [f32],
    (canvas_w, canvas_h): (usize, usize),
    (ox, oy): (usize, usize),
    transpose: bool,
) {
    let plane = canvas_w * canvas_h;
    let window = Window {
        stride: width,
        origin: (0, 0),
        size: (width, height),
    };
    resample(src, window, (out_w, out_h), filter, |x, y, [r, g, b]| {
        // BGR plane order.
        // Transposed: the canvas's columns are the planes' rows.
        let at = if transpose {
            (x + ox) * canvas_h + oy + y
        } else {
            (y + oy) * canvas_w + ox + x
        };
        planes[at] = to_byte(b);
        planes[plane + at] = to_byte(g);
        planes[2 * plane + at] = to_byte(r);
    });
}

/// The `width` x `height` pixels at `origin` of `img`, downscaled to `out` with `filter` (the
/// tent matches `imageops::resize` with `Triangle`, to within rounding): `preprocess::warp`'s
/// first step for faces it shrinks a lot. `imageops::resize` took about 5x as long on a
/// close-up's crops in the page's module (it converts the region to f32 RGBA through generic
/// code, built for size there).
pub(crate) fn resize_region(
    img: &RgbImage,
    origin: (u32, u32),
    (width, height): (u32, u32),
    (out_w, out_h): (u32, u32),
    filter: Filter,
) -> RgbImage {
    let (w, h) = (out_w as usize, out_h as usize);
    let mut out = vec![0u8; w * h * 3];
    let fits = origin.0.saturating_add(width) <= img.width()
        && origin.1.saturating_add(height) <= img.height();
    if fits {
        let window = Window {
            stride: img.width() as usize,
            origin: (origin.0 as usize, origin.1 as usize),
            size: (width as usize, height as usize),
        };
        resample(img.as_raw(), window, (w, h), filter, |x, y, rgb| {
            let at = (y * w + x) * 3;
            for (o, v) in out[at..at + 3].iter_mut().zip(rgb) {
                *o = to_byte(v) as u8;
            }
        });
    }
    RgbImage::from_raw(out_w, out_h, out).unwrap_or_else(|| RgbImage::new(out_w, out_h))
}

/// A rectangle of a row-major RGB byte image whose rows are `stride` pixels long.
#[derive(Clone, Copy)]
struct Window {
    stride: usize,
    origin: (usize, usize),
    size: (usize, usize),
}

/// Rounded to a byte value, as an 8-bit resized image would be. The filter's sums are never
/// negative, so `floor(v + 0.5)` rounds as `round` does, and wasm has an instruction for it
/// where `round` is a libm call.
fn to_byte(v: f32) -> f32 {
    (v + 0.5).floor().min(255.0)
}

/// The separable filter: `put(x, y, [r, g, b])` for each of the `out_w` x `out_h` output pixels
/// of `window`. The vertical pass first: each output row is a weighted sum of a few whole input
/// rows, one contiguous loop; the horizontal pass, whose taps are gathered per output pixel,
/// then runs over the output rows only instead of every input row.
fn resample(
    src: &[u8],
    window: Window,
    (out_w, out_h): (usize, usize),
    filter: Filter,
    mut put: impl FnMut(usize, usize, [f32; 3]),
) {
    let (width, height) = window.size;
    if width == 0 || height == 0 || out_w == 0 || out_h == 0 {
        return;
    }
    let cols = weights(width, out_w, filter);
    let rows = weights(height, out_h, filter);
    let (x0, y0) = window.origin;
    // One float past the row: the wasm horizontal pass loads four at a time.
    let mut acc = vec![0f32; width * 3 + 1];
    for (y, (first, w)) in rows.iter().enumerate() {
        acc.fill(0.0);
        for (k, &wk) in w.iter().enumerate() {
            let at = ((y0 + first + k) * window.stride + x0) * 3;
            add_weighted(&mut acc[..width * 3], &src[at..at + width * 3], wk);
        }
        for (x, (first, w)) in cols.iter().enumerate() {
            put(x, y, weighted_pixel(&acc, *first, w));
        }
    }
}

// rustc turns LLVM's vectorisers off at opt-level "s", which the page's module is built at (and
// the per-crate level does not survive its LTO), so the two loops below are written with wasm's
// SIMD intrinsics there: the canvas took 15-30 ms of a photo's detection natively, as scalar
// code. Lane by lane they do the same f32 multiplies and adds in the same order as the scalar
// loops (no fused multiply-add), so native and wasm results stay bit for bit equal.

/// `acc[i] += w * row[i]` for every byte of `row` (the vertical pass).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn add_weighted(acc: &mut [f32], row: &[u8], w: f32) {
    for (a, &p) in acc.iter_mut().zip(row) {
        *a += w * f32::from(p);
    }
}

/// `acc[i] += w * row[i]` for every byte of `row` (the vertical pass), 16 bytes a step.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn add_weighted(acc: &mut [f32], row: &[u8], w: f32) {
    use core::arch::wasm32::*;
    let n = acc.len().min(row.len());
    let wv = f32x4_splat(w);
    for i in (0..n / 16).map(|c| c * 16) {
        // SAFETY: i + 16 <= n, which is at most both slices' lengths; v128 loads and stores
        // need no alignment.
        unsafe {
            let bytes = v128_load(row.as_ptr().add(i).cast());
            let (lo, hi) = (
                u16x8_extend_low_u8x16(bytes),
                u16x8_extend_high_u8x16(bytes),
            );
            let quads = [
                u32x4_extend_low_u16x8(lo),
                u32x4_extend_high_u16x8(lo),
                u32x4_extend_low_u16x8(hi),
                u32x4_extend_high_u16x8(hi),
            ];
            for (k, q) in quads.into_iter().enumerate() {
                let at = acc.as_mut_ptr().add(i + 4 * k).cast::<v128>();
                let sum = f32x4_add(v128_load(at), f32x4_mul(wv, f32x4_convert_u32x4(q)));
                v128_store(at, sum);
            }
        }
    }
    for i in n / 16 * 16..n {
        acc[i] += w * f32::from(row[i]);
    }
}

/// The output pixel whose taps start at pixel `first` of the row sums `acc` (the horizontal
/// pass).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn weighted_pixel(acc: &[f32], first: usize, w: &[f32]) -> [f32; 3] {
    let (mut r, mut g, mut b) = (0f32, 0f32, 0f32);
    let taps = &acc[first * 3..(first + w.len()) * 3];
    for (&wk, p) in w.iter().zip(taps.chunks_exact(3)) {
        r += wk * p[0];
        g += wk * p[1];
        b += wk * p[2];
    }
    [r, g, b]
}

/// The output pixel whose taps start at pixel `first` of the row sums `acc` (the horizontal
/// pass): each tap's red, green and blue in one vector (its fourth lane is the next pixel's red,
/// or `acc`'s extra float, and is dropped).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn weighted_pixel(acc: &[f32], first: usize, w: &[f32]) -> [f32; 3] {
    use core::arch::wasm32::*;
    let mut sum = f32x4_splat(0.0);
    // Checked once: every tap's four floats lie in `acc`.
    let Some(taps) = acc.get(first * 3..(first + w.len()) * 3 + 1) else {
        return [0.0; 3];
    };
    for (k, &wk) in w.iter().enumerate() {
        // SAFETY: 3 * k + 4 <= 3 * w.len() + 1 = taps.len().
        let p = unsafe { v128_load(taps.as_ptr().add(3 * k).cast()) };
        sum = f32x4_add(sum, f32x4_mul(f32x4_splat(wk), p));
    }
    [
        f32x4_extract_lane::<0>(sum),
        f32x4_extract_lane::<1>(sum),
        f32x4_extract_lane::<2>(sum),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{RgbImage, imageops};

    fn planes_of(img: &RgbImage, w: u32, h: u32, filter: Filter) -> Vec<f32> {
        let side = w.max(h) as usize;
        let mut planes = vec![0f32; 3 * side * side];
        into_bgr_planes(
            img.as_raw(),
            (img.width() as usize, img.height() as usize),
            (w as usize, h as usize),
            filter,
            &mut planes,
            (side, side),
            (0, 0),
            false,
        );
        planes
    }

    /// Mean absolute difference, in grey levels, between the planes and `expected`'s pixels.
    fn mean_diff(planes: &[f32], expected: &RgbImage) -> f32 {
        let (w, h) = expected.dimensions();
        let side = w.max(h) as usize;
        let plane = side * side;
        let mut sum = 0f32;
        for (x, y, p) in expected.enumerate_pixels() {
            let at = y as usize * side + x as usize;
            for (c, v) in [(2, p.0[0]), (1, p.0[1]), (0, p.0[2])] {
                sum += (planes[c * plane + at] - f32::from(v)).abs();
            }
        }
        sum / (3 * w * h) as f32
    }

    fn texture(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let v = |k: u32| ((x * k + y * (k + 3)) % 251) as u8;
            image::Rgb([v(7), (x / 3 % 2 * 200) as u8, v(13) / 2 + (y % 17) as u8])
        })
    }

    #[test]
    fn the_tent_matches_image_crates_triangle() {
        let img = texture(301, 203);
        for (w, h) in [(150, 101), (120, 81), (301, 203)] {
            let ours = planes_of(&img, w, h, Filter::Triangle);
            let theirs = imageops::resize(&img, w, h, imageops::FilterType::Triangle);
            let d = mean_diff(&ours, &theirs);
            assert!(d < 1.0, "{w}x{h}: mean difference {d}");
        }
    }

    #[test]
    fn a_region_resizes_as_image_crates_triangle() {
        let img = texture(301, 203);
        let ours = resize_region(&img, (40, 30), (150, 120), (50, 40), Filter::Triangle);
        let region = imageops::crop_imm(&img, 40, 30, 150, 120).to_image();
        let theirs = imageops::resize(&region, 50, 40, imageops::FilterType::Triangle);
        let d: f32 = ours
            .as_raw()
            .iter()
            .zip(theirs.as_raw())
            .map(|(a, b)| (f32::from(*a) - f32::from(*b)).abs())
            .sum::<f32>()
            / ours.as_raw().len() as f32;
        assert!(d < 1.0, "mean difference {d}");
        // A window past the image's edge gives black, not a panic.
        let out = resize_region(&img, (300, 0), (5, 5), (2, 2), Filter::Triangle);
        assert_eq!(out.as_raw(), &[0; 12]);
    }

    #[test]
    fn the_box_averages_blocks() {
        // 4x4 blocks of one colour each shrink to exactly that colour.
        let img = RgbImage::from_fn(64, 32, |x, y| {
            image::Rgb([(x / 4 * 10) as u8, (y / 4 * 20) as u8, 7])
        });
        let planes = planes_of(&img, 16, 8, Filter::Box);
        let expected = RgbImage::from_fn(16, 8, |x, y| {
            image::Rgb([(x * 10) as u8, (y * 20) as u8, 7])
        });
        assert_eq!(mean_diff(&planes, &expected), 0.0);
    }

    #[test]
    fn output_lands_at_the_offset_and_leaves_the_rest() {
        // A canvas 8 wide and 6 high: rows are 8 values apart, planes 48.
        let img = RgbImage::from_pixel(10, 10, image::Rgb([30, 20, 10]));
        let mut planes = vec![-1f32; 3 * 48];
        into_bgr_planes(
            img.as_raw(),
            (10, 10),
            (4, 2),
            Filter::Triangle,
            &mut planes,
            (8, 6),
            (3, 3),
            false,
        );
        for c in 0..3 {
            for y in 0..6 {
                for x in 0..8 {
                    let v = planes[c * 48 + y * 8 + x];
                    let inside = (3..7).contains(&x) && (3..5).contains(&y);
                    assert_eq!(v, if inside { [10.0, 20.0, 30.0][c] } else { -1.0 });
                }
            }
        }
        // Empty sizes write nothing.
        into_bgr_planes(
            &[],
            (0, 0),
            (4, 2),
            Filter::Box,
            &mut planes,
            (8, 6),
            (0, 0),
            false,
        );
        // Transposed, the same pixels land at swapped coordinates.
        let mut transposed = vec![-1f32; 3 * 48];
        into_bgr_planes(
            img.as_raw(),
            (10, 10),
            (4, 2),
            Filter::Triangle,
            &mut transposed,
            (8, 6),
            (3, 3),
            true,
        );
        for c in 0..3 {
            for y in 0..6 {
                for x in 0..8 {
                    assert_eq!(transposed[c * 48 + x * 6 + y], planes[c * 48 + y * 8 + x]);
                }
            }
        }
    }
}
