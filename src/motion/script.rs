//! rhai motion scripts, sandboxed. A script defines `fn frame(ctx)`, called once per frame in order
//! 0..N with the frame context; it returns a map of schedule values that override (top-level keys)
//! or add to (`add` map) the keyframed ones, and may carry a `state` value to the next frame. See
//! docs/motion-scripts.md. The engine has no file, network, environment or clock access (`import`,
//! `eval`, `sleep` and `timestamp` are disabled) and runs under [`ScriptLimits`]. Depends on
//! `schedule` only.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rhai::{AST, CallFnOptions, Dynamic, Engine, EvalAltResult, FLOAT, INT, Map, Scope};

use crate::schedule::Context;
use crate::schedule::expr::did_you_mean;

/// The function a motion script must define: `fn frame(ctx)`.
pub const FUNCTION: &str = "frame";

/// Resource limits of a motion script; exceeding one stops the render with a [`ScriptError`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScriptLimits {
    /// rhai operations per call of `frame` (about one per expression node).
    pub max_operations: u64,
    /// Nesting depth of function calls (recursion).
    pub max_call_levels: usize,
    /// Nesting depth of expressions, at top level and inside functions.
    pub max_expr_depth: usize,
    /// Bytes per string.
    pub max_string_size: usize,
    /// Items per array (nested arrays count in total).
    pub max_array_size: usize,
    /// Entries per object map.
    pub max_map_size: usize,
    /// Wall time per call of `frame`.
    pub call_time: Duration,
    /// Wall time of all frames together.
    pub total_time: Duration,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_operations: 1_000_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_string_size: 1 << 20,
            max_array_size: 100_000,
            max_map_size: 10_000,
            call_time: Duration::from_millis(500),
            total_time: Duration::from_secs(60),
        }
    }
}

/// A script that failed: which script, where in it (1-based line and column, when known), at which
/// frame, and what went wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ScriptError {
    /// The script as the scene names it.
    pub script: String,
    /// 1-based line in the script.
    pub line: Option<usize>,
    /// 1-based column in the script.
    pub column: Option<usize>,
    /// The frame being computed (none for compile errors).
    pub frame: Option<usize>,
    /// What went wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.script)?;
        let mut sep = ":";
        if let Some(l) = self.line {
            write!(f, "{sep} line {l}")?;
            sep = ",";
        }
        if let Some(c) = self.column {
            write!(f, "{sep} column {c}")?;
            sep = ",";
        }
        if let Some(fr) = self.frame {
            write!(f, "{sep} frame {fr}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Wall-clock deadline shared with the engine's progress callback.
struct Clock {
    base: Instant,
    deadline_ns: AtomicU64,
}

impl Clock {
    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos().min(u64::MAX as u128) as u64
    }
}

/// A compiled motion script: compile once, then [`MotionScript::run`] over the frames.
pub struct MotionScript {
    name: String,
    engine: Engine,
    ast: AST,
    limits: ScriptLimits,
    clock: Arc<Clock>,
    /// (function name, 1-based line of its `fn`), to place errors rhai gives no position for.
    fn_lines: Vec<(String, usize)>,
    /// The audio variables the source reads as `ctx.NAME`, for a hint when a scene without
    /// `[audio]` runs it.
    audio_uses: Vec<&'static str>,
}

/// Where each `fn NAME(` of the source starts.
fn function_lines(source: &str) -> Vec<(String, usize)> {
    source
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let l = l.trim_start();
            let rest = l
                .strip_prefix("private ")
                .unwrap_or(l)
                .strip_prefix("fn ")?;
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some((name, i + 1))
        })
        .collect()
}

impl std::fmt::Debug for MotionScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MotionScript")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn position(p: rhai::Position) -> (Option<usize>, Option<usize>) {
    (p.line(), p.position())
}

/// The error an error chain ends in (inside nested function calls).
fn innermost(e: &mut EvalAltResult) -> &mut EvalAltResult {
    match e {
        EvalAltResult::ErrorInFunctionCall(.., err, _)
        | EvalAltResult::ErrorInModule(.., err, _) => innermost(err),
        other => other,
    }
}

fn disabled(what: &'static str) -> Box<EvalAltResult> {
    format!(
        "`{what}` is not available in motion scripts (they must give the same values on every run)"
    )
    .into()
}

impl MotionScript {
    /// Reads and compiles the script at `path`; `name` is how errors refer to it (the path as the
    /// scene writes it).
    ///
    /// # Errors
    /// An unreadable file, a syntax error (with line and column), or no `fn frame(ctx)`.
    pub fn load(
        path: &Path,
        name: &str,
        limits: ScriptLimits,
    ) -> Result<MotionScript, ScriptError> {
        let source = std::fs::read_to_string(path).map_err(|e| ScriptError {
            script: name.to_string(),
            line: None,
            column: None,
            frame: None,
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        Self::compile(&source, name, limits)
    }

    /// Compiles script text.
    ///
    /// # Errors
    /// A syntax error (with line and column), an undefined variable, or no `fn frame(ctx)`.
    pub fn compile(
        source: &str,
        name: &str,
        limits: ScriptLimits,
    ) -> Result<MotionScript, ScriptError> {
        let clock = Arc::new(Clock {
            base: Instant::now(),
            deadline_ns: AtomicU64::new(u64::MAX),
        });
        let mut engine = Engine::new();
        engine.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
        engine.disable_symbol("eval");
        engine.disable_symbol("import");
        engine.on_print(|_| {});
        engine.on_debug(|_, _, _| {});
        engine.set_strict_variables(true);
        engine.set_max_operations(limits.max_operations);
        engine.set_max_call_levels(limits.max_call_levels);
        engine.set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth);
        engine.set_max_string_size(limits.max_string_size);
        engine.set_max_array_size(limits.max_array_size);
        engine.set_max_map_size(limits.max_map_size);
        engine.set_max_variables(1_000);
        engine.set_max_functions(1_000);
        // functions registered on the engine take precedence over the standard packages'
        engine.register_fn("sleep", |_: INT| -> Result<(), Box<EvalAltResult>> {
            Err(disabled("sleep"))
        });
        engine.register_fn("sleep", |_: FLOAT| -> Result<(), Box<EvalAltResult>> {
            Err(disabled("sleep"))
        });
        engine.register_fn("timestamp", || -> Result<(), Box<EvalAltResult>> {
            Err(disabled("timestamp"))
        });
        let c = Arc::clone(&clock);
        engine.on_progress(move |ops| {
            // checking the clock every 256 operations keeps the cost negligible
            if ops % 256 == 0 && c.now_ns() > c.deadline_ns.load(Ordering::Relaxed) {
                Some(Dynamic::UNIT)
            } else {
                None
            }
        });
        let ast = engine.compile(source).map_err(|e| {
            let (line, column) = position(e.1);
            ScriptError {
                script: name.to_string(),
                line,
                column,
                frame: None,
                message: format!("does not compile: {}", e.0),
            }
        })?;
        if !ast
            .iter_functions()
            .any(|f| f.name == FUNCTION && f.params.len() == 1)
        {
            let other = ast
                .iter_functions()
                .find(|f| f.name == FUNCTION)
                .map(|f| format!(" (its `{FUNCTION}` takes {} parameters)", f.params.len()));
            return Err(ScriptError {
                script: name.to_string(),
                line: None,
                column: None,
                frame: None,
                message: format!(
                    "the script defines no `fn {FUNCTION}(ctx)`{}; it is called once per frame",
                    other.unwrap_or_default()
                ),
            });
        }
        Ok(MotionScript {
            name: name.to_string(),
            engine,
            ast,
            limits,
            clock,
            fn_lines: function_lines(source),
            audio_uses: crate::audio::VARIABLES
                .iter()
                .copied()
                .filter(|v| {
                    source.match_indices(&format!("ctx.{v}")).any(|(i, m)| {
                        !source[i + m.len()..]
                            .starts_with(|c: char| c.is_alphanumeric() || c == '_')
                    })
                })
                .collect(),
        })
    }

    /// The limits the script runs under.
    pub fn limits(&self) -> &ScriptLimits {
        &self.limits
    }

    fn error(
        &self,
        frame: Option<usize>,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    ) -> ScriptError {
        ScriptError {
            script: self.name.clone(),
            line,
            column,
            frame,
            message,
        }
    }

    fn runtime_error(
        &self,
        mut e: Box<EvalAltResult>,
        frame: usize,
        total_start: u64,
    ) -> ScriptError {
        // the function the error happened in, when it is not `frame` itself
        let mut func = None;
        let mut cur: &EvalAltResult = &e;
        while let EvalAltResult::ErrorInFunctionCall(f, _, err, _) = cur {
            func = Some(f.clone());
            cur = err.as_ref();
        }
        let inner = innermost(&mut e);
        let (mut line, column) = position(inner.take_position());
        if line.is_none() {
            // no position (e.g. an empty endless loop): the line of the function it ran in
            let f = func.as_deref().unwrap_or(FUNCTION);
            line = self.fn_lines.iter().find(|(n, _)| n == f).map(|(_, l)| *l);
        }
        let l = &self.limits;
        let message = match inner {
            EvalAltResult::ErrorTooManyOperations(..) => format!(
                "more than {} operations in one call of `{FUNCTION}` (an endless loop?); that is the limit per frame",
                l.max_operations
            ),
            EvalAltResult::ErrorStackOverflow(..) => {
                format!(
                    "function calls nested deeper than {} levels (runaway recursion?)",
                    l.max_call_levels
                )
            }
            EvalAltResult::ErrorDataTooLarge(what, ..) => format!(
                "{what} grew beyond the limit (strings {} bytes, arrays {} items, maps {} entries)",
                l.max_string_size, l.max_array_size, l.max_map_size
            ),
            EvalAltResult::ErrorTerminated(..) => {
                if self.clock.now_ns().saturating_sub(total_start) >= l.total_time.as_nanos() as u64
                {
                    format!(
                        "the script ran longer than {:?} over all frames together",
                        l.total_time
                    )
                } else {
                    format!("one call of `{FUNCTION}` ran longer than {:?}", l.call_time)
                }
            }
            other => other.to_string(),
        };
        let message = match func {
            Some(f) if f != FUNCTION => format!("in `{f}`: {message}"),
            _ => message,
        };
        self.error(Some(frame), line, column, message)
    }

    /// Calls `frame(ctx)` for frames `0..ctx.max_frames` in order and applies the results to
    /// `numeric` (column name, one value per frame), which holds the keyframed (and preset) values
    /// on entry and the final ones on return.
    ///
    /// The context map has `t` (float frame index), `frame` (integer), `max_f`, `max_frames`, `fps`,
    /// `sec`, `seed`, `sched` (every numeric schedule's value at this frame), `vars` (the scene's
    /// `[variables]`) and `state` (the previous frame's returned `state`, `#{}` at frame 0), and with `[audio]`
    /// the per-frame audio variables (`amp`, `onset`, `beat`, `bass`, `mid`, `treble`, `bpm`).
    ///
    /// # Errors
    /// Any script error or exceeded limit, or a result that is not a map of finite numbers for
    /// known schedules; every error names the script, the frame and, when known, the line.
    pub fn run(
        &self,
        ctx: &Context,
        numeric: &mut Vec<(String, Vec<f64>)>,
    ) -> Result<(), ScriptError> {
        let total_start = self.clock.now_ns();
        let total_end = total_start.saturating_add(self.limits.total_time.as_nanos() as u64);
        let call_ns = self.limits.call_time.as_nanos() as u64;
        let vars: Map = ctx
            .variables
            .iter()
            .map(|(k, v)| (k.as_str().into(), Dynamic::from_float(*v)))
            .collect();
        // templates cloned per frame (cheaper than building the maps); each call gets its own copy,
        // so a script that changes `ctx` cannot leave anything behind for the next frame
        let mut sched_template = Map::new();
        for (name, _) in numeric.iter() {
            sched_template.insert(name.as_str().into(), Dynamic::UNIT);
        }
        // the schedule of each template entry, in the map's (sorted) order
        let order: Vec<usize> = sched_template
            .keys()
            .map(|k| {
                numeric
                    .iter()
                    .position(|(n, _)| n.as_str() == k.as_str())
                    .unwrap_or(0)
            })
            .collect();
        let mut ctx_template = Map::new();
        ctx_template.insert(
            "max_f".into(),
            Dynamic::from_float(ctx.max_frames as f64 - 1.0),
        );
        ctx_template.insert(
            "max_frames".into(),
            Dynamic::from_int(ctx.max_frames as INT),
        );
        ctx_template.insert("fps".into(), Dynamic::from_float(ctx.fps));
        ctx_template.insert("seed".into(), Dynamic::from_int(ctx.seed as INT));
        ctx_template.insert("vars".into(), Dynamic::from_map(vars));
        let mut state = Dynamic::from_map(Map::new());
        let mut scope = Scope::new();
        let result = (|| -> Result<(), ScriptError> {
            for f in 0..ctx.max_frames {
                let now = self.clock.now_ns();
                self.clock.deadline_ns.store(
                    now.saturating_add(call_ns).min(total_end),
                    Ordering::Relaxed,
                );
                let mut sched = sched_template.clone();
                for (v, &i) in sched.values_mut().zip(&order) {
                    *v = Dynamic::from_float(numeric[i].1[f]);
                }
                let mut m = ctx_template.clone();
                m.insert("t".into(), Dynamic::from_float(f as f64));
                m.insert("frame".into(), Dynamic::from_int(f as INT));
                m.insert("sec".into(), Dynamic::from_float(f as f64 / ctx.fps));
                for (name, s) in &ctx.series {
                    let v = s.get(f).or(s.last()).copied().unwrap_or(0.0);
                    m.insert(name.as_str().into(), Dynamic::from_float(v));
                }
                m.insert("sched".into(), Dynamic::from_map(sched));
                m.insert("state".into(), std::mem::take(&mut state));
                let out = self
                    .engine
                    .call_fn_with_options::<Dynamic>(
                        CallFnOptions::new().eval_ast(false).rewind_scope(true),
                        &mut scope,
                        &self.ast,
                        FUNCTION,
                        (Dynamic::from_map(m),),
                    )
                    .map_err(|e| self.runtime_error(e, f, total_start))
                    .map_err(|mut e| {
                        if ctx.series.is_empty()
                            && let Some(v) = self.audio_uses.first()
                        {
                            e.message += &format!(
                                " (the script reads `ctx.{v}`, an audio variable: the scene needs \
                                 an [audio] table with `file = \"song.mp3\"`)"
                            );
                        }
                        e
                    })?;
                state = self
                    .apply_result(f, out, numeric)?
                    .unwrap_or_else(|| Dynamic::from_map(Map::new()));
            }
            Ok(())
        })();
        self.clock.deadline_ns.store(u64::MAX, Ordering::Relaxed);
        // prompt variables hold their last value, and their first one before it was set
        for (name, values) in numeric.iter_mut() {
            if name.starts_with(PROMPT_PREFIX) {
                let mut last = values.iter().copied().find(|v| !v.is_nan()).unwrap_or(1.0);
                for v in values.iter_mut() {
                    if v.is_nan() {
                        *v = last;
                    } else {
                        last = *v;
                    }
                }
            }
        }
        result
    }

    /// Applies one frame's returned map; returns the `state` to pass on.
    fn apply_result(
        &self,
        f: usize,
        out: Dynamic,
        numeric: &mut Vec<(String, Vec<f64>)>,
    ) -> Result<Option<Dynamic>, ScriptError> {
        if out.is_unit() {
            return Ok(None);
        }
        let type_name = out.type_name();
        let Some(map) = out.try_cast::<Map>() else {
            return Err(self.error(Some(f), None, None, format!("`{FUNCTION}` returned {type_name}; return a map such as #{{ zoom: 1.01 }} (or nothing)")));
        };
        let mut state = None;
        let mut adds = None;
        for (k, v) in map {
            match k.as_str() {
                "state" => state = Some(v),
                "add" => adds = Some(v),
                "prompt" => {
                    let type_name = v.type_name();
                    let Some(vars) = v.try_cast::<Map>() else {
                        return Err(self.error(
                            Some(f),
                            None,
                            None,
                            format!("`prompt` is {type_name}; it must be a map such as #{{ cat: 1.2 }} (prompt variables)"),
                        ));
                    };
                    let n = numeric.first().map(|(_, v)| v.len()).unwrap_or(f + 1);
                    for (name, val) in vars {
                        let x = self.number(f, &name, &val)?;
                        let col = format!("{PROMPT_PREFIX}{name}");
                        let i = match numeric.iter().position(|(c, _)| *c == col) {
                            Some(i) => i,
                            None => {
                                numeric.push((col, vec![f64::NAN; n]));
                                numeric.len() - 1
                            }
                        };
                        numeric[i].1[f] = x;
                    }
                }
                key => {
                    let x = self.number(f, key, &v)?;
                    self.series(f, key, numeric)?[f] = x;
                }
            }
        }
        if let Some(adds) = adds {
            let type_name = adds.type_name();
            let Some(adds) = adds.try_cast::<Map>() else {
                return Err(self.error(
                    Some(f),
                    None,
                    None,
                    format!("`add` is {type_name}; it must be a map such as #{{ angle: 0.5 }}"),
                ));
            };
            for (k, v) in adds {
                let x = self.number(f, &k, &v)?;
                self.series(f, &k, numeric)?[f] += x;
            }
        }
        Ok(state)
    }

    fn number(&self, f: usize, key: &str, v: &Dynamic) -> Result<f64, ScriptError> {
        let x = if let Ok(x) = v.as_float() {
            x
        } else if let Ok(i) = v.as_int() {
            i as f64
        } else {
            return Err(self.error(
                Some(f),
                None,
                None,
                format!(
                    "`{key}` is {}; schedule values must be numbers",
                    v.type_name()
                ),
            ));
        };
        if !x.is_finite() {
            return Err(self.error(
                Some(f),
                None,
                None,
                format!("`{key}` is {x}; schedule values must be finite numbers"),
            ));
        }
        Ok(x)
    }

    fn series<'a>(
        &self,
        f: usize,
        key: &str,
        numeric: &'a mut [(String, Vec<f64>)],
    ) -> Result<&'a mut Vec<f64>, ScriptError> {
        if let Some(i) = numeric.iter().position(|(c, _)| c == key) {
            return Ok(&mut numeric[i].1);
        }
        let hint = did_you_mean(
            key,
            numeric
                .iter()
                .map(|(c, _)| c.as_str())
                .chain(["state", "add"]),
        );
        Err(self.error(Some(f), None, None, format!("returned `{key}`, which is not a numeric schedule{hint} (`anim schedule` lists the names)")))
    }
}

/// Column-name prefix of the prompt variables a script returns under `prompt`: `prompt.cat` is
/// the variable `cat` in the frame's prompt math (`` (cat:`cat`) ``).
pub const PROMPT_PREFIX: &str = "prompt.";

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(n: usize) -> Context {
        let mut c = Context::new(n, 7, 10.0);
        c.variables.push(("speed".into(), 2.0));
        c
    }

    fn numeric(n: usize) -> Vec<(String, Vec<f64>)> {
        vec![
            ("angle".into(), vec![0.5; n]),
            ("zoom".into(), vec![1.0; n]),
            ("translation_x".into(), vec![1.0; n]),
        ]
    }

    fn run(src: &str, n: usize) -> Result<Vec<(String, Vec<f64>)>, ScriptError> {
        let s = MotionScript::compile(src, "test.rhai", ScriptLimits::default())?;
        let mut v = numeric(n);
        s.run(&ctx(n), &mut v)?;
        Ok(v)
    }

    #[test]
    fn zoom_override_gives_the_values() {
        let v = run(
            "fn frame(ctx) {\n    #{ zoom: 1.0 + 0.01 * sin(ctx.t) }\n}\n",
            30,
        )
        .unwrap();
        for (i, z) in v[1].1.iter().enumerate() {
            assert_eq!(*z, 1.0 + 0.01 * (i as f64).sin(), "frame {i}");
        }
        assert!(
            v[0].1.iter().all(|a| *a == 0.5),
            "other schedules untouched"
        );
    }

    #[test]
    fn context_add_and_state() {
        let src = r#"
fn frame(ctx) {
    let n = ctx.state.n ?? 0;
    #{
        translation_x: ctx.sched.translation_x * ctx.vars.speed + ctx.sec,
        add: #{ angle: ctx.frame },
        state: #{ n: n + 1 },
        zoom: n + ctx.max_f + ctx.seed,
    }
}
"#;
        let v = run(src, 4).unwrap();
        assert_eq!(
            v[2].1,
            (0..4).map(|f| 2.0 + f as f64 / 10.0).collect::<Vec<_>>()
        );
        assert_eq!(v[0].1, vec![0.5, 1.5, 2.5, 3.5]);
        assert_eq!(v[1].1, vec![10.0, 11.0, 12.0, 13.0]);
    }

    #[test]
    fn changing_ctx_leaves_nothing_for_the_next_frame() {
        let src = "fn frame(ctx) { let seen = ctx.sched.extra ?? 0; let sp = ctx.vars.speed; ctx.sched.extra = 5; ctx.sched.zoom = 9.0; ctx.vars.speed = 0.0; #{ angle: seen + sp, translation_x: ctx.sched.zoom } }";
        let v = run(src, 3).unwrap();
        assert_eq!(v[0].1, vec![2.0; 3]);
        assert_eq!(v[2].1, vec![9.0; 3]);
        assert_eq!(v[1].1, vec![1.0; 3]);
    }

    #[test]
    fn returning_nothing_keeps_the_keyframes() {
        let v = run("fn frame(ctx) { if ctx.frame == 1 { #{ zoom: 2 } } }", 3).unwrap();
        assert_eq!(v[1].1, vec![1.0, 2.0, 1.0]);
    }

    fn error(src: &str) -> ScriptError {
        run(src, 5).unwrap_err()
    }

    #[test]
    fn errors_name_script_line_and_frame() {
        let e = error(
            "fn frame(ctx) {\n    let x = 1;\n    if ctx.frame == 3 {\n        x = x / 0;\n    }\n    #{ zoom: x }\n}\n",
        );
        assert_eq!((e.line, e.frame), (Some(4), Some(3)), "{e}");
        let s = e.to_string();
        assert!(
            s.starts_with("test.rhai: line 4, column")
                && s.contains("frame 3")
                && s.contains("Division by zero"),
            "{s}"
        );

        let e = error("fn frame(ctx) {\n    #{ zoom: 1 +\n}\n");
        assert!(
            e.line.is_some() && e.frame.is_none() && e.message.contains("does not compile"),
            "{e}"
        );

        let e = error("fn frame(ctx) {\n  #{ zoom: speed }\n}\n");
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.contains("speed"), "{e}");

        let e =
            error("fn helper(x) {\n  x.nope()\n}\nfn frame(ctx) {\n  #{ zoom: helper(1) }\n}\n");
        assert_eq!((e.line, e.frame), (Some(2), Some(0)), "{e}");
        assert!(e.message.contains("in `helper`"), "{e}");

        let e = error("fn frame(ctx) { #{ zom: 1.0 } }");
        assert!(
            e.to_string().contains("frame 0") && e.message.contains("did you mean `zoom`"),
            "{e}"
        );
        let e = error("fn frame(ctx) { #{ zoom: \"big\" } }");
        assert!(e.message.contains("`zoom` is string"), "{e}");
        let e = error("fn frame(ctx) { #{ zoom: sqrt(-1.0) } }");
        assert!(e.message.contains("finite"), "{e}");
        let e = error("fn frame(ctx) { 5 }");
        assert!(e.message.contains("returned i64"), "{e}");
        let e = error("fn frames(ctx) { 5 }");
        assert!(e.message.contains("no `fn frame(ctx)`"), "{e}");
    }

    #[test]
    fn no_files_environment_clock_or_eval() {
        for (src, needle) in [
            ("import \"x\" as y;\nfn frame(ctx) { #{} }", "import"),
            ("fn frame(ctx) { eval(\"1\") }", "eval"),
            ("fn frame(ctx) { sleep(10); #{} }", "sleep"),
            ("fn frame(ctx) { sleep(0.5); #{} }", "sleep"),
            ("fn frame(ctx) { timestamp(); #{} }", "timestamp"),
            ("fn frame(ctx) { open_file(\"/etc/passwd\") }", "open_file"),
            ("fn frame(ctx) { env(\"HOME\") }", "env"),
        ] {
            let t = Instant::now();
            let e = error(src).to_string();
            assert!(e.contains(needle), "{src}: {e}");
            assert!(t.elapsed() < Duration::from_secs(5), "{src}");
        }
    }

    /// Hostile scripts end with a clear error quickly (the bound is generous: it proves termination).
    #[test]
    fn hostile_scripts_end_with_a_clear_error() {
        for (src, needle) in [
            ("fn frame(ctx) { loop { } }", "operations"),
            (
                "fn frame(ctx) { let i = 0; while true { i += 1; } }",
                "operations",
            ),
            (
                "fn f(n) { f(n + 1) }\nfn frame(ctx) { f(0) }",
                "nested deeper",
            ),
            (
                "fn frame(ctx) { let s = \"x\"; loop { s += s; } }",
                "grew beyond",
            ),
            (
                "fn frame(ctx) { let s = \"\"; s.pad(1_000_000_000, 'x'); #{} }",
                "grew beyond",
            ),
            (
                "fn frame(ctx) { let a = [0]; loop { a += a; } }",
                "grew beyond",
            ),
            (
                "fn frame(ctx) { let a = []; a.pad(1_000_000_000, 0); #{} }",
                "grew beyond",
            ),
        ] {
            let t = Instant::now();
            let e = error(src);
            let elapsed = t.elapsed();
            assert!(
                e.to_string().contains(needle) && e.frame == Some(0) && e.line.is_some(),
                "{src}: {e}"
            );
            assert!(elapsed < Duration::from_secs(5), "{src}: took {elapsed:?}");
        }
    }

    #[test]
    fn wall_time_limit_stops_a_slow_call() {
        let limits = ScriptLimits {
            max_operations: u64::MAX,
            call_time: Duration::from_millis(50),
            ..ScriptLimits::default()
        };
        let s = MotionScript::compile("fn frame(ctx) { loop { } }", "slow.rhai", limits).unwrap();
        let t = Instant::now();
        let e = s.run(&ctx(3), &mut numeric(3)).unwrap_err();
        assert!(
            e.message.contains("ran longer than") && e.frame == Some(0),
            "{e}"
        );
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn deterministic() {
        let src = "fn frame(ctx) { let m = ctx.state.m ?? 1.0; #{ zoom: m, state: #{ m: m * 1.01 + sin(ctx.t) } } }";
        assert_eq!(run(src, 50).unwrap(), run(src, 50).unwrap());
    }
}
