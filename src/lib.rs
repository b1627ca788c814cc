//! anim: Deforum-style scripted animation over Stable Diffusion ONNX models.
//!
//! A [`scene::Scene`] (TOML) describes the animation; [`render`] runs the frame loop: each frame is
//! the previous one moved by the camera ([`camera`]: the 2D and 3D warps, the perspective flip,
//! depth) and repainted by img2img ([`diffusion`]); [`output`] writes frames and the video.
//! [`farm`] runs many renders: batches, sweeps, Slurm job arrays, Kubernetes manifests.

pub mod audio;
pub mod camera;
pub mod check;
pub mod controlnet;
pub mod cpu;
pub mod diffusion;
pub mod effects;
pub mod farm;
pub mod flow;
pub mod hybrid;
pub mod looper;
pub mod mask;
pub mod motion;
pub mod output;
pub mod post;
pub mod render;
pub mod runtime;
pub mod scene;
pub mod schedule;
pub mod seeds;
