//! `kernelhub fetch`: everything a lock pins, for chosen platforms, into the
//! cache — downloaded once, verified while it streams, installed atomically.
//!
//! A file already in the cache is hashed, not downloaded; a wrong one is
//! replaced. Downloads run in parallel, at most `jobs` at a time, and two
//! processes fetching the same blob serialise on its lock file, so the
//! second finds the first's verified blob and downloads nothing.

use std::io::{Seek, Write};

use futures::StreamExt;
use futures::future::join_all;
use kernelhub_manifest::KernelManifest;
use kernelhub_manifest::kernel::Dtype;
use kernelhub_manifest::lock::{LockedKernel, Lockfile};
use kernelhub_manifest::select::{Platform, select};
use kernelhub_manifest::trust::TrustPolicy;

use crate::cache::{FileState, HubCache, PinnedFile};
use crate::client::{HubClient, RemoteFile, Sink};
use crate::error::Error;

/// Which artifacts to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Platforms {
    /// Every artifact (`--all`).
    All,
    /// What these platforms would use (`--target`, or this machine's).
    These(Vec<Platform>),
}

/// How a file came to be in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It was there and verified.
    Cached,
    /// It was downloaded and verified.
    Downloaded,
}

/// Progress callbacks; the CLI draws bars with them. All do nothing by
/// default.
pub trait Observer: Sync {
    /// The artifacts are known: this many files, this many bytes in all.
    fn planned(&self, _files: usize, _bytes: u64) {}
    /// Bytes of a download arrived.
    fn received(&self, _file: &PinnedFile, _bytes: u64) {}
    /// A file is in place.
    fn finished(&self, _file: &PinnedFile, _outcome: Outcome) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl Observer for Quiet {}

/// What one kernel needed.
#[derive(Debug, Clone)]
pub struct KernelFetch {
    /// The lock entry.
    pub locked: LockedKernel,
    /// Its manifest and each chosen artifact, with how it got there.
    pub files: Vec<(PinnedFile, Outcome)>,
    /// (platform, op, dtype) that no artifact can run.
    pub uncovered: Vec<(Platform, String, Dtype)>,
}

/// The result of a fetch.
#[derive(Debug, Clone, Default)]
pub struct FetchReport {
    /// One per locked kernel, in lock order.
    pub kernels: Vec<KernelFetch>,
}

impl FetchReport {
    /// Files downloaded and their bytes.
    pub fn downloaded(&self) -> (usize, u64) {
        self.count(Outcome::Downloaded)
    }

    /// Files found verified in the cache and their bytes.
    pub fn cached(&self) -> (usize, u64) {
        self.count(Outcome::Cached)
    }

    fn count(&self, wanted: Outcome) -> (usize, u64) {
        self.kernels
            .iter()
            .flat_map(|k| &k.files)
            .filter(|(_, o)| *o == wanted)
            .fold((0, 0), |(n, b), (f, _)| {
                (n + 1, b + f.size.exact().unwrap_or(0))
            })
    }
}

/// The files besides `kernel.toml` that `platforms` need: the manifest's
/// signature when the lock records one, then the artifacts they would use;
/// and the (platform, op, dtype) nothing covers.
pub fn chosen_artifacts(
    locked: &LockedKernel,
    manifest: &KernelManifest,
    platforms: &Platforms,
) -> (Vec<PinnedFile>, Vec<(Platform, String, Dtype)>) {
    let mut indices: Vec<usize> = Vec::new();
    let mut uncovered = Vec::new();
    match platforms {
        Platforms::All => indices.extend(0..manifest.artifacts.len()),
        Platforms::These(list) => {
            for platform in list {
                let selection = select(manifest, platform);
                indices.extend(selection.chosen);
                uncovered.extend(
                    selection
                        .uncovered
                        .into_iter()
                        .map(|(op, dtype)| (platform.clone(), op, dtype)),
                );
            }
        }
    }
    indices.sort_unstable();
    indices.dedup();
    let files = PinnedFile::signature(locked)
        .into_iter()
        .chain(
            indices
                .into_iter()
                .map(|i| PinnedFile::artifact(locked, &manifest.artifacts[i])),
        )
        .collect();
    (files, uncovered)
}

/// Fetches what `lock` pins for `platforms` into `cache`. With no client
/// (offline) it only checks that everything is already there. Each
/// manifest's signature is then checked against `trust`.
pub async fn fetch(
    client: Option<&HubClient>,
    cache: &HubCache,
    lock: &Lockfile,
    trust: &TrustPolicy,
    platforms: &Platforms,
    jobs: usize,
    observer: &dyn Observer,
) -> Result<FetchReport, Error> {
    // Best effort: a read-only cache (offline use) has nothing to sweep.
    let _ = cache.sweep_scratch();
    let manifests = join_all(lock.kernels.iter().map(|locked| async move {
        let file = PinnedFile::manifest(locked);
        // A cached manifest is read (and so verified) once; only a missing
        // or wrong one goes through `ensure`.
        let (manifest, outcome) = match cache.load_manifest(locked) {
            Ok(manifest) => {
                observer.finished(&file, Outcome::Cached);
                (manifest, Outcome::Cached)
            }
            Err(Error::NotCached { .. } | Error::Mismatch { .. }) => {
                let outcome =
                    ensure(client, cache, &file, observer)
                        .await
                        .map_err(|e| match e {
                            // The hint names the dependency to re-lock.
                            Error::RevisionNotFound { repo, revision, .. } => {
                                Error::RevisionNotFound {
                                    repo,
                                    revision,
                                    name: locked.name.clone(),
                                }
                            }
                            other => other,
                        })?;
                (cache.load_manifest(locked)?, outcome)
            }
            Err(other) => return Err(other),
        };
        cache.write_ref(locked)?;
        Ok::<_, Error>((locked, manifest, (file, outcome)))
    }))
    .await;
    let mut errors = Vec::new();
    let mut kernels = Vec::new();
    let mut work = Vec::new();
    for result in manifests {
        match result {
            Ok((locked, manifest, manifest_file)) => {
                let (files, uncovered) = chosen_artifacts(locked, &manifest, platforms);
                work.extend(files.into_iter().map(|f| (kernels.len(), f)));
                kernels.push(KernelFetch {
                    locked: locked.clone(),
                    files: vec![manifest_file],
                    uncovered,
                });
            }
            Err(error) => errors.push(error),
        }
    }
    observer.planned(
        work.len(),
        work.iter().map(|(_, f)| f.size.exact().unwrap_or(0)).sum(),
    );
    let mut results = futures::stream::iter(work.into_iter().map(|(kernel, file)| async move {
        let outcome = ensure(client, cache, &file, observer).await;
        (kernel, file, outcome)
    }))
    .buffer_unordered(jobs.max(1));
    while let Some((kernel, file, outcome)) = results.next().await {
        match outcome {
            Ok(outcome) => kernels[kernel].files.push((file, outcome)),
            Err(error) => errors.push(error),
        }
    }
    for kernel in &mut kernels {
        kernel.files[1..].sort_by(|a, b| a.0.path.cmp(&b.0.path));
    }
    if errors.is_empty() {
        for kernel in &kernels {
            if let Err(error) = crate::signed::check_cached(cache, &kernel.locked, trust) {
                errors.push(error);
            }
        }
    }
    match errors.len() {
        0 => Ok(FetchReport { kernels }),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Several(errors)),
    }
}

/// Makes `file` present and verified in the cache.
pub async fn ensure(
    client: Option<&HubClient>,
    cache: &HubCache,
    file: &PinnedFile,
    observer: &dyn Observer,
) -> Result<Outcome, Error> {
    ensure_from(client, cache, file, file.repo_type, observer).await
}

/// [`ensure`], downloading through the Hub's `source` repo type when it
/// differs from the cache folder's (a mirror serving a `kernel` repo as a
/// `model` repo).
pub async fn ensure_from(
    client: Option<&HubClient>,
    cache: &HubCache,
    file: &PinnedFile,
    source: kernelhub_manifest::project::RepoType,
    observer: &dyn Observer,
) -> Result<Outcome, Error> {
    ensure_inner(client, cache, file, source, observer, true).await
}

/// [`ensure_from`] for the blob only: verified in the cache but not linked
/// into the snapshot; [`HubCache::link_folder`] links a whole folder later.
pub async fn ensure_blob(
    client: Option<&HubClient>,
    cache: &HubCache,
    file: &PinnedFile,
    source: kernelhub_manifest::project::RepoType,
    observer: &dyn Observer,
) -> Result<Outcome, Error> {
    ensure_inner(client, cache, file, source, observer, false).await
}

async fn ensure_inner(
    client: Option<&HubClient>,
    cache: &HubCache,
    file: &PinnedFile,
    source: kernelhub_manifest::project::RepoType,
    observer: &dyn Observer,
    link: bool,
) -> Result<Outcome, Error> {
    let state = if link {
        blocking(cache, file, |cache, file| cache.state(file)).await?
    } else if blocking(cache, file, |cache, file| cache.blob_verified(file)).await? {
        FileState::Verified
    } else {
        FileState::Missing
    };
    if state == FileState::Verified {
        observer.finished(file, Outcome::Cached);
        return Ok(Outcome::Cached);
    }
    let Some(client) = client else {
        return Err(match state {
            FileState::Corrupt(problem) => file.mismatch(problem),
            _ => Error::NotCached {
                repo: file.repo.clone(),
                file: file.path.clone(),
                commit: file.commit.clone(),
                cache: cache.root().to_path_buf(),
            },
        });
    };
    let lock = blocking(cache, file, |cache, file| cache.lock_blob(file)).await?;
    if blocking(cache, file, |cache, file| cache.blob_verified(file)).await? {
        // Another process wrote it while this one waited for the lock.
        if link {
            blocking(cache, file, |cache, file| cache.link_snapshot(file)).await?;
        }
        drop(lock);
        observer.finished(file, Outcome::Cached);
        return Ok(Outcome::Cached);
    }
    let mut written = BlobSink {
        file: cache.blob_writer(file)?,
        pinned: file,
        observer,
    };
    let remote = RemoteFile {
        repo_type: source,
        repo: &file.repo,
        revision: &file.commit,
        path: &file.path,
    };
    let (digest, length) = client
        .download(
            &remote,
            file.checksum.algorithm(),
            file.limit(),
            &mut written,
        )
        .await?;
    let written = written.file;
    file.check(digest, length).map_err(|p| file.mismatch(p))?;
    let written = written.into_temp_path();
    blocking(cache, file, move |cache, file| {
        std::fs::File::open(&written)?.sync_all()?;
        if link {
            cache.install(file, written)
        } else {
            cache.store_blob(file, written)
        }
    })
    .await?;
    drop(lock);
    observer.finished(file, Outcome::Downloaded);
    Ok(Outcome::Downloaded)
}

/// Writes a download into its blob's temporary file, reporting progress.
struct BlobSink<'a> {
    file: tempfile::NamedTempFile,
    pinned: &'a PinnedFile,
    observer: &'a dyn Observer,
}

impl Sink for BlobSink<'_> {
    fn restart(&mut self) -> std::io::Result<()> {
        self.file.as_file().set_len(0)?;
        self.file.rewind()
    }
    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.observer.received(self.pinned, chunk.len() as u64);
        self.file.write_all(chunk)
    }
}

/// Runs file work (hashing, waiting for a lock) off the async threads.
async fn blocking<T: Send + 'static>(
    cache: &HubCache,
    file: &PinnedFile,
    work: impl FnOnce(&HubCache, &PinnedFile) -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let (cache, file) = (cache.clone(), file.clone());
    tokio::task::spawn_blocking(move || work(&cache, &file))
        .await
        .map_err(std::io::Error::other)?
}
