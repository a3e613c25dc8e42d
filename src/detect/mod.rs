//! Face detection with YuNet (`model/DETECTOR.md`), run by tract in one pass over the image
//! scaled to a working size and padded by a margin, so that faces from a few pixels wide to ones
//! that fill or overflow the frame are found alike; overlapping candidates are merged by
//! weighted non-max suppression (see [`nms`]).
//!
//! Coordinates are image pixels with continuous edges: pixel `i` spans `[i, i + 1)`.

pub mod nms;
pub mod plans;
pub(crate) mod resample;
pub mod yunet;

use std::sync::Mutex;

use image::RgbImage;
use serde::{Deserialize, Serialize};
use tract_core::prelude::*;

use crate::error::{Error, Result};

/// The embedded detector: YuNet (libfacedetection.train's `yunet_n`, dynamic input size), as the
/// graph file written from `model/yunet_n.onnx` by [`plans::graph_file`] (kept equal to it by
/// `tests/shipped_model.rs`).
pub static YUNET: &[u8] = include_bytes!("../../model/yunet_n.graph");

/// Revision of what the detector does after the model (decoding, merging, the turned looks at
/// tilted faces): caches of detections (the trainer's) name it so that a change invalidates
/// them. 2: up to three turned looks, the face at 0.6 of the window (was one look at 0.45).
pub const REVISION: u32 = 2;

/// Number of keypoints per face, in YuNet's order.
pub const KEYPOINTS: usize = 5;
/// Index of the image-left eye (the subject's right eye) in [`Detection::keypoints`].
pub const LEFT_EYE: usize = 0;
/// Index of the image-right eye.
pub const RIGHT_EYE: usize = 1;
/// Index of the nose tip.
pub const NOSE: usize = 2;

/// One detected face.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Detection {
    /// Detector confidence in [0, 1].
    pub score: f32,
    /// `[x, y, width, height]` in image pixels.
    pub bbox: [f32; 4],
    /// Image-left eye, image-right eye, nose tip, image-left and image-right mouth corners.
    pub keypoints: [[f32; 2]; KEYPOINTS],
}

impl Detection {
    /// Distance between the eye keypoints, in pixels: the face's scale.
    pub fn eye_distance(&self) -> f32 {
        let (l, r) = (self.keypoints[LEFT_EYE], self.keypoints[RIGHT_EYE]);
        (r[0] - l[0]).hypot(r[1] - l[1])
    }

    /// The eyes' tilt in radians, positive when the image-right eye is lower.
    pub fn tilt(&self) -> f32 {
        let (l, r) = (self.keypoints[LEFT_EYE], self.keypoints[RIGHT_EYE]);
        (r[1] - l[1]).atan2(r[0] - l[0])
    }

    /// The centre of the box.
    pub fn centre(&self) -> [f32; 2] {
        [
            self.bbox[0] + self.bbox[2] / 2.0,
            self.bbox[1] + self.bbox[3] / 2.0,
        ]
    }
}

/// Detection settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectOptions {
    /// Minimum confidence of a face.
    pub score_threshold: f32,
    /// Overlap above which candidates are merged into one face.
    pub iou_threshold: f32,
    /// Side of the square canvas the image is scaled down onto (inside the margin; never up),
    /// rounded up to a multiple of 32. Larger finds smaller faces and costs quadratically more.
    pub working_size: u32,
    /// Blank border kept on every side of the canvas, as a fraction of its side, so that faces
    /// filling or overflowing the frame look like the faces the detector learnt on.
    pub margin: f32,
    /// Turned looks at most for a face whose eyes tilt more than 8 degrees (0: none). Each is a
    /// 160x160 pass; the webcam takes one, so a tilted head does not halve its frame rate.
    pub turned_looks: u32,
}

impl Default for DetectOptions {
    fn default() -> Self {
        Self {
            score_threshold: 0.75,
            iou_threshold: 0.3,
            working_size: 512,
            margin: 0.1,
            turned_looks: 3,
        }
    }
}

/// Largest margin accepted: beyond it the image would have almost no room.
pub const MAX_MARGIN: f32 = 0.45;

/// Turned looks accepted at most: more never settled a face that three did not.
pub const MAX_TURNED_LOOKS: u32 = 8;

/// Working sizes accepted: below 32 the grid is empty; above 4096 a pass costs seconds.
pub const WORKING_SIZES: std::ops::RangeInclusive<u32> = 32..=4096;

impl DetectOptions {
    /// Rejects settings that would silently find nothing or cost unbounded time.
    pub fn validate(&self) -> Result<()> {
        for (name, value, ok) in [
            (
                "detect.score_threshold",
                self.score_threshold,
                self.score_threshold.is_finite(),
            ),
            (
                "detect.iou_threshold",
                self.iou_threshold,
                self.iou_threshold.is_finite(),
            ),
            (
                "detect.working_size",
                self.working_size as f32,
                WORKING_SIZES.contains(&self.working_size),
            ),
            (
                "detect.margin",
                self.margin,
                (0.0..=MAX_MARGIN).contains(&self.margin),
            ),
            (
                "detect.turned_looks",
                self.turned_looks as f32,
                self.turned_looks <= MAX_TURNED_LOOKS,
            ),
        ] {
            if !ok {
                return Err(Error::InvalidOption { name, value });
            }
        }
        Ok(())
    }
}

/// Where an image lies on the detector's input canvas: scaled by `scale` to fit inside the margin
/// (never enlarged), centred, with its top-left corner at `offset`. The canvas's longer side is
/// the working size; its shorter side is the smallest of [`short_sides`] that keeps the margin,
/// so a 4:3 photo costs about 0.8x the detector time of the square canvas and a 16:9 one 0.7x,
/// from a few fixed shapes whose plans are made once. A portrait canvas is `transposed`: the
/// model runs on it transposed, with its kernels transposed, which gives the same outputs
/// transposed: in tract 0.23.9 a map higher than wide runs YuNet's depthwise convolutions about
/// 5x slower (`ZoneScanner` loops innermost over the longest axis, there the strided one), so a
/// 416x512 (width by height) canvas took 1.4x the square's time natively.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Canvas {
    pub scale: f32,
    pub offset: (u32, u32),
    /// The scaled image's size.
    pub content: (u32, u32),
    /// The canvas's width and height.
    pub size: (u32, u32),
    /// Whether the model runs on the canvas transposed (portrait canvases).
    pub transposed: bool,
}

impl Canvas {
    /// The canvas for a `width` x `height` image.
    pub fn new(width: u32, height: u32, opts: &DetectOptions) -> Self {
        let side = canvas_side(opts.working_size);
        let margin = margin_px(side, opts.margin);
        let room = side - 2 * margin;
        // Never enlarged: faces over about 400 canvas pixels are found less often (UTKFace's
        // 200x200 crops enlarged 2.56x: 249 of 253 found with no margin, against 253 at 1x).
        let fill = room as f32 / width.max(height).max(1) as f32;
        let scale = fill.min(1.0);
        let content = (fit_to(width, scale, room), fit_to(height, scale, room));
        // The longer content side gets the working size; the shorter the smallest short side
        // that keeps its margin (the working size itself always does). Chosen by the image's
        // shape as if it filled the room, so a small image takes the canvas shape a large one
        // of its shape does: fitted to a small image's own size instead, a 96x96 FairFace crop
        // went on a 512x352 canvas, which found 117 fewer of 40,000 such faces than the square.
        let filled = (fit_to(width, fill, room), fit_to(height, fill, room));
        // The shorter side's margin may shrink to fit a smaller canvas: a 9:10 portrait
        // (group-2) then takes the 4:5 canvas, 0.875x the square's work.
        let short_margin = short_margin_px(margin);
        let short = |c: u32| {
            short_sides(side, margin)
                .into_iter()
                .filter(|&s| s >= c + 2 * short_margin)
                .min()
                .unwrap_or(side)
        };
        let size = if filled.0 >= filled.1 {
            (side, short(filled.1))
        } else {
            (short(filled.0), side)
        };
        Self {
            scale,
            offset: ((size.0 - content.0) / 2, (size.1 - content.1) / 2),
            content,
            size,
            transposed: size.1 > size.0,
        }
    }

    /// Every canvas size (width, height) images take at these options: the square first, then
    /// landscape and portrait for each shorter side, the squarer first.
    pub fn sizes(opts: &DetectOptions) -> Vec<(u32, u32)> {
        let side = canvas_side(opts.working_size);
        let mut sizes = vec![(side, side)];
        for s in short_sides(side, margin_px(side, opts.margin)) {
            if s < side {
                sizes.extend([(side, s), (s, side)]);
            }
        }
        sizes
    }

    /// The shape of the model's input for this canvas: `[1, 3, height, width]`, or transposed.
    pub fn input_shape(&self) -> [usize; 4] {
        let (w, h) = (self.size.0 as usize, self.size.1 as usize);
        if self.transposed {
            [1, 3, w, h]
        } else {
            [1, 3, h, w]
        }
    }

    /// A canvas point in image pixels.
    pub fn to_image(&self, p: [f32; 2]) -> [f32; 2] {
        [
            (p[0] - self.offset.0 as f32) / self.scale,
            (p[1] - self.offset.1 as f32) / self.scale,
        ]
    }

    /// The model's input: the image scaled onto the canvas as BGR planes in 0-255 (YuNet's
    /// training format), black around it; transposed for a transposed canvas.
    pub fn input(&self, img: &RgbImage) -> Result<Tensor> {
        let (cw, ch) = (self.content.0 as usize, self.content.1 as usize);
        let (w, h) = (self.size.0 as usize, self.size.1 as usize);
        // Written in place, not copied from a Vec into the tensor (2.5 MB a photo).
        let model_err = |e| Error::model("detector", e);
        let mut tensor = Tensor::zero::<f32>(&self.input_shape()).map_err(model_err)?;
        let mut plain = tensor.try_as_plain_ram_mut().map_err(model_err)?;
        let data = plain.as_slice_mut::<f32>().map_err(model_err)?;
        let filter = if cw * THUMBNAIL_RATIO <= img.width() as usize
            && ch * THUMBNAIL_RATIO <= img.height() as usize
        {
            resample::Filter::Box
        } else {
            resample::Filter::Triangle
        };
        resample::into_bgr_planes(
            img.as_raw(),
            (img.width() as usize, img.height() as usize),
            (cw, ch),
            filter,
            data,
            (w, h),
            (self.offset.0 as usize, self.offset.1 as usize),
            self.transposed,
        );
        Ok(tensor)
    }
}

/// An image side `v` scaled by `k` onto a canvas with `room` pixels inside its margins.
fn fit_to(v: u32, k: f32, room: u32) -> u32 {
    ((v as f32 * k).round() as u32).clamp(1, room)
}

/// The canvas side for a working size: a multiple of the coarsest stride.
fn canvas_side(working_size: u32) -> u32 {
    working_size.next_multiple_of(COARSEST_STRIDE)
}

const COARSEST_STRIDE: u32 = yunet::STRIDES[yunet::STRIDES.len() - 1];

/// The margin in canvas pixels.
fn margin_px(side: u32, margin: f32) -> u32 {
    (margin.clamp(0.0, MAX_MARGIN) * side as f32).round() as u32
}

/// Shapes (longer side over shorter) the canvas's shorter side is fitted to: photos from
/// cameras and phones (4:3, 3:2), portraits as social sites crop them (4:5) and video (16:9).
/// A fixed few, so that a plan for each can be made ahead of the photos (each costs about 100
/// ms in the page); in the order the page makes them, the most common first. Without 5:4 such
/// photos went on the square canvas, 1.14x the detector's work.
const ASPECTS: [f32; 4] = [4.0 / 3.0, 5.0 / 4.0, 3.0 / 2.0, 16.0 / 9.0];

/// The canvas's possible shorter sides at this side and margin: the side itself, then what an
/// image of each of [`ASPECTS`] needs, rounded up to the coarsest stride.
fn short_sides(side: u32, margin: u32) -> Vec<u32> {
    let room = (side - 2 * margin) as f32;
    let mut sides = vec![side];
    for aspect in ASPECTS {
        let s = ((room / aspect).round() as u32 + 2 * margin)
            .next_multiple_of(COARSEST_STRIDE)
            .min(side);
        if !sides.contains(&s) {
            sides.push(s);
        }
    }
    sides
}

/// The least share of the margin kept on a canvas's shorter side (see `Canvas::new`).
const SHORT_MARGIN: f32 = 0.75;

/// The least margin, in canvas pixels, on a canvas's shorter side for a margin of `margin`.
fn short_margin_px(margin: u32) -> u32 {
    (margin as f32 * SHORT_MARGIN).ceil() as u32
}

/// Reductions at least this large are box-averaged (see `Canvas::input`).
const THUMBNAIL_RATIO: usize = 3;

/// A plan's input height and width, and whether it is the transposed model's.
type PlanKey = (usize, usize, bool);

/// A loaded detector; build once, run on many images of any size.
pub struct Detector {
    /// The model as read, its canvas height and width open; each plan builds it with them set.
    graph: graph::Graph,
    /// Whether the model can run transposed ([`Canvas::transposed`]; YuNet can).
    transposable: bool,
    /// Optimised plans: tract plans for concrete shapes, and optimising one takes about 40 ms
    /// natively and 100-200 ms in the page, so each shape is optimised once
    /// ([`Detector::prepare`]).
    plans: Mutex<Vec<(PlanKey, plans::Plan)>>,
    /// Per stride, the output indices of its class, objectness, box and keypoint tensors.
    outputs: [[usize; 4]; 3],
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("outputs", &self.outputs)
            .field("transposable", &self.transposable)
            .finish()
    }
}

impl Detector {
    /// The embedded YuNet model.
    pub fn new() -> Result<Self> {
        Self::from_bytes(YUNET)
    }

    /// Loads a YuNet model, a graph file or natively (feature `onnx`) an ONNX file (`[1, 3, H,
    /// W]` BGR input, outputs `cls_8` ... `kps_32`). No plan is made yet: each is made by
    /// [`Detector::prepare`] or [`Detector::prepare_next`], or on first use, so the page is
    /// ready sooner and makes the plan of the first photo's shape first.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let graph = plans::load(bytes)?;
        let outputs = output_order(&plans::graph_output_names(&graph))?;
        Ok(Self {
            transposable: graph.can_transpose(),
            graph,
            plans: Mutex::new(Vec::new()),
            outputs,
        })
    }

    /// The canvas for an image (see [`Canvas::new`]), transposed as its plan is ([`Detector::key`]:
    /// not at all if the model cannot be).
    pub fn canvas(&self, width: u32, height: u32, opts: &DetectOptions) -> Canvas {
        let canvas = Canvas::new(width, height, opts);
        Canvas {
            transposed: self.key(canvas.size).2,
            ..canvas
        }
    }

    /// The plan a canvas of this size (width, height) runs on: the one place that decides which
    /// canvases run transposed.
    fn key(&self, (w, h): (u32, u32)) -> PlanKey {
        if self.transposable && h > w {
            (w as usize, h as usize, true)
        } else {
            (h as usize, w as usize, false)
        }
    }

    /// Makes every plan an analysis with `opts` may need, if not made yet: one per canvas size
    /// ([`Canvas::sizes`]) and the second look's.
    pub fn prepare(&self, opts: &DetectOptions) -> Result<()> {
        while self.prepare_next(opts)? {}
        Ok(())
    }

    /// Makes the plans an image of this size needs with `opts` (the webcam's, when it starts).
    pub fn prepare_for(&self, width: u32, height: u32, opts: &DetectOptions) -> Result<()> {
        opts.validate()?;
        self.plan(self.key(self.canvas(width.max(1), height.max(1), opts).size))?;
        self.plan(self.key((REFINE_SIDE, REFINE_SIDE))).map(drop)
    }

    /// Makes the first plan of [`Detector::prepare`]'s that is missing, if any, and says whether
    /// any is still missing: the page makes them one at a time while idle, so that a photo
    /// arriving meanwhile waits for one plan at most. Most common shapes first: the canvases of
    /// 4:3 landscape and portrait photos, the square, the second look's, then the rest.
    pub fn prepare_next(&self, opts: &DetectOptions) -> Result<bool> {
        opts.validate()?;
        let sizes = Canvas::sizes(opts);
        let mut wanted: Vec<PlanKey> = Vec::with_capacity(sizes.len() + 1);
        let first = [
            Canvas::new(4000, 3000, opts).size,
            Canvas::new(3000, 4000, opts).size,
            sizes[0],
        ];
        for size in first.into_iter().chain(sizes) {
            let key = self.key(size);
            if !wanted.contains(&key) {
                wanted.push(key);
            }
        }
        wanted.insert(wanted.len().min(3), self.key((REFINE_SIDE, REFINE_SIDE)));
        let missing = {
            let plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
            wanted
                .into_iter()
                .filter(|k| !plans.iter().any(|(p, _)| p == k))
                .collect::<Vec<_>>()
        };
        match missing.first() {
            Some(&key) => self.plan(key).map(|_| missing.len() > 1),
            None => Ok(false),
        }
    }

    fn plan(&self, key: PlanKey) -> Result<plans::Plan> {
        // A poisoned lock only means another call panicked while holding it; the list itself is
        // always valid.
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, p)) = plans.iter().find(|(k, _)| *k == key) {
            return Ok(p.clone());
        }
        let (height, width, transposed) = key;
        let p = if transposed {
            plans::plan_transposed_for(&self.graph, height, width)?
        } else {
            plans::plan_for(&self.graph, height, width)?
        };
        // A few shapes at most are ever used; bound the cache all the same.
        if plans.len() >= MAX_PLANS {
            // The oldest plan other than the default options' and the second look's.
            let kept = |k: PlanKey| {
                k == self.key((REFINE_SIDE, REFINE_SIDE))
                    || Canvas::sizes(&DetectOptions::default())
                        .into_iter()
                        .any(|size| k == self.key(size))
            };
            if let Some(i) = (0..plans.len()).find(|&i| !kept(plans[i].0)) {
                plans.remove(i);
            }
        }
        plans.push((key, p.clone()));
        Ok(p)
    }

    /// Finds faces in `img`, best score first.
    pub fn detect(&self, img: &RgbImage, opts: &DetectOptions) -> Result<Vec<Detection>> {
        opts.validate()?;
        let (w, h) = img.dimensions();
        if w == 0 || h == 0 {
            return Err(Error::EmptyImage {
                width: w,
                height: h,
            });
        }
        let canvas = self.canvas(w, h, opts);
        let found = self.detect_canvas(canvas.input(img)?, canvas.transposed, opts)?;
        found
            .into_iter()
            .map(|d| {
                let [x0, y0] = canvas.to_image([d.bbox[0], d.bbox[1]]);
                let [x1, y1] = canvas.to_image([d.bbox[0] + d.bbox[2], d.bbox[1] + d.bbox[3]]);
                let det = Detection {
                    score: d.score,
                    bbox: [x0, y0, x1 - x0, y1 - y0],
                    keypoints: d.keypoints.map(|p| canvas.to_image(p)),
                };
                self.refine_tilted(img, det, opts.turned_looks)
            })
            .collect()
    }

    /// YuNet's keypoints under-read a rolled face's tilt by about half (15-16 degrees for a
    /// 30-degree roll on UTKFace crops), and a look turned by that much under-reads the rest
    /// again: a tilted face gets up to `looks` looks ([`DetectOptions::turned_looks`]) at a
    /// small window around it, each turned by the tilt read so far plus what the last one read,
    /// and the last look's keypoints replace the first ones. Upright faces (most) cost nothing more.
    fn refine_tilted(&self, img: &RgbImage, det: Detection, looks: u32) -> Result<Detection> {
        let mut angle = det.tilt();
        if angle.abs() < REFINE_MIN_TILT {
            return Ok(det);
        }
        let (mut at, mut size) = (det.centre(), det.bbox[2].max(det.bbox[3]));
        let mut keypoints = det.keypoints;
        for _ in 0..looks {
            // A box that gives no scale for a look.
            if !(size.is_finite() && size > 1.0) {
                break;
            }
            let Some((found, rest)) = self.look(img, at, size, angle)? else {
                break;
            };
            (at, size, keypoints) = (found.centre(), found.bbox[2], found.keypoints);
            if rest.abs() < REFINE_SETTLED {
                break;
            }
            angle += rest;
        }
        Ok(Detection { keypoints, ..det })
    }

    /// One look for [`Detector::refine_tilted`]: a `REFINE_SIDE` window centred at `at`, turned
    /// by `angle` (radians), a face of `size` pixels filling `REFINE_FACE` of it. Returns the
    /// face found nearest the window's centre (a square box about its centre and keypoints, in
    /// image pixels) and the tilt its eyes still have within the window.
    fn look(
        &self,
        img: &RgbImage,
        at: [f32; 2],
        size: f32,
        angle: f32,
    ) -> Result<Option<(Detection, f32)>> {
        let n = REFINE_SIDE as f32;
        // Window-to-image map in edge coordinates: x = a*u - b*v + tx, y = b*u + a*v + ty.
        let s = size / (REFINE_FACE * n);
        let (a, b) = (s * angle.cos(), s * angle.sin());
        let c = n / 2.0;
        let (tx, ty) = (at[0] - (a * c - b * c), at[1] - (b * c + a * c));
        // `warp` works in pixel-centre coordinates.
        let m = crate::preprocess::Similarity {
            a,
            b,
            tx: tx + 0.5 * (a - b) - 0.5,
            ty: ty + 0.5 * (a + b) - 0.5,
        };
        let window = crate::preprocess::warp(img, &m, REFINE_SIDE);
        let opts = DetectOptions {
            working_size: REFINE_SIDE,
            margin: 0.0,
            score_threshold: REFINE_MIN_SCORE,
            ..DetectOptions::default()
        };
        let canvas = Canvas::new(REFINE_SIDE, REFINE_SIDE, &opts);
        let again = self.detect_canvas(canvas.input(&window)?, canvas.transposed, &opts)?;
        // The face is the one nearest the window's centre, if it is there at all.
        let near = again
            .iter()
            .filter(|d| {
                let [x, y] = d.centre();
                (x - c).abs() < 0.25 * n && (y - c).abs() < 0.25 * n
            })
            .max_by(|p, q| p.score.total_cmp(&q.score));
        let Some(near) = near else { return Ok(None) };
        let to_img = |p: [f32; 2]| [a * p[0] - b * p[1] + tx, b * p[0] + a * p[1] + ty];
        let [x, y] = to_img(near.centre());
        let side = near.bbox[2].max(near.bbox[3]) * s;
        Ok(Some((
            Detection {
                score: near.score,
                bbox: [x - side / 2.0, y - side / 2.0, side, side],
                keypoints: near.keypoints.map(to_img),
            },
            near.tilt(),
        )))
    }

    /// Runs the model on a prepared canvas tensor ([`Canvas::input`]: `[1, 3, H, W]`, or with
    /// `transposed` `[1, 3, W, H]`) and returns the merged faces in canvas pixels.
    pub fn detect_canvas(
        &self,
        input: Tensor,
        transposed: bool,
        opts: &DetectOptions,
    ) -> Result<Vec<Detection>> {
        let (width, height) = match (input.shape(), transposed) {
            (&[_, _, a, b], false) => (b as u32, a as u32),
            (&[_, _, a, b], true) => (a as u32, b as u32),
            _ => (0, 0),
        };
        let outputs = self.run_with(input, transposed)?;
        let slice = |i: usize| -> Result<&[f32]> {
            outputs
                .get(i)
                .ok_or_else(|| Error::ModelOutput {
                    model: "detector",
                    message: format!("{} outputs", outputs.len()),
                })?
                .try_as_plain_ram()
                .and_then(|p| p.as_slice::<f32>())
                .map_err(|e| Error::ModelOutput {
                    model: "detector",
                    message: format!("{e:#}"),
                })
        };
        let mut found = Vec::new();
        for (idx, stride) in self.outputs.iter().zip(yunet::STRIDES) {
            let level = yunet::Level {
                stride,
                cls: slice(idx[0])?,
                obj: slice(idx[1])?,
                bbox: slice(idx[2])?,
                kps: slice(idx[3])?,
            };
            let dets = yunet::decode(&level, width, height, transposed, opts.score_threshold)
                .ok_or_else(|| Error::ModelOutput {
                    model: "detector",
                    message: format!(
                        "stride {stride} outputs do not fit a {width}x{height} canvas"
                    ),
                })?;
            found.extend(dets);
        }
        Ok(nms::weighted(found, opts.iou_threshold))
    }

    /// One raw model run on a `[1, 3, H, W]` tensor (the benchmark times this alone); the plan
    /// for a shape not seen before is made on first use and kept.
    pub fn run(&self, input: Tensor) -> Result<TVec<TValue>> {
        self.run_with(input, false)
    }

    /// [`Detector::run`], or with `transposed` the transposed model's run on a transposed
    /// canvas (see [`Canvas::transposed`]; the model must be transposable).
    pub fn run_with(&self, input: Tensor, transposed: bool) -> Result<TVec<TValue>> {
        if transposed && !self.transposable {
            return Err(Error::Model {
                model: "detector",
                message: "this model cannot run transposed".into(),
            });
        }
        let plan = match input.shape() {
            [1, 3, h, w] => self.plan((*h, *w, transposed))?,
            other => {
                return Err(Error::Model {
                    model: "detector",
                    message: format!("input of shape {other:?}, expected [1, 3, H, W]"),
                });
            }
        };
        plan.run(tvec!(input.into()))
            .map_err(|e| Error::model("detector", e))
    }
}

/// Faces whose eyes tilt more than this (radians, 8 degrees) get a second, turned look.
const REFINE_MIN_TILT: f32 = 0.14;
/// Side of the second look's window, in pixels: a tenth of a default pass.
const REFINE_SIDE: u32 = 160;
/// The face box's size in that window, as a fraction of its side. At 0.45 (about the size the
/// shared photos' faces have at the default working size) three looks put the eyes of 188 / 192
/// of 200 UTKFace crops rolled +30 / -30 degrees in place; at 0.6, 195 / 196 (2026-12-04). One
/// look leaves about half the roll unread again; the third rarely moves more than REFINE_SETTLED.
const REFINE_FACE: f32 = 0.6;
/// A look whose eyes tilt less than this (radians, 3 degrees) settles the face.
const REFINE_SETTLED: f32 = 0.05;
/// A second look needs only to find the face it was pointed at.
const REFINE_MIN_SCORE: f32 = 0.3;

/// Plans kept at most (the default options' and the second look's are never evicted): the
/// default options' nine and the second look's, and room for the webcam's and three more.
const MAX_PLANS: usize = 14;

/// Per stride, the indices of the `cls`, `obj`, `bbox` and `kps` outputs. tract keeps the ONNX
/// output names as outlet labels; a file whose outputs lack them is taken in the order of the
/// upstream export (`cls_8, cls_16, cls_32, obj_8, ..., kps_32`).
fn output_order(names: &[String]) -> Result<[[usize; 4]; 3]> {
    if names.len() != 12 {
        return Err(Error::Model {
            model: "detector",
            message: format!("{} outputs, expected 12 (outputs: {names:?})", names.len()),
        });
    }
    let mut outputs = [[0; 4]; 3];
    for (s, (slot, stride)) in outputs.iter_mut().zip(yunet::STRIDES).enumerate() {
        for (k, kind) in ["cls", "obj", "bbox", "kps"].into_iter().enumerate() {
            let name = format!("{kind}_{stride}");
            slot[k] = names.iter().position(|n| *n == name).unwrap_or(k * 3 + s);
        }
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canvas_fits_the_image_inside_the_margin_and_centres_it() {
        let opts = DetectOptions {
            working_size: 640,
            ..DetectOptions::default()
        };
        // A 4000x3000 photo: 512x384 content centred on a 640x480 canvas, 64 px margins at
        // its ends and 48 (3/4) above and below (384 + 2 * 48 = 480, the 3:2 canvas).
        let c = Canvas::new(4000, 3000, &opts);
        assert_eq!(
            (c.size, c.content, c.offset),
            ((640, 480), (512, 384), (64, 48))
        );
        assert!((c.scale - 0.128).abs() < 1e-6);
        // Canvas points map back to the photo.
        assert_eq!(c.to_image([64.0, 48.0]), [0.0, 0.0]);
        let [x, y] = c.to_image([576.0, 432.0]);
        assert!((x - 4000.0).abs() < 1e-2 && (y - 3000.0).abs() < 1e-2);
        // Portrait and 16:9 take their own shapes, portrait ones transposed; a nearly square
        // photo the square.
        let c = Canvas::new(3000, 4000, &opts);
        assert_eq!(
            (c.size, c.offset, c.transposed),
            ((480, 640), (48, 64), true)
        );
        assert_eq!(c.input_shape(), [1, 3, 480, 640]);
        assert_eq!(Canvas::new(1920, 1080, &opts).size, (640, 416));
        // 5:4, and a 4:5 portrait as social sites crop them, on the 4:3 canvas.
        assert_eq!(Canvas::new(1920, 1537, &opts).size, (640, 512));
        assert_eq!(Canvas::new(1080, 1350, &opts).size, (512, 640));
        assert_eq!(Canvas::new(1000, 900, &opts).size, (640, 640));
        assert!(!Canvas::new(1000, 1000, &opts).transposed);
        // At the default working size a 9:10 portrait (group-2) fits the 4:5 canvas with 3/4
        // of the margin at its sides.
        let c = Canvas::new(1024, 1143, &DetectOptions::default());
        assert_eq!(
            (c.size, c.content, c.offset),
            ((448, 512), (367, 410), (40, 51))
        );
        // A small crop is not enlarged; it is centred on the canvas of its shape, the one a
        // large image of that shape takes.
        let c = Canvas::new(200, 100, &opts);
        assert_eq!(
            (c.size, c.content, c.offset),
            ((640, 416), (200, 100), (220, 158))
        );
        let c = Canvas::new(96, 96, &opts);
        assert_eq!(
            (c.size, c.content, c.offset),
            ((640, 640), (96, 96), (272, 272))
        );
        // Working sizes round up to the stride; a margin of 0 leaves the whole canvas.
        let c = Canvas::new(
            1,
            1,
            &DetectOptions {
                working_size: 300,
                margin: 0.0,
                ..opts
            },
        );
        assert_eq!(
            (c.size, c.content, c.offset),
            ((320, 320), (1, 1), (159, 159))
        );
    }

    #[test]
    fn every_image_takes_one_of_a_few_canvas_sizes() {
        for (working_size, expected) in [
            (
                512,
                vec![
                    (512, 512),
                    (512, 416),
                    (416, 512),
                    (512, 448),
                    (448, 512),
                    (512, 384),
                    (384, 512),
                    (512, 352),
                    (352, 512),
                ],
            ),
            // The webcam's: 640x480 frames take 320x256.
            (
                320,
                vec![
                    (320, 320),
                    (320, 256),
                    (256, 320),
                    (320, 288),
                    (288, 320),
                    (320, 224),
                    (224, 320),
                ],
            ),
        ] {
            let opts = DetectOptions {
                working_size,
                ..DetectOptions::default()
            };
            let sizes = Canvas::sizes(&opts);
            assert_eq!(sizes, expected);
            for (w, h) in [
                (1, 1),
                (640, 480),
                (1024, 1143),
                (853, 1280),
                (4032, 3024),
                (5000, 10),
            ] {
                for (w, h) in [(w, h), (h, w)] {
                    let c = Canvas::new(w, h, &opts);
                    assert!(sizes.contains(&c.size), "{w}x{h}: {c:?}");
                    // The margin is kept on every side, at least SHORT_MARGIN of it on the
                    // shorter one.
                    let m = short_margin_px(margin_px(canvas_side(working_size), opts.margin));
                    assert!(c.offset.0 >= m && c.offset.1 >= m, "{w}x{h}: {c:?}");
                    assert!(c.offset.0 + c.content.0 + m <= c.size.0, "{w}x{h}: {c:?}");
                    assert!(c.offset.1 + c.content.1 + m <= c.size.1, "{w}x{h}: {c:?}");
                }
            }
        }
        assert_eq!(
            Canvas::new(
                640,
                480,
                &DetectOptions {
                    working_size: 320,
                    ..DetectOptions::default()
                }
            )
            .size,
            (320, 256)
        );
    }

    #[test]
    fn input_is_bgr_planes_with_a_black_margin() {
        let opts = DetectOptions {
            working_size: 32,
            margin: 0.25,
            ..DetectOptions::default()
        };
        let img = RgbImage::from_pixel(16, 8, image::Rgb([10, 20, 30]));
        let c = Canvas::new(16, 8, &opts);
        assert_eq!((c.size, c.content, c.offset), ((32, 32), (16, 8), (8, 12)));
        let t = c.input(&img).expect("tensor");
        assert_eq!(t.shape(), &[1, 3, 32, 32]);
        let v = t
            .try_as_plain_ram()
            .and_then(|p| p.as_slice::<f32>())
            .expect("f32");
        let at = |ch: usize, y: usize, x: usize| v[ch * 1024 + y * 32 + x];
        assert_eq!(
            [at(0, 12, 8), at(1, 12, 8), at(2, 12, 8)],
            [30.0, 20.0, 10.0]
        );
        assert_eq!([at(0, 19, 23), at(2, 19, 23)], [30.0, 10.0]);
        assert_eq!(
            [at(0, 11, 8), at(0, 12, 7), at(0, 20, 8), at(0, 12, 24)],
            [0.0; 4]
        );
    }

    #[test]
    fn options_out_of_range_are_refused() {
        let ok = DetectOptions::default();
        assert!(ok.validate().is_ok());
        for bad in [
            DetectOptions {
                working_size: 16,
                ..ok
            },
            DetectOptions {
                working_size: 100_000,
                ..ok
            },
            DetectOptions { margin: -0.1, ..ok },
            DetectOptions { margin: 0.5, ..ok },
            DetectOptions {
                margin: f32::NAN,
                ..ok
            },
            DetectOptions {
                score_threshold: f32::NAN,
                ..ok
            },
            DetectOptions {
                turned_looks: MAX_TURNED_LOOKS + 1,
                ..ok
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(Error::InvalidOption { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_embedded_model_loads_and_names_its_outputs() {
        let d = Detector::new().expect("yunet");
        // No plan is made by loading; the output names are the same before and after optimising.
        assert!(d.plans.lock().expect("lock").is_empty());
        let side = canvas_side(DetectOptions::default().working_size) as usize;
        let names =
            plans::output_names(&d.plan((side, side, false)).expect("plan")).expect("names");
        assert_eq!(names, plans::graph_output_names(&d.graph));
        println!("{names:?}");
        let mut all: Vec<usize> = d.outputs.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..12).collect::<Vec<_>>());
        // Each slot's tensor has the width of its kind: 1, 1, 4 and 10 values per cell.
        let out = d
            .run(Tensor::zero::<f32>(&[1, 3, 64, 64]).expect("zeros"))
            .expect("run");
        for (slot, stride) in d.outputs.iter().zip(yunet::STRIDES) {
            let cells = (64 / stride as usize).pow(2);
            for (&i, width) in slot.iter().zip([1, 1, 4, 10]) {
                assert_eq!(out[i].len(), cells * width, "stride {stride}, output {i}");
            }
        }
        // A shape is planned once, not at every run.
        assert_eq!(d.plans.lock().expect("lock").len(), 2);
        for _ in 0..2 {
            d.run(Tensor::zero::<f32>(&[1, 3, 32, 64]).expect("zeros"))
                .expect("run");
        }
        assert_eq!(d.plans.lock().expect("lock").len(), 3);
        // `prepare_next` makes one missing plan a call, 4:3 first, landscape then portrait (the
        // transposed model): the default options' nine shapes and the second look's (the
        // square is there already).
        let opts = DetectOptions::default();
        assert!(d.transposable);
        assert!(d.prepare_next(&opts).expect("prepare"));
        assert!(d.prepare_next(&opts).expect("prepare"));
        {
            let plans = d.plans.lock().expect("lock");
            assert_eq!(plans[3].0, (416, 512, false));
            assert_eq!(plans[4].0, (416, 512, true));
        }
        let mut calls = 2;
        while d.prepare_next(&opts).expect("prepare") {
            calls += 1;
        }
        assert_eq!(calls, 8, "nine calls for the nine missing plans");
        assert!(!d.prepare_next(&opts).expect("prepare"));
        let kept = |plans: &[(PlanKey, plans::Plan)]| {
            let has = |k: PlanKey| plans.iter().any(|(p, _)| *p == k);
            has(d.key((REFINE_SIDE, REFINE_SIDE)))
                && Canvas::sizes(&opts)
                    .into_iter()
                    .all(|size| has(d.key(size)))
        };
        assert!(kept(&d.plans.lock().expect("lock")));
        // Past MAX_PLANS the oldest other plan goes; the default options' and the second look's
        // stay.
        for side in [32, 64, 96, 128, 192, 224, 256, 288] {
            d.run(Tensor::zero::<f32>(&[1, 3, side, side]).expect("zeros"))
                .expect("run");
        }
        let plans = d.plans.lock().expect("lock");
        assert_eq!(plans.len(), MAX_PLANS);
        assert!(kept(&plans));
        assert!(!plans.iter().any(|(k, _)| *k == (64, 64, false)));
    }

    #[test]
    fn the_transposed_model_on_a_transposed_canvas_gives_the_same_outputs() {
        // A portrait image: at working size 128 its canvas is 96 wide and 128 high.
        let img = RgbImage::from_fn(120, 200, |x, y| {
            image::Rgb([
                (x * 7 + y * 3) as u8,
                ((x * y) % 251) as u8,
                (y * 5 + (x / 9) * 40) as u8,
            ])
        });
        let opts = DetectOptions {
            working_size: 128,
            ..DetectOptions::default()
        };
        let d = Detector::new().expect("yunet");
        let transposed = d.canvas(img.width(), img.height(), &opts);
        assert!(transposed.transposed);
        assert_eq!(transposed.size, (96, 128));
        let plain = Canvas {
            transposed: false,
            ..transposed
        };
        let t = d
            .run_with(transposed.input(&img).expect("input"), true)
            .expect("run");
        let p = d.run(plain.input(&img).expect("input")).expect("run");
        let (rows, cols) = (128usize, 96usize);
        for (slot, stride) in d.outputs.iter().zip(yunet::STRIDES) {
            let s = stride as usize;
            let (rows, cols) = (rows / s, cols / s);
            for (&i, width) in slot.iter().zip([1, 1, 4, 10]) {
                let a = t[i]
                    .try_as_plain_ram()
                    .and_then(|v| v.as_slice::<f32>())
                    .expect("f32");
                let b = p[i]
                    .try_as_plain_ram()
                    .and_then(|v| v.as_slice::<f32>())
                    .expect("f32");
                assert_eq!(a.len(), rows * cols * width);
                for r in 0..rows {
                    for c in 0..cols {
                        for k in 0..width {
                            let (x, y) =
                                (a[(c * rows + r) * width + k], b[(r * cols + c) * width + k]);
                            assert!(
                                (x - y).abs() < 1e-3,
                                "stride {stride}, output {i}, cell ({c}, {r}): {x} vs {y}"
                            );
                        }
                    }
                }
            }
        }
        // And so the same faces: none here, as on the untransposed canvas.
        let found = d.detect(&img, &opts).expect("detect");
        let untransposed = d
            .detect_canvas(plain.input(&img).expect("input"), false, &opts)
            .expect("detect");
        assert_eq!(found.len(), untransposed.len());
    }

    #[test]
    fn overlaps_are_merged_and_mapped_back_to_the_image() {
        // Two copies of a bright disc on grey are not faces: nothing is found, at any size.
        let img = RgbImage::from_fn(300, 200, |x, y| {
            let d = ((x as f32 - 150.0).powi(2) + (y as f32 - 100.0).powi(2)).sqrt();
            if d < 30.0 {
                image::Rgb([250, 250, 250])
            } else {
                image::Rgb([120, 120, 120])
            }
        });
        let d = Detector::new().expect("yunet");
        for working_size in [160, 640] {
            let opts = DetectOptions {
                working_size,
                ..DetectOptions::default()
            };
            assert!(d.detect(&img, &opts).expect("detect").is_empty());
        }
        assert!(matches!(
            d.detect(&RgbImage::new(0, 5), &DetectOptions::default()),
            Err(Error::EmptyImage { .. })
        ));
    }
}
