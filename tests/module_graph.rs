//! No two sibling source files of `src/` import each other.
//!
//! Each file is a module (a/b.rs and a/b/mod.rs under src/ are both `a::b`). A file imports a
//! module when its code (comments aside) names a path under it: `crate::a::b::X`,
//! `super::b::X`, or `use b::X` of its own child. Two modules that name each other are
//! a cycle a reader has to hold in mind at once, so the check fails on them — except a
//! parent and its own child: a `mod.rs` that re-exports its children's types while they
//! use its shared ones is one module split into files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

fn module_of(path: &Path, src: &Path) -> Module {
    let rel = path.strip_prefix(src).expect("under src/");
    let mut parts: Module = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The longest known module that `path` (already made absolute) starts with.
fn resolve(mut path: Module, known: &BTreeSet<Module>) -> Option<Module> {
    while !path.is_empty() {
        if known.contains(&path) {
            return Some(path);
        }
        path.pop();
    }
    None
}

/// Paths such as `crate::a::b` or `super::super::c` in one line of code.
fn paths_in(line: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = line[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            if at > 0
                && (bytes[at - 1].is_ascii_alphanumeric() || matches!(bytes[at - 1], b'_' | b':'))
            {
                continue;
            }
            let rest: String = line[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(
                rest.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            );
        }
    }
    out
}

fn imports(module: &Module, text: &str, known: &BTreeSet<Module>) -> BTreeSet<Module> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        for path in paths_in(code) {
            let mut abs: Module = Vec::new();
            let mut parts = path.into_iter().peekable();
            if parts.peek().map(String::as_str) == Some("crate") {
                parts.next();
            } else {
                abs = module.clone();
                while parts.peek().map(String::as_str) == Some("super") {
                    parts.next();
                    abs.pop();
                }
            }
            abs.extend(parts);
            if let Some(m) = resolve(abs, known) {
                if &m != module {
                    found.insert(m);
                }
            }
        }
        // `use child::X` inside a parent.
        if let Some(rest) = code
            .strip_prefix("use ")
            .or_else(|| code.strip_prefix("pub use "))
            .or_else(|| code.strip_prefix("pub(crate) use "))
        {
            let head: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let mut child = module.clone();
            child.push(head);
            if known.contains(&child) {
                found.insert(child);
            }
        }
    }
    found
}

#[test]
fn no_two_sibling_files_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let known: BTreeSet<Module> = files.iter().map(|f| module_of(f, &src)).collect();
    let mut graph: BTreeMap<Module, (String, BTreeSet<Module>)> = BTreeMap::new();
    for f in &files {
        let module = module_of(f, &src);
        let text = std::fs::read_to_string(f).expect("read a source file");
        let deps = imports(&module, &text, &known);
        let name = f
            .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .display()
            .to_string();
        graph.insert(module, (name, deps));
    }
    let mut cycles = Vec::new();
    for (a, (file_a, deps)) in &graph {
        for b in deps {
            let Some((file_b, back)) = graph.get(b) else {
                continue;
            };
            let parent_and_child = b.starts_with(a) || a.starts_with(b);
            if a < b && back.contains(a) && !parent_and_child {
                cycles.push(format!("{file_a} <-> {file_b}"));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "these files import each other; move what both need into a third module:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_check_sees_paths_and_ignores_comments() {
    let known: BTreeSet<Module> = [vec!["a".to_string()], vec!["a".into(), "b".into()]]
        .into_iter()
        .chain([vec!["c".to_string()]])
        .collect();
    let m: Module = vec!["a".into(), "b".into()];
    let deps = imports(
        &m,
        "use super::super::c::X;\n// crate::a::Y in a comment\n",
        &known,
    );
    assert_eq!(deps, BTreeSet::from([vec!["c".to_string()]]));
    let deps = imports(&vec!["c".into()], "let x = crate::a::b::f();", &known);
    assert_eq!(deps, BTreeSet::from([m]));
}
