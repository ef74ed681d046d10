//! `kernels.toml`: the kernels a consuming project depends on, and where its
//! Hub is.
//!
//! Each dependency names a Hub repo and exactly one way to pick a revision: a
//! semver requirement (matched against `vX.Y.Z` tags), a branch, or a commit.

use std::path::Path;

use toml::Spanned;

use crate::kernel::{Parsed, Strictness, read_schema};
use crate::reader::{self, Ctx, Fields, Hint, Node};
use crate::trust::{TrustPolicy, TrustedKey};

/// A parsed `kernels.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectManifest {
    /// Format version, `1`.
    pub schema: Spanned<u64>,
    /// The optional `[hub]` table.
    pub hub: HubSettings,
    /// The optional `[trust]` table: who may sign each dependency.
    pub trust: TrustPolicy,
    /// The `[dependencies]`, sorted by name.
    pub dependencies: Vec<Dependency>,
}

/// Hub settings; flags and environment variables override them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HubSettings {
    /// Base URL of a Hugging Face-compatible Hub.
    pub endpoint: Option<Spanned<String>>,
    /// Repo type used for every dependency that does not set its own.
    pub repo_type: Option<Spanned<RepoType>>,
}

/// The Hub's repo types that can hold kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RepoType {
    /// The Hub's `kernel` repos (the default).
    Kernel,
    /// `model` repos, for mirrors without the kernel type.
    Model,
}

/// One dependency.
#[derive(Debug, Clone, PartialEq)]
pub struct Dependency {
    /// The key in `[dependencies]`; the name engines load it by.
    pub name: Spanned<String>,
    /// `owner/name` on the Hub.
    pub repo: Spanned<String>,
    /// Which revision to use.
    pub revision: Spanned<Revision>,
    /// Overrides `[hub] repo_type`.
    pub repo_type: Option<Spanned<RepoType>>,
    /// How the repo is laid out.
    pub layout: Layout,
    /// `allow_host_code = true`: its `shared-library` artifacts may be
    /// loaded (host code runs with the engine's privileges).
    pub allow_host_code: bool,
}

/// How a dependency's repo is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// A `kernel.toml` at the root (the default).
    Kernelhub,
    /// Hugging Face's `build/<variant>/` with `metadata.json` digests
    /// (`layout = "hf"`), locked for these target systems and variants.
    Hf {
        /// Systems such as `torch2.10-cu128-x86_64-linux`.
        targets: Vec<Spanned<String>>,
        /// Variant folders by name.
        variants: Vec<Spanned<String>>,
    },
}

/// How a dependency's revision is chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Revision {
    /// The highest `vX.Y.Z` tag matching this requirement.
    Version(semver::VersionReq),
    /// The `vN` branch (`version = N`), the Hugging Face convention for a
    /// major version that moves forward in place.
    MajorBranch(u64),
    /// The head of this branch when locked.
    Branch(String),
    /// This commit (40 hex digits).
    Commit(String),
}

impl Revision {
    /// Whether a lock entry that went through `reference` to `commit` still
    /// satisfies this requirement, so `kernelhub lock` can keep it.
    pub fn is_satisfied_by(&self, reference: &str, commit: &str) -> bool {
        match self {
            Revision::Version(req) => reference
                .strip_prefix('v')
                .and_then(|v| semver::Version::parse(v).ok())
                .is_some_and(|v| req.matches(&v)),
            Revision::MajorBranch(major) => reference == format!("v{major}"),
            Revision::Branch(branch) => reference == branch,
            Revision::Commit(pinned) => commit == pinned,
        }
    }
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Revision::Version(req) => write!(f, "version `{req}`"),
            Revision::MajorBranch(major) => write!(f, "branch `v{major}`"),
            Revision::Branch(branch) => write!(f, "branch `{branch}`"),
            Revision::Commit(commit) => write!(f, "commit `{commit}`"),
        }
    }
}

impl std::str::FromStr for RepoType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "kernel" => Ok(RepoType::Kernel),
            "model" => Ok(RepoType::Model),
            other => Err(format!(
                "`{other}` is not a repo type kernelhub reads; use `kernel` or `model`"
            )),
        }
    }
}

impl RepoType {
    /// The name used in URLs and files.
    pub fn as_str(self) -> &'static str {
        match self {
            RepoType::Kernel => "kernel",
            RepoType::Model => "model",
        }
    }
}

impl ProjectManifest {
    /// Reads a `kernels.toml` from its text; `file` names it in diagnostics.
    pub fn parse(source: &str, file: &Path, strictness: Strictness) -> Parsed<Self> {
        let mut ctx = Ctx::new(file, strictness == Strictness::Check);
        let value = ctx.parse(source).and_then(|root| {
            let mut fields = Fields::new(root.get_ref(), 0..0, "`kernels.toml`");
            let schema = read_schema(&mut ctx, &mut fields);
            let hub = fields
                .get("hub")
                .and_then(|node| read_hub(&mut ctx, node))
                .unwrap_or_default();
            let trust = fields
                .get("trust")
                .and_then(|node| read_trust(&mut ctx, node))
                .unwrap_or_default();
            let mut dependencies: Vec<Dependency> = match fields.get("dependencies") {
                Some(node) => match node.get_ref() {
                    toml::de::DeValue::Table(table) => table
                        .iter()
                        .filter_map(|(key, value)| {
                            read_dependency(
                                &mut ctx,
                                Spanned::new(key.span(), key.get_ref().to_string()),
                                value,
                            )
                        })
                        .collect(),
                    _ => {
                        reader::table(&mut ctx, node, "dependencies", "");
                        Vec::new()
                    }
                },
                None => Vec::new(),
            };
            dependencies.sort_by(|a, b| a.name.get_ref().cmp(b.name.get_ref()));
            let mut trust = trust;
            trust.repos = dependencies
                .iter()
                .map(|d| (d.name.get_ref().clone(), d.repo.get_ref().clone()))
                .collect();
            fields.finish(&mut ctx, &["schema", "hub", "trust", "dependencies"]);
            Some(ProjectManifest {
                schema: schema?,
                hub,
                trust,
                dependencies,
            })
        });
        Parsed {
            complete: value.is_some() && !ctx.has_errors(),
            value,
            diagnostics: ctx.diagnostics,
        }
    }
}

pub(crate) fn read_repo_type(ctx: &mut Ctx, node: &Node<'_>) -> Option<Spanned<RepoType>> {
    let text = reader::string(ctx, node, "repo_type")?;
    let repo_type = match text.get_ref().parse() {
        Ok(repo_type) => repo_type,
        Err(message) => {
            ctx.error("unknown-value", text.span(), message)
                .hint("use `kernel` (the default) or `model`");
            return None;
        }
    };
    Some(Spanned::new(text.span(), repo_type))
}

fn read_hub(ctx: &mut Ctx, node: &Node<'_>) -> Option<HubSettings> {
    let mut fields = reader::table(ctx, node, "hub", "`[hub]`")?;
    let endpoint = fields
        .get("endpoint")
        .and_then(|n| reader::string(ctx, n, "endpoint"));
    if let Some(endpoint) = &endpoint
        && !(endpoint.get_ref().starts_with("https://")
            || endpoint.get_ref().starts_with("http://"))
    {
        ctx.error(
            "invalid-url",
            endpoint.span(),
            format!("`{}` is not an http(s) URL", endpoint.get_ref()),
        )
        .hint("write the Hub's base URL, e.g. \"https://hub.example.internal\"");
    }
    let repo_type = fields.get("repo_type").and_then(|n| read_repo_type(ctx, n));
    fields.finish(ctx, &["endpoint", "repo_type"]);
    Some(HubSettings {
        endpoint,
        repo_type,
    })
}

/// `[trust]`: `require_signatures` and `[trust.keys]`, scope to key list.
fn read_trust(ctx: &mut Ctx, node: &Node<'_>) -> Option<TrustPolicy> {
    let mut fields = reader::table(ctx, node, "trust", "`[trust]`")?;
    let require_signatures = fields
        .get("require_signatures")
        .and_then(|n| reader::boolean(ctx, n, "require_signatures"))
        .unwrap_or(false);
    let mut policy = TrustPolicy {
        require_signatures,
        ..Default::default()
    };
    if let Some(keys) = fields.get("keys") {
        match keys.get_ref() {
            toml::de::DeValue::Table(table) => {
                for (scope, list) in table.iter() {
                    let scope_name = scope.get_ref().to_string();
                    if !is_repo_id(&scope_name) && !is_repo_id(&format!("{scope_name}/x")) {
                        ctx.error(
                            "invalid-scope",
                            scope.span(),
                            format!("`{scope_name}` is neither an owner nor an `owner/name` repo id"),
                        )
                        .hint("write an organisation (`kernelhub`) or a repo (`kernelhub/activation`)");
                        continue;
                    }
                    let keys = reader::string_list(ctx, list, &scope_name, |ctx, text| {
                        match TrustedKey::parse(text.get_ref()) {
                            Ok(key) => Some(key),
                            Err(message) => {
                                ctx.error("invalid-key", text.span(), message).hint(
                                    "paste the second line of the publisher's `minisign.pub`",
                                );
                                None
                            }
                        }
                    });
                    if keys.is_empty() {
                        ctx.error(
                            "missing-field",
                            list.span(),
                            format!("scope `{scope_name}` lists no key"),
                        )
                        .hint("list at least one minisign public key, or remove the scope");
                        continue;
                    }
                    policy.keys.insert(scope_name, keys);
                }
            }
            _ => {
                reader::table(ctx, keys, "keys", "`[trust.keys]`");
            }
        }
    }
    fields.finish(ctx, &["require_signatures", "keys"]);
    Some(policy)
}

/// Whether `repo` looks like a Hub repo id, `owner/name`.
pub fn is_repo_id(repo: &str) -> bool {
    let part = |p: &str| {
        (1..=96).contains(&p.len())
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && !p.starts_with(['.', '-'])
            && !p.contains("..")
            // `--` joins owner and name in cache folder names.
            && !p.contains("--")
    };
    matches!(repo.split_once('/'), Some((owner, name)) if part(owner) && part(name))
}

/// Whether `text` is a tag or branch name kernelhub accepts: letters,
/// digits, `-`, `_`, `.` and `/`, no `..`, no empty component. Such a name
/// is safe as a path below the cache's `refs/`.
pub fn is_ref_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && !text.contains("..")
        && text.split('/').all(|part| !part.is_empty() && part != ".")
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}

/// Whether `text` is a full commit id: 40 lower-case hex digits.
pub fn is_commit(text: &str) -> bool {
    text.len() == 40
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn read_dependency(ctx: &mut Ctx, name: Spanned<String>, node: &Node<'_>) -> Option<Dependency> {
    let mut fields = reader::table(
        ctx,
        node,
        name.get_ref(),
        format!("dependency `{}`", name.get_ref()),
    )?;
    let repo = fields
        .require(ctx, "repo", "\"owner/name\"")
        .and_then(|n| reader::string(ctx, n, "repo"))
        .and_then(|repo| {
            if is_repo_id(repo.get_ref()) {
                return Some(repo);
            }
            ctx.error(
                "invalid-repo",
                repo.span(),
                format!("`{}` is not a Hub repo id", repo.get_ref()),
            )
            .hint("write `owner/name` with letters, digits, `-`, `_` and `.`");
            None
        });
    let version = fields.get("version");
    let branch = fields.get("branch");
    let rev = fields.get("rev");
    let given: Vec<&Node<'_>> = [version, branch, rev].into_iter().flatten().collect();
    let revision = match given.as_slice() {
        [] => {
            ctx.error(
                "missing-field",
                fields.span(),
                format!("Dependency `{}` says no revision", name.get_ref()),
            )
            .hint("add one of `version = \"^1.0\"`, `branch = \"main\"` or `rev = \"<commit>\"`");
            None
        }
        [_] => read_revision(ctx, version, branch, rev),
        [_, second, ..] => {
            ctx.error(
                "conflicting-fields",
                second.span(),
                format!(
                    "Dependency `{}` gives more than one of `version`, `branch`, `rev`",
                    name.get_ref()
                ),
            )
            .hint("keep exactly one");
            None
        }
    };
    let repo_type = fields.get("repo_type").and_then(|n| read_repo_type(ctx, n));
    let allow_host_code = fields
        .get("allow_host_code")
        .and_then(|n| reader::boolean(ctx, n, "allow_host_code"))
        .unwrap_or(false);
    let layout = read_layout(ctx, &mut fields, &name, revision.as_ref());
    fields.finish(
        ctx,
        &[
            "repo",
            "version",
            "branch",
            "rev",
            "repo_type",
            "layout",
            "targets",
            "variants",
            "allow_host_code",
        ],
    );
    Some(Dependency {
        name,
        repo: repo?,
        revision: revision?,
        repo_type,
        layout: layout?,
        allow_host_code,
    })
}

/// `layout`, `targets` and `variants`: the last two only for `layout = "hf"`,
/// which needs at least one of them and a `vN` branch, branch or commit.
fn read_layout(
    ctx: &mut Ctx,
    fields: &mut Fields<'_, '_>,
    name: &Spanned<String>,
    revision: Option<&Spanned<Revision>>,
) -> Option<Layout> {
    let layout = fields
        .get("layout")
        .and_then(|n| reader::string(ctx, n, "layout"));
    let list = |ctx: &mut Ctx, fields: &mut Fields<'_, '_>, key: &str| {
        fields
            .get(key)
            .map(|n| (n.span(), reader::string_list(ctx, n, key, |_, s| Some(s))))
    };
    let targets = list(ctx, fields, "targets");
    let variants = list(ctx, fields, "variants");
    match layout.as_ref().map(|l| l.get_ref().as_str()) {
        None | Some("kernelhub") => {
            if let Some((span, _)) = targets.as_ref().or(variants.as_ref()) {
                ctx.error(
                    "unknown-field",
                    span.clone(),
                    format!(
                        "`targets` and `variants` of `{}` need `layout = \"hf\"`",
                        name.get_ref()
                    ),
                )
                .hint("add `layout = \"hf\"` for a Hugging Face kernel repo");
                return None;
            }
            Some(Layout::Kernelhub)
        }
        Some("hf") => {
            let empty = |list: &Option<(std::ops::Range<usize>, Vec<Spanned<String>>)>| {
                list.as_ref().is_none_or(|(_, items)| items.is_empty())
            };
            if empty(&targets) && empty(&variants) {
                ctx.error(
                    "missing-field",
                    layout.as_ref().map_or(0..0, Spanned::span),
                    format!("`{}` says neither `targets` nor `variants`", name.get_ref()),
                )
                .hint("add e.g. `targets = [\"torch2.10-cu128-x86_64-linux\"]`");
                return None;
            }
            if let Some(revision) = revision.filter(|r| matches!(r.get_ref(), Revision::Version(_)))
            {
                ctx.error(
                    "invalid-version",
                    revision.span(),
                    "Hugging Face kernel repos are versioned by `vN` branches, not semver tags",
                )
                .hint("write `version = 1` for the `v1` branch");
                return None;
            }
            Some(Layout::Hf {
                targets: targets.map(|t| t.1).unwrap_or_default(),
                variants: variants.map(|v| v.1).unwrap_or_default(),
            })
        }
        Some(other) => {
            ctx.error(
                "unknown-value",
                layout.as_ref().map_or(0..0, Spanned::span),
                format!("`{other}` is not a repo layout kernelhub reads"),
            )
            .hint("use `kernelhub` (the default) or `hf`");
            None
        }
    }
}

fn read_revision(
    ctx: &mut Ctx,
    version: Option<&Node<'_>>,
    branch: Option<&Node<'_>>,
    rev: Option<&Node<'_>>,
) -> Option<Spanned<Revision>> {
    if let Some(node) = version {
        if node.get_ref().is_integer() {
            let major = reader::unsigned(ctx, node, "version")?;
            return Some(Spanned::new(
                major.span(),
                Revision::MajorBranch(major.into_inner()),
            ));
        }
        let text = reader::string(ctx, node, "version")?;
        return match semver::VersionReq::parse(text.get_ref()) {
            Ok(req) => Some(Spanned::new(text.span(), Revision::Version(req))),
            Err(e) => {
                ctx.error(
                    "invalid-version",
                    text.span(),
                    format!("`{}` is not a semver requirement: {e}", text.get_ref()),
                )
                .hint("e.g. \"^1.2\", \">=0.3, <0.5\" or \"=1.0.0\"");
                None
            }
        };
    }
    if let Some(node) = branch {
        let text = reader::string(ctx, node, "branch")?;
        if !is_ref_name(text.get_ref()) {
            ctx.error(
                "invalid-revision",
                text.span(),
                format!(
                    "`{}` is not a branch name kernelhub accepts",
                    text.get_ref()
                ),
            )
            .hint("use letters, digits, `-`, `_`, `.` and `/`");
            return None;
        }
        return Some(Spanned::new(
            text.span(),
            Revision::Branch(text.into_inner()),
        ));
    }
    let text = reader::string(ctx, rev?, "rev")?;
    if !is_commit(text.get_ref()) {
        ctx.error(
            "invalid-revision",
            text.span(),
            format!("`{}` is not a full commit id", text.get_ref()),
        )
        .hint("write all 40 lower-case hex digits of the commit");
        return None;
    }
    Some(Spanned::new(
        text.span(),
        Revision::Commit(text.into_inner()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids() {
        assert!(is_repo_id("kernels-community/activation"));
        for bad in [
            "activation",
            "a/b/c",
            "../x",
            "a/..",
            "a/.hidden",
            "a b/c",
            "/x",
            "x/",
            "a--b/c",
        ] {
            assert!(!is_repo_id(bad), "{bad}");
        }
    }

    #[test]
    fn the_documented_example_reads() {
        let text = r#"
schema = 1
[hub]
endpoint = "https://hub.example.internal"
repo_type = "kernel"
[dependencies]
activation = { repo = "kernels-community/activation", version = "^0.1" }
layernorm = { repo = "kernels-community/layernorm", version = 1 }
rmsnorm = { repo = "acme/rmsnorm", branch = "main" }
rotary = { repo = "acme/rotary", rev = "0123456789abcdef0123456789abcdef01234567", repo_type = "model" }
"#;
        let parsed = ProjectManifest::parse(text, Path::new("kernels.toml"), Strictness::Check);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let mut project = parsed.value.unwrap();
        assert_eq!(project.dependencies.len(), 4);
        let layernorm = project.dependencies.remove(1);
        assert_eq!(*layernorm.revision.get_ref(), Revision::MajorBranch(1));
        assert!(
            layernorm
                .revision
                .get_ref()
                .is_satisfied_by("v1", "f".repeat(40).as_str())
        );
        assert!(
            !layernorm
                .revision
                .get_ref()
                .is_satisfied_by("v2", "f".repeat(40).as_str())
        );
        assert!(
            matches!(project.dependencies[1].revision.get_ref(), Revision::Branch(b) if b == "main")
        );
        assert_eq!(
            project.dependencies[2]
                .repo_type
                .as_ref()
                .map(|t| *t.get_ref()),
            Some(RepoType::Model)
        );
    }

    #[test]
    fn two_revisions_and_bad_values_are_all_reported() {
        let text = r#"
schema = 1
[dependencies]
a = { repo = "x/a", version = "^1", branch = "main" }
b = { repo = "nope", rev = "abc" }
c = { repo = "x/c" }
d = { repo = "x/d", version = -1 }
"#;
        let parsed = ProjectManifest::parse(text, Path::new("kernels.toml"), Strictness::Check);
        let codes: Vec<_> = parsed.diagnostics.iter().map(|d| d.code).collect();
        assert_eq!(
            codes,
            [
                "conflicting-fields",
                "invalid-repo",
                "invalid-revision",
                "missing-field",
                "wrong-type"
            ]
        );
    }
}
