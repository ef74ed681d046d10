//! Fuzz input → bundle file, for the `bundle` target.
//!
//! The first byte picks the mode (modulo 3):
//!
//! - `0` raw: the rest is the `.tar.gz` file itself;
//! - `1` tar: the rest is tar bytes, gzipped here, so the fuzzer works on the
//!   archive rather than on deflate;
//! - `2` pinned: the rest is `flags`, then sections separated by [`SEP`]:
//!   an entry plan, a `kernel.toml`, a `metadata.json`, a
//!   `kernel.toml.minisig`, then file contents.
//!   The harness rewrites every artifact's `size` and `sha256` in the
//!   manifest and every digest in the metadata to match those contents, and
//!   writes a lock that pins the manifest and metadata it carries, so an
//!   archive gets past the hash checks to the manifest, the ordering rules
//!   and the install; the plan then reorders entries, repeats them, and
//!   injects faults (a changed byte, a link, a path that escapes). Flags
//!   choose the lock's shape and the trust policy.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use flate2::Compression;
use flate2::write::GzEncoder;
use kernelhub_hub::{Algorithm, Checksum, HubCache};
use kernelhub_manifest::hash::Sha256Digest;
use kernelhub_manifest::project::RepoType;
use kernelhub_manifest::trust::{SIGNATURE_FILE, TrustPolicy, TrustedKey};
use kernelhub_manifest::{Lockfile, Strictness};

/// Mode byte: the rest is the bundle file.
pub const MODE_RAW: u8 = 0;
/// Mode byte: the rest is an uncompressed tar.
pub const MODE_TAR: u8 = 1;
/// Mode byte: sections assembled into a bundle whose pins match.
pub const MODE_PINNED: u8 = 2;
/// Separates the sections of a pinned input.
pub const SEP: &[u8] = b"\n%%\n";

/// The commit every pinned entry is locked at.
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
/// The Hugging Face variant a pinned input locks.
pub const VARIANT: &str = "torch-cuda";

/// `flags` of a pinned input.
pub mod flags {
    /// The kernel is a `model` repo rather than a `kernel` repo.
    pub const MODEL: u8 = 1;
    /// A second lock entry pins the same repo and commit.
    pub const TWICE: u8 = 2;
    /// The lock has an `[[hf]]` entry with one variant.
    pub const HF: u8 = 4;
    /// That entry was redirected to another repo.
    pub const REDIRECT: u8 = 8;
    /// The import is given the same lock as `--lock` (so refs are written).
    pub const EXPECTED: u8 = 16;
    /// The lock pins the signature section as `kernel.toml.minisig`.
    pub const SIGNED: u8 = 32;
    /// The trust policy lists [`super::TRUSTED_KEY`] for `acme`.
    pub const TRUST: u8 = 64;
    /// The trust policy requires every dependency to be signed.
    pub const REQUIRE: u8 = 128;
}

/// Plan opcodes (the top three bits of a plan byte; the low five are the
/// argument).
pub mod op {
    /// The lock.
    pub const LOCK: u8 = 0;
    /// The kernel's `kernel.toml`.
    pub const MANIFEST: u8 = 1;
    /// Artifact `arg` of the manifest.
    pub const ARTIFACT: u8 = 2;
    /// The variant's `metadata.json`.
    pub const METADATA: u8 = 3;
    /// File `arg` of the variant's digest.
    pub const VARIANT_FILE: u8 = 4;
    /// The kernel's `kernel.toml.minisig`.
    pub const SIGNATURE: u8 = 5;
    /// A fault in the next entry: arg 0..7 changes one byte, 8..15 adds
    /// one, 16..19 make it a symlink, directory, hard link or FIFO, 20..23
    /// give its name `../`, `/`, a trailing `/` or `./`.
    pub const FAULT: u8 = 6;
}

/// A public minisign key (the one minisign's author publishes), trusted for
/// `acme` under [`flags::TRUST`]: the fuzzer cannot sign, but a signature
/// naming this key id gets as far as verification.
pub const TRUSTED_KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";

/// One plan step.
pub fn step(op: u8, arg: u8) -> u8 {
    (op << 5) | (arg & 31)
}

/// A bundle file and what it is imported with.
pub struct Bundle {
    /// The `.tar.gz` bytes.
    pub file: Vec<u8>,
    /// The lock passed as `expected`.
    pub expected: Option<Lockfile>,
    /// The trust policy.
    pub trust: TrustPolicy,
}

/// Builds the bundle a fuzz input describes (see the module docs).
pub fn assemble(data: &[u8]) -> Option<Bundle> {
    let (&mode, rest) = data.split_first()?;
    Some(match mode % 3 {
        MODE_RAW => Bundle {
            file: rest.to_vec(),
            expected: None,
            trust: TrustPolicy::default(),
        },
        MODE_TAR => Bundle {
            file: gzip(rest),
            expected: None,
            trust: TrustPolicy::default(),
        },
        _ => pinned(rest),
    })
}

/// The sections of a pinned input.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pinned<'a> {
    /// [`flags`].
    pub flags: u8,
    /// [`op`] steps; empty: the order `bundle create` writes.
    pub plan: &'a [u8],
    /// `kernel.toml`.
    pub manifest: &'a [u8],
    /// `metadata.json` of the variant.
    pub metadata: &'a [u8],
    /// `kernel.toml.minisig`.
    pub signature: &'a [u8],
    /// Contents for the artifacts and variant files, used in turn.
    pub files: &'a [&'a [u8]],
}

/// Encodes a pinned input (for seeds).
pub fn encode_pinned(input: &Pinned<'_>) -> Vec<u8> {
    let mut out = vec![MODE_PINNED, input.flags];
    out.extend_from_slice(input.plan);
    let sections = [input.manifest, input.metadata, input.signature];
    for section in sections.into_iter().chain(input.files.iter().copied()) {
        out.extend_from_slice(SEP);
        out.extend_from_slice(section);
    }
    out
}

/// gzip of `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec")
}

fn split<'a>(mut data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(at) = data.windows(sep.len()).position(|w| w == sep) {
        out.push(&data[..at]);
        data = &data[at + sep.len()..];
    }
    out.push(data);
    out
}

/// One archive member before faults.
struct Member {
    name: String,
    bytes: Vec<u8>,
}

/// The lock a pinned input with these flags and sections carries, as
/// `kernelhub lock` would write it.
pub fn lock_text(flag_bits: u8, manifest: &[u8], metadata: &[u8], signature: &[u8]) -> String {
    let repo_type = repo_type(flag_bits);
    let mut out = String::from("schema = 1\n");
    let names: &[&str] = if flag_bits & flags::TWICE != 0 {
        &["k", "k2"]
    } else {
        &["k"]
    };
    for name in names {
        out += &format!(
            "\n[[kernel]]\nname = \"{name}\"\nrepo = \"acme/k\"\n{}ref = \"main\"\ncommit = \"{COMMIT}\"\nmanifest_sha256 = \"{}\"\n",
            match repo_type {
                RepoType::Kernel => String::new(),
                other => format!("repo_type = \"{}\"\n", other.as_str()),
            },
            Sha256Digest::of(manifest)
        );
        if flag_bits & flags::SIGNED != 0 {
            out += &format!(
                "signed_by = \"{}\"\nsignature_sha256 = \"{}\"\n",
                key_id(),
                Sha256Digest::of(signature)
            );
        }
    }
    if flag_bits & flags::HF != 0 {
        out += "\n[[hf]]\nname = \"h\"\nrepo = \"acme/h\"\n";
        if flag_bits & flags::REDIRECT != 0 {
            out += "redirected_to = \"acme/h2\"\n";
        }
        out += &format!(
            "ref = \"v1\"\ncommit = \"{COMMIT}\"\nvariants = [\n  {{ name = \"{VARIANT}\", metadata_sha256 = \"{}\" }},\n]\n",
            Sha256Digest::of(metadata)
        );
    }
    out
}

fn repo_type(flag_bits: u8) -> RepoType {
    if flag_bits & flags::MODEL != 0 {
        RepoType::Model
    } else {
        RepoType::Kernel
    }
}

/// The id of [`TRUSTED_KEY`], as the lock spells it.
fn key_id() -> String {
    TrustedKey::parse(TRUSTED_KEY)
        .map(|k| k.id.to_string())
        .unwrap_or_else(|_| "0000000000000000".into())
}

fn pinned(data: &[u8]) -> Bundle {
    let (&flag_bits, rest) = data.split_first().unwrap_or((&0, &[]));
    let sections = split(rest, SEP);
    let plan = sections[0];
    let section = |i: usize| sections.get(i).copied().unwrap_or_default();
    let (manifest_source, metadata_source, signature) = (section(1), section(2), section(3));
    let contents: Vec<&[u8]> = sections.get(4..).unwrap_or_default().to_vec();
    let content = |i: usize, fallback: &str| -> Vec<u8> {
        if contents.is_empty() {
            fallback.as_bytes().to_vec()
        } else {
            contents[i % contents.len()].to_vec()
        }
    };

    let (manifest, artifacts) = fix_manifest(manifest_source, &content);
    let (metadata, variant_files) = fix_metadata(metadata_source, &content);

    let repo_type = repo_type(flag_bits);
    let lock = lock_text(flag_bits, &manifest, &metadata, signature);
    let expected = (flag_bits & flags::EXPECTED != 0)
        .then(|| Lockfile::parse(&lock, Path::new("kernels.lock"), Strictness::Load).value)
        .flatten();
    let mut trust = TrustPolicy {
        require_signatures: flag_bits & flags::REQUIRE != 0,
        // The project's dependencies, as `kernels.toml` would name them:
        // an active policy holds each lock entry to its repo.
        repos: [("k", "acme/k"), ("k2", "acme/k")]
            .into_iter()
            .map(|(name, repo)| (name.to_string(), repo.to_string()))
            .collect(),
        ..TrustPolicy::default()
    };
    if flag_bits & flags::TRUST != 0
        && let Ok(key) = TrustedKey::parse(TRUSTED_KEY)
    {
        trust.keys.insert("acme".into(), vec![key]);
    }

    let hf_source = if flag_bits & flags::REDIRECT != 0 {
        "acme/h2"
    } else {
        "acme/h"
    };
    let kernel_dir = format!("{}/{COMMIT}", HubCache::repo_folder(repo_type, "acme/k"));
    let variant_dir = format!(
        "{}/{COMMIT}/build/{VARIANT}",
        HubCache::repo_folder(RepoType::Kernel, hf_source)
    );
    let member = |name: String, bytes: &[u8]| Member {
        name,
        bytes: bytes.to_vec(),
    };
    let lock_member = || member("kernels.lock".into(), lock.as_bytes());
    let manifest_member = || member(format!("{kernel_dir}/kernel.toml"), &manifest);
    let signature_member = || member(format!("{kernel_dir}/{SIGNATURE_FILE}"), signature);
    let artifact_member =
        |(path, bytes): &(String, Vec<u8>)| member(format!("{kernel_dir}/{path}"), bytes);
    let metadata_member = || member(format!("{variant_dir}/metadata.json"), &metadata);
    let variant_member =
        |(path, bytes): &(String, Vec<u8>)| member(format!("{variant_dir}/{path}"), bytes);

    let mut archive = tar::Builder::new(Vec::new());
    if plan.is_empty() {
        // The order `bundle create` writes.
        append(&mut archive, lock_member(), &[]);
        append(&mut archive, manifest_member(), &[]);
        if flag_bits & flags::SIGNED != 0 {
            append(&mut archive, signature_member(), &[]);
        }
        for artifact in &artifacts {
            append(&mut archive, artifact_member(artifact), &[]);
        }
        if flag_bits & flags::HF != 0 {
            append(&mut archive, metadata_member(), &[]);
            for file in &variant_files {
                append(&mut archive, variant_member(file), &[]);
            }
        }
    } else {
        let mut faults = Vec::new();
        for &byte in plan.iter().take(64) {
            let (code, arg) = (byte >> 5, byte & 31);
            let next = match code {
                op::LOCK => Some(lock_member()),
                op::MANIFEST => Some(manifest_member()),
                op::ARTIFACT if !artifacts.is_empty() => {
                    Some(artifact_member(&artifacts[arg as usize % artifacts.len()]))
                }
                op::METADATA => Some(metadata_member()),
                op::VARIANT_FILE if !variant_files.is_empty() => Some(variant_member(
                    &variant_files[arg as usize % variant_files.len()],
                )),
                op::SIGNATURE => Some(signature_member()),
                op::FAULT => {
                    faults.push(arg);
                    None
                }
                _ => None,
            };
            if let Some(next) = next {
                append(&mut archive, next, &faults);
                faults.clear();
            }
        }
    }
    let tar = archive.into_inner().expect("writing to a Vec");
    Bundle {
        file: gzip(&tar),
        expected,
        trust,
    }
}

/// Appends `member` with `faults` (see [`op::FAULT`]). Names are written
/// into the header as they are (after a GNU long-name entry when they need
/// one), so names the `tar` crate's own builder would refuse reach the
/// importer.
fn append(archive: &mut tar::Builder<Vec<u8>>, mut member: Member, faults: &[u8]) {
    let mut entry_type = tar::EntryType::Regular;
    for &arg in faults {
        match arg {
            0..8 if !member.bytes.is_empty() => {
                let at = arg as usize % member.bytes.len();
                member.bytes[at] ^= 0x20;
            }
            0..16 => member.bytes.push(b'\n'),
            16..20 => {
                entry_type = [
                    tar::EntryType::Symlink,
                    tar::EntryType::Directory,
                    tar::EntryType::Link,
                    tar::EntryType::Fifo,
                ][arg as usize - 16];
            }
            _ => {
                member.name = match arg % 4 {
                    0 => format!("../{}", member.name),
                    1 => format!("/{}", member.name),
                    2 => format!("{}/", member.name),
                    _ => member.name.replacen('/', "/./", 1),
                };
            }
        }
    }
    let name = member.name.as_bytes();
    if name.len() > 100 {
        let mut long = tar::Header::new_gnu();
        long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        long.set_mode(0o644);
        long.set_entry_type(tar::EntryType::GNULongName);
        long.set_size(name.len() as u64 + 1);
        long.set_cksum();
        let mut data = name.to_vec();
        data.push(0);
        archive
            .append(&long, data.as_slice())
            .expect("writing to a Vec");
    }
    let mut header = tar::Header::new_gnu();
    let keep = name.len().min(100);
    header.as_old_mut().name[..keep].copy_from_slice(&name[..keep]);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(entry_type);
    if matches!(entry_type, tar::EntryType::Symlink | tar::EntryType::Link) {
        header.as_old_mut().linkname[..11].copy_from_slice(b"/etc/passwd");
    }
    header.set_size(member.bytes.len() as u64);
    header.set_cksum();
    archive
        .append(&header, member.bytes.as_slice())
        .expect("writing to a Vec");
}

/// The manifest with each `[[artifacts]]` entry's `size` and `sha256` set to
/// match content `i`, and those (path, content) pairs. Text that is not
/// TOML is returned as it is.
fn fix_manifest(
    source: &[u8],
    content: &dyn Fn(usize, &str) -> Vec<u8>,
) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let Some(mut doc) = std::str::from_utf8(source)
        .ok()
        .and_then(|text| text.parse::<toml_edit::DocumentMut>().ok())
    else {
        return (source.to_vec(), Vec::new());
    };
    let mut files = Vec::new();
    if let Some(artifacts) = doc
        .get_mut("artifacts")
        .and_then(toml_edit::Item::as_array_of_tables_mut)
    {
        for (i, table) in artifacts.iter_mut().enumerate() {
            let Some(path) = table.get("path").and_then(|p| p.as_str()) else {
                continue;
            };
            let path = path.to_string();
            let bytes = content(i, &format!("// {path}\n"));
            table["size"] = toml_edit::value(bytes.len() as i64);
            table["sha256"] = toml_edit::value(Sha256Digest::of(&bytes).to_string());
            files.push((path, bytes));
        }
    }
    (doc.to_string().into_bytes(), files)
}

/// The metadata with each digest in `digest.files` set to match content
/// `i` (with the algorithm it names, when it names one the Hub uses), and
/// those (path, content) pairs. Text that is not JSON is returned as it is.
fn fix_metadata(
    source: &[u8],
    content: &dyn Fn(usize, &str) -> Vec<u8>,
) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(source) else {
        return (source.to_vec(), Vec::new());
    };
    let algorithm = match json.pointer("/digest/algorithm").and_then(|a| a.as_str()) {
        Some("sha512") => Algorithm::Sha512,
        _ => Algorithm::Sha256,
    };
    let mut files = Vec::new();
    if let Some(listed) = json
        .pointer_mut("/digest/files")
        .and_then(serde_json::Value::as_object_mut)
    {
        for (i, (path, digest)) in listed.iter_mut().enumerate() {
            let bytes = content(i, &format!("# {path}\n"));
            let checksum = Checksum::of(algorithm, &bytes);
            *digest = base64::engine::general_purpose::STANDARD
                .encode(checksum.bytes())
                .into();
            files.push((path.clone(), bytes));
        }
    }
    let text = serde_json::to_vec(&json).expect("a Value serialises");
    (text, files)
}
