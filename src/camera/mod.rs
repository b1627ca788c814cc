//! Everything that moves pixels: the per-frame camera, as Deforum's `anim_frame_warp`, and the
//! warps it drives.
//!
//! Data flow, one frame: the scene's schedules give the frame's values ([`FrameValues`]); the
//! camera turns them into a motion ([`motion_2d`], [`motion_3d`], [`flip_at`]); the motion into a
//! matrix ([`warp2d::Motion2D::matrix`], [`warp2d::Flip::matrix`], the 3D camera's projection);
//! and a kernel resamples the previous frame by it: [`warp2d::warp_perspective`] (OpenCV-exact
//! bilinear, AVX2/AVX-512) for 2D and the flip, [`warp3d::warp_3d`] (PyTorch `grid_sample`-exact,
//! AVX2) for 3D, with per-pixel depth from [`depth`]. [`Camera`] does this for every frame and
//! holds the depth model between frames.
//!
//! - [`warp2d`]: Deforum's 2D matrix, the perspective flip and the 2D resampler.
//! - [`warp3d`]: Deforum's 3D camera (PyTorch3D projections, `grid_sample`).
//! - [`depth`]: ONNX depth models and the depth map turned into z.
//! - `simd`: AVX2 pieces shared by the kernels.
//!
//! Matrices and vectors are composed with nalgebra, in the same order as the references (so the
//! same bytes); the kernels, `invert` and the OpenCV-exact homography solve keep hand-written
//! array arithmetic, where nalgebra's would change the last bits (see the comments there).

pub mod depth;
#[cfg(target_arch = "x86_64")]
mod simd;
pub mod warp2d;
pub mod warp3d;

use std::path::PathBuf;

use image::RgbImage;
use nalgebra::{Matrix3, RealField};

use crate::scene::{AnimationMode, FrameSchedules, FrameValues, Scene};
use depth::{DepthError, DepthModel};
use warp2d::{Flip, Mat3, Motion2D};
use warp3d::Motion3D;

/// A camera setting that cannot be used, or a depth model that failed.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    /// A schedule value at a frame cannot form a camera.
    #[error("[motion] at frame {frame}: {message}")]
    Schedule {
        /// The frame.
        frame: usize,
        /// What is wrong, with the schedule names and values.
        message: String,
    },
    /// The depth model could not be loaded or run.
    #[error(transparent)]
    Depth(#[from] DepthError),
}

/// What the camera did to one frame, for the manifest and the user.
#[derive(Debug, Clone, Default)]
pub struct WarpInfo {
    /// The depth map was unusable (NaN, inf, constant) and flat depth was used instead.
    pub depth_fallback: bool,
    /// Milliseconds spent in the depth model.
    pub depth_ms: f64,
}

/// Moves frames by a scene's camera; holds the depth model, if any, between frames.
pub struct Camera<'s> {
    mode: AnimationMode,
    scene: &'s Scene,
    depth: Option<DepthModel>,
    depth_dir: Option<PathBuf>,
}

/// The 2D motion of a frame.
pub fn motion_2d(v: &FrameValues) -> Motion2D {
    Motion2D {
        angle: v.angle,
        zoom: v.zoom,
        translation_x: v.translation_x,
        translation_y: v.translation_y,
        transform_center_x: v.transform_center_x,
        transform_center_y: v.transform_center_y,
    }
}

/// The 3D motion of a frame.
pub fn motion_3d(v: &FrameValues) -> Motion3D {
    Motion3D {
        translation_x: v.translation_x,
        translation_y: v.translation_y,
        translation_z: v.translation_z,
        rotation_x: v.rotation_3d_x,
        rotation_y: v.rotation_3d_y,
        rotation_z: v.rotation_3d_z,
        fov: v.fov,
        near: v.near,
        far: v.far,
        aspect_ratio: v.aspect_ratio,
    }
}

/// The perspective flip of a frame.
pub fn flip_at(v: &FrameValues) -> Flip {
    Flip {
        theta: v.perspective_flip_theta,
        phi: v.perspective_flip_phi,
        gamma: v.perspective_flip_gamma,
        fv: v.perspective_flip_fv,
    }
}

/// The factors of `Rx(x) · Ry(y) · Rz(z)` (right-handed) from each angle's `(sin, cos)`, entry by
/// entry like PyTorch3D's `_axis_angle_rotation` and Deforum's flip. Not `Rotation3::
/// from_axis_angle`: it makes `-sin 0` `+0` where these have `-0`, and the 3D kernel divides by
/// sums of these products.
#[rustfmt::skip]
pub(crate) fn rotations_xyz<T: RealField + Copy>(
    [(sx, cx), (sy, cy), (sz, cz)]: [(T, T); 3],
) -> [Matrix3<T>; 3] {
    let (o, l) = (T::zero(), T::one());
    [
        Matrix3::new(
            l, o, o,
            o, cx, -sx,
            o, sx, cx,
        ),
        Matrix3::new(
            cy, o, sy,
            o, l, o,
            -sy, o, cy,
        ),
        Matrix3::new(
            cz, -sz, o,
            sz, cz, o,
            o, o, l,
        ),
    ]
}

fn flip_matrix(scene: &Scene, v: &FrameValues, i: usize) -> Result<Mat3, CameraError> {
    let f = flip_at(v);
    f.matrix(scene.image.width, scene.image.height).ok_or_else(|| {
        let why = if f.fv > 0.0 && f.fv < 180.0 {
            "the tilted picture is seen edge-on or from behind the camera; keep phi and gamma \
             away from 90 degrees (and its odd multiples)"
        } else {
            "fv must be between 0 and 180 degrees"
        };
        CameraError::Schedule {
            frame: i,
            message: format!(
                "perspective flip theta = {}, phi = {}, gamma = {}, fv = {} gives no usable homography: {why}",
                f.theta, f.phi, f.gamma, f.fv
            ),
        }
    })
}

/// Checks every frame's camera values for the scene's mode (3D values, flip matrices), so a bad
/// value is reported before anything is rendered.
pub fn check(scene: &Scene, s: &FrameSchedules) -> Result<(), CameraError> {
    for i in 1..s.frames() {
        let v = s.at(i);
        if scene.animation.mode == AnimationMode::ThreeD {
            motion_3d(&v)
                .validate()
                .map_err(|message| CameraError::Schedule { frame: i, message })?;
        }
        if scene.motion.enable_perspective_flip && scene.animation.mode != AnimationMode::None {
            flip_matrix(scene, &v, i)?;
        }
    }
    Ok(())
}

impl<'s> Camera<'s> {
    /// A camera for `scene`; checks every frame's values and loads the depth model when 3D mode
    /// uses one. Depth maps are written under `out/depth/` when `[depth] save_depth_maps` is on.
    pub fn new(
        scene: &'s Scene,
        s: &FrameSchedules,
        out: &std::path::Path,
    ) -> Result<Camera<'s>, CameraError> {
        check(scene, s)?;
        let three_d = scene.animation.mode == AnimationMode::ThreeD;
        let depth = match (&scene.depth.model, three_d && scene.depth.use_depth_warping) {
            (Some(m), true) => Some(DepthModel::load(&scene.resolve(m), &scene.depth)?),
            _ => None,
        };
        let depth_dir = (depth.is_some() && scene.depth.save_depth_maps).then(|| out.join("depth"));
        if let Some(d) = &depth_dir {
            std::fs::create_dir_all(d).map_err(|e| DepthError::Io {
                path: d.clone(),
                message: e.to_string(),
            })?;
        }
        Ok(Camera {
            mode: scene.animation.mode,
            scene,
            depth,
            depth_dir,
        })
    }

    /// Frame `i` (≥ 1) from the previous frame.
    pub fn warp(
        &mut self,
        i: usize,
        v: &FrameValues,
        prev: RgbImage,
    ) -> Result<(RgbImage, WarpInfo), CameraError> {
        let mut info = WarpInfo::default();
        let a = &self.scene.animation;
        let flip = if self.scene.motion.enable_perspective_flip {
            Some(flip_matrix(self.scene, v, i)?)
        } else {
            None
        };
        let img = match self.mode {
            AnimationMode::None | AnimationMode::VideoInput | AnimationMode::Interpolation => prev,
            AnimationMode::TwoD => match flip {
                Some(f) => warp2d::warp_2d_flip(&prev, &motion_2d(v), &f, a.border),
                None => warp2d::warp_2d(&prev, &motion_2d(v), a.border),
            },
            AnimationMode::ThreeD => {
                let z = match self.depth.as_mut() {
                    Some(model) => {
                        let t = std::time::Instant::now();
                        let raw = model.predict(&prev)?;
                        info.depth_ms = t.elapsed().as_secs_f64() * 1000.0;
                        if let Some(dir) = &self.depth_dir {
                            depth::save_depth_png(
                                &dir.join(format!("{i:06}.png")),
                                &raw,
                                prev.width(),
                                prev.height(),
                            )?;
                        }
                        let z = depth::depth_to_z(&raw)
                            .map(|z| depth::weighted(z, self.scene.depth.midas_weight));
                        info.depth_fallback = z.is_none();
                        z
                    }
                    None => None,
                };
                // Deforum predicts depth on the previous frame, then pre-warps it by the flip
                let pre = match flip {
                    Some(f) => warp2d::warp_perspective(&prev, &f, a.border),
                    None => prev,
                };
                warp3d::warp_3d(
                    &pre,
                    &motion_3d(v),
                    z.as_deref(),
                    a.padding_mode,
                    a.sampling_mode,
                )
            }
        };
        Ok((img, info))
    }

    /// Undoes frame `i`'s camera on `img` (for cadence: the next key frame seen from an earlier
    /// frame's camera). Exact for 2D (the inverse homography); for 3D an approximation: the
    /// opposite motion with flat depth.
    pub fn unwarp(
        &mut self,
        i: usize,
        v: &FrameValues,
        img: RgbImage,
    ) -> Result<RgbImage, CameraError> {
        let a = &self.scene.animation;
        let flip = if self.scene.motion.enable_perspective_flip {
            Some(flip_matrix(self.scene, v, i)?)
        } else {
            None
        };
        Ok(match self.mode {
            AnimationMode::None | AnimationMode::VideoInput | AnimationMode::Interpolation => img,
            AnimationMode::TwoD => {
                let m = motion_2d(v).matrix(img.width(), img.height());
                let m = match flip {
                    Some(f) => warp2d::matmul(&f, &m),
                    None => m,
                };
                match warp2d::invert(&m) {
                    Some(inv) => warp2d::warp_perspective(&img, &inv, a.border),
                    None => img,
                }
            }
            AnimationMode::ThreeD => {
                let m = motion_3d(v);
                let back = Motion3D {
                    translation_x: -m.translation_x,
                    translation_y: -m.translation_y,
                    translation_z: -m.translation_z,
                    rotation_x: -m.rotation_x,
                    rotation_y: -m.rotation_y,
                    rotation_z: -m.rotation_z,
                    ..m
                };
                let img = warp3d::warp_3d(&img, &back, None, a.padding_mode, a.sampling_mode);
                match flip.and_then(|f| warp2d::invert(&f)) {
                    Some(inv) => warp2d::warp_perspective(&img, &inv, a.border),
                    None => img,
                }
            }
        })
    }
}
