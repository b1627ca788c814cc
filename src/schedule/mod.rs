//! Deforum keyframe schedules: `"0:(1.0), 30:(1.02+0.01*sin(t/5))"` to one value per frame.
//!
//! Semantics follow Deforum's `FrameInterpolater` (see docs/scene-format.md):
//! - a key whose value is a plain number is a linear anchor; frames between anchors interpolate;
//! - a key whose value is an expression is evaluated at every frame from its key to the next key,
//!   with `t` the frame index; earlier numeric keys ramp towards its value at its own frame;
//! - the value is held before the first key and after the last; keys outside the frame range are
//!   ignored; a later duplicate key wins.
//!
//! Beyond Deforum: commas inside function calls work, a first key after frame 0 holds backwards,
//! and errors name the key and the column of the bad token.

pub mod export;
pub mod expr;
pub mod plot;

pub use expr::{Expr, ExprError};

/// The built-in variables of schedule expressions, in slot order; user variables follow.
pub const VARIABLES: &[&str] = &["t", "max_f", "s", "fps", "sec"];

/// What an expression may refer to besides `t`: fixed for a whole render.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Number of frames; `max_f` is `max_frames - 1`.
    pub max_frames: usize,
    /// The run's seed (`s`).
    pub seed: i64,
    /// Frames per second (`fps`, and `sec = t / fps`).
    pub fps: f64,
    /// User constants (the scene's `[variables]`), visible by name.
    pub variables: Vec<(String, f64)>,
    /// Per-frame variables (the `[audio]` analysis), one value per frame, visible by name after
    /// the constants; frame `t` reads index `t` (the last value past the end).
    pub series: Vec<(String, std::sync::Arc<[f64]>)>,
}

impl Context {
    /// A context without user variables.
    pub fn new(max_frames: usize, seed: i64, fps: f64) -> Context {
        Context {
            max_frames,
            seed,
            fps,
            variables: Vec::new(),
            series: Vec::new(),
        }
    }

    /// Variable names in slot order.
    pub fn names(&self) -> Vec<&str> {
        VARIABLES
            .iter()
            .copied()
            .chain(self.variables.iter().map(|(n, _)| n.as_str()))
            .chain(self.series.iter().map(|(n, _)| n.as_str()))
            .collect()
    }

    /// The values of [`Context::names`] at frame `t`, in the same order.
    pub fn vars(&self, t: f64) -> Vec<f64> {
        let mut v = vec![
            t,
            self.max_frames as f64 - 1.0,
            self.seed as f64,
            self.fps,
            t / self.fps,
        ];
        v.extend(self.variables.iter().map(|(_, x)| *x));
        let i = if t > 0.0 { t as usize } else { 0 };
        v.extend(
            self.series
                .iter()
                .map(|(_, s)| s.get(i).or(s.last()).copied().unwrap_or(0.0)),
        );
        v
    }
}

/// How frames between two numeric keys are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interpolation {
    /// Straight line (Deforum's only mode).
    #[default]
    Linear,
    /// Hold the earlier key's value until the next key.
    Step,
    /// Cubic Hermite through the keys, with Catmull-Rom tangents (smooth, passes through every key).
    Cubic,
    /// Slow start (cubic ease-in) between each pair of keys.
    EaseIn,
    /// Slow end (cubic ease-out).
    EaseOut,
    /// Slow start and end (cubic ease-in-out).
    EaseInOut,
}

impl Interpolation {
    /// All modes with their scene-file names.
    pub const NAMES: &[&str] = &[
        "linear",
        "step",
        "cubic",
        "ease-in",
        "ease-out",
        "ease-in-out",
    ];

    /// Parses a scene-file name.
    pub fn from_name(name: &str) -> Option<Interpolation> {
        Some(match name {
            "linear" => Interpolation::Linear,
            "step" => Interpolation::Step,
            "cubic" => Interpolation::Cubic,
            "ease-in" => Interpolation::EaseIn,
            "ease-out" => Interpolation::EaseOut,
            "ease-in-out" => Interpolation::EaseInOut,
            _ => return None,
        })
    }
}

/// A schedule error: which key of the schedule, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ScheduleError {
    /// Human-readable description, naming the key and the column of the bad token.
    pub message: String,
}

#[derive(Debug, Clone)]
enum KeyValue {
    Number(f64),
    Expr(Expr),
}

/// A parsed schedule, ready to be evaluated for any frame count.
#[derive(Debug, Clone)]
pub struct Schedule {
    keys: Vec<(i64, KeyValue)>,
}

/// Splits on commas that are outside parentheses and quotes.
fn split_top_level(s: &str, sep: char) -> Vec<(usize, &str)> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '"' | '\'' if quote == Some(c) => quote = None,
            '"' | '\'' if quote.is_none() => quote = Some(c),
            '(' if quote.is_none() => depth += 1,
            ')' if quote.is_none() => depth -= 1,
            _ if c == sep && depth == 0 && quote.is_none() => {
                parts.push((start, &s[start..i]));
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push((start, &s[start..]));
    parts
}

/// Deforum's test for a literal: `^[+-]?[0-9]*(\.[0-9]+)?$` and not empty.
fn is_deforum_number(s: &str) -> bool {
    let b = s.strip_prefix(['+', '-']).unwrap_or(s);
    if b.is_empty() {
        return false;
    }
    let (int, frac) = match b.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (b, None),
    };
    int.bytes().all(|c| c.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()))
}

fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '\'' | '"' | '(' | ')'))
        .collect()
}

impl Schedule {
    /// A schedule with one constant value.
    pub fn constant(v: f64) -> Schedule {
        Schedule {
            keys: vec![(0, KeyValue::Number(v))],
        }
    }

    /// Parses a keyframe string. Frame keys may be expressions over `max_f` and `s`, which is why
    /// the context is needed here.
    pub fn parse(text: &str, ctx: &Context) -> Result<Schedule, ScheduleError> {
        if text.trim().is_empty() {
            return Err(ScheduleError {
                message: "empty schedule; write e.g. `0:(1.0)` or a number".into(),
            });
        }
        let mut keys: Vec<(i64, KeyValue)> = Vec::new();
        for (offset, piece) in split_top_level(text, ',') {
            let piece_trim = piece.trim();
            if piece_trim.is_empty() {
                return Err(ScheduleError {
                    message: format!("empty key at column {} (stray comma?)", offset + 1),
                });
            }
            let lead = piece.len() - piece.trim_start().len();
            let Some((key_text, value_text)) = split_top_level(piece, ':')
                .get(1)
                .map(|(i, _)| (&piece[..*i - 1], &piece[*i..]))
            else {
                return Err(ScheduleError {
                    message: format!(
                        "`{piece_trim}` at column {} has no `:`; each key is `frame:(value)`",
                        offset + lead + 1
                    ),
                });
            };
            let frame = Self::parse_frame(key_text.trim(), ctx).map_err(|m| ScheduleError {
                message: format!(
                    "key `{}` at column {}: {m}",
                    key_text.trim(),
                    offset + lead + 1
                ),
            })?;
            let value_col = offset + key_text.len() + 2;
            let raw = value_text.trim();
            // Deforum's pattern needs `(value)`: a parenthesis left open or never opened is a typo,
            // not a value to guess
            let mut open = 0i64;
            for (i, c) in raw.char_indices() {
                open += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                if open < 0 {
                    return Err(ScheduleError {
                        message: format!(
                            "key {frame}, value `{raw}`: column {}: this `)` closes no `(`",
                            value_col + (value_text.len() - value_text.trim_start().len()) + i
                        ),
                    });
                }
            }
            if open > 0 {
                return Err(ScheduleError {
                    message: format!(
                        "key {frame}, value `{raw}`: a `(` is never closed (at the end, column {})",
                        value_col + value_text.trim_end().len() - 1
                    ),
                });
            }
            let sanitized = sanitize(raw);
            if sanitized.trim().is_empty() {
                return Err(ScheduleError {
                    message: format!(
                        "key {frame} at column {} has an empty value; write e.g. `{frame}:(1.0)`",
                        offset + lead + 1
                    ),
                });
            }
            let value = if is_deforum_number(&sanitized) {
                KeyValue::Number(sanitized.parse::<f64>().unwrap_or(0.0))
            } else {
                let stripped = raw.trim_matches(|c| c == '"' || c == '\'');
                let lead_v = value_text.len() - value_text.trim_start().len()
                    + (raw.len() - raw.trim_start_matches(['"', '\'']).len());
                let e = Expr::parse(stripped, &ctx.names()).map_err(|e| ScheduleError {
                    message: format!(
                        "key {frame}, value `{raw}`: column {}: {}",
                        value_col + lead_v + e.column - 1,
                        e.message
                    ),
                })?;
                KeyValue::Expr(e)
            };
            keys.retain(|(f, _)| *f != frame);
            keys.push((frame, value));
        }
        keys.sort_by_key(|(f, _)| *f);
        Ok(Schedule { keys })
    }

    fn parse_frame(key: &str, ctx: &Context) -> Result<i64, String> {
        let s = sanitize(key);
        if is_deforum_number(&s) {
            return s
                .parse::<i64>()
                .map_err(|_| format!("frame `{s}` is not a whole number"));
        }
        let stripped = key.trim_matches(|c| c == '"' || c == '\'');
        let e = Expr::parse(stripped, &["max_f", "s"]).map_err(|e| e.to_string())?;
        let v = e.eval(&[ctx.max_frames as f64 - 1.0, ctx.seed as f64]);
        if !v.is_finite() {
            return Err(format!("evaluates to {v}"));
        }
        Ok(v.trunc() as i64)
    }

    /// One value per frame, `0..ctx.max_frames`, with Deforum's interpolation rules.
    pub fn evaluate(&self, ctx: &Context) -> Vec<f64> {
        self.evaluate_with(ctx, Interpolation::Linear)
    }

    /// Like [`Schedule::evaluate`], filling the frames between numeric keys with `interp`.
    pub fn evaluate_with(&self, ctx: &Context, interp: Interpolation) -> Vec<f64> {
        let (mut series, _) = self.series(ctx);
        interpolate(&mut series, interp);
        series
    }

    /// Like [`Schedule::evaluate_with`], but an expression that gives NaN or ±inf at a frame is an
    /// error naming the frame. (Deforum fills such a NaN by interpolation, as if the frame had no
    /// key, and keeps an infinity: anim refuses both rather than guess.)
    ///
    /// # Errors
    /// The first frame where an expression is not finite, with its value.
    pub fn evaluate_checked(
        &self,
        ctx: &Context,
        interp: Interpolation,
    ) -> Result<Vec<f64>, ScheduleError> {
        let (mut series, bad) = self.series(ctx);
        if let Some((i, v)) = bad {
            return Err(ScheduleError {
                message: format!(
                    "the expression gives {v} at frame {i} (t = {i}; not a finite number); check \
                     it for a square root or logarithm of a negative number or a division by zero"
                ),
            });
        }
        interpolate(&mut series, interp);
        Ok(series)
    }

    /// The keyed and expression values per frame, NaN where a frame waits for interpolation, and
    /// the first frame where an expression gave a value that is not finite.
    fn series(&self, ctx: &Context) -> (Vec<f64>, Option<(usize, f64)>) {
        let n = ctx.max_frames;
        let mut series = vec![f64::NAN; n];
        let mut current: Option<&Expr> = None;
        let in_range: Vec<&(i64, KeyValue)> = self
            .keys
            .iter()
            .filter(|(f, _)| *f >= 0 && (*f as usize) < n)
            .collect();
        let mut next_key = 0;
        let mut bad = None;
        for (i, slot) in series.iter_mut().enumerate() {
            if next_key < in_range.len() && in_range[next_key].0 as usize == i {
                match &in_range[next_key].1 {
                    KeyValue::Number(v) => {
                        *slot = *v;
                        current = None;
                    }
                    KeyValue::Expr(e) => current = Some(e),
                }
                next_key += 1;
            }
            if let Some(e) = current {
                *slot = e.eval(&ctx.vars(i as f64));
                if !slot.is_finite() && bad.is_none() {
                    bad = Some((i, *slot));
                }
            }
        }
        (series, bad)
    }
}

/// Fills NaN gaps between valid values with `interp` and holds the ends (pandas `interpolate`,
/// `limit_direction='both'`, for the linear case). All-NaN stays NaN.
fn interpolate(series: &mut [f64], interp: Interpolation) {
    let valid: Vec<usize> = (0..series.len()).filter(|&i| !series[i].is_nan()).collect();
    let (Some(&first), Some(&last)) = (valid.first(), valid.last()) else {
        return;
    };
    for i in 0..first {
        series[i] = series[first];
    }
    for i in last + 1..series.len() {
        series[i] = series[last];
    }
    // Catmull-Rom tangents (per frame) at each valid point, for the cubic mode
    let tangent = |k: usize, s: &[f64]| -> f64 {
        let (lo, hi) = (k.saturating_sub(1), (k + 1).min(valid.len() - 1));
        if lo == hi {
            0.0
        } else {
            (s[valid[hi]] - s[valid[lo]]) / (valid[hi] - valid[lo]) as f64
        }
    };
    for k in 0..valid.len().saturating_sub(1) {
        let (a, b) = (valid[k], valid[k + 1]);
        if b == a + 1 {
            continue;
        }
        let (va, vb) = (series[a], series[b]);
        let span = (b - a) as f64;
        let (ma, mb) = (tangent(k, series) * span, tangent(k + 1, series) * span);
        for (i, slot) in series.iter_mut().enumerate().take(b).skip(a + 1) {
            let f = (i - a) as f64 / span;
            *slot = match interp {
                Interpolation::Linear => va + (vb - va) * f,
                Interpolation::Step => va,
                Interpolation::EaseIn => va + (vb - va) * f * f * f,
                Interpolation::EaseOut => va + (vb - va) * (1.0 - (1.0 - f).powi(3)),
                Interpolation::EaseInOut => {
                    let e = if f < 0.5 {
                        4.0 * f * f * f
                    } else {
                        1.0 - (-2.0 * f + 2.0).powi(3) / 2.0
                    };
                    va + (vb - va) * e
                }
                Interpolation::Cubic => {
                    let (f2, f3) = (f * f, f * f * f);
                    (2.0 * f3 - 3.0 * f2 + 1.0) * va
                        + (f3 - 2.0 * f2 + f) * ma
                        + (-2.0 * f3 + 3.0 * f2) * vb
                        + (f3 - f2) * mb
                }
            };
        }
    }
}

/// A string schedule (sampler, checkpoint): each key's text (quotes and parentheses removed) holds
/// until the next key.
#[derive(Debug, Clone)]
pub struct StringSchedule {
    keys: Vec<(i64, String)>,
}

impl StringSchedule {
    /// A constant.
    pub fn constant(v: &str) -> StringSchedule {
        StringSchedule {
            keys: vec![(0, v.to_string())],
        }
    }

    /// True when `text` looks like a keyframe string (`0: ("Euler a"), 10: ("DDIM")`) rather than
    /// a plain value.
    pub fn is_keyframed(text: &str) -> bool {
        let t: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        t.contains(":(") || t.contains(":\"") || t.contains(":'")
    }

    /// Parses a keyframe string; numeric values take the previous key's text, as Deforum.
    pub fn parse(text: &str, ctx: &Context) -> Result<StringSchedule, ScheduleError> {
        let mut keys: Vec<(i64, String)> = Vec::new();
        for (offset, piece) in split_top_level(text, ',') {
            let Some((key_text, value_text)) = piece.split_once(':') else {
                return Err(ScheduleError {
                    message: format!(
                        "`{}` at column {} has no `:`; each key is `frame:(\"value\")`",
                        piece.trim(),
                        offset + 1
                    ),
                });
            };
            let frame = Schedule::parse_frame(key_text.trim(), ctx).map_err(|m| ScheduleError {
                message: format!("key `{}` at column {}: {m}", key_text.trim(), offset + 1),
            })?;
            let value = sanitize(value_text.trim());
            keys.retain(|(f, _)| *f != frame);
            keys.push((frame, value));
        }
        keys.sort_by_key(|(f, _)| *f);
        let mut prev: Option<String> = None;
        for (_, v) in keys.iter_mut() {
            if is_deforum_number(v)
                && let Some(p) = &prev
            {
                *v = p.clone();
            }
            prev = Some(v.clone());
        }
        Ok(StringSchedule { keys })
    }

    /// One value per frame.
    pub fn evaluate(&self, ctx: &Context) -> Vec<String> {
        let n = ctx.max_frames;
        let in_range: Vec<&(i64, String)> = self
            .keys
            .iter()
            .filter(|(f, _)| *f >= 0 && (*f as usize) < n)
            .collect();
        let Some(first) = in_range.first() else {
            return vec![String::new(); n];
        };
        let mut cur = first.1.clone();
        let mut next = 0;
        (0..n)
            .map(|i| {
                while next < in_range.len() && in_range[next].0 as usize <= i {
                    cur = in_range[next].1.clone();
                    next += 1;
                }
                cur.clone()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(n: usize) -> Context {
        Context::new(n, 7, 10.0)
    }

    fn series(s: &str, n: usize) -> Vec<f64> {
        Schedule::parse(s, &ctx(n)).unwrap().evaluate(&ctx(n))
    }

    #[test]
    fn deforum_examples() {
        assert_eq!(
            series("0:(1), 4:(1+0), 9:(3)", 10),
            vec![1., 1., 1., 1., 1., 1., 1., 1., 1., 3.]
        );
        assert_eq!(
            series("0:( 1.0 ), 9:(2)", 10),
            vec![1., 1., 1., 1., 1., 1., 1., 1., 1., 2.]
        );
        assert_eq!(
            series("0:(1), 4:(t), 6:(0), 9:(3)", 10),
            vec![1., 1.75, 2.5, 3.25, 4., 5., 0., 1., 2., 3.]
        );
        assert_eq!(series("0:(1), 20:(5)", 10), vec![1.0; 10]);
        assert_eq!(series("0:(0),5:(10),5:(20)", 6)[5], 20.0);
        assert_eq!(
            series("0 : (0) , 9 : (9)", 10),
            (0..10).map(|i| i as f64).collect::<Vec<_>>()
        );
        assert_eq!(series("0:(0), \"max_f-1\":(9)", 10)[9], 9.0);
        assert_eq!(series("0:(s)", 3), vec![7.0; 3]);
        assert_eq!(series("0:(-t)", 3), vec![0.0, -1.0, -2.0]);
    }

    #[test]
    fn beyond_deforum() {
        // commas inside calls, first key after 0 held backwards, sec/fps
        assert_eq!(series("0:(where(t>1, 5, 0))", 4), vec![0., 0., 5., 5.]);
        assert_eq!(series("2:(4), 3:(6)", 5), vec![4., 4., 4., 6., 6.]);
        assert_eq!(series("0:(sec)", 3), vec![0.0, 0.1, 0.2]);
    }

    #[test]
    fn interpolation_modes() {
        let c = ctx(5);
        let s = Schedule::parse("0:(0), 4:(8)", &c).unwrap();
        assert_eq!(
            s.evaluate_with(&c, Interpolation::Step),
            vec![0., 0., 0., 0., 8.]
        );
        assert_eq!(
            s.evaluate_with(&c, Interpolation::EaseIn),
            vec![0., 0.125, 1., 3.375, 8.]
        );
        assert_eq!(s.evaluate_with(&c, Interpolation::EaseInOut)[2], 4.0);
        let cubic = Schedule::parse("0:(0), 2:(2), 4:(4)", &c)
            .unwrap()
            .evaluate_with(&c, Interpolation::Cubic);
        assert_eq!(cubic, vec![0., 1., 2., 3., 4.]);
    }

    #[test]
    fn string_schedules() {
        let c = ctx(6);
        let s = StringSchedule::parse("0: (\"Euler a\"), 3: (\"DDIM\")", &c).unwrap();
        assert_eq!(
            s.evaluate(&c),
            vec!["Euler a", "Euler a", "Euler a", "DDIM", "DDIM", "DDIM"]
        );
        let s = StringSchedule::parse("0: (\"Euler a\"), 3: (5)", &c).unwrap();
        assert!(s.evaluate(&c).iter().all(|v| v == "Euler a"));
        assert!(
            StringSchedule::is_keyframed("0: (\"a\")") && !StringSchedule::is_keyframed("Euler a")
        );
    }

    #[test]
    fn unbalanced_parentheses_and_non_finite_expressions_are_errors() {
        let c = ctx(6);
        let e = Schedule::parse("0:(1.0", &c).unwrap_err();
        assert!(e.message.contains("never closed"), "{}", e.message);
        let e = Schedule::parse("0:(1), 3:(2))", &c).unwrap_err();
        assert!(
            e.message.contains("key 3") && e.message.contains("closes no"),
            "{}",
            e.message
        );
        // Deforum fills an expression's NaN by interpolation; anim names the frame
        let s = Schedule::parse("0:(1 + sqrt(2 - t))", &c).unwrap();
        assert!(
            s.evaluate(&c)[3].is_finite(),
            "the unchecked evaluation fills it"
        );
        let e = s.evaluate_checked(&c, Interpolation::Linear).unwrap_err();
        assert!(e.message.contains("NaN at frame 3"), "{}", e.message);
        let e = Schedule::parse("0:(1/(t-4))", &c)
            .unwrap()
            .evaluate_checked(&c, Interpolation::Linear)
            .unwrap_err();
        assert!(e.message.contains("inf at frame 4"), "{}", e.message);
        assert_eq!(
            Schedule::parse("0:(t), 2:(5)", &c)
                .unwrap()
                .evaluate_checked(&c, Interpolation::Linear)
                .unwrap(),
            vec![0., 1., 5., 5., 5., 5.]
        );
    }

    #[test]
    fn user_variables() {
        let mut c = ctx(3);
        c.variables.push(("speed".into(), 2.0));
        assert_eq!(
            Schedule::parse("0:(speed*t)", &c).unwrap().evaluate(&c),
            vec![0., 2., 4.]
        );
    }

    #[test]
    fn errors() {
        let e = Schedule::parse("0:(1), 5:(sinn(t))", &ctx(10)).unwrap_err();
        assert!(
            e.message.contains("key 5") && e.message.contains("column 11"),
            "{}",
            e.message
        );
        let e = Schedule::parse("0:(1) 5:(2)", &ctx(10)).unwrap_err();
        assert!(e.message.contains("column"), "{}", e.message);
        assert!(Schedule::parse("", &ctx(10)).is_err());
        assert!(Schedule::parse("4.5:(1)", &ctx(10)).is_err());
        assert!(Schedule::parse("0:(1),", &ctx(10)).is_err());
    }
}
