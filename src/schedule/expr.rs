//! numexpr-compatible expressions, as Deforum users write them in schedules.
//!
//! Grammar (Python precedence, lowest first): `|`, `&`, comparisons (`< <= > >= == !=`), `+ -`,
//! `* / // %`, unary `- + ~`, `**` (right-associative, binds tighter than a unary minus on its left,
//! so `-2**2 == -4`). Comparisons and `& | ~` yield 1.0 / 0.0. Division is true division and `%` is
//! Python's floored modulo. All arithmetic is f64.
//!
//! An expression is parsed once into a tree whose variables are slot indices, then evaluated per
//! frame with [`Expr::eval`]. Hand-written rather than evalexpr: numexpr's `**`, function names
//! (`arctan2`, `where`) and the column of a bad token in errors are the point of this module.

use std::fmt;

/// A parse error, with the 1-based column of the offending token in the expression text.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    /// 1-based character column in the expression.
    pub column: usize,
    /// What went wrong and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for ExprError {}

/// Functions known to expressions: numexpr's set plus `min`, `max`, `clip`, `round`, `sign`.
pub const FUNCTIONS: &[(&str, usize)] = &[
    ("sin", 1),
    ("cos", 1),
    ("tan", 1),
    ("arcsin", 1),
    ("arccos", 1),
    ("arctan", 1),
    ("arctan2", 2),
    ("sinh", 1),
    ("cosh", 1),
    ("tanh", 1),
    ("arcsinh", 1),
    ("arccosh", 1),
    ("arctanh", 1),
    ("abs", 1),
    ("sqrt", 1),
    ("exp", 1),
    ("expm1", 1),
    ("log", 1),
    ("log10", 1),
    ("log1p", 1),
    ("floor", 1),
    ("ceil", 1),
    ("where", 3),
    ("fmod", 2),
    ("min", 2),
    ("max", 2),
    ("clip", 3),
    ("round", 1),
    ("sign", 1),
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Bin {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
}

#[derive(Debug, Clone)]
enum Node {
    Num(f64),
    Var(usize),
    Neg(Box<Node>),
    Not(Box<Node>),
    Bin(Bin, Box<Node>, Box<Node>),
    Call(usize, Vec<Node>),
}

/// A compiled expression. Variables are bound to slots of the `vars` slice given to [`Expr::eval`].
#[derive(Debug, Clone)]
pub struct Expr {
    root: Node,
    uses_vars: bool,
}

impl Expr {
    /// Parses `src`; `names` lists the variable names, in the slot order `eval` will receive.
    pub fn parse(src: &str, names: &[&str]) -> Result<Expr, ExprError> {
        let tokens = lex(src)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            names,
            uses_vars: false,
            depth: 0,
        };
        let root = p.or()?;
        if let Some(tok) = p.tokens.get(p.pos) {
            return Err(ExprError {
                column: tok.col,
                message: format!(
                    "unexpected `{}` after a complete expression (missing operator?)",
                    tok.text
                ),
            });
        }
        Ok(Expr {
            root,
            uses_vars: p.uses_vars,
        })
    }

    /// Evaluates with `vars[i]` as the value of `names[i]` given to [`Expr::parse`].
    pub fn eval(&self, vars: &[f64]) -> f64 {
        eval(&self.root, vars)
    }

    /// True when the expression mentions no variable (so it is a constant).
    pub fn is_constant(&self) -> bool {
        !self.uses_vars
    }
}

fn truth(x: f64) -> bool {
    x != 0.0 && !x.is_nan()
}

fn b(x: bool) -> f64 {
    if x { 1.0 } else { 0.0 }
}

fn eval(n: &Node, v: &[f64]) -> f64 {
    match n {
        Node::Num(x) => *x,
        Node::Var(i) => v[*i],
        Node::Neg(a) => -eval(a, v),
        Node::Not(a) => b(!truth(eval(a, v))),
        Node::Bin(op, l, r) => {
            let (x, y) = (eval(l, v), eval(r, v));
            match op {
                Bin::Add => x + y,
                Bin::Sub => x - y,
                Bin::Mul => x * y,
                Bin::Div => x / y,
                Bin::FloorDiv => (x / y).floor(),
                Bin::Mod => {
                    // Python's floored modulo: the result takes the divisor's sign.
                    let m = x % y;
                    if m != 0.0 && (m < 0.0) != (y < 0.0) {
                        m + y
                    } else {
                        m
                    }
                }
                Bin::Pow => x.powf(y),
                Bin::Lt => b(x < y),
                Bin::Le => b(x <= y),
                Bin::Gt => b(x > y),
                Bin::Ge => b(x >= y),
                Bin::Eq => b(x == y),
                Bin::Ne => b(x != y),
                Bin::And => b(truth(x) && truth(y)),
                Bin::Or => b(truth(x) || truth(y)),
            }
        }
        Node::Call(f, args) => {
            let a = |i: usize| eval(&args[i], v);
            match FUNCTIONS[*f].0 {
                "sin" => a(0).sin(),
                "cos" => a(0).cos(),
                "tan" => a(0).tan(),
                "arcsin" => a(0).asin(),
                "arccos" => a(0).acos(),
                "arctan" => a(0).atan(),
                "arctan2" => a(0).atan2(a(1)),
                "sinh" => a(0).sinh(),
                "cosh" => a(0).cosh(),
                "tanh" => a(0).tanh(),
                "arcsinh" => a(0).asinh(),
                "arccosh" => a(0).acosh(),
                "arctanh" => a(0).atanh(),
                "abs" => a(0).abs(),
                "sqrt" => a(0).sqrt(),
                "exp" => a(0).exp(),
                "expm1" => a(0).exp_m1(),
                "log" => a(0).ln(),
                "log10" => a(0).log10(),
                "log1p" => a(0).ln_1p(),
                "floor" => a(0).floor(),
                "ceil" => a(0).ceil(),
                "where" => {
                    if truth(a(0)) {
                        a(1)
                    } else {
                        a(2)
                    }
                }
                "fmod" => a(0) % a(1),
                "min" => a(0).min(a(1)),
                "max" => a(0).max(a(1)),
                "clip" => a(0).max(a(1)).min(a(2)),
                // numpy rounds half to even
                "round" => a(0).round_ties_even(),
                "sign" => {
                    let x = a(0);
                    if x > 0.0 {
                        1.0
                    } else if x < 0.0 {
                        -1.0
                    } else {
                        x
                    }
                }
                other => unreachable!("function table out of sync: {other}"),
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Num(f64),
    Ident,
    Op,
    LParen,
    RParen,
    Comma,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    text: String,
    col: usize,
}

fn lex(src: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text: String = chars[start..i].iter().collect();
            let value = text.parse::<f64>().map_err(|_| ExprError {
                column: col,
                message: format!("`{text}` is not a number"),
            })?;
            out.push(Token {
                kind: Kind::Num(value),
                text,
                col,
            });
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token {
                kind: Kind::Ident,
                text: chars[start..i].iter().collect(),
                col,
            });
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let (kind, len) = match c {
            '(' => (Kind::LParen, 1),
            ')' => (Kind::RParen, 1),
            ',' => (Kind::Comma, 1),
            _ if ["**", "//", "<=", ">=", "==", "!="].contains(&two.as_str()) => (Kind::Op, 2),
            '+' | '-' | '*' | '/' | '%' | '<' | '>' | '&' | '|' | '~' => (Kind::Op, 1),
            _ => {
                return Err(ExprError {
                    column: col,
                    message: format!("unexpected character `{c}`"),
                });
            }
        };
        out.push(Token {
            kind,
            text: chars[i..i + len].iter().collect(),
            col,
        });
        i += len;
    }
    Ok(out)
}

/// How deeply an expression may nest: parentheses, calls, signs, powers and each operator of a
/// chain count one level. The parser and the evaluator recurse once per level, so this bounds
/// their stack use (Python itself refuses 200 nested parentheses).
pub const MAX_DEPTH: usize = 256;

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    names: &'a [&'a str],
    uses_vars: bool,
    depth: usize,
}

impl Parser<'_> {
    fn peek_op(&self, ops: &[&str]) -> Option<String> {
        match self.tokens.get(self.pos) {
            Some(t) if t.kind == Kind::Op && ops.contains(&t.text.as_str()) => Some(t.text.clone()),
            _ => None,
        }
    }

    /// One level deeper at the current token; an error past [`MAX_DEPTH`].
    fn enter(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let column = self
                .tokens
                .get(self.pos)
                .map_or_else(|| self.end_col(), |t| t.col);
            return Err(ExprError {
                column,
                message: format!(
                    "the expression nests more than {MAX_DEPTH} levels deep (parentheses, calls, \
                     signs and chained operators); split it into [variables]"
                ),
            });
        }
        Ok(())
    }

    fn end_col(&self) -> usize {
        self.tokens
            .last()
            .map(|t| t.col + t.text.chars().count())
            .unwrap_or(1)
    }

    /// The binary operator at the current token and its precedence (1 = `|` … 5 = `* / // %`).
    fn binary_op(&self) -> Option<(Bin, u8)> {
        let t = self.tokens.get(self.pos)?;
        if t.kind != Kind::Op {
            return None;
        }
        Some(match t.text.as_str() {
            "|" => (Bin::Or, 1),
            "&" => (Bin::And, 2),
            "<" => (Bin::Lt, 3),
            "<=" => (Bin::Le, 3),
            ">" => (Bin::Gt, 3),
            ">=" => (Bin::Ge, 3),
            "==" => (Bin::Eq, 3),
            "!=" => (Bin::Ne, 3),
            "+" => (Bin::Add, 4),
            "-" => (Bin::Sub, 4),
            "*" => (Bin::Mul, 5),
            "/" => (Bin::Div, 5),
            "//" => (Bin::FloorDiv, 5),
            "%" => (Bin::Mod, 5),
            _ => return None,
        })
    }

    /// Operators of precedence `min` and above, left-associative (precedence climbing: one
    /// call per level of nesting rather than one per precedence level, which keeps the stack
    /// small).
    fn expr(&mut self, min: u8) -> Result<Node, ExprError> {
        let mut lhs = self.unary()?;
        let outer = self.depth;
        while let Some((op, prec)) = self.binary_op() {
            if prec < min {
                break;
            }
            // each operator of a chain nests the tree one level deeper
            self.enter()?;
            self.pos += 1;
            let rhs = self.expr(prec + 1)?;
            lhs = Node::Bin(op, Box::new(lhs), Box::new(rhs));
        }
        self.depth = outer;
        Ok(lhs)
    }

    /// A whole expression (the lowest precedence).
    fn or(&mut self) -> Result<Node, ExprError> {
        self.expr(1)
    }

    fn unary(&mut self) -> Result<Node, ExprError> {
        if let Some(op) = self.peek_op(&["-", "+", "~"]) {
            self.enter()?;
            self.pos += 1;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(match op.as_str() {
                "-" => Node::Neg(Box::new(inner)),
                "~" => Node::Not(Box::new(inner)),
                _ => inner,
            });
        }
        self.power()
    }

    fn power(&mut self) -> Result<Node, ExprError> {
        let base = self.atom()?;
        if self.peek_op(&["**"]).is_some() {
            self.enter()?;
            self.pos += 1;
            // right-associative; the exponent may carry its own unary sign: 2**-1
            let exp = self.unary()?;
            self.depth -= 1;
            return Ok(Node::Bin(Bin::Pow, Box::new(base), Box::new(exp)));
        }
        Ok(base)
    }

    fn expect_rparen(&mut self, open_col: usize) -> Result<(), ExprError> {
        match self.tokens.get(self.pos) {
            Some(t) if t.kind == Kind::RParen => {
                self.pos += 1;
                Ok(())
            }
            Some(t) => Err(ExprError {
                column: t.col,
                message: format!(
                    "expected `)` to close the `(` at column {open_col}, found `{}`",
                    t.text
                ),
            }),
            None => Err(ExprError {
                column: self.end_col(),
                message: format!("the `(` at column {open_col} is never closed"),
            }),
        }
    }

    fn atom(&mut self) -> Result<Node, ExprError> {
        let Some(tok) = self.tokens.get(self.pos).cloned() else {
            return Err(ExprError {
                column: self.end_col(),
                message: "expression ends too early".into(),
            });
        };
        self.pos += 1;
        match tok.kind {
            Kind::Num(v) => Ok(Node::Num(v)),
            Kind::LParen => {
                self.pos -= 1;
                self.enter()?;
                self.pos += 1;
                let inner = self.or()?;
                self.depth -= 1;
                self.expect_rparen(tok.col)?;
                Ok(inner)
            }
            Kind::Ident => {
                let is_call =
                    matches!(self.tokens.get(self.pos), Some(t) if t.kind == Kind::LParen);
                if is_call {
                    self.call(&tok)
                } else {
                    self.variable(&tok)
                }
            }
            _ => Err(ExprError {
                column: tok.col,
                message: format!("unexpected `{}`", tok.text),
            }),
        }
    }

    fn variable(&mut self, tok: &Token) -> Result<Node, ExprError> {
        if let Some(i) = self.names.iter().position(|n| *n == tok.text) {
            self.uses_vars = true;
            return Ok(Node::Var(i));
        }
        match tok.text.as_str() {
            "pi" => return Ok(Node::Num(std::f64::consts::PI)),
            "e" => return Ok(Node::Num(std::f64::consts::E)),
            "True" | "true" => return Ok(Node::Num(1.0)),
            "False" | "false" => return Ok(Node::Num(0.0)),
            _ => {}
        }
        let mut known: Vec<&str> = self.names.to_vec();
        known.extend(["pi", "e"]);
        let hint = did_you_mean(
            &tok.text,
            known.iter().copied().chain(FUNCTIONS.iter().map(|f| f.0)),
        );
        if crate::audio::VARIABLES.contains(&tok.text.as_str()) {
            return Err(ExprError {
                column: tok.col,
                message: format!(
                    "`{}` is an audio variable and the scene has no [audio] table; add one with \
                     `file = \"song.mp3\"` (docs/scene-format.md, \"[audio]\")",
                    tok.text
                ),
            });
        }
        Err(ExprError {
            column: tok.col,
            message: format!(
                "unknown variable `{}`{hint}; variables here: {}",
                tok.text,
                known.join(", ")
            ),
        })
    }

    fn call(&mut self, tok: &Token) -> Result<Node, ExprError> {
        let Some(f) = FUNCTIONS.iter().position(|(n, _)| *n == tok.text) else {
            let hint = did_you_mean(&tok.text, FUNCTIONS.iter().map(|f| f.0));
            return Err(ExprError {
                column: tok.col,
                message: format!("unknown function `{}`{hint}", tok.text),
            });
        };
        let open_col = self.tokens[self.pos].col;
        self.enter()?;
        self.pos += 1;
        let mut args = Vec::new();
        if !matches!(self.tokens.get(self.pos), Some(t) if t.kind == Kind::RParen) {
            loop {
                args.push(self.or()?);
                if matches!(self.tokens.get(self.pos), Some(t) if t.kind == Kind::Comma) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        self.depth -= 1;
        self.expect_rparen(open_col)?;
        let arity = FUNCTIONS[f].1;
        if args.len() != arity {
            return Err(ExprError {
                column: tok.col,
                message: format!(
                    "`{}` takes {arity} argument(s), got {}",
                    tok.text,
                    args.len()
                ),
            });
        }
        Ok(Node::Call(f, args))
    }
}

/// `", did you mean `x`?"` for the closest candidate, or an empty string.
pub fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    candidates
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!(", did you mean `{c}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(s: &str, t: f64) -> f64 {
        Expr::parse(s, &["t", "max_f", "s"])
            .unwrap()
            .eval(&[t, 99.0, 42.0])
    }

    #[test]
    #[allow(clippy::approx_constant)] // 3.14 is what Deforum users write
    fn numexpr_semantics() {
        assert_eq!(ev("1+2*3", 0.0), 7.0);
        assert_eq!(ev("-2**2", 0.0), -4.0);
        assert_eq!(ev("2**3**2", 0.0), 512.0);
        assert_eq!(ev("2**-1", 0.0), 0.5);
        assert_eq!(ev("7/2", 0.0), 3.5);
        assert_eq!(ev("-7%3", 0.0), 2.0);
        assert_eq!(ev("7//2", 0.0), 3.0);
        assert_eq!(ev("(t>10)*1.0", 11.0), 1.0);
        assert_eq!(ev("(t>10)*1.0", 10.0), 0.0);
        assert_eq!(ev("(t>1)&(t<5)", 3.0), 1.0);
        assert_eq!(ev("where(t>5, 1, 0)", 6.0), 1.0);
        assert_eq!(ev("arctan2(1, 1)", 0.0), std::f64::consts::FRAC_PI_4);
        assert_eq!(ev("--1", 0.0), 1.0);
        assert_eq!(ev("max_f-1", 0.0), 98.0);
        assert_eq!(ev("s", 0.0), 42.0);
        assert_eq!(ev("1e-3*2", 0.0), 0.002);
        assert!(
            (ev("1.0025+0.002*sin(1.25*3.14*t/30)", 1.0)
                - (1.0025 + 0.002 * (1.25f64 * 3.14 / 30.0).sin()))
            .abs()
                < 1e-15
        );
    }

    #[test]
    fn nesting_past_the_limit_is_a_located_error_not_a_stack_overflow() {
        let deep =
            |open: &str, close: &str, n: usize| format!("{}1{}", open.repeat(n), close.repeat(n));
        for (what, src) in [
            ("parentheses", deep("(", ")", 7000)),
            ("calls", deep("sin(", ")", 7000)),
            ("signs", deep("-", "", 50_000)),
            ("powers", deep("2**", "", 7000)),
            ("a chain", deep("1+", "", 50_000)),
        ] {
            let e = Expr::parse(&src, &["t"]).unwrap_err();
            assert!(
                e.message.contains("nests more than"),
                "{what}: {}",
                e.message
            );
            assert!(
                e.column > 1 && e.column < src.len(),
                "{what}: column {}",
                e.column
            );
        }
        // just inside the limit parses and evaluates (on a test thread's small stack)
        for src in [
            deep("(", ")", MAX_DEPTH),
            deep("sin(", ")", MAX_DEPTH),
            deep("-", "", MAX_DEPTH),
            deep("1+", "", MAX_DEPTH),
        ] {
            let e = Expr::parse(&src, &["t"]).unwrap();
            assert!(e.eval(&[0.0]).is_finite());
        }
    }

    #[test]
    fn errors_name_the_column() {
        let e = Expr::parse("1 + sinn(t)", &["t"]).unwrap_err();
        assert_eq!(e.column, 5);
        assert!(e.message.contains("did you mean `sin`"), "{}", e.message);
        let e = Expr::parse("(1 + t", &["t"]).unwrap_err();
        assert!(e.message.contains("never closed"), "{}", e.message);
        let e = Expr::parse("1 + $", &["t"]).unwrap_err();
        assert_eq!(e.column, 5);
        let e = Expr::parse("2 3", &["t"]).unwrap_err();
        assert_eq!(e.column, 3);
        let e = Expr::parse("tt*2", &["t"]).unwrap_err();
        assert!(e.message.contains("unknown variable `tt`"), "{}", e.message);
    }
}
