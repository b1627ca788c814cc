//! Parseq manifests (`[parseq] manifest`, Deforum's `parseq_manifest`): the per-frame values
//! Parseq renders replace the schedules they cover, as Deforum's Parseq adapter maps them.
//!
//! A manifest is Parseq's JSON export: `rendered_frames` holds one object per frame with
//! `frame` and a number per managed field (plus `<field>_delta` and `<field>_pc`), `options`
//! holds `output_fps` and `cadence`. A schedule is replaced when `rendered_frames[0]` has its
//! field; the series is built as Deforum builds it: each rendered frame's value at its index,
//! and from the last rendered frame on, the last value held. Gaps are errors (Deforum leaves
//! NaN there).

use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::validate::MAX_FRAMES;
use super::{ParseqSettings, Scene};

/// Motion fields whose per-frame increment Deforum takes from `<field>_delta` when
/// `use_deltas` is on (else from `<field>`).
pub const DELTA_FIELDS: &[&str] = &[
    "angle",
    "zoom",
    "translation_x",
    "translation_y",
    "translation_z",
    "rotation_3d_x",
    "rotation_3d_y",
    "rotation_3d_z",
    "perspective_flip_theta",
    "perspective_flip_phi",
    "perspective_flip_gamma",
];

/// anim schedules whose Parseq field is not the Deforum key without `_schedule`.
const RENAMED: &[(&str, &str)] = &[
    ("cfg_scale", "scale"),
    ("steps", "steps_schedule"),
    ("kernel", "antiblur_kernel"),
    ("sigma", "antiblur_sigma"),
    ("amount", "antiblur_amount"),
    ("threshold", "antiblur_threshold"),
];

/// The Parseq field holding the per-frame prompt (`positive --neg negative`).
pub const PROMPT_FIELD: &str = "deforum_prompt";

/// The Parseq field that replaces anim schedule `name` (a registry column or `cn_N_weight` /
/// `cn_N_guidance_start` / `cn_N_guidance_end`), as Deforum's adapter names it: motion fields
/// take `_delta` with `use_deltas`, a few are renamed, the rest are the Deforum key without
/// `_schedule`.
pub fn field_for(name: &str, use_deltas: bool) -> String {
    if DELTA_FIELDS.contains(&name) {
        return if use_deltas {
            format!("{name}_delta")
        } else {
            name.to_string()
        };
    }
    if let Some((_, f)) = RENAMED.iter().find(|(n, _)| *n == name) {
        return (*f).to_string();
    }
    match super::registry::def(name) {
        Some(d) => d.deforum.trim_end_matches("_schedule").to_string(),
        None => name.to_string(),
    }
}

/// A Parseq manifest, checked: at least one rendered frame, each with a frame number.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Where it came from, for messages (`tests/x.json`, or "the inline manifest").
    label: String,
    /// `rendered_frames`: (frame number, the frame's fields), in file order.
    frames: Vec<(usize, Map<String, Value>)>,
    /// `options.output_fps`, when a positive number.
    output_fps: Option<f64>,
    /// `options.cadence`, when a positive number.
    cadence: Option<f64>,
    /// sha256 of the manifest text, for the scene's fingerprint.
    digest: String,
}

/// Whether `value` is a URL rather than JSON text or a file path.
pub fn is_url(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    v.starts_with("http://") || v.starts_with("https://")
}

impl Manifest {
    /// Reads `value` as Deforum does: JSON text when it starts with `{`, else the path of a
    /// manifest file, relative to `base` (the scene's folder). A URL is refused: anim fetches
    /// nothing over the network.
    ///
    /// # Errors
    /// A URL, an unreadable file, or a manifest [`Manifest::parse`] refuses.
    pub fn read(value: &str, base: &Path) -> Result<Manifest, String> {
        let v = value.trim();
        if is_url(v) {
            return Err(format!(
                "\"{v}\" is a URL; anim fetches nothing over the network: download the manifest \
                 (Parseq's \"Copy URL\" link opens it, or use Parseq's JSON export) and set the \
                 key to the file's path"
            ));
        }
        if v.starts_with('{') {
            return Manifest::parse(v, "the inline manifest");
        }
        let path = base.join(v);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "cannot read the manifest file {}: {e} (the value is JSON text starting with `{{` \
                 or the path of a manifest file, relative to the scene file)",
                path.display()
            )
        })?;
        Manifest::parse(&text, &path.display().to_string())
    }

    /// Parses and checks manifest text; `label` names it in messages.
    ///
    /// # Errors
    /// Not JSON, not an object, no `rendered_frames` or none in it, a rendered frame that is
    /// not an object or lacks a whole, non-negative `frame` below [`MAX_FRAMES`], or non-numeric
    /// `options.output_fps` / `options.cadence`.
    pub fn parse(text: &str, label: &str) -> Result<Manifest, String> {
        use sha2::{Digest, Sha256};
        let v: Value = serde_json::from_str(text).map_err(|e| {
            format!(
                "{label}: line {}, column {}: not valid JSON: {e} (a Parseq manifest is the JSON \
                 Parseq exports)",
                e.line(),
                e.column()
            )
        })?;
        let Value::Object(mut top) = v else {
            return Err(format!("{label}: a Parseq manifest is a JSON object"));
        };
        let frames = match top.remove("rendered_frames") {
            Some(Value::Array(a)) if !a.is_empty() => a,
            Some(Value::Array(_)) => {
                return Err(format!(
                    "{label}: `rendered_frames` is empty: render the frames in Parseq before \
                     exporting the manifest"
                ));
            }
            Some(other) => {
                return Err(format!(
                    "{label}: `rendered_frames` = {}: expected a list of frames",
                    short(&other)
                ));
            }
            None => {
                return Err(format!(
                    "{label}: no `rendered_frames` (the per-frame values Parseq renders): not a \
                     Parseq manifest, or exported before rendering"
                ));
            }
        };
        let mut out = Vec::with_capacity(frames.len());
        for (i, f) in frames.into_iter().enumerate() {
            let map = match f {
                Value::Object(map) => map,
                other => {
                    return Err(format!(
                        "{label}: rendered_frames[{i}] = {}: expected an object of field values",
                        short(&other)
                    ));
                }
            };
            let n = map.get("frame").and_then(Value::as_f64);
            let frame = match n {
                Some(x) if x >= 0.0 && x.fract() == 0.0 && x < MAX_FRAMES as f64 => x as usize,
                _ => {
                    return Err(format!(
                        "{label}: rendered_frames[{i}] has `frame` = {}: expected a frame number \
                         within 0..{MAX_FRAMES}",
                        map.get("frame")
                            .map(short)
                            .unwrap_or_else(|| "nothing".into())
                    ));
                }
            };
            out.push((frame, map));
        }
        let options = top.get("options").and_then(Value::as_object);
        let option = |k: &str| -> Result<Option<f64>, String> {
            match options.and_then(|o| o.get(k)) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_f64() {
                    Some(x) if x.is_finite() => Ok(Some(x).filter(|x| *x != 0.0)),
                    _ => Err(format!(
                        "{label}: `options.{k}` = {}: expected a number",
                        short(v)
                    )),
                },
            }
        };
        Ok(Manifest {
            label: label.to_string(),
            output_fps: option("output_fps")?,
            cadence: option("cadence")?,
            frames: out,
            digest: format!("{:x}", Sha256::digest(text.as_bytes())),
        })
    }

    /// Where the manifest came from, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Number of rendered frames (Deforum's max_frames with the overrides on).
    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    /// `options.output_fps`, when a non-zero number.
    pub fn output_fps(&self) -> Option<f64> {
        self.output_fps
    }

    /// `options.cadence`, when a non-zero number.
    pub fn cadence(&self) -> Option<f64> {
        self.cadence
    }

    /// sha256 (hex) of the manifest text.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether Parseq manages `field`: the first rendered frame has it (Deforum's test).
    pub fn manages(&self, field: &str) -> bool {
        self.frames[0].1.get(field).is_some_and(|v| !v.is_null())
    }

    /// The fields of the first rendered frame, without `frame` and the `_delta` / `_pc`
    /// companions.
    pub fn fields(&self) -> Vec<&str> {
        self.frames[0]
            .1
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "frame" && !k.ends_with("_delta") && !k.ends_with("_pc"))
            .collect()
    }

    /// Deforum's series of `field` over `frames` frames, with `get` reading a value: each
    /// rendered frame's value at its index (the latest wins on a duplicate), the last rendered
    /// frame's value from its index to the end.
    fn series_with<T: Clone>(
        &self,
        field: &str,
        frames: usize,
        get: impl Fn(&Value) -> Option<T>,
        want: &str,
    ) -> Result<Vec<T>, String> {
        let value = |frame: usize, map: &Map<String, Value>| -> Result<T, String> {
            match map.get(field) {
                None => Err(format!(
                    "{}: rendered frame {frame} has no `{field}` (frame 0 has it, so every \
                     rendered frame needs it)",
                    self.label
                )),
                Some(v) => get(v).ok_or_else(|| {
                    format!(
                        "{}: `{field}` at rendered frame {frame} is {}: expected {want}",
                        self.label,
                        short(v)
                    )
                }),
            }
        };
        let mut out: Vec<Option<T>> = vec![None; frames];
        for (frame, map) in &self.frames {
            if *frame < frames {
                out[*frame] = Some(value(*frame, map)?);
            }
        }
        let (last, map) = self.frames.last().expect("a manifest has a rendered frame");
        let held = value(*last, map)?;
        for slot in out.iter_mut().skip(*last) {
            *slot = Some(held.clone());
        }
        if let Some(gap) = out.iter().position(Option::is_none) {
            let end = out[gap..]
                .iter()
                .position(Option::is_some)
                .map_or(frames, |n| gap + n);
            return Err(format!(
                "{}: rendered_frames has no frame {} for `{field}`: Parseq renders every frame \
                 from the first keyframe (at frame 0) to the last; render and export the manifest \
                 again",
                self.label,
                if end - gap > 1 {
                    format!("{gap}..={}", end - 1)
                } else {
                    gap.to_string()
                }
            ));
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// The numeric series of `field` over `frames` frames (see the module doc).
    ///
    /// # Errors
    /// A rendered frame without the field or with a value that is not a finite number, and
    /// frames no rendered frame covers.
    pub fn series(&self, field: &str, frames: usize) -> Result<Vec<f64>, String> {
        self.series_with(
            field,
            frames,
            |v| v.as_f64().filter(|x| x.is_finite()),
            "a number",
        )
    }

    /// The per-frame prompt (`deforum_prompt`, `positive --neg negative`) over `frames` frames.
    ///
    /// # Errors
    /// As [`Manifest::series`], for a value that is not text.
    pub fn prompts(&self, frames: usize) -> Result<Vec<String>, String> {
        self.series_with(
            PROMPT_FIELD,
            frames,
            |v| v.as_str().map(str::to_string),
            "text",
        )
    }
}

/// A JSON value for a message, cut to 60 characters.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

/// Replaces every column of `numeric` that the manifest manages with its Parseq series.
///
/// # Errors
/// As [`Manifest::series`].
pub fn apply(
    m: &Manifest,
    use_deltas: bool,
    frames: usize,
    numeric: &mut [(String, Vec<f64>)],
) -> Result<(), String> {
    for (name, values) in numeric.iter_mut() {
        let field = field_for(name, use_deltas);
        if m.manages(&field) {
            *values = m.series(&field, frames)?;
        }
    }
    Ok(())
}

/// The fields the manifest gives that no anim schedule of `columns` takes (nor the prompt):
/// for a warning.
pub fn unused_fields(m: &Manifest, use_deltas: bool, columns: &[&str]) -> Vec<String> {
    let taken: Vec<String> = columns
        .iter()
        .map(|c| field_for(c, use_deltas))
        .map(|f| f.trim_end_matches("_delta").to_string())
        .collect();
    m.fields()
        .into_iter()
        .filter(|f| *f != PROMPT_FIELD && !taken.iter().any(|t| t.as_str() == *f))
        .map(str::to_string)
        .collect()
}

/// A scene's manifest as read, with its prompts when Parseq manages them.
#[derive(Debug)]
pub struct Loaded {
    /// The manifest.
    pub manifest: Manifest,
    /// `deforum_prompt` per frame, when the manifest has it.
    pub prompts: Option<Vec<String>>,
}

impl ParseqSettings {
    /// No manifest is set (the table is left out of a written scene).
    pub fn is_off(&self) -> bool {
        self.manifest.as_deref().is_none_or(|m| m.trim().is_empty())
    }
}

impl Scene {
    /// The manifest read when the scene was validated, if `[parseq] manifest` is set.
    pub fn parseq_manifest(&self) -> Option<&Manifest> {
        self.parseq_data.as_ref().map(|p| &p.manifest)
    }

    /// Parseq's per-frame prompts, when the manifest manages the prompts.
    pub(super) fn parseq_prompts(&self) -> Option<&[String]> {
        self.parseq_data.as_ref()?.prompts.as_deref()
    }

    /// Reads `[parseq] manifest` and applies what it decides beyond schedules: with
    /// `non_schedule_overrides`, max_frames, fps and cadence; the seed behaviour `schedule` when
    /// it gives seeds (as Deforum forces it); a warning listing the fields anim has no schedule
    /// for.
    pub(super) fn load_parseq(&mut self) -> Result<(), String> {
        const KEY: &str = "[parseq] manifest";
        self.parseq_data = None;
        let Some(value) = self
            .parseq
            .manifest
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
        else {
            return Ok(());
        };
        let base = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let m = Manifest::read(value, &base).map_err(|e| format!("{KEY}: {e}"))?;
        if self.parseq.non_schedule_overrides {
            let before = (
                self.animation.max_frames,
                self.output.fps,
                self.cadence.diffusion_cadence,
            );
            self.animation.max_frames = m.frame_count();
            if let Some(fps) = m.output_fps() {
                self.output.fps = fps;
            }
            if let Some(c) = m.cadence() {
                if !(c >= 1.0 && c.fract() == 0.0 && c <= super::MAX_CADENCE as f64) {
                    return Err(format!(
                        "{KEY}: {}: `options.cadence` = {c}: expected a whole number of frames \
                         within 1..={} (or set [parseq] non_schedule_overrides = false)",
                        m.label(),
                        super::MAX_CADENCE
                    ));
                }
                self.cadence.diffusion_cadence = c as usize;
            }
            let after = (
                self.animation.max_frames,
                self.output.fps,
                self.cadence.diffusion_cadence,
            );
            if after != before {
                self.warn(format!(
                    "{KEY}: {} sets max_frames {}, fps {} and diffusion_cadence {} (the scene's \
                     {}, {}, {}): [parseq] non_schedule_overrides = false keeps the scene's",
                    m.label(),
                    after.0,
                    after.1,
                    after.2,
                    before.0,
                    before.1,
                    before.2
                ));
            }
        }
        if m.manages("seed") {
            self.generation.seed_behavior = super::SeedBehavior::Schedule;
        }
        let frames = self.animation.max_frames;
        // a max_frames out of range is refused right after this, by `validate`
        let prompts = if m.manages(PROMPT_FIELD) && frames <= MAX_FRAMES {
            Some(m.prompts(frames).map_err(|e| format!("{KEY}: {e}"))?)
        } else {
            None
        };
        let mut columns: Vec<String> = super::registry::SCHEDULES
            .iter()
            .filter(|d| d.kind == super::registry::Kind::Numeric)
            .map(|d| d.name.to_string())
            .collect();
        for i in 1..=self.controlnet.len() {
            for (k, _) in super::registry::CONTROLNET_SCHEDULES {
                columns.push(format!("cn_{i}_{k}"));
            }
        }
        let names: Vec<&str> = columns.iter().map(String::as_str).collect();
        let unused = unused_fields(&m, self.parseq.use_deltas, &names);
        if !unused.is_empty() {
            self.warn(format!(
                "{KEY}: {} gives fields anim has no schedule for, ignored ({}): {}",
                m.label(),
                unused.len(),
                unused.join(", ")
            ));
        }
        self.parseq_data = Some(Arc::new(Loaded {
            manifest: m,
            prompts,
        }));
        Ok(())
    }

    /// Replaces the evaluated columns the manifest manages (see [`apply`]).
    pub(super) fn apply_parseq(&self, numeric: &mut [(String, Vec<f64>)]) -> Result<(), String> {
        match &self.parseq_data {
            Some(p) => apply(
                &p.manifest,
                self.parseq.use_deltas,
                self.animation.max_frames,
                numeric,
            )
            .map_err(|e| format!("[parseq] manifest: {e}")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_follow_deforum() {
        assert_eq!(field_for("zoom", true), "zoom_delta");
        assert_eq!(field_for("zoom", false), "zoom");
        assert_eq!(field_for("cfg_scale", true), "scale");
        assert_eq!(field_for("steps", true), "steps_schedule");
        assert_eq!(field_for("noise", true), "noise");
        assert_eq!(
            field_for("perspective_flip_fv", true),
            "perspective_flip_fv"
        );
        assert_eq!(field_for("fov", true), "fov");
        assert_eq!(field_for("aspect_ratio", true), "aspect_ratio");
        assert_eq!(field_for("seed", true), "seed");
        assert_eq!(field_for("noise_multiplier", true), "noise_multiplier");
        assert_eq!(field_for("cn_2_weight", true), "cn_2_weight");
    }

    #[test]
    fn held_last_value_and_gaps() {
        let m = Manifest::parse(
            r#"{"rendered_frames": [{"frame": 0, "a": 1}, {"frame": 1, "a": 2}]}"#,
            "m",
        )
        .unwrap();
        assert_eq!(m.series("a", 4).unwrap(), [1.0, 2.0, 2.0, 2.0]);
        assert_eq!(m.series("a", 1).unwrap(), [1.0]);
        let gap = Manifest::parse(
            r#"{"rendered_frames": [{"frame": 0, "a": 1}, {"frame": 3, "a": 2}]}"#,
            "m",
        )
        .unwrap();
        let e = gap.series("a", 5).unwrap_err();
        assert!(e.contains("no frame 1..=2") && e.contains("`a`"), "{e}");
    }
}
