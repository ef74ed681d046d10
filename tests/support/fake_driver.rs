//! What `tests/cuda_driver.rs` and `tests/hip_driver.rs` share: driving a
//! native backend through a test double of its driver library
//! (`tests/fake-cuda/fake_cuda.c`, `tests/fake-hip/fake_hip.c`), because CI
//! has no GPU of either kind. A [`FakeDriver`] describes one fake; the rest
//! — running `kernelhub` on it, re-running a test in a process of its own,
//! reading the fake's logs, the reasons a plan gives — is the same for both.
//!
//! Every process here opens the fake, never a real library, and not the
//! other backend's library either. A driver is opened once per process, so
//! each setting of the fake gets its own process: the `kernelhub` binary,
//! or the test binary re-run for one test ([`FakeDriver::in_child`]) for
//! library-level checks.
//!
//! Unlike the other support modules this one is not part of the
//! `kernelhub_tests` library: each test file includes it with
//! `#[path = "support/fake_driver.rs"] mod fake_driver;`, so it can name
//! `kernelhub`'s types (a dev-dependency only) and `CARGO_TARGET_TMPDIR`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kernelhub::{Backend, Hub, LoadedKernel};

/// One test double of a driver library and how to point a process at it.
pub struct FakeDriver {
    /// Builds the fake into the given directory (once per process) and
    /// returns its path: `fake_cuda::library` or `fake_hip::library`.
    pub library: fn(&Path) -> PathBuf,
    /// The file name the built library ends with (checked in a child).
    pub file_name: &'static str,
    /// The variable that names the library the backend opens.
    pub library_var: &'static str,
    /// The other backend's library variable, pointed at a file that does
    /// not exist, and that library's usual file name.
    pub other_library: (&'static str, &'static str),
    /// The fake's settings; cleared from every child's environment first.
    pub settings: &'static [&'static str],
    /// Set (to the test's name) in a re-run of the test binary for one test.
    pub child_var: &'static str,
    /// What the fake stands for in messages: "driver", "runtime".
    pub what: &'static str,
}

impl FakeDriver {
    /// The fake library, built under `CARGO_TARGET_TMPDIR`.
    pub fn library(&self) -> PathBuf {
        (self.library)(Path::new(env!("CARGO_TARGET_TMPDIR")))
    }

    /// The functions the fake library exports (`nm -D`), sorted.
    pub fn exported_symbols(&self) -> Vec<String> {
        let output = Command::new("nm")
            .args(["-D", "--defined-only"])
            .arg(self.library())
            .output()
            .expect("run nm");
        assert!(output.status.success(), "{}", text(&output.stderr));
        let mut exported: Vec<String> = text(&output.stdout)
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("T"))
            .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
            .collect();
        exported.sort_unstable();
        exported
    }

    /// The fake and `settings` in `command`'s environment, no library for
    /// the other backend and nothing of this machine's backend choice.
    pub fn configure(&self, command: &mut Command, settings: &[(&str, &str)]) {
        let (other_var, other_file) = self.other_library;
        command
            .env(self.library_var, self.library())
            .env(
                other_var,
                Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .join("no-such-dir")
                    .join(other_file),
            )
            .env_remove("KERNELHUB_BACKEND")
            .env_remove("WGPU_ADAPTER_NAME");
        for name in self.settings {
            command.env_remove(name);
        }
        for (name, value) in settings {
            command.env(name, value);
        }
    }

    /// `kernelhub args...` in `project` on the fake with `settings`.
    pub fn kernelhub(&self, project: &Path, args: &[&str], settings: &[(&str, &str)]) -> Output {
        let binary = kernelhub_tests::fake_cuda::kernelhub_binary();
        let cache = project.join(".cache");
        let mut command = kernelhub_tests::isolated_command(
            binary.to_str().expect("a UTF-8 path"),
            project,
            &cache,
            args,
        );
        self.configure(&mut command, settings);
        command.output().expect("kernelhub runs")
    }

    /// Whether this process is the re-run of the test binary for test
    /// `name` (see [`Self::run_child`]); there the fake must be the library
    /// configured.
    pub fn is_child(&self, name: &str) -> bool {
        if std::env::var(self.child_var).is_ok_and(|v| v == name) {
            let library = std::env::var(self.library_var).unwrap_or_default();
            assert!(
                library.ends_with(self.file_name),
                "the fake {}, never a real one: `{library}`",
                self.what
            );
            return true;
        }
        false
    }

    /// Re-runs the test binary for test `name` alone, with the fake and
    /// `settings` in its environment, and asserts that it ran and passed.
    pub fn run_child(&self, name: &str, settings: &[(&str, &str)]) {
        let mut command = Command::new(std::env::current_exe().expect("this test binary"));
        command
            .args([name, "--exact", "--nocapture", "--test-threads", "1"])
            .env(self.child_var, name);
        self.configure(&mut command, settings);
        let output = command.output().expect("the test binary re-runs");
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "`{name}` in its own process:\n{stdout}\n{stderr}"
        );
    }

    /// In the test process: runs test `name` in its own process (see
    /// [`Self::run_child`]) and returns `false`. In that process: returns
    /// `true`, and the test goes on to its body.
    pub fn in_child(&self, name: &str, settings: &[(&str, &str)]) -> bool {
        if self.is_child(name) {
            return true;
        }
        self.run_child(name, settings);
        false
    }
}

/// Bytes as text, invalid UTF-8 replaced.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The lines of one of the fake's logs so far (none before it exists).
pub fn lines(log: &Path) -> Vec<String> {
    match std::fs::read_to_string(log) {
        Ok(text) => text.lines().map(str::to_string).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", log.display()),
    }
}

/// Every reason the plan of the `backend` device gives for not using
/// artifact `path`, one a line.
pub fn reasons(loaded: &LoadedKernel, hub: &Hub, backend: Backend, path: &str) -> String {
    let manifest = loaded.kernel().manifest();
    let plan = loaded
        .plans()
        .iter()
        .find(|p| hub.devices()[p.device].info().backend == backend)
        .unwrap_or_else(|| panic!("a plan for the {backend:?} device"));
    let mut reasons = Vec::new();
    for choice in &plan.choices {
        for (index, why) in &choice.rejected {
            if manifest.artifacts[*index].path.get_ref() == path && !reasons.contains(why) {
                reasons.push(why.clone());
            }
        }
    }
    reasons.join("\n")
}

/// Copies the directory `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `values` as little-endian f32 bytes.
pub fn f32_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_le_bytes).collect()
}
