//! Keyframe schedules (`0:(1), 10:(sin(t))`), numeric and string, parsed and evaluated.
#![no_main]
use anim::schedule::{Context, Schedule, StringSchedule};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let ctx = Context::new(60, 7, 15.0);
    if let Ok(s) = Schedule::parse(text, &ctx) {
        s.evaluate(&ctx);
    }
    if let Ok(s) = StringSchedule::parse(text, &ctx) {
        s.evaluate(&ctx);
    }
});
