//! Prompt emphasis and long prompts as AUTOMATIC1111's web UI (and so Deforum) reads them:
//! `(word:1.3)`, `(word)` (x1.1), `[word]` (/1.1), escaped `\(` `\)` `\[` `\]` `\\`, `BREAK`, and
//! prompts of any length cut into 75-token chunks, each encoded on its own (with start and end
//! tokens) and the embeddings concatenated. Behaviour follows A1111's `parse_prompt_attention`,
//! `tokenize_line` and the "Original" emphasis (docs/prompts.md); no model here, only token ids
//! and weights, so the rules are tested without ONNX Runtime.

use anyhow::Result;

use super::tokenizer::ClipTokenizer;

/// Content tokens per chunk (77 with the start and end tokens).
pub const CHUNK_LENGTH: usize = 75;
/// A1111's default `comma_padding_backtrack`: a chunk that fills up within this many tokens after a
/// comma moves the text after the comma into the next chunk.
pub const COMMA_BACKTRACK: usize = 20;

/// How prompt text is turned into token ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum PromptSyntax {
    /// A1111/Deforum: emphasis, `BREAK`, 75-token chunks (what scenes use), with A1111's "Original"
    /// emphasis: weighted vectors re-normalised to the chunk's original mean.
    #[default]
    A1111,
    /// A1111 with its "No norm" emphasis: weights applied, no re-normalisation (suggested for SDXL).
    A1111NoNorm,
    /// diffusers: the text as written, truncated to 77 tokens (what the parity references use).
    Plain,
}

/// `(text, weight)` runs of a prompt, as A1111's `parse_prompt_attention` returns them; a `BREAK`
/// is `("BREAK", -1.0)`. Unbalanced brackets close at the end; never fails.
pub fn parse_attention(text: &str) -> Vec<(String, f64)> {
    const ROUND: f64 = 1.1;
    const SQUARE: f64 = 1.0 / 1.1;
    let mut res: Vec<(String, f64)> = Vec::new();
    let mut round: Vec<usize> = Vec::new();
    let mut square: Vec<usize> = Vec::new();
    fn multiply(res: &mut [(String, f64)], from: usize, m: f64) {
        res[from..].iter_mut().for_each(|r| r.1 *= m);
    }
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let next = chars.get(i + 1).copied();
                if let Some(n @ ('(' | ')' | '[' | ']' | '\\')) = next {
                    res.push((n.to_string(), 1.0));
                    i += 2;
                } else {
                    res.push((String::new(), 1.0));
                    i += 1;
                }
            }
            '(' => {
                round.push(res.len());
                i += 1;
            }
            '[' => {
                square.push(res.len());
                i += 1;
            }
            ':' => match weight_at(&chars, i) {
                Some((w, end)) if !round.is_empty() => {
                    if let Some(p) = round.pop() {
                        multiply(&mut res, p, w);
                    }
                    i = end;
                }
                Some((_, end)) => {
                    push_text(&mut res, &chars[i..end].iter().collect::<String>());
                    i = end;
                }
                None => {
                    push_text(&mut res, ":");
                    i += 1;
                }
            },
            ')' | ']' => {
                let stack = if c == ')' { &mut round } else { &mut square };
                match stack.pop() {
                    Some(p) => multiply(&mut res, p, if c == ')' { ROUND } else { SQUARE }),
                    None => push_text(&mut res, &c.to_string()),
                }
                i += 1;
            }
            _ => {
                let start = i;
                while i < chars.len() && !matches!(chars[i], '\\' | '(' | ')' | '[' | ']' | ':') {
                    i += 1;
                }
                push_text(&mut res, &chars[start..i].iter().collect::<String>());
            }
        }
    }
    for p in round {
        multiply(&mut res, p, ROUND);
    }
    for p in square {
        multiply(&mut res, p, SQUARE);
    }
    if res.is_empty() {
        res.push((String::new(), 1.0));
    }
    // merge runs of identical weights
    let mut i = 0;
    while i + 1 < res.len() {
        if res[i].1 == res[i + 1].1 {
            let next = res.remove(i + 1);
            res[i].0.push_str(&next.0);
        } else {
            i += 1;
        }
    }
    res
}

/// `:\s*([+-]?[.\d]+)\s*\)` at `chars[i] == ':'`: the weight and the index after the `)`.
/// A number Python's `float` would reject (`1.2.3`) does not match.
fn weight_at(chars: &[char], i: usize) -> Option<(f64, usize)> {
    let mut j = i + 1;
    while j < chars.len() && chars[j].is_whitespace() {
        j += 1;
    }
    let start = j;
    if j < chars.len() && matches!(chars[j], '+' | '-') {
        j += 1;
    }
    while j < chars.len() && (chars[j] == '.' || chars[j].is_ascii_digit()) {
        j += 1;
    }
    let number: String = chars[start..j].iter().collect();
    while j < chars.len() && chars[j].is_whitespace() {
        j += 1;
    }
    if chars.get(j) != Some(&')') || !number.chars().any(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    number
        .parse::<f64>()
        .ok()
        .filter(|w| w.is_finite())
        .map(|w| (w, j + 1))
}

/// Appends plain text, splitting it at the word `BREAK` (and the whitespace around it).
fn push_text(res: &mut Vec<(String, f64)>, text: &str) {
    for (k, part) in split_break(text).into_iter().enumerate() {
        if k > 0 {
            res.push(("BREAK".into(), -1.0));
        }
        res.push((part, 1.0));
    }
}

/// `re.split(r"\s*\bBREAK\b\s*", text)`.
fn split_break(text: &str) -> Vec<String> {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        let found = rest.match_indices("BREAK").find(|(at, _)| {
            !word(rest[..*at].chars().next_back()) && !word(rest[at + 5..].chars().next())
        });
        match found {
            Some((at, _)) => {
                parts.push(rest[..at].trim_end().to_string());
                rest = rest[at + 5..].trim_start();
            }
            None => {
                parts.push(rest.to_string());
                return parts;
            }
        }
    }
}

/// One 77-token window: ids (start, 75 content or padding, end) and a weight per id.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Token ids, `CHUNK_LENGTH + 2` of them.
    pub ids: Vec<u32>,
    /// A1111 multiplier of each id (1 for start, end and padding).
    pub weights: Vec<f32>,
}

/// A prompt as A1111's `tokenize_line` cuts it: 75 content tokens per chunk, a chunk break at
/// `BREAK`, and text after a comma moved on when the chunk fills within [`COMMA_BACKTRACK`] tokens.
/// An empty prompt gives one chunk.
///
/// # Errors
/// When the tokenizer fails on the text.
pub fn chunks(tok: &ClipTokenizer, text: &str) -> Result<Vec<Chunk>> {
    let parsed = parse_attention(text);
    let comma = tok.token_id(",</w>");
    let (bos, eos, pad) = (tok.bos_id(), tok.eos_id(), tok.pad_id);
    let mut out = Vec::new();
    let mut ids: Vec<u32> = Vec::new();
    let mut weights: Vec<f32> = Vec::new();
    let mut last_comma: Option<usize> = None;
    let finish = |ids: &mut Vec<u32>, weights: &mut Vec<f32>, out: &mut Vec<Chunk>| {
        let mut c_ids = Vec::with_capacity(CHUNK_LENGTH + 2);
        c_ids.push(bos);
        c_ids.append(ids);
        // A1111 pads with the end token, then (SD 2.x) replaces what follows the first end token by the pad token
        c_ids.push(eos);
        c_ids.resize(CHUNK_LENGTH + 2, pad);
        let mut c_w = Vec::with_capacity(CHUNK_LENGTH + 2);
        c_w.push(1.0);
        c_w.append(weights);
        c_w.resize(CHUNK_LENGTH + 2, 1.0);
        out.push(Chunk {
            ids: c_ids,
            weights: c_w,
        });
    };
    for (segment, weight) in &parsed {
        if segment == "BREAK" && *weight == -1.0 {
            finish(&mut ids, &mut weights, &mut out);
            last_comma = None;
            continue;
        }
        for &token in &tok.content_ids(segment)? {
            if Some(token) == comma {
                last_comma = Some(ids.len());
            } else if let Some(at) = last_comma
                .filter(|&c| ids.len() == CHUNK_LENGTH && ids.len() - c <= COMMA_BACKTRACK)
            {
                let moved_ids = ids.split_off(at + 1);
                let moved_w = weights.split_off(at + 1);
                finish(&mut ids, &mut weights, &mut out);
                ids = moved_ids;
                weights = moved_w;
                last_comma = None;
            }
            if ids.len() == CHUNK_LENGTH {
                finish(&mut ids, &mut weights, &mut out);
                last_comma = None;
            }
            ids.push(token);
            weights.push(*weight as f32);
        }
    }
    if !ids.is_empty() || out.is_empty() {
        finish(&mut ids, &mut weights, &mut out);
    }
    Ok(out)
}

/// A1111's emphasis on one chunk's hidden states `z` (`[tokens, dim]` flat): multiply each token's
/// vector by its weight, then ("Original", `normalize`) rescale so the mean of all values is what it
/// was. Unit weights leave `z` untouched.
pub fn apply_emphasis(z: &mut [f32], weights: &[f32], normalize: bool) {
    if weights.iter().all(|&w| w == 1.0) || weights.is_empty() {
        return;
    }
    let dim = z.len() / weights.len();
    let mean = |z: &[f32]| (z.iter().map(|&x| x as f64).sum::<f64>() / z.len() as f64) as f32;
    let original = mean(z);
    for (row, &w) in z.chunks_mut(dim).zip(weights) {
        row.iter_mut().for_each(|x| *x *= w);
    }
    if !normalize {
        return;
    }
    let ratio = original / mean(z);
    // A1111 would spread NaN or inf over the whole prompt when the weighted mean is 0
    if ratio.is_finite() {
        z.iter_mut().for_each(|x| *x *= ratio);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Vec<(String, f64)> {
        parse_attention(text)
    }

    fn v(items: &[(&str, f64)]) -> Vec<(String, f64)> {
        items.iter().map(|(t, w)| (t.to_string(), *w)).collect()
    }

    #[test]
    fn a1111_doctests() {
        // the examples in A1111's parse_prompt_attention docstring, weights bit for bit
        assert_eq!(p("normal text"), v(&[("normal text", 1.0)]));
        assert_eq!(
            p("an (important) word"),
            v(&[("an ", 1.0), ("important", 1.1), (" word", 1.0)])
        );
        assert_eq!(p("(unbalanced"), v(&[("unbalanced", 1.1)]));
        assert_eq!(p("\\(literal\\]"), v(&[("(literal]", 1.0)]));
        assert_eq!(p("(unnecessary)(parens)"), v(&[("unnecessaryparens", 1.1)]));
        assert_eq!(
            p("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."),
            v(&[
                ("a ", 1.0),
                ("house", 1.5730000000000004),
                (" ", 1.1),
                ("on", 1.0),
                (" a ", 1.1),
                ("hill", 0.55),
                (", sun, ", 1.1),
                ("sky", 1.4641000000000006),
                (".", 1.1),
            ])
        );
    }

    #[test]
    fn weights_breaks_and_oddities() {
        assert_eq!(p("[a]"), v(&[("a", 1.0 / 1.1)]));
        assert_eq!(p("(a: 0.5 )"), v(&[("a", 0.5)]));
        assert_eq!(p("a:1.2)"), v(&[("a:1.2)", 1.0)]));
        assert_eq!(
            p("a BREAK b"),
            v(&[("a", 1.0), ("BREAK", -1.0), ("b", 1.0)])
        );
        assert_eq!(p("BREAKFAST"), v(&[("BREAKFAST", 1.0)]));
        assert_eq!(p(""), v(&[("", 1.0)]));
        assert_eq!(p("\\\\ x"), v(&[("\\ x", 1.0)]));
        assert_eq!(p("(a:1.2.3)"), v(&[("a:1.2.3", 1.1)]));
        assert_eq!(p("a) b]"), v(&[("a) b]", 1.0)]));
    }

    #[test]
    fn emphasis_keeps_the_mean() {
        let mut z = vec![1.0f32, 2.0, 3.0, 4.0];
        apply_emphasis(&mut z, &[1.0, 2.0], true);
        let mean: f32 = z.iter().sum::<f32>() / 4.0;
        assert!((mean - 2.5).abs() < 1e-6, "{z:?}");
        assert!((z[2] / z[0] - 6.0).abs() < 1e-5);
    }
}
