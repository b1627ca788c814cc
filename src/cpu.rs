//! Run-time CPU feature checks for the SIMD kernels: one function, [`has`], that takes the same
//! comma-separated list a kernel's `#[target_feature(enable = "...")]` names, so a dispatch site
//! checks exactly what its kernel is compiled with. The test below reads every source file and
//! holds each dispatch site to that rule.

/// Whether this processor has every feature of `features`, a comma-separated list as written in
/// `#[target_feature(enable = "...")]` (e.g. `"avx2,fma"`). A name this function does not know
/// counts as missing. Always `false` off x86-64.
pub fn has(features: &str) -> bool {
    features.split(',').all(|f| one(f.trim()))
}

#[cfg(target_arch = "x86_64")]
fn one(feature: &str) -> bool {
    use std::arch::is_x86_feature_detected as detected;
    match feature {
        "avx" => detected!("avx"),
        "avx2" => detected!("avx2"),
        "fma" => detected!("fma"),
        "avx512f" => detected!("avx512f"),
        "avx512bw" => detected!("avx512bw"),
        "avx512vbmi" => detected!("avx512vbmi"),
        _ => false,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn one(_: &str) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// The text between the first pair of double quotes after `marker` in `line`.
    fn quoted<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
        let rest = &line[line.find(marker)? + marker.len()..];
        let start = rest.find('"')? + 1;
        let len = rest[start..].find('"')?;
        Some(&rest[start..start + len])
    }

    fn set(list: &str) -> BTreeSet<String> {
        list.split(',').map(|f| f.trim().to_string()).collect()
    }

    /// Every `#[target_feature]` function, keyed by (file, innermost inline module, name).
    fn kernels(file: &str, lines: &[&str]) -> BTreeMap<(String, String, String), BTreeSet<String>> {
        let mut out = BTreeMap::new();
        let mut mods: Vec<(String, usize)> = Vec::new();
        let mut depth = 0usize;
        let mut pending: Option<BTreeSet<String>> = None;
        for line in lines {
            let t = line.trim_start();
            if let Some(rest) = t
                .strip_prefix("mod ")
                .or_else(|| t.strip_prefix("pub mod "))
                && let Some(name) = rest.strip_suffix(" {")
            {
                mods.push((name.to_string(), depth));
            }
            if let Some(f) = quoted(t, "#[target_feature(enable =") {
                pending = Some(set(f));
            }
            if let Some(features) = pending.as_ref()
                && let Some(pos) = t.find("fn ")
                && !t.starts_with("//")
            {
                let name: String = t[pos + 3..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let module = mods.last().map(|m| m.0.clone()).unwrap_or_default();
                out.insert((file.to_string(), module, name), features.clone());
                pending = None;
            }
            depth += line.matches('{').count();
            depth = depth.saturating_sub(line.matches('}').count());
            while mods.last().is_some_and(|m| depth <= m.1) {
                mods.pop();
            }
        }
        out
    }

    #[test]
    fn every_dispatch_site_checks_exactly_the_features_its_kernel_enables() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&root, &mut files);
        files.sort();
        let mut report = Vec::new();
        let mut sites = 0;
        for path in &files {
            let text = std::fs::read_to_string(path).unwrap();
            let file = path.strip_prefix(&root).unwrap().display().to_string();
            let lines: Vec<&str> = text.lines().collect();
            if file != "cpu.rs" {
                for (n, l) in lines.iter().enumerate() {
                    assert!(
                        !l.contains("is_x86_feature_detected"),
                        "{file}:{}: check CPU features with crate::cpu::has, whose list is the kernel's",
                        n + 1
                    );
                }
            }
            let kernels = kernels(&file, &lines);
            // the enclosing fn of each line: its line number and its enabled features, if any
            let mut enclosing: Option<(usize, Option<BTreeSet<String>>)> = None;
            let mut attr: Option<BTreeSet<String>> = None;
            for (n, line) in lines.iter().enumerate() {
                let t = line.trim_start();
                if let Some(f) = quoted(t, "#[target_feature(enable =") {
                    attr = Some(set(f));
                }
                if !t.starts_with("//") && t.contains("fn ") && !t.contains("|") {
                    enclosing = Some((n, attr.take()));
                }
                let in_unsafe = line.contains("unsafe {")
                    || (n > 0 && lines[n - 1].trim_end().ends_with("unsafe {"));
                if !in_unsafe {
                    continue;
                }
                for ((kfile, module, name), features) in &kernels {
                    if *kfile != file {
                        continue;
                    }
                    let call = if module.is_empty() {
                        format!("{name}(")
                    } else {
                        format!("{module}::{name}(")
                    };
                    let called = line.find(&call).is_some_and(|p| {
                        let before = line[..p].chars().next_back();
                        !module.is_empty()
                            || !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
                    });
                    if !called {
                        continue;
                    }
                    let Some((start, caller)) = &enclosing else {
                        continue;
                    };
                    // a call from a kernel with at least the same features is checked by rustc
                    if caller.as_ref().is_some_and(|c| c.is_superset(features)) {
                        continue;
                    }
                    sites += 1;
                    let checked: Vec<BTreeSet<String>> = lines[*start..n]
                        .iter()
                        .filter_map(|l| quoted(l, "cpu::has("))
                        .map(set)
                        .collect();
                    if !checked.contains(features) {
                        report.push(format!(
                            "{file}:{}: calls {call}…) compiled with {features:?}, but its function checks {checked:?}",
                            n + 1
                        ));
                    }
                }
            }
        }
        assert!(report.is_empty(), "{}", report.join("\n"));
        // the warp (AVX2, AVX-512), 3D warp, depth and random-number dispatches at least
        assert!(
            sites >= 5,
            "found only {sites} dispatch sites; has the scan gone stale?"
        );
    }

    #[test]
    fn lists_are_checked_name_by_name() {
        assert!(!super::has("avx2,not-a-feature"));
        assert_eq!(
            super::has("avx2, fma"),
            super::has("avx2") && super::has("fma")
        );
    }
}
