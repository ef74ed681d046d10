//! Builds `tests/fake-cuda/fake_cuda.c`, a test double of the NVIDIA driver
//! library, so tests can point `KERNELHUB_CUDA_LIBRARY` at it and drive the
//! CUDA backend through its driver calls on machines without a GPU; and
//! finds the `kernelhub` binary for tests outside the CLI's own package.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The C source of the fake driver.
pub fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fake-cuda/fake_cuda.c")
}

/// Compiles the fake driver into `dir/libfakecuda.so` (once per process)
/// and returns its path. A compile error fails the calling test with the
/// compiler's output.
///
/// The library is written under a temporary name and renamed into place,
/// so another test process loading it never sees a half-written file.
pub fn library(dir: &Path) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            crate::c_library::compile(&source(), dir, "libfakecuda.so", "the fake CUDA driver")
        })
        .clone()
}

/// The `kernelhub` binary of this build, built first if needed.
///
/// `CARGO_BIN_EXE_kernelhub` exists only for the CLI package's own tests,
/// so this runs `cargo build -p kernelhub-cli` (a no-op when it is up to
/// date) into the target directory the calling test binary lives in, with
/// its profile: `<target>/<profile>/deps/<test>` → `<target>/<profile>/kernelhub`.
pub fn kernelhub_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the test binary's path");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("test binaries live in <target>/<profile>/deps");
            let target_dir = profile_dir.parent().expect("<target>");
            let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") => "dev",
                Some(other) => other,
                None => panic!("no profile directory above {}", exe.display()),
            };
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let output = Command::new(cargo)
                .args(["build", "--locked", "--quiet", "-p", "kernelhub-cli"])
                .args(["--bin", "kernelhub", "--profile", profile, "--target-dir"])
                .arg(target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .expect("run cargo");
            assert!(
                output.status.success(),
                "`cargo build -p kernelhub-cli` failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let binary = profile_dir.join(format!("kernelhub{}", std::env::consts::EXE_SUFFIX));
            assert!(binary.exists(), "{} was not built", binary.display());
            binary
        })
        .clone()
}
