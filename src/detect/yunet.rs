//! Decoding YuNet's outputs (the contract is in `model/DETECTOR.md`): for each stride 8, 16 and
//! 32, one anchor per cell of the canvas grid, row-major, with class and objectness scores
//! (already sigmoid), a box (centre offset in cells, log size in cells) and five keypoints
//! (offsets in cells).

use super::{Detection, KEYPOINTS};

/// The feature-map strides, finest first. The canvas is padded to a multiple of the last.
pub const STRIDES: [u32; 3] = [8, 16, 32];

/// The raw outputs of one stride, each a flat row-major slice over the grid's cells.
#[derive(Clone, Copy, Debug)]
pub struct Level<'a> {
    pub stride: u32,
    /// One class score per cell.
    pub cls: &'a [f32],
    /// One objectness score per cell.
    pub obj: &'a [f32],
    /// Four values per cell: centre x, y offsets and log width, height, in cells.
    pub bbox: &'a [f32],
    /// Ten values per cell: x, y offsets of the five keypoints, in cells.
    pub kps: &'a [f32],
}

/// The candidates of one level scoring at least `threshold`, in canvas pixels (edge
/// coordinates), on a canvas `width` pixels wide. With `transposed`, the model ran on the
/// canvas transposed (`Graph::to_typed_transposed_with`): its grid's rows are the canvas's
/// columns, and each cell's values are those of the untransposed model. Returns `None` when the
/// slices do not fit the grid (a model that is not YuNet).
pub fn decode(
    level: &Level<'_>,
    width: u32,
    height: u32,
    transposed: bool,
    threshold: f32,
) -> Option<Vec<Detection>> {
    let s = level.stride as usize;
    let (cols, rows) = ((width as usize).div_ceil(s), (height as usize).div_ceil(s));
    let cells = cols * rows;
    if level.cls.len() != cells
        || level.obj.len() != cells
        || level.bbox.len() != cells * 4
        || level.kps.len() != cells * 2 * KEYPOINTS
    {
        return None;
    }
    let sf = s as f32;
    let mut out = Vec::new();
    for i in 0..cells {
        // Clamped first: the exported sigmoid can overshoot by an ulp. NaN stays NaN and fails
        // the comparison, so it never passes.
        let score = (level.cls[i].clamp(0.0, 1.0) * level.obj[i].clamp(0.0, 1.0)).sqrt();
        if score.is_nan() || score < threshold {
            continue;
        }
        let (c, r) = if transposed {
            ((i / rows) as f32, (i % rows) as f32)
        } else {
            ((i % cols) as f32, (i / cols) as f32)
        };
        let b = &level.bbox[i * 4..i * 4 + 4];
        let (cx, cy) = ((c + b[0]) * sf, (r + b[1]) * sf);
        let (w, h) = (b[2].exp() * sf, b[3].exp() * sf);
        if !(w.is_finite() && h.is_finite()) {
            continue;
        }
        let k = &level.kps[i * 2 * KEYPOINTS..(i + 1) * 2 * KEYPOINTS];
        let keypoints = std::array::from_fn(|j| [(c + k[2 * j]) * sf, (r + k[2 * j + 1]) * sf]);
        out.push(Detection {
            score,
            bbox: [cx - w / 2.0, cy - h / 2.0, w, h],
            keypoints,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Outputs = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

    fn level(o: &Outputs) -> Level<'_> {
        Level {
            stride: 16,
            cls: &o.0,
            obj: &o.1,
            bbox: &o.2,
            kps: &o.3,
        }
    }

    /// A 64x32 canvas at stride 16: a 4x2 grid.
    fn level_with_one_face(cell: usize, score: f32) -> Outputs {
        let cells = 8;
        let mut cls = vec![0.0; cells];
        let mut obj = vec![0.0; cells];
        let mut bbox = vec![0.0; cells * 4];
        let mut kps = vec![0.0; cells * 10];
        cls[cell] = score;
        obj[cell] = score;
        bbox[cell * 4..cell * 4 + 4].copy_from_slice(&[0.5, 0.25, 2f32.ln(), 0.0]);
        for j in 0..5 {
            kps[cell * 10 + 2 * j] = j as f32 * 0.1;
            kps[cell * 10 + 2 * j + 1] = -(j as f32) * 0.1;
        }
        (cls, obj, bbox, kps)
    }

    #[test]
    fn grid_cells_are_row_major_and_offsets_scale_by_stride() {
        // Cell 6 of a 4-column grid: column 2, row 1.
        let outputs = level_with_one_face(6, 0.8);
        let dets = decode(&level(&outputs), 64, 32, false, 0.5).expect("fits");
        assert_eq!(dets.len(), 1);
        let d = dets[0];
        // sqrt(0.8 * 0.8)
        assert!((d.score - 0.8).abs() < 1e-6);
        // Centre ((2 + 0.5) * 16, (1 + 0.25) * 16) = (40, 20); size (2 * 16, 1 * 16).
        let expected = [40.0 - 16.0, 20.0 - 8.0, 32.0, 16.0];
        for (a, b) in d.bbox.iter().zip(expected) {
            assert!((a - b).abs() < 1e-4, "{:?}", d.bbox);
        }
        // Keypoint j at ((2 + 0.1 j) * 16, (1 - 0.1 j) * 16), in the model's order: image-left
        // eye, image-right eye, nose, mouth corners.
        for (j, p) in d.keypoints.iter().enumerate() {
            let (x, y) = ((2.0 + 0.1 * j as f32) * 16.0, (1.0 - 0.1 * j as f32) * 16.0);
            assert!(
                (p[0] - x).abs() < 1e-4 && (p[1] - y).abs() < 1e-4,
                "{j}: {p:?}"
            );
        }
        // The same cell of a transposed run: its grid is 4 rows (the canvas's columns) of 2, so
        // column 2, row 1 is cell 2 * 2 + 1; the values mean what they mean untransposed.
        let outputs = level_with_one_face(5, 0.8);
        let transposed = decode(&level(&outputs), 64, 32, true, 0.5).expect("fits");
        assert_eq!(transposed, dets);
    }

    #[test]
    fn low_scores_and_nan_are_dropped() {
        let outputs = level_with_one_face(3, 0.4);
        let level = level(&outputs);
        assert!(decode(&level, 64, 32, false, 0.5).expect("fits").is_empty());
        assert_eq!(decode(&level, 64, 32, false, 0.3).expect("fits").len(), 1);
        let nan = vec![f32::NAN; 8];
        let level = Level { cls: &nan, ..level };
        assert!(decode(&level, 64, 32, false, 0.0).expect("fits").is_empty());
    }

    #[test]
    fn slices_that_do_not_fit_the_grid_are_refused() {
        let outputs = level_with_one_face(0, 0.9);
        let level = level(&outputs);
        // A 64x64 canvas has 8 cells at stride 16, not 4... nor 16.
        assert!(decode(&level, 64, 64, false, 0.5).is_none());
        assert!(decode(&level, 32, 32, false, 0.5).is_none());
    }
}
