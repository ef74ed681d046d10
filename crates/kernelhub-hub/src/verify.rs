//! `kernelhub verify`: re-hash what a lock pins in the cache, on every core.
//!
//! Manifests are checked first (an artifact's pin comes from its verified
//! manifest); then every artifact the chosen platforms use is hashed, the
//! files shared out among threads. Nothing is changed: `--repair` is a
//! `fetch` of what this reports.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use kernelhub_manifest::lock::Lockfile;

use crate::cache::{FileState, HubCache, PinnedFile};
use crate::error::{Error, FileProblem};
use crate::fetch::{Platforms, chosen_artifacts};

/// What the cache holds for a lock.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Files present and matching.
    pub verified: Vec<PinnedFile>,
    /// Files not in the cache.
    pub missing: Vec<PinnedFile>,
    /// Files present but wrong.
    pub corrupt: Vec<(PinnedFile, FileProblem)>,
}

impl VerifyReport {
    /// Whether everything verified.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.corrupt.is_empty()
    }

    /// Files `file` under its state.
    pub fn record(&mut self, file: PinnedFile, state: FileState) {
        match state {
            FileState::Verified => self.verified.push(file),
            FileState::Missing => self.missing.push(file),
            FileState::Corrupt(problem) => self.corrupt.push((file, problem)),
        }
    }
}

/// Checks every file `lock` pins for `platforms`, using `threads` threads.
pub fn verify(
    cache: &HubCache,
    lock: &Lockfile,
    platforms: &Platforms,
    threads: usize,
) -> Result<VerifyReport, Error> {
    let mut report = VerifyReport::default();
    let mut artifacts = Vec::new();
    for locked in &lock.kernels {
        // Loading a manifest verifies it; its artifacts are then hashed in parallel.
        let file = PinnedFile::manifest(locked);
        match cache.load_manifest(locked) {
            Ok(manifest) => {
                artifacts.extend(chosen_artifacts(locked, &manifest, platforms).0);
                report.record(file, FileState::Verified);
            }
            Err(Error::NotCached { .. }) => report.record(file, FileState::Missing),
            Err(Error::Mismatch { problem, .. }) => {
                report.record(file, FileState::Corrupt(*problem))
            }
            Err(other) => return Err(other),
        }
    }
    for (file, state) in artifacts.iter().zip(hash_all(cache, &artifacts, threads)) {
        report.record(file.clone(), state?);
    }
    Ok(report)
}

/// The state of each file, hashed in parallel; results in input order.
pub fn hash_all(
    cache: &HubCache,
    files: &[PinnedFile],
    threads: usize,
) -> Vec<std::io::Result<FileState>> {
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<std::io::Result<FileState>>>> =
        files.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, files.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = files.get(i) else { break };
                    let state = cache.state(file);
                    *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| Err(std::io::Error::other("file was not hashed")))
        })
        .collect()
}
