//! Where a kernel's manifest and artifacts come from: the embedded
//! reference kernels, a kernel repo checked out on disk, or the Hub cache
//! at the commit a lock pins. Each source hands out bytes; the caller
//! verifies every artifact against the manifest before a backend sees it
//! (the Hub cache also checks the manifest against the lock, and its
//! signature against the trust policy).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kernelhub_hub::cache::HubCache;
use kernelhub_manifest::hash::Sha256Digest;
use kernelhub_manifest::kernel::Artifact;
use kernelhub_manifest::lock::LockedKernel;
use kernelhub_manifest::trust::TrustPolicy;
use kernelhub_manifest::{KernelManifest, Strictness};
use kernelhub_runtime::device::VerifiedArtifact;

use crate::LoadError;
use crate::embedded;

/// A kernel to load.
#[derive(Debug, Clone)]
// Built once per load and never stored in bulk: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum KernelSource {
    /// One of the reference kernels compiled into kernelhub (`activation`,
    /// `rmsnorm`, `rotary`, ...).
    Embedded(String),
    /// A kernel repo on disk: `kernel.toml` at its root, artifacts at the
    /// paths it names.
    Dir(PathBuf),
    /// A locked kernel in the Hub cache (after `kernelhub fetch`), its
    /// signature checked against the project's `[trust]` policy.
    Cached {
        /// The cache.
        cache: HubCache,
        /// The lock entry.
        kernel: LockedKernel,
        /// `kernels.toml`'s `[trust]` (the default asks for no signature).
        trust: TrustPolicy,
    },
}

impl KernelSource {
    /// For messages: which kernel this is.
    pub fn describe(&self) -> String {
        match self {
            KernelSource::Embedded(name) => format!("embedded kernel `{name}`"),
            KernelSource::Dir(dir) => format!("`{}`", dir.display()),
            KernelSource::Cached { kernel, .. } => {
                format!("`{}` at {}", kernel.repo, kernel.commit)
            }
        }
    }

    /// The parsed manifest.
    pub fn manifest(&self) -> Result<Arc<KernelManifest>, LoadError> {
        let parse = |bytes: &[u8], file: &Path| -> Result<Arc<KernelManifest>, LoadError> {
            let text = std::str::from_utf8(bytes).map_err(|_| LoadError::Manifest {
                file: file.to_path_buf(),
                message: "not UTF-8 text".into(),
            })?;
            let parsed = KernelManifest::parse(text, file, Strictness::Load);
            parsed
                .value
                .map(Arc::new)
                .ok_or_else(|| LoadError::Manifest {
                    file: file.to_path_buf(),
                    message: parsed
                        .diagnostics
                        .iter()
                        .filter(|d| d.severity == kernelhub_manifest::Severity::Error)
                        .map(|d| d.message.clone())
                        .collect::<Vec<_>>()
                        .join("; "),
                })
        };
        match self {
            KernelSource::Embedded(name) => {
                let kernel = find_embedded(name)?;
                let bytes = kernel.file("kernel.toml").unwrap_or_default();
                parse(bytes, &Path::new(name).join("kernel.toml"))
            }
            KernelSource::Dir(dir) => {
                let file = dir.join("kernel.toml");
                let bytes = std::fs::read(&file).map_err(|e| LoadError::Read {
                    file: file.clone(),
                    source: e,
                })?;
                parse(&bytes, &file)
            }
            KernelSource::Cached {
                cache,
                kernel,
                trust,
            } => cache
                .load_manifest_checked(kernel, |bytes| {
                    kernelhub_hub::signed::check_manifest(cache, kernel, trust, bytes).map(|_| ())
                })
                .map(Arc::new)
                .map_err(|e| LoadError::Cache(Box::new(e))),
        }
    }

    /// Artifact `index` of `manifest`, read and checked against its pin:
    /// the only way bytes leave a source for a backend or the host loader.
    pub(crate) fn verified_artifact(
        &self,
        manifest: &KernelManifest,
        index: usize,
    ) -> Result<VerifiedArtifact, LoadError> {
        let artifact = &manifest.artifacts[index];
        let bytes: Arc<[u8]> = self.artifact(artifact)?.into();
        VerifiedArtifact::check(manifest, index, bytes.clone()).ok_or_else(|| LoadError::Mismatch {
            kernel: self.describe(),
            path: artifact.path.get_ref().clone(),
            expected: format!(
                "sha256:{} ({} bytes)",
                artifact.sha256.get_ref(),
                artifact.size.get_ref()
            ),
            computed: format!("sha256:{}", Sha256Digest::of(&bytes)),
            size: bytes.len(),
        })
    }

    /// The bytes of `artifact`, not yet checked against its pin (the Hub
    /// cache checks them itself).
    fn artifact(&self, artifact: &Artifact) -> Result<Vec<u8>, LoadError> {
        let path = artifact.path.get_ref();
        match self {
            KernelSource::Embedded(name) => find_embedded(name)?
                .file(path)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| LoadError::Read {
                    file: Path::new(name).join(path),
                    source: std::io::ErrorKind::NotFound.into(),
                }),
            KernelSource::Dir(dir) => {
                let file = dir.join(path);
                std::fs::read(&file).map_err(|e| LoadError::Read { file, source: e })
            }
            KernelSource::Cached { cache, kernel, .. } => cache
                .load_artifact(kernel, artifact)
                .map_err(|e| LoadError::Cache(Box::new(e))),
        }
    }
}

fn find_embedded(name: &str) -> Result<&'static embedded::EmbeddedKernel, LoadError> {
    embedded::find(name).ok_or_else(|| LoadError::NoEmbedded {
        name: name.to_string(),
        known: embedded::KERNELS
            .iter()
            .map(|k| k.name)
            .collect::<Vec<_>>()
            .join(", "),
    })
}
