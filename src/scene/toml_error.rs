//! TOML errors as the user reads them: line, column, the source line and a did-you-mean.

use super::tables::{TABLES, table_keys};

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
}
