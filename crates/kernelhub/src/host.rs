//! Host code: loading a kernel's `shared-library` artifact, only where the
//! project allowed host code for that dependency (`allow_host_code = true`
//! in `kernels.toml`), and only from a sealed in-memory copy of bytes that
//! were verified against the manifest's pin (`kernelhub_host`).

use kernelhub_host::HostLibrary;
use kernelhub_manifest::kernel::Format;
use kernelhub_manifest::project::ProjectManifest;

use crate::{KernelSource, LoadError};

/// Whether `kernels.toml` allows host code for dependency `name`.
pub fn allowed(project: &ProjectManifest, name: &str) -> bool {
    project
        .dependencies
        .iter()
        .any(|d| d.name.get_ref() == name && d.allow_host_code)
}

/// Opens the `shared-library` artifact at `path` of `source`. Refused
/// unless `allow_host_code` (see [`allowed`]); the bytes are verified, then
/// loaded from a sealed memory file, so what runs is what was verified.
pub fn load_host_library(
    source: &KernelSource,
    path: &str,
    allow_host_code: bool,
) -> Result<HostLibrary, LoadError> {
    let manifest = source.manifest()?;
    let index = manifest
        .artifacts
        .iter()
        .position(|a| a.path.get_ref() == path && *a.format.get_ref() == Format::SharedLibrary)
        .ok_or_else(|| LoadError::NoHostLibrary {
            kernel: source.describe(),
            path: path.to_string(),
        })?;
    if !allow_host_code {
        return Err(LoadError::HostCodeNotAllowed {
            kernel: source.describe(),
            path: path.to_string(),
        });
    }
    let verified = source.verified_artifact(&manifest, index)?;
    // SAFETY: the project allowed host code for this kernel (checked
    // above), and these are the bytes its manifest pins (verified above).
    #[allow(unsafe_code)]
    let library = unsafe { HostLibrary::open(path, &verified.bytes) }?;
    Ok(library)
}
