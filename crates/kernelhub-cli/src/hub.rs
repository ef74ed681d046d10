//! `kernelhub lock`, `fetch`, `verify` and `bundle`: the operator's
//! commands. Each reads `kernels.toml` / `kernels.lock` from the project
//! directory, resolves settings (flags > `[hub]` > environment), builds a
//! Hub client only when online, and reports like cargo: one right-aligned
//! verb per line on stderr, an optional JSON summary on stdout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use kernelhub_hf::repo::FetchedVariant;
use kernelhub_hub::fetch::{FetchReport, Observer, Outcome as FileOutcome, Platforms};
use kernelhub_hub::resolve::Update;
use kernelhub_hub::settings::{Overrides, Settings};
use kernelhub_hub::{HubCache, HubClient, PinnedFile, bundle, fetch, platform, resolve, verify};
use kernelhub_manifest::Strictness;
use kernelhub_manifest::lock::Lockfile;
use kernelhub_manifest::project::{ProjectManifest, RepoType};
use kernelhub_manifest::select::Platform;
use kernelhub_manifest::trust::TrustPolicy;

use crate::{Outcome, eprint};

type CliResult = Result<Outcome, Box<dyn std::error::Error>>;

/// Where the project is and how to reach the Hub; shared by every command.
#[derive(Debug, clap::Args)]
pub(crate) struct HubArgs {
    /// Directory holding `kernels.toml` and `kernels.lock`.
    #[arg(long, default_value = ".", value_name = "DIR")]
    project: PathBuf,
    /// Hub base URL [env: HF_ENDPOINT]
    #[arg(long)]
    endpoint: Option<String>,
    /// Hub cache directory [env: KERNELHUB_CACHE, HF_HUB_CACHE, HF_HOME]
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Repo type for dependencies that do not set one: kernel or model.
    #[arg(long, value_parser = parse_repo_type)]
    repo_type: Option<RepoType>,
    /// Never use the network [env: HF_HUB_OFFLINE=1]
    #[arg(long)]
    offline: bool,
}

fn parse_repo_type(text: &str) -> Result<RepoType, String> {
    text.parse()
}

/// Which platforms' artifacts a command covers.
#[derive(Debug, clap::Args)]
pub(crate) struct TargetArgs {
    /// A platform to fetch for: `cuda:sm_XY`, `rocm:gfxNNN` or `wgpu`; repeatable [default: this machine]
    #[arg(long = "target", value_name = "PLATFORM", value_parser = parse_platform)]
    targets: Vec<Platform>,
    /// Every artifact of every kernel.
    #[arg(long, conflicts_with = "targets")]
    all: bool,
}

fn parse_platform(text: &str) -> Result<Platform, String> {
    text.parse()
        .map_err(|e: kernelhub_manifest::select::PlatformError| e.to_string())
}

impl TargetArgs {
    fn platforms(&self) -> Platforms {
        if self.all {
            Platforms::All
        } else if self.targets.is_empty() {
            Platforms::These(platform::host_platforms())
        } else {
            Platforms::These(self.targets.clone())
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct LockArgs {
    #[command(flatten)]
    hub: HubArgs,
    /// Re-resolve every dependency, or only those named.
    #[arg(long, value_name = "NAME", num_args = 0..)]
    update: Option<Vec<String>>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct FetchArgs {
    #[command(flatten)]
    hub: HubArgs,
    #[command(flatten)]
    targets: TargetArgs,
    /// Downloads at the same time.
    #[arg(long, short = 'j', default_value_t = 8)]
    jobs: usize,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    hub: HubArgs,
    #[command(flatten)]
    targets: TargetArgs,
    /// Download again whatever is missing or corrupt.
    #[arg(long)]
    repair: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum BundleCommand {
    /// Write one archive with `kernels.lock` and the cache files it pins.
    Create(BundleCreateArgs),
    /// Verify a bundle and install it into the cache, all or nothing.
    Import(BundleImportArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct BundleCreateArgs {
    /// The archive to write (a gzip-compressed tar).
    output: PathBuf,
    #[command(flatten)]
    hub: HubArgs,
    #[command(flatten)]
    targets: TargetArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct BundleImportArgs {
    /// The archive to import.
    bundle: PathBuf,
    /// Refuse the bundle unless it pins exactly what this lock pins [default: the project's kernels.lock, if any]
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
    /// Also write the bundle's lock here.
    #[arg(long, value_name = "FILE")]
    write_lock: Option<PathBuf>,
    #[command(flatten)]
    hub: HubArgs,
}

impl HubArgs {
    /// The project directory.
    pub(crate) fn project(&self) -> &Path {
        &self.project
    }
}

/// The settings, plus `kernels.toml` when the project has one.
pub(crate) fn settings(
    args: &HubArgs,
    project: Option<&ProjectManifest>,
) -> Result<Settings, Box<dyn std::error::Error>> {
    let overrides = Overrides {
        endpoint: args.endpoint.clone(),
        cache_dir: args.cache_dir.clone(),
        repo_type: args.repo_type,
        offline: args.offline,
    };
    Ok(Settings::from_env(&overrides, project.map(|p| &p.hub))?)
}

pub(crate) fn read_project(
    dir: &Path,
) -> Result<Option<ProjectManifest>, Box<dyn std::error::Error>> {
    let path = dir.join("kernels.toml");
    let text = match fs_err::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let parsed = ProjectManifest::parse(&text, Path::new("kernels.toml"), Strictness::Load);
    report_diagnostics(&parsed.diagnostics, &text);
    match parsed.value {
        Some(project) if parsed.complete => Ok(Some(project)),
        _ => Err(format!(
            "`{}` has errors (above); fix them and run again",
            path.display()
        )
        .into()),
    }
}

pub(crate) fn read_lock(dir: &Path) -> Result<Lockfile, Box<dyn std::error::Error>> {
    let path = dir.join("kernels.lock");
    let text = match fs_err::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "`{}` does not exist\n  hint: run `kernelhub lock` to resolve `kernels.toml`",
                path.display()
            )
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    parse_lock(&text, &path)
}

fn parse_lock(text: &str, path: &Path) -> Result<Lockfile, Box<dyn std::error::Error>> {
    let parsed = Lockfile::parse(text, path, Strictness::Load);
    report_diagnostics(&parsed.diagnostics, text);
    match parsed.value {
        Some(lock) if parsed.complete => Ok(lock),
        _ => Err(format!(
            "`{}` has errors (above)\n  hint: run `kernelhub lock` to rewrite it",
            path.display()
        )
        .into()),
    }
}

fn report_diagnostics(diagnostics: &[kernelhub_manifest::Diagnostic], text: &str) {
    let mut out = String::new();
    for d in diagnostics {
        out.push_str(&d.render(Some(text)));
        out.push('\n');
    }
    eprint(&out);
}

pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// A cargo-style status line: the verb right-aligned in 12 columns.
pub(crate) fn status(verb: &str, message: impl std::fmt::Display) {
    eprint(&format!("{verb:>12} {message}\n"));
}

pub(crate) fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// Writes `text` to `path` atomically, and only if it differs.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<bool> {
    if fs_err::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut temporary = tempfile::NamedTempFile::new_in(dir)?;
    temporary.write_all(text.as_bytes())?;
    temporary.as_file().sync_all()?;
    temporary.persist(path).map_err(|e| e.error)?;
    Ok(true)
}

pub(crate) fn lock(args: LockArgs) -> CliResult {
    let project = read_project(&args.hub.project)?.ok_or_else(|| {
        format!(
            "`{}` does not exist\n  hint: write one listing the kernels to use (see docs/formats.md)",
            args.hub.project.join("kernels.toml").display()
        )
    })?;
    let settings = settings(&args.hub, Some(&project))?;
    let lock_path = args.hub.project.join("kernels.lock");
    let previous = match fs_err::read_to_string(&lock_path) {
        Ok(text) => Some(parse_lock(&text, &lock_path)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let update = match args.update {
        None => Update::Stale,
        Some(names) if names.is_empty() => Update::All,
        Some(names) => Update::Only(names),
    };
    let Some(client) = HubClient::connect(&settings)? else {
        return Err("`kernelhub lock` needs the Hub, and kernelhub is offline (`--offline` or `HF_HUB_OFFLINE`)\n  hint: lock on a connected machine and carry `kernels.lock` across".into());
    };
    let cache = HubCache::new(&settings.cache_dir);
    let runtime = runtime()?;
    let mut lock = runtime.block_on(resolve::lock(
        &client,
        &cache,
        &project,
        settings.repo_type,
        previous.as_ref(),
        &update,
    ))?;
    for dependency in &project.dependencies {
        if dependency.layout == kernelhub_manifest::project::Layout::Kernelhub {
            continue;
        }
        let name = dependency.name.get_ref();
        if project.trust.require_signatures {
            return Err(format!(
                "`kernels.toml` requires signatures, but `{name}` uses `layout = \"hf\"`, whose repos kernelhub cannot check signatures for yet (their files are verified against `metadata.json` digests only)\n  hint: remove `require_signatures` and list keys per scope instead, or drop the dependency"
            )
            .into());
        }
        let before = previous
            .as_ref()
            .and_then(|p| p.hf.iter().find(|k| &k.name == name));
        let moving = match &update {
            Update::Stale => false,
            Update::All => true,
            Update::Only(names) => names.contains(name),
        };
        let (locked, notes) = runtime.block_on(kernelhub_hf::lock::lock_dependency(
            &client,
            dependency,
            settings.repo_type,
            before,
            moving,
        ))?;
        for (verb, message) in notes {
            status(verb, message);
        }
        lock.hf.push(locked);
    }
    lock.hf.sort_by(|a, b| a.name.cmp(&b.name));
    let old_heads: Vec<_> = previous.iter().flat_map(|p| p.heads()).collect();
    let describe = |name: &str| -> Option<String> {
        let old = previous.as_ref()?;
        let now = lock
            .kernels
            .iter()
            .find(|k| k.name == name)
            .map(|k| k.to_owned());
        let before = old.kernels.iter().find(|k| k.name == name);
        if let (Some(now), Some(before)) = (now, before) {
            return Some(if now == *before { "Locked" } else { "Updated" }.to_string());
        }
        let now = lock.hf.iter().find(|k| k.name == name)?;
        let before = old.hf.iter().find(|k| k.name == name)?;
        Some(if now == before { "Locked" } else { "Updated" }.to_string())
    };
    for head in lock.heads() {
        let verb = describe(head.name).unwrap_or_else(|| "Added".to_string());
        status(
            &verb,
            format!("{} {} ({})", head.name, head.reference, short(head.commit)),
        );
    }
    for gone in old_heads
        .iter()
        .filter(|p| !lock.heads().any(|k| k.name == p.name))
    {
        status("Removed", gone.name);
    }
    let changed = write_atomically(&lock_path, &lock.to_toml())?;
    status(
        if changed { "Wrote" } else { "Unchanged" },
        format!("{} ({} kernels)", lock_path.display(), lock.heads().count()),
    );
    Ok(Outcome::Clean)
}

/// Draws one progress bar of bytes on a terminal; nothing otherwise.
pub(crate) struct Bar(pub(crate) ProgressBar);

impl Observer for Bar {
    fn planned(&self, _files: usize, bytes: u64) {
        self.0.set_length(bytes);
    }
    fn received(&self, _file: &PinnedFile, bytes: u64) {
        self.0.inc(bytes);
    }
    fn finished(&self, file: &PinnedFile, outcome: FileOutcome) {
        if outcome == FileOutcome::Cached {
            self.0.inc(file.size.exact().unwrap_or(0));
        }
        self.0.set_message(file.path.clone());
    }
}

pub(crate) fn progress_bar() -> Bar {
    let bar = ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} {wide_msg}") {
        bar.set_style(style);
    }
    Bar(bar)
}

/// What a fetch did: the `kernel.toml` kernels, then the Hugging Face
/// layout ones by name.
type Fetched = (FetchReport, Vec<(String, Vec<FetchedVariant>)>);

fn run_fetch(
    settings: &Settings,
    lock: &Lockfile,
    trust: &TrustPolicy,
    platforms: &Platforms,
    jobs: usize,
) -> Result<Fetched, Box<dyn std::error::Error>> {
    let client = HubClient::connect(settings)?;
    let cache = HubCache::new(&settings.cache_dir);
    let bar = progress_bar();
    let runtime = runtime()?;
    let report = runtime.block_on(fetch::fetch(
        client.as_ref(),
        &cache,
        lock,
        trust,
        platforms,
        jobs,
        &bar,
    ));
    let mut hf = Vec::new();
    if trust.require_signatures
        && let Some(locked) = lock.hf.first()
    {
        return Err(format!(
            "`kernels.toml` requires signatures, but `{}` is a Hugging Face layout dependency, which kernelhub cannot check signatures for yet",
            locked.name
        )
        .into());
    }
    for locked in &lock.hf {
        let fetched = runtime.block_on(kernelhub_hf::lock::fetch_locked(
            client.as_ref(),
            &cache,
            locked,
            &bar,
        ));
        hf.push((locked.name.clone(), fetched?));
    }
    bar.0.finish_and_clear();
    Ok((report?, hf))
}

/// Files and bytes of Hugging Face variants with this outcome.
fn hf_count(hf: &[(String, Vec<FetchedVariant>)], wanted: FileOutcome) -> (usize, u64) {
    hf.iter()
        .flat_map(|(_, variants)| variants.iter().flat_map(|v| &v.files))
        .filter(|(_, o)| *o == wanted)
        .fold((0, 0), |(n, b), (f, _)| {
            (n + 1, b + f.size.exact().unwrap_or(0))
        })
}

fn describe_platforms(platforms: &Platforms) -> String {
    match platforms {
        Platforms::All => "all platforms".to_string(),
        Platforms::These(list) => list
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

pub(crate) fn human_bytes(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

pub(crate) fn fetch(args: FetchArgs) -> CliResult {
    let started = Instant::now();
    let project = read_project(&args.hub.project)?;
    let settings = settings(&args.hub, project.as_ref())?;
    let lock = read_lock(&args.hub.project)?;
    if let Some(project) = &project {
        let stale = resolve::stale_entries(project, settings.repo_type, &lock);
        if !stale.is_empty() {
            status(
                "Warning",
                format!(
                    "`kernels.lock` does not match `kernels.toml` for {}; fetching what the lock pins (run `kernelhub lock` to update it)",
                    stale.join(", ")
                ),
            );
        }
    }
    let platforms = args.targets.platforms();
    let trust = project.map(|p| p.trust).unwrap_or_default();
    let (report, hf) = run_fetch(&settings, &lock, &trust, &platforms, args.jobs)?;
    for kernel in &report.kernels {
        for (platform, op, dtype) in &kernel.uncovered {
            status(
                "Warning",
                format!(
                    "{}: nothing runs `{op}` for {dtype} on `{platform}`",
                    kernel.locked.name
                ),
            );
        }
    }
    let (mut downloaded, mut downloaded_bytes) = report.downloaded();
    let (mut cached, mut cached_bytes) = report.cached();
    let (n, b) = hf_count(&hf, FileOutcome::Downloaded);
    (downloaded, downloaded_bytes) = (downloaded + n, downloaded_bytes + b);
    let (n, b) = hf_count(&hf, FileOutcome::Cached);
    (cached, cached_bytes) = (cached + n, cached_bytes + b);
    let elapsed = started.elapsed();
    status(
        "Fetched",
        format!(
            "{} kernels for {}: {downloaded} files downloaded ({}), {cached} already cached, in {:.2}s",
            report.kernels.len() + hf.len(),
            describe_platforms(&platforms),
            human_bytes(downloaded_bytes),
            elapsed.as_secs_f64()
        ),
    );
    if args.json {
        let kernels: Vec<serde_json::Value> = report
            .kernels
            .iter()
            .map(|k| {
                serde_json::json!({
                    "name": k.locked.name,
                    "repo": k.locked.repo,
                    "commit": k.locked.commit,
                    "files": k.files.iter().map(|(f, o)| serde_json::json!({
                        "path": f.path,
                        "checksum": f.checksum.to_string(),
                        "size": f.size.exact(),
                        "outcome": match o { FileOutcome::Cached => "cached", FileOutcome::Downloaded => "downloaded" },
                    })).collect::<Vec<_>>(),
                    "uncovered": k.uncovered.iter().map(|(p, op, dtype)| serde_json::json!({
                        "platform": p.to_string(), "op": op, "dtype": dtype.to_string(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let summary = serde_json::json!({
            "cache": settings.cache_dir,
            "platforms": describe_platforms(&platforms),
            "downloaded": { "files": downloaded, "bytes": downloaded_bytes },
            "cached": { "files": cached, "bytes": cached_bytes },
            "seconds": elapsed.as_secs_f64(),
            "kernels": kernels,
            "hf": hf.iter().map(|(name, variants)| serde_json::json!({
                "name": name,
                "variants": variants.iter().map(|v| serde_json::json!({
                    "variant": v.name,
                    "files": v.files.len(),
                    "downloaded": v.files.iter().filter(|(_, o)| *o == FileOutcome::Downloaded).count(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", serde_json::to_string_pretty(&summary)?)?;
    }
    Ok(Outcome::Clean)
}

fn print_problems(report: &verify::VerifyReport) {
    for file in &report.missing {
        status(
            "Missing",
            format!("{} `{}` ({})", file.repo, file.path, short(&file.commit)),
        );
    }
    for (file, problem) in &report.corrupt {
        status(
            "Corrupt",
            format!("{} `{}` {problem}", file.repo, file.path),
        );
    }
}

/// [`verify::verify`] for the `[[kernel]]` entries, then the Hugging Face
/// layout ones: their `metadata.json` files, and the files those pin.
fn verify_all(
    cache: &HubCache,
    lock: &Lockfile,
    platforms: &Platforms,
    threads: usize,
) -> Result<verify::VerifyReport, Box<dyn std::error::Error>> {
    let mut report = verify::verify(cache, lock, platforms, threads)?;
    for locked in &lock.hf {
        for (file, state) in kernelhub_hf::lock::verify_locked(cache, locked, threads)? {
            report.record(file, state);
        }
    }
    Ok(report)
}

pub(crate) fn verify(args: VerifyArgs) -> CliResult {
    let project = read_project(&args.hub.project)?;
    let settings = settings(&args.hub, project.as_ref())?;
    let lock = read_lock(&args.hub.project)?;
    let platforms = args.targets.platforms();
    let cache = HubCache::new(&settings.cache_dir);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut report = verify_all(&cache, &lock, &platforms, threads)?;
    if args.repair && !report.is_clean() {
        print_problems(&report);
        let broken = report.missing.len() + report.corrupt.len();
        let trust = project.map(|p| p.trust).unwrap_or_default();
        let (fetched, hf) = run_fetch(&settings, &lock, &trust, &platforms, 8)?;
        report = verify_all(&cache, &lock, &platforms, threads)?;
        // A missing link to a blob that still verifies is relinked, not downloaded.
        status(
            "Repaired",
            format!(
                "{} of {broken} files ({} downloaded)",
                broken.saturating_sub(report.missing.len() + report.corrupt.len()),
                fetched.downloaded().0 + hf_count(&hf, FileOutcome::Downloaded).0
            ),
        );
    }
    print_problems(&report);
    let bytes: u64 = report
        .verified
        .iter()
        .map(|f| f.size.exact().unwrap_or(0))
        .sum();
    status(
        "Verified",
        format!(
            "{} files ({}) for {}; {} missing, {} corrupt",
            report.verified.len(),
            human_bytes(bytes),
            describe_platforms(&platforms),
            report.missing.len(),
            report.corrupt.len()
        ),
    );
    if args.json {
        let list = |files: &mut dyn Iterator<Item = &PinnedFile>| -> Vec<serde_json::Value> {
            files
                .map(|f| serde_json::json!({ "repo": f.repo, "commit": f.commit, "path": f.path }))
                .collect()
        };
        let summary = serde_json::json!({
            "verified": report.verified.len(),
            "missing": list(&mut report.missing.iter()),
            "corrupt": list(&mut report.corrupt.iter().map(|(f, _)| f)),
        });
        writeln!(
            std::io::stdout().lock(),
            "{}",
            serde_json::to_string_pretty(&summary)?
        )?;
    }
    if !report.is_clean() {
        eprint(
            "  hint: run `kernelhub verify --repair` (or `kernelhub fetch`) on a connected machine\n",
        );
        return Ok(Outcome::Problems);
    }
    Ok(Outcome::Clean)
}

pub(crate) fn bundle(command: BundleCommand) -> CliResult {
    match command {
        BundleCommand::Create(args) => {
            let project = read_project(&args.hub.project)?;
            let settings = settings(&args.hub, project.as_ref())?;
            let lock = read_lock(&args.hub.project)?;
            let platforms = args.targets.platforms();
            let cache = HubCache::new(&settings.cache_dir);
            let summary = bundle::create(&cache, &lock, &platforms, &args.output)?;
            status(
                "Bundled",
                format!(
                    "{} ({} files, {} before compression) for {}",
                    args.output.display(),
                    summary.files,
                    human_bytes(summary.bytes),
                    describe_platforms(&platforms)
                ),
            );
        }
        BundleCommand::Import(args) => {
            let settings = settings(&args.hub, None)?;
            // The operator's own lock: `--lock`, else the project's.
            let project_lock = args.hub.project.join("kernels.lock");
            let trusted = args
                .lock
                .clone()
                .or_else(|| project_lock.exists().then_some(project_lock));
            let expected = match &trusted {
                Some(path) => Some(parse_lock(&fs_err::read_to_string(path)?, path)?),
                None => {
                    status(
                        "Warning",
                        "no `kernels.lock` to check the bundle against (`--lock`); trusting its own lock, and writing no refs",
                    );
                    None
                }
            };
            let cache = HubCache::new(&settings.cache_dir);
            let trust = read_project(&args.hub.project)?
                .map(|p| p.trust)
                .unwrap_or_default();
            let (lock, summary) = bundle::import(&cache, &args.bundle, expected.as_ref(), &trust)?;
            if let Some(path) = &args.write_lock {
                write_atomically(path, &lock.to_toml())?;
            }
            status(
                "Imported",
                format!(
                    "{} kernels, {} files ({}) into {}",
                    lock.kernels.len(),
                    summary.files,
                    human_bytes(summary.bytes),
                    settings.cache_dir.display()
                ),
            );
        }
    }
    Ok(Outcome::Clean)
}
