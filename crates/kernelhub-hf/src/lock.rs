//! Hugging Face layout dependencies in `kernels.toml` / `kernels.lock`:
//! choosing variants (shared with `kernelhub hf fetch`), locking them (the
//! commit and each chosen variant's `metadata.json` SHA-256), and fetching or
//! checking what a lock pins — offline too, since the lock pins the metadata
//! and the metadata's digest pins every file.

use kernelhub_hub::cache::FileState;
use kernelhub_hub::fetch::{Observer, Outcome, ensure_blob};
use kernelhub_hub::{Error, HubCache, HubClient, PinnedFile, hf_digest};
use kernelhub_manifest::hash::Sha256Digest;
use kernelhub_manifest::lock::{LockedHf, LockedVariant};
use kernelhub_manifest::project::{Dependency, Layout, RepoType, Revision};

use crate::metadata::MetadataError;
use crate::repo::{self, FetchedVariant, HfError, Resolved, Want};
use crate::variant::{System, rank};

/// A line for the user: a cargo-style verb and its message.
pub type Note = (&'static str, String);

/// The variants `wanted` (by name) and `targets` (the best for each) select
/// from `available`, sorted, with a note for every choice and every skip.
pub fn select_variants(
    repo: &str,
    commit: &str,
    available: &[String],
    wanted: &[String],
    targets: &[(String, System)],
) -> Result<(Vec<String>, Vec<Note>), HfError> {
    let mut chosen = Vec::new();
    let mut notes = Vec::new();
    for name in wanted {
        if !available.contains(name) {
            return Err(HfError::NoSuchVariant {
                repo: repo.to_string(),
                commit: commit.get(..12).unwrap_or(commit).to_string(),
                variant: name.clone(),
                available: available.join(", "),
            });
        }
        chosen.push(name.clone());
    }
    for (text, system) in targets {
        let verdicts = rank(available, system);
        match verdicts.first().filter(|v| v.fit.is_ok()) {
            Some(best) => {
                notes.push(("Chose", format!("{} for `{text}`", best.name)));
                chosen.push(best.name.clone());
                for other in &verdicts[1..] {
                    let reason = match &other.fit {
                        Ok(_) => format!("also loadable, but the loader prefers `{}`", best.name),
                        Err(reason) => reason.clone(),
                    };
                    notes.push(("Skipped", format!("{} for `{text}`: {reason}", other.name)));
                }
            }
            None => {
                let reasons: Vec<String> = verdicts
                    .iter()
                    .filter_map(|v| {
                        v.fit
                            .as_ref()
                            .err()
                            .map(|reason| format!("{}: {reason}", v.name))
                    })
                    .collect();
                return Err(HfError::NoVariantFits {
                    repo: repo.to_string(),
                    target: text.clone(),
                    reasons: reasons.join("\n  "),
                });
            }
        }
    }
    chosen.sort();
    chosen.dedup();
    Ok((chosen, notes))
}

/// Resolves and locks one `layout = "hf"` dependency. A `previous` entry
/// that still matches keeps its commit unless `moving`; the variants are
/// chosen again at that commit, so changed targets take effect.
pub async fn lock_dependency(
    client: &HubClient,
    dependency: &Dependency,
    default_repo_type: RepoType,
    previous: Option<&LockedHf>,
    moving: bool,
) -> Result<(LockedHf, Vec<Note>), HfError> {
    let Layout::Hf { targets, variants } = &dependency.layout else {
        return Err(HfError::BadTarget(format!(
            "`{}` is not a `layout = \"hf\"` dependency",
            dependency.name.get_ref()
        )));
    };
    let repo_type = dependency
        .repo_type
        .as_ref()
        .map_or(default_repo_type, |r| *r.get_ref());
    let targets: Vec<(String, System)> = targets
        .iter()
        .map(|t| {
            t.get_ref()
                .parse()
                .map(|s| (t.get_ref().clone(), s))
                .map_err(|e: crate::variant::TargetError| {
                    HfError::BadTarget(format!(
                        "`{}` in `kernels.toml`: {e}",
                        dependency.name.get_ref()
                    ))
                })
        })
        .collect::<Result<_, _>>()?;
    let kept = previous.filter(|p| {
        !moving && kernelhub_hub::resolve::is_current(dependency, default_repo_type, p.head())
    });
    let resolved = match kept {
        Some(p) => Resolved {
            repo: p.source().to_string(),
            reference: p.reference.clone(),
            commit: p.commit.clone(),
            redirects: Vec::new(),
        },
        None => {
            let want = match dependency.revision.get_ref() {
                Revision::MajorBranch(n) => Want::Version(*n),
                Revision::Branch(branch) => Want::Revision(branch.clone()),
                Revision::Commit(commit) => Want::Revision(commit.clone()),
                Revision::Version(_) => Want::Latest,
            };
            repo::resolve(client, repo_type, dependency.repo.get_ref(), &want).await?
        }
    };
    let mut notes: Vec<Note> = resolved
        .redirects
        .iter()
        .map(|r| ("Redirected", r.clone()))
        .collect();
    let available = repo::variants(client, repo_type, &resolved).await?;
    let names: Vec<String> = available.iter().map(|v| v.name.clone()).collect();
    let wanted: Vec<String> = variants.iter().map(|v| v.get_ref().clone()).collect();
    let (chosen, mut choice_notes) =
        select_variants(&resolved.repo, &resolved.commit, &names, &wanted, &targets)?;
    notes.append(&mut choice_notes);
    let mut locked_variants = Vec::new();
    for name in chosen {
        let (bytes, metadata) = repo::metadata(client, repo_type, &resolved, &name).await?;
        let Some(digest) = &metadata.digest else {
            return Err(HfError::Unverifiable {
                repo: resolved.repo.clone(),
                variant: name,
            });
        };
        // The file list on the Hub must equal the digest's now; later
        // fetches trust the digest alone.
        let files = &available
            .iter()
            .find(|v| v.name == name)
            .expect("chosen from the list")
            .files;
        let present: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
        digest.pins(&name, &present).map_err(MetadataError::from)?;
        // Not written to the cache: a variant folder holding only its
        // metadata would look installed to the Python loader.
        let metadata_sha256 = Sha256Digest::of(&bytes);
        // At a kept commit, a variant's metadata cannot change: if it
        // does, the Hub (or a mirror) is serving other bytes than before.
        if let Some(old) = kept.and_then(|p| p.variants.iter().find(|v| v.name == name))
            && old.metadata_sha256 != metadata_sha256
        {
            return Err(HfError::Hub(Error::Mismatch {
                repo: resolved.repo.clone(),
                file: format!("build/{name}/metadata.json"),
                commit: resolved.commit.clone(),
                problem: Box::new(kernelhub_hub::FileProblem::Hash {
                    expected: old.metadata_sha256.into(),
                    actual: metadata_sha256.into(),
                }),
            }));
        }
        locked_variants.push(LockedVariant {
            name,
            metadata_sha256,
        });
    }
    let locked = LockedHf {
        name: dependency.name.get_ref().clone(),
        redirected_to: (resolved.repo != *dependency.repo.get_ref()).then(|| resolved.repo.clone()),
        repo: dependency.repo.get_ref().clone(),
        repo_type,
        reference: resolved.reference,
        commit: resolved.commit,
        variants: locked_variants,
    };
    Ok((locked, notes))
}

/// The pins of a variant's files, from its verified `metadata.json` bytes.
fn file_pins(
    locked: &LockedHf,
    variant: &str,
    metadata: &[u8],
) -> Result<Vec<PinnedFile>, HfError> {
    hf_digest::variant_files(locked, variant, metadata).map_err(|e| HfError::Metadata(e.into()))
}

/// Fetches (or, without a client, checks) everything `locked` pins. Each
/// variant's files go in before its `metadata.json` link, as in
/// [`repo::fetch_variant`].
pub async fn fetch_locked(
    client: Option<&HubClient>,
    cache: &HubCache,
    locked: &LockedHf,
    observer: &dyn Observer,
) -> Result<Vec<FetchedVariant>, HfError> {
    let mut fetched = Vec::new();
    for variant in &locked.variants {
        let metadata_file = hf_digest::metadata_pin(locked, variant);
        // Read from the cache, or downloaded into memory and checked against
        // the lock; linked only after the variant's files are in.
        let (bytes, metadata_outcome) = match cache.read_verified(&metadata_file) {
            Ok(bytes) => (bytes, Outcome::Cached),
            Err(Error::NotCached { .. } | Error::Mismatch { .. }) if client.is_some() => {
                let resolved = Resolved {
                    repo: locked.source().to_string(),
                    reference: locked.reference.clone(),
                    commit: locked.commit.clone(),
                    redirects: Vec::new(),
                };
                let client = client.expect("checked above");
                let (bytes, _) =
                    repo::metadata(client, locked.repo_type, &resolved, &variant.name).await?;
                let actual = Sha256Digest::of(&bytes);
                metadata_file
                    .check(actual.into(), bytes.len() as u64)
                    .map_err(|problem| metadata_file.mismatch(problem))?;
                (bytes, Outcome::Downloaded)
            }
            Err(other) => return Err(other.into()),
        };
        let mut files = Vec::new();
        for file in file_pins(locked, &variant.name, &bytes)? {
            let outcome = ensure_blob(client, cache, &file, locked.repo_type, observer).await?;
            files.push((file, outcome));
        }
        if metadata_outcome == Outcome::Downloaded {
            cache.store_verified(&metadata_file, &bytes)?;
        }
        files.push((metadata_file, metadata_outcome));
        // The whole variant folder appears at once.
        let pins: Vec<PinnedFile> = files.iter().map(|(f, _)| f.clone()).collect();
        cache
            .link_folder(&format!("build/{}", variant.name), &pins)
            .map_err(Error::from)?;
        fetched.push(FetchedVariant {
            name: variant.name.clone(),
            metadata_sha256: variant.metadata_sha256,
            verified: true,
            files,
        });
    }
    cache
        .write_ref_in(
            RepoType::Kernel,
            locked.source(),
            &locked.reference,
            &locked.commit,
        )
        .map_err(Error::from)?;
    Ok(fetched)
}

/// What the cache holds for every file `locked` pins: each variant's
/// `metadata.json` (read and verified once), then the files its digest pins,
/// hashed on `threads` threads. A variant whose metadata is missing or wrong
/// reports only that: its files cannot be named.
pub fn verify_locked(
    cache: &HubCache,
    locked: &LockedHf,
    threads: usize,
) -> Result<Vec<(PinnedFile, FileState)>, HfError> {
    let mut states = Vec::new();
    let mut files = Vec::new();
    for variant in &locked.variants {
        let metadata_file = hf_digest::metadata_pin(locked, variant);
        match cache.read_verified(&metadata_file) {
            Ok(bytes) => {
                files.extend(file_pins(locked, &variant.name, &bytes)?);
                states.push((metadata_file, FileState::Verified));
            }
            Err(Error::NotCached { .. }) => states.push((metadata_file, FileState::Missing)),
            Err(Error::Mismatch { problem, .. }) => {
                states.push((metadata_file, FileState::Corrupt(*problem)))
            }
            Err(other) => return Err(other.into()),
        }
    }
    let hashed = kernelhub_hub::verify::hash_all(cache, &files, threads);
    for (file, state) in files.into_iter().zip(hashed) {
        states.push((file, state.map_err(Error::from)?));
    }
    Ok(states)
}
