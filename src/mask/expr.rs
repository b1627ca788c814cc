//! Composable mask expressions (Deforum's `composable_masks.py`) and the held-text schedules that
//! carry them (`mask_schedule`, `noise_mask_schedule`).
//!
//! Grammar: `expr := term (op term)*` with `&` binding tightest, then `|`, `^`, `\` (all
//! left-associative), and `term := '!' term | '(' expr ')' | '{name}' | '[file]' | '<words>'`.
//! Deforum rewrites the string with regular expressions instead; the results are the same
//! wherever Deforum does not fail and `!` stands on the last operand. The differences
//! (docs/deforum-differences.md): parentheses work, `!` binds to its own operand, and
//! `!{everywhere}` is empty. Operands are thresholded at 128 (Pillow's `convert("1")` without
//! dithering); Deforum dithers grey operands with Floyd–Steinberg.
//! Hand-written: the grammar is small and its errors must name the position for the user.

use image::GrayImage;

/// The deepest nesting of `!` and parentheses an expression may have.
pub const MASK_NESTING: usize = 256;

/// A binary operator of a mask expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskOp {
    /// `&`: both.
    And,
    /// `|`: either.
    Or,
    /// `^`: exactly one.
    Xor,
    /// `\`: the left without the right.
    Minus,
}

impl MaskOp {
    fn binding(self) -> u8 {
        match self {
            MaskOp::And => 4,
            MaskOp::Or => 3,
            MaskOp::Xor => 2,
            MaskOp::Minus => 1,
        }
    }

    fn apply(self, a: bool, b: bool) -> bool {
        match self {
            MaskOp::And => a && b,
            MaskOp::Or => a || b,
            MaskOp::Xor => a != b,
            MaskOp::Minus => a && !b,
        }
    }
}

/// A parsed mask expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaskExpr {
    /// `{name}`: a named mask (`everywhere`, `video_mask`).
    Var(String),
    /// `[path]`: a mask file, loaded as `prepare_mask` does.
    File(String),
    /// `<words>`: a CLIPSeg word mask of the frame the expression is composed on.
    Words(String),
    /// `!term`: the inverse.
    Not(Box<MaskExpr>),
    /// `a op b`.
    Binary(MaskOp, Box<MaskExpr>, Box<MaskExpr>),
}

/// Where an expression's operands come from when it is evaluated.
pub trait MaskSources {
    /// The mask named `{name}` (`everywhere` is built in), at the frame size; `None` if unknown.
    fn var(&mut self, name: &str) -> Option<GrayImage>;
    /// The mask file `path` (as written between the brackets), at the frame size.
    fn file(&mut self, path: &str) -> Result<GrayImage, String>;
    /// The word mask of `words` (CLIPSeg on the frame being composed), at the frame size; by
    /// default an error (sources without a frame or a model).
    fn words(&mut self, words: &str) -> Result<GrayImage, String> {
        Err(format!(
            "word mask `<{words}>` needs a frame and a CLIPSeg model, which this mask has not"
        ))
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while let Some(c) = self.text[self.pos..].chars().next() {
            if !c.is_whitespace() {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn err(&self, what: &str) -> String {
        format!(
            "mask expression {:?}, at character {}: {what}",
            self.text,
            self.text[..self.pos].chars().count() + 1
        )
    }

    /// Everything up to `close` (exclusive); the cursor moves past it.
    fn until(&mut self, close: char, what: &str) -> Result<String, String> {
        let start = self.pos;
        match self.text[start..].find(close) {
            Some(i) => {
                self.pos = start + i + close.len_utf8();
                let inner = self.text[start..start + i].trim();
                if inner.is_empty() {
                    self.pos = start;
                    return Err(self.err(&format!("an empty {what}")));
                }
                Ok(inner.to_string())
            }
            None => Err(self.err(&format!("a {what} without its closing `{close}`"))),
        }
    }

    fn term(&mut self, depth: usize) -> Result<MaskExpr, String> {
        if depth > MASK_NESTING {
            return Err(self.err(&format!(
                "nested deeper than {MASK_NESTING} levels of `!` and parentheses"
            )));
        }
        self.skip_ws();
        let Some(c) = self.peek() else {
            return Err(self
                .err("expected a mask: `{name}`, `[file]`, `<words>`, `!mask` or `(expression)`"));
        };
        self.pos += c.len_utf8();
        Ok(match c {
            '!' => MaskExpr::Not(Box::new(self.term(depth + 1)?)),
            '(' => {
                let e = self.expr(0, depth + 1)?;
                self.skip_ws();
                if self.peek() != Some(')') {
                    return Err(self.err("expected `)` closing the parenthesis"));
                }
                self.pos += 1;
                e
            }
            '{' => MaskExpr::Var(self.until('}', "`{name}`")?),
            '[' => MaskExpr::File(self.until(']', "`[file]`")?),
            '<' => MaskExpr::Words(self.until('>', "`<words>`")?),
            _ => {
                self.pos -= c.len_utf8();
                return Err(self.err(&format!(
                    "unexpected `{c}`: expected `{{name}}`, `[file]`, `<words>`, `!` or `(`"
                )));
            }
        })
    }

    fn op(&mut self) -> Option<MaskOp> {
        self.skip_ws();
        let op = match self.peek()? {
            '&' => MaskOp::And,
            '|' => MaskOp::Or,
            '^' => MaskOp::Xor,
            '\\' => MaskOp::Minus,
            _ => return None,
        };
        Some(op)
    }

    /// Precedence climbing: operators binding tighter than `min` are taken here.
    fn expr(&mut self, min: u8, depth: usize) -> Result<MaskExpr, String> {
        let mut left = self.term(depth)?;
        while let Some(op) = self.op() {
            if op.binding() <= min {
                break;
            }
            self.pos += 1;
            let right = self.expr(op.binding(), depth)?;
            left = MaskExpr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }
}

impl MaskExpr {
    /// Parses an expression (`{video_mask} & ![mask.png]`); errors name the position.
    pub fn parse(text: &str) -> Result<MaskExpr, String> {
        let mut p = Parser { text, pos: 0 };
        p.skip_ws();
        if p.peek().is_none() {
            return Err(format!(
                "mask expression {text:?} is empty: write `{{everywhere}}` for the whole frame"
            ));
        }
        let e = p.expr(0, 0)?;
        p.skip_ws();
        if let Some(c) = p.peek() {
            return Err(p.err(&format!(
                "unexpected `{c}`: expected an operator `&`, `|`, `^` or `\\` between masks"
            )));
        }
        Ok(e)
    }

    /// The words of the expression's word masks (`<words>`), in order of appearance.
    pub fn words(&self) -> Vec<&str> {
        match self {
            MaskExpr::Words(w) => vec![w.as_str()],
            MaskExpr::Var(_) | MaskExpr::File(_) => Vec::new(),
            MaskExpr::Not(e) => e.words(),
            MaskExpr::Binary(_, a, b) => {
                let mut v = a.words();
                v.extend(b.words());
                v
            }
        }
    }

    /// Evaluates to a black-and-white mask of `w` × `h` pixels (255 inside); each operand is
    /// thresholded at 128 first.
    pub fn eval(&self, w: u32, h: u32, src: &mut dyn MaskSources) -> Result<GrayImage, String> {
        let bits = self.bits(w, h, src)?;
        let data = bits.into_iter().map(|b| if b { 255 } else { 0 }).collect();
        Ok(GrayImage::from_raw(w, h, data).expect("one value per pixel"))
    }

    fn bits(&self, w: u32, h: u32, src: &mut dyn MaskSources) -> Result<Vec<bool>, String> {
        let n = w as usize * h as usize;
        let operand = |img: GrayImage, what: &str| {
            if img.dimensions() != (w, h) {
                return Err(format!(
                    "mask {what} is {}x{}, not the frame's {w}x{h}",
                    img.width(),
                    img.height()
                ));
            }
            Ok(img.as_raw().iter().map(|&v| v >= 128).collect())
        };
        match self {
            MaskExpr::Var(name) if name == "everywhere" => Ok(vec![true; n]),
            MaskExpr::Var(name) => match src.var(name) {
                Some(img) => operand(img, &format!("{{{name}}}")),
                None if name == "init_mask" => Err(
                    "mask `{init_mask}` has no value (Deforum names it in its help but never sets \
                     it): use `{video_mask}` with `use_alpha_as_mask`"
                        .into(),
                ),
                None => Err(format!(
                    "unknown mask `{{{name}}}`: the named masks are `{{everywhere}}` and \
                     `{{video_mask}}`"
                )),
            },
            MaskExpr::File(path) => operand(src.file(path)?, &format!("[{path}]")),
            MaskExpr::Words(words) => operand(src.words(words)?, &format!("<{words}>")),
            MaskExpr::Not(e) => Ok(e.bits(w, h, src)?.into_iter().map(|b| !b).collect()),
            MaskExpr::Binary(op, a, b) => {
                let a = a.bits(w, h, src)?;
                let b = b.bits(w, h, src)?;
                Ok(a.iter().zip(&b).map(|(&x, &y)| op.apply(x, y)).collect())
            }
        }
    }
}

/// A mask schedule (`0: ("{video_mask}"), 30: ("[a.png] | [b.png]")`): each key's expression is
/// held until the next key; frames before the first key take the first key's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskSchedule {
    /// The keys by frame, in increasing order.
    pub keys: Vec<(usize, MaskExpr)>,
}

/// The largest key frame of a mask schedule.
const MAX_KEY_FRAME: usize = 1_000_000;

impl MaskSchedule {
    /// Parses `N: ("expr"), M: (expr), …`. Unlike Deforum, the split is aware of quotes,
    /// brackets and parentheses, so `[C:/m.png]` and `[a,b.png]` are file names and
    /// parentheses inside a value group operands.
    pub fn parse(text: &str) -> Result<MaskSchedule, String> {
        let bad = |why: String| format!("mask schedule {text:?}: {why}");
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        let mut keys: Vec<(usize, MaskExpr)> = Vec::new();
        let skip = |i: &mut usize| {
            while *i < chars.len() && chars[*i].is_whitespace() {
                *i += 1;
            }
        };
        loop {
            skip(&mut i);
            if i >= chars.len() {
                break;
            }
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let num: String = chars[start..i].iter().collect();
            let frame: usize = match num.parse() {
                Ok(f) if f <= MAX_KEY_FRAME => f,
                Ok(_) => return Err(bad(format!("key frame {num} is above {MAX_KEY_FRAME}"))),
                Err(_) => {
                    return Err(bad(format!(
                        "expected a key frame number at character {}",
                        start + 1
                    )));
                }
            };
            skip(&mut i);
            if chars.get(i) != Some(&':') {
                return Err(bad(format!("expected `:` after key frame {frame}")));
            }
            i += 1;
            skip(&mut i);
            // the value: up to a `,` at depth 0, outside quotes and brackets
            let vstart = i;
            let mut depth = 0i64;
            let mut quote: Option<char> = None;
            let mut bracket: Option<char> = None;
            while i < chars.len() {
                let c = chars[i];
                if let Some(q) = quote {
                    if c == q {
                        quote = None;
                    }
                } else if let Some(b) = bracket {
                    if c == b {
                        bracket = None;
                    }
                } else {
                    match c {
                        '"' | '\'' => quote = Some(c),
                        '[' => bracket = Some(']'),
                        '{' => bracket = Some('}'),
                        '<' => bracket = Some('>'),
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        ',' if depth == 0 => break,
                        _ => {}
                    }
                }
                i += 1;
            }
            if quote.is_some() || bracket.is_some() || depth != 0 {
                return Err(bad(format!(
                    "the value of key frame {frame} has an unclosed quote, bracket or parenthesis"
                )));
            }
            let value: String = chars[vstart..i].iter().collect();
            let expr = MaskExpr::parse(&unwrap_value(value.trim()))
                .map_err(|e| bad(format!("key frame {frame}: {e}")))?;
            if let Some((last, _)) = keys.last()
                && *last >= frame
            {
                return Err(bad(format!(
                    "key frame {frame} follows key frame {last}: keys must increase"
                )));
            }
            keys.push((frame, expr));
            skip(&mut i);
            if i < chars.len() {
                i += 1; // the comma
            }
        }
        if keys.is_empty() {
            return Err(bad(
                "no keys: write at least `0: (\"{everywhere}\")`".to_string()
            ));
        }
        Ok(MaskSchedule { keys })
    }

    /// The expression of frame `frame`.
    pub fn at(&self, frame: usize) -> &MaskExpr {
        let i = self.keys.partition_point(|(f, _)| *f <= frame);
        &self.keys[i.saturating_sub(1)].1
    }
}

/// Strips the value's outer parentheses, then its quotes: `("{a} | [b]")` → `{a} | [b]`.
fn unwrap_value(v: &str) -> String {
    let mut v = v.trim();
    if v.starts_with('(') && v.ends_with(')') && outer_pair(v) {
        v = v[1..v.len() - 1].trim();
    }
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            v = &v[1..v.len() - 1];
            break;
        }
    }
    v.to_string()
}

/// Whether the first `(` of `v` closes at its last character (so `(a) & (b)` is not unwrapped).
fn outer_pair(v: &str) -> bool {
    let mut depth = 0i64;
    let mut quote: Option<char> = None;
    let mut bracket: Option<char> = None;
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        if let Some(b) = bracket {
            if c == b {
                bracket = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '[' => bracket = Some(']'),
            '{' => bracket = Some('}'),
            '<' => bracket = Some('>'),
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i == n - 1;
                }
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One-row masks from bit strings ("11110000").
    struct Rows;

    fn row(bits: &str) -> GrayImage {
        let data = bits
            .bytes()
            .map(|b| if b == b'1' { 255 } else { 0 })
            .collect();
        GrayImage::from_raw(bits.len() as u32, 1, data).unwrap()
    }

    impl MaskSources for Rows {
        fn var(&mut self, name: &str) -> Option<GrayImage> {
            (name == "video_mask").then(|| row("10011001"))
        }
        fn file(&mut self, path: &str) -> Result<GrayImage, String> {
            match path {
                "a" => Ok(row("11110000")),
                "b" => Ok(row("11001100")),
                "c" => Ok(row("10101010")),
                "grey" => {
                    Ok(GrayImage::from_raw(8, 1, vec![0, 127, 128, 129, 255, 1, 200, 64]).unwrap())
                }
                _ => Err(format!("no file {path}")),
            }
        }
    }

    fn eval(text: &str) -> Result<String, String> {
        let m = MaskExpr::parse(text)?.eval(8, 1, &mut Rows)?;
        Ok(m.as_raw()
            .iter()
            .map(|&v| if v == 255 { '1' } else { '0' })
            .collect())
    }

    /// Deforum's results on these rows (docs/research, run on the original function), wherever
    /// Deforum does not fail and `!` stands on the last operand.
    #[test]
    fn deforum_results_where_deforum_works() {
        for (e, want) in [
            ("[a]&[b]", "11000000"),
            ("[a]|[b]", "11111100"),
            ("[a]^[b]", "00111100"),
            ("[a]\\[b]", "00110000"),
            ("[a]&[b]|[c]", "11101010"),
            ("[a]&![b]", "00110000"),
        ] {
            assert_eq!(eval(e).unwrap(), want, "{e}");
        }
    }

    #[test]
    fn precedence_associativity_parentheses_and_not() {
        // `&` binds tighter than `|` (Deforum fails on this order)
        assert_eq!(eval("[a] | [b] & [c]").unwrap(), "11111000");
        // `\` is left-associative: (a \ b) \ c
        assert_eq!(eval("[a] \\ [b] \\ [c]").unwrap(), "00010000");
        // `^` below `|`: a ^ (b | c)
        assert_eq!(eval("[a] ^ [b] | [c]").unwrap(), "00011110");
        assert_eq!(eval("([a] | [b]) & [c]").unwrap(), "10101000");
        // `!` binds to its own operand (Deforum gives !b here)
        assert_eq!(eval("![a] & [b]").unwrap(), "00001100");
        assert_eq!(eval("!!{video_mask}").unwrap(), "10011001");
        assert_eq!(eval("!{everywhere}").unwrap(), "00000000");
        assert_eq!(eval("{everywhere}").unwrap(), "11111111");
        // operands are thresholded at 128
        assert_eq!(eval("[grey]").unwrap(), "00111010");
    }

    #[test]
    fn bad_expressions_are_clear_errors() {
        for (e, says) in [
            ("", "empty"),
            ("[a] &", "expected a mask"),
            ("[a] [b]", "expected an operator"),
            ("([a] | [b]", "closing the parenthesis"),
            ("[a", "closing `]`"),
            ("{}", "empty"),
            ("{nope}", "unknown mask `{nope}`"),
            ("{init_mask}", "init_mask"),
            ("<a cat>", "needs a frame and a CLIPSeg model"),
            ("[missing]", "no file missing"),
            ("[a] % [b]", "expected an operator"),
        ] {
            let err = eval(e).unwrap_err();
            assert!(err.contains(says), "{e}: {err}");
        }
        let deep = format!("{}[a]", "!".repeat(MASK_NESTING + 1));
        assert!(
            MaskExpr::parse(&deep)
                .unwrap_err()
                .contains("nested deeper")
        );
        let deep = format!("{}[a]{}", "(".repeat(300), ")".repeat(300));
        assert!(
            MaskExpr::parse(&deep)
                .unwrap_err()
                .contains("nested deeper")
        );
        assert!(MaskExpr::parse(&format!("{}[a]", "!".repeat(MASK_NESTING))).is_ok());
    }

    #[test]
    fn schedules_hold_values_and_split_outside_quotes_and_brackets() {
        let s = MaskSchedule::parse(
            r#"0: ("{video_mask}"), 10: ("[C:/m.png] & [b,c.png]"), 20: (({video_mask} | [a]) & [b])"#,
        )
        .unwrap();
        assert_eq!(s.keys.len(), 3);
        assert_eq!(s.at(0), &MaskExpr::Var("video_mask".into()));
        assert_eq!(s.at(9), &MaskExpr::Var("video_mask".into()));
        assert_eq!(
            s.at(10),
            &MaskExpr::Binary(
                MaskOp::And,
                Box::new(MaskExpr::File("C:/m.png".into())),
                Box::new(MaskExpr::File("b,c.png".into()))
            )
        );
        assert_eq!(s.at(15), s.at(10));
        assert!(matches!(s.at(1000), MaskExpr::Binary(MaskOp::And, _, _)));
        // frames before the first key take the first key's
        let s = MaskSchedule::parse("5: ('[a]')").unwrap();
        assert_eq!(s.at(0), &MaskExpr::File("a".into()));
        for (text, says) in [
            ("", "no keys"),
            ("x: ([a])", "key frame number"),
            ("0 ([a])", "expected `:`"),
            ("5: ([a]), 5: ([b])", "keys must increase"),
            ("0: (\"[a]", "unclosed"),
            ("0: ([a] &)", "key frame 0"),
            ("2000000: ([a])", "above"),
        ] {
            let err = MaskSchedule::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
