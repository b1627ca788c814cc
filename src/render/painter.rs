//! What repaints a prepared frame: the [`Painter`] seam, the [`FrameRequest`] it takes, and
//! [`Diffuse`], the Stable Diffusion painter (the scene's model and the checkpoint schedule's,
//! kept in a small LRU).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use image::{GrayImage, RgbImage};

use crate::controlnet::{self, ControlFrame};
use crate::diffusion::{
    Control, ControlMode, ControlNet, ControlUnit, Inpaint, Pipeline, Pix2Pix, PromptSyntax,
    Request, SamplerKind, SessionOptions, StageTimes, TorchRng, Travel,
};
use crate::scene::{FrameSchedules, FrameValues, Prompt, Scene};

/// Everything a painter needs for one frame. New conditioning inputs (control images, masks,
/// an image-guidance picture) become fields here.
#[derive(Clone)]
pub(crate) struct FrameRequest<'a> {
    /// Frame index (for messages).
    pub frame: usize,
    /// Every schedule's value at this frame (steps, guidance, sampler, etas, clip skip, ...).
    pub values: &'a FrameValues<'a>,
    /// The prompt in force.
    pub prompt: Prompt,
    /// Prompt travel: the next keyed prompt and how far towards it.
    pub travel: Option<(Prompt, f32)>,
    /// Whether travel interpolates the embeddings spherically.
    pub slerp: bool,
    /// The frame's seed.
    pub seed: i64,
    /// Frame width and height.
    pub size: (u32, u32),
    /// The model folder of the checkpoint schedule at this frame (`None`: the scene's model).
    pub checkpoint: Option<PathBuf>,
    /// img2img source; `None`: txt2img.
    pub init: Option<&'a RgbImage>,
    /// Share of the picture repainted (diffusers' strength, 1 - Deforum's strength).
    pub denoise: f64,
    /// The ControlNet units' maps and weights at this frame.
    pub control: &'a [ControlFrame],
    /// A1111's inpainting mask (frame size, blurred by `mask_overlay_blur`, white where the model
    /// paints); `None`: the whole frame is repainted.
    pub mask: Option<&'a GrayImage>,
    /// How the masked latents start (A1111's latent noise / latent nothing), with `mask`.
    pub fill: crate::mask::LatentFill,
}

/// Paints `req` with A1111's steps around a masked img2img when `mask` is set (the frame's
/// blurred inpainting mask): an all-black mask is no mask (Deforum's `check_mask_for_errors`);
/// with `full_res_mask` the model paints the crop around the mask at the frame size; `fill`
/// modes other than `original` paint the masked area from its surroundings first; the result
/// goes back under A1111's overlay (the init image where the mask is black).
pub(crate) fn paint_masked(
    painter: &mut dyn Painter,
    req: &FrameRequest,
    mask: Option<&GrayImage>,
    settings: &crate::scene::MaskSettings,
) -> Result<(RgbImage, StageTimes)> {
    use crate::mask::LatentFill;
    use crate::scene::MaskFill;
    let (Some(mask), Some(init)) = (mask, req.init) else {
        return painter.paint(req);
    };
    if mask.as_raw().iter().all(|&v| v == 0) {
        return painter.paint(&FrameRequest {
            mask: None,
            ..req.clone()
        });
    }
    let full_res = settings
        .full_res_mask
        .then_some(settings.full_res_mask_padding);
    let fill = settings.fill != MaskFill::Original;
    let Some(prep) = crate::mask::a1111::Inpainting::new(init, mask, full_res, fill) else {
        return painter.paint(&FrameRequest {
            mask: None,
            ..req.clone()
        });
    };
    let (out, times) = painter.paint(&FrameRequest {
        init: Some(&prep.init),
        mask: Some(&prep.mask),
        fill: match settings.fill {
            MaskFill::LatentNoise => LatentFill::Noise,
            MaskFill::LatentNothing => LatentFill::Nothing,
            MaskFill::Fill | MaskFill::Original => LatentFill::Original,
        },
        ..req.clone()
    })?;
    Ok((prep.finish(&out), times))
}

/// Repaints a prepared frame: txt2img when the request has no init image, img2img otherwise.
pub(crate) trait Painter {
    /// The execution provider doing the work, for the manifest.
    fn provider(&self) -> &'static str {
        "none"
    }
    /// Model loads so far, for the manifest.
    fn loads(&self) -> usize {
        0
    }
    /// Checks, before the first frame, that the models can do what the scene asks of them.
    fn check(&mut self, _scene: &Scene, _sched: &FrameSchedules) -> Result<()> {
        Ok(())
    }
    /// The repainted frame and the time its stages took.
    fn paint(&mut self, req: &FrameRequest) -> Result<(RgbImage, StageTimes)>;
}

/// What a model must be able to do for a scene: its frame size and clip skips, checked for
/// the scene's model before frame 0 and for a checkpoint's model when it loads.
#[derive(Default)]
struct Fit {
    scene_file: PathBuf,
    size_keys: String,
    size: (u32, u32),
    /// Each clip skip the schedule asks for, with its first frame.
    clip_skips: Vec<(u32, usize)>,
}

impl Fit {
    fn new(scene: &Scene, sched: &FrameSchedules) -> Fit {
        let mut clip_skips: Vec<(u32, usize)> = Vec::new();
        for frame in 0..sched.frames() {
            let k = clip_skip(&sched.at(frame));
            if !clip_skips.iter().any(|(c, _)| *c == k) {
                clip_skips.push((k, frame));
            }
        }
        Fit {
            scene_file: scene.path.clone(),
            size_keys: scene.size_keys(),
            size: (scene.image.width, scene.image.height),
            clip_skips,
        }
    }

    /// Whether the model in `folder` (loaded as `pipeline`) fits.
    fn check(&self, folder: &Path, pipeline: &Pipeline) -> Result<()> {
        check_size(&self.scene_file, &self.size_keys, self.size, folder)?;
        for &(k, frame) in &self.clip_skips {
            pipeline.check_clip_skip(k).with_context(|| {
                format!(
                    "{}: [generation] clipskip = {k} at frame {frame}: the text encoder in {} cannot give it",
                    self.scene_file.display(),
                    folder.display()
                )
            })?;
        }
        Ok(())
    }
}

/// A1111's clip skip of a frame (at least 1).
fn clip_skip(v: &FrameValues) -> u32 {
    v.clipskip.round().max(1.0) as u32
}

/// Whether the model in `folder` can make frames of `size` (from its `unet/config.json`, without
/// loading it); the error names the scene's keys and the sizes that fit.
fn check_size(scene_file: &Path, size_keys: &str, size: (u32, u32), folder: &Path) -> Result<()> {
    crate::diffusion::pipeline::check_frame_size(folder, size.0, size.1).with_context(|| {
        format!(
            "{}: {size_keys}: not a size the model in {} can make",
            scene_file.display(),
            folder.display()
        )
    })
}

/// Whether the model in `folder` can make the scene's frame size (from its `unet/config.json`,
/// without loading it); the error names the scene's keys and the sizes that fit.
///
/// # Errors
/// A size the model cannot make.
pub fn check_model_size(scene: &Scene, folder: &Path) -> Result<()> {
    check_size(
        &scene.path,
        &scene.size_keys(),
        (scene.image.width, scene.image.height),
        folder,
    )
}

/// The loaded pipelines: the scene's model plus the checkpoint schedule's, most recently used
/// last, at most `capacity` of them.
pub(crate) struct Diffuse {
    default_folder: PathBuf,
    pipelines: Vec<(PathBuf, Pipeline)>,
    capacity: usize,
    session: SessionOptions,
    /// Pipeline loads so far (for the manifest and tests).
    loads: usize,
    /// What a checkpoint's model must fit, from [`Painter::check`].
    fit: Fit,
    /// The scene has ControlNet units: pipelines load a UNet that takes their conditioning.
    controlled: bool,
    /// The separate ControlNets, each loaded once.
    nets: Vec<ControlNet>,
    /// Per scene unit: its net in `nets` (separate ControlNets) or its slot in a merged UNet.
    unit_net: Vec<Option<usize>>,
    /// The scene's model has its ControlNets merged into the UNet.
    merged: bool,
}

impl Diffuse {
    /// The painter of the model in `folder`, loaded as `pipeline`.
    pub fn new(
        folder: PathBuf,
        pipeline: Pipeline,
        capacity: usize,
        session: SessionOptions,
        controlled: bool,
    ) -> Diffuse {
        Diffuse {
            merged: pipeline.merged_controlnets().is_some(),
            default_folder: folder.clone(),
            pipelines: vec![(folder, pipeline)],
            capacity: capacity.max(1),
            session,
            loads: 1,
            fit: Fit::default(),
            controlled,
            nets: Vec::new(),
            unit_net: Vec::new(),
        }
    }

    /// Loads the scene's ControlNets (each folder once) and checks that they fit `pipeline`: a
    /// separate ControlNet needs a UNet with residual inputs of the same shapes; a UNet with
    /// ControlNets merged in takes as many units as it has nets, in `Balanced` mode.
    fn load_controlnets(&mut self, scene: &Scene) -> Result<()> {
        let file = scene.path.display().to_string();
        let (_, pipeline) = &self.pipelines[0];
        let units = controlnet::model_folders(scene);
        self.unit_net = vec![None; scene.controlnet.len()];
        if let Some(merged) = pipeline.merged_controlnets() {
            if units.len() > merged {
                bail!(
                    "{file}: {} ControlNet units are on, but the UNet of {} has {merged} ControlNet(s) merged in",
                    units.len(),
                    pipeline.folder().display()
                );
            }
            for (slot, (i, _)) in units.iter().enumerate() {
                let mode: ControlMode = scene.controlnet[*i].control_mode.parse()?;
                if mode != ControlMode::Balanced {
                    bail!(
                        "{file}: ControlNet unit {}: control_mode {:?} weights each residual, which a UNet with \
                         its ControlNets merged in cannot do (it takes one scale per net); use \"Balanced\" or an \
                         export with separate ControlNets",
                        i + 1,
                        scene.controlnet[*i].control_mode
                    );
                }
                self.unit_net[*i] = Some(slot);
            }
            return Ok(());
        }
        let mut nets: Vec<ControlNet> = Vec::new();
        for (i, folder) in &units {
            let key = controlnet::key_name(scene, *i, "model");
            let Some(folder) = folder else {
                bail!(
                    "{file}: {key}: no model; name a ControlNet ONNX folder (model.onnx and config.json)"
                );
            };
            let k = match nets.iter().position(|n| n.folder() == folder) {
                Some(k) => k,
                None => {
                    nets.push(
                        ControlNet::load(folder, &self.session)
                            .with_context(|| format!("{file}: {key}"))?,
                    );
                    nets.len() - 1
                }
            };
            pipeline
                .check_controlnet(&nets[k])
                .with_context(|| format!("{file}: {key}"))?;
            self.unit_net[*i] = Some(k);
        }
        self.nets = nets;
        Ok(())
    }

    /// The pipeline of `checkpoint`, or of the scene's model.
    fn pipeline_for(&mut self, checkpoint: Option<&Path>, frame: usize) -> Result<&mut Pipeline> {
        let folder = checkpoint.map_or_else(|| self.default_folder.clone(), Path::to_path_buf);
        if let Some(pos) = self.pipelines.iter().position(|(f, _)| *f == folder) {
            let entry = self.pipelines.remove(pos);
            self.pipelines.push(entry);
        } else {
            if self.pipelines.len() >= self.capacity {
                self.pipelines.remove(0);
            }
            let load = if self.controlled {
                Pipeline::load_controlled
            } else {
                Pipeline::load_with
            };
            let p = load(&folder, &self.session).with_context(|| {
                format!(
                    "{}: [generation] checkpoint at frame {frame}: cannot load {}",
                    self.fit.scene_file.display(),
                    folder.display()
                )
            })?;
            self.fit
                .check(&folder, &p)
                .with_context(|| format!("[generation] checkpoint at frame {frame}"))?;
            if p.merged_controlnets().is_some() != self.merged {
                bail!(
                    "[generation] checkpoint at frame {frame}: {} and {} take ControlNets differently (one has them \
                     merged into its UNet); use exports of the same kind",
                    folder.display(),
                    self.default_folder.display()
                );
            }
            for net in &self.nets {
                p.check_controlnet(net)
                    .with_context(|| format!("[generation] checkpoint at frame {frame}"))?;
            }
            self.loads += 1;
            self.pipelines.push((folder, p));
        }
        Ok(&mut self.pipelines.last_mut().expect("just pushed").1)
    }
}

impl Painter for Diffuse {
    fn provider(&self) -> &'static str {
        self.pipelines
            .last()
            .map(|(_, p)| p.provider())
            .unwrap_or("none")
    }

    fn loads(&self) -> usize {
        self.loads
    }

    fn check(&mut self, scene: &Scene, sched: &FrameSchedules) -> Result<()> {
        self.fit = Fit::new(scene, sched);
        let (folder, pipeline) = &self.pipelines[0];
        self.fit.check(folder, pipeline)?;
        if self.controlled {
            self.load_controlnets(scene)?;
        }
        Ok(())
    }

    fn paint(&mut self, req: &FrameRequest) -> Result<(RgbImage, StageTimes)> {
        let v = req.values;
        let travel = req.travel.as_ref().map(|(p, w)| Travel {
            prompt: &p.positive,
            negative: &p.negative,
            weight: *w,
            slerp: req.slerp,
        });
        let sampler = SamplerKind::from_name(v.sampler)?;
        let eta = match sampler {
            SamplerKind::Ddim => v.ddim_eta,
            _ => v.ancestral_eta,
        };
        let request = Request {
            prompt: &req.prompt.positive,
            negative: &req.prompt.negative,
            width: req.size.0,
            height: req.size.1,
            init: req.init,
            denoise: req.denoise,
            steps: v.steps as usize,
            cfg_scale: v.cfg_scale as f32,
            sampler,
            eta: eta as f32,
            noise_multiplier: v.noise_multiplier as f32,
            prompt_syntax: PromptSyntax::A1111,
            clip_skip: clip_skip(v),
            subseed: Some((
                crate::seeds::subseed(v.subseed, req.seed, req.frame),
                v.subseed_strength as f32,
            )),
            travel,
            // InstructPix2Pix edits the frame's init image (Deforum, A1111); other models ignore it
            pix2pix: Some(Pix2Pix {
                image: None,
                image_cfg_scale: v.pix2pix_img_cfg_scale as f32,
            }),
            mask: req.mask.map(|image| Inpaint {
                image,
                fill: req.fill,
            }),
        };
        let frame = req.frame;
        let mut units = Vec::with_capacity(req.control.len());
        for c in req.control {
            let net = self
                .unit_net
                .get(c.unit)
                .copied()
                .flatten()
                .ok_or_else(|| {
                    anyhow::anyhow!("ControlNet unit {} has no model loaded", c.unit + 1)
                })?;
            units.push(ControlUnit {
                net,
                image: &c.map,
                scale: c.weight,
                start: c.start,
                end: c.end,
                mode: c.mode,
                window: c.window,
            });
        }
        self.pipeline_for(req.checkpoint.as_deref(), frame)?;
        let p = &mut self.pipelines.last_mut().expect("just loaded").1;
        let mut control = Control {
            nets: &mut self.nets,
            units: &units,
        };
        let control =
            (!units.is_empty() || p.merged_controlnets().is_some()).then_some(&mut control);
        p.generate_with(&request, &mut TorchRng::new(req.seed as u64), control)
            .with_context(|| format!("generating frame {frame}"))
    }
}
