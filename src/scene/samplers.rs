//! Sampler names: the samplers the diffusion core implements and the spellings users write.

/// Samplers the diffusion core implements, with accepted aliases.
pub const SAMPLERS: &[&str] = &[
    "Euler a",
    "Euler",
    "DDIM",
    "DPM++ 2M",
    "DPM++ 2M Karras",
    "LCM",
    "Heun",
    "UniPC",
];

/// Samplers of A1111 (and so of Deforum) that anim does not implement, each with the implemented
/// sampler `--allow-unsupported` renders it with (the same family and order where there is one).
pub const UNIMPLEMENTED_SAMPLERS: &[(&str, &str)] = &[
    ("LMS", "Euler"),
    ("LMS Karras", "Euler"),
    ("Heun Karras", "Heun"),
    ("DPM2", "Heun"),
    ("DPM2 Karras", "Heun"),
    ("DPM2 a", "Euler a"),
    ("DPM2 a Karras", "Euler a"),
    ("DPM++ 2S a", "Euler a"),
    ("DPM++ 2S a Karras", "Euler a"),
    ("DPM++ SDE", "DPM++ 2M"),
    ("DPM++ SDE Karras", "DPM++ 2M Karras"),
    ("DPM++ 2M SDE", "DPM++ 2M"),
    ("DPM++ 2M SDE Karras", "DPM++ 2M Karras"),
    ("DPM++ 2M SDE Exponential", "DPM++ 2M"),
    ("DPM++ 2M SDE Heun", "DPM++ 2M"),
    ("DPM++ 2M SDE Heun Karras", "DPM++ 2M Karras"),
    ("DPM++ 2M SDE Heun Exponential", "DPM++ 2M"),
    ("DPM++ 3M SDE", "DPM++ 2M"),
    ("DPM++ 3M SDE Karras", "DPM++ 2M Karras"),
    ("DPM++ 3M SDE Exponential", "DPM++ 2M"),
    ("DPM fast", "Euler"),
    ("DPM adaptive", "Euler"),
    ("Restart", "Euler"),
    ("PLMS", "DDIM"),
    ("DDIM CFG++", "DDIM"),
    ("Euler a Karras", "Euler a"),
];

/// A name written as [`sampler_name`] reads it: lower case, `_`/`-` as spaces, `k_`/`sample_`
/// prefixes and `dpm++`/`dpmpp` unified.
fn normalize(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase().replace(['_', '-'], " ");
    n.strip_prefix("k ")
        .unwrap_or(&n)
        .replace("dpm++", "dpmpp")
        .replace("sample ", "")
}

/// The implemented sampler `--allow-unsupported` uses for `name`, when `name` is an A1111 sampler
/// anim does not implement ([`UNIMPLEMENTED_SAMPLERS`]).
pub fn sampler_fallback(name: &str) -> Option<(&'static str, &'static str)> {
    let n = normalize(name);
    UNIMPLEMENTED_SAMPLERS
        .iter()
        .find(|(u, _)| normalize(u) == n)
        .copied()
}

/// Canonical sampler name for a user's spelling: A1111/Deforum names, diffusers class names and
/// k-diffusion/ComfyUI names (`dpmpp_2m`, `uni_pc`), case-insensitive.
pub fn sampler_name(name: &str) -> Result<&'static str, String> {
    let n = normalize(name);
    let found = match n.as_str() {
        "euler a" | "euler ancestral" | "eulerancestraldiscretescheduler" => Some("Euler a"),
        "euler" | "eulerdiscretescheduler" => Some("Euler"),
        "ddim" | "ddimscheduler" => Some("DDIM"),
        "dpmpp 2m" | "dpmsolvermultistepscheduler" => Some("DPM++ 2M"),
        "dpmpp 2m karras" | "dpmsolvermultistepscheduler karras" => Some("DPM++ 2M Karras"),
        "lcm" | "lcmscheduler" => Some("LCM"),
        "heun" | "heundiscretescheduler" => Some("Heun"),
        "unipc" | "uni pc" | "unipcmultistepscheduler" => Some("UniPC"),
        _ => None,
    };
    found.ok_or_else(|| {
        if let Some((known, fallback)) = sampler_fallback(name) {
            return format!(
                "[generation] sampler = \"{name}\": {known} is an A1111 sampler anim does not \
                 implement; use one of {}, or pass --allow-unsupported to render it with \
                 {fallback}",
                SAMPLERS.join(", ")
            );
        }
        let hint = crate::schedule::expr::did_you_mean(name, SAMPLERS.iter().copied());
        format!(
            "[generation] sampler = \"{name}\": unknown sampler{hint}; available: {}",
            SAMPLERS.join(", ")
        )
    })
}
