//! Test support: a small, valid kernel repo in a temp directory that each
//! test breaks in one way, then checks.
//!
//! The repo holds one op and a real WGSL artifact, so every check —
//! including naga's — runs on it; its `size` and `sha256` are computed when
//! it is written unless a test overrides them.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/c_library.rs"]
pub mod c_library;
#[path = "support/fake_cuda.rs"]
pub mod fake_cuda;
#[path = "support/fake_hip.rs"]
pub mod fake_hip;
#[path = "support/faults.rs"]
pub mod faults;
#[path = "support/hf_layout.rs"]
pub mod hf_layout;
#[path = "support/olah.rs"]
pub mod olah;

use kernelhub_manifest::check::{CheckReport, check_repo};
use kernelhub_manifest::hash::Sha256Digest;

/// The valid manifest every test starts from. `{SIZE}` and `{SHA}` are
/// filled from `scale.wgsl` when the repo is written. Line numbers matter:
/// tests assert them.
pub const GOOD_MANIFEST: &str = r#"schema = 1

[kernel]
name = "scale"
version = "0.1.0"
license = "MIT"

[ops.scale]
dtypes = ["f32"]
params = [
  { name = "x", tensor = "T", shape = ["n"], written = true },
  { name = "y", tensor = "T", shape = ["n"] },
  { name = "n", scalar = "u32" },
  { name = "alpha", scalar = "f32" },
]

[[artifacts]]
backend = "wgpu"
format = "wgsl"
path = "scale.wgsl"
size = {SIZE}
sha256 = "{SHA}"

[[artifacts.entries]]
op = "scale"
dtype = "f32"
symbol = "scale"
grid = ["ceil_div(n, 64)"]
block = [64]
"#;

/// The WGSL artifact of [`GOOD_MANIFEST`]: x += alpha * y.
pub const GOOD_WGSL: &str = "struct Params { n: u32, alpha: f32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(64)
fn scale(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < params.n {
        x[id.x] = x[id.x] + params.alpha * y[id.x];
    }
}
";

/// A kernel repo being prepared.
pub struct Repo {
    /// The temp directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// The manifest text, before `{SIZE}`/`{SHA}` are filled.
    pub manifest: String,
    files: Vec<(String, Vec<u8>)>,
}

impl Repo {
    /// The valid repo.
    pub fn good() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            manifest: GOOD_MANIFEST.to_string(),
            files: vec![("scale.wgsl".into(), GOOD_WGSL.as_bytes().to_vec())],
        }
    }

    /// Replaces the first `from` in the manifest with `to`; `from` must occur.
    pub fn edit(mut self, from: &str, to: &str) -> Self {
        assert!(
            self.manifest.contains(from),
            "`{from}` is not in the manifest"
        );
        self.manifest = self.manifest.replacen(from, to, 1);
        self
    }

    /// Replaces the first `from` in file `path` with `to`; `from` must occur.
    pub fn edit_file(mut self, path: &str, from: &str, to: &str) -> Self {
        let file = self
            .files
            .iter_mut()
            .find(|(p, _)| p == path)
            .expect("file exists");
        let text = String::from_utf8(file.1.clone()).expect("text file");
        assert!(text.contains(from), "`{from}` is not in {path}");
        file.1 = text.replacen(from, to, 1).into_bytes();
        self
    }

    /// Adds or replaces a file.
    pub fn file(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.retain(|(p, _)| p != path);
        self.files.push((path.into(), bytes.into()));
        self
    }

    /// Removes a file.
    pub fn without_file(mut self, path: &str) -> Self {
        self.files.retain(|(p, _)| p != path);
        self
    }

    /// The repo's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes the files and the manifest (with `{SIZE}`/`{SHA}` of
    /// `scale.wgsl` filled in) and returns the manifest's path.
    pub fn write(&self) -> PathBuf {
        for (path, bytes) in &self.files {
            let full = self.dir.path().join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(full, bytes).expect("write file");
        }
        let wgsl = self
            .files
            .iter()
            .find(|(p, _)| p == "scale.wgsl")
            .map_or(&[][..], |(_, b)| b.as_slice());
        let manifest = self
            .manifest
            .replace("{SIZE}", &wgsl.len().to_string())
            .replace("{SHA}", &Sha256Digest::of(wgsl).to_string());
        let path = self.dir.path().join("kernel.toml");
        std::fs::write(&path, manifest).expect("write manifest");
        path
    }

    /// Writes the repo and checks it.
    pub fn check(&self) -> CheckReport {
        self.write();
        check_repo(self.dir.path()).expect("check runs")
    }

    /// Writes and checks the repo; returns `(code, file name, line)` of each diagnostic.
    pub fn problems(&self) -> Vec<(&'static str, String, usize)> {
        located(&self.check())
    }
}

/// `(code, file name, line)` of each diagnostic in `report` (line 0: no location).
pub fn located(report: &CheckReport) -> Vec<(&'static str, String, usize)> {
    report
        .diagnostics
        .iter()
        .map(|d| {
            let line = report
                .sources
                .get(&d.file)
                .and_then(|s| d.line_col(s))
                .map_or(0, |(line, _)| line);
            let name = d
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (d.code, name, line)
        })
        .collect()
}

/// Extracts a `.tar.gz`, flips one byte of `member`, and writes it back.
pub fn tamper(bundle: &Path, member: &str) {
    let work = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(bundle)
        .arg("-C")
        .arg(work.path())
        .status()
        .unwrap();
    assert!(status.success());
    let target = work.path().join(member);
    let mut bytes = std::fs::read(&target).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    std::fs::write(&target, bytes).unwrap();
    // Keep the entry order: the lock first.
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(bundle)
        .output()
        .unwrap();
    let names: Vec<String> = String::from_utf8(listing.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let status = Command::new("tar")
        .arg("-czf")
        .arg(bundle)
        .arg("-C")
        .arg(work.path())
        .args(&names)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Every path below `dir`, not following links.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            found.extend(walk(&path));
        }
        found.push(path);
    }
    found
}

/// `binary args...` run in `project` with the host's Hub settings removed,
/// `HOME` at the project and `cache` as the cache: a CLI test sees nothing
/// of the machine it runs on.
pub fn isolated_command(binary: &str, project: &Path, cache: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(binary);
    command.args(args).current_dir(project);
    for name in [
        "HF_ENDPOINT",
        "HF_TOKEN",
        "HF_TOKEN_PATH",
        "HF_HUB_OFFLINE",
        "HF_HUB_CACHE",
        "HF_HOME",
        "XDG_CACHE_HOME",
    ] {
        command.env_remove(name);
    }
    command
        .env("HOME", project)
        .env("KERNELHUB_CACHE", cache)
        .env("NO_COLOR", "1");
    command
}
