//! TOML errors as the user reads them: line, column, the source line and a did-you-mean; and
//! the message for an unknown value of an enumerated key (the accepted values and the nearest).

use super::tables::{TABLES, table_keys};

/// The accepted value nearest to `value` (compared case-insensitively), as
/// `, did you mean `X`?`; empty when none is close.
pub fn nearest_value<'a>(value: &str, accepted: impl IntoIterator<Item = &'a str>) -> String {
    let v = value.trim().to_lowercase();
    accepted
        .into_iter()
        .map(|a| {
            let score = if a.to_lowercase() == v {
                2.0
            } else {
                strsim::jaro_winkler(&v, &a.to_lowercase())
            };
            (score, a)
        })
        .filter(|(score, _)| *score > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, a)| format!(", did you mean `{a}`?"))
        .unwrap_or_default()
}

/// The message for an unknown value of an enumerated key: `KEY = "VALUE": unknown value, did you
/// mean `X`?; accepted: a, b, c`.
pub fn unknown_value(key: &str, value: &str, accepted: &[&str]) -> String {
    format!(
        "{key} = \"{value}\": unknown value{}; accepted: {}",
        nearest_value(value, accepted.iter().copied()),
        accepted.join(", ")
    )
}

/// serde's `unknown variant `X`, expected one of `a`, `b`` (or `expected `a` or `b``): the value
/// and the accepted values.
fn unknown_variant(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown variant `")?;
    let (value, rest) = rest.split_once('`')?;
    let (_, expected) = rest.split_once("expected")?;
    let accepted = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((value.to_string(), accepted))
}

/// Turns a toml/serde error into `line L, column C: message`, with a did-you-mean for unknown keys.
pub(super) fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let mut msg = e.message().trim().to_string();
    let mut table = String::new();
    if let Some(span) = e.span() {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rsplit('\n')
            .next()
            .map(|l| l.chars().count())
            .unwrap_or(0)
            + 1;
        // the table the error is in: the last `[name]` header above it
        table = before
            .lines()
            .rev()
            .find_map(|l| {
                let l = l.trim();
                (l.starts_with('[') && !l.starts_with("[["))
                    .then(|| l.trim_matches(['[', ']']).trim().to_string())
            })
            .unwrap_or_default();
        let src_line = text.lines().nth(line - 1).unwrap_or("").trim();
        msg = format!("line {line}, column {col}: {msg}\n  | {src_line}");
    }
    if let Some((value, accepted)) = unknown_variant(e.message().trim()) {
        let head = msg.split(": ").next().unwrap_or("").to_string();
        let src = msg
            .split_once('\n')
            .map(|(_, l)| l.to_string())
            .unwrap_or_default();
        // the key is on the source line, before `=`
        let key = src
            .trim_start_matches(['|', ' '])
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_string())
            .unwrap_or_default();
        let label = match (table.is_empty(), key.is_empty()) {
            (_, true) => "value".to_string(),
            (true, false) => key,
            (false, false) => format!("[{table}] {key}"),
        };
        let accepted: Vec<&str> = accepted.iter().map(String::as_str).collect();
        let what = unknown_value(&label, &value, &accepted);
        msg = if head.starts_with("line ") {
            format!("{head}: {what}\n{src}")
        } else {
            what
        };
    }
    if let Some(rest) = e.message().strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("");
        let known = table_keys(&table);
        let mut hint = crate::schedule::expr::did_you_mean(field, known.iter().copied());
        if hint.is_empty() {
            // perhaps the key belongs in another table
            for t in TABLES {
                if table_keys(t).contains(&field) && *t != table {
                    hint = format!(", did you mean to put it in [{t}]?");
                    break;
                }
            }
        }
        let where_ = if table.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in [{table}]")
        };
        let head = msg
            .split(": unknown field")
            .next()
            .unwrap_or("")
            .to_string();
        let src = msg
            .split_once('\n')
            .map(|(_, l)| l.to_string())
            .unwrap_or_default();
        msg = format!(
            "{head}: unknown key `{field}` {where_}{hint}\n{src}\n  keys allowed there: {}",
            known.join(", ")
        );
    }
    msg
}

#[cfg(test)]
mod tests {
    use crate::scene::tests::parse;

    #[test]
    fn unknown_key_did_you_mean() {
        let e = parse("[motion]\nzom = 1.0\n").unwrap_err().to_string();
        assert!(
            e.contains("did you mean `zoom`") && e.contains("line 2"),
            "{e}"
        );
        let e = parse("[image]\nzoom = 1.0\n").unwrap_err().to_string();
        assert!(e.contains("[motion]"), "{e}");
    }

    #[test]
    fn unknown_values_list_the_accepted_ones_and_the_nearest() {
        let cases: &[(&str, &[&str])] = &[
            (
                "[animation]\nmode = \"3d\"\n",
                &[
                    "line 2",
                    "[animation] mode = \"3d\"",
                    "did you mean `3D`",
                    "accepted: 2D, 3D, None, Video Input, Interpolation",
                ],
            ),
            (
                "[animation]\nmode = \"sideways\"\n",
                &["[animation] mode", "accepted: 2D"],
            ),
            (
                "[coherence]\ncolor_coherence = \"hsv\"\n",
                &["did you mean `HSV`"],
            ),
            (
                "[generation]\nseed_behavior = \"ladr\"\n",
                &["did you mean `ladder`"],
            ),
            (
                "[depth]\nnormalization = \"imagenett\"\n",
                &["[depth] normalization", "did you mean `imagenet`", "half"],
            ),
            (
                "[output]\ncodec = \"libx246\"\n",
                &["[output] codec", "did you mean `libx264`", "libx265"],
            ),
            (
                "[noise]\nnoise_type = \"Perlin\"\n",
                &["[noise] noise_type", "did you mean `perlin`"],
            ),
            (
                "[interpolation]\nzoom = \"easein\"\n",
                &["[interpolation] zoom", "did you mean `ease-in`"],
            ),
        ];
        for (text, needles) in cases {
            let e = parse(text).unwrap_err().to_string();
            for n in *needles {
                assert!(e.contains(n), "{text:?}: error lacks {n:?}: {e}");
            }
        }
        assert_eq!(
            super::nearest_value("DDIM", ["Euler", "ddim"]),
            ", did you mean `ddim`?"
        );
        assert_eq!(super::nearest_value("zzz", ["Euler", "DDIM"]), "");
    }
}
