//! Air-gapped transfer: one archive with a lock and exactly the cache files
//! it needs, and an import that verifies every byte before anything enters
//! the cache.
//!
//! The archive is a gzip-compressed tar with a fixed order, so an importer
//! can verify each file as it streams out, knowing its pin in advance:
//!
//! ```text
//! kernels.lock                                   first, always
//! <repo-folder>/<commit>/kernel.toml             pinned by the lock
//! <repo-folder>/<commit>/<artifact path>         pinned by that manifest
//! ...
//! ```
//!
//! Entries carry no owner, time or mode beyond 0644, so the same cache gives
//! the same bytes. Import stages everything in a directory inside the cache
//! (same file system, so installing is a rename) and installs only after the
//! last entry verified: a bundle with one wrong byte is refused whole and
//! leaves the cache as it was. Links, devices, absolute paths, `..`, files
//! the lock does not pin and duplicates are refused.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use fs_err as fs;
use kernelhub_manifest::lock::{LockedHf, LockedKernel, LockedVariant, Lockfile};
use kernelhub_manifest::project::RepoType;
use kernelhub_manifest::{KernelManifest, MAX_FILE_SIZE, Strictness};

use kernelhub_manifest::trust::{SIGNATURE_FILE, TrustPolicy};

use crate::cache::{HubCache, MANIFEST, PinnedFile, hash_limited, parse_manifest};
use crate::error::Error;
use crate::fetch::{Platforms, chosen_artifacts};
use crate::hf_digest;

/// The lock's name inside a bundle.
const LOCK_ENTRY: &str = "kernels.lock";

/// What a bundle holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleSummary {
    /// Files, the lock included.
    pub files: usize,
    /// Their bytes before compression.
    pub bytes: u64,
}

/// Writes `out`: `lock` plus the verified cache files it pins for `platforms`.
/// Reads only the cache (run `fetch` first); `out` appears only when complete.
pub fn create(
    cache: &HubCache,
    lock: &Lockfile,
    platforms: &Platforms,
    out: &Path,
) -> Result<BundleSummary, Error> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temporary = tempfile::Builder::new()
        .prefix(".kernelhub-bundle-")
        .tempfile_in(&parent)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{e}: {}", parent.display())))?;
    let mut archive = tar::Builder::new(GzEncoder::new(temporary, Compression::default()));
    let mut summary = BundleSummary::default();
    let mut append = |name: &str, bytes: &[u8]| -> Result<(), Error> {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        archive.append_data(&mut header, name, bytes)?;
        summary.files += 1;
        summary.bytes += bytes.len() as u64;
        Ok(())
    };
    append(LOCK_ENTRY, lock.to_toml().as_bytes())?;
    // Two dependencies may pin the same repo and commit: one copy each.
    let mut written = std::collections::HashSet::new();
    for locked in &lock.kernels {
        let manifest_file = PinnedFile::manifest(locked);
        if !written.insert(entry_name(&manifest_file)) {
            continue;
        }
        let manifest_bytes = cache.read_verified(&manifest_file)?;
        let manifest = parse_manifest(&manifest_bytes, &manifest_file)?;
        append(&entry_name(&manifest_file), &manifest_bytes)?;
        for file in chosen_artifacts(locked, &manifest, platforms).0 {
            if written.insert(entry_name(&file)) {
                append(&entry_name(&file), &cache.read_verified(&file)?)?;
            }
        }
    }
    // Hugging Face layout variants: `metadata.json`, then the files its
    // digest pins.
    for locked in &lock.hf {
        for variant in &locked.variants {
            let metadata_file = hf_digest::metadata_pin(locked, variant);
            if !written.insert(entry_name(&metadata_file)) {
                continue;
            }
            let bytes = cache.read_verified(&metadata_file)?;
            let files = hf_digest::variant_files(locked, &variant.name, &bytes).map_err(|e| {
                Error::Invalid {
                    what: format!("`{}` of `{}`", metadata_file.path, locked.repo),
                    diagnostics: e.to_string(),
                }
            })?;
            append(&entry_name(&metadata_file), &bytes)?;
            for file in files {
                if written.insert(entry_name(&file)) {
                    append(&entry_name(&file), &cache.read_verified(&file)?)?;
                }
            }
        }
    }
    let encoder = archive.into_inner()?;
    let temporary = encoder.finish()?;
    temporary.as_file().sync_all()?;
    temporary.persist(out).map_err(|e| {
        std::io::Error::new(e.error.kind(), format!("{}: {}", e.error, out.display()))
    })?;
    Ok(summary)
}

fn entry_name(file: &PinnedFile) -> String {
    format!(
        "{}/{}/{}",
        HubCache::repo_folder(file.repo_type, &file.repo),
        file.commit,
        file.path
    )
}

/// Verifies every file of `bundle` and, only if all do, installs them into
/// `cache`. With `expected`, the bundle's lock must pin exactly the same, and
/// `refs/` are written; without it the bundle's own lock is the root of
/// trust, so only content-addressed files are installed. Each manifest's
/// signature must satisfy `trust` before anything is installed.
pub fn import(
    cache: &HubCache,
    bundle: &Path,
    expected: Option<&Lockfile>,
    trust: &TrustPolicy,
) -> Result<(Lockfile, BundleSummary), Error> {
    let refuse = |reason: String| Error::BundleRefused {
        bundle: bundle.to_path_buf(),
        reason,
    };
    fs::create_dir_all(cache.root())?;
    cache.write_cachedir_tag()?;
    cache.sweep_scratch()?;
    let staging = tempfile::Builder::new()
        .prefix("import-")
        .tempdir_in(cache.scratch()?)?;
    let mut archive = tar::Archive::new(GzDecoder::new(fs::File::open(bundle)?));
    let mut lock: Option<Lockfile> = None;
    // Keyed by repo folder and commit: two names may pin the same one.
    let mut manifests: HashMap<(String, String), KernelManifest> = HashMap::new();
    let mut staged: Vec<(PinnedFile, tempfile::TempPath)> = Vec::new();
    // Per variant `metadata.json` entry name: the files it pins.
    let mut hf_pins: HashMap<String, Vec<PinnedFile>> = HashMap::new();
    let mut summary = BundleSummary::default();
    let entries = archive
        .entries()
        .map_err(|e| refuse(format!("not a bundle: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| refuse(format!("unreadable archive: {e}")))?;
        let name = entry
            .path()
            .ok()
            .and_then(|p| p.to_str().map(str::to_string))
            .ok_or_else(|| refuse("an entry's name is not UTF-8".into()))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(refuse(format!("`{name}` is not a regular file")));
        }
        let Some(lock) = lock.as_ref() else {
            if name != LOCK_ENTRY {
                return Err(refuse(format!(
                    "the first entry must be `{LOCK_ENTRY}`, not `{name}`"
                )));
            }
            let mut text = String::new();
            entry
                .by_ref()
                .take(MAX_FILE_SIZE + 1)
                .read_to_string(&mut text)
                .map_err(|e| refuse(format!("`{LOCK_ENTRY}` is unreadable: {e}")))?;
            // Refused, not parsed cut short: what follows the limit (say a
            // gigabyte of newlines, still valid TOML) is never inflated.
            if text.len() as u64 > MAX_FILE_SIZE {
                return Err(refuse(format!(
                    "`{LOCK_ENTRY}` is larger than {} MiB",
                    MAX_FILE_SIZE >> 20
                )));
            }
            let parsed = Lockfile::parse(&text, Path::new(LOCK_ENTRY), Strictness::Load);
            let read = parsed
                .value
                .filter(|_| parsed.complete)
                .ok_or_else(|| refuse(format!("its `{LOCK_ENTRY}` is not valid")))?;
            if let Some(expected) = expected
                && (expected.kernels != read.kernels || expected.hf != read.hf)
            {
                return Err(refuse(format!(
                    "its `{LOCK_ENTRY}` pins different kernels than the lock given with `--lock`"
                )));
            }
            summary.files += 1;
            summary.bytes += text.len() as u64;
            lock = Some(read);
            continue;
        };
        let (file, kind) = if let Some((locked, path)) = locate(lock, &name) {
            if path == MANIFEST {
                (
                    PinnedFile::manifest(locked),
                    Kind::Manifest(repo_key(locked)),
                )
            } else if path == SIGNATURE_FILE {
                let file = PinnedFile::signature(locked).ok_or_else(|| {
                    refuse(format!("`{name}` is a signature its lock does not record"))
                })?;
                (file, Kind::Plain)
            } else {
                let manifest = manifests.get(&repo_key(locked)).ok_or_else(|| {
                    refuse(format!("`{name}` comes before its kernel's `{MANIFEST}`"))
                })?;
                let artifact = manifest
                    .artifacts
                    .iter()
                    .find(|a| a.path.get_ref() == path)
                    .ok_or_else(|| {
                        refuse(format!(
                            "`{name}` is not an artifact of its kernel's manifest"
                        ))
                    })?;
                (PinnedFile::artifact(locked, artifact), Kind::Plain)
            }
        } else if let Some((locked, variant, rest)) = locate_hf(lock, &name) {
            if rest == "metadata.json" {
                (
                    hf_digest::metadata_pin(locked, variant),
                    Kind::HfMetadata(locked, &variant.name),
                )
            } else {
                let metadata_name = format!(
                    "{}/{}/build/{}/metadata.json",
                    HubCache::repo_folder(RepoType::Kernel, locked.source()),
                    locked.commit,
                    variant.name
                );
                let pins = hf_pins.get(&metadata_name).ok_or_else(|| {
                    refuse(format!(
                        "`{name}` comes before its variant's `metadata.json`"
                    ))
                })?;
                let file = pins
                    .iter()
                    .find(|f| entry_name(f) == name)
                    .cloned()
                    .ok_or_else(|| {
                        refuse(format!(
                            "`{name}` is not pinned by its variant's `metadata.json`"
                        ))
                    })?;
                (file, Kind::Plain)
            }
        } else {
            return Err(refuse(format!(
                "`{name}` is not a file the bundle's lock pins"
            )));
        };
        if staged.iter().any(|(f, _)| *f == file) {
            return Err(refuse(format!("`{name}` appears twice")));
        }
        let mut target = tempfile::NamedTempFile::new_in(staging.path())?;
        // A manifest is kept in memory too, so the bytes parsed are the
        // bytes hashed.
        let mut manifest_bytes = Vec::new();
        let keep = !matches!(kind, Kind::Plain);
        let (digest, length) = hash_limited(
            &mut entry,
            file.checksum.algorithm(),
            file.limit(),
            |chunk| {
                if keep {
                    manifest_bytes.extend_from_slice(chunk);
                }
                target.write_all(chunk)
            },
        )
        .map_err(|e| refuse(format!("`{name}` is unreadable: {e}")))?;
        file.check(digest, length)
            .map_err(|problem| refuse(format!("`{name}` {problem}")))?;
        match kind {
            Kind::Manifest(key) => {
                let manifest = parse_manifest(&manifest_bytes, &file)
                    .map_err(|e| refuse(format!("`{name}`: {e}")))?;
                manifests.insert(key, manifest);
            }
            Kind::HfMetadata(locked, variant) => {
                let pins = hf_digest::variant_files(locked, variant, &manifest_bytes)
                    .map_err(|e| refuse(format!("`{name}`: {e}")))?;
                hf_pins.insert(name.clone(), pins);
            }
            Kind::Plain => {}
        }
        target.as_file().sync_all()?;
        summary.files += 1;
        summary.bytes += length;
        staged.push((file, target.into_temp_path()));
    }
    let lock = lock.ok_or_else(|| refuse("it is empty".into()))?;
    // Every locked variant whole: its metadata and every file it pins.
    for locked in &lock.hf {
        for variant in &locked.variants {
            let metadata_file = hf_digest::metadata_pin(locked, variant);
            let pins = hf_pins.get(&entry_name(&metadata_file)).ok_or_else(|| {
                refuse(format!(
                    "it lacks `{}` of `{}`",
                    metadata_file.path, locked.repo
                ))
            })?;
            if let Some(missing) = pins.iter().find(|p| !staged.iter().any(|(f, _)| f == *p)) {
                return Err(refuse(format!(
                    "it lacks `{}` of `{}`",
                    missing.path, locked.repo
                )));
            }
        }
    }
    if let Some(missing) = lock
        .kernels
        .iter()
        .find(|k| !manifests.contains_key(&repo_key(k)))
    {
        return Err(refuse(format!(
            "it lacks the `{MANIFEST}` of `{}`",
            missing.name
        )));
    }
    // Every signature the policy asks for, checked on the staged bytes.
    for locked in &lock.kernels {
        trust
            .check_repo(&locked.name, &locked.repo)
            .map_err(|e| refuse(format!("{e} (hint: {})", e.hint())))?;
        if !trust.requires_signature(&locked.repo) {
            continue;
        }
        let staged_bytes = |file: &PinnedFile| -> Result<Option<Vec<u8>>, Error> {
            match staged.iter().find(|(f, _)| f == file) {
                Some((_, path)) => Ok(Some(fs::read(path)?)),
                None => Ok(None),
            }
        };
        let manifest = staged_bytes(&PinnedFile::manifest(locked))?.unwrap_or_default();
        let signature = match PinnedFile::signature(locked) {
            Some(file) => Some(staged_bytes(&file)?.ok_or_else(|| {
                refuse(format!("it lacks `{SIGNATURE_FILE}` of `{}`", locked.repo))
            })?),
            None => None,
        };
        trust
            .check(&locked.repo, &manifest, signature.as_deref())
            .map_err(|e| refuse(format!("{e} (hint: {})", e.hint())))?;
    }
    // Everything verified: install. Hugging Face variants go in as blobs,
    // then each variant folder is linked in one step.
    let is_variant_file = |file: &PinnedFile| {
        lock.hf.iter().any(|k| {
            k.commit == file.commit
                && k.source() == file.repo
                && file.repo_type == RepoType::Kernel
                && file.path.starts_with("build/")
        })
    };
    for (file, path) in staged {
        let _guard = cache.lock_blob(&file)?;
        if is_variant_file(&file) {
            cache.store_blob(&file, path)?;
        } else {
            cache.install(&file, path)?;
        }
    }
    for locked in &lock.hf {
        for variant in &locked.variants {
            let metadata_file = hf_digest::metadata_pin(locked, variant);
            let mut files = hf_pins
                .remove(&entry_name(&metadata_file))
                .unwrap_or_default();
            files.push(metadata_file);
            cache.link_folder(&format!("build/{}", variant.name), &files)?;
        }
    }
    // Refs are what other tools follow by name; write them only when the
    // bundle's lock was checked against one the operator trusts.
    if expected.is_some() {
        for locked in &lock.kernels {
            cache.write_ref(locked)?;
        }
        for locked in &lock.hf {
            cache.write_ref_in(
                RepoType::Kernel,
                locked.source(),
                &locked.reference,
                &locked.commit,
            )?;
        }
    }
    Ok((lock, summary))
}

fn repo_key(locked: &LockedKernel) -> (String, String) {
    (
        HubCache::repo_folder(locked.repo_type, &locked.repo),
        locked.commit.clone(),
    )
}

/// What an entry is, for what importing it adds.
enum Kind<'a> {
    /// A `kernel.toml`: its artifacts' pins follow.
    Manifest((String, String)),
    /// A variant's `metadata.json`: its files' pins follow.
    HfMetadata(&'a LockedHf, &'a str),
    /// Anything else.
    Plain,
}

/// The Hugging Face lock entry, variant and path inside the variant an
/// entry name (`kernels--o--n/<commit>/build/<variant>/<path>`) points at.
fn locate_hf<'a>(
    lock: &'a Lockfile,
    name: &'a str,
) -> Option<(&'a LockedHf, &'a LockedVariant, &'a str)> {
    let mut parts = name.splitn(5, '/');
    let (folder, commit, build, variant, rest) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if build != "build"
        || rest
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return None;
    }
    let locked = lock.hf.iter().find(|k| {
        k.commit == commit && HubCache::repo_folder(RepoType::Kernel, k.source()) == folder
    })?;
    let variant = locked.variants.iter().find(|v| v.name == variant)?;
    Some((locked, variant, rest))
}

/// The lock entry and repo path an entry name points at.
fn locate<'a>(lock: &'a Lockfile, name: &'a str) -> Option<(&'a LockedKernel, &'a str)> {
    let mut parts = name.splitn(3, '/');
    let (folder, commit, path) = (parts.next()?, parts.next()?, parts.next()?);
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return None;
    }
    let locked = lock
        .kernels
        .iter()
        .find(|k| k.commit == commit && HubCache::repo_folder(k.repo_type, &k.repo) == folder)?;
    Some((locked, path))
}
