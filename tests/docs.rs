//! The README's layout section names the modules as they are.

use std::path::Path;

#[test]
fn readme_layout_names_every_module_and_only_existing_paths() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let layout = &readme[readme.find("## Layout").expect("a Layout section")..];
    let layout = &layout[..layout[3..].find("\n## ").map_or(layout.len(), |i| i + 3)];
    let mut named = Vec::new();
    for part in layout.split('`').skip(1).step_by(2) {
        if let Some(p) = part.strip_prefix("src/") {
            assert!(
                root.join("src").join(p).exists(),
                "README names src/{p}, which does not exist"
            );
            named.push(p.trim_end_matches('/').trim_end_matches(".rs").to_string());
        }
    }
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    for line in lib.lines() {
        let line = line.trim();
        let Some(name) = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("mod "))
            .and_then(|r| r.strip_suffix(';'))
        else {
            continue;
        };
        assert!(
            named.iter().any(|n| n == name),
            "README's layout does not name src/{name} (module `{name}` in src/lib.rs)"
        );
    }
}
