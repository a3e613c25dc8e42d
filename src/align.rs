//! From a detection to the classifier's input: a similarity transform that puts the detected
//! eyes where UTKFace's aligned crops have them (`preprocess::TEMPLATE_*_EYE`), so faces cut from
//! photos look like the training crops (eyes level, same scale and margin).

use image::RgbImage;

use crate::detect::{Detection, LEFT_EYE, RIGHT_EYE};
use crate::preprocess::{self, Similarity};

/// Eye distance over box width on frontal faces (YuNet boxes: median 0.456, quartiles
/// 0.448-0.465 on 300 UTKFace crops, `tests/utkface_crops.rs`).
pub const EYE_BOX_RATIO: f32 = 0.456;
/// Height of the eye line in the box, as a fraction of the box height from its top (median 0.364
/// on the same crops).
pub const EYE_LINE_IN_BOX: f32 = 0.364;
/// Below this fraction of the frontal eye distance, the face is turned too far for the eyes to
/// give its scale and centre.
const PROFILE_FRACTION: f32 = 0.6;

/// The eye distance the crop is scaled by: the measured one for faces that look at the camera,
/// the one a frontal face of the same box size would have for faces turned aside (whose eyes
/// nearly overlap). The pipeline judges "too small" on this.
pub fn face_scale(det: &Detection) -> f32 {
    let frontal = EYE_BOX_RATIO * det.bbox[2];
    let eyes = det.eye_distance();
    if eyes >= PROFILE_FRACTION * frontal {
        eyes
    } else {
        frontal
    }
}

/// The map from the pixels of a `size` x `size` classifier input to image pixels for this face.
pub fn similarity(det: &Detection, size: u32) -> Similarity {
    // Detections use pixel-edge coordinates, `from_eyes` pixel centres.
    let centre = |p: [f32; 2]| [p[0] - 0.5, p[1] - 0.5];
    let (l, r) = (
        centre(det.keypoints[LEFT_EYE]),
        centre(det.keypoints[RIGHT_EYE]),
    );
    let frontal = EYE_BOX_RATIO * det.bbox[2];
    let eyes = det.eye_distance();
    if eyes >= PROFILE_FRACTION * frontal {
        return Similarity::from_eyes(l, r, size);
    }
    // A face turned aside: scale and place it from the box, as if it were frontal, keeping the
    // eyes' tilt while they are far enough apart to measure it.
    let angle = if eyes >= 0.3 * frontal {
        (r[1] - l[1]).atan2(r[0] - l[0])
    } else {
        0.0
    };
    let [x, y, w, h] = det.bbox;
    let mid = centre([x + w / 2.0, y + EYE_LINE_IN_BOX * h]);
    let (hx, hy) = (frontal / 2.0 * angle.cos(), frontal / 2.0 * angle.sin());
    Similarity::from_eyes([mid[0] - hx, mid[1] - hy], [mid[0] + hx, mid[1] + hy], size)
}

/// The `size` x `size` classifier crop for a detected face (`Classifier::input_size`).
pub fn crop(img: &RgbImage, det: &Detection, size: u32) -> RgbImage {
    preprocess::warp(img, &similarity(det, size), size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::{FRAME_SIZE, INPUT_SIZE, TEMPLATE_LEFT_EYE, TEMPLATE_RIGHT_EYE};

    fn det_with_eyes(l: [f32; 2], r: [f32; 2]) -> Detection {
        let mut keypoints = [[0.0; 2]; crate::detect::KEYPOINTS];
        keypoints[LEFT_EYE] = l;
        keypoints[RIGHT_EYE] = r;
        // A box a frontal face with these eyes would have.
        let w = (r[0] - l[0]).hypot(r[1] - l[1]) / EYE_BOX_RATIO;
        let (cx, cy) = ((l[0] + r[0]) / 2.0, (l[1] + r[1]) / 2.0);
        Detection {
            score: 1.0,
            bbox: [cx - w / 2.0, cy - EYE_LINE_IN_BOX * w, w, w],
            keypoints,
        }
    }

    #[test]
    fn turned_faces_are_scaled_from_the_box() {
        // Eyes 4 px apart in a 100 px box (a face in profile): the crop must still cover the
        // face, not a 10 px patch around the eyes.
        let mut det = det_with_eyes([300.0, 200.0], [304.0, 200.0]);
        det.bbox = [250.0, 163.6, 100.0, 100.0];
        assert!((face_scale(&det) - 45.6).abs() < 1e-4);
        let m = similarity(&det, INPUT_SIZE);
        let (lu, lv) = template_px(TEMPLATE_LEFT_EYE);
        let (ru, rv) = template_px(TEMPLATE_RIGHT_EYE);
        let out = (ru - lu).hypot(rv - lv);
        assert!((m.scale() - 45.6 / out).abs() < 1e-3, "{}", m.scale());
        // The crop's eye line is at the box's eye height, centred on the box.
        let (x, y) = m.apply((lu + ru) / 2.0, (lv + rv) / 2.0);
        assert!(
            (x - 299.5).abs() < 1e-2 && (y - 199.5).abs() < 1e-2,
            "{x} {y}"
        );
        // A frontal face keeps its measured eyes.
        let frontal = det_with_eyes([300.0, 200.0], [345.6, 200.0]);
        assert!((face_scale(&frontal) - 45.6).abs() < 1e-3);
    }

    /// Output pixel (centre) where the template puts an eye.
    fn template_px(t: [f32; 2]) -> (f32, f32) {
        let k = INPUT_SIZE as f32 / FRAME_SIZE;
        (t[0] * k - 0.5, t[1] * k - 0.5)
    }

    #[test]
    fn eyes_land_on_the_template_and_are_levelled() {
        // A face tilted by about 27 degrees.
        let (l, r) = ([100.0, 200.0], [180.0, 240.0]);
        let m = similarity(&det_with_eyes(l, r), INPUT_SIZE);
        let (lu, lv) = template_px(TEMPLATE_LEFT_EYE);
        let (ru, rv) = template_px(TEMPLATE_RIGHT_EYE);
        let (x, y) = m.apply(lu, lv);
        assert!((x - (l[0] - 0.5)).abs() < 1e-3 && (y - (l[1] - 0.5)).abs() < 1e-3);
        let (x, y) = m.apply(ru, rv);
        assert!((x - (r[0] - 0.5)).abs() < 1e-3 && (y - (r[1] - 0.5)).abs() < 1e-3);
        // Scale: image eye distance over template eye distance in the output.
        let src = (80.0f32).hypot(40.0);
        let out = (ru - lu).hypot(rv - lv);
        assert!((m.scale() - src / out).abs() < 1e-3);
    }

    #[test]
    fn crop_of_synthetic_face_puts_dark_eyes_at_template() {
        // White image with two dark discs as eyes, rotated; the crop must show them level.
        let (l, r) = ([300.0f32, 310.0f32], [380.0f32, 290.0f32]);
        let img = RgbImage::from_fn(600, 600, |x, y| {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let near = |e: [f32; 2]| (px - e[0]).hypot(py - e[1]) < 10.0;
            if near(l) || near(r) {
                image::Rgb([0, 0, 0])
            } else {
                image::Rgb([255, 255, 255])
            }
        });
        let out = crop(&img, &det_with_eyes(l, r), INPUT_SIZE);
        assert_eq!(out.dimensions(), (INPUT_SIZE, INPUT_SIZE));
        for t in [TEMPLATE_LEFT_EYE, TEMPLATE_RIGHT_EYE] {
            let (u, v) = template_px(t);
            let p = out.get_pixel(u.round() as u32, v.round() as u32);
            assert!(p.0[0] < 100, "eye at template {t:?} is {p:?}");
        }
        // Midway between the eyes is skin (white).
        let (lu, lv) = template_px(TEMPLATE_LEFT_EYE);
        let (ru, _) = template_px(TEMPLATE_RIGHT_EYE);
        assert!(out.get_pixel(((lu + ru) / 2.0) as u32, lv.round() as u32).0[0] > 200);
    }
}
