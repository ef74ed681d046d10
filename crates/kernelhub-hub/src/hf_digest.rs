//! The digest in a Hugging Face kernel variant's `metadata.json`: the
//! SHA-256 or SHA-512 (standard padded base64) of every file in the variant
//! folder, which pins each file the way a `kernel.toml` pins artifacts. It
//! lives here because fetching, verifying and bundling need it; the rest of
//! the Hugging Face layout is `kernelhub-hf`.
//!
//! The digest covers every regular file under the variant folder except
//! the top-level `metadata.json` and `metadata.json.sigstore`, `*.pyc` files
//! and `__pycache__` folders; a file present but not listed, or listed but
//! absent, fails verification, as it does in `kernels verify-signature`.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

use kernelhub_manifest::lock::{LockedHf, LockedVariant};
use kernelhub_manifest::project::RepoType;

use crate::cache::{PinnedFile, Size};
use crate::checksum::{Algorithm, Checksum};

/// `digest` in `metadata.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Digest {
    /// `sha256` or `sha512`.
    pub algorithm: String,
    /// Path relative to the variant folder → base64 digest.
    pub files: BTreeMap<String, String>,
}

/// A variant's file list disagrees with its digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{variant}` does not match its digest:{}", .problems.iter().map(|p| format!("\n  - {p}")).collect::<String>())]
pub struct FileSetError {
    /// The variant folder.
    pub variant: String,
    /// One line per file.
    pub problems: Vec<String>,
}

/// Reads the `digest` object of `metadata.json` bytes, if there is one.
pub fn read_digest(metadata: &[u8]) -> Result<Option<Digest>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Only {
        digest: Option<Digest>,
    }
    serde_json::from_slice::<Only>(metadata).map(|o| o.digest)
}

/// Whether a path (relative to the variant folder) is covered by digests.
pub fn is_digested(path: &str) -> bool {
    !matches!(path, "metadata.json" | "metadata.json.sigstore")
        && !path.ends_with(".pyc")
        && !path.split('/').any(|part| part == "__pycache__")
}

impl Digest {
    /// The pin of each file in `present` (paths relative to the variant
    /// folder), or every disagreement between the two lists.
    pub fn pins(
        &self,
        variant: &str,
        present: &[String],
    ) -> Result<Vec<(String, Checksum)>, FileSetError> {
        let algorithm = match self.algorithm.as_str() {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => {
                return Err(FileSetError {
                    variant: variant.to_string(),
                    problems: vec![format!(
                        "unknown digest algorithm `{other}` (expected sha256 or sha512)"
                    )],
                });
            }
        };
        let mut problems = Vec::new();
        let mut pins = Vec::new();
        for (path, encoded) in &self.files {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok();
            let checksum = match (algorithm, decoded) {
                (Algorithm::Sha256, Some(bytes)) => <[u8; 32]>::try_from(bytes)
                    .ok()
                    .map(|b| Checksum::Sha256(kernelhub_manifest::hash::Sha256Digest(b))),
                (Algorithm::Sha512, Some(bytes)) => <[u8; 64]>::try_from(bytes)
                    .ok()
                    .map(|b| Checksum::Sha512(Box::new(b))),
                (_, None) => None,
            };
            if !is_digested(path) {
                problems.push(format!("`{path}` is listed, but digests never cover it"));
                continue;
            }
            match checksum {
                None => problems.push(format!(
                    "`{path}`: `{encoded}` is not a {} digest in padded base64",
                    self.algorithm
                )),
                Some(_) if !present.contains(path) => {
                    problems.push(format!("`{path}` is listed but missing"))
                }
                Some(checksum) => pins.push((path.clone(), checksum)),
            }
        }
        for path in present
            .iter()
            .filter(|p| is_digested(p) && !self.files.contains_key(*p))
        {
            problems.push(format!("`{path}` is present but not listed"));
        }
        if problems.is_empty() {
            Ok(pins)
        } else {
            Err(FileSetError {
                variant: variant.to_string(),
                problems,
            })
        }
    }
}

/// The pin of a locked variant's `metadata.json` (cached, as the Python
/// `kernels` package expects, under `kernels--<owner>--<name>`).
pub fn metadata_pin(locked: &LockedHf, variant: &LockedVariant) -> PinnedFile {
    PinnedFile {
        repo_type: RepoType::Kernel,
        repo: locked.source().to_string(),
        commit: locked.commit.clone(),
        path: format!("build/{}/metadata.json", variant.name),
        checksum: variant.metadata_sha256.into(),
        size: Size::Manifest,
    }
}

/// The pins of every file of a locked variant, from its verified
/// `metadata.json` bytes: the digest's own list (the lock checked it
/// against the Hub's file list when it was written).
pub fn variant_files(
    locked: &LockedHf,
    variant: &str,
    metadata: &[u8],
) -> Result<Vec<PinnedFile>, FileSetError> {
    let problem = |text: String| FileSetError {
        variant: variant.to_string(),
        problems: vec![text],
    };
    let digest = read_digest(metadata)
        .map_err(|e| problem(format!("`metadata.json` is not valid: {e}")))?
        .ok_or_else(|| problem("`metadata.json` has no digest".into()))?;
    let listed: Vec<String> = digest.files.keys().cloned().collect();
    Ok(digest
        .pins(variant, &listed)?
        .into_iter()
        .map(|(path, checksum)| PinnedFile {
            repo_type: RepoType::Kernel,
            repo: locked.source().to_string(),
            commit: locked.commit.clone(),
            path: format!("build/{variant}/{path}"),
            checksum,
            size: Size::Unsized,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha512_digests_pin_files_too() {
        let expected = Checksum::of(Algorithm::Sha512, b"hello world");
        let encoded = base64::engine::general_purpose::STANDARD.encode(expected.bytes());
        let metadata = format!(
            "{{\"digest\": {{\"algorithm\": \"sha512\", \"files\": {{\"a.so\": \"{encoded}\"}}}}}}"
        );
        let digest = read_digest(metadata.as_bytes()).unwrap().unwrap();
        let pins = digest.pins("v", &["a.so".to_string()]).unwrap();
        assert_eq!(pins[0].1, expected);
        assert!(pins[0].1.to_string().starts_with("sha512:309ecc48"));
        let unpadded = metadata.replace('=', "");
        let error = read_digest(unpadded.as_bytes())
            .unwrap()
            .unwrap()
            .pins("v", &["a.so".to_string()])
            .unwrap_err();
        assert!(error.to_string().contains("padded base64"), "{error}");
        assert!(read_digest(b"{\"name\": \"x\"}").unwrap().is_none());
    }
}
