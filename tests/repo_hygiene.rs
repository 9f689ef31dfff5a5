//! The repository stands alone: a fresh clone has every document and path it cites.
//!
//! Walks every file git knows (`git ls-files --cached --others --exclude-standard`, so a
//! new file is checked before it is committed) and fails, naming `file:line` and the fix,
//! on:
//!
//! 1. a reference outside the repository: the sibling folder the contracts were first
//!    written in ([`outside_folder`]), or an absolute path of a build machine (its work,
//!    root or home directories, [`machine_prefixes`]). System paths the code
//!    really uses (`/usr/bin/chromium`, `/proc/…`, `/etc/…`, `/tmp/…`,
//!    `/var/lib/kubelet/…`) are fine;
//! 2. a relative Markdown link whose target is not in the tree, or whose `#anchor` is
//!    not a heading of the target document;
//! 3. a cited document (`docs/protocol.md`, `bench/README.md`) that does not exist, or a
//!    bare document name that is neither beside the citing file nor at the root
//!    (`signaling.md`; cite `docs/protocol.md`), or a repository path in backticks
//!    (`src/gc/client.rs`, `infra/tests/`) that does not exist and is not a generated
//!    location named by `.gitignore`;
//! 4. wording about how the code came to be rather than what it does: a task or item
//!    number, or a name for who wrote it ([`check_wording`]).
//!
//! The patterns are assembled from parts at run time, so that this file does not
//! itself contain what it looks for.
//!
//! Lock files, the fuzz corpus and binary files are not read. Run it alone with
//! `cargo nextest run -p mc-service --test repo_hygiene`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// Files never read: generated lock files, fuzz inputs, and this test (it spells out
/// the patterns it looks for).
const SKIP: &[&str] = &[
    "Cargo.lock",
    "fuzz/Cargo.lock",
    "tests/browser/package-lock.json",
    "fuzz/corpus/",
    "tests/repo_hygiene.rs",
];

/// Documents that used to live outside the repository, and the repository's own copy.
const MOVED: &[(&str, &str)] = &[
    ("signaling.md", "docs/protocol.md"),
    ("gc-api.md", "docs/gc-api.md"),
    ("design.md", "docs/architecture.md"),
    ("runbook/mc-deployment.md", "docs/runbook.md"),
    ("mc-deployment.md", "docs/runbook.md"),
];

/// The sibling folder outside the clone where the contracts were first written.
fn outside_folder() -> String {
    format!("../{}", "shared")
}

/// Absolute paths that name a build machine, not the system the service runs on.
fn machine_prefixes() -> [String; 4] {
    ["work", "root", "home", "Users"].map(|dir| format!("/{dir}/"))
}

/// One problem: where, what, and what to do about it.
struct Finding {
    file: String,
    line: usize,
    what: String,
    fix: &'static str,
    /// For a backticked path that does not exist: the path, which is still fine when
    /// `.gitignore` names it (a generated location such as `fuzz/artifacts/`).
    generated_ok: Option<String>,
}

/// The tracked tree: files, and every directory that holds one.
struct Tree {
    root: PathBuf,
    files: BTreeSet<String>,
    dirs: BTreeSet<String>,
    top_level: BTreeSet<String>,
}

impl Tree {
    fn load(root: &Path) -> Self {
        let out = Command::new("git")
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .current_dir(root)
            .output()
            .unwrap_or_else(|e| panic!("cannot run git ls-files in {}: {e}", root.display()));
        assert!(
            out.status.success(),
            "git ls-files failed in {} (this test needs a git checkout): {}",
            root.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut files = BTreeSet::new();
        let mut dirs = BTreeSet::new();
        let mut top_level = BTreeSet::new();
        for raw in out.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
            let path = String::from_utf8_lossy(raw).to_string();
            // Deleted in the work tree but still in the index: not part of the tree.
            if !root.join(&path).exists() {
                continue;
            }
            let mut parts: Vec<&str> = path.split('/').collect();
            if let Some(first) = parts.first() {
                top_level.insert((*first).to_string());
            }
            parts.pop();
            for i in 1..=parts.len() {
                dirs.insert(parts[..i].join("/"));
            }
            files.insert(path);
        }
        Self {
            root: root.to_path_buf(),
            files,
            dirs,
            top_level,
        }
    }

    fn has(&self, rel: &str) -> bool {
        let rel = rel.trim_end_matches('/');
        rel.is_empty() || self.files.contains(rel) || self.dirs.contains(rel)
    }

    fn read(&self, rel: &str) -> Option<String> {
        let bytes = std::fs::read(self.root.join(rel)).ok()?;
        if bytes.contains(&0) {
            return None;
        }
        String::from_utf8(bytes).ok()
    }
}

/// `base/rel` with `.` and `..` resolved, relative to the repository root; `None` when
/// it climbs out of the repository.
fn join_normalized(base: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(base).join(rel).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().to_string()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

fn parent_dir(file: &str) -> &str {
    file.rsplit_once('/').map_or("", |(d, _)| d)
}

/// GitHub's anchor for a heading: lower-case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Lines of a Markdown document outside fenced code blocks, with their numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// Every anchor a Markdown document defines (duplicates numbered as GitHub does).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading);
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// Targets of inline links `[text](target)` and reference definitions `[x]: target`.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let Some(end) = after.find(')') else { break };
        let target = after[..end].split_whitespace().next().unwrap_or("");
        out.push(target.trim_matches(['<', '>']).to_string());
        rest = &after[end..];
    }
    let t = line.trim_start();
    if t.starts_with('[') {
        if let Some((_, def)) = t.split_once("]: ") {
            if let Some(target) = def.split_whitespace().next() {
                out.push(target.to_string());
            }
        }
    }
    out
}

fn is_external(target: &str) -> bool {
    target.is_empty()
        || target.contains("://")
        || target.starts_with("mailto:")
        || target.starts_with("data:")
}

/// Check 2: relative Markdown links and their anchors.
fn check_links(tree: &Tree, file: &str, text: &str, found: &mut Vec<Finding>) {
    let own_anchors = anchors(text);
    let mut cache: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (n, line) in prose_lines(text) {
        for target in link_targets(line) {
            if is_external(&target) {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let path = path.split('?').next().unwrap_or("");
            let resolved = if path.is_empty() {
                Some(file.to_string())
            } else {
                join_normalized(parent_dir(file), path)
            };
            let Some(resolved) = resolved.filter(|r| tree.has(r)) else {
                found.push(Finding {
                    file: file.into(),
                    line: n,
                    what: format!("link to `{target}`, which is not in the repository"),
                    fix: "link to a file of this repository (path relative to this document), \
                          or to an https:// URL",
                    generated_ok: None,
                });
                continue;
            };
            let (Some(anchor), true) = (anchor, resolved.ends_with(".md")) else {
                continue;
            };
            let defined = if resolved == file {
                &own_anchors
            } else {
                cache
                    .entry(resolved.clone())
                    .or_insert_with(|| anchors(&tree.read(&resolved).unwrap_or_default()))
            };
            if !defined.contains(anchor) {
                found.push(Finding {
                    file: file.into(),
                    line: n,
                    what: format!("link to `{target}`: `{resolved}` has no heading `#{anchor}`"),
                    fix: "use the anchor of an existing heading (lower-case, punctuation \
                          dropped, spaces as hyphens)",
                    generated_ok: None,
                });
            }
        }
    }
}

/// Characters of a path token.
fn path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

/// Check 1: references outside the repository.
fn check_outside(file: &str, n: usize, line: &str, found: &mut Vec<Finding>) {
    let folder = outside_folder();
    if line.contains(&folder) {
        found.push(Finding {
            file: file.into(),
            line: n,
            what: format!("refers to `{folder}`, outside the repository"),
            fix: "cite the repository's own copy: docs/protocol.md, docs/gc-api.md, \
                  docs/architecture.md or docs/runbook.md",
            generated_ok: None,
        });
    }
    for prefix in &machine_prefixes() {
        for (i, _) in line.match_indices(prefix) {
            let before = line[..i].chars().next_back();
            if before.is_some_and(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '~')
            }) {
                continue; // part of a URL or a longer path
            }
            let token: String = line[i..].chars().take_while(|c| path_char(*c)).collect();
            found.push(Finding {
                file: file.into(),
                line: n,
                what: format!("absolute path of a build machine `{token}`"),
                fix: "use a path relative to the repository root (or to the current \
                      directory), or a temporary directory",
                generated_ok: None,
            });
        }
    }
}

/// Check 3: cited documents (`*.md`) and backticked repository paths.
fn check_cited_paths(tree: &Tree, file: &str, n: usize, line: &str, found: &mut Vec<Finding>) {
    let exists =
        |p: &str| tree.has(p) || join_normalized(parent_dir(file), p).is_some_and(|r| tree.has(&r));
    // Every `….md` token that is not a URL or an absolute path.
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    for (k, &(i, _)) in chars.iter().enumerate() {
        if !line[i..].starts_with(".md") {
            continue;
        }
        let end = i + 3;
        if line[end..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        {
            continue;
        }
        let start = chars[..k]
            .iter()
            .rev()
            .take_while(|(_, c)| path_char(*c))
            .last()
            .map_or(i, |(j, _)| *j);
        let token = &line[start..end];
        let before = line[..start].chars().next_back();
        if token.starts_with('/') || token == ".md" {
            continue; // absolute, a URL, or no name at all
        }
        if before.is_some_and(|c| matches!(c, ':' | '$' | '}' | ')' | '>' | '*')) {
            continue; // a URL scheme, or a template such as `$OUT/summary.md`
        }
        // A bare name must be beside the citing file or at the root (`README.md`,
        // `tuning.md`); anything else is cited by its path (`docs/gc-api.md`).
        if !exists(token) {
            let suffix = format!("/{token}");
            let moved = MOVED
                .iter()
                .find(|(old, _)| token == *old || token.ends_with(&format!("/{old}")));
            let what = match (moved, tree.files.iter().find(|f| f.ends_with(&suffix))) {
                (Some((_, new)), _) => {
                    format!("cites `{token}`: the document is `{new}`")
                }
                (None, Some(full)) if !token.contains('/') => {
                    format!("cites `{token}` without its path: write `{full}`")
                }
                _ => format!("cites `{token}`, which is not in the repository"),
            };
            found.push(Finding {
                file: file.into(),
                line: n,
                what,
                fix: "cite the document by its path in this repository (docs/protocol.md, \
                      docs/gc-api.md, docs/architecture.md, docs/runbook.md, …) or remove the \
                      reference",
                generated_ok: None,
            });
        }
    }
    // Backticked paths that start at a top-level entry of the repository.
    for (k, span) in line.split('`').enumerate() {
        if k % 2 == 0 || span.contains(char::is_whitespace) {
            continue;
        }
        if span.contains(['<', '>', '*', '{', '}', '$', '…', '|']) || span.contains("...") {
            continue; // a pattern or a template, not a path
        }
        let path = span.split(['#', ':']).next().unwrap_or("");
        let Some((first, _)) = path.split_once('/') else {
            continue;
        };
        if !tree.top_level.contains(first) || path.ends_with(".md") {
            continue; // not a repository path, or already checked above
        }
        if !exists(path) {
            found.push(Finding {
                file: file.into(),
                line: n,
                what: format!("names `{span}`, which is not in the repository"),
                fix: "correct the path, or drop the backticks if it is not a repository path",
                generated_ok: Some(path.to_string()),
            });
        }
    }
}

/// Check 4: wording about who wrote what or which task asked for it.
fn check_wording(file: &str, n: usize, line: &str, found: &mut Vec<Finding>) {
    let lower = line.to_lowercase();
    let numbered = |word: &str| {
        lower.match_indices(word).any(|(i, _)| {
            let before = lower[..i].chars().next_back();
            let after = lower[i + word.len()..].trim_start_matches([' ', '#']);
            !before.is_some_and(|c| c.is_alphanumeric())
                && after.starts_with(|c: char| c.is_ascii_digit())
        })
    };
    let issue = numbered("issue") && !lower.contains("github.com");
    let item = numbered("item");
    let role = format!("the {}", "lead");
    let who = lower.match_indices(&role).any(|(i, _)| {
        !lower[i + role.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric())
    }) || lower.contains(&format!("{}'s", "lead"));
    for (hit, what) in [
        (issue, "names an issue number"),
        (item, "names an item number"),
        (who, "says who wrote the code"),
    ] {
        if hit {
            found.push(Finding {
                file: file.into(),
                line: n,
                what: what.into(),
                fix: "say what the code does or which section of docs/ it implements, \
                      not which task asked for it or who wrote it",
                generated_ok: None,
            });
        }
    }
}

/// Keep only the missing backticked paths that `.gitignore` does not name: an ignored
/// path is where something is generated (`fuzz/artifacts/`), not a broken reference.
fn drop_ignored_paths(tree: &Tree, found: &mut Vec<Finding>) {
    let candidates: BTreeSet<&str> = found
        .iter()
        .filter_map(|f| f.generated_ok.as_deref())
        .collect();
    if candidates.is_empty() {
        return;
    }
    let input: String = candidates.iter().map(|p| format!("{p}\n")).collect();
    let mut child = Command::new("git")
        .args(["check-ignore", "--no-index", "--stdin"])
        .current_dir(&tree.root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("git check-ignore");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(input.as_bytes())
            .expect("write to git check-ignore");
    }
    let out = child.wait_with_output().expect("git check-ignore");
    let ignored: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end_matches('/').to_string())
        .collect();
    found.retain(|f| {
        f.generated_ok
            .as_deref()
            .is_none_or(|p| !ignored.contains(p.trim_end_matches('/')))
    });
}

#[test]
fn the_repository_is_self_contained() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tree = Tree::load(root);
    assert!(
        tree.files.contains("README.md") && tree.files.contains("src/lib.rs"),
        "git ls-files in {} did not list the repository",
        root.display()
    );
    let mut found = Vec::new();
    for file in &tree.files {
        if SKIP
            .iter()
            .any(|s| file == s || (s.ends_with('/') && file.starts_with(s)))
        {
            continue;
        }
        let Some(text) = tree.read(file) else {
            continue; // binary
        };
        if file.ends_with(".md") {
            check_links(&tree, file, &text, &mut found);
        }
        for (i, line) in text.lines().enumerate() {
            check_outside(file, i + 1, line, &mut found);
            check_cited_paths(&tree, file, i + 1, line, &mut found);
            check_wording(file, i + 1, line, &mut found);
        }
    }
    drop_ignored_paths(&tree, &mut found);
    if found.is_empty() {
        return;
    }
    let mut report = format!(
        "{} reference(s) that a fresh clone cannot follow, or that describe the history \
         instead of the code:\n",
        found.len()
    );
    let mut fixes: Vec<&str> = Vec::new();
    for f in &found {
        if !fixes.contains(&f.fix) {
            fixes.push(f.fix);
        }
    }
    for fix in fixes {
        report.push_str(&format!("\nTo fix: {fix}\n"));
        for f in found.iter().filter(|f| f.fix == fix) {
            report.push_str(&format!("  {}:{}: {}\n", f.file, f.line, f.what));
        }
    }
    panic!("{report}");
}

#[test]
fn the_checks_catch_what_they_should() {
    let tree = Tree {
        root: PathBuf::new(),
        files: ["README.md", "docs/protocol.md", "src/gc/client.rs"]
            .map(String::from)
            .into(),
        dirs: ["docs", "src", "src/gc"].map(String::from).into(),
        top_level: ["README.md", "docs", "src"].map(String::from).into(),
    };
    let count = |f: &dyn Fn(&mut Vec<Finding>)| {
        let mut v = Vec::new();
        f(&mut v);
        v.len()
    };
    let outside = |l: &str| count(&|v| check_outside("x.rs", 1, l, v));
    let [work, _, home, _] = machine_prefixes();
    assert_eq!(
        outside(&format!("see {}/signaling.md", outside_folder())),
        1
    );
    assert_eq!(outside(&format!("read {work}x/runbook")), 1);
    assert_eq!(outside(&format!("\"{home}me/x\"")), 1);
    assert_eq!(
        outside(&format!(
            "https://example.com{home}x and /usr/bin/chromium and /tmp/x"
        )),
        0
    );
    assert_eq!(
        outside("/proc/self/status /etc/hosts /var/lib/kubelet/seccomp"),
        0
    );

    let cited = |l: &str| count(&|v| check_cited_paths(&tree, "src/gc/mod.rs", 1, l, v));
    assert_eq!(cited("`docs/protocol.md` rule 6, see README.md"), 0);
    assert_eq!(cited("docs/runbook.md"), 1);
    assert_eq!(cited("signaling.md rule 3"), 1);
    assert_eq!(cited("protocol.md rule 3"), 1);
    assert_eq!(
        cited("https://github.com/x/y/blob/main/docs/nothing.md#a"),
        0
    );
    assert_eq!(cited("`src/gc/client.rs` and `src/gc/`"), 0);
    assert_eq!(cited("`src/gc/http.rs`"), 1);
    assert_eq!(
        cited("`target/release/mc-service` `bench/<stamp>/x` `a b/c`"),
        0
    );

    let wording = |l: &str| count(&|v| check_wording("x.rs", 1, l, v));
    assert_eq!(wording(&format!("// {} 4 acceptance", "Issue")), 1);
    assert_eq!(wording(&format!("// ({} 7 {} 2)", "issue", "item")), 2);
    assert_eq!(wording(&format!("// the {} computes it", "lead")), 1);
    assert_eq!(
        wording(&format!(
            "// a misleading name leads to issues; 3 items; the {}er",
            "lead"
        )),
        0
    );
    assert_eq!(
        wording(&format!(
            "// upstream bug, github.com/quinn-rs/quinn/{} 1234",
            "issues"
        )),
        0
    );

    let md = "# Title\n\n## A heading, with (punctuation)\n\n```\n[x](nowhere.md)\n```\n\
              [ok](docs/protocol.md) [self](#title) [gone](docs/gone.md) [bad](#nope)\n\
              [anchor](#a-heading-with-punctuation) [web](https://x.org/y.md)\n";
    let mut v = Vec::new();
    check_links(&tree, "README.md", md, &mut v);
    let what: Vec<&str> = v.iter().map(|f| f.what.as_str()).collect();
    assert_eq!(v.len(), 2, "{what:?}");
    assert!(
        what[0].contains("docs/gone.md") && what[1].contains("#nope"),
        "{what:?}"
    );
    assert_eq!(
        slug("Where this service differs (v1.1)"),
        "where-this-service-differs-v11"
    );
}
