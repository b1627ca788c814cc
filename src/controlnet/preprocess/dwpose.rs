//! DWPose (`dw_openpose_full`) through ONNX Runtime: the YOLOX person detector
//! (`yolox_l.onnx`) and the RTMPose whole-body model (`dw-ll_ucoco_384.onnx`), with the pre-
//! and post-processing of the A1111 extension's `Wholebody` (letterbox, decoding, NMS, affine
//! crop, SimCC decoding, COCO-WholeBody → OpenPose-18 with a neck, visibility ≥ 0.3). Written
//! from the extension's behaviour; the resizes are OpenCV's ([`super::resize`],
//! [`super::affine`]).
//!
//! Model shapes: detector `[1, 3, H, W]` float (640x640 for YOLOX-L, raw 0-255 RGB) →
//! `[1, N, 5 + classes]` (centre, size, objectness, class scores on strides 8, 16, 32); pose
//! `[1, 3, 384, 288]` (ImageNet-normalised RGB) → `simcc_x [1, 133, 2·288]`, `simcc_y [1, 133,
//! 2·384]`.

use std::borrow::Cow;
use std::path::Path;

use image::RgbImage;
use ort::session::SessionInputValue;
use ort::value::ValueType;

use super::affine::{affine_transform, warp_affine};
use super::pose::{Keypoint, Pose, PoseParts, draw_poses};
use super::resize::{Interpolation, resize};
use super::{PreprocessError, check_side};
use crate::diffusion::session::{Model, SessionOptions, float_input};

/// Letterbox fill value of the detector input.
const PAD_VALUE: u8 = 114;
/// Class score threshold before NMS.
const SCORE_THRESHOLD: f32 = 0.1;
/// IoU above which NMS drops a box.
const NMS_THRESHOLD: f32 = 0.45;
/// Score a person box needs to be kept.
const PERSON_THRESHOLD: f64 = 0.3;
/// Score a keypoint needs to be drawn (the extension keeps `>= 0.3`).
const VISIBLE: f64 = 0.3;
/// Bounding-box enlargement before the pose crop.
const BOX_PADDING: f64 = 1.25;
/// SimCC bins per input pixel.
const SIMCC_SPLIT: f32 = 2.0;
/// ImageNet mean and standard deviation in 0-255 units (RGB).
const MEAN: [f64; 3] = [123.675, 116.28, 103.53];
const STD: [f64; 3] = [58.395, 57.12, 57.375];
/// COCO-WholeBody points per person.
const WHOLEBODY: usize = 133;

/// One loaded DWPose pair: person detector and whole-body pose estimator.
pub struct DwPose {
    det: Model,
    pose: Model,
    det_input: String,
    pose_input: String,
    /// Detector input (height, width).
    det_size: (usize, usize),
    /// Pose model input (height, width).
    pose_size: (usize, usize),
    det_f16: bool,
    pose_f16: bool,
}

/// A float image input's name and fixed (height, width), checked to be `[1, 3, H, W]`.
fn image_input(
    m: &Model,
    role: &'static str,
    default: (usize, usize),
) -> Result<(String, (usize, usize), bool), PreprocessError> {
    let fail = |message: String| PreprocessError::Model {
        role,
        path: m.path.clone(),
        message,
    };
    let name = m
        .input_names()
        .first()
        .map(|s| s.to_string())
        .ok_or_else(|| fail("the model has no input".into()))?;
    let dims = m.input_dims(&name).map_err(|e| fail(format!("{e:#}")))?;
    if dims.len() != 4 || (dims[1] > 0 && dims[1] != 3) {
        return Err(fail(format!(
            "input `{name}` has shape {dims:?}; expected [1, 3, H, W] (is this the {role} model?)"
        )));
    }
    let size = if dims[2] > 0 && dims[3] > 0 {
        (dims[2] as usize, dims[3] as usize)
    } else {
        default
    };
    if size.0 > 4096 || size.1 > 4096 {
        return Err(fail(format!(
            "input `{name}` of {}x{} is larger than 4096",
            size.1, size.0
        )));
    }
    let half = m.input_is_f16(&name).map_err(|e| fail(format!("{e:#}")))?;
    Ok((name, size, half))
}

/// Names and shapes (-1 for dynamic axes) of a model's tensor outputs.
fn outputs(m: &Model) -> Vec<(String, Vec<i64>)> {
    m.session
        .outputs()
        .iter()
        .map(|o| {
            let dims = match o.dtype() {
                ValueType::Tensor { shape, .. } => shape.iter().copied().collect(),
                _ => Vec::new(),
            };
            (o.name().to_string(), dims)
        })
        .collect()
}

/// Checks the detector's output (`[1, N, 5 + classes]`) and the pose model's two SimCC outputs
/// (`[1, 133, bins]`) where their shapes are known.
fn check_outputs(det: &Model, pose: &Model) -> Result<(), PreprocessError> {
    let fail = |m: &Model, role, message: String| PreprocessError::Model {
        role,
        path: m.path.clone(),
        message,
    };
    let rank3 = |d: &[i64], last_min: i64| d.len() == 3 && (d[2] < 0 || d[2] >= last_min);
    let d = outputs(det);
    match d.first() {
        Some((_, dims)) if rank3(dims, 6) => {}
        _ => {
            return Err(fail(
                det,
                "detector",
                format!(
                    "outputs {d:?}; expected one of shape [1, anchors, 5 + classes] (is this yolox_l.onnx?)"
                ),
            ));
        }
    }
    let p = outputs(pose);
    let simcc = |dims: &[i64]| rank3(dims, 2) && (dims[1] < 0 || dims[1] == WHOLEBODY as i64);
    if p.len() < 2 || !simcc(&p[0].1) || !simcc(&p[1].1) {
        return Err(fail(
            pose,
            "pose",
            format!(
                "outputs {p:?}; expected simcc_x [1, {WHOLEBODY}, 2·width] and simcc_y [1, {WHOLEBODY}, 2·height] \
             (is this dw-ll_ucoco_384.onnx?)"
            ),
        ));
    }
    Ok(())
}

impl DwPose {
    /// Loads the detector (`yolox_l.onnx`) and the pose model (`dw-ll_ucoco_384.onnx`) on the
    /// provider of `opts`; fallbacks of `--device auto` are added to `notes`.
    ///
    /// # Errors
    /// A missing file, a file ONNX Runtime rejects, or a model whose input is not
    /// `[1, 3, H, W]`, naming the file.
    pub fn load(
        detector: &Path,
        pose: &Path,
        opts: &SessionOptions,
        notes: &mut Vec<String>,
    ) -> Result<DwPose, PreprocessError> {
        let mut load = |path: &Path, role: &'static str| -> Result<Model, PreprocessError> {
            if !path.is_file() {
                return Err(PreprocessError::Model {
                    role,
                    path: path.to_path_buf(),
                    message: "file not found (DWPose needs yolox_l.onnx and dw-ll_ucoco_384.onnx, \
                              from the yzd-v/DWPose repository on Hugging Face)"
                        .into(),
                });
            }
            Model::load_file(path, opts, notes).map_err(|e| PreprocessError::Model {
                role,
                path: path.to_path_buf(),
                message: format!("{e:#}"),
            })
        };
        let det = load(detector, "detector")?;
        let pose = load(pose, "pose")?;
        let (det_input, det_size, det_f16) = image_input(&det, "detector", (640, 640))?;
        let (pose_input, pose_size, pose_f16) = image_input(&pose, "pose", (384, 288))?;
        check_outputs(&det, &pose)?;
        Ok(DwPose {
            det,
            pose,
            det_input,
            pose_input,
            det_size,
            pose_size,
            det_f16,
            pose_f16,
        })
    }

    /// The people in `img` (RGB): boxes from the detector, then each person's 133 whole-body
    /// points, mapped to OpenPose order with points under confidence 0.3 hidden. Coordinates
    /// are pixels of `img`. No box at all gives no poses; boxes of which none is a confident
    /// person give one pose from the whole image (both as the extension does).
    ///
    /// # Errors
    /// An empty image, ONNX Runtime failures, or outputs of unexpected shapes, naming the file.
    pub fn detect(&mut self, img: &RgbImage) -> Result<Vec<Pose>, PreprocessError> {
        check_side("image width", img.width())?;
        check_side("image height", img.height())?;
        let Some(boxes) = self.people(img)? else {
            return Ok(Vec::new());
        };
        let boxes = if boxes.is_empty() {
            vec![[0.0, 0.0, img.width() as f64, img.height() as f64]]
        } else {
            boxes
        };
        let mut poses = Vec::with_capacity(boxes.len());
        for b in &boxes {
            let points = self.keypoints(img, b)?;
            poses.push(openpose(&points));
        }
        Ok(poses)
    }

    /// The extension's `dw_openpose_full` map: `img` resized and padded to the processor
    /// resolution `res` ([`super::resize_with_pad`]), poses detected and drawn there with
    /// `parts`, the padding cropped off.
    ///
    /// # Errors
    /// As [`super::resize_with_pad`] and [`DwPose::detect`].
    pub fn a1111_map(
        &mut self,
        img: &RgbImage,
        res: u32,
        parts: PoseParts,
    ) -> Result<RgbImage, PreprocessError> {
        let padded = super::resize_with_pad(img, res)?;
        let poses = self.detect(&padded.image)?;
        let map = draw_poses(&poses, padded.image.width(), padded.image.height(), parts)?;
        Ok(padded.crop(&map))
    }

    fn fail(&self, role: &'static str, message: String) -> PreprocessError {
        let path = if role == "detector" {
            &self.det.path
        } else {
            &self.pose.path
        };
        PreprocessError::Model {
            role,
            path: path.clone(),
            message,
        }
    }

    /// Person boxes (x1, y1, x2, y2 in image pixels, best first), `None` when the detector
    /// finds nothing of any class.
    fn people(&mut self, img: &RgbImage) -> Result<Option<Vec<[f64; 4]>>, PreprocessError> {
        let (ih, iw) = self.det_size;
        let (w, h) = (img.width() as usize, img.height() as usize);
        let ratio = (ih as f64 / h as f64).min(iw as f64 / w as f64);
        let (rw, rh) = ((w as f64 * ratio) as usize, (h as f64 * ratio) as usize);
        let (rw, rh) = (rw.clamp(1, iw), rh.clamp(1, ih));
        let small = resize(img.as_raw(), w, h, 3, rw, rh, Interpolation::Linear);
        let mut input = vec![PAD_VALUE as f32; 3 * ih * iw];
        for y in 0..rh {
            for x in 0..rw {
                for c in 0..3 {
                    input[(c * ih + y) * iw + x] = small[(y * rw + x) * 3 + c] as f32;
                }
            }
        }
        let shape = vec![1, 3, ih as i64, iw as i64];
        let tensor = float_input(shape, &input, self.det_f16)
            .map_err(|e| self.fail("detector", format!("{e:#}")))?;
        let name = self.det_input.clone();
        let out_name = self
            .det
            .session
            .outputs()
            .first()
            .map(|o| o.name().to_string());
        let Some(out_name) = out_name else {
            return Err(self.fail("detector", "the model has no output".into()));
        };
        let inputs: Vec<(Cow<'static, str>, SessionInputValue<'_>)> = vec![(name.into(), tensor)];
        let (dims, data) = self
            .det
            .run1(inputs, &out_name)
            .map_err(|e| self.fail("detector", format!("{e:#}")))?;
        let anchors = anchor_grid(ih, iw);
        let fields = match dims.as_slice() {
            [1, n, f] if *n == anchors.len() && *f > 5 => *f,
            _ => {
                return Err(self.fail(
                    "detector",
                    format!(
                        "output `{out_name}` has shape {dims:?}; expected [1, {}, 5 + classes] for a {iw}x{ih} input",
                        anchors.len()
                    ),
                ));
            }
        };
        Ok(decode_detections(&data, fields, &anchors, ratio as f32))
    }

    /// The 133 whole-body points (x, y, score) of the person in box `b`.
    fn keypoints(
        &mut self,
        img: &RgbImage,
        b: &[f64; 4],
    ) -> Result<Vec<[f64; 3]>, PreprocessError> {
        let (ih, iw) = self.pose_size;
        let center = [(b[0] + b[2]) * 0.5, (b[1] + b[3]) * 0.5];
        let mut scale = [(b[2] - b[0]) * BOX_PADDING, (b[3] - b[1]) * BOX_PADDING];
        let aspect = iw as f64 / ih as f64;
        scale = if scale[0] > scale[1] * aspect {
            [scale[0], scale[0] / aspect]
        } else {
            [scale[1] * aspect, scale[1]]
        };
        // three point pairs as the extension builds them (float32), rotation 0
        let c = [center[0] as f32, center[1] as f32];
        let c1 = [center[0] as f32, (center[1] - scale[0] * 0.5) as f32];
        let dir = [c[0] - c1[0], c[1] - c1[1]];
        let c2 = [c1[0] - dir[1], c1[1] + dir[0]];
        let (hw, hh) = (iw as f32 * 0.5, ih as f32 * 0.5);
        let d0 = [hw, hh];
        let d1 = [hw, hh - hw];
        let ddir = [d0[0] - d1[0], d0[1] - d1[1]];
        let d2 = [d1[0] - ddir[1], d1[1] + ddir[0]];
        let Some(m) = affine_transform(&[c, c1, c2], &[d0, d1, d2]) else {
            // a degenerate box: nothing visible
            return Ok(vec![[-1.0, -1.0, 0.0]; WHOLEBODY]);
        };
        let crop = warp_affine(
            img.as_raw(),
            img.width() as usize,
            img.height() as usize,
            &m,
            iw,
            ih,
        );
        let mut input = vec![0f32; 3 * ih * iw];
        for (i, p) in crop.chunks_exact(3).enumerate() {
            for ch in 0..3 {
                input[ch * ih * iw + i] = ((p[ch] as f64 - MEAN[ch]) / STD[ch]) as f32;
            }
        }
        let tensor = float_input(vec![1, 3, ih as i64, iw as i64], &input, self.pose_f16)
            .map_err(|e| self.fail("pose", format!("{e:#}")))?;
        let names: Vec<String> = self
            .pose
            .session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        if names.len() < 2 {
            return Err(self.fail(
                "pose",
                format!("expected two outputs (simcc_x, simcc_y), found {names:?}"),
            ));
        }
        let inputs: Vec<(Cow<'static, str>, SessionInputValue<'_>)> =
            vec![(self.pose_input.clone().into(), tensor)];
        let refs: Vec<&str> = names.iter().take(2).map(|s| s.as_str()).collect();
        let mut outs = self
            .pose
            .run(inputs, &refs)
            .map_err(|e| self.fail("pose", format!("{e:#}")))?;
        // simcc_x has 2·width bins, simcc_y 2·height; order them by that, not by name
        let bins = |d: &[usize]| d.last().copied().unwrap_or(0);
        let (wx, wy) = (
            (iw as f32 * SIMCC_SPLIT) as usize,
            (ih as f32 * SIMCC_SPLIT) as usize,
        );
        if bins(&outs[0].0) != wx && bins(&outs[1].0) == wx {
            outs.swap(0, 1);
        }
        let ok =
            |d: &[usize], n: usize| d.len() == 3 && d[0] == 1 && d[1] == WHOLEBODY && d[2] == n;
        if !ok(&outs[0].0, wx) || !ok(&outs[1].0, wy) {
            return Err(self.fail(
                "pose",
                format!(
                    "outputs have shapes {:?} and {:?}; expected [1, {WHOLEBODY}, {wx}] and [1, {WHOLEBODY}, {wy}]",
                    outs[0].0, outs[1].0
                ),
            ));
        }
        Ok(decode_simcc(
            &outs[0].1,
            &outs[1].1,
            wx,
            wy,
            (iw, ih),
            center,
            scale,
        ))
    }
}

/// (grid x, grid y, stride) of every detector output row: strides 8, 16, 32, row-major.
fn anchor_grid(h: usize, w: usize) -> Vec<(f64, f64, f64)> {
    let mut out = Vec::new();
    for stride in [8usize, 16, 32] {
        for y in 0..h / stride {
            for x in 0..w / stride {
                out.push((x as f64, y as f64, stride as f64));
            }
        }
    }
    out
}

/// IoU-based NMS of one class as the extension's numpy code: areas with the +1 pixel
/// convention, in f32; indices of the kept boxes, best first.
fn nms(boxes: &[[f32; 4]], scores: &[f32]) -> Vec<usize> {
    let area = |b: &[f32; 4]| (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0);
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut keep = Vec::new();
    while let Some((&i, rest)) = order.split_first() {
        keep.push(i);
        let bi = &boxes[i];
        order = rest
            .iter()
            .copied()
            .filter(|&j| {
                let bj = &boxes[j];
                let w = (bi[2].min(bj[2]) - bi[0].max(bj[0]) + 1.0).max(0.0);
                let h = (bi[3].min(bj[3]) - bi[1].max(bj[1]) + 1.0).max(0.0);
                let inter = w * h;
                inter / (area(bi) + area(bj) - inter) <= NMS_THRESHOLD
            })
            .collect();
    }
    keep
}

/// Decodes YOLOX rows (`fields` values each) into person boxes in original-image pixels:
/// centres `(out + grid)·stride`, sizes `exp(out)·stride`, score = objectness · class score,
/// class-wise NMS over scores above 0.1, persons above 0.3 kept. `None` when no class has a
/// score above 0.1.
fn decode_detections(
    data: &[f32],
    fields: usize,
    anchors: &[(f64, f64, f64)],
    ratio: f32,
) -> Option<Vec<[f64; 4]>> {
    let classes = fields - 5;
    let mut boxes = Vec::with_capacity(anchors.len());
    for (row, &(gx, gy, s)) in data.chunks_exact(fields).zip(anchors) {
        let cx = ((row[0] as f64 + gx) * s) as f32;
        let cy = ((row[1] as f64 + gy) * s) as f32;
        let bw = (row[2].exp() as f64 * s) as f32;
        let bh = (row[3].exp() as f64 * s) as f32;
        boxes.push([
            (cx - bw / 2.0) / ratio,
            (cy - bh / 2.0) / ratio,
            (cx + bw / 2.0) / ratio,
            (cy + bh / 2.0) / ratio,
        ]);
    }
    let mut any = false;
    let mut people = Vec::new();
    for class in 0..classes {
        let (idx, scores): (Vec<usize>, Vec<f32>) = data
            .chunks_exact(fields)
            .enumerate()
            .map(|(i, r)| (i, r[4] * r[5 + class]))
            .filter(|&(_, s)| s > SCORE_THRESHOLD)
            .unzip();
        if idx.is_empty() {
            continue;
        }
        any = true;
        if class != 0 {
            continue;
        }
        let cand: Vec<[f32; 4]> = idx.iter().map(|&i| boxes[i]).collect();
        for k in nms(&cand, &scores) {
            if scores[k] as f64 > PERSON_THRESHOLD {
                people.push(cand[k].map(|v| v as f64));
            }
        }
    }
    any.then_some(people)
}

/// SimCC decoding: per point the first maximum of each axis (bins / 2 = pixels of the model
/// input), score = the smaller maximum (position −1 when it is ≤ 0), mapped back through the
/// crop: `p / input_size · scale + center − scale / 2`.
fn decode_simcc(
    sx: &[f32],
    sy: &[f32],
    wx: usize,
    wy: usize,
    input: (usize, usize),
    center: [f64; 2],
    scale: [f64; 2],
) -> Vec<[f64; 3]> {
    let argmax = |v: &[f32]| -> (usize, f32) {
        let mut best = (0usize, v[0]);
        for (i, &x) in v.iter().enumerate().skip(1) {
            if x > best.1 {
                best = (i, x);
            }
        }
        best
    };
    (0..WHOLEBODY)
        .map(|k| {
            let (ix, vx) = argmax(&sx[k * wx..(k + 1) * wx]);
            let (iy, vy) = argmax(&sy[k * wy..(k + 1) * wy]);
            let score = if vx > vy { vy } else { vx };
            let (mut lx, mut ly) = (ix as f32, iy as f32);
            if score <= 0.0 {
                (lx, ly) = (-1.0, -1.0);
            }
            let (px, py) = ((lx / SIMCC_SPLIT) as f64, (ly / SIMCC_SPLIT) as f64);
            let x = px / input.0 as f64 * scale[0] + center[0] - scale[0] / 2.0;
            let y = py / input.1 as f64 * scale[1] + center[1] - scale[1] / 2.0;
            [x, y, score as f64]
        })
        .collect()
}

/// COCO-WholeBody body index for each OpenPose body index (1 = the neck, made from the
/// shoulders).
const OPENPOSE_FROM_COCO: [Option<usize>; 18] = [
    Some(0),
    None,
    Some(6),
    Some(8),
    Some(10),
    Some(5),
    Some(7),
    Some(9),
    Some(12),
    Some(14),
    Some(16),
    Some(11),
    Some(13),
    Some(15),
    Some(2),
    Some(1),
    Some(4),
    Some(3),
];

/// One person's 133 points as an OpenPose [`Pose`]: the neck is the mean of the shoulders,
/// visible when both shoulders score above 0.3; points scoring under 0.3 are hidden; a part
/// with no visible point is empty (a body stays 18 hidden points); the face gets the two eye
/// points appended.
fn openpose(points: &[[f64; 3]]) -> Pose {
    let kp = |p: &[f64; 3]| {
        (p[2] >= VISIBLE).then_some(Keypoint {
            x: p[0],
            y: p[1],
            score: p[2] as f32,
        })
    };
    let (l, r) = (points[5], points[6]);
    let neck = [
        (l[0] + r[0]) / 2.0,
        (l[1] + r[1]) / 2.0,
        if l[2] > 0.3 && r[2] > 0.3 { 1.0 } else { 0.0 },
    ];
    let mut body = [None; 18];
    for (o, src) in body.iter_mut().zip(OPENPOSE_FROM_COCO) {
        *o = match src {
            Some(i) => kp(&points[i]),
            None => kp(&neck),
        };
    }
    let part = |range: std::ops::Range<usize>| -> Vec<Option<Keypoint>> {
        let v: Vec<Option<Keypoint>> = points[range].iter().map(kp).collect();
        if v.iter().all(Option::is_none) {
            Vec::new()
        } else {
            v
        }
    };
    // COCO-WholeBody: face 23..91, left hand 91..112, right hand 112..133
    let mut face = part(23..91);
    if !face.is_empty() {
        face.push(body[14]);
        face.push(body[15]);
    }
    Pose {
        body,
        left_hand: part(91..112),
        right_hand: part(112..133),
        face,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_cover_three_strides() {
        let a = anchor_grid(640, 640);
        assert_eq!(a.len(), 8400);
        assert_eq!(a[1], (1.0, 0.0, 8.0));
        assert_eq!(a[80], (0.0, 1.0, 8.0));
        assert_eq!(a[6400], (0.0, 0.0, 16.0));
    }

    #[test]
    fn nms_drops_overlapping_boxes() {
        let boxes = [
            [0.0, 0.0, 10.0, 10.0],
            [1.0, 1.0, 11.0, 11.0],
            [50.0, 50.0, 60.0, 60.0],
        ];
        assert_eq!(nms(&boxes, &[0.5, 0.9, 0.4]), vec![1, 2]);
    }

    #[test]
    fn neck_and_mapping() {
        let mut pts = vec![[0.0, 0.0, 0.0]; WHOLEBODY];
        pts[5] = [10.0, 20.0, 0.9];
        pts[6] = [30.0, 40.0, 0.8];
        pts[0] = [5.0, 5.0, 0.3];
        let p = openpose(&pts);
        assert_eq!(p.body[1].map(|k| (k.x, k.y)), Some((20.0, 30.0)));
        assert_eq!(p.body[2].map(|k| k.x), Some(30.0));
        assert_eq!(p.body[5].map(|k| k.x), Some(10.0));
        assert!(p.body[0].is_some());
        assert!(p.left_hand.is_empty() && p.face.is_empty());
    }
}
