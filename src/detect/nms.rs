//! Weighted non-max suppression (as MediaPipe's face detection graph): overlapping candidates
//! are averaged, weighted by score, which steadies boxes and keypoints more than keeping the
//! best one alone (YuNet often fires on neighbouring cells and strides for one face).

use super::Detection;

/// Intersection over union of two `[x, y, w, h]` boxes; 0 for empty, degenerate or NaN boxes.
/// The one overlap measure of the crate: detection merging and webcam tracking both use it.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let ix = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let iy = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    let inter = ix.max(0.0) * iy.max(0.0);
    let union = a[2].max(0.0) * a[3].max(0.0) + b[2].max(0.0) * b[3].max(0.0) - inter;
    if union > 0.0 && inter.is_finite() {
        inter / union
    } else {
        0.0
    }
}

/// Groups candidates by overlap with the best remaining one (IoU >= `threshold`) and replaces
/// each group by its score-weighted mean, keeping the group's best score. Output is sorted by
/// score, best first.
pub fn weighted(mut dets: Vec<Detection>, threshold: f32) -> Vec<Detection> {
    dets.retain(|d| d.score.is_finite());
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    let mut used = vec![false; dets.len()];
    for i in 0..dets.len() {
        if used[i] {
            continue;
        }
        let best = dets[i];
        let (mut sum_w, mut bbox, mut kps) = (0.0f32, [0.0f32; 4], best.keypoints);
        for kp in kps.iter_mut() {
            *kp = [0.0; 2];
        }
        for j in i..dets.len() {
            if used[j] || iou(&best.bbox, &dets[j].bbox) < threshold {
                continue;
            }
            used[j] = true;
            let w = dets[j].score.max(1e-6);
            sum_w += w;
            for (acc, v) in bbox.iter_mut().zip(dets[j].bbox) {
                *acc += w * v;
            }
            for (acc, v) in kps.iter_mut().zip(dets[j].keypoints) {
                acc[0] += w * v[0];
                acc[1] += w * v[1];
            }
        }
        for v in bbox.iter_mut() {
            *v /= sum_w;
        }
        for kp in kps.iter_mut() {
            kp[0] /= sum_w;
            kp[1] /= sum_w;
        }
        out.push(Detection {
            score: best.score,
            bbox,
            keypoints: kps,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(score: f32, bbox: [f32; 4]) -> Detection {
        Detection {
            score,
            bbox,
            keypoints: [[bbox[0], bbox[1]]; super::super::KEYPOINTS],
        }
    }

    #[test]
    fn iou_basics() {
        let a = [0.0, 0.0, 10.0, 10.0];
        assert!((iou(&a, &a) - 1.0).abs() < 1e-6);
        assert_eq!(iou(&a, &[20.0, 0.0, 5.0, 5.0]), 0.0);
        assert!((iou(&a, &[5.0, 0.0, 10.0, 10.0]) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(iou(&[0.0; 4], &[0.0; 4]), 0.0);
        assert_eq!(iou(&a, &[f32::NAN; 4]), 0.0);
        assert_eq!(iou(&a, &[0.0, 0.0, -10.0, -10.0]), 0.0);
    }

    #[test]
    fn overlapping_boxes_merge_by_score_and_distinct_ones_stay() {
        let out = weighted(
            vec![
                det(0.5, [100.0, 100.0, 10.0, 10.0]),
                det(0.9, [0.0, 0.0, 10.0, 10.0]),
                det(0.3, [2.0, 0.0, 10.0, 10.0]),
                det(f32::NAN, [0.0, 0.0, 10.0, 10.0]),
            ],
            0.3,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        // Weighted x: (0.9*0 + 0.3*2) / 1.2 = 0.5.
        assert!((out[0].bbox[0] - 0.5).abs() < 1e-5);
        assert!((out[0].keypoints[3][0] - 0.5).abs() < 1e-5);
        assert_eq!(out[1].bbox, [100.0, 100.0, 10.0, 10.0]);
        assert!(weighted(Vec::new(), 0.3).is_empty());
    }
}
