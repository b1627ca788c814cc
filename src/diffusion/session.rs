//! ONNX Runtime sessions for the pipeline's models: the execution provider (`--device`), the
//! cache folder (ORT's optimised models, TensorRT engines, CoreML models), and typed IO
//! (float32 or float16 tensors, read from the model). The only module that names providers;
//! errors name the model file or the provider.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use half::f16;
use ort::ep::{self, ExecutionProvider as _};
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{IoBinding, RunOptions, Session, SessionInputValue};
use ort::value::{DynTensor, Tensor, TensorElementType, ValueType};

/// How to get an ONNX Runtime with the CUDA and TensorRT providers.
const GPU_BUILD_HINT: &str = "install the GPU build: scripts/fetch-ort.sh ~/.local/share/anim/onnxruntime onnxruntime-gpu==1.31.1";

/// Where the models run (`anim render --device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// ONNX Runtime's CPU provider.
    Cpu,
    /// NVIDIA CUDA (the `onnxruntime-gpu` build).
    Cuda,
    /// NVIDIA TensorRT, with CUDA for what TensorRT does not take; engines cached.
    TensorRt,
    /// DirectML (Windows).
    DirectMl,
    /// CoreML (macOS).
    CoreMl,
    /// The first of CUDA, DirectML, CoreML that this ONNX Runtime build offers and that starts,
    /// else the CPU; each fallback is reported in [`Pipeline::notes`](crate::diffusion::Pipeline::notes).
    #[default]
    Auto,
}

impl Device {
    /// The names `--device` accepts.
    pub const NAMES: [&'static str; 6] = ["cpu", "cuda", "tensorrt", "directml", "coreml", "auto"];

    /// From a `--device` value (case-insensitive).
    ///
    /// # Errors
    /// An unknown name, listing the known ones.
    pub fn parse(name: &str) -> Result<Device> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "cpu" => Device::Cpu,
            "cuda" | "gpu" => Device::Cuda,
            "tensorrt" | "trt" => Device::TensorRt,
            "directml" | "dml" => Device::DirectMl,
            "coreml" => Device::CoreMl,
            "auto" => Device::Auto,
            _ => bail!(
                "unknown device `{name}`; expected one of {}",
                Device::NAMES.join(", ")
            ),
        })
    }

    /// Whether the loaded ONNX Runtime build has this provider (the CPU always).
    ///
    /// # Errors
    /// When ONNX Runtime cannot list its providers.
    fn in_build(self) -> Result<bool> {
        match self {
            Device::Cpu | Device::Auto => Ok(true),
            Device::Cuda => ep::CUDA::is_available(),
            Device::TensorRt => ep::TensorRT::is_available(),
            Device::DirectMl => ep::DirectML::is_available(),
            Device::CoreMl => ep::CoreML::is_available(),
        }
        .map_err(|e| anyhow!("cannot list ONNX Runtime's providers: {e}"))
    }

    /// ONNX Runtime's name of the provider.
    pub fn provider_name(self) -> &'static str {
        match self {
            Device::Cpu | Device::Auto => "CPUExecutionProvider",
            Device::Cuda => "CUDAExecutionProvider",
            Device::TensorRt => "TensorrtExecutionProvider",
            Device::DirectMl => "DmlExecutionProvider",
            Device::CoreMl => "CoreMLExecutionProvider",
        }
    }
}

/// How sessions are created.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// The provider.
    pub device: Device,
    /// Cache folder for optimised models and compiled engines; `None` disables caching.
    pub cache: Option<PathBuf>,
    /// ONNX Runtime intra-op threads; `None` for its default (one per core).
    pub threads: Option<usize>,
    /// The UNet runs from fixed input and output buffers (ONNX Runtime's IoBinding), one set
    /// per input shape; on CUDA each set's run is captured as a CUDA graph once and replayed for
    /// every later step, which removes the per-kernel launch cost. Elsewhere it only binds the
    /// buffers (same results as without).
    pub cuda_graph: bool,
}

impl SessionOptions {
    /// The default cache folder: `$XDG_CACHE_HOME/anim/ort` or `~/.cache/anim/ort`.
    pub fn default_cache() -> Option<PathBuf> {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|c| c.join("anim").join("ort"))
    }

    /// The cache folder for a `--cache-dir` value: `none` disables the cache, no value means
    /// [`SessionOptions::default_cache`].
    pub fn cache_from_arg(arg: Option<PathBuf>) -> Option<PathBuf> {
        match arg {
            Some(d) if d.as_os_str() == "none" => None,
            Some(d) => Some(d),
            None => Self::default_cache(),
        }
    }
}

/// The execution providers ONNX Runtime reports for this build.
///
/// # Errors
/// When ONNX Runtime cannot be loaded.
pub fn available_providers() -> Result<Vec<&'static str>> {
    crate::runtime::environment()?;
    let mut out = vec!["CPUExecutionProvider"];
    for (name, ok) in [
        ("CUDAExecutionProvider", ep::CUDA::is_available()),
        ("TensorrtExecutionProvider", ep::TensorRT::is_available()),
        ("DmlExecutionProvider", ep::DirectML::is_available()),
        ("CoreMLExecutionProvider", ep::CoreML::is_available()),
    ] {
        if ok.unwrap_or(false) {
            out.push(name);
        }
    }
    Ok(out)
}

/// One model file with its session.
pub(crate) struct Model {
    pub(crate) session: Session,
    pub(crate) path: PathBuf,
    /// The provider the session runs on.
    pub(crate) provider: &'static str,
    /// Time spent inside `Session::run` so far.
    pub(crate) busy: std::time::Duration,
    /// Fixed buffers per input shape, when the model runs bound ([`Model::bind_buffers`]).
    bound: Option<Bound>,
}

/// A model's fixed input and output buffers, one [`Slot`] per set of input shapes.
struct Bound {
    /// On CUDA: buffers in GPU memory, and each slot's run captured and replayed as a CUDA
    /// graph. Otherwise the buffers are in host memory.
    graphs: bool,
    slots: Vec<Slot>,
}

/// One set of input shapes: buffers bound to the session, and the run options naming its graph.
struct Slot {
    /// Input names, shapes and element types, in call order.
    key: Vec<(String, Vec<i64>, TensorElementType)>,
    inputs: Vec<DynTensor>,
    output: DynTensor,
    /// The output copied back to the CPU.
    host: DynTensor,
    binding: IoBinding,
    options: RunOptions,
}

/// A stable key for the cache: file, size, modification time, provider.
fn cache_key(path: &Path, provider: &str) -> String {
    let meta = std::fs::metadata(path).ok();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.canonicalize()
        .unwrap_or_else(|_| path.to_path_buf())
        .hash(&mut h);
    meta.as_ref().map(|m| m.len()).hash(&mut h);
    meta.and_then(|m| m.modified().ok()).hash(&mut h);
    provider.hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    let stem = path
        .parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{stem}-{:016x}", h.finish())
}

impl Model {
    /// Loads `folder/sub/model.onnx` on the configured provider; `notes` collects fallbacks.
    ///
    /// # Errors
    /// A missing file, a provider that is not in this ONNX Runtime build or does not start
    /// (explicit devices), or a file ONNX Runtime rejects; each names the file or provider.
    pub(crate) fn load(
        folder: &Path,
        sub: &str,
        opts: &SessionOptions,
        notes: &mut Vec<String>,
    ) -> Result<Model> {
        let path = folder.join(sub).join("model.onnx");
        if !path.is_file() {
            bail!(
                "model file {} is missing; a Stable Diffusion ONNX folder needs text_encoder/, unet/, vae_encoder/ and \
                 vae_decoder/, each with a model.onnx (export one with `optimum-cli export onnx`)",
                path.display()
            );
        }
        // CUDA graphs for the UNet only: it is the model run many times with one shape
        Self::load_path(path, opts, notes, opts.cuda_graph && sub == "unet")
    }

    /// Loads the ONNX file `path` (any name, e.g. a preprocessor's model) on the configured
    /// provider; `notes` collects fallbacks.
    ///
    /// # Errors
    /// A provider that is not in this ONNX Runtime build or does not start (explicit
    /// devices), or a file ONNX Runtime rejects; each names the file or provider.
    pub(crate) fn load_file(
        path: &Path,
        opts: &SessionOptions,
        notes: &mut Vec<String>,
    ) -> Result<Model> {
        Self::load_path(path.to_path_buf(), opts, notes, false)
    }

    fn load_path(
        path: PathBuf,
        opts: &SessionOptions,
        notes: &mut Vec<String>,
        graph: bool,
    ) -> Result<Model> {
        let env = crate::runtime::environment()?;
        let candidates: Vec<Device> = match opts.device {
            Device::Auto => {
                // providers this build lacks are noted once, not once per model file
                let (mut have, missing): (Vec<Device>, Vec<Device>) =
                    [Device::Cuda, Device::DirectMl, Device::CoreMl]
                        .into_iter()
                        .partition(|d| d.in_build().unwrap_or(false));
                if !missing.is_empty() {
                    let names: Vec<&str> = missing.iter().map(|d| d.provider_name()).collect();
                    let built = available_providers()
                        .map(|v| v.join(", "))
                        .unwrap_or_default();
                    let note = format!(
                        "--device auto: {} not in this ONNX Runtime build (it has {built}); for NVIDIA \
                         GPUs {GPU_BUILD_HINT}",
                        names.join(", ")
                    );
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
                have.push(Device::Cpu);
                have
            }
            d => vec![d],
        };
        let mut last_err = None;
        for device in candidates {
            match Self::try_load(env, &path, device, opts, graph) {
                Ok(session) => {
                    return Ok(Model {
                        session,
                        path,
                        provider: device.provider_name(),
                        busy: std::time::Duration::ZERO,
                        bound: None,
                    });
                }
                Err(e) if opts.device == Device::Auto && device != Device::Cpu => {
                    let note = format!(
                        "--device auto: {} not used for {} ({e:#})",
                        device.provider_name(),
                        path.display()
                    );
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err
            .unwrap_or_else(|| anyhow!("{}: no execution provider could load it", path.display())))
    }

    fn try_load(
        env: &ort::environment::Environment,
        path: &Path,
        device: Device,
        opts: &SessionOptions,
        graph: bool,
    ) -> Result<Session> {
        let provider = device.provider_name();
        if !device.in_build()? {
            let have = available_providers()
                .map(|v| v.join(", "))
                .unwrap_or_default();
            let hint = if matches!(device, Device::Cuda | Device::TensorRt) {
                format!("; {GPU_BUILD_HINT}")
            } else {
                String::new()
            };
            bail!("{provider} is not in this ONNX Runtime build (it has {have}){hint}");
        }
        let err = |e: ort::Error| {
            let msg = e.to_string();
            let hint = if msg.contains("Protobuf parsing failed") {
                " (the file is not an ONNX model: an interrupted download, or a file saved under the wrong name?)"
            } else {
                ""
            };
            anyhow!("{}: {msg}{hint}", path.display())
        };
        let mut builder = crate::runtime::session_builder(env).map_err(|e| anyhow!("{e}"))?;
        if let Some(n) = opts.threads {
            builder = builder.with_intra_threads(n).map_err(|e| anyhow!("{e}"))?;
        }
        // a cache folder that cannot be created only costs speed: run without it
        let cache = opts
            .cache
            .as_ref()
            .map(|c| c.join(provider))
            .filter(|dir| std::fs::create_dir_all(dir).is_ok());
        let eps = match device {
            Device::Cpu | Device::Auto => Vec::new(),
            Device::Cuda => vec![
                ep::CUDA::default()
                    .with_cuda_graph(graph)
                    .build()
                    .error_on_failure(),
            ],
            Device::TensorRt => {
                let mut trt = ep::TensorRT::default();
                if let Some(dir) = &cache {
                    let d = dir.to_string_lossy().into_owned();
                    trt = trt
                        .with_engine_cache(true)
                        .with_engine_cache_path(&d)
                        .with_timing_cache(true)
                        .with_timing_cache_path(&d);
                }
                vec![
                    trt.build().error_on_failure(),
                    ep::CUDA::default().build().error_on_failure(),
                ]
            }
            Device::DirectMl => vec![ep::DirectML::default().build().error_on_failure()],
            Device::CoreMl => {
                let mut c = ep::CoreML::default();
                if let Some(dir) = &cache {
                    c = c.with_model_cache_dir(dir.to_string_lossy());
                }
                vec![c.build().error_on_failure()]
            }
        };
        if !eps.is_empty() {
            builder = builder.with_execution_providers(eps).map_err(|e| {
                let msg = e.to_string();
                let hint = missing_library_hint(&msg).unwrap_or_default();
                anyhow!(
                    "{provider} failed to start for {}: {msg}{hint}",
                    path.display()
                )
            })?;
        }
        // ORT's optimised model on the CPU: saved once at level 2 (fusions, nothing specific to this
        // processor), loaded afterwards with the remaining optimisations re-applied (cheap)
        let optimized = cache
            .as_ref()
            .filter(|_| matches!(device, Device::Cpu | Device::Auto))
            .map(|d| d.join(format!("{}.onnx", cache_key(path, provider))));
        if let Some(file) = &optimized {
            if !file.is_file() {
                let tmp = file.with_extension(format!("tmp{}", std::process::id()));
                let saved = Session::builder(env)
                    .map_err(|e| anyhow!("{e}"))?
                    .with_optimization_level(GraphOptimizationLevel::Level2)
                    .map_err(|e| anyhow!("{e}"))?
                    .with_optimized_model_path(&tmp)
                    .map_err(|e| anyhow!("{e}"))?
                    .commit_from_file(path)
                    .map_err(err)?;
                drop(saved);
                // a failed rename only costs the next start its speed
                let _ = std::fs::rename(&tmp, file);
            }
            if file.is_file() {
                return builder.commit_from_file(file).map_err(|e| {
                    anyhow!(
                        "cannot load the cached optimised model {} (delete it to rebuild): {e}",
                        file.display()
                    )
                });
            }
        }
        builder.commit_from_file(path).map_err(err)
    }

    /// Element type, rank and whether the first axis is dynamic, of input `name`.
    ///
    /// # Errors
    /// No such input (listing the inputs found), or not a tensor.
    pub(crate) fn input(&self, name: &str) -> Result<(TensorElementType, usize, bool)> {
        let outlet = self
            .session
            .inputs()
            .iter()
            .find(|o| o.name() == name)
            .ok_or_else(|| {
                let found: Vec<&str> = self.session.inputs().iter().map(|o| o.name()).collect();
                anyhow!(
                    "{}: expected an input named `{name}`, found {}",
                    self.path.display(),
                    found.join(", ")
                )
            })?;
        match outlet.dtype() {
            ValueType::Tensor { ty, shape, .. } => {
                Ok((*ty, shape.len(), shape.first().is_some_and(|d| *d < 0)))
            }
            other => bail!(
                "{}: input `{name}` is {other:?}, expected a tensor",
                self.path.display()
            ),
        }
    }

    /// Whether the model has an input called `name`.
    pub(crate) fn has_input(&self, name: &str) -> bool {
        self.session.inputs().iter().any(|o| o.name() == name)
    }

    /// The names of the model's inputs.
    pub(crate) fn input_names(&self) -> Vec<&str> {
        self.session.inputs().iter().map(|o| o.name()).collect()
    }

    /// The dimensions of tensor input `name` (-1 for a dynamic axis).
    ///
    /// # Errors
    /// No such input, or not a tensor.
    pub(crate) fn input_dims(&self, name: &str) -> Result<Vec<i64>> {
        self.input(name)?;
        let outlet = self.session.inputs().iter().find(|o| o.name() == name);
        match outlet.map(|o| o.dtype()) {
            Some(ValueType::Tensor { shape, .. }) => Ok(shape.iter().copied().collect()),
            _ => bail!("{}: input `{name}` is not a tensor", self.path.display()),
        }
    }

    /// Whether float input `name` is float16 (else float32).
    ///
    /// # Errors
    /// No such input, or neither float type.
    pub(crate) fn input_is_f16(&self, name: &str) -> Result<bool> {
        match self.input(name)?.0 {
            TensorElementType::Float16 => Ok(true),
            TensorElementType::Float32 => Ok(false),
            t => bail!(
                "{}: input `{name}` is {t:?}; expected float32 or float16",
                self.path.display()
            ),
        }
    }

    /// Whether the model has an output called `name`.
    pub(crate) fn has_output(&self, name: &str) -> bool {
        self.session.outputs().iter().any(|o| o.name() == name)
    }

    /// Runs the model and returns the named outputs as float32 (float16 outputs widened).
    ///
    /// # Errors
    /// ONNX Runtime failures and missing or non-float outputs, naming the file.
    pub(crate) fn run<'v>(
        &mut self,
        inputs: Vec<(Cow<'static, str>, SessionInputValue<'v>)>,
        names: &[&str],
    ) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
        let path = self.path.display().to_string();
        let started = std::time::Instant::now();
        let outputs = self
            .session
            .run(inputs)
            .map_err(|e| anyhow!("running {path}: {e}"))?;
        self.busy += started.elapsed();
        names
            .iter()
            .map(|&name| {
                let value = outputs
                    .get(name)
                    .ok_or_else(|| anyhow!("{path}: no output named `{name}`"))?;
                widen(value).map_err(|e| anyhow!("{path}: output `{name}`: {e}"))
            })
            .collect()
    }

    /// From now on [`Model::run_bound`] runs from fixed buffers on the session's device, with
    /// CUDA graphs when the session runs on CUDA and was created for them.
    pub(crate) fn bind_buffers(&mut self) {
        self.bound = Some(Bound {
            graphs: self.provider == Device::Cuda.provider_name(),
            slots: Vec::new(),
        });
    }

    /// Runs the model on `inputs` and returns `output` (of shape `out_shape`) as float32: from
    /// its fixed buffers when bound ([`Model::bind_buffers`]), else as a plain run.
    ///
    /// # Errors
    /// ONNX Runtime failures, naming the file.
    pub(crate) fn run_tensors(
        &mut self,
        inputs: &[(Cow<'static, str>, &DynTensor)],
        output: &str,
        out_shape: &[i64],
    ) -> Result<(Vec<usize>, Vec<f32>)> {
        if self.bound.is_some() {
            let named: Vec<(&str, &DynTensor)> =
                inputs.iter().map(|(n, v)| (n.as_ref(), *v)).collect();
            return self.run_bound(&named, output, out_shape);
        }
        let inputs = inputs
            .iter()
            .map(|(name, v)| (name.clone(), SessionInputValue::from(*v)))
            .collect();
        self.run1(inputs, output)
    }

    /// Runs the model from its fixed buffers: `inputs` are copied into the buffers of their
    /// shapes (made on the first call with those shapes), the model runs (on CUDA: its captured
    /// graph is replayed once captured), and `output` (of shape `out_shape`) comes back as
    /// float32.
    ///
    /// # Errors
    /// ONNX Runtime failures, naming the file; a model that is not bound.
    fn run_bound(
        &mut self,
        inputs: &[(&str, &DynTensor)],
        output: &str,
        out_shape: &[i64],
    ) -> Result<(Vec<usize>, Vec<f32>)> {
        let path = self.path.display().to_string();
        let fail = |e: ort::Error| anyhow!("running {path}: {e}");
        let Some(bound) = self.bound.as_mut() else {
            bail!("{path}: not bound to fixed buffers");
        };
        let key: Vec<(String, Vec<i64>, TensorElementType)> = inputs
            .iter()
            .map(|(n, v)| (n.to_string(), v.shape().to_vec(), *v.data_type()))
            .collect();
        let index = match bound.slots.iter().position(|s| s.key == key) {
            Some(i) => i,
            None => {
                let out_ty = self
                    .session
                    .outputs()
                    .iter()
                    .find(|o| o.name() == output)
                    .and_then(|o| match o.dtype() {
                        ValueType::Tensor { ty, .. } => Some(*ty),
                        _ => None,
                    })
                    .ok_or_else(|| anyhow!("{path}: no tensor output named `{output}`"))?;
                let allocator = if bound.graphs {
                    Allocator::new(
                        &self.session,
                        MemoryInfo::new(
                            AllocationDevice::CUDA,
                            0,
                            AllocatorType::Device,
                            MemoryType::Default,
                        )
                        .map_err(fail)?,
                    )
                    .map_err(fail)?
                } else {
                    Allocator::default()
                };
                let mut binding = self.session.create_binding().map_err(fail)?;
                let mut buffers = Vec::with_capacity(key.len());
                for (name, shape, ty) in &key {
                    let t = DynTensor::new(&allocator, *ty, shape.clone()).map_err(fail)?;
                    binding.bind_input(name.as_str(), &t).map_err(fail)?;
                    buffers.push(t);
                }
                let mut out =
                    DynTensor::new(&allocator, out_ty, out_shape.to_vec()).map_err(fail)?;
                binding.bind_output(output, &mut out).map_err(fail)?;
                let host = DynTensor::new(&Allocator::default(), out_ty, out_shape.to_vec())
                    .map_err(fail)?;
                let mut options = RunOptions::new().map_err(fail)?;
                if bound.graphs {
                    // graph ids from 1 (0 is ONNX Runtime's own), one per set of shapes
                    options
                        .set("gpu_graph_id", (bound.slots.len() + 1).to_string())
                        .map_err(fail)?;
                }
                bound.slots.push(Slot {
                    key,
                    inputs: buffers,
                    output: out,
                    host,
                    binding,
                    options,
                });
                bound.slots.len() - 1
            }
        };
        let slot = &mut bound.slots[index];
        for ((name, value), buffer) in inputs.iter().zip(slot.inputs.iter_mut()) {
            value.copy_into(&mut *buffer).map_err(fail)?;
            // binding again keeps the same buffer where the session takes the input on the
            // buffer's device; where it wants it elsewhere (an input its provider reads on the
            // host), ONNX Runtime copies at binding time, so the copy is fresh on every call
            slot.binding.bind_input(*name, &*buffer).map_err(fail)?;
        }
        let started = std::time::Instant::now();
        self.session
            .run_binding_with_options(&slot.binding, &slot.options)
            .map_err(fail)?;
        slot.output.copy_into(&mut slot.host).map_err(fail)?;
        self.busy += started.elapsed();
        widen(&slot.host).map_err(|e| anyhow!("{path}: output `{output}`: {e}"))
    }

    /// Runs the model and hands each named output (index, shape, float32 values) to `visit`
    /// without copying float32 outputs (float16 ones are widened into a scratch buffer).
    ///
    /// # Errors
    /// ONNX Runtime failures and missing or non-float outputs, naming the file; `visit`'s errors.
    pub(crate) fn run_each<'v>(
        &mut self,
        inputs: Vec<(Cow<'static, str>, SessionInputValue<'v>)>,
        names: &[String],
        mut visit: impl FnMut(usize, &[i64], &[f32]) -> Result<()>,
    ) -> Result<()> {
        let path = self.path.display().to_string();
        let started = std::time::Instant::now();
        let outputs = self
            .session
            .run(inputs)
            .map_err(|e| anyhow!("running {path}: {e}"))?;
        self.busy += started.elapsed();
        let mut scratch = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let value = outputs
                .get(name.as_str())
                .ok_or_else(|| anyhow!("{path}: no output named `{name}`"))?;
            if let Ok((shape, data)) = value.try_extract_tensor::<f32>() {
                visit(i, shape, data)?;
            } else {
                let (shape, data) = value
                    .try_extract_tensor::<f16>()
                    .map_err(|e| anyhow!("{path}: output `{name}`: {e}"))?;
                scratch.clear();
                scratch.extend(data.iter().map(|x| x.to_f32()));
                visit(i, shape, &scratch)?;
            }
        }
        Ok(())
    }

    /// [`Model::run`] for one output.
    pub(crate) fn run1<'v>(
        &mut self,
        inputs: Vec<(Cow<'static, str>, SessionInputValue<'v>)>,
        name: &str,
    ) -> Result<(Vec<usize>, Vec<f32>)> {
        self.run(inputs, &[name])?
            .pop()
            .ok_or_else(|| anyhow!("{}: no output `{name}`", self.path.display()))
    }
}

/// A float tensor, float16 when `half` (rounded to nearest) else float32.
///
/// # Errors
/// A shape that does not match the data.
pub(crate) fn float_tensor(shape: Vec<i64>, data: &[f32], half: bool) -> Result<DynTensor> {
    Ok(if half {
        Tensor::from_array((
            shape,
            data.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>(),
        ))
        .map_err(|e| anyhow!("{e}"))?
        .upcast()
    } else {
        Tensor::from_array((shape, data.to_vec()))
            .map_err(|e| anyhow!("{e}"))?
            .upcast()
    })
}

/// [`float_tensor`] as a session input.
///
/// # Errors
/// A shape that does not match the data.
pub(crate) fn float_input(
    shape: Vec<i64>,
    data: &[f32],
    half: bool,
) -> Result<SessionInputValue<'static>> {
    Ok(float_tensor(shape, data, half)?.into())
}

/// A float32 or float16 tensor's shape and values as float32.
fn widen<T: ort::value::TensorValueTypeMarker + ?Sized>(
    value: &ort::value::Value<T>,
) -> ort::Result<(Vec<usize>, Vec<f32>)> {
    let dims = |shape: &ort::value::Shape| shape.iter().map(|&d| d as usize).collect();
    if let Ok((shape, data)) = value.try_extract_tensor::<f32>() {
        return Ok((dims(shape), data.to_vec()));
    }
    let (shape, data) = value.try_extract_tensor::<f16>()?;
    Ok((dims(shape), data.iter().map(|x| x.to_f32()).collect()))
}

/// What to do when a provider's library needs a shared library the dynamic loader cannot find
/// (ONNX Runtime's message names it): which package brings it.
fn missing_library_hint(msg: &str) -> Option<String> {
    let (before, _) = msg.split_once(": cannot open shared object file")?;
    let lib = before.rsplit([' ', ':']).find(|s| !s.is_empty())?;
    let what = if lib.starts_with("libnvinfer") || lib.starts_with("libnvonnxparser") {
        "TensorRT 10 (NVIDIA's TensorRT packages, or `pip install tensorrt-cu13-libs`)"
    } else if lib.starts_with("libcu") || lib.starts_with("libnv") {
        "the CUDA 13 and cuDNN 9 libraries the onnxruntime-gpu build was made for (the CUDA toolkit, \
         or the pip wheels nvidia-cuda-runtime, nvidia-cublas, nvidia-cudnn-cu13, nvidia-cufft, nvidia-curand)"
    } else {
        "the package that provides it"
    };
    Some(format!(
        "\n  hint: {lib} was not found; install {what} and put the folder that holds it on LD_LIBRARY_PATH"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_provider_library_is_named_with_where_it_comes_from() {
        let cuda = "Failed to load library /x/libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object file: No such file or directory";
        let h = missing_library_hint(cuda).unwrap();
        assert!(h.contains("libcublasLt.so.13 was not found"), "{h}");
        assert!(
            h.contains("nvidia-cublas") && h.contains("LD_LIBRARY_PATH"),
            "{h}"
        );
        let trt = "with error: libnvinfer.so.10: cannot open shared object file: No such file or directory";
        let h = missing_library_hint(trt).unwrap();
        assert!(
            h.contains("libnvinfer.so.10") && h.contains("TensorRT 10"),
            "{h}"
        );
        assert!(
            missing_library_hint("CUDA failure 100: no CUDA-capable device is detected").is_none()
        );
    }

    #[test]
    fn device_names() {
        for n in Device::NAMES {
            assert!(Device::parse(n).is_ok());
        }
        assert_eq!(Device::parse("CUDA").unwrap(), Device::Cuda);
        assert!(
            Device::parse("tpu")
                .unwrap_err()
                .to_string()
                .contains("cpu, cuda, tensorrt")
        );
    }
}
