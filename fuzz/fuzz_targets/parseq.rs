//! Parseq manifests (JSON): parsed, then every field's series and the prompts read.
#![no_main]
use anim::scene::parseq::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(m) = Manifest::parse(text, "fuzz.json") {
        for f in m.fields() {
            let _ = m.series(f, 40);
        }
        let _ = m.prompts(40);
    }
});
