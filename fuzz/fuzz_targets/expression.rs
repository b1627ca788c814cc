//! numexpr-style expressions, parsed and evaluated with every schedule variable.
#![no_main]
use anim::schedule::{Context, Expr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let ctx = Context::new(60, 7, 15.0);
    let names = ctx.names();
    if let Ok(e) = Expr::parse(text, &names) {
        for t in [0.0, 0.5, 59.0] {
            e.eval(&ctx.vars(t));
        }
    }
});
