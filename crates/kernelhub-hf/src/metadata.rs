//! `build/<variant>/metadata.json`: who the variant is and, when it has a
//! `digest`, the SHA-256 or SHA-512 (standard padded base64) of every file
//! in the variant folder, so each can be verified as it downloads.
//!
//! The digest covers every regular file under the variant folder except
//! the top-level `metadata.json` and `metadata.json.sigstore`, `*.pyc` files
//! and `__pycache__` folders; a file present but not listed, or listed but
//! absent, fails verification, as it does in `kernels verify-signature`.

use std::collections::BTreeMap;

use base64::Engine as _;
use kernelhub_hub::{Algorithm, Checksum};
use serde::Deserialize;

/// The fields kernelhub reads (unknown fields are ignored, as the Python
/// package does).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Metadata {
    /// Kernel name.
    pub name: String,
    /// Module id.
    pub id: String,
    /// Major version (the `vN` branch).
    pub version: u64,
    /// License.
    pub license: String,
    /// Python packages it needs.
    #[serde(default)]
    pub python_depends: Vec<String>,
    /// Other kernels it needs.
    #[serde(default)]
    pub kernel_depends: Vec<serde_json::Value>,
    /// The backend it targets.
    pub backend: BackendInfo,
    /// Digests of the variant's files, if the build recorded them.
    pub digest: Option<Digest>,
}

/// `backend` in `metadata.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct BackendInfo {
    /// `cuda`, `rocm`, `cpu`, ….
    #[serde(rename = "type")]
    pub kind: String,
    /// GPU architectures, e.g. `["8.0", "9.0a"]`.
    #[serde(default)]
    pub archs: Option<Vec<String>>,
}

/// `digest` in `metadata.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Digest {
    /// `sha256` or `sha512`.
    pub algorithm: String,
    /// Path relative to the variant folder → base64 digest.
    pub files: BTreeMap<String, String>,
}

/// Why a variant's `metadata.json` or file list cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// Not JSON of the expected shape.
    #[error("`{file}` is not valid: {reason}")]
    Invalid {
        /// `build/<variant>/metadata.json`.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The file list disagrees with the digest.
    #[error("`{variant}` does not match its digest:{}", .problems.iter().map(|p| format!("\n  - {p}")).collect::<String>())]
    FileSet {
        /// The variant folder.
        variant: String,
        /// One line per file.
        problems: Vec<String>,
    },
}

impl Metadata {
    /// Parses `metadata.json` bytes; `file` names it in errors.
    pub fn parse(bytes: &[u8], file: &str) -> Result<Self, MetadataError> {
        serde_json::from_slice(bytes).map_err(|e| MetadataError::Invalid {
            file: file.to_string(),
            reason: e.to_string(),
        })
    }
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
    ) -> Result<Vec<(String, Checksum)>, MetadataError> {
        let algorithm = match self.algorithm.as_str() {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => {
                return Err(MetadataError::FileSet {
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
            Err(MetadataError::FileSet {
                variant: variant.to_string(),
                problems,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{
      "name": "test-kernel", "id": "_test_kernel_torch_cpu_0123456", "version": 1,
      "license": "apache-2.0", "python-depends": [], "backend": { "type": "cpu" },
      "unknown-key": true,
      "digest": { "algorithm": "sha256", "files": {
        "__init__.py": "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=",
        "_ops.py": "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=" } }
    }"#;

    #[test]
    fn digests_decode_and_file_sets_must_agree() {
        let metadata =
            Metadata::parse(EXAMPLE.as_bytes(), "build/torch-cpu/metadata.json").unwrap();
        assert_eq!(metadata.backend.kind, "cpu");
        let digest = metadata.digest.unwrap();
        let present = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let pins = digest
            .pins(
                "torch-cpu",
                &present(&[
                    "__init__.py",
                    "_ops.py",
                    "metadata.json",
                    "__pycache__/x.pyc",
                ]),
            )
            .unwrap();
        // The SHA-256 of "hello world".
        assert_eq!(
            pins[0].1.to_string(),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        let error = digest
            .pins("torch-cpu", &present(&["__init__.py", "extra.so"]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("`_ops.py` is listed but missing"), "{error}");
        assert!(
            error.contains("`extra.so` is present but not listed"),
            "{error}"
        );
        let bad = Metadata::parse(b"{\"name\": 1}", "m.json")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("`m.json` is not valid"), "{bad}");
    }
}
