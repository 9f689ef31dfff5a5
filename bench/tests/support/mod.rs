//! What the load generator's integration tests share: running `mc-loadgen` bounded in
//! time and reading its JSON report, and a directory for a test's files.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const LOADGEN: &str = env!("CARGO_BIN_EXE_mc-loadgen");

/// Runs `mc-loadgen --progress <progress> --json <json> <args>`; kills it and fails the
/// test after `bound`. Returns the exit code, the JSON report (`null` when it wrote
/// none) and what it printed on stdout; its stderr is kept in `<json>.err`.
pub fn run_loadgen(
    progress: &str,
    args: &[&str],
    json: &Path,
    bound: Duration,
) -> (i32, serde_json::Value, String) {
    // stderr goes to `<json>.err` (shown once the run ends) for tests that read it.
    let err = std::fs::File::create(json.with_extension("err")).unwrap();
    let mut child = Command::new(LOADGEN)
        .args(["--progress", progress, "--json", json.to_str().unwrap()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code().unwrap_or(-1);
        }
        if t0.elapsed() > bound {
            let _ = child.kill();
            let err = std::fs::read_to_string(json.with_extension("err")).unwrap_or_default();
            panic!("mc-loadgen {args:?} exceeded {bound:?}; its stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    println!("{out}");
    eprint!(
        "{}",
        std::fs::read_to_string(json.with_extension("err")).unwrap_or_default()
    );
    let report = std::fs::read_to_string(json)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    (code, report, out)
}

/// A directory for one test's files (dev material, JSON, .hgrm, plots), removed when it
/// is dropped, whether the test passed or not.
pub struct Scratch(PathBuf);

impl Scratch {
    /// A new empty directory `<prefix>-<pid>-<random>` in the temporary directory.
    pub fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn dir(&self) -> &Path {
        &self.0
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
