//! Every schedule a scene can hold: its column name, where it lives in the scene file, its Deforum
//! settings key and its default. One table drives parsing defaults, `anim schedule` columns and the
//! Deforum importer.

/// Whether a schedule yields numbers or text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Interpolated numbers.
    Numeric,
    /// Text held until the next key (sampler, checkpoint).
    Text,
}

/// One schedule.
#[derive(Debug, Clone, Copy)]
pub struct ScheduleDef {
    /// Column name in `anim schedule` output (Deforum's name without `_schedule`).
    pub name: &'static str,
    /// Scene table.
    pub table: &'static str,
    /// Key in that table.
    pub key: &'static str,
    /// Deforum settings key.
    pub deforum: &'static str,
    /// Deforum's `enable_*` switch, and the value Deforum effectively uses when it is off.
    pub enabled_by: Option<(&'static str, &'static str)>,
    /// Default keyframe string (Deforum's effective default).
    pub default: &'static str,
    /// Numbers or text.
    pub kind: Kind,
}

const fn num(
    name: &'static str,
    table: &'static str,
    deforum: &'static str,
    default: &'static str,
) -> ScheduleDef {
    ScheduleDef {
        name,
        table,
        key: name,
        deforum,
        enabled_by: None,
        default,
        kind: Kind::Numeric,
    }
}

const fn switched(
    name: &'static str,
    deforum: &'static str,
    switch: &'static str,
    off: &'static str,
    default: &'static str,
) -> ScheduleDef {
    ScheduleDef {
        name,
        table: "generation",
        key: name,
        deforum,
        enabled_by: Some((switch, off)),
        default,
        kind: Kind::Numeric,
    }
}

/// All schedules except ControlNet's (see [`CONTROLNET_SCHEDULES`]), in `anim schedule` column order.
pub const SCHEDULES: &[ScheduleDef] = &[
    num("angle", "motion", "angle", "0: (0)"),
    num(
        "zoom",
        "motion",
        "zoom",
        "0: (1.0025+0.002*sin(1.25*3.14*t/30))",
    ),
    num("translation_x", "motion", "translation_x", "0: (0)"),
    num("translation_y", "motion", "translation_y", "0: (0)"),
    num("translation_z", "motion", "translation_z", "0: (1.75)"),
    num(
        "transform_center_x",
        "motion",
        "transform_center_x",
        "0: (0.5)",
    ),
    num(
        "transform_center_y",
        "motion",
        "transform_center_y",
        "0: (0.5)",
    ),
    num("rotation_3d_x", "motion", "rotation_3d_x", "0: (0)"),
    num("rotation_3d_y", "motion", "rotation_3d_y", "0: (0)"),
    num("rotation_3d_z", "motion", "rotation_3d_z", "0: (0)"),
    num(
        "perspective_flip_theta",
        "motion",
        "perspective_flip_theta",
        "0: (0)",
    ),
    num(
        "perspective_flip_phi",
        "motion",
        "perspective_flip_phi",
        "0: (0)",
    ),
    num(
        "perspective_flip_gamma",
        "motion",
        "perspective_flip_gamma",
        "0: (0)",
    ),
    num(
        "perspective_flip_fv",
        "motion",
        "perspective_flip_fv",
        "0: (53)",
    ),
    num("fov", "motion", "fov_schedule", "0: (70)"),
    num("near", "motion", "near_schedule", "0: (200)"),
    num("far", "motion", "far_schedule", "0: (10000)"),
    num("aspect_ratio", "motion", "aspect_ratio_schedule", "0: (1)"),
    num("noise", "noise", "noise_schedule", "0: (0.065)"),
    num("strength", "generation", "strength_schedule", "0: (0.65)"),
    num("contrast", "coherence", "contrast_schedule", "0: (1.0)"),
    num("cfg_scale", "generation", "cfg_scale_schedule", "0: (7)"),
    num(
        "pix2pix_img_cfg_scale",
        "generation",
        "pix2pix_img_cfg_scale_schedule",
        "0: (1.5)",
    ),
    switched(
        "steps",
        "steps_schedule",
        "enable_steps_scheduling",
        "steps",
        "0: (25)",
    ),
    ScheduleDef {
        name: "seed",
        table: "generation",
        key: "seed_schedule",
        deforum: "seed_schedule",
        enabled_by: None,
        default: "0:(s), 1:(-1), \"max_f-2\":(-1), \"max_f-1\":(s)",
        kind: Kind::Numeric,
    },
    switched(
        "subseed",
        "subseed_schedule",
        "enable_subseed_scheduling",
        "0: (1)",
        "0: (1)",
    ),
    switched(
        "subseed_strength",
        "subseed_strength_schedule",
        "enable_subseed_scheduling",
        "0: (0)",
        "0: (0)",
    ),
    switched(
        "ddim_eta",
        "ddim_eta_schedule",
        "enable_ddim_eta_scheduling",
        "0: (0)",
        "0: (0)",
    ),
    switched(
        "ancestral_eta",
        "ancestral_eta_schedule",
        "enable_ancestral_eta_scheduling",
        "0: (1)",
        "0: (1)",
    ),
    switched(
        "clipskip",
        "clipskip_schedule",
        "enable_clipskip_scheduling",
        "0: (1)",
        "0: (1)",
    ),
    switched(
        "noise_multiplier",
        "noise_multiplier_schedule",
        "enable_noise_multiplier_scheduling",
        "0: (1)",
        "0: (1.05)",
    ),
    num("kernel", "anti_blur", "kernel_schedule", "0: (5)"),
    num("sigma", "anti_blur", "sigma_schedule", "0: (1)"),
    num("amount", "anti_blur", "amount_schedule", "0: (0.1)"),
    num("threshold", "anti_blur", "threshold_schedule", "0: (0)"),
    num(
        "cadence_flow_factor",
        "cadence",
        "cadence_flow_factor_schedule",
        "0: (1)",
    ),
    num(
        "redo_flow_factor",
        "cadence",
        "redo_flow_factor_schedule",
        "0: (1)",
    ),
    ScheduleDef {
        name: "hybrid_comp_alpha",
        table: "hybrid",
        key: "comp_alpha",
        deforum: "hybrid_comp_alpha_schedule",
        enabled_by: None,
        default: "0:(0.5)",
        kind: Kind::Numeric,
    },
    ScheduleDef {
        name: "hybrid_comp_mask_blend_alpha",
        table: "hybrid",
        key: "comp_mask_blend_alpha",
        deforum: "hybrid_comp_mask_blend_alpha_schedule",
        enabled_by: None,
        default: "0:(0.5)",
        kind: Kind::Numeric,
    },
    ScheduleDef {
        name: "hybrid_comp_mask_contrast",
        table: "hybrid",
        key: "comp_mask_contrast",
        deforum: "hybrid_comp_mask_contrast_schedule",
        enabled_by: None,
        default: "0:(1)",
        kind: Kind::Numeric,
    },
    ScheduleDef {
        name: "hybrid_comp_mask_auto_contrast_cutoff_low",
        table: "hybrid",
        key: "comp_mask_auto_contrast_cutoff_low",
        deforum: "hybrid_comp_mask_auto_contrast_cutoff_low_schedule",
        enabled_by: None,
        default: "0:(0)",
        kind: Kind::Numeric,
    },
    ScheduleDef {
        name: "hybrid_comp_mask_auto_contrast_cutoff_high",
        table: "hybrid",
        key: "comp_mask_auto_contrast_cutoff_high",
        deforum: "hybrid_comp_mask_auto_contrast_cutoff_high_schedule",
        enabled_by: None,
        default: "0:(100)",
        kind: Kind::Numeric,
    },
    ScheduleDef {
        name: "hybrid_flow_factor",
        table: "hybrid",
        key: "flow_factor",
        deforum: "hybrid_flow_factor_schedule",
        enabled_by: None,
        default: "0:(1)",
        kind: Kind::Numeric,
    },
    ScheduleDef {
        name: "image_strength",
        table: "looper",
        key: "image_strength",
        deforum: "image_strength_schedule",
        enabled_by: None,
        default: "0:(0.75)",
        kind: Kind::Numeric,
    },
    ScheduleDef {
        name: "blend_factor_max",
        table: "looper",
        key: "blend_factor_max",
        deforum: "blendFactorMax",
        enabled_by: None,
        default: "0:(0.35)",
        kind: Kind::Numeric,
    },
    ScheduleDef {
        name: "blend_factor_slope",
        table: "looper",
        key: "blend_factor_slope",
        deforum: "blendFactorSlope",
        enabled_by: None,
        default: "0:(0.25)",
        kind: Kind::Numeric,
    },
    ScheduleDef {
        name: "tweening_frames",
        table: "looper",
        key: "tweening_frames",
        deforum: "tweening_frames_schedule",
        enabled_by: None,
        default: "0:(20)",
        kind: Kind::Numeric,
    },
    ScheduleDef {
        name: "color_correction_factor",
        table: "looper",
        key: "color_correction_factor",
        deforum: "color_correction_factor",
        enabled_by: None,
        default: "0:(0.075)",
        kind: Kind::Numeric,
    },
    ScheduleDef {
        name: "sampler",
        table: "generation",
        key: "sampler",
        deforum: "sampler_schedule",
        enabled_by: Some(("enable_sampler_scheduling", "sampler")),
        default: "Euler a",
        kind: Kind::Text,
    },
    ScheduleDef {
        name: "checkpoint",
        table: "generation",
        key: "checkpoint",
        deforum: "checkpoint_schedule",
        enabled_by: Some(("enable_checkpoint_scheduling", "")),
        default: "",
        kind: Kind::Text,
    },
];

/// ControlNet unit schedules: (column suffix, scene key, Deforum key suffix, default).
pub const CONTROLNET_SCHEDULES: &[(&str, &str)] = &[
    ("weight", "0:(1)"),
    ("guidance_start", "0:(0.0)"),
    ("guidance_end", "0:(1.0)"),
];

/// The definition of a schedule by column name.
pub fn def(name: &str) -> Option<&'static ScheduleDef> {
    SCHEDULES.iter().find(|d| d.name == name)
}

/// The default of the schedule at `table`.`key`; panics on a name missing from [`SCHEDULES`]
/// (a programming error, caught by the registry test).
pub fn default_of(table: &str, key: &str) -> &'static str {
    SCHEDULES
        .iter()
        .find(|d| d.table == table && d.key == key)
        .unwrap_or_else(|| panic!("schedule {table}.{key} is not in the registry"))
        .default
}

/// Evaluated schedules as named columns, one value per frame each: what `anim schedule` prints
/// and plots (all of a scene's schedules, or the ones `--only` selects).
#[derive(Debug, Clone)]
pub struct ScheduleColumns {
    frames: usize,
    numeric: Vec<(String, Vec<f64>)>,
    text: Vec<(String, Vec<String>)>,
}

impl ScheduleColumns {
    /// Number of frames.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Numeric columns: (name, one value per frame), in column order.
    pub fn numeric(&self) -> &[(String, Vec<f64>)] {
        &self.numeric
    }

    /// The values of numeric column `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&[f64]> {
        self.numeric
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The values of text column `name`, if there is one.
    pub fn text(&self, name: &str) -> Option<&[String]> {
        self.text
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Keeps only the named columns (`--only`); unknown names are an error listing the known ones.
    pub fn select(&self, names: &[String]) -> Result<ScheduleColumns, String> {
        let mut numeric = Vec::new();
        let mut text = Vec::new();
        for n in names {
            if let Some(c) = self.numeric.iter().find(|(c, _)| c == n) {
                numeric.push(c.clone());
            } else if let Some(c) = self.text.iter().find(|(c, _)| c == n) {
                text.push(c.clone());
            } else {
                let all: Vec<&str> = self
                    .numeric
                    .iter()
                    .map(|(c, _)| c.as_str())
                    .chain(self.text.iter().map(|(c, _)| c.as_str()))
                    .collect();
                let hint = crate::schedule::expr::did_you_mean(n, all.iter().copied());
                return Err(format!(
                    "unknown schedule `{n}`{hint}; known: {}",
                    all.join(", ")
                ));
            }
        }
        Ok(ScheduleColumns {
            frames: self.frames,
            numeric,
            text,
        })
    }

    /// CSV: `frame,` then one column per numeric schedule; values in shortest round-trip form.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("frame");
        for (n, _) in &self.numeric {
            out.push(',');
            out.push_str(n);
        }
        out.push('\n');
        for i in 0..self.frames {
            out.push_str(&i.to_string());
            for (_, v) in &self.numeric {
                out.push(',');
                out.push_str(&format_number(v[i]));
            }
            out.push('\n');
        }
        out
    }

    /// JSON: `{"frames": N, "schedules": {name: [values]}, "text": {name: [values]}}`.
    pub fn to_json(&self) -> String {
        let mut sched = serde_json::Map::new();
        for (n, v) in &self.numeric {
            sched.insert(n.clone(), serde_json::Value::from(v.clone()));
        }
        let mut text = serde_json::Map::new();
        for (n, v) in &self.text {
            text.insert(n.clone(), serde_json::Value::from(v.clone()));
        }
        let v = serde_json::json!({ "frames": self.frames, "schedules": sched, "text": text });
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }
}

/// Declares [`FrameValues`], one field per schedule of [`SCHEDULES`] in the same order (a unit
/// test holds the two lists together), and [`FrameSchedules::at`].
macro_rules! frame_values {
    (numbers { $( $n:ident ),* $(,)? } texts { $( $t:ident ),* $(,)? }) => {
        /// One frame's value of every schedule, by name: a misspelt schedule is a compile
        /// error. From [`FrameSchedules::at`].
        #[derive(Debug, Clone, PartialEq)]
        pub struct FrameValues<'a> {
            $(
                #[doc = concat!("`", stringify!($n), "` at this frame.")]
                pub $n: f64,
            )*
            $(
                #[doc = concat!("`", stringify!($t), "` at this frame.")]
                pub $t: &'a str,
            )*
        }

        /// The numeric schedules of [`FrameValues`], in field order.
        const NUMBERS: &[&str] = &[$( stringify!($n) ),*];
        /// The text schedules of [`FrameValues`], in field order.
        const TEXTS: &[&str] = &[$( stringify!($t) ),*];

        impl FrameSchedules {
            /// Every schedule's value at frame `i` (< [`FrameSchedules::frames`]).
            pub fn at(&self, i: usize) -> FrameValues<'_> {
                let c = &self.columns;
                let numbers: [f64; NUMBERS.len()] =
                    std::array::from_fn(|k| c.numeric[self.slots[k]].1[i]);
                let texts: [&str; TEXTS.len()] =
                    std::array::from_fn(|k| c.text[self.text_slots[k]].1[i].as_str());
                let [$( $n ),*] = numbers;
                let [$( $t ),*] = texts;
                FrameValues { $( $n, )* $( $t, )* }
            }
        }
    };
}

frame_values! {
    numbers {
        angle, zoom, translation_x, translation_y, translation_z, transform_center_x,
        transform_center_y, rotation_3d_x, rotation_3d_y, rotation_3d_z, perspective_flip_theta,
        perspective_flip_phi, perspective_flip_gamma, perspective_flip_fv, fov, near, far,
        aspect_ratio, noise, strength, contrast, cfg_scale, pix2pix_img_cfg_scale, steps, seed, subseed,
        subseed_strength, ddim_eta, ancestral_eta, clipskip, noise_multiplier, kernel, sigma,
        amount, threshold, cadence_flow_factor, redo_flow_factor, hybrid_comp_alpha, hybrid_comp_mask_blend_alpha,
        hybrid_comp_mask_contrast, hybrid_comp_mask_auto_contrast_cutoff_low,
        hybrid_comp_mask_auto_contrast_cutoff_high, hybrid_flow_factor,
        image_strength, blend_factor_max, blend_factor_slope, tweening_frames,
        color_correction_factor,
    }
    texts { sampler, checkpoint }
}

/// Every schedule of a scene evaluated for every frame: the columns, and a typed view of each
/// frame ([`FrameSchedules::at`]).
#[derive(Debug, Clone)]
pub struct FrameSchedules {
    columns: ScheduleColumns,
    /// Column of each field of [`FrameValues`], numbers then texts.
    slots: [usize; NUMBERS.len()],
    text_slots: [usize; TEXTS.len()],
}

impl FrameSchedules {
    /// Assembles evaluated series: every schedule of [`SCHEDULES`] (the registry's numbers and
    /// texts), plus any others (ControlNet units, a motion script's prompt variables).
    ///
    /// # Errors
    /// A registry schedule that is missing, or a series whose length is not `frames`.
    pub fn new(
        frames: usize,
        numeric: Vec<(String, Vec<f64>)>,
        text: Vec<(String, Vec<String>)>,
    ) -> Result<FrameSchedules, String> {
        if let Some((n, v)) = numeric.iter().find(|(_, v)| v.len() != frames) {
            return Err(format!(
                "schedule {n} has {} values for {frames} frames",
                v.len()
            ));
        }
        if let Some((n, v)) = text.iter().find(|(_, v)| v.len() != frames) {
            return Err(format!(
                "schedule {n} has {} values for {frames} frames",
                v.len()
            ));
        }
        let slot = |names: &[&str], cols: &[String]| -> Result<Vec<usize>, String> {
            names
                .iter()
                .map(|n| {
                    cols.iter()
                        .position(|c| c == n)
                        .ok_or_else(|| format!("schedule {n} is missing"))
                })
                .collect()
        };
        let ncols: Vec<String> = numeric.iter().map(|(n, _)| n.clone()).collect();
        let tcols: Vec<String> = text.iter().map(|(n, _)| n.clone()).collect();
        let slots = slot(NUMBERS, &ncols)?;
        let text_slots = slot(TEXTS, &tcols)?;
        Ok(FrameSchedules {
            columns: ScheduleColumns {
                frames,
                numeric,
                text,
            },
            slots: slots.try_into().map_err(|_| "slot count".to_string())?,
            text_slots: text_slots
                .try_into()
                .map_err(|_| "slot count".to_string())?,
        })
    }

    /// Number of frames.
    pub fn frames(&self) -> usize {
        self.columns.frames
    }

    /// The values of a schedule known only by name at run time (a ControlNet unit's, a motion
    /// script's prompt variable); the registry's are fields of [`FrameSchedules::at`].
    pub fn get(&self, name: &str) -> Option<&[f64]> {
        self.columns.get(name)
    }

    /// The named columns, for output.
    pub fn columns(&self) -> &ScheduleColumns {
        &self.columns
    }

    /// The named columns, for output.
    pub fn into_columns(self) -> ScheduleColumns {
        self.columns
    }
}

/// Shortest decimal that reads back to the same f64 (Rust's `Display` for floats), with integers
/// written without a fraction.
pub fn format_number(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_values_has_every_schedule_in_registry_order() {
        let numbers: Vec<&str> = SCHEDULES
            .iter()
            .filter(|d| d.kind == Kind::Numeric)
            .map(|d| d.name)
            .collect();
        let texts: Vec<&str> = SCHEDULES
            .iter()
            .filter(|d| d.kind == Kind::Text)
            .map(|d| d.name)
            .collect();
        assert_eq!(numbers, NUMBERS);
        assert_eq!(texts, TEXTS);
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = SCHEDULES.iter().map(|d| d.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SCHEDULES.len());
    }

    #[test]
    fn shortest_round_trip() {
        for v in [0.1, 1.0025 + 0.002 * 0.5f64.sin(), -3.0, 1e-300, 123456.789] {
            assert_eq!(format_number(v).parse::<f64>().unwrap(), v);
        }
        assert_eq!(format_number(25.0), "25");
    }
}
