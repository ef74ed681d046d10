//! What the facade's tests share: f32 byte conversions, and a Hub cache
//! filled with an embedded kernel as `kernelhub fetch` would leave it.

use kernelhub_hub::cache::{HubCache, PinnedFile};
use kernelhub_manifest::hash::Sha256Digest;
use kernelhub_manifest::lock::LockedKernel;
use kernelhub_manifest::project::RepoType;

pub fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

pub fn bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Installs every file of embedded kernel `name` into `cache` as the
/// commit `commit` of `kernelhub/<name>`; returns its lock entry.
pub fn install_embedded(cache: &HubCache, name: &str, commit: &str) -> LockedKernel {
    let embedded = kernelhub::embedded::find(name).unwrap();
    let manifest_bytes = embedded.file("kernel.toml").unwrap();
    let locked = LockedKernel {
        name: name.to_string(),
        repo: format!("kernelhub/{name}"),
        repo_type: RepoType::Kernel,
        reference: "v0.1.0".into(),
        commit: commit.to_string(),
        manifest_sha256: Sha256Digest::of(manifest_bytes),
        signature: None,
    };
    cache
        .install_verified(&PinnedFile::manifest(&locked), manifest_bytes)
        .unwrap();
    let manifest = cache.load_manifest(&locked).unwrap();
    for artifact in &manifest.artifacts {
        let bytes = embedded.file(artifact.path.get_ref()).unwrap();
        cache
            .install_verified(&PinnedFile::artifact(&locked, artifact), bytes)
            .unwrap();
    }
    locked
}
