//! A Hugging Face kernel repo on the Hub: its versions, its variants, its
//! redirects, and fetching chosen variants into the Hub cache.
//!
//! Variants are cached under `kernels--<owner>--<name>` whatever repo type
//! the Hub serves them as (a mirror may only know `model`), because that is
//! the folder the Python `kernels` package reads; `refs/<vN or branch>` is
//! written too, since the package resolves `version=N` offline through it.
//! `metadata.json` is downloaded first and hashed; with a digest, every file
//! is pinned by it and verified while it streams, and the variant's file
//! list must equal the digest's. Without a digest nothing is fetched unless
//! the caller allows unverified files.

use kernelhub_hub::cache::{FileState, Size};
use kernelhub_hub::fetch::{Observer, Outcome, ensure_blob};
use kernelhub_hub::{
    Algorithm, Checksum, Error, HubCache, HubClient, PinnedFile, client::RemoteFile,
};
use kernelhub_manifest::project::RepoType;

use crate::metadata::{Metadata, MetadataError};

/// The most redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;
/// Largest `metadata.json` / `kernel-status.toml` accepted.
const MAX_SMALL_FILE: u64 = 16 << 20;

/// Which revision of a repo: `@vN`, `@<branch, tag or commit>`, or (none)
/// the highest `vN` branch, else `main`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// The `vN` branch.
    Version(u64),
    /// A branch, tag or commit.
    Revision(String),
    /// The highest `vN` branch, else `main`.
    Latest,
}

impl Want {
    /// Splits `owner/name[@vN|@rev]`.
    pub fn split(spec: &str) -> (&str, Want) {
        match spec.split_once('@') {
            None => (spec, Want::Latest),
            Some((repo, rev)) => match rev.strip_prefix('v').and_then(|n| n.parse().ok()) {
                Some(n) => (repo, Want::Version(n)),
                None => (repo, Want::Revision(rev.to_string())),
            },
        }
    }
}

/// A repo resolved to a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The repo finally read, after redirects.
    pub repo: String,
    /// The branch, tag or commit it went through.
    pub reference: String,
    /// The 40-hex commit.
    pub commit: String,
    /// `from → to@revision`, one per redirect followed.
    pub redirects: Vec<String>,
}

/// One variant folder and its files (paths relative to the folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantFiles {
    /// The folder name under `build/`.
    pub name: String,
    /// Relative path and size of each file.
    pub files: Vec<(String, u64)>,
}

/// What fetching one variant did.
#[derive(Debug, Clone)]
pub struct FetchedVariant {
    /// The folder name.
    pub name: String,
    /// SHA-256 of its `metadata.json`, the pin a lock would record.
    pub metadata_sha256: kernelhub_manifest::hash::Sha256Digest,
    /// Whether every file was verified against a digest.
    pub verified: bool,
    /// Files and how each got into the cache.
    pub files: Vec<(PinnedFile, Outcome)>,
}

/// Why a repo cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HfError {
    /// From the Hub or the cache.
    #[error(transparent)]
    Hub(#[from] Error),
    /// A bad `metadata.json` or file list.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// No `vN` branch (or branch) as asked.
    #[error("`{repo}` has no {wanted}; it has {available}")]
    NoSuchVersion {
        /// The repo.
        repo: String,
        /// What was asked.
        wanted: String,
        /// Its version branches.
        available: String,
    },
    /// A variant asked for by name does not exist.
    #[error("`{repo}` at {commit} has no variant `{variant}`; it has: {available}")]
    NoSuchVariant {
        /// The repo.
        repo: String,
        /// Commit.
        commit: String,
        /// Asked for.
        variant: String,
        /// What exists.
        available: String,
    },
    /// A variant without a digest, not allowed.
    #[error(
        "variant `{variant}` of `{repo}` has no digest in its `metadata.json`, so its files cannot be verified\n  hint: pass `--allow-unverified` to fetch it anyway (its files are then trusted on first download)"
    )]
    Unverifiable {
        /// The repo.
        repo: String,
        /// The variant.
        variant: String,
    },
    /// No variant loads on a target.
    #[error("no variant of `{repo}` loads on `{target}`:\n  {reasons}")]
    NoVariantFits {
        /// The repo.
        repo: String,
        /// The target as written.
        target: String,
        /// One line per variant.
        reasons: String,
    },
    /// A target or dependency that cannot be used.
    #[error("{0}")]
    BadTarget(String),
    /// `kernel-status.toml` that cannot be followed.
    #[error("`kernel-status.toml` of `{repo}` is not usable: {reason}")]
    BadStatus {
        /// The repo.
        repo: String,
        /// Why.
        reason: String,
    },
}

/// The `vN` branches of `repo`, highest first, with their commits.
pub async fn versions(
    client: &HubClient,
    repo_type: RepoType,
    repo: &str,
) -> Result<Vec<(u64, String)>, HfError> {
    let refs = client.refs(repo_type, repo).await?;
    let mut versions: Vec<(u64, String)> = refs
        .branches
        .iter()
        .filter_map(|b| Some((b.name.strip_prefix('v')?.parse().ok()?, b.commit.clone())))
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    Ok(versions)
}

/// Downloads a small file into memory; `None` if the repo has no such file.
async fn small_file(
    client: &HubClient,
    repo_type: RepoType,
    repo: &str,
    commit: &str,
    path: &str,
) -> Result<Option<Vec<u8>>, Error> {
    let mut bytes = Vec::new();
    let remote = RemoteFile {
        repo_type,
        repo,
        revision: commit,
        path,
    };
    match client
        .download(&remote, Algorithm::Sha256, MAX_SMALL_FILE, &mut bytes)
        .await
    {
        Ok(_) => Ok(Some(bytes)),
        // Some mirrors answer "no repo" for a missing file; the repo's refs
        // were just read, so either way the file is absent.
        Err(Error::FileNotFound { .. } | Error::RepoNotFound { .. }) => Ok(None),
        Err(other) => Err(other),
    }
}

/// Resolves `want` to a commit, following `kernel-status.toml` redirects.
pub async fn resolve(
    client: &HubClient,
    repo_type: RepoType,
    repo: &str,
    want: &Want,
) -> Result<Resolved, HfError> {
    let mut repo = repo.to_string();
    let mut want = want.clone();
    let mut redirects = Vec::new();
    loop {
        let refs = client.refs(repo_type, &repo).await?;
        let branch = |name: &str| {
            refs.branches
                .iter()
                .chain(&refs.tags)
                .find(|r| r.name == name)
                .map(|r| r.commit.clone())
        };
        let version_list = || {
            let mut list: Vec<u64> = refs
                .branches
                .iter()
                .filter_map(|b| b.name.strip_prefix('v')?.parse().ok())
                .collect();
            list.sort_unstable();
            let names: Vec<String> = list.iter().map(|n| format!("v{n}")).collect();
            if names.is_empty() {
                "no version branches".to_string()
            } else {
                names.join(", ")
            }
        };
        let (reference, commit) = match &want {
            Want::Version(n) => {
                let name = format!("v{n}");
                let commit = branch(&name).ok_or_else(|| HfError::NoSuchVersion {
                    repo: repo.clone(),
                    wanted: format!("version branch `{name}`"),
                    available: version_list(),
                })?;
                (name, commit)
            }
            Want::Revision(rev) if kernelhub_manifest::project::is_commit(rev) => {
                (rev.clone(), rev.clone())
            }
            Want::Revision(rev) => {
                let commit = branch(rev).ok_or_else(|| HfError::NoSuchVersion {
                    repo: repo.clone(),
                    wanted: format!("branch or tag `{rev}`"),
                    available: version_list(),
                })?;
                (rev.clone(), commit)
            }
            Want::Latest => {
                let highest = refs
                    .branches
                    .iter()
                    .filter_map(|b| Some((b.name.strip_prefix('v')?.parse::<u64>().ok()?, b)))
                    .max_by_key(|(n, _)| *n);
                match highest {
                    Some((_, b)) => (b.name.clone(), b.commit.clone()),
                    None => (
                        "main".to_string(),
                        branch("main").ok_or_else(|| HfError::NoSuchVersion {
                            repo: repo.clone(),
                            wanted: "version branch or `main`".into(),
                            available: version_list(),
                        })?,
                    ),
                }
            }
        };
        if !kernelhub_manifest::project::is_commit(&commit) {
            return Err(HfError::BadStatus {
                repo,
                reason: format!("the Hub named `{commit}` as a commit"),
            });
        }
        let status = if client
            .has_root_file(repo_type, &repo, &commit, "kernel-status.toml")
            .await?
        {
            small_file(client, repo_type, &repo, &commit, "kernel-status.toml").await?
        } else {
            None
        };
        let Some(status) = status else {
            return Ok(Resolved {
                repo,
                reference,
                commit,
                redirects,
            });
        };
        let bad = |reason: String| HfError::BadStatus {
            repo: repo.clone(),
            reason,
        };
        let text = String::from_utf8(status).map_err(|_| bad("not UTF-8".into()))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| bad(e.message().to_string()))?;
        let field = |key: &str| table.get(key).and_then(|v| v.as_str()).map(str::to_string);
        if field("kind").as_deref() != Some("redirect") {
            return Err(bad(format!(
                "`kind` is {:?}; only \"redirect\" is known",
                field("kind")
            )));
        }
        let destination =
            field("destination").ok_or_else(|| bad("`destination` is missing".into()))?;
        if !kernelhub_manifest::project::is_repo_id(&destination) {
            return Err(bad(format!(
                "`destination` `{destination}` is not a repo id"
            )));
        }
        let revision = field("revision").unwrap_or_else(|| "main".into());
        if redirects.len() >= MAX_REDIRECTS {
            return Err(bad(format!("more than {MAX_REDIRECTS} redirects")));
        }
        redirects.push(format!("{repo} → {destination}@{revision}"));
        repo = destination;
        want = match revision.strip_prefix('v').and_then(|n| n.parse().ok()) {
            Some(n) => Want::Version(n),
            None => Want::Revision(revision),
        };
    }
}

/// Whether a folder name under `build/` is one kernelhub will handle: a
/// single plain component (letters, digits, `-`, `_`, `.`, not dot-led).
pub fn is_variant_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The variant folders under `build/` at the resolved commit.
pub async fn variants(
    client: &HubClient,
    repo_type: RepoType,
    resolved: &Resolved,
) -> Result<Vec<VariantFiles>, HfError> {
    let files = client
        .tree(repo_type, &resolved.repo, &resolved.commit, "build")
        .await?;
    let mut variants: Vec<VariantFiles> = Vec::new();
    for (path, size) in files {
        let Some((name, rest)) = path.strip_prefix("build/").and_then(|p| p.split_once('/')) else {
            continue;
        };
        // The name becomes a folder in the cache: only plain names.
        if !is_variant_name(name) {
            continue;
        }
        match variants.iter_mut().find(|v| v.name == name) {
            Some(variant) => variant.files.push((rest.to_string(), size)),
            None => variants.push(VariantFiles {
                name: name.to_string(),
                files: vec![(rest.to_string(), size)],
            }),
        }
    }
    variants.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(variants)
}

/// Downloads and parses a variant's `metadata.json`; returns its bytes too.
pub async fn metadata(
    client: &HubClient,
    repo_type: RepoType,
    resolved: &Resolved,
    variant: &str,
) -> Result<(Vec<u8>, Metadata), HfError> {
    let path = format!("build/{variant}/metadata.json");
    let bytes = small_file(client, repo_type, &resolved.repo, &resolved.commit, &path)
        .await?
        .ok_or_else(|| Error::FileNotFound {
            repo: resolved.repo.clone(),
            revision: resolved.commit.clone(),
            file: path.clone(),
        })?;
    let metadata = Metadata::parse(&bytes, &path)?;
    Ok((bytes, metadata))
}

/// Fetches one variant into `cache`: every file verified against the
/// digest in `metadata.json` (or, with `allow_unverified` and no digest,
/// trusted on first download) into its blob, then the variant folder is
/// linked in one step. On failure nothing new is visible.
pub async fn fetch_variant(
    client: &HubClient,
    cache: &HubCache,
    repo_type: RepoType,
    resolved: &Resolved,
    variant: &VariantFiles,
    allow_unverified: bool,
    observer: &dyn Observer,
) -> Result<FetchedVariant, HfError> {
    let (bytes, metadata) = metadata(client, repo_type, resolved, &variant.name).await?;
    let pin = |path: String, checksum: Checksum, size: Size| PinnedFile {
        repo_type: RepoType::Kernel,
        repo: resolved.repo.clone(),
        commit: resolved.commit.clone(),
        path,
        checksum,
        size,
    };
    let metadata_sha256 = kernelhub_manifest::hash::Sha256Digest::of(&bytes);
    let metadata_file = pin(
        format!("build/{}/metadata.json", variant.name),
        metadata_sha256.into(),
        Size::Exact(bytes.len() as u64),
    );
    let mut files = Vec::new();
    let present: Vec<String> = variant.files.iter().map(|(p, _)| p.clone()).collect();
    let size_of = |path: &str| {
        variant
            .files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, s)| *s)
    };
    let verified = metadata.digest.is_some();
    // Blobs first, each verified; nothing is linked until all are in.
    match &metadata.digest {
        Some(digest) => {
            for (path, checksum) in digest
                .pins(&variant.name, &present)
                .map_err(MetadataError::from)?
            {
                let file = pin(
                    format!("build/{}/{path}", variant.name),
                    checksum,
                    size_of(&path).map_or(Size::Unsized, Size::Exact),
                );
                let outcome = ensure_blob(Some(client), cache, &file, repo_type, observer).await?;
                files.push((file, outcome));
            }
        }
        None if allow_unverified => {
            for (path, size) in variant
                .files
                .iter()
                .filter(|(p, _)| kernelhub_hub::hf_digest::is_digested(p))
            {
                let full = format!("build/{}/{path}", variant.name);
                let mut bytes = Vec::new();
                let remote = RemoteFile {
                    repo_type,
                    repo: &resolved.repo,
                    revision: &resolved.commit,
                    path: &full,
                };
                let (checksum, length) = client
                    .download(&remote, Algorithm::Sha256, *size, &mut bytes)
                    .await?;
                let file = pin(full, checksum, Size::Exact(length));
                cache.store_verified(&file, &bytes)?;
                files.push((file, Outcome::Downloaded));
            }
        }
        None => {
            return Err(HfError::Unverifiable {
                repo: resolved.repo.clone(),
                variant: variant.name.clone(),
            });
        }
    }
    let outcome = if cache.state(&metadata_file).map_err(Error::from)? == FileState::Verified {
        Outcome::Cached
    } else {
        Outcome::Downloaded
    };
    cache.store_verified(&metadata_file, &bytes)?;
    files.push((metadata_file, outcome));
    // The whole variant folder appears at once (the Python loader picks a
    // variant by its folder alone).
    let pins: Vec<PinnedFile> = files.iter().map(|(f, _)| f.clone()).collect();
    cache
        .link_folder(&format!("build/{}", variant.name), &pins)
        .map_err(Error::from)?;
    cache
        .write_ref_in(
            RepoType::Kernel,
            &resolved.repo,
            &resolved.reference,
            &resolved.commit,
        )
        .map_err(Error::from)?;
    Ok(FetchedVariant {
        name: variant.name.clone(),
        metadata_sha256,
        verified,
        files,
    })
}
