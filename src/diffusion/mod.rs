//! Stable Diffusion (1.x, 2.x, SDXL) on ONNX Runtime: tokenizer, samplers, torch-compatible noise and the
//! txt2img/img2img pipeline (with InstructPix2Pix and inpainting UNets).

pub mod control;
pub mod inpaint;
pub mod pipeline;
pub mod pix2pix;
pub mod prompt;
pub mod rng;
pub mod scheduler;
pub mod session;
mod text;
pub mod tokenizer;
pub mod variation;

pub use control::{Control, ControlMode, ControlNet, ControlUnit, WindowRule};
pub use inpaint::UnetKind;
pub use pipeline::{
    Inpaint, ModelFamily, NoiseSource, Pipeline, Request, StageTimes, TextEmbedding, Travel,
};
pub use pix2pix::Pix2Pix;
pub use prompt::PromptSyntax;
pub use rng::TorchRng;
pub use scheduler::{SamplerKind, Scheduler, SchedulerConfig};
pub use session::{Device, SessionOptions};
pub use tokenizer::ClipTokenizer;
