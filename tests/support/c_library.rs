//! Compiles one C file into a shared library for the tests, shared by the
//! test doubles of the GPU driver libraries (`fake_cuda`, `fake_hip`) so
//! both are built the same way, with `tests/fake-common` (the header of
//! what they share, `fake_common.h`) on the include path.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles `source` into `dir/file_name` and returns its path. A compile
/// error fails the calling test with the compiler's output; `what` names
/// the library in the message when `cc` cannot be run.
///
/// The library is written under a temporary name and renamed into place,
/// so another test process loading it never sees a half-written file.
/// Callers compile once per process (behind a `OnceLock`).
pub fn compile(source: &Path, dir: &Path, file_name: &str, what: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("create the output directory");
    let path = dir.join(file_name);
    let partial = dir.join(format!("{file_name}.{}.tmp", std::process::id()));
    let output = Command::new("cc")
        .args([
            "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-pthread", "-o",
        ])
        .arg(&partial)
        .arg("-I")
        .arg(include_dir())
        .arg(source)
        .output()
        .unwrap_or_else(|e| panic!("run `cc` (a C compiler is needed to build {what}): {e}"));
    assert!(
        output.status.success(),
        "`cc` failed to build {}:\n{}{}",
        source.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::rename(&partial, &path).expect("move the library into place");
    path
}

/// `tests/fake-common`: the header the fakes share.
pub fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fake-common")
}
