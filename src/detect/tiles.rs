//! Where the detector looks: a pyramid of scaled copies of the image, each cut into overlapping
//! windows of the model's input size. The whole image (letterboxed) finds large faces; finer
//! levels find the small faces of group photos, which the 256 px input would shrink away.

/// Smallest face (box width, in model input pixels) the BlazeFace back model finds reliably.
pub const MIN_FACE_IN: f32 = 16.0;
/// Zoom between pyramid levels: the model covers faces from `MIN_FACE_IN` up to well over
/// `ZOOM * MIN_FACE_IN` input pixels, so consecutive levels overlap in face size.
pub const ZOOM: f32 = 3.0;
/// Finer levels never upsample beyond this (nothing is gained on faces below `min_face`).
pub const MAX_SCALE: f32 = 1.0;

/// One pyramid level.
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    /// Scaled size in pixels.
    pub width: u32,
    pub height: u32,
    /// Top-left corners of the square windows, in scaled pixels.
    pub windows: Vec<[u32; 2]>,
}

impl Level {
    /// Scaled pixels per image pixel along x and y.
    pub fn factors(&self, image_width: u32, image_height: u32) -> (f32, f32) {
        (
            self.width as f32 / image_width.max(1) as f32,
            self.height as f32 / image_height.max(1) as f32,
        )
    }
}

/// Window origins along one axis of `len` scaled pixels: evenly spread, consecutive windows
/// overlapping by at least `overlap`, the last one flush with the far edge.
fn positions(len: u32, input: u32, overlap: u32) -> Vec<u32> {
    if len <= input {
        return vec![0];
    }
    let stride = input.saturating_sub(overlap).max(1);
    let n = (len - input).div_ceil(stride) + 1;
    (0..n)
        .map(|i| ((i as u64 * (len - input) as u64) / (n - 1) as u64) as u32)
        .collect()
}

/// Plans the pyramid for a `width` x `height` image and a square model `input` so that faces
/// down to `min_face` image pixels wide are searched for, with at most `max_windows` model runs.
/// Level 0 is always the whole image in one letterboxed window.
pub fn plan(width: u32, height: u32, input: u32, min_face: f32, max_windows: usize) -> Vec<Level> {
    let (w, h) = (width.max(1) as f32, height.max(1) as f32);
    let mut scale = input as f32 / w.max(h);
    let level = |scale: f32| {
        let (sw, sh) = (
            ((w * scale).round() as u32).max(1),
            ((h * scale).round() as u32).max(1),
        );
        // Tiles overlap by a third of the input: faces that large are found one level up.
        let overlap = input / 3;
        let (xs, ys) = (positions(sw, input, overlap), positions(sh, input, overlap));
        let windows = ys
            .iter()
            .flat_map(|&y| xs.iter().map(move |&x| [x, y]))
            .collect();
        Level {
            width: sw,
            height: sh,
            windows,
        }
    };
    let mut levels = vec![level(scale)];
    let mut total = 1;
    let need = (MIN_FACE_IN / min_face.max(1.0)).min(MAX_SCALE);
    while scale < need * 0.99 {
        // Do not add a level that barely zooms: it costs as much as a real one.
        scale = (scale * ZOOM).min(need.max(scale * 1.5));
        let next = level(scale);
        total += next.windows.len();
        if total > max_windows {
            break;
        }
        levels.push(next);
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_cover_with_overlap() {
        assert_eq!(positions(200, 256, 64), vec![0]);
        assert_eq!(positions(256, 256, 64), vec![0]);
        let p = positions(1000, 256, 85);
        assert_eq!(p[0], 0);
        assert_eq!(*p.last().unwrap(), 1000 - 256);
        for pair in p.windows(2) {
            assert!(pair[0] + 256 >= pair[1] + 85, "{p:?}");
        }
    }

    #[test]
    fn small_image_is_one_window() {
        let levels = plan(300, 200, 256, 40.0, 64);
        assert_eq!(levels.len(), 1);
        assert_eq!((levels[0].width, levels[0].height), (256, 171));
        assert_eq!(levels[0].windows, vec![[0, 0]]);
    }

    #[test]
    fn large_image_gets_finer_levels_within_budget() {
        let levels = plan(1920, 1440, 256, 24.0, 64);
        assert!(levels.len() >= 2, "{levels:?}");
        let total: usize = levels.iter().map(|l| l.windows.len()).sum();
        assert!(total <= 64);
        // The finest level reaches the requested face size.
        let finest = levels.last().unwrap();
        let (fx, _) = finest.factors(1920, 1440);
        assert!(MIN_FACE_IN / fx <= 24.0 + 1e-3, "{fx}");
        // Budget of one run: only the whole image.
        assert_eq!(plan(1920, 1440, 256, 24.0, 1).len(), 1);
    }
}
