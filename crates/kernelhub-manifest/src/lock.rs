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

/// A parsed `kernels.lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockfile {
    /// One entry per dependency, sorted by name.
    pub kernels: Vec<LockedKernel>,
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
            if let Some(items) = fields
                .get("kernel")
                .and_then(|n| reader::array(&mut ctx, n, "kernel"))
            {
                let mut names: Vec<Spanned<String>> = Vec::new();
                for item in items.iter() {
                    let Some((name, kernel)) = read_locked(&mut ctx, item) else {
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
                    kernels.push(kernel);
                }
            }
            fields.finish(&mut ctx, &["schema", "kernel"]);
            schema?;
            kernels.sort_by(|a: &LockedKernel, b| a.name.cmp(&b.name));
            Some(Lockfile { kernels })
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
        for k in kernels {
            let _ = write!(
                out,
                "\n[[kernel]]\nname = {}\nrepo = {}\n",
                quote(&k.name),
                quote(&k.repo)
            );
            if k.repo_type != RepoType::Kernel {
                let _ = writeln!(out, "repo_type = {}", quote(k.repo_type.as_str()));
            }
            let _ = write!(
                out,
                "ref = {}\ncommit = {}\nmanifest_sha256 = \"{}\"\n",
                quote(&k.reference),
                quote(&k.commit),
                k.manifest_sha256
            );
        }
        out
    }
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    toml_edit::Value::from(text).to_string()
}

fn read_locked(ctx: &mut Ctx, node: &Node<'_>) -> Option<(Spanned<String>, LockedKernel)> {
    let mut fields = reader::table(ctx, node, "kernel", "a `[[kernel]]` entry")?;
    let mut text = |ctx: &mut Ctx, key: &str| {
        fields
            .require(ctx, key, "\"…\"")
            .and_then(|n| reader::string(ctx, n, key))
    };
    let name = text(ctx, "name");
    let repo = text(ctx, "repo");
    let reference = text(ctx, "ref");
    let commit = text(ctx, "commit");
    let manifest_sha256 = text(ctx, "manifest_sha256");
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
            "manifest_sha256",
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
    let name = name?;
    let kernel = LockedKernel {
        name: name.get_ref().clone(),
        repo: repo.filter(|r| is_repo_id(r.get_ref()))?.into_inner(),
        repo_type,
        reference: reference.filter(|r| is_ref_name(r.get_ref()))?.into_inner(),
        commit: commit.filter(|c| is_commit(c.get_ref()))?.into_inner(),
        manifest_sha256: digest?,
    };
    Some((name, kernel))
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
        }
    }

    #[test]
    fn written_sorted_and_read_back_identically() {
        let lock = Lockfile {
            kernels: vec![kernel("rotary"), kernel("activation")],
        };
        let text = lock.to_toml();
        assert!(text.find("activation").unwrap() < text.find("rotary").unwrap());
        let parsed = Lockfile::parse(&text, Path::new("kernels.lock"), Strictness::Check);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let read = parsed.value.unwrap();
        assert_eq!(read.kernels, vec![kernel("activation"), kernel("rotary")]);
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
