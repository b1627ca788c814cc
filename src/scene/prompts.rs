//! Prompts: keyed prompts split at `--neg`, the prompt in force at a frame, prompt travel and
//! Deforum's prompt math.

use serde::Serialize;

use super::registry;
use super::{AnimationMode, FrameSchedules, PromptTravel, Scene};
use crate::schedule::Context;

/// A prompt split at `--neg`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prompt {
    /// Positive text.
    pub positive: String,
    /// Negative text (after `--neg`), possibly empty.
    pub negative: String,
}

impl Prompt {
    /// Splits `text` at the first `--neg`.
    pub fn parse(text: &str) -> Prompt {
        match text.split_once("--neg") {
            Some((p, n)) => Prompt {
                positive: p.trim().into(),
                negative: n.trim().into(),
            },
            None => Prompt {
                positive: text.trim().into(),
                negative: String::new(),
            },
        }
    }
}

impl Scene {
    /// With prompt travel on: the next keyed prompt after `frame` (as [`Scene::prompt_at`] gives
    /// it at that key) and the weight 0..1 of the way from the current key to it.
    pub fn travel_at(&self, frame: usize) -> Option<(Prompt, f32)> {
        self.travel_impl(frame, None)
    }

    /// [`Scene::travel_at`] with the prompt variables of a motion script (`sched`).
    pub fn travel_at_with(&self, frame: usize, sched: &FrameSchedules) -> Option<(Prompt, f32)> {
        self.travel_impl(frame, Some(sched))
    }

    fn travel_impl(&self, frame: usize, sched: Option<&FrameSchedules>) -> Option<(Prompt, f32)> {
        if self.parseq_prompts().is_some() {
            // Parseq's per-frame prompts carry their own blending
            return None;
        }
        if self.animation_prompts.travel == PromptTravel::None
            && self.animation.mode != AnimationMode::Interpolation
        {
            return None;
        }
        let mut keys: Vec<usize> = self
            .prompts
            .keys()
            .filter_map(|k| k.trim().parse().ok())
            .collect();
        keys.sort();
        let cur = keys.iter().rev().find(|k| **k <= frame).copied()?;
        let next = keys.iter().find(|k| **k > frame).copied()?;
        let w = (frame - cur) as f32 / (next - cur) as f32;
        // the next prompt's math is evaluated at this frame, like the current one
        Some((self.prompt_keyed(next, frame, sched), w))
    }

    /// The expression context of prompt math at `frame`: the scene's, plus the prompt variables a
    /// motion script set for that frame.
    pub(super) fn prompt_context(
        &self,
        base: &Context,
        sched: Option<&FrameSchedules>,
        frame: usize,
    ) -> Context {
        let mut ctx = base.clone();
        if let Some(s) = sched {
            for (name, values) in s.columns().numeric() {
                if let Some(var) = name.strip_prefix(crate::motion::script::PROMPT_PREFIX) {
                    ctx.variables.push((
                        var.to_string(),
                        values[frame.min(values.len().saturating_sub(1))],
                    ));
                }
            }
        }
        ctx
    }

    /// [`Scene::prompt_at`] with the prompt variables of a motion script (`sched`).
    pub fn prompt_at_with(&self, frame: usize, sched: &FrameSchedules) -> Prompt {
        self.prompt_impl(frame, Some(sched))
    }

    /// The prompt in force at `frame`: the one at the greatest key <= frame (the first one before
    /// any key).
    pub fn prompt_at(&self, frame: usize) -> Prompt {
        self.prompt_impl(frame, None)
    }

    fn prompt_impl(&self, frame: usize, sched: Option<&FrameSchedules>) -> Prompt {
        self.prompt_keyed(frame, frame, sched)
    }

    /// The prompt keyed at or before `select`, with its math evaluated at frame `at`.
    fn prompt_keyed(&self, select: usize, at: usize, sched: Option<&FrameSchedules>) -> Prompt {
        let frame = select;
        let mut keyed: Vec<(usize, &String)> = self
            .prompts
            .iter()
            .filter_map(|(k, v)| k.trim().parse().ok().map(|k| (k, v)))
            .collect();
        keyed.sort_by_key(|(k, _)| *k);
        let chosen = keyed
            .iter()
            .rev()
            .find(|(k, _)| *k <= frame)
            .or(keyed.first());
        let parseq = self
            .parseq_prompts()
            .and_then(|p| p.get(frame).or(p.last()));
        let mut p = match parseq {
            Some(t) => Some(Prompt::parse(t)),
            None => chosen.map(|(_, t)| Prompt::parse(t)),
        }
        .unwrap_or(Prompt {
            positive: String::new(),
            negative: String::new(),
        });
        let join = |a: &str, b: &str| match (a.trim().is_empty(), b.trim().is_empty()) {
            (_, true) => a.trim().to_string(),
            (true, false) => b.trim().to_string(),
            _ => format!("{}, {}", a.trim(), b.trim()),
        };
        p.positive = join(&p.positive, &self.animation_prompts.positive);
        p.negative = join(&p.negative, &self.animation_prompts.negative);
        // backtick math, validated when the scene was loaded
        let ctx = self.prompt_context(&self.context(), sched, at);
        p.positive = expand_prompt_math(&p.positive, &ctx, at).unwrap_or(p.positive);
        p.negative = expand_prompt_math(&p.negative, &ctx, at).unwrap_or(p.negative);
        p
    }
}

/// Replaces each `` `expression` `` in a prompt with its value at frame `t` (Deforum's prompt
/// math, e.g. `` (cat:`0.5*sin(t/10)+1`) ``), evaluated with the schedule expression language.
pub fn expand_prompt_math(text: &str, ctx: &Context, t: usize) -> Result<String, String> {
    if !text.contains('`') {
        return Ok(text.to_string());
    }
    let parts: Vec<&str> = text.split('`').collect();
    if parts.len().is_multiple_of(2) {
        return Err(format!(
            "unbalanced backtick in prompt {text:?}: prompt math is written `expression`"
        ));
    }
    let names = ctx.names();
    let vars = ctx.vars(t as f64);
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 0 {
            out.push_str(part);
        } else {
            let e = crate::schedule::Expr::parse(part, &names)
                .map_err(|e| format!("prompt math `{part}`: {e}"))?;
            let v = e.eval(&vars);
            if !v.is_finite() {
                return Err(format!("prompt math `{part}` is {v} at frame {t}"));
            }
            out.push_str(&registry::format_number((v * 1e6).round() / 1e6));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::tests::parse;

    #[test]
    fn travel_weights() {
        let s = parse(
            "[animation_prompts]\ntravel = \"linear\"\n[prompts]\n\"0\" = \"a\"\n\"10\" = \"b\"\n",
        )
        .unwrap();
        let (p, w) = s.travel_at(5).unwrap();
        assert_eq!((p.positive.as_str(), w), ("b", 0.5));
        assert!(
            s.travel_at(10).is_none(),
            "after the last key there is nothing to travel to"
        );
        assert!(
            parse("[prompts]\n\"0\" = \"a\"\n\"10\" = \"b\"\n")
                .unwrap()
                .travel_at(5)
                .is_none()
        );
    }

    #[test]
    fn motion_script_prompt_weights() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("w.rhai"),
            "fn frame(ctx) { if ctx.frame >= 2 { #{ prompt: #{ catw: 1.0 + ctx.t / 10.0 } } } }",
        )
        .unwrap();
        let text = "[animation]\nmax_frames = 6\n[motion]\nscript = \"w.rhai\"\n[prompts]\n\"0\" = \"a (cat:`catw`)\"\n";
        let scene = Scene::from_toml(text, &dir.path().join("s.toml")).unwrap();
        let sched = scene.schedules().unwrap();
        // frames before the first assignment take the first value; the column shows in `anim schedule`
        assert_eq!(
            sched.get("prompt.catw").unwrap(),
            &[1.2, 1.2, 1.2, 1.3, 1.4, 1.5]
        );
        assert_eq!(scene.prompt_at_with(5, &sched).positive, "a (cat:1.5)");
        assert_eq!(scene.prompt_at_with(0, &sched).positive, "a (cat:1.2)");
        // without the script the variable is unknown: a clear error at load
        let e = Scene::from_toml(
            "[prompts]\n\"0\" = \"a (cat:`catw`)\"\n",
            &dir.path().join("s.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("catw"), "{e}");
    }

    #[test]
    fn prompt_math() {
        let s = parse("[prompts]\n\"0\" = \"a (cat:`1+t/10`) --neg `t*2` dogs\"\n").unwrap();
        assert_eq!(s.prompt_at(5).positive, "a (cat:1.5)");
        assert_eq!(s.prompt_at(5).negative, "10 dogs");
        let e = parse("[prompts]\n\"0\" = \"a (cat:`1+sinn(t)`)\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[prompts] \"0\"") && e.contains("sinn"), "{e}");
        assert!(
            parse("[prompts]\n\"0\" = \"a `t\"\n")
                .unwrap_err()
                .to_string()
                .contains("backtick")
        );
    }

    #[test]
    fn prompts_and_neg() {
        let s =
            parse("[prompts]\n\"0\" = \"a forest --neg blurry\"\n\"10\" = \"a city\"\n").unwrap();
        assert_eq!(
            s.prompt_at(3),
            Prompt {
                positive: "a forest".into(),
                negative: "blurry".into()
            }
        );
        assert_eq!(s.prompt_at(10).positive, "a city");
    }
}
