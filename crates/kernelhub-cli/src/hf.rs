//! `kernelhub hf versions | info | fetch`: Hugging Face's kernel layout
//! (`build/<variant>/` with `metadata.json` digests), fetched for named
//! target systems into the cache the Python `kernels` package reads.

use std::io::Write;
use std::time::Instant;

use kernelhub_hf::lock::select_variants;
use kernelhub_hf::repo::{self, Resolved, VariantFiles, Want};
use kernelhub_hf::variant::System;
use kernelhub_hub::fetch::Outcome as FileOutcome;
use kernelhub_hub::{HubCache, HubClient};

use crate::Outcome;
use crate::hub::{HubArgs, human_bytes, progress_bar, runtime, settings, short, status};

type CliResult = Result<Outcome, Box<dyn std::error::Error>>;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum HfCommand {
    /// List a repo's version branches (`vN`) and their commits.
    Versions(VersionsArgs),
    /// Show a repo's variants: backend, archs, license, files, digest, signature.
    #[command(disable_version_flag = true)]
    Info(InfoArgs),
    /// Fetch the variants that named target systems would load, verified, into the cache.
    Fetch(FetchArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct VersionsArgs {
    /// `owner/name`.
    repo: String,
    #[command(flatten)]
    hub: HubArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct InfoArgs {
    /// `owner/name[@vN|@revision]`.
    repo: String,
    /// The `vN` branch to read.
    #[arg(long, conflicts_with = "revision")]
    version: Option<u64>,
    /// A branch, tag or commit to read.
    #[arg(long)]
    revision: Option<String>,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    hub: HubArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct FetchArgs {
    /// `owner/name[@vN|@revision]`, one or more.
    #[arg(required = true)]
    repos: Vec<String>,
    /// A variant folder to fetch by name; repeatable.
    #[arg(long = "variant", value_name = "NAME")]
    variants: Vec<String>,
    /// A system to fetch for, e.g. `torch2.10-cu128-x86_64-linux`; repeatable.
    #[arg(long = "target", value_name = "SYSTEM", value_parser = parse_system)]
    targets: Vec<Target>,
    /// Fetch variants that have no digest, trusting their files on first download.
    #[arg(long)]
    allow_unverified: bool,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    hub: HubArgs,
}

/// A `--target` as written, and what it says.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    text: String,
    system: System,
}

fn parse_system(text: &str) -> Result<Target, String> {
    let system = text
        .parse()
        .map_err(|e: kernelhub_hf::variant::TargetError| e.to_string())?;
    Ok(Target {
        text: text.to_string(),
        system,
    })
}

fn connect(
    hub: &HubArgs,
) -> Result<(kernelhub_hub::Settings, HubClient), Box<dyn std::error::Error>> {
    let settings = settings(hub, None)?;
    let client = HubClient::connect(&settings)?.ok_or(
        "`kernelhub hf` reads the Hub, and kernelhub is offline (`--offline` or `HF_HUB_OFFLINE`)\n  hint: fetch on a connected machine, then carry the cache across",
    )?;
    Ok((settings, client))
}

fn report_resolved(resolved: &Resolved) {
    for redirect in &resolved.redirects {
        status("Redirected", redirect);
    }
    status(
        "Resolved",
        format!(
            "{} {} ({})",
            resolved.repo,
            resolved.reference,
            short(&resolved.commit)
        ),
    );
}

pub(crate) fn run(command: HfCommand) -> CliResult {
    match command {
        HfCommand::Versions(args) => versions(args),
        HfCommand::Info(args) => info(args),
        HfCommand::Fetch(args) => fetch(args),
    }
}

fn versions(args: VersionsArgs) -> CliResult {
    let (settings, client) = connect(&args.hub)?;
    let list = runtime()?.block_on(repo::versions(&client, settings.repo_type, &args.repo))?;
    let mut out = std::io::stdout().lock();
    for (n, commit) in &list {
        writeln!(
            out,
            "v{n}\t{commit}{}",
            if *n == 0 { "\t(unstable)" } else { "" }
        )?;
    }
    if list.is_empty() {
        status(
            "Warning",
            format!("`{}` has no version branches", args.repo),
        );
    }
    Ok(Outcome::Clean)
}

fn info(args: InfoArgs) -> CliResult {
    let (settings, client) = connect(&args.hub)?;
    let (name, mut want) = Want::split(&args.repo);
    if let Some(n) = args.version {
        want = Want::Version(n);
    } else if let Some(revision) = &args.revision {
        want = Want::Revision(revision.clone());
    }
    let runtime = runtime()?;
    let resolved = runtime.block_on(repo::resolve(&client, settings.repo_type, name, &want))?;
    report_resolved(&resolved);
    let variants = runtime.block_on(repo::variants(&client, settings.repo_type, &resolved))?;
    let mut rows = Vec::new();
    for variant in &variants {
        let metadata = runtime.block_on(repo::metadata(
            &client,
            settings.repo_type,
            &resolved,
            &variant.name,
        ));
        let signed = variant
            .files
            .iter()
            .any(|(p, _)| p == "metadata.json.sigstore");
        let files = variant
            .files
            .iter()
            .filter(|(p, _)| kernelhub_hf::metadata::is_digested(p))
            .count();
        let bytes: u64 = variant.files.iter().map(|(_, s)| s).sum();
        rows.push(match metadata {
            Ok((_, m)) => serde_json::json!({
                "variant": variant.name, "backend": m.backend.kind, "archs": m.backend.archs,
                "license": m.license, "version": m.version, "files": files, "bytes": bytes,
                "digest": m.digest.as_ref().map(|d| d.algorithm.clone()), "signed": signed,
            }),
            Err(e) => serde_json::json!({ "variant": variant.name, "files": files, "bytes": bytes, "error": e.to_string(), "signed": signed }),
        });
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let summary = serde_json::json!({
            "repo": resolved.repo, "reference": resolved.reference, "commit": resolved.commit,
            "redirects": resolved.redirects, "variants": rows,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&summary)?)?;
    } else {
        for row in &rows {
            let text = |key: &str| row[key].as_str().map_or("-".to_string(), str::to_string);
            let archs = row["archs"].as_array().map_or("-".to_string(), |a| {
                a.iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            });
            writeln!(
                out,
                "{:<44} {:<6} {:<18} {:<12} {:>3} files {:>10}  digest: {:<6} signed: {}{}",
                text("variant"),
                text("backend"),
                archs,
                text("license"),
                row["files"],
                human_bytes(row["bytes"].as_u64().unwrap_or(0)),
                text("digest"),
                if row["signed"] == true { "yes" } else { "no" },
                row["error"]
                    .as_str()
                    .map_or(String::new(), |e| format!("  error: {e}")),
            )?;
        }
    }
    Ok(Outcome::Clean)
}

/// The variants of one repo that the request selects, printing a line
/// for every choice and every variant skipped.
fn choose<'a>(
    args: &FetchArgs,
    resolved: &Resolved,
    variants: &'a [VariantFiles],
) -> Result<Vec<&'a VariantFiles>, Box<dyn std::error::Error>> {
    let names: Vec<String> = variants.iter().map(|v| v.name.clone()).collect();
    let targets: Vec<(String, System)> = args
        .targets
        .iter()
        .map(|t| (t.text.clone(), t.system.clone()))
        .collect();
    let (chosen, notes) = select_variants(
        &resolved.repo,
        &resolved.commit,
        &names,
        &args.variants,
        &targets,
    )?;
    for (verb, message) in notes {
        status(verb, message);
    }
    Ok(variants
        .iter()
        .filter(|v| chosen.contains(&v.name))
        .collect())
}

fn fetch(args: FetchArgs) -> CliResult {
    if args.variants.is_empty() && args.targets.is_empty() {
        return Err("say which variants to fetch: `--variant NAME` or `--target SYSTEM` (e.g. `--target torch2.10-cu128-x86_64-linux`)".into());
    }
    let started = Instant::now();
    let (settings, client) = connect(&args.hub)?;
    let cache = HubCache::new(&settings.cache_dir);
    let runtime = runtime()?;
    let bar = progress_bar();
    let mut report = Vec::new();
    let (mut downloaded, mut cached, mut bytes) = (0usize, 0usize, 0u64);
    for spec in &args.repos {
        let (name, want) = Want::split(spec);
        let resolved = runtime.block_on(repo::resolve(&client, settings.repo_type, name, &want))?;
        report_resolved(&resolved);
        let variants = runtime.block_on(repo::variants(&client, settings.repo_type, &resolved))?;
        for variant in choose(&args, &resolved, &variants)? {
            let fetched = runtime.block_on(repo::fetch_variant(
                &client,
                &cache,
                settings.repo_type,
                &resolved,
                variant,
                args.allow_unverified,
                &bar,
            ))?;
            if !fetched.verified {
                status(
                    "Warning",
                    format!(
                        "{} {}: NO DIGEST — its files were not verified, only trusted",
                        resolved.repo, fetched.name
                    ),
                );
            }
            for (file, outcome) in &fetched.files {
                match outcome {
                    FileOutcome::Downloaded => {
                        downloaded += 1;
                        bytes += file.size.exact().unwrap_or(0);
                    }
                    FileOutcome::Cached => cached += 1,
                }
            }
            report.push(serde_json::json!({
                "repo": resolved.repo, "reference": resolved.reference, "commit": resolved.commit,
                "variant": fetched.name, "verified": fetched.verified,
                "metadata_sha256": fetched.metadata_sha256.to_string(),
                "files": fetched.files.iter().map(|(f, o)| serde_json::json!({
                    "path": f.path, "size": f.size.exact(),
                    "outcome": match o { FileOutcome::Cached => "cached", FileOutcome::Downloaded => "downloaded" },
                })).collect::<Vec<_>>(),
            }));
        }
    }
    bar.0.finish_and_clear();
    status(
        "Fetched",
        format!(
            "{} variants: {downloaded} files downloaded ({}), {cached} already cached, in {:.2}s",
            report.len(),
            human_bytes(bytes),
            started.elapsed().as_secs_f64()
        ),
    );
    if args.json {
        let summary = serde_json::json!({
            "cache": settings.cache_dir, "variants": report,
            "downloaded": { "files": downloaded, "bytes": bytes }, "cached": { "files": cached },
        });
        writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(&summary)?
        )?;
    }
    Ok(Outcome::Clean)
}
