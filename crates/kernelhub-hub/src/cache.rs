//! The standard Hub cache layout, written only with verified bytes.
//!
//! ```text
//! <cache>/
//! ├── CACHEDIR.TAG
//! ├── .locks/<repo-folder>/<sha256>.lock     one writer per blob, across processes
//! └── <kernels|models>--<owner>--<name>/      the repo folder
//!     ├── blobs/<sha256>                      content, named by its SHA-256
//!     ├── refs/<tag or branch>                the commit it resolved to
//!     └── snapshots/<commit>/<path>           relative symlink to the blob
//! ```
//!
//! This is the layout the Python `huggingface_hub` reads and writes, so its
//! `hf_hub_download(..., local_files_only=True)` finds what kernelhub wrote,
//! and kernelhub reads what `hf download` wrote (it always reaches a file
//! through `snapshots/`, so blob names do not matter to it). kernelhub names
//! its blobs by SHA-256 because it knows that hash before downloading; the
//! Hub names Git LFS blobs the same way.
//!
//! A blob is written to `<sha256>.<random>.incomplete` in the same
//! directory, hashed while it is written, checked against the pinned size
//! and hash, then renamed into place; the snapshot link is created under a
//! temporary name and renamed too. A crash at any point leaves either the old
//! state or the new one, plus at worst an `.incomplete` file that the next
//! writer of that blob removes. Reads for loading hash the very bytes they
//! return, so nothing unverified reaches a caller.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use fs_err as fs;
use kernelhub_manifest::kernel::Artifact;
use kernelhub_manifest::lock::LockedKernel;
use kernelhub_manifest::project::{RepoType, is_commit, is_repo_id};
use kernelhub_manifest::validate::{check_relative_path, validate};
use kernelhub_manifest::{KernelManifest, MAX_FILE_SIZE, Strictness};

use crate::checksum::{Algorithm, Checksum, Hasher};
use crate::error::{Error, FileProblem};

/// The largest file accepted whose size is not pinned (only its digest).
pub const MAX_UNSIZED_FILE: u64 = 16 << 30;

/// The name of the manifest at a kernel repo's root.
pub const MANIFEST: &str = "kernel.toml";

/// What a pin says about a file's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// Exactly this many bytes.
    Exact(u64),
    /// A manifest (`kernel.toml`, `metadata.json`) whose size is not
    /// pinned: at most [`MAX_FILE_SIZE`].
    Manifest,
    /// A file pinned by its digest only: at most [`MAX_UNSIZED_FILE`].
    Unsized,
}

impl Size {
    /// The exact size, where the pin says it.
    pub fn exact(self) -> Option<u64> {
        match self {
            Size::Exact(size) => Some(size),
            Size::Manifest | Size::Unsized => None,
        }
    }

    /// The most bytes such a file may have.
    pub fn limit(self) -> u64 {
        match self {
            Size::Exact(size) => size,
            Size::Manifest => MAX_FILE_SIZE,
            Size::Unsized => MAX_UNSIZED_FILE,
        }
    }
}

/// One file as the lock and manifests pin it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PinnedFile {
    /// Which kind of Hub repo holds it.
    pub repo_type: RepoType,
    /// `owner/name`.
    pub repo: String,
    /// The 40-hex commit.
    pub commit: String,
    /// Path inside the repo.
    pub path: String,
    /// Its digest.
    pub checksum: Checksum,
    /// What the pin says about its size.
    pub size: Size,
}

impl PinnedFile {
    /// The `kernel.toml` a lock entry pins.
    pub fn manifest(locked: &LockedKernel) -> Self {
        PinnedFile {
            repo_type: locked.repo_type,
            repo: locked.repo.clone(),
            commit: locked.commit.clone(),
            path: MANIFEST.to_string(),
            checksum: Checksum::Sha256(locked.manifest_sha256),
            size: Size::Manifest,
        }
    }

    /// The signature of `kernel.toml`, when the lock records one.
    pub fn signature(locked: &LockedKernel) -> Option<Self> {
        locked.signature.map(|signature| PinnedFile {
            repo_type: locked.repo_type,
            repo: locked.repo.clone(),
            commit: locked.commit.clone(),
            path: kernelhub_manifest::trust::SIGNATURE_FILE.to_string(),
            checksum: Checksum::Sha256(signature.sha256),
            size: Size::Manifest,
        })
    }

    /// An artifact of the kernel `locked` pins.
    pub fn artifact(locked: &LockedKernel, artifact: &Artifact) -> Self {
        PinnedFile {
            repo_type: locked.repo_type,
            repo: locked.repo.clone(),
            commit: locked.commit.clone(),
            path: artifact.path.get_ref().clone(),
            checksum: Checksum::Sha256(*artifact.sha256.get_ref()),
            size: Size::Exact(*artifact.size.get_ref()),
        }
    }

    /// The most bytes this file may have.
    pub fn limit(&self) -> u64 {
        self.size.limit()
    }

    /// Whether bytes with this hash and length are this file.
    pub fn check(&self, actual: Checksum, length: u64) -> Result<(), FileProblem> {
        if length > self.limit() {
            return Err(FileProblem::Long {
                expected: self.limit(),
            });
        }
        if let Some(size) = self.size.exact().filter(|s| length < *s) {
            return Err(FileProblem::Short {
                expected: size,
                actual: length,
            });
        }
        if actual != self.checksum {
            return Err(FileProblem::Hash {
                expected: self.checksum.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Refuses a pin whose repo, commit or path could name a place outside
    /// the cache (each becomes a path component below the cache root).
    pub fn ensure_safe(&self) -> io::Result<()> {
        let problem = if !is_repo_id(&self.repo) {
            Some(format!("`{}` is not a Hub repo id", self.repo))
        } else if !is_commit(&self.commit) {
            Some(format!("`{}` is not a full commit id", self.commit))
        } else if let Err(reason) = check_relative_path(&self.path) {
            Some(format!("path `{}` {reason}", self.path))
        } else {
            None
        };
        match problem {
            None => Ok(()),
            Some(problem) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to touch the cache for {problem}"),
            )),
        }
    }

    /// The error for bytes of this file that fail [`PinnedFile::check`].
    pub fn mismatch(&self, problem: FileProblem) -> Error {
        Error::Mismatch {
            repo: self.repo.clone(),
            file: self.path.clone(),
            commit: self.commit.clone(),
            problem: Box::new(problem),
        }
    }
}

/// What the cache holds for a pinned file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    /// Present, and its bytes match the pin.
    Verified,
    /// Not there.
    Missing,
    /// There, but wrong.
    Corrupt(FileProblem),
}

/// A Hub cache directory.
#[derive(Debug, Clone)]
pub struct HubCache {
    root: PathBuf,
}

impl HubCache {
    /// The cache rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HubCache { root: root.into() }
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `kernels--owner--name` / `models--owner--name`.
    pub fn repo_folder(repo_type: RepoType, repo: &str) -> String {
        format!("{}s--{}", repo_type.as_str(), repo.replace('/', "--"))
    }

    /// Where the Hub layout puts `file` for readers.
    pub fn snapshot_path(&self, file: &PinnedFile) -> PathBuf {
        self.root
            .join(Self::repo_folder(file.repo_type, &file.repo))
            .join("snapshots")
            .join(&file.commit)
            .join(&file.path)
    }

    fn blobs_dir(&self, file: &PinnedFile) -> PathBuf {
        self.root
            .join(Self::repo_folder(file.repo_type, &file.repo))
            .join("blobs")
    }

    /// Hashes what the cache holds for `file`.
    pub fn state(&self, file: &PinnedFile) -> io::Result<FileState> {
        file.ensure_safe()?;
        let opened = match std::fs::File::open(self.snapshot_path(file)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(FileState::Missing),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("{e}: {}", self.snapshot_path(file).display()),
                ));
            }
        };
        let (digest, length) =
            hash_limited(opened, file.checksum.algorithm(), file.limit(), |_| Ok(()))?;
        Ok(match file.check(digest, length) {
            Ok(()) => FileState::Verified,
            Err(problem) => FileState::Corrupt(problem),
        })
    }

    /// The bytes of `file`, hashed as they are read and returned only if they
    /// match the pin.
    pub fn read_verified(&self, file: &PinnedFile) -> Result<Vec<u8>, Error> {
        file.ensure_safe()?;
        let path = self.snapshot_path(file);
        let opened = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotCached {
                    repo: file.repo.clone(),
                    file: file.path.clone(),
                    commit: file.commit.clone(),
                    cache: self.root.clone(),
                });
            }
            Err(e) => {
                return Err(io::Error::new(e.kind(), format!("{e}: {}", path.display())).into());
            }
        };
        // Preallocate what is on disk, never what the manifest merely claims.
        let on_disk = opened.metadata().map_or(0, |m| m.len()).min(file.limit());
        let mut bytes = Vec::with_capacity(usize::try_from(on_disk).unwrap_or(0));
        let (digest, length) =
            hash_limited(opened, file.checksum.algorithm(), file.limit(), |chunk| {
                bytes.extend_from_slice(chunk);
                Ok(())
            })?;
        file.check(digest, length).map_err(|p| file.mismatch(p))?;
        Ok(bytes)
    }

    /// The verified, parsed `kernel.toml` of a locked kernel.
    pub fn load_manifest(&self, locked: &LockedKernel) -> Result<KernelManifest, Error> {
        self.load_manifest_checked(locked, |_| Ok(()))
    }

    /// [`Self::load_manifest`], with `check` run on the verified bytes
    /// before they are parsed (the trust policy, say), so they are read once.
    pub fn load_manifest_checked(
        &self,
        locked: &LockedKernel,
        check: impl FnOnce(&[u8]) -> Result<(), Error>,
    ) -> Result<KernelManifest, Error> {
        let file = PinnedFile::manifest(locked);
        let bytes = self.read_verified(&file)?;
        check(&bytes)?;
        parse_manifest(&bytes, &file)
    }

    /// The verified bytes of one artifact of a locked kernel.
    pub fn load_artifact(
        &self,
        locked: &LockedKernel,
        artifact: &Artifact,
    ) -> Result<Vec<u8>, Error> {
        self.read_verified(&PinnedFile::artifact(locked, artifact))
    }

    /// Takes the cross-process lock for writing `file`'s blob, waiting for
    /// another writer if there is one. Dropping the handle releases it.
    pub(crate) fn lock_blob(&self, file: &PinnedFile) -> io::Result<std::fs::File> {
        file.ensure_safe()?;
        let dir = self
            .root
            .join(".locks")
            .join(Self::repo_folder(file.repo_type, &file.repo));
        fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.lock", file.checksum));
        // A lock file swapped for a symlink is replaced, never followed (a
        // dangling one would otherwise create a file outside the cache); if
        // it is swapped again in between, the open below fails instead.
        if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::remove_file(&path)?;
        }
        let mut options = fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        fs_err::os::unix::fs::OpenOptionsExt::custom_flags(
            &mut options,
            rustix::fs::OFlags::NOFOLLOW.bits() as i32,
        );
        let handle = options.open(&path)?.into_parts().0;
        match handle.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                tracing::info!(lock = %path.display(), "waiting for another process writing the same file");
                handle.lock()?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        Ok(handle)
    }

    /// A fresh temporary file beside `file`'s blob; removes the leftovers of
    /// writers that died. Call with the blob lock held.
    pub(crate) fn blob_writer(&self, file: &PinnedFile) -> io::Result<tempfile::NamedTempFile> {
        let dir = self.blobs_dir(file);
        fs::create_dir_all(&dir)?;
        self.write_cachedir_tag()?;
        let prefix = format!("{}.", file.checksum);
        for entry in fs::read_dir(&dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.ends_with(".incomplete") {
                let _ = fs::remove_file(dir.join(name.as_ref()));
            }
        }
        tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".incomplete")
            .tempfile_in(&dir)
    }

    /// Whether the blob for `file` is present and verifies (another process
    /// may have written it while this one waited for the lock).
    pub(crate) fn blob_verified(&self, file: &PinnedFile) -> io::Result<bool> {
        let path = self.blobs_dir(file).join(file.checksum.to_string());
        match std::fs::File::open(path) {
            Ok(f) => {
                let (digest, length) =
                    hash_limited(f, file.checksum.algorithm(), file.limit(), |_| Ok(()))?;
                Ok(file.check(digest, length).is_ok())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Moves a verified temporary file into place as `file`'s blob and
    /// links the snapshot to it.
    /// `written` must be on the cache's file system and already synced.
    /// Call with the blob lock held.
    pub(crate) fn install(&self, file: &PinnedFile, written: tempfile::TempPath) -> io::Result<()> {
        self.store_blob(file, written)?;
        self.link_snapshot(file)
    }

    /// Moves a verified temporary file into place as `file`'s blob, without
    /// linking it into a snapshot (see [`HubCache::link_folder`]).
    pub(crate) fn store_blob(
        &self,
        file: &PinnedFile,
        written: tempfile::TempPath,
    ) -> io::Result<()> {
        file.ensure_safe()?;
        std::fs::set_permissions(
            &written,
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )?;
        let dir = self.blobs_dir(file);
        fs::create_dir_all(&dir)?;
        written
            .persist(dir.join(file.checksum.to_string()))
            .map_err(|e| e.error)?;
        Ok(())
    }

    /// Links `files` (blobs already stored and verified, all of one repo and
    /// commit, all below `folder`, e.g. `build/<variant>`) as that folder of
    /// the snapshot in one step: the links are made in a hidden sibling
    /// folder at the same depth, which then replaces `folder` by rename. A
    /// reader listing the parent sees the old folder, or the complete new
    /// one, never a partial one.
    pub fn link_folder(&self, folder: &str, files: &[PinnedFile]) -> io::Result<()> {
        let Some(first) = files.first() else {
            return Ok(());
        };
        let prefix = format!("{folder}/");
        for file in files {
            file.ensure_safe()?;
            if !file.path.starts_with(&prefix)
                || file.repo != first.repo
                || file.commit != first.commit
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`{}` is not below `{folder}` of one snapshot", file.path),
                ));
            }
        }
        let root = self
            .root
            .join(Self::repo_folder(first.repo_type, &first.repo))
            .join("snapshots")
            .join(&first.commit);
        let target = root.join(folder);
        let parent = target
            .parent()
            .expect("a folder below the snapshot")
            .to_path_buf();
        fs::create_dir_all(&parent)?;
        let staging = tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(&parent)?;
        for file in files {
            let link = staging.path().join(&file.path[prefix.len()..]);
            fs::create_dir_all(link.parent().expect("links have a parent"))?;
            // The same depth as the final place, so the relative target holds.
            let depth = 2 + file.path.split('/').count() - 1;
            let blob = PathBuf::from("../".repeat(depth))
                .join("blobs")
                .join(file.checksum.to_string());
            std::os::unix::fs::symlink(&blob, &link)?;
        }
        let staged = staging.keep();
        if target.exists() {
            let old = tempfile::Builder::new()
                .prefix(".old-")
                .tempdir_in(&parent)?
                .keep();
            fs::remove_dir(&old)?;
            fs::rename(&target, &old)?;
            fs::rename(&staged, &target)?;
            fs::remove_dir_all(&old)?;
        } else {
            fs::rename(&staged, &target)?;
        }
        Ok(())
    }

    /// Points `snapshots/<commit>/<path>` at `file`'s blob, atomically.
    pub(crate) fn link_snapshot(&self, file: &PinnedFile) -> io::Result<()> {
        file.ensure_safe()?;
        let link = self.snapshot_path(file);
        let parent = link.parent().expect("snapshot paths have a parent");
        fs::create_dir_all(parent)?;
        // From snapshots/<commit>/<dirs…>/<name> up to the repo folder.
        let depth = 2 + file.path.split('/').count() - 1;
        let target = PathBuf::from("../".repeat(depth))
            .join("blobs")
            .join(file.checksum.to_string());
        let temporary = tempfile::Builder::new()
            .prefix("link-")
            .make_in(self.scratch()?, |path| {
                std::os::unix::fs::symlink(&target, path)
            })?;
        temporary
            .into_temp_path()
            .persist(&link)
            .map_err(|e| e.error)
    }

    /// kernelhub's scratch directory, `.locks/kernelhub-tmp/`: on the cache's
    /// file system (so a rename installs), and below `.locks/`, the one
    /// directory the Hub's own tools skip when they scan a cache. Entries a
    /// dead process left are removed after a day.
    pub(crate) fn scratch(&self) -> io::Result<PathBuf> {
        let dir = self.root.join(".locks").join("kernelhub-tmp");
        fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Removes scratch entries older than a day (a live writer finishes long
    /// before; a killed one never comes back for them).
    pub fn sweep_scratch(&self) -> io::Result<()> {
        let dir = self.scratch()?;
        let day = std::time::Duration::from_secs(24 * 3600);
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > day);
            if old {
                let path = entry.path();
                let _ = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
            }
        }
        Ok(())
    }

    /// Records the commit a lock entry's reference resolved to, as
    /// `refs/<reference>` (nothing for a reference that is the commit).
    pub fn write_ref(&self, locked: &LockedKernel) -> io::Result<()> {
        self.write_ref_in(
            locked.repo_type,
            &locked.repo,
            &locked.reference,
            &locked.commit,
        )
    }

    /// Writes `refs/<reference>` = `commit` (no newline, as the Hub's tools
    /// write it) in the folder of `repo`.
    pub fn write_ref_in(
        &self,
        repo_type: RepoType,
        repo: &str,
        reference: &str,
        commit: &str,
    ) -> io::Result<()> {
        if reference == commit {
            return Ok(());
        }
        if !kernelhub_manifest::project::is_ref_name(reference)
            || !is_repo_id(repo)
            || !is_commit(commit)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "`{reference}` → `{commit}` of `{repo}` is not a ref that can be written below `refs/`"
                ),
            ));
        }
        let path = self
            .root
            .join(Self::repo_folder(repo_type, repo))
            .join("refs")
            .join(reference);
        if fs::read_to_string(&path).is_ok_and(|old| old.trim() == commit) {
            return Ok(());
        }
        let parent = path.parent().expect("ref paths have a parent");
        fs::create_dir_all(parent)?;
        let mut temporary = tempfile::NamedTempFile::new_in(self.scratch()?)?;
        temporary.write_all(commit.as_bytes())?;
        readable(temporary.as_file())?;
        temporary.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Writes `bytes` as `file`'s blob (not linked), after checking them
    /// against its pin.
    pub fn store_verified(&self, file: &PinnedFile, bytes: &[u8]) -> Result<(), Error> {
        let _lock = self.lock_blob(file)?;
        let mut written = self.blob_writer(file)?;
        let (digest, length) =
            hash_limited(bytes, file.checksum.algorithm(), file.limit(), |chunk| {
                written.write_all(chunk)
            })?;
        file.check(digest, length).map_err(|p| file.mismatch(p))?;
        written.as_file().sync_all()?;
        self.store_blob(file, written.into_temp_path())?;
        Ok(())
    }

    /// Writes `bytes` as `file`'s blob and snapshot, after checking them
    /// against its pin.
    pub fn install_verified(&self, file: &PinnedFile, bytes: &[u8]) -> Result<(), Error> {
        self.store_verified(file, bytes)?;
        self.link_snapshot(file)?;
        Ok(())
    }

    pub(crate) fn write_cachedir_tag(&self) -> io::Result<()> {
        let path = self.root.join("CACHEDIR.TAG");
        if !path.exists() {
            let mut temporary = tempfile::NamedTempFile::new_in(self.scratch()?)?;
            readable(temporary.as_file())?;
            temporary.write_all(
                b"Signature: 8a477f597d28d172789f06886806bc55\n# This directory is a Hugging Face Hub cache; kernelhub writes to it too.\n",
            )?;
            temporary.persist(&path).map_err(|e| e.error)?;
        }
        Ok(())
    }
}

/// Makes a file `rw-r--r--` (temporary files start as `rw-------`), so a
/// shared cache is readable by everyone who uses it.
fn readable(file: &std::fs::File) -> io::Result<()> {
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
}

/// Parses and validates `kernel.toml` bytes already verified as `file`:
/// its artifact paths become paths in the cache, so they must pass the same
/// rules as in `kernelhub check`.
pub(crate) fn parse_manifest(bytes: &[u8], file: &PinnedFile) -> Result<KernelManifest, Error> {
    let name = PathBuf::from(format!(
        "{}@{}/{}",
        file.repo,
        &file.commit[..12],
        file.path
    ));
    let invalid = |diagnostics: String| Error::Invalid {
        what: format!("`{}`", name.display()),
        diagnostics,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| invalid(format!("not UTF-8: {e}")))?;
    let mut parsed = KernelManifest::parse(text, &name, Strictness::Load);
    if let Some(manifest) = &parsed.value {
        let problems = validate(&manifest.ops, &manifest.artifacts, &name, parsed.complete);
        parsed.complete &= problems
            .iter()
            .all(|d| d.severity != kernelhub_manifest::Severity::Error);
        parsed.diagnostics.extend(problems);
    }
    match parsed.value {
        Some(manifest) if parsed.complete => Ok(manifest),
        _ => {
            let rendered: Vec<String> = parsed
                .diagnostics
                .iter()
                .filter(|d| d.severity == kernelhub_manifest::Severity::Error)
                .map(|d| d.render(Some(text)))
                .collect();
            Err(invalid(rendered.join("\n")))
        }
    }
}

/// Hashes what `reader` yields, passing each chunk to `sink`, and stops
/// after `limit + 1` bytes so an oversize file is never read to its end.
pub(crate) fn hash_limited(
    mut reader: impl Read,
    algorithm: Algorithm,
    limit: u64,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<(Checksum, u64)> {
    let mut hasher = Hasher::new(algorithm);
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let room = (limit + 1 - total).min(buffer.len() as u64) as usize;
        if room == 0 {
            break;
        }
        let n = match reader.read(&mut buffer[..room]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buffer[..n]);
        sink(&buffer[..n])?;
        total += n as u64;
    }
    Ok((hasher.finish(), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinned(bytes: &[u8], path: &str) -> PinnedFile {
        PinnedFile {
            repo_type: RepoType::Model,
            repo: "acme/k".into(),
            commit: "a".repeat(40),
            path: path.into(),
            checksum: kernelhub_manifest::hash::Sha256Digest::of(bytes).into(),
            size: Size::Exact(bytes.len() as u64),
        }
    }

    #[test]
    fn installed_files_use_the_hub_layout_and_read_back_verified() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HubCache::new(dir.path());
        let file = pinned(b"ptx bytes", "build/cuda/k.ptx");
        assert_eq!(cache.state(&file).unwrap(), FileState::Missing);
        assert!(matches!(
            cache.read_verified(&file),
            Err(Error::NotCached { .. })
        ));
        cache.install_verified(&file, b"ptx bytes").unwrap();
        let link = dir.path().join(format!(
            "models--acme--k/snapshots/{}/build/cuda/k.ptx",
            "a".repeat(40)
        ));
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            PathBuf::from(format!("../../../../blobs/{}", file.checksum))
        );
        assert_eq!(cache.read_verified(&file).unwrap(), b"ptx bytes");
        assert_eq!(cache.state(&file).unwrap(), FileState::Verified);
        assert!(dir.path().join("CACHEDIR.TAG").exists());
    }

    #[test]
    fn wrong_bytes_are_refused_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HubCache::new(dir.path());
        let file = pinned(b"right", "k.wgsl");
        let error = cache
            .install_verified(&file, b"wrong")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("Expected: ") && error.contains("Computed: "),
            "{error}"
        );
        let long = cache
            .install_verified(&file, b"right and more")
            .unwrap_err()
            .to_string();
        assert!(long.contains("larger than its pinned 5 bytes"), "{long}");
        assert_eq!(cache.state(&file).unwrap(), FileState::Missing);
        let blobs = dir.path().join("models--acme--k/blobs");
        assert_eq!(
            std::fs::read_dir(blobs).unwrap().count(),
            0,
            "no temporary file left"
        );
    }

    #[test]
    fn a_folder_is_linked_whole_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HubCache::new(dir.path());
        let store = |path: &str, bytes: &[u8]| {
            let file = pinned(bytes, path);
            cache.store_verified(&file, bytes).unwrap();
            file
        };
        let old = [
            store("build/v/a.py", b"a1"),
            store("build/v/sub/b.so", b"b1"),
        ];
        cache.link_folder("build/v", &old).unwrap();
        assert_eq!(cache.read_verified(&old[1]).unwrap(), b"b1");
        let new = [store("build/v/a.py", b"a2")];
        cache.link_folder("build/v", &new).unwrap();
        assert_eq!(cache.read_verified(&new[0]).unwrap(), b"a2");
        assert_eq!(
            cache.state(&old[1]).unwrap(),
            FileState::Missing,
            "the old folder is gone whole"
        );
        let build = cache
            .snapshot_path(&new[0])
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .to_path_buf();
        let names: Vec<_> = std::fs::read_dir(build)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["v"], "no staging folder is left");
        let elsewhere = pinned(b"x", "other/x");
        assert!(cache.link_folder("build/v", &[elsewhere]).is_err());
    }

    #[test]
    fn a_changed_blob_is_caught_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HubCache::new(dir.path());
        let file = pinned(b"original", "k.wgsl");
        cache.install_verified(&file, b"original").unwrap();
        std::fs::write(cache.snapshot_path(&file), b"origina1").unwrap();
        let error = cache.read_verified(&file).unwrap_err().to_string();
        assert!(error.contains("does not match its pinned hash"), "{error}");
        assert!(matches!(
            cache.state(&file).unwrap(),
            FileState::Corrupt(FileProblem::Hash { .. })
        ));
    }
}
