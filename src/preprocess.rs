//! The one preprocessing path shared by the trainer, the native CLI and the wasm module: crop
//! geometry, input size and normalisation. Training and serving both go through [`warp`] and
//! [`to_nchw`], so they cannot drift apart.

use image::RgbImage;

/// Side of the square classifier input the trainer uses unless told otherwise, in pixels. A
/// model's own size is in its ONNX input shape (`Classifier::input_size`) and its card.
pub const INPUT_SIZE: u32 = 64;

/// Side of UTKFace's aligned crops: the reference frame the eye template is defined in.
pub const FRAME_SIZE: f32 = 200.0;

/// Eye centres in UTKFace's 200x200 aligned frame, image-left eye first (the subject's right eye).
/// Measured by running the detector (YuNet) over UTKFace crops (`tests/utkface_crops.rs`,
/// `measure_template`): medians over 300 crops (all detected) were [60.3, 57.0] and
/// [137.6, 56.7] (BlazeFace, before it, put them 4 px lower). UTKFace's crops are tight: the
/// eyes are 77 px apart and high in the frame.
pub const TEMPLATE_LEFT_EYE: [f32; 2] = [60.3, 57.0];
/// Image-right eye (the subject's left eye) in the same frame.
pub const TEMPLATE_RIGHT_EYE: [f32; 2] = [137.6, 56.7];

/// A similarity transform from output pixel coordinates `(u, v)` to source coordinates:
/// `x = a*u - b*v + tx`, `y = b*u + a*v + ty`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Similarity {
    pub a: f32,
    pub b: f32,
    pub tx: f32,
    pub ty: f32,
}

impl Similarity {
    /// Maps the `size` x `size` output square onto a whole UTKFace-style aligned crop of `side`
    /// pixels.
    pub fn whole_frame(side: f32, size: u32) -> Self {
        let s = side / size as f32;
        // Pixel centres: output u+0.5 maps to source (u+0.5)*s.
        Self {
            a: s,
            b: 0.0,
            tx: 0.5 * s - 0.5,
            ty: 0.5 * s - 0.5,
        }
    }

    /// Maps the output square so that the template eyes land on the given source eye centres
    /// (image-left eye first) in a `size` x `size` output. Rotation levels the eyes; scale
    /// matches UTKFace's crops.
    pub fn from_eyes(left: [f32; 2], right: [f32; 2], size: u32) -> Self {
        let k = size as f32 / FRAME_SIZE;
        let (tl, tr) = (
            [TEMPLATE_LEFT_EYE[0] * k, TEMPLATE_LEFT_EYE[1] * k],
            [TEMPLATE_RIGHT_EYE[0] * k, TEMPLATE_RIGHT_EYE[1] * k],
        );
        // Solve for the complex ratio (a + ib) = (src vector) / (template vector).
        let (dx, dy) = (tr[0] - tl[0], tr[1] - tl[1]);
        let (sx, sy) = (right[0] - left[0], right[1] - left[1]);
        let den = (dx * dx + dy * dy).max(1e-6);
        let a = (sx * dx + sy * dy) / den;
        let b = (sy * dx - sx * dy) / den;
        // Anchor the mid-point between the eyes (in pixel-centre coordinates).
        let (mu, mv) = ((tl[0] + tr[0]) / 2.0 - 0.5, (tl[1] + tr[1]) / 2.0 - 0.5);
        let (mx, my) = ((left[0] + right[0]) / 2.0, (left[1] + right[1]) / 2.0);
        Self {
            a,
            b,
            tx: mx - (a * mu - b * mv),
            ty: my - (b * mu + a * mv),
        }
    }

    /// Source coordinates of output pixel `(u, v)`.
    pub fn apply(&self, u: f32, v: f32) -> (f32, f32) {
        (
            self.a * u - self.b * v + self.tx,
            self.b * u + self.a * v + self.ty,
        )
    }

    /// Source pixels per output pixel.
    pub fn scale(&self) -> f32 {
        self.a.hypot(self.b)
    }

    /// Composes a rotation (radians), zoom (>1 shows more of the source) and shift (in output
    /// pixels) about the centre of a `size` x `size` output: the augmentation the trainer applies.
    pub fn jitter(&self, size: u32, rotation: f32, zoom: f32, shift: (f32, f32)) -> Self {
        let c = size as f32 / 2.0 - 0.5;
        let (ca, sa) = (zoom * rotation.cos(), zoom * rotation.sin());
        // Inner map: (u, v) -> R*((u, v) - c) + c + shift, then self.
        let itx = c + shift.0 - (ca * c - sa * c);
        let ity = c + shift.1 - (sa * c + ca * c);
        let (ox, oy) = self.apply(itx, ity);
        Self {
            a: self.a * ca - self.b * sa,
            b: self.b * ca + self.a * sa,
            tx: ox,
            ty: oy,
        }
    }
}

/// Resamples `src` into a `size` x `size` image through `m` (bilinear, edges replicated).
/// Where the map shrinks the source by more than 1.5x, the covered region is first
/// downscaled with a proper filter (the tent of `detect::resample`) so small crops do not alias.
pub fn warp(src: &RgbImage, m: &Similarity, size: u32) -> RgbImage {
    let (w, h) = src.dimensions();
    if w == 0 || h == 0 || size == 0 {
        return RgbImage::new(size, size);
    }
    let scale = m.scale();
    if scale > 1.5 {
        // Bounding box of the output square in source coordinates, with a small margin.
        let n = size as f32;
        let corners = [
            m.apply(-1.0, -1.0),
            m.apply(n, -1.0),
            m.apply(-1.0, n),
            m.apply(n, n),
        ];
        let x0 = corners
            .iter()
            .map(|c| c.0)
            .fold(f32::INFINITY, f32::min)
            .floor()
            .max(0.0);
        let y0 = corners
            .iter()
            .map(|c| c.1)
            .fold(f32::INFINITY, f32::min)
            .floor()
            .max(0.0);
        let x1 = corners
            .iter()
            .map(|c| c.0)
            .fold(f32::NEG_INFINITY, f32::max)
            .ceil()
            .min(w as f32);
        let y1 = corners
            .iter()
            .map(|c| c.1)
            .fold(f32::NEG_INFINITY, f32::max)
            .ceil()
            .min(h as f32);
        if x1 - x0 >= 2.0 && y1 - y0 >= 2.0 {
            let (cw, ch) = ((x1 - x0) as u32, (y1 - y0) as u32);
            let (rw, rh) = (
                ((cw as f32 / scale).round() as u32).max(1),
                ((ch as f32 / scale).round() as u32).max(1),
            );
            let small = crate::detect::resample::resize_region(
                src,
                (x0 as u32, y0 as u32),
                (cw, ch),
                (rw, rh),
                crate::detect::resample::Filter::Triangle,
            );
            let (fx, fy) = (rw as f32 / cw as f32, rh as f32 / ch as f32);
            // Source pixel centre x maps to (x - x0 + 0.5) * fx - 0.5 in the small image.
            let affine = [
                m.a * fx,
                -m.b * fx,
                (m.tx - x0 + 0.5) * fx - 0.5,
                m.b * fy,
                m.a * fy,
                (m.ty - y0 + 0.5) * fy - 0.5,
            ];
            return sample(&small, affine, size);
        }
    }
    sample(src, [m.a, -m.b, m.tx, m.b, m.a, m.ty], size)
}

/// Bilinear sampling through the affine map `x = t0*u + t1*v + t2`, `y = t3*u + t4*v + t5`.
fn sample(src: &RgbImage, t: [f32; 6], size: u32) -> RgbImage {
    let (w, h) = src.dimensions();
    let raw = src.as_raw();
    let mut out = RgbImage::new(size, size);
    let px = |xx: u32, yy: u32, c: usize| raw[((yy * w + xx) * 3) as usize + c] as f32;
    for v in 0..size {
        for u in 0..size {
            let (uf, vf) = (u as f32, v as f32);
            // NaN (from a degenerate map) clamps to 0 via `max`/`min` below rather than trapping.
            let x = (t[0] * uf + t[1] * vf + t[2]).max(0.0).min((w - 1) as f32);
            let y = (t[3] * uf + t[4] * vf + t[5]).max(0.0).min((h - 1) as f32);
            let (x0, y0) = (x.floor() as u32, y.floor() as u32);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            let (dx, dy) = (x - x0 as f32, y - y0 as f32);
            let o = out.get_pixel_mut(u, v);
            for c in 0..3 {
                let top = px(x0, y0, c) * (1.0 - dx) + px(x1, y0, c) * dx;
                let bot = px(x0, y1, c) * (1.0 - dx) + px(x1, y1, c) * dx;
                o.0[c] = (top * (1.0 - dy) + bot * dy).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// Normalises an RGB crop into the classifier's NCHW layout, values in [-1, 1].
pub fn to_nchw(img: &RgbImage) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = p.0[c] as f32 / 127.5 - 1.0;
        }
    }
    out
}

/// The `size` x `size` classifier input for an already aligned UTKFace-style crop (the whole
/// image is the frame).
pub fn aligned_crop_input(img: &RgbImage, size: u32) -> RgbImage {
    let side = img.width().min(img.height()) as f32;
    warp(img, &Similarity::whole_frame(side, size), size)
}

/// A deterministic synthetic `size` x `size` crop (a face-like pattern: skin-toned oval, dark
/// eyes and mouth, textured background), for golden input/output pairs shipped with each model.
pub fn golden_pattern(variant: u32, size: u32) -> RgbImage {
    let v = variant as f32;
    let n = size as f32;
    RgbImage::from_fn(size, size, |x, y| {
        let (u, w) = (x as f32 / n - 0.5, y as f32 / n - 0.5);
        let face = (u / 0.33).powi(2) + (w / 0.42).powi(2) < 1.0;
        let eye = ((u.abs() - 0.14).powi(2) + (w + 0.08).powi(2)) < 0.003;
        let mouth = u.abs() < 0.12 && (w - 0.2).abs() < 0.02;
        let texture = ((x as f32 * (0.3 + 0.1 * v)).sin() * (y as f32 * 0.2).cos() * 30.0) as i32;
        let base: [i32; 3] = if eye || mouth {
            [40, 30, 30]
        } else if face {
            [
                200 - 20 * variant as i32,
                160 - 15 * variant as i32,
                130 - 10 * variant as i32,
            ]
        } else {
            [60 + texture, 90 + texture, 120 + 20 * variant as i32]
        };
        image::Rgb(base.map(|c| c.clamp(0, 255) as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_eyes_maps_template_to_source_eyes() {
        let (l, r) = ([300.0, 420.0], [380.0, 400.0]);
        let m = Similarity::from_eyes(l, r, INPUT_SIZE);
        let k = INPUT_SIZE as f32 / FRAME_SIZE;
        let (x, y) = m.apply(
            TEMPLATE_LEFT_EYE[0] * k - 0.5,
            TEMPLATE_LEFT_EYE[1] * k - 0.5,
        );
        assert!(
            (x - l[0]).abs() < 1e-3 && (y - l[1]).abs() < 1e-3,
            "{x} {y}"
        );
        let (x, y) = m.apply(
            TEMPLATE_RIGHT_EYE[0] * k - 0.5,
            TEMPLATE_RIGHT_EYE[1] * k - 0.5,
        );
        assert!(
            (x - r[0]).abs() < 1e-3 && (y - r[1]).abs() < 1e-3,
            "{x} {y}"
        );
    }

    #[test]
    fn whole_frame_identity_jitter_is_noop() {
        let m = Similarity::whole_frame(200.0, INPUT_SIZE);
        let j = m.jitter(INPUT_SIZE, 0.0, 1.0, (0.0, 0.0));
        for (p, q) in [(m.a, j.a), (m.b, j.b), (m.tx, j.tx), (m.ty, j.ty)] {
            assert!((p - q).abs() < 1e-4);
        }
    }

    #[test]
    fn warp_of_uniform_image_is_uniform_and_normalised() {
        let img = RgbImage::from_pixel(200, 200, image::Rgb([255, 0, 128]));
        let out = aligned_crop_input(&img, INPUT_SIZE);
        assert_eq!(out.dimensions(), (INPUT_SIZE, INPUT_SIZE));
        assert!(out.pixels().all(|p| p.0 == [255, 0, 128]));
        let t = to_nchw(&out);
        let plane = (INPUT_SIZE * INPUT_SIZE) as usize;
        assert_eq!(t.len(), 3 * plane);
        assert!((t[0] - 1.0).abs() < 1e-6 && (t[plane] + 1.0).abs() < 1e-6);
    }

    #[test]
    fn warp_handles_degenerate_sources() {
        let img = RgbImage::new(1, 1);
        assert_eq!(
            warp(&img, &Similarity::whole_frame(1.0, 8), 8).dimensions(),
            (8, 8)
        );
        let empty = RgbImage::new(0, 0);
        assert_eq!(
            warp(&empty, &Similarity::whole_frame(1.0, 8), 8).dimensions(),
            (8, 8)
        );
    }

    #[test]
    fn warp_preserves_left_right_gradient() {
        let img = RgbImage::from_fn(200, 200, |x, _| image::Rgb([(x * 255 / 199) as u8, 0, 0]));
        let out = aligned_crop_input(&img, INPUT_SIZE);
        assert!(out.get_pixel(2, 30).0[0] < 20 && out.get_pixel(61, 30).0[0] > 235);
    }
}
