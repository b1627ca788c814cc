//! Schedules against Deforum's own keyframe code: tests/data/schedules/deforum_cases.json, made by
//! scripts/make_schedule_refs.py running Deforum's FrameInterpolater (numexpr + pandas 1.5).

use std::path::Path;

use anim::schedule::{Context, Schedule, StringSchedule};

/// Cases where Deforum fails and anim deliberately accepts the schedule
/// (docs/deforum-differences.md), with what anim gives instead.
const ANIM_ACCEPTS: &[(&str, &str)] = &[
    ("err_no_frame_zero", "first key held backwards"),
    ("err_no_frame_zero_two_keys", "first key held backwards"),
    ("err_where_with_commas", "commas inside calls work"),
    ("err_arctan2_with_comma", "commas inside calls work"),
    ("err_fmod_with_comma", "commas inside calls work"),
    ("err_pi_undefined", "pi is a constant"),
    (
        "err_int_pow_negative_literal_exponent",
        "float arithmetic: t**-1 is 1/t",
    ),
    (
        "err_string_numeric_at_frame_zero",
        "a numeric first key of a string schedule is kept as text",
    ),
    ("err_string_no_frame_zero", "first key held backwards"),
    (
        "err_all_nan",
        "all-NaN stays NaN (the scene loader then reports the frame)",
    ),
];

/// Cases where Deforum returns values and anim deliberately differs.
const ANIM_DIFFERS: &[(&str, &str)] = &[
    (
        "int_pow_negative_exponent",
        "numexpr's integer power gives 2**-t = 0; anim computes 0.5**t",
    ),
    (
        "unbalanced_paren_numeric_accepted",
        "`0:(1, 9:3)` has an unclosed parenthesis: anim reports it",
    ),
];

fn value(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) => match s.as_str() {
            "nan" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            other => panic!("unexpected value {other}"),
        },
        v => v.as_f64().unwrap(),
    }
}

fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

#[test]
fn schedules_match_deforum() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/schedules/deforum_cases.json");
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = data["cases"].as_array().unwrap();
    let (mut compared, mut errors, mut failures) = (0, 0, Vec::new());
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let text = c["schedule"].as_str().unwrap();
        let ctx = Context::new(
            c["max_frames"].as_u64().unwrap() as usize,
            c["seed"].as_i64().unwrap(),
            15.0,
        );
        let numeric = c["kind"] == "numeric";
        let got: Result<Vec<String>, String> = if numeric {
            Schedule::parse(text, &ctx)
                .map(|s| s.evaluate(&ctx).iter().map(|v| v.to_string()).collect())
                .map_err(|e| e.message)
        } else {
            StringSchedule::parse(text, &ctx)
                .map(|s| s.evaluate(&ctx))
                .map_err(|e| e.message)
        };
        if let Some(err) = c.get("error") {
            if ANIM_ACCEPTS.iter().any(|(n, _)| *n == name) {
                if got.is_err() {
                    failures.push(format!(
                        "{name}: anim should accept `{text}` but says {got:?}"
                    ));
                }
                continue;
            }
            errors += 1;
            match got {
                Err(msg) if !msg.is_empty() && !msg.contains("panicked") => {}
                other => failures.push(format!(
                    "{name}: Deforum fails ({err}) but anim gives {other:?} for `{text}`"
                )),
            }
            continue;
        }
        if ANIM_DIFFERS.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let want = c["values"].as_array().unwrap();
        let got = match got {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{name}: anim fails on `{text}`: {e}"));
                continue;
            }
        };
        if got.len() != want.len() {
            failures.push(format!(
                "{name}: {} values, Deforum {}",
                got.len(),
                want.len()
            ));
            continue;
        }
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let ok = if numeric {
                same(g.parse().unwrap(), value(w))
            } else {
                g == w.as_str().unwrap()
            };
            if !ok {
                failures.push(format!(
                    "{name}: frame {i}: anim {g}, Deforum {w} (`{text}`)"
                ));
                break;
            }
        }
        compared += 1;
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        compared >= 100 && errors >= 10,
        "compared {compared}, errors {errors}"
    );
}
