//! A1111 prompt attention (`(word:1.2)`, `[x]`, `\(`) and prompt math (`` `t*2` ``).
#![no_main]
use anim::diffusion::prompt::parse_attention;
use anim::scene::expand_prompt_math;
use anim::schedule::Context;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let ctx = Context::new(60, 7, 15.0);
    parse_attention(text);
    let _ = expand_prompt_math(text, &ctx, 3);
});
