//! `kernelhub lock`: from the requirements in `kernels.toml` to the commits
//! and manifest hashes in `kernels.lock`.
//!
//! A semver requirement picks the highest matching `vX.Y.Z` tag;
//! `version = N` follows the `vN` branch (the Hugging Face kernels
//! convention); a branch follows its head; a commit is taken as it is. The
//! manifest at the chosen commit is downloaded, hashed, parsed (a lock to a
//! broken manifest would be useless) and kept in the cache, so the `fetch`
//! that usually follows does not download it again.
//!
//! Where the `[trust]` policy asks for a signature, `kernel.toml.minisig` is
//! downloaded too, checked against the trusted keys and recorded
//! (`signed_by`, `signature_sha256`); a manifest the policy refuses is never
//! locked.
//!
//! An existing lock is honoured: an entry whose repo and requirement still
//! agree with `kernels.toml`, and whose recorded signature the policy still
//! accepts, is kept exactly, unless `--update` names it.

use futures::future::join_all;
use kernelhub_manifest::hash::Sha256Digest;
use kernelhub_manifest::lock::{LockHead, LockedHf, LockedKernel, LockedSignature, Lockfile};
use kernelhub_manifest::project::{Dependency, Layout, ProjectManifest, RepoType, Revision};
use kernelhub_manifest::trust::{MAX_SIGNATURE_SIZE, SIGNATURE_FILE, TrustPolicy};

use crate::cache::{HubCache, MANIFEST, PinnedFile, Size, parse_manifest};
use crate::checksum::Algorithm;
use crate::client::{HubClient, Refs, RemoteFile};
use crate::error::Error;

/// Which locked entries `kernelhub lock` may move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Only entries that no longer match `kernels.toml`.
    Stale,
    /// Every entry (`--update`).
    All,
    /// These entries, plus stale ones (`--update NAME`).
    Only(Vec<String>),
}

/// Whether a lock entry still agrees with its dependency in `kernels.toml`:
/// same name, repo and repo type, and a requirement its ref satisfies.
pub fn is_current(
    dependency: &Dependency,
    default_repo_type: RepoType,
    entry: LockHead<'_>,
) -> bool {
    let repo_type = dependency
        .repo_type
        .as_ref()
        .map_or(default_repo_type, |r| *r.get_ref());
    entry.name == dependency.name.get_ref()
        && entry.repo == dependency.repo.get_ref()
        && entry.repo_type == repo_type
        && (entry.redirected
            || dependency
                .revision
                .get_ref()
                .is_satisfied_by(entry.reference, entry.commit))
}

/// The names whose lock entries are missing, extra, or no longer current.
pub fn stale_entries(
    project: &ProjectManifest,
    default_repo_type: RepoType,
    lock: &Lockfile,
) -> Vec<String> {
    let mut stale: Vec<String> = project
        .dependencies
        .iter()
        .filter(|d| {
            let mut entries: Box<dyn Iterator<Item = LockHead<'_>>> = match d.layout {
                Layout::Kernelhub => Box::new(lock.kernels.iter().map(LockedKernel::head)),
                Layout::Hf { .. } => Box::new(lock.hf.iter().map(LockedHf::head)),
            };
            !entries.any(|k| is_current(d, default_repo_type, k))
        })
        .map(|d| d.name.get_ref().clone())
        .collect();
    stale.extend(
        lock.heads()
            .filter(|k| {
                !project
                    .dependencies
                    .iter()
                    .any(|d| d.name.get_ref() == k.name)
            })
            .map(|k| k.name.to_string()),
    );
    stale
}

/// The existing entry, if it can stay as it is.
fn keep<'a>(
    dependency: &Dependency,
    default_repo_type: RepoType,
    trust: &TrustPolicy,
    previous: Option<&'a Lockfile>,
    update: &Update,
) -> Option<&'a LockedKernel> {
    let moving = match update {
        Update::Stale => false,
        Update::All => true,
        Update::Only(names) => names.contains(dependency.name.get_ref()),
    };
    let entry = previous?
        .kernels
        .iter()
        .find(|k| k.name == *dependency.name.get_ref())?;
    (is_current(dependency, default_repo_type, entry.head())
        && still_trusted(entry, trust)
        && !moving)
        .then_some(entry)
}

/// Whether the signature a lock entry records satisfies `trust` today: a key
/// removed from the policy, or a signature newly required, moves the entry.
fn still_trusted(entry: &LockedKernel, trust: &TrustPolicy) -> bool {
    match (trust.keys_for(&entry.repo), entry.signature) {
        (Some((_, keys)), Some(signature)) => keys.iter().any(|k| k.id == signature.key),
        (Some(_), None) => false,
        (None, _) => !trust.require_signatures,
    }
}

/// Resolves every dependency of `project`, keeping what `previous` allows.
pub async fn lock(
    client: &HubClient,
    cache: &HubCache,
    project: &ProjectManifest,
    default_repo_type: RepoType,
    previous: Option<&Lockfile>,
    update: &Update,
) -> Result<Lockfile, Error> {
    if let Update::Only(names) = update
        && let Some(unknown) = names
            .iter()
            .find(|n| !project.dependencies.iter().any(|d| d.name.get_ref() == *n))
    {
        return Err(Error::NotLocked(unknown.clone()));
    }
    // Hugging Face layout dependencies are locked by `kernelhub-hf`.
    let native = project
        .dependencies
        .iter()
        .filter(|d| d.layout == Layout::Kernelhub);
    let jobs = native.map(|dependency| async move {
        let repo_type = dependency
            .repo_type
            .as_ref()
            .map_or(default_repo_type, |r| *r.get_ref());
        if let Some(entry) = keep(
            dependency,
            default_repo_type,
            &project.trust,
            previous,
            update,
        ) {
            return Ok(entry.clone());
        }
        resolve_one(client, cache, dependency, repo_type, &project.trust).await
    });
    let mut kernels = Vec::new();
    let mut errors = Vec::new();
    for outcome in join_all(jobs).await {
        match outcome {
            Ok(kernel) => kernels.push(kernel),
            Err(error) => errors.push(error),
        }
    }
    match errors.len() {
        0 => Ok(Lockfile {
            kernels,
            hf: Vec::new(),
        }),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Several(errors)),
    }
}

async fn resolve_one(
    client: &HubClient,
    cache: &HubCache,
    dependency: &Dependency,
    repo_type: RepoType,
    trust: &TrustPolicy,
) -> Result<LockedKernel, Error> {
    let name = dependency.name.get_ref();
    let repo = dependency.repo.get_ref();
    let (reference, commit) = match dependency.revision.get_ref() {
        Revision::Commit(commit) => (commit.clone(), commit.clone()),
        revision => pick(name, repo, revision, &client.refs(repo_type, repo).await?)?,
    };
    // The commit becomes a directory name in the cache: trust only its shape.
    if !kernelhub_manifest::project::is_commit(&commit) {
        return Err(Error::Http {
            what: format!("the tags and branches of `{repo}`"),
            message: format!(
                "the Hub named `{commit}` as the commit of `{reference}`, which is not a 40-hex commit id"
            ),
        });
    }
    let mut bytes = Vec::new();
    let remote = RemoteFile {
        repo_type,
        repo,
        revision: &commit,
        path: MANIFEST,
    };
    let downloaded = client
        .download(
            &remote,
            Algorithm::Sha256,
            kernelhub_manifest::MAX_FILE_SIZE,
            &mut bytes,
        )
        .await;
    let (digest, _) = downloaded.map_err(|e| match e {
        Error::RevisionNotFound { repo, revision, .. } => Error::RevisionNotFound {
            repo,
            revision,
            name: name.clone(),
        },
        other => other,
    })?;
    let pinned = PinnedFile {
        repo_type,
        repo: repo.clone(),
        commit: commit.clone(),
        path: MANIFEST.to_string(),
        checksum: digest,
        size: Size::Manifest,
    };
    parse_manifest(&bytes, &pinned)?;
    let signature = if trust.requires_signature(repo) {
        let mut signature_bytes = Vec::new();
        let remote = RemoteFile {
            repo_type,
            repo,
            revision: &commit,
            path: SIGNATURE_FILE,
        };
        // Asked through the API first: a Hub may answer a missing file with
        // an error that is not a 404 (olah says 500), and a missing
        // signature is an answer, not a failure.
        let signature = if client
            .has_root_file(repo_type, repo, &commit, SIGNATURE_FILE)
            .await?
        {
            client
                .download(
                    &remote,
                    Algorithm::Sha256,
                    MAX_SIGNATURE_SIZE,
                    &mut signature_bytes,
                )
                .await?;
            Some(signature_bytes)
        } else {
            None
        };
        match (trust.check(repo, &bytes, signature.as_deref())?, signature) {
            (Some(key), Some(signature_bytes)) => {
                let sha256 = Sha256Digest::of(&signature_bytes);
                let file = PinnedFile {
                    repo_type,
                    repo: repo.clone(),
                    commit: commit.clone(),
                    path: SIGNATURE_FILE.to_string(),
                    checksum: crate::checksum::Checksum::Sha256(sha256),
                    size: Size::Manifest,
                };
                cache.install_verified(&file, &signature_bytes)?;
                Some(LockedSignature { key, sha256 })
            }
            _ => None,
        }
    } else {
        None
    };
    cache.install_verified(&pinned, &bytes)?;
    let locked = LockedKernel {
        name: name.clone(),
        repo: repo.clone(),
        repo_type,
        reference,
        commit,
        manifest_sha256: Sha256Digest::of(&bytes),
        signature,
    };
    cache.write_ref(&locked)?;
    Ok(locked)
}

/// Picks the ref a requirement resolves to: `(reference, commit)`.
pub fn pick(
    name: &str,
    repo: &str,
    revision: &Revision,
    refs: &Refs,
) -> Result<(String, String), Error> {
    let unsatisfiable = |available: String| Error::Unsatisfiable {
        name: name.to_string(),
        repo: repo.to_string(),
        requirement: revision.to_string(),
        available,
    };
    let major_branches = || {
        let names: Vec<&str> = refs
            .branches
            .iter()
            .map(|b| b.name.as_str())
            .filter(|b| {
                b.strip_prefix('v')
                    .is_some_and(|n| n.parse::<u64>().is_ok())
            })
            .collect();
        names
    };
    match revision {
        Revision::Version(req) => {
            let best = refs
                .tags
                .iter()
                .filter_map(|t| {
                    let version = semver::Version::parse(t.name.strip_prefix('v')?).ok()?;
                    req.matches(&version).then_some((version, t))
                })
                .max_by(|a, b| a.0.cmp(&b.0));
            match best {
                Some((_, tag)) => Ok((tag.name.clone(), tag.commit.clone())),
                None => {
                    let tags: Vec<&str> = refs
                        .tags
                        .iter()
                        .map(|t| t.name.as_str())
                        .filter(|t| t.starts_with('v'))
                        .collect();
                    let mut available = format!(
                        "\n  the repo's version tags: {}",
                        if tags.is_empty() {
                            "none".to_string()
                        } else {
                            tags.join(", ")
                        }
                    );
                    let branches = major_branches();
                    if !branches.is_empty() {
                        available += &format!(
                            "\n  hint: it has version branches ({}); follow one with `version = N` (an integer)",
                            branches.join(", ")
                        );
                    }
                    Err(unsatisfiable(available))
                }
            }
        }
        Revision::MajorBranch(major) => find_branch(refs, &format!("v{major}")).ok_or_else(|| {
            let branches = major_branches();
            unsatisfiable(format!(
                "\n  the repo's version branches: {}",
                if branches.is_empty() {
                    "none".to_string()
                } else {
                    branches.join(", ")
                }
            ))
        }),
        Revision::Branch(branch) => find_branch(refs, branch)
            .ok_or_else(|| unsatisfiable(format!("\n  the repo has no branch `{branch}`"))),
        Revision::Commit(commit) => Ok((commit.clone(), commit.clone())),
    }
}

fn find_branch(refs: &Refs, branch: &str) -> Option<(String, String)> {
    refs.branches
        .iter()
        .find(|b| b.name == branch)
        .map(|b| (b.name.clone(), b.commit.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Ref;

    fn refs() -> Refs {
        let r = |name: &str, c: char| Ref {
            name: name.into(),
            commit: c.to_string().repeat(40),
        };
        Refs {
            tags: vec![
                r("v1.0.0", 'a'),
                r("v1.1.0", 'b'),
                r("v2.0.0", 'c'),
                r("v2.1.0-rc.1", 'd'),
                r("nightly", 'e'),
            ],
            branches: vec![r("main", 'f'), r("v1", '1'), r("v2", '2')],
        }
    }

    fn resolve(revision: Revision) -> Result<(String, String), Error> {
        pick("k", "acme/k", &revision, &refs())
    }

    #[test]
    fn highest_matching_tag_wins_and_prereleases_need_asking() {
        let req = |r: &str| Revision::Version(semver::VersionReq::parse(r).unwrap());
        assert_eq!(resolve(req("^1")).unwrap().0, "v1.1.0");
        assert_eq!(
            resolve(req("=1.0.0")).unwrap(),
            ("v1.0.0".into(), "a".repeat(40))
        );
        assert_eq!(resolve(req(">=1")).unwrap().0, "v2.0.0");
        assert_eq!(resolve(req(">=2.1.0-rc.1")).unwrap().0, "v2.1.0-rc.1");
    }

    #[test]
    fn branches_and_version_branches() {
        assert_eq!(
            resolve(Revision::MajorBranch(2)).unwrap(),
            ("v2".into(), "2".repeat(40))
        );
        assert_eq!(
            resolve(Revision::Branch("main".into())).unwrap().1,
            "f".repeat(40)
        );
        let missing = resolve(Revision::MajorBranch(3)).unwrap_err().to_string();
        assert!(
            missing.contains("branch `v3`") && missing.contains("v1, v2"),
            "{missing}"
        );
    }

    #[test]
    fn an_unsatisfiable_requirement_lists_what_exists() {
        let req = Revision::Version(semver::VersionReq::parse("^3").unwrap());
        let message = resolve(req).unwrap_err().to_string();
        assert!(message.contains("v1.0.0, v1.1.0, v2.0.0"), "{message}");
        assert!(message.contains("`version = N`"), "{message}");
    }
}
