//! Deforum settings files (JSON, possibly partial): read, then the schedules evaluated.
#![no_main]
use anim::scene::deforum;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|text: &str| {
    if let Ok((scene, _)) = deforum::from_settings(text, Path::new("fuzz.json")) {
        if let Ok(s) = scene.schedules() {
            for f in 0..s.frames().min(3) {
                let _ = s.at(f);
                scene.prompt_at_with(f, &s);
                scene.travel_at_with(f, &s);
            }
        }
        let _ = anim::scene::deforum::to_toml(&scene, Path::new("fuzz.toml"), &[]);
    }
});
