//! Steady webcam results: follows faces from frame to frame and smooths their estimates.
//!
//! Each frame's faces are matched to the tracks of earlier frames by box overlap (IoU, greedy,
//! best pairs first); a match keeps the track's id, a face with no match starts a new track, a
//! track unmatched for more than `max_missed` frames is dropped. Age, range and P(female) are
//! averaged with an exponential moving average whose weight follows the time between frames
//! (`alpha = 1 - exp(-dt / time_constant_ms)`), so the smoothing is the same at 5 or 30 frames a
//! second. Boxes are smoothed the same way with a shorter time constant, so they follow the face.
//!
//! Not every face is classified in every frame ([`Tracker::views`]): a new face at once (face
//! and mirror image), then the tracked faces in turn, at most `estimates_per_frame` a frame and
//! each at most every `refresh_ms`, each time with the other of its plain and mirrored views. A
//! frame then costs one detector pass and at most about one classifier run however many faces
//! are in view: estimates change slowly, boxes every frame.

use serde::{Deserialize, Serialize};

use crate::classify::Mirror;
use crate::detect::nms::iou;
use crate::error::Result;
use crate::estimate::{Estimate, GENDER_MARGIN, GENDER_MIN_AGE};
use crate::pipeline::{Options, Pipeline};
use crate::results::{Analysis, Face};

/// Tracker settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrackOptions {
    /// Least box overlap (intersection over union) for a face to continue a track.
    pub min_iou: f32,
    /// Time constant of the estimate smoothing, in milliseconds.
    pub time_constant_ms: f64,
    /// Time constant of the box smoothing, in milliseconds.
    pub box_time_constant_ms: f64,
    /// Frames a track survives without a matching face (a blink, a missed detection).
    pub max_missed: u32,
    /// Tracked faces classified again in each frame, those with the oldest estimates first (new
    /// faces are classified in the frame they appear, on top of these).
    pub estimates_per_frame: usize,
    /// A tracked face is classified again only once its estimate is at least this old: more
    /// often adds little to an average over `time_constant_ms`, and a frame without a
    /// classifier run costs the detector alone.
    pub refresh_ms: f64,
}

impl Default for TrackOptions {
    fn default() -> Self {
        Self {
            min_iou: 0.3,
            time_constant_ms: 800.0,
            box_time_constant_ms: 80.0,
            max_missed: 5,
            estimates_per_frame: 1,
            refresh_ms: 150.0,
        }
    }
}

/// A face of the current frame with its track's smoothed figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackedFace {
    /// Stable while the face stays in view; never reused.
    pub id: u32,
    /// Frames this track has been seen in.
    pub frames: u32,
    /// Frames whose estimate went into the smoothed one.
    pub estimate_frames: u32,
    /// The face, with smoothed box, keypoints and estimate, and this frame's quality flags.
    #[serde(flatten)]
    pub face: Face,
}

/// One frame's tracked faces, in the order of the frame's faces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackedFrame {
    pub width: u32,
    pub height: u32,
    pub faces: Vec<TrackedFace>,
}

#[derive(Clone, Debug)]
struct Track {
    id: u32,
    face: Face,
    frames: u32,
    estimate_frames: u32,
    missed: u32,
    last_ms: f64,
    /// When its estimate was last updated (`None`: it has none yet).
    estimate_ms: Option<f64>,
}

/// Follows faces across frames. One per video stream; `reset` when the stream changes.
#[derive(Clone, Debug)]
pub struct Tracker {
    options: TrackOptions,
    tracks: Vec<Track>,
    next_id: u32,
}

/// Weight of the new value after `dt` ms; a first value, or a clock gone wrong, takes over.
fn alpha(dt: f64, tau: f64) -> f32 {
    if !(dt.is_finite() && tau.is_finite() && tau > 0.0) {
        return 1.0;
    }
    (1.0 - (-dt.max(0.0) / tau).exp()) as f32
}

fn mix(old: f32, new: f32, a: f32) -> f32 {
    old + a * (new - old)
}

fn mix_box(old: &mut [f32; 4], new: &[f32; 4], a: f32) {
    for (o, n) in old.iter_mut().zip(new) {
        *o = mix(*o, *n, a);
    }
}

fn mix_estimate(old: &Estimate, new: &Estimate, a: f32) -> Estimate {
    let age = mix(old.age, new.age, a);
    let p_female = mix(old.p_female, new.p_female, a);
    Estimate {
        age,
        age_std: mix(old.age_std, new.age_std, a),
        age_low: mix(old.age_low, new.age_low, a),
        age_high: mix(old.age_high, new.age_high, a),
        p_female,
        gender_reliable: age >= GENDER_MIN_AGE && (p_female - 0.5).abs() >= GENDER_MARGIN,
    }
}

impl Default for Tracker {
    fn default() -> Self {
        Self::new(TrackOptions::default())
    }
}

impl Tracker {
    pub fn new(options: TrackOptions) -> Self {
        Self {
            options,
            tracks: Vec::new(),
            next_id: 1,
        }
    }

    /// Forgets every track (a new stream, a camera switch).
    pub fn reset(&mut self) {
        self.tracks.clear();
    }

    /// Number of live tracks (those seen in the last `max_missed` frames).
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// Analyses a video frame taken at `time_ms` and adds it: the pipeline finds the faces,
    /// classifies those [`Tracker::views`] names (`opts.mirror` is not used), and the frame's
    /// analysis (estimates only for those faces) goes to [`Tracker::update`].
    pub fn analyze(
        &mut self,
        pipeline: &Pipeline,
        img: &image::RgbImage,
        opts: &Options,
        time_ms: f64,
    ) -> Result<(Analysis, TrackedFrame)> {
        let found = pipeline.find(img, opts)?;
        let views = self.views(&found.analysis.faces, time_ms);
        let analysis = pipeline.estimate(found, |i| views.get(i).copied().flatten())?;
        let frame = self.update(&analysis, time_ms);
        Ok((analysis, frame))
    }

    /// For each face of the frame taken at `time_ms` (about to be given to [`Tracker::update`]):
    /// whether to classify it in this frame, and with which view. A face too small for an
    /// estimate: no. A face with no track yet, or whose track has no estimate: both views
    /// averaged. Of the others whose estimate is `refresh_ms` old, the `estimates_per_frame`
    /// with the oldest estimates: the view their track had not last time.
    pub fn views(&self, faces: &[Face], time_ms: f64) -> Vec<Option<Mirror>> {
        let track_of_face = self.assign(faces);
        let mut views = vec![None; faces.len()];
        let mut due: Vec<(f64, usize, Mirror)> = Vec::new();
        for (f, face) in faces.iter().enumerate() {
            if face.quality.too_small {
                continue;
            }
            match track_of_face[f].map(|t| &self.tracks[t]) {
                Some(Track {
                    estimate_ms: Some(ms),
                    estimate_frames,
                    ..
                }) => {
                    // (A clock gone wrong, NaN, counts as due.)
                    if time_ms - ms < self.options.refresh_ms {
                        continue;
                    }
                    let view = if estimate_frames % 2 == 1 {
                        Mirror::Mirrored
                    } else {
                        Mirror::Plain
                    };
                    due.push((*ms, f, view));
                }
                _ => views[f] = Some(Mirror::Average),
            }
        }
        due.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, f, view) in due.into_iter().take(self.options.estimates_per_frame) {
            views[f] = Some(view);
        }
        views
    }

    /// Each face's track, if it continues one: every (track, face) pair that overlaps enough,
    /// paired greedily, best overlap first.
    fn assign(&self, faces: &[Face]) -> Vec<Option<usize>> {
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (t, track) in self.tracks.iter().enumerate() {
            for (f, face) in faces.iter().enumerate() {
                let overlap = iou(&track.face.box_norm, &face.box_norm);
                if overlap >= self.options.min_iou {
                    pairs.push((overlap, t, f));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut track_of_face: Vec<Option<usize>> = vec![None; faces.len()];
        let mut track_used = vec![false; self.tracks.len()];
        for (_, t, f) in pairs {
            if !track_used[t] && track_of_face[f].is_none() {
                track_used[t] = true;
                track_of_face[f] = Some(t);
            }
        }
        track_of_face
    }

    /// Adds the faces of the frame taken at `time_ms` (any monotonic clock, e.g.
    /// `performance.now()`) and returns them with their tracks' smoothed figures.
    pub fn update(&mut self, analysis: &Analysis, time_ms: f64) -> TrackedFrame {
        let opts = self.options;
        let track_of_face = self.assign(&analysis.faces);
        let mut track_used = vec![false; self.tracks.len()];
        for t in track_of_face.iter().flatten() {
            track_used[*t] = true;
        }

        for (t, track) in self.tracks.iter_mut().enumerate() {
            if !track_used[t] {
                track.missed += 1;
            }
        }
        let mut out = Vec::with_capacity(analysis.faces.len());
        for (f, face) in analysis.faces.iter().enumerate() {
            let t = match track_of_face[f] {
                Some(t) => {
                    let track = &mut self.tracks[t];
                    let a_box = alpha(time_ms - track.last_ms, opts.box_time_constant_ms);
                    // Weighted by the time since the last estimate, not the last frame: faces
                    // are not classified in every frame.
                    let a_est = alpha(
                        time_ms - track.estimate_ms.unwrap_or(f64::NAN),
                        opts.time_constant_ms,
                    );
                    let s = &mut track.face;
                    mix_box(&mut s.box_px, &face.box_px, a_box);
                    mix_box(&mut s.box_norm, &face.box_norm, a_box);
                    for (o, n) in s.keypoints.iter_mut().zip(&face.keypoints) {
                        o[0] = mix(o[0], n[0], a_box);
                        o[1] = mix(o[1], n[1], a_box);
                    }
                    s.score = face.score;
                    s.quality = face.quality;
                    if let Some(new) = &face.estimate {
                        s.estimate = Some(match &s.estimate {
                            Some(old) => mix_estimate(old, new, a_est),
                            None => *new,
                        });
                        track.estimate_frames += 1;
                        track.estimate_ms = Some(time_ms);
                    }
                    track.frames += 1;
                    track.missed = 0;
                    track.last_ms = time_ms;
                    t
                }
                None => {
                    self.tracks.push(Track {
                        id: self.next_id,
                        face: face.clone(),
                        frames: 1,
                        estimate_frames: u32::from(face.estimate.is_some()),
                        missed: 0,
                        last_ms: time_ms,
                        estimate_ms: face.estimate.is_some().then_some(time_ms),
                    });
                    self.next_id = self.next_id.wrapping_add(1).max(1);
                    self.tracks.len() - 1
                }
            };
            let track = &self.tracks[t];
            out.push(TrackedFace {
                id: track.id,
                frames: track.frames,
                estimate_frames: track.estimate_frames,
                face: track.face.clone(),
            });
        }
        self.tracks.retain(|t| t.missed <= opts.max_missed);
        TrackedFrame {
            width: analysis.width,
            height: analysis.height,
            faces: out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Quality;

    fn face(x: f32, age: f32, p_female: f32) -> Face {
        Face {
            box_px: [x * 640.0, 100.0, 100.0, 100.0],
            box_norm: [x, 0.2, 0.15, 0.2],
            score: 0.9,
            keypoints: [[0.0; 2]; crate::detect::KEYPOINTS],
            estimate: Some(Estimate {
                age,
                age_std: 4.0,
                age_low: age - 4.0,
                age_high: age + 4.0,
                p_female,
                gender_reliable: true,
            }),
            quality: Quality {
                too_small: false,
                blurry: false,
                cut_off: false,
                eye_distance: 30.0,
                sharpness: 200.0,
            },
        }
    }

    fn frame(faces: Vec<Face>) -> Analysis {
        Analysis {
            width: 640,
            height: 480,
            faces,
        }
    }

    #[test]
    fn faces_keep_their_ids_and_new_faces_get_new_ones() {
        let mut tr = Tracker::new(TrackOptions::default());
        let f1 = tr.update(
            &frame(vec![face(0.1, 30.0, 0.9), face(0.6, 50.0, 0.1)]),
            0.0,
        );
        let ids: Vec<u32> = f1.faces.iter().map(|f| f.id).collect();
        assert_eq!(ids, [1, 2]);
        // Moved a little, reported in the other order, plus a newcomer.
        let f2 = tr.update(
            &frame(vec![
                face(0.35, 40.0, 0.5),
                face(0.61, 50.0, 0.1),
                face(0.11, 30.0, 0.9),
            ]),
            100.0,
        );
        let ids: Vec<u32> = f2.faces.iter().map(|f| f.id).collect();
        assert_eq!(ids, [3, 2, 1]);
        assert_eq!(f2.faces[1].frames, 2);
        assert_eq!(tr.len(), 3);
    }

    #[test]
    fn estimates_are_smoothed_over_time() {
        let mut tr = Tracker::new(TrackOptions::default());
        tr.update(&frame(vec![face(0.1, 30.0, 0.9)]), 0.0);
        // A noisy frame 100 ms later moves the age only a little (tau 800 ms: alpha 0.12).
        let f = tr.update(&frame(vec![face(0.1, 50.0, 0.9)]), 100.0);
        let age = f.faces[0].face.estimate.unwrap().age;
        assert!(age > 31.0 && age < 34.0, "{age}");
        // A steady new value is reached after a few time constants.
        let mut t = 100.0;
        let mut last = 0.0;
        for _ in 0..60 {
            t += 100.0;
            last = tr.update(&frame(vec![face(0.1, 50.0, 0.9)]), t).faces[0]
                .face
                .estimate
                .unwrap()
                .age;
        }
        assert!((last - 50.0).abs() < 0.1, "{last}");
    }

    #[test]
    fn gender_reliability_follows_the_smoothed_probability() {
        let mut tr = Tracker::new(TrackOptions::default());
        tr.update(&frame(vec![face(0.1, 30.0, 0.95)]), 0.0);
        let mut t = 0.0;
        let mut est = None;
        for _ in 0..40 {
            t += 100.0;
            est = tr.update(&frame(vec![face(0.1, 30.0, 0.5)]), t).faces[0]
                .face
                .estimate;
        }
        assert!(!est.unwrap().gender_reliable);
    }

    #[test]
    fn frames_without_an_estimate_keep_the_smoothed_one() {
        let mut tr = Tracker::new(TrackOptions::default());
        tr.update(&frame(vec![face(0.1, 30.0, 0.9)]), 0.0);
        let mut small = face(0.1, 0.0, 0.0);
        small.estimate = None;
        small.quality.too_small = true;
        let f = tr.update(&frame(vec![small]), 50.0);
        let tf = &f.faces[0];
        assert_eq!(tf.face.estimate.unwrap().age, 30.0);
        assert!(tf.face.quality.too_small);
        assert_eq!((tf.frames, tf.estimate_frames), (2, 1));
    }

    #[test]
    fn lost_tracks_expire_and_ids_are_not_reused() {
        let mut tr = Tracker::new(TrackOptions {
            max_missed: 2,
            ..TrackOptions::default()
        });
        tr.update(&frame(vec![face(0.1, 30.0, 0.9)]), 0.0);
        for i in 1..=2 {
            tr.update(&frame(vec![]), i as f64 * 100.0);
            assert_eq!(tr.len(), 1);
        }
        // Back within max_missed frames: same id.
        let f = tr.update(&frame(vec![face(0.1, 30.0, 0.9)]), 300.0);
        assert_eq!(f.faces[0].id, 1);
        for i in 4..=6 {
            tr.update(&frame(vec![]), i as f64 * 100.0);
        }
        assert!(tr.is_empty());
        let f = tr.update(&frame(vec![face(0.1, 30.0, 0.9)]), 700.0);
        assert_eq!(f.faces[0].id, 2);
        tr.reset();
        assert!(tr.is_empty());
    }

    #[test]
    fn a_broken_clock_does_not_poison_the_average() {
        let mut tr = Tracker::new(TrackOptions::default());
        tr.update(&frame(vec![face(0.1, 30.0, 0.9)]), 1000.0);
        // Backwards in time: no weight for the new value.
        let f = tr.update(&frame(vec![face(0.1, 50.0, 0.9)]), 0.0);
        assert_eq!(f.faces[0].face.estimate.unwrap().age, 30.0);
        // No time at all: the new value takes over, and the next frame is fine again.
        let f = tr.update(&frame(vec![face(0.1, 40.0, 0.9)]), f64::NAN);
        assert_eq!(f.faces[0].face.estimate.unwrap().age, 40.0);
        let f = tr.update(&frame(vec![face(0.1, 40.0, 0.9)]), 100.0);
        assert_eq!(f.faces[0].face.estimate.unwrap().age, 40.0);
    }

    #[test]
    fn new_faces_get_both_views_then_tracked_faces_take_turns() {
        let mut tr = Tracker::new(TrackOptions::default());
        let mut small = face(0.8, 30.0, 0.5);
        small.quality.too_small = true;
        small.estimate = None;
        let faces = vec![face(0.1, 30.0, 0.9), face(0.4, 50.0, 0.1), small];
        assert_eq!(
            tr.views(&faces, 0.0),
            [Some(Mirror::Average), Some(Mirror::Average), None]
        );
        tr.update(&frame(faces.clone()), 0.0);
        // Not again within `refresh_ms`.
        assert_eq!(tr.views(&faces, 100.0), [None, None, None]);
        // Then one tracked face a frame, the one estimated longest ago, each with its other
        // view; a newcomer is classified at once on top of that.
        let mut seen = Vec::new();
        for (i, t) in [200.0, 400.0, 600.0, 800.0].into_iter().enumerate() {
            let mut now = faces.clone();
            if i == 2 {
                now.push(face(0.6, 20.0, 0.5));
            }
            let views = tr.views(&now, t);
            let chosen: Vec<usize> = (0..2).filter(|&f| views[f].is_some()).collect();
            assert_eq!(chosen.len(), 1, "{views:?}");
            assert_eq!(views[2], None);
            if i == 2 {
                assert_eq!(views[3], Some(Mirror::Average));
            }
            seen.push((chosen[0], views[chosen[0]]));
            let mut analysed = now.clone();
            for (f, v) in analysed.iter_mut().zip(&views) {
                if v.is_none() {
                    f.estimate = None;
                }
            }
            tr.update(&frame(analysed), t);
        }
        assert_eq!(
            seen,
            [
                (0, Some(Mirror::Mirrored)),
                (1, Some(Mirror::Mirrored)),
                (0, Some(Mirror::Plain)),
                (1, Some(Mirror::Plain)),
            ]
        );
        let two = TrackOptions {
            estimates_per_frame: 2,
            ..TrackOptions::default()
        };
        let mut tr = Tracker::new(two);
        tr.update(&frame(faces.clone()), 0.0);
        assert_eq!(tr.views(&faces, 200.0).iter().flatten().count(), 2);
        // A clock gone wrong does not stop the estimates.
        assert_eq!(tr.views(&faces, f64::NAN).iter().flatten().count(), 2);
    }

    #[test]
    fn estimates_are_weighted_by_the_time_since_the_last_estimate() {
        let mut tr = Tracker::new(TrackOptions::default());
        tr.update(&frame(vec![face(0.1, 30.0, 0.9)]), 0.0);
        // Frames without an estimate move the box, not the estimate's clock...
        let mut bare = face(0.1, 0.0, 0.0);
        bare.estimate = None;
        for t in [100.0, 200.0, 300.0] {
            tr.update(&frame(vec![bare.clone()]), t);
        }
        // ...so an estimate 800 ms after the last one weighs 1 - 1/e, as if every frame had one.
        let f = tr.update(&frame(vec![face(0.1, 50.0, 0.9)]), 800.0);
        let age = f.faces[0].face.estimate.unwrap().age;
        let expected = 30.0 + 20.0 * (1.0 - (-1.0f32).exp());
        assert!((age - expected).abs() < 1e-3, "{age} against {expected}");
    }

    #[test]
    fn tracked_faces_serialise_flat() {
        let mut tr = Tracker::new(TrackOptions::default());
        let f = tr.update(&frame(vec![face(0.1, 30.0, 0.9)]), 0.0);
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["faces"][0]["id"], 1);
        assert!(json["faces"][0]["box_px"].is_array());
        assert!(json["faces"][0]["estimate"]["age"].is_number());
    }
}
