//! `kernels.lock`: what each dependency resolved to, and the root of trust.
//!
//! The lock pins a commit and the SHA-256 of `kernel.toml` at that commit;
//! the manifest pins every artifact. It is written by kernelhub only, in one
//! canonical form (sorted, fixed field order, no timestamps), so writing the
//! same resolution twice gives the same bytes and a diff shows what moved.

use std::fmt::Write as _;
use std::path::Path;

use toml::Spanned;

use crate::hash::Sha256Digest;
use crate::kernel::{Parsed, Strictness, read_schema};
use crate::project::{RepoType, is_commit, is_ref_name, is_repo_id};
use crate::reader::{self, Ctx, Fields, Hint, Node};
use crate::trust::KeyId;

/// A parsed `kernels.lock`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lockfile {
    /// One entry per `kernel.toml` dependency (`[[kernel]]`), sorted by name.
    pub kernels: Vec<LockedKernel>,
    /// One entry per Hugging Face layout dependency (`[[hf]]`), sorted by name.
    pub hf: Vec<LockedHf>,
}

/// What a Hugging Face layout dependency resolved to: a commit and, per
/// chosen variant, the SHA-256 of its `metadata.json` (whose digest pins
/// every file of the variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedHf {
    /// The dependency's name in `kernels.toml`.
    pub name: String,
    /// `owner/name` as `kernels.toml` names it.
    pub repo: String,
    /// Where its `kernel-status.toml` redirected to, if anywhere: the repo
    /// the files come from (`redirected_to` in the lock).
    pub redirected_to: Option<String>,
    /// The repo type the Hub serves it as.
    pub repo_type: RepoType,
    /// The branch, tag or commit it resolved through.
    pub reference: String,
    /// The 40-hex commit.
    pub commit: String,
    /// The chosen variants, sorted by name.
    pub variants: Vec<LockedVariant>,
}

/// What every lock entry says about where it points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockHead<'a> {
    /// The dependency's name.
    pub name: &'a str,
    /// `owner/name`.
    pub repo: &'a str,
    /// The Hub's repo type.
    pub repo_type: RepoType,
    /// The ref it went through.
    pub reference: &'a str,
    /// The commit.
    pub commit: &'a str,
    /// Whether a redirect chose the ref (so the requirement in
    /// `kernels.toml`, written for the old repo, does not apply to it).
    pub redirected: bool,
}

impl LockedKernel {
    /// Where it points.
    pub fn head(&self) -> LockHead<'_> {
        LockHead {
            name: &self.name,
            repo: &self.repo,
            repo_type: self.repo_type,
            reference: &self.reference,
            commit: &self.commit,
            redirected: false,
        }
    }
}

impl LockedHf {
    /// The repo the files come from: the redirect's destination, or `repo`.
    pub fn source(&self) -> &str {
        self.redirected_to.as_deref().unwrap_or(&self.repo)
    }

    /// Where it points.
    pub fn head(&self) -> LockHead<'_> {
        LockHead {
            name: &self.name,
            repo: &self.repo,
            repo_type: self.repo_type,
            reference: &self.reference,
            commit: &self.commit,
            redirected: self.redirected_to.is_some(),
        }
    }
}

impl Lockfile {
    /// Every entry's head, `[[kernel]]` and `[[hf]]` alike.
    pub fn heads(&self) -> impl Iterator<Item = LockHead<'_>> {
        self.kernels
            .iter()
            .map(LockedKernel::head)
            .chain(self.hf.iter().map(LockedHf::head))
    }
}

/// One chosen variant of a [`LockedHf`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedVariant {
    /// Folder name under `build/`.
    pub name: String,
    /// SHA-256 of `build/<name>/metadata.json`.
    pub metadata_sha256: Sha256Digest,
}

/// What one dependency resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedKernel {
    /// The dependency's name in `kernels.toml`.
    pub name: String,
    /// `owner/name` on the Hub.
    pub repo: String,
    /// The Hub's repo type; written only when it is not `kernel`.
    pub repo_type: RepoType,
    /// The tag, branch or commit the requirement resolved through.
    pub reference: String,
    /// The 40-hex commit.
    pub commit: String,
    /// SHA-256 of `kernel.toml` at that commit.
    pub manifest_sha256: Sha256Digest,
    /// Who signed `kernel.toml`, when the trust policy asked for a signature.
    pub signature: Option<LockedSignature>,
}

/// The signature of a locked `kernel.toml`: `signed_by` and
/// `signature_sha256` in the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedSignature {
    /// The key that signed it.
    pub key: KeyId,
    /// SHA-256 of `kernel.toml.minisig`, which pins the signature file like
    /// every other file.
    pub sha256: Sha256Digest,
}

const HEADER: &str = "# This file is written by `kernelhub lock`. Do not edit it by hand.\n";

impl Lockfile {
    /// Reads a `kernels.lock` from its text; `file` names it in diagnostics.
    pub fn parse(source: &str, file: &Path, strictness: Strictness) -> Parsed<Self> {
        let mut ctx = Ctx::new(file, strictness == Strictness::Check);
        let value = ctx.parse(source).and_then(|root| {
            let mut fields = Fields::new(root.get_ref(), 0..0, "`kernels.lock`");
            let schema = read_schema(&mut ctx, &mut fields);
            let mut kernels = Vec::new();
            let mut hf = Vec::new();
            let mut names: Vec<Spanned<String>> = Vec::new();
            for table in ["kernel", "hf"] {
                let Some(items) = fields
                    .get(table)
                    .and_then(|n| reader::array(&mut ctx, n, table))
                else {
                    continue;
                };
                for item in items.iter() {
                    let Some((name, entry)) = read_locked(&mut ctx, item, table) else {
                        continue;
                    };
                    if names.iter().any(|n| n.get_ref() == name.get_ref()) {
                        ctx.error(
                            "duplicate-name",
                            name.span(),
                            format!("`{}` is locked twice", name.get_ref()),
                        )
                        .hint("run `kernelhub lock` to rewrite the lock");
                    }
                    names.push(name);
                    match entry {
                        Entry::Kernel(kernel) => kernels.push(kernel),
                        Entry::Hf(locked) => hf.push(locked),
                    }
                }
            }
            fields.finish(&mut ctx, &["schema", "kernel", "hf"]);
            schema?;
            kernels.sort_by(|a: &LockedKernel, b| a.name.cmp(&b.name));
            hf.sort_by(|a: &LockedHf, b| a.name.cmp(&b.name));
            Some(Lockfile { kernels, hf })
        });
        Parsed {
            complete: value.is_some() && !ctx.has_errors(),
            value,
            diagnostics: ctx.diagnostics,
        }
    }

    /// The lock in its one canonical text form.
    pub fn to_toml(&self) -> String {
        let mut kernels: Vec<&LockedKernel> = self.kernels.iter().collect();
        kernels.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = format!("{HEADER}schema = {}\n", crate::kernel::SCHEMA);
        let head = |out: &mut String, table: &str, name: &str, repo: &str, repo_type: RepoType| {
            let _ = write!(
                out,
                "\n[[{table}]]\nname = {}\nrepo = {}\n",
                quote(name),
                quote(repo)
            );
            if repo_type != RepoType::Kernel {
                let _ = writeln!(out, "repo_type = {}", quote(repo_type.as_str()));
            }
        };
        for k in kernels {
            head(&mut out, "kernel", &k.name, &k.repo, k.repo_type);
            let _ = write!(
                out,
                "ref = {}\ncommit = {}\nmanifest_sha256 = \"{}\"\n",
                quote(&k.reference),
                quote(&k.commit),
                k.manifest_sha256
            );
            if let Some(signature) = &k.signature {
                let _ = write!(
                    out,
                    "signed_by = \"{}\"\nsignature_sha256 = \"{}\"\n",
                    signature.key, signature.sha256
                );
            }
        }
        let mut hf: Vec<&LockedHf> = self.hf.iter().collect();
        hf.sort_by(|a, b| a.name.cmp(&b.name));
        for k in hf {
            head(&mut out, "hf", &k.name, &k.repo, k.repo_type);
            if let Some(destination) = &k.redirected_to {
                let _ = writeln!(out, "redirected_to = {}", quote(destination));
            }
            let _ = writeln!(
                out,
                "ref = {}\ncommit = {}\nvariants = [",
                quote(&k.reference),
                quote(&k.commit)
            );
            let mut variants: Vec<&LockedVariant> = k.variants.iter().collect();
            variants.sort_by(|a, b| a.name.cmp(&b.name));
            for v in variants {
                let _ = writeln!(
                    out,
                    "  {{ name = {}, metadata_sha256 = \"{}\" }},",
                    quote(&v.name),
                    v.metadata_sha256
                );
            }
            out.push_str("]\n");
        }
        out
    }
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    toml_edit::Value::from(text).to_string()
}

/// A `[[kernel]]` or `[[hf]]` entry.
enum Entry {
    Kernel(LockedKernel),
    Hf(LockedHf),
}

fn read_locked(ctx: &mut Ctx, node: &Node<'_>, table: &str) -> Option<(Spanned<String>, Entry)> {
    let mut fields = reader::table(ctx, node, table, format!("a `[[{table}]]` entry"))?;
    let mut text = |ctx: &mut Ctx, key: &str| {
        fields
            .require(ctx, key, "\"…\"")
            .and_then(|n| reader::string(ctx, n, key))
    };
    let name = text(ctx, "name");
    let repo = text(ctx, "repo");
    let reference = text(ctx, "ref");
    let commit = text(ctx, "commit");
    let manifest_sha256 = (table == "kernel")
        .then(|| text(ctx, "manifest_sha256"))
        .flatten();
    let signed_by = fields
        .get("signed_by")
        .filter(|_| table == "kernel")
        .and_then(|n| reader::string(ctx, n, "signed_by"));
    let signature_sha256 = fields
        .get("signature_sha256")
        .filter(|_| table == "kernel")
        .and_then(|n| reader::string(ctx, n, "signature_sha256"));
    let variants = if table == "hf" {
        fields
            .require(
                ctx,
                "variants",
                "[{ name = \"…\", metadata_sha256 = \"…\" }]",
            )
            .and_then(|n| reader::array(ctx, n, "variants"))
            .map(|items| {
                let mut variants: Vec<LockedVariant> = Vec::new();
                for item in items.iter() {
                    if let Some(variant) = read_variant(ctx, item) {
                        if variants.iter().any(|v| v.name == variant.name) {
                            ctx.error(
                                "duplicate-name",
                                item.span(),
                                format!("variant `{}` is locked twice", variant.name),
                            )
                            .hint("run `kernelhub lock` to rewrite the lock");
                        }
                        variants.push(variant);
                    }
                }
                variants
            })
    } else {
        None
    };
    let redirected_to = (table == "hf")
        .then(|| {
            fields
                .get("redirected_to")
                .and_then(|n| reader::string(ctx, n, "redirected_to"))
        })
        .flatten();
    if let Some(destination) = redirected_to.as_ref().filter(|r| !is_repo_id(r.get_ref())) {
        ctx.error(
            "invalid-repo",
            destination.span(),
            format!("`{}` is not a Hub repo id", destination.get_ref()),
        )
        .hint("run `kernelhub lock` to rewrite the lock");
    }
    let repo_type = match fields.get("repo_type") {
        Some(node) => crate::project::read_repo_type(ctx, node)?.into_inner(),
        None => RepoType::Kernel,
    };
    fields.finish(
        ctx,
        &[
            "name",
            "repo",
            "repo_type",
            "ref",
            "commit",
            if table == "kernel" {
                "manifest_sha256"
            } else {
                "variants"
            },
            if table == "kernel" { "signed_by" } else { "" },
            if table == "kernel" {
                "signature_sha256"
            } else {
                ""
            },
            if table == "kernel" {
                ""
            } else {
                "redirected_to"
            },
        ],
    );
    let hint = "run `kernelhub lock` to rewrite the lock";
    if let Some(repo) = repo.as_ref().filter(|r| !is_repo_id(r.get_ref())) {
        ctx.error(
            "invalid-repo",
            repo.span(),
            format!("`{}` is not a Hub repo id", repo.get_ref()),
        )
        .hint(hint);
    }
    if let Some(reference) = reference.as_ref().filter(|r| !is_ref_name(r.get_ref())) {
        ctx.error(
            "invalid-revision",
            reference.span(),
            format!(
                "`{}` is not a tag, branch or commit name",
                reference.get_ref()
            ),
        )
        .hint(hint);
    }
    if let Some(commit) = commit.as_ref().filter(|c| !is_commit(c.get_ref())) {
        ctx.error(
            "invalid-revision",
            commit.span(),
            format!("`{}` is not a full commit id", commit.get_ref()),
        )
        .hint(hint);
    }
    let digest = manifest_sha256.as_ref().and_then(|d| {
        let digest = Sha256Digest::from_hex(d.get_ref());
        if digest.is_none() {
            ctx.error(
                "invalid-hash",
                d.span(),
                format!("`{}` is not a SHA-256 digest", d.get_ref()),
            )
            .hint(hint);
        }
        digest
    });
    let signature = match (signed_by, signature_sha256) {
        (None, None) => None,
        (Some(key), Some(sha)) => {
            let id = key.get_ref().parse::<KeyId>();
            let digest = Sha256Digest::from_hex(sha.get_ref());
            if let Err(message) = &id {
                ctx.error("invalid-key", key.span(), message.clone())
                    .hint(hint);
            }
            if digest.is_none() {
                ctx.error(
                    "invalid-hash",
                    sha.span(),
                    format!("`{}` is not a SHA-256 digest", sha.get_ref()),
                )
                .hint(hint);
            }
            Some(LockedSignature {
                key: id.ok()?,
                sha256: digest?,
            })
        }
        (Some(one), None) | (None, Some(one)) => {
            ctx.error(
                "missing-field",
                one.span(),
                "`signed_by` and `signature_sha256` come together".to_string(),
            )
            .hint(hint);
            return None;
        }
    };
    let name = name?;
    let repo = repo.filter(|r| is_repo_id(r.get_ref()))?.into_inner();
    let reference = reference.filter(|r| is_ref_name(r.get_ref()))?.into_inner();
    let commit = commit.filter(|c| is_commit(c.get_ref()))?.into_inner();
    let entry = if table == "kernel" {
        Entry::Kernel(LockedKernel {
            name: name.get_ref().clone(),
            repo,
            repo_type,
            reference,
            commit,
            manifest_sha256: digest?,
            signature,
        })
    } else {
        Entry::Hf(LockedHf {
            name: name.get_ref().clone(),
            repo,
            redirected_to: match redirected_to {
                Some(r) if is_repo_id(r.get_ref()) => Some(r.into_inner()),
                Some(_) => return None,
                None => None,
            },
            repo_type,
            reference,
            commit,
            variants: variants?,
        })
    };
    Some((name, entry))
}

fn read_variant(ctx: &mut Ctx, node: &Node<'_>) -> Option<LockedVariant> {
    let mut fields = reader::table(ctx, node, "variants", "a variant")?;
    let name = fields
        .require(ctx, "name", "\"torch210-cxx11-cu128-x86_64-linux\"")
        .and_then(|n| reader::string(ctx, n, "name"));
    let sha = fields
        .require(ctx, "metadata_sha256", "\"…\"")
        .and_then(|n| reader::string(ctx, n, "metadata_sha256"));
    fields.finish(ctx, &["name", "metadata_sha256"]);
    let name = name?;
    // A variant name becomes a folder name in the cache.
    if !is_ref_name(name.get_ref()) || name.get_ref().contains('/') {
        ctx.error(
            "invalid-path",
            name.span(),
            format!("`{}` is not a variant folder name", name.get_ref()),
        )
        .hint("run `kernelhub lock` to rewrite the lock");
        return None;
    }
    let sha = sha?;
    let Some(metadata_sha256) = Sha256Digest::from_hex(sha.get_ref()) else {
        ctx.error(
            "invalid-hash",
            sha.span(),
            format!("`{}` is not a SHA-256 digest", sha.get_ref()),
        );
        return None;
    };
    Some(LockedVariant {
        name: name.into_inner(),
        metadata_sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(name: &str) -> LockedKernel {
        LockedKernel {
            name: name.into(),
            repo: format!("acme/{name}"),
            repo_type: if name == "rotary" {
                RepoType::Model
            } else {
                RepoType::Kernel
            },
            reference: "v0.1.2".into(),
            commit: "6f1c2d0e9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e".into(),
            manifest_sha256: Sha256Digest::of(name.as_bytes()),
            // The signed entry shows the signature fields round-trip.
            signature: (name == "activation").then(|| LockedSignature {
                key: KeyId(*b"\x01\x02\x03\x04\x05\x06\x07\x08"),
                sha256: Sha256Digest::of(b"signature"),
            }),
        }
    }

    #[test]
    fn written_sorted_and_read_back_identically() {
        let lock = Lockfile {
            kernels: vec![kernel("rotary"), kernel("activation")],
            hf: vec![LockedHf {
                name: "layer-norm".into(),
                repo: "kernels-community/layer-norm".into(),
                redirected_to: Some("kernels-community/layernorm".into()),
                repo_type: RepoType::Kernel,
                reference: "v1".into(),
                commit: "a".repeat(40),
                variants: vec![
                    LockedVariant {
                        name: "torch-cuda".into(),
                        metadata_sha256: Sha256Digest::of(b"2"),
                    },
                    LockedVariant {
                        name: "torch210-cxx11-cu128-x86_64-linux".into(),
                        metadata_sha256: Sha256Digest::of(b"1"),
                    },
                ],
            }],
        };
        let text = lock.to_toml();
        assert!(text.find("activation").unwrap() < text.find("rotary").unwrap());
        assert!(
            text.contains("signed_by = \"0807060504030201\"\nsignature_sha256 = "),
            "{text}"
        );
        let parsed = Lockfile::parse(&text, Path::new("kernels.lock"), Strictness::Check);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let read = parsed.value.unwrap();
        assert_eq!(read.kernels, vec![kernel("activation"), kernel("rotary")]);
        assert_eq!(read.hf, lock.hf);
        assert_eq!(read.to_toml(), text);
    }

    #[test]
    fn bad_commit_and_hash_are_located() {
        let text = "schema = 1\n[[kernel]]\nname = \"a\"\nrepo = \"x/a\"\nref = \"../../x\"\ncommit = \"abc\"\nmanifest_sha256 = \"00\"\n";
        let parsed = Lockfile::parse(text, Path::new("kernels.lock"), Strictness::Check);
        let codes: Vec<_> = parsed
            .diagnostics
            .iter()
            .map(|d| (d.code, d.line_col(text).unwrap().0))
            .collect();
        assert_eq!(
            codes,
            [
                ("invalid-revision", 5),
                ("invalid-revision", 6),
                ("invalid-hash", 7)
            ]
        );
    }
}
