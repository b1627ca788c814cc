//! Stable Diffusion on ONNX Runtime: tokenizer, samplers, torch-compatible noise and the
//! txt2img/img2img pipeline.

pub mod pipeline;
pub mod prompt;
pub mod rng;
pub mod scheduler;
pub mod session;
pub mod tokenizer;
pub mod variation;

pub use pipeline::{NoiseSource, Pipeline, Request, StageTimes, Travel};
pub use prompt::PromptSyntax;
pub use rng::TorchRng;
pub use scheduler::{SamplerKind, Scheduler, SchedulerConfig};
pub use session::{Device, SessionOptions};
pub use tokenizer::ClipTokenizer;
