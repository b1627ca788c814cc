//! The operations on a moved frame before img2img, in Deforum's order: colour match, grayscale,
//! contrast, anti-blur, noise. Each is a named [`Stage`]; the loop runs [`pre_diffusion`]'s list
//! in order and records each one's time under its name, so a new operation (a hybrid-video
//! composite, a mask, a flow warp) is one more item in that list.

use image::RgbImage;

use crate::effects::{self, color::ColorTarget, noise::NoiseKind};
use crate::scene::{ColorCoherence, FrameValues, Scene};

/// What a stage may read about the frame it works on.
pub(crate) struct StageInput<'a> {
    /// Every schedule's value at the frame.
    pub values: &'a FrameValues<'a>,
    /// The frame's seed.
    pub seed: i64,
    /// The colour-coherence target, once frame 0 (or the reference image) has set it.
    pub color: Option<&'a ColorTarget>,
    pub noise_mask: Option<&'a image::GrayImage>,
}

/// One operation on the frame before it is repainted.
pub(crate) trait Stage {
    /// Its name: the manifest records its time as `<name>_ms`.
    fn name(&self) -> &'static str;
    /// The frame after the operation.
    fn apply(&self, img: RgbImage, input: &StageInput) -> RgbImage;
}

/// Histogram matching to the colour-coherence sample (Deforum's `maintain_colors`).
struct ColorMatch;

impl Stage for ColorMatch {
    fn name(&self) -> &'static str {
        "color"
    }
    fn apply(&self, img: RgbImage, input: &StageInput) -> RgbImage {
        match input.color {
            Some(target) => target.apply(&img),
            None => img,
        }
    }
}

/// `color_force_grayscale`.
struct Grayscale;

impl Stage for Grayscale {
    fn name(&self) -> &'static str {
        "grayscale"
    }
    fn apply(&self, mut img: RgbImage, _: &StageInput) -> RgbImage {
        effects::grayscale(&mut img);
        img
    }
}

/// The contrast schedule.
struct Contrast;

impl Stage for Contrast {
    fn name(&self) -> &'static str {
        "contrast"
    }
    fn apply(&self, mut img: RgbImage, input: &StageInput) -> RgbImage {
        effects::contrast(&mut img, input.values.contrast);
        img
    }
}

/// The anti-blur unsharp mask (off where `amount` is 0).
struct AntiBlur;

impl Stage for AntiBlur {
    fn name(&self) -> &'static str {
        "sharpen"
    }
    fn apply(&self, img: RgbImage, input: &StageInput) -> RgbImage {
        let v = input.values;
        if v.amount > 0.0 {
            effects::sharpen::unsharp_mask(&img, v.kernel as usize, v.sigma, v.amount, v.threshold)
        } else {
            img
        }
    }
}

/// Seeded noise blended in by the noise schedule.
struct Noise(NoiseKind);

impl Stage for Noise {
    fn name(&self) -> &'static str {
        "noise"
    }
    fn apply(&self, img: RgbImage, input: &StageInput) -> RgbImage {
        effects::noise::add_noise_masked(
            &img,
            input.values.noise,
            input.seed,
            self.0,
            input.noise_mask,
        )
    }
}

/// The stages a scene's diffused frames go through before img2img, in order.
pub(crate) fn pre_diffusion(scene: &Scene) -> Vec<Box<dyn Stage>> {
    let mut stages: Vec<Box<dyn Stage>> = Vec::new();
    if scene.coherence.color_coherence != ColorCoherence::None {
        stages.push(Box::new(ColorMatch));
    }
    if scene.coherence.color_force_grayscale {
        stages.push(Box::new(Grayscale));
    }
    stages.push(Box::new(Contrast));
    stages.push(Box::new(AntiBlur));
    let kind = match scene.noise.noise_type.as_str() {
        "uniform" => NoiseKind::Uniform,
        _ => NoiseKind::Perlin {
            octaves: scene.noise.perlin_octaves,
            persistence: scene.noise.perlin_persistence,
            res: (8, 8),
        },
    };
    stages.push(Box::new(Noise(kind)));
    stages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(toml: &str) -> Vec<&'static str> {
        // an empty file is refused: an empty table reads as all defaults
        let toml = if toml.is_empty() { "[image]" } else { toml };
        let scene = Scene::from_toml(toml, std::path::Path::new("s.toml")).unwrap();
        pre_diffusion(&scene).iter().map(|s| s.name()).collect()
    }

    #[test]
    fn stages_follow_deforums_order_and_the_scene() {
        assert_eq!(
            names(""),
            vec!["color", "contrast", "sharpen", "noise"],
            "LAB coherence by default"
        );
        assert_eq!(
            names("[coherence]\ncolor_coherence = \"None\"\ncolor_force_grayscale = true\n"),
            vec!["grayscale", "contrast", "sharpen", "noise"]
        );
    }
}
