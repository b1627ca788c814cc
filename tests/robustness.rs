//! Bad input never panics: random schedule texts, expressions and prompts, and scene and Deforum
//! files with values replaced at random, go through the parsers and the schedule evaluation; each
//! either works or returns an error (that names the file, for scenes). A fixed seed keeps every run
//! the same.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use anim::diffusion::prompt::parse_attention;
use anim::scene::{Scene, deforum, expand_prompt_math};
use anim::schedule::{Context, Expr, Schedule, StringSchedule};

/// xorshift64: a small, fixed pseudo-random sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Up to `max` atoms strung together.
    fn text(&mut self, atoms: &[&str], max: usize) -> String {
        let k = self.below(max + 1);
        (0..k).map(|_| atoms[self.below(atoms.len())]).collect()
    }
}

/// Runs `f`, failing the test with `what` when it panics.
fn no_panic(what: &str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        panic!("panicked on {what}");
    }
}

const EXPR: &[&str] = &[
    "t",
    "0",
    "1",
    "-",
    "+",
    "*",
    "/",
    "%",
    "**",
    "(",
    ")",
    ",",
    "sin(",
    "cos(",
    "tan(",
    "abs(",
    "min(",
    "max(",
    "floor(",
    "ceil(",
    "round(",
    "sqrt(",
    "log(",
    "exp(",
    "where(",
    "clip(",
    "max_f",
    "s",
    "fps",
    "pi",
    "e",
    " ",
    "1e309",
    "0.5",
    "!",
    "==",
    "<",
    ">",
    "&",
    "|",
    "?",
    ":",
    "[",
    "]",
    "\"",
    "'",
    ".",
    "1e-400",
    "99999999999999999999",
    "x",
    "é",
    "\0",
];

const SCHEDULE: &[&str] = &[
    "0",
    ":",
    "(",
    ")",
    ",",
    "1",
    "10",
    "-5",
    "t",
    "*",
    "sin(t)",
    " ",
    "119",
    "120",
    "9999999999",
    "-1",
    "1.5",
    "0:(1)",
    "\"",
    "'",
    "#",
    "\n",
    "{",
    "}",
    "`",
    "e",
    "nan",
    "inf",
    "1e400",
];

const PROMPT: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    ":",
    "1.3",
    "\\",
    "\\(",
    "\\)",
    "word",
    " ",
    "::",
    "-1",
    ":2",
    "((",
    "))",
    "BREAK",
    "AND",
    "|",
    "<lora:x:1>",
    "{",
    "}",
    "`",
    "`t",
    "`sin(t)`",
    "--neg",
    "😀",
    ":1e400",
    ":nan",
];

#[test]
fn random_schedules_expressions_and_prompts() {
    let ctx = Context::new(120, 7, 15.0);
    let names = ctx.names();
    let vars = vec![0.5; names.len()];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..20_000 {
        let e = rng.text(EXPR, 12);
        no_panic(&format!("expression {e:?}"), || {
            if let Ok(x) = Expr::parse(&e, &names) {
                x.eval(&vars);
            }
        });
        let s = rng.text(SCHEDULE, 14);
        no_panic(&format!("schedule {s:?}"), || {
            if let Ok(x) = Schedule::parse(&s, &ctx) {
                x.evaluate(&ctx);
            }
            if let Ok(x) = StringSchedule::parse(&s, &ctx) {
                x.evaluate(&ctx);
            }
        });
        let p = rng.text(PROMPT, 14);
        no_panic(&format!("prompt {p:?}"), || {
            parse_attention(&p);
            let _ = expand_prompt_math(&p, &ctx, i % 130);
        });
    }
}

/// Values put in place of a scene's (or settings file's) own: out of range, wrong type, broken
/// schedules, huge counts.
const VALUES: &[&str] = &[
    "0",
    "-1",
    "1e308",
    "-1e308",
    "nan",
    "\"\"",
    "\"0:(\"",
    "\"0:(1), 5:(t/0)\"",
    "[]",
    "{}",
    "true",
    "99999999999",
    "\"Euler a\"",
    "\"x\"",
    "-0.5",
    "\"0: (nan)\"",
    "\"-5:(1)\"",
    "\"0:(1),0:(2)\"",
    "1000000",
    "65536",
];

#[test]
fn scenes_and_settings_with_random_values() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files: Vec<PathBuf> = [
        "examples/quickstart.toml",
        "examples/camera3d.toml",
        "examples/motion-script.toml",
        "examples/presets.toml",
        "tests/data/deforum/default_settings.json",
    ]
    .iter()
    .map(|f| root.join(f))
    .collect();
    let sources: Vec<(String, bool)> = files
        .iter()
        .map(|f| {
            let json = f.extension().is_some_and(|e| e == "json");
            (std::fs::read_to_string(f).unwrap(), json)
        })
        .collect();
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for i in 0..1500 {
        let (src, json) = &sources[i % sources.len()];
        let file = &files[i % files.len()];
        let mut text = src.clone();
        // replace the value after one to four random `=` (TOML) or `:` (JSON)
        for _ in 0..1 + rng.below(4) {
            let sep = if *json { ':' } else { '=' };
            let at: Vec<usize> = text.match_indices(sep).map(|(k, _)| k + 1).collect();
            let k = at[rng.below(at.len())];
            let end = text[k..]
                .find(|c| c == '\n' || (*json && c == ','))
                .map_or(text.len(), |e| k + e);
            text.replace_range(k..end, &format!(" {}", VALUES[rng.below(VALUES.len())]));
        }
        no_panic(&format!("{}:\n{text}", file.display()), || {
            let scene = if *json {
                deforum::from_settings(&text, file).map(|(s, _)| s)
            } else {
                Scene::from_toml(&text, file)
            };
            match scene {
                Ok(scene) => {
                    if let Ok(sched) = scene.schedules() {
                        for f in 0..3 {
                            scene.prompt_at_with(f, &sched);
                            scene.travel_at_with(f, &sched);
                        }
                    }
                    let _ = deforum::to_toml(&scene, file, &[]);
                }
                Err(e) => {
                    let name = file.file_name().unwrap().to_str().unwrap();
                    assert!(e.to_string().contains(name), "error without the file: {e}");
                }
            }
        });
    }
}
