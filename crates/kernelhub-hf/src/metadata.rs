//! `build/<variant>/metadata.json`: who the variant is and, when it has a
//! `digest` (see `kernelhub_hub::hf_digest`), the pin of every file in the
//! variant folder.

use serde::Deserialize;

pub use kernelhub_hub::hf_digest::{Digest, FileSetError, is_digested};

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
    #[error(transparent)]
    FileSet(#[from] FileSetError),
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
