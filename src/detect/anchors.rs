//! BlazeFace anchor grid and raw-output decoding.

/// One SSD anchor: its centre in normalised input coordinates (0-1). BlazeFace anchors all have
/// unit size, so boxes are offsets in input pixels from the centre.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Anchor {
    pub cx: f32,
    pub cy: f32,
}

/// Anchors for a feature map of `cells` x `cells` with `per_cell` anchors at each cell, in the
/// order the model emits them: row-major cells, anchors of a cell consecutive.
pub fn grid(cells: usize, per_cell: usize) -> Vec<Anchor> {
    let mut out = Vec::with_capacity(cells * cells * per_cell);
    for y in 0..cells {
        for x in 0..cells {
            let (cx, cy) = (
                (x as f32 + 0.5) / cells as f32,
                (y as f32 + 0.5) / cells as f32,
            );
            out.extend(std::iter::repeat_n(Anchor { cx, cy }, per_cell));
        }
    }
    out
}

/// Number of regression values per anchor: box (cx, cy, w, h) then six (x, y) keypoints.
pub const VALUES_PER_ANCHOR: usize = 16;
/// Keypoints per face: image-left eye, image-right eye, nose, mouth, image-left ear, image-right
/// ear (for an upright face).
pub const KEYPOINTS: usize = 6;

/// A decoded candidate in normalised input coordinates (0-1 over the model's square input).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Raw {
    pub score: f32,
    /// Centre x, centre y, width, height.
    pub cx: f32,
    pub cy: f32,
    pub w: f32,
    pub h: f32,
    pub keypoints: [[f32; 2]; KEYPOINTS],
}

/// Decodes one anchor's regression values (`VALUES_PER_ANCHOR` of them, in input pixels
/// relative to the anchor) for a model input of `input_size` pixels.
pub fn decode(anchor: Anchor, values: &[f32], score: f32, input_size: f32) -> Raw {
    let s = 1.0 / input_size;
    let v = |i: usize| values.get(i).copied().unwrap_or(0.0);
    let mut keypoints = [[0.0; 2]; KEYPOINTS];
    for (k, kp) in keypoints.iter_mut().enumerate() {
        *kp = [anchor.cx + v(4 + 2 * k) * s, anchor.cy + v(5 + 2 * k) * s];
    }
    Raw {
        score,
        cx: anchor.cx + v(0) * s,
        cy: anchor.cy + v(1) * s,
        w: v(2) * s,
        h: v(3) * s,
        keypoints,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blazeface_back_has_896_anchors_in_model_order() {
        let a: Vec<Anchor> = grid(16, 2).into_iter().chain(grid(8, 6)).collect();
        assert_eq!(a.len(), 896);
        assert_eq!(
            a[0],
            Anchor {
                cx: 1.0 / 32.0,
                cy: 1.0 / 32.0
            }
        );
        assert_eq!(a[1], a[0]);
        // Third anchor is the second cell of the first row.
        assert_eq!(
            a[2],
            Anchor {
                cx: 3.0 / 32.0,
                cy: 1.0 / 32.0
            }
        );
        // Last anchor of the 16x16 map, first and last of the 8x8 map.
        assert_eq!(
            a[511],
            Anchor {
                cx: 31.0 / 32.0,
                cy: 31.0 / 32.0
            }
        );
        assert_eq!(
            a[512],
            Anchor {
                cx: 1.0 / 16.0,
                cy: 1.0 / 16.0
            }
        );
        assert_eq!(
            a[895],
            Anchor {
                cx: 15.0 / 16.0,
                cy: 15.0 / 16.0
            }
        );
    }

    #[test]
    fn decode_offsets_are_input_pixels() {
        let mut v = [0.0; VALUES_PER_ANCHOR];
        v[0] = 25.6; // +0.1
        v[2] = 51.2; // w 0.2
        v[3] = 25.6;
        v[4] = -12.8; // left eye x -0.05
        let r = decode(Anchor { cx: 0.5, cy: 0.25 }, &v, 0.9, 256.0);
        assert!((r.cx - 0.6).abs() < 1e-6 && (r.cy - 0.25).abs() < 1e-6);
        assert!((r.w - 0.2).abs() < 1e-6 && (r.h - 0.1).abs() < 1e-6);
        assert!((r.keypoints[0][0] - 0.45).abs() < 1e-6);
        assert_eq!(r.keypoints[5], [0.5, 0.25]);
    }
}
