//! The `kernelhub` binary: argument parsing, dispatch, and cargo-style error
//! reporting. Each subcommand lives in its own module; libraries never print,
//! so everything users read is written from here.

mod check;
mod hf;
mod hub;
mod manifest;
mod run;
mod sign;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::prelude::*;

/// Fetch, verify and load prebuilt GPU kernels.
#[derive(Debug, Parser)]
#[command(name = "kernelhub", version, about, propagate_version = true)]
struct Cli {
    /// Say more: retries and waits for other processes (-v), every request (-vv).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the reference kernels (or given ones) on the best device here and
    /// compare every op with the CPU reference.
    Run(run::RunArgs),
    /// Show devices, adapters, and which artifact runs each op and why.
    Doctor(run::DoctorArgs),
    /// Check that kernel repos are publishable: manifest, artifacts, hashes, contents.
    Check(CheckArgs),
    /// Maintain a kernel.toml.
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Sign a kernel.toml with a minisign key (writes kernel.toml.minisig).
    Sign(sign::SignArgs),
    /// Resolve kernels.toml into kernels.lock (commits and manifest hashes).
    Lock(hub::LockArgs),
    /// Download and verify what kernels.lock pins, for this machine or named platforms.
    Fetch(hub::FetchArgs),
    /// Re-hash what kernels.lock pins in the cache; list missing or corrupt files.
    Verify(hub::VerifyArgs),
    /// Carry a lock and its files to an air-gapped machine.
    #[command(subcommand)]
    Bundle(hub::BundleCommand),
    /// Hugging Face's kernel repos (build/<variant>/ with metadata.json digests).
    #[command(subcommand)]
    Hf(hf::HfCommand),
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// Kernel repo directories or kernel.toml files [default: .]
    paths: Vec<PathBuf>,
    /// How to print problems.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    format: OutputFormat,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    deny_warnings: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// rustc-style messages with source snippets, on stderr.
    Human,
    /// One JSON document on stdout.
    Json,
}

#[derive(Debug, Subcommand)]
enum ManifestCommand {
    /// Rewrite each artifact's `size` and `sha256` from the files on disk,
    /// keeping comments and formatting.
    Update(UpdateArgs),
}

#[derive(Debug, clap::Args)]
struct UpdateArgs {
    /// Kernel repo directories or kernel.toml files.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Write nothing; exit 1 if any manifest is out of date.
    #[arg(long)]
    check: bool,
}

/// How a command ended, mapped onto the process exit code.
enum Outcome {
    /// Exit 0.
    Clean,
    /// Exit 1: the inputs have problems.
    Problems,
    /// Exit 2: an input could not be used at all (already reported).
    Unusable,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Library logs go to stderr: warnings (retries) always, more with -v.
    let level = match cli.verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    // The GPU stack's own messages (a Vulkan loader that finds no driver)
    // repeat what kernelhub's errors say: shown only with -vv.
    let gpu_stack = if cli.verbose >= 2 {
        tracing::level_filters::LevelFilter::DEBUG
    } else {
        tracing::level_filters::LevelFilter::OFF
    };
    let targets = tracing_subscriber::filter::Targets::new()
        .with_default(level)
        .with_target("wgpu_hal", gpu_stack)
        .with_target("wgpu_core", gpu_stack)
        .with_target("naga", gpu_stack);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_ansi(
                    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
                )
                .without_time()
                .with_filter(targets),
        )
        .init();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Doctor(args) => run::doctor(args),
        Command::Check(args) => check::run(args),
        Command::Sign(args) => sign::run(args),
        Command::Manifest(ManifestCommand::Update(args)) => manifest::update(args),
        Command::Lock(args) => hub::lock(args),
        Command::Fetch(args) => hub::fetch(args),
        Command::Verify(args) => hub::verify(args),
        Command::Bundle(command) => hub::bundle(command),
        Command::Hf(command) => hf::run(command),
    };
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        Ok(Outcome::Unusable) => ExitCode::from(2),
        Err(error) => {
            report_error(error.as_ref());
            ExitCode::from(2)
        }
    }
}

/// Prints an error and its causes the way cargo does.
fn report_error(error: &(dyn std::error::Error + 'static)) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {error}");
    let mut source = error.source();
    if source.is_some() {
        let _ = writeln!(stderr, "\nCaused by:");
    }
    while let Some(cause) = source {
        let _ = writeln!(stderr, "  {cause}");
        source = cause.source();
    }
}

/// Writes to stderr, ignoring a closed pipe.
fn eprint(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
