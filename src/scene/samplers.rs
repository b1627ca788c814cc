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

/// Canonical sampler name for a user's spelling: A1111/Deforum names, diffusers class names and
/// k-diffusion/ComfyUI names (`dpmpp_2m`, `uni_pc`), case-insensitive.
pub fn sampler_name(name: &str) -> Result<&'static str, String> {
    let n = name.trim().to_ascii_lowercase().replace(['_', '-'], " ");
    let n = n
        .strip_prefix("k ")
        .unwrap_or(&n)
        .replace("dpm++", "dpmpp")
        .replace("sample ", "");
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
        let hint = crate::schedule::expr::did_you_mean(name, SAMPLERS.iter().copied());
        format!(
            "[generation] sampler = \"{name}\": unknown sampler{hint}; available: {}",
            SAMPLERS.join(", ")
        )
    })
}
