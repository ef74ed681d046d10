//! The one error type of this crate. Every variant names the repo and file
//! it is about and, where there is one, what to do next.

use std::path::PathBuf;

use crate::checksum::Checksum;

/// Why a Hub or cache operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Offline and the file is not in the cache.
    #[error(
        "`{file}` of `{repo}` at commit {commit} is not in the cache at `{cache}`, and kernelhub is offline\n  hint: on a connected machine run `kernelhub fetch`, or import a bundle with `kernelhub bundle import`"
    )]
    NotCached {
        /// `owner/name`.
        repo: String,
        /// Path inside the repo.
        file: String,
        /// The pinned commit.
        commit: String,
        /// The cache root searched.
        cache: PathBuf,
    },
    /// Bytes arrived or were found that do not match the pin.
    #[error("`{file}` of `{repo}` at commit {commit} {problem}")]
    Mismatch {
        /// `owner/name`.
        repo: String,
        /// Path inside the repo.
        file: String,
        /// The pinned commit.
        commit: String,
        /// What is wrong.
        problem: Box<FileProblem>,
    },
    /// The Hub has no such repo.
    #[error(
        "The Hub at `{endpoint}` has no {repo_type} repo `{repo}`\n  hint: check the repo id, the endpoint, `repo_type` (mirrors may only have `model`), and `HF_TOKEN` for private repos"
    )]
    RepoNotFound {
        /// `owner/name`.
        repo: String,
        /// `kernel` or `model`.
        repo_type: &'static str,
        /// The Hub's base URL.
        endpoint: String,
    },
    /// The repo has no such revision.
    #[error(
        "`{repo}` has no revision `{revision}`\n  hint: the commit may have been removed or force-pushed away; run `kernelhub lock --update {name}` to re-resolve"
    )]
    RevisionNotFound {
        /// `owner/name`.
        repo: String,
        /// The branch, tag or commit asked for.
        revision: String,
        /// The dependency name, for the hint.
        name: String,
    },
    /// The revision has no such file.
    #[error(
        "`{repo}` at `{revision}` has no file `{file}`\n  hint: the kernel's manifest names a file its repo does not contain; tell the kernel's author"
    )]
    FileNotFound {
        /// `owner/name`.
        repo: String,
        /// The revision.
        revision: String,
        /// The file.
        file: String,
    },
    /// No revision of the repo satisfies the requirement.
    #[error("No revision of `{repo}` satisfies {requirement} for `{name}`{available}")]
    Unsatisfiable {
        /// Dependency name.
        name: String,
        /// `owner/name`.
        repo: String,
        /// The requirement, as text.
        requirement: String,
        /// A list of what exists, prefixed by a newline.
        available: String,
    },
    /// Any other failure talking to the Hub, after retries.
    #[error("Request for {what} failed: {message}")]
    Http {
        /// What was being requested.
        what: String,
        /// The underlying error, token-free.
        message: String,
    },
    /// A manifest or lock that does not parse or validate.
    #[error("{what} is not valid:\n{diagnostics}")]
    Invalid {
        /// Which file.
        what: String,
        /// Rendered diagnostics.
        diagnostics: String,
    },
    /// The lock has no such kernel.
    #[error(
        "`kernels.lock` has no kernel `{0}`\n  hint: add it to `kernels.toml` and run `kernelhub lock`"
    )]
    NotLocked(String),
    /// A bundle that is malformed or does not verify; nothing was imported.
    #[error("Bundle `{bundle}` was refused, nothing was imported: {reason}")]
    BundleRefused {
        /// The archive.
        bundle: PathBuf,
        /// Why.
        reason: String,
    },
    /// A manifest the trust policy does not accept.
    #[error("{0}\n  hint: {hint}", hint = .0.hint())]
    Trust(#[from] kernelhub_manifest::trust::TrustError),
    /// The policy wants a signature the lock does not record.
    #[error(
        "`kernels.toml` requires `{repo}` to be signed, but `kernels.lock` records no signature for `{name}`\n  hint: run `kernelhub lock --update {name}` to check and record its signature"
    )]
    SignatureNotLocked {
        /// Dependency name.
        name: String,
        /// `owner/name`.
        repo: String,
    },
    /// Several files failed; each is listed.
    #[error("{} file(s) failed:\n{}", .0.len(), list(.0))]
    Several(Vec<Error>),
    /// A local file operation failed (the message names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn list(errors: &[Error]) -> String {
    let lines: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
    lines.join("\n")
}

/// What is wrong with a file's bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileProblem {
    /// The SHA-256 differs.
    #[error("does not match its pinned hash\n  Expected: {expected}\n  Computed: {actual}")]
    Hash {
        /// From the lock or manifest.
        expected: Checksum,
        /// Of the bytes seen.
        actual: Checksum,
    },
    /// Fewer bytes than pinned.
    #[error("is truncated: {actual} of {expected} bytes")]
    Short {
        /// Pinned size.
        expected: u64,
        /// Bytes seen.
        actual: u64,
    },
    /// More bytes than pinned (reading stopped at the limit).
    #[error("is larger than its pinned {expected} bytes; the rest was not read")]
    Long {
        /// Pinned size or limit.
        expected: u64,
    },
}
