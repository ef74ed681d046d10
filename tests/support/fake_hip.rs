//! Builds `tests/fake-hip/fake_hip.c`, a test double of the HIP runtime
//! (`libamdhip64`), so tests can point `KERNELHUB_HIP_LIBRARY` at it and
//! drive the ROCm backend through its runtime calls on machines without an
//! AMD GPU (CI's real HIP 5.2 runtime sees none).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The C source of the fake runtime.
pub fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fake-hip/fake_hip.c")
}

/// Compiles the fake runtime into `dir/libfakehip.so` (once per process)
/// and returns its path. A compile error fails the calling test with the
/// compiler's output.
pub fn library(dir: &Path) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            crate::c_library::compile(&source(), dir, "libfakehip.so", "the fake HIP runtime")
        })
        .clone()
}
