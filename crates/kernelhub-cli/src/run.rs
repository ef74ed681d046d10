//! `kernelhub run` and `kernelhub doctor`: the runtime seen from the
//! command line. `run` loads kernels (by default the reference kernels
//! compiled into kernelhub: no network, no cache), runs every op the chosen
//! device can run against the CPU reference and prints a table; `doctor`
//! shows the devices, the adapters and, for each kernel, which artifact
//! runs each op and why every other one does not.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kernelhub::exercise::{self, Timing, tolerance};
use kernelhub::hub::DevicePlan;
use kernelhub::{Dtype, Hub, KernelSource, embedded};
use kernelhub_hub::cache::HubCache;
use kernelhub_manifest::KernelManifest;

use crate::hub::HubArgs;
use crate::{Outcome, eprint};

type CliResult = Result<Outcome, Box<dyn std::error::Error>>;

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// Kernels: names of embedded reference kernels, or kernel repo
    /// directories [default: every embedded kernel]
    kernels: Vec<String>,
    /// Rows per op: 256 is quick on a CPU; 16384 keeps a datacenter GPU busy.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(0..=65536))]
    tokens: u32,
    /// Time each op for at least this many milliseconds.
    #[arg(long, default_value_t = 200, value_name = "MS")]
    time: u64,
    /// Only these dtypes [default: every dtype the device runs]
    #[arg(long, value_parser = parse_dtype)]
    dtype: Vec<Dtype>,
    /// One JSON object per op on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

fn parse_dtype(text: &str) -> Result<Dtype, String> {
    text.parse()
        .map_err(|()| format!("`{text}` is not a dtype; use {}", Dtype::NAMES.join(", ")))
}

fn source(name: &str) -> KernelSource {
    if embedded::find(name).is_some() && !Path::new(name).join("kernel.toml").exists() {
        KernelSource::Embedded(name.to_string())
    } else {
        KernelSource::Dir(PathBuf::from(name))
    }
}

pub(crate) fn run(args: RunArgs) -> CliResult {
    let hub = Hub::new()?;
    let names: Vec<String> = if args.kernels.is_empty() {
        embedded::KERNELS
            .iter()
            .map(|k| k.name.to_string())
            .collect()
    } else {
        args.kernels.clone()
    };
    let timing = Timing {
        at_least: Duration::from_millis(args.time),
    };
    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(
            out,
            "{:<18} {:<5} {:<20} {:<7} {:<34} {:>10} {:>9} {:>10}  result",
            "op", "dtype", "size", "backend", "device", "max error", "GB/s", "us/launch"
        )?;
    }
    let mut failures = 0usize;
    let mut notes: Vec<String> = Vec::new();
    for name in &names {
        let loaded = match hub.load(&source(name)) {
            Ok(loaded) => loaded,
            Err(error) => {
                crate::report_error(&error);
                failures += 1;
                continue;
            }
        };
        let device = loaded.device();
        let info = device.info();
        let best = &loaded.plans()[0];
        for choice in &best.choices {
            if !args.dtype.is_empty() && !args.dtype.contains(&choice.dtype) {
                continue;
            }
            if choice.chosen.is_none() {
                notes.push(format!(
                    "{} {}: nothing runs it on `{}` (`kernelhub doctor {name}` says why)",
                    choice.op, choice.dtype, info.name
                ));
                continue;
            }
            let measured = loaded.op(&choice.op, choice.dtype).and_then(|op| {
                exercise::exercise(device.as_ref(), op.as_ref(), args.tokens, timing)
            });
            match measured {
                Ok(m) if args.json => {
                    failures += usize::from(m.mismatches != 0);
                    let line = serde_json::json!({
                        "op": m.op,
                        "dtype": m.dtype.to_string(),
                        "size": m.size,
                        "tokens": args.tokens,
                        "backend": info.backend.to_string(),
                        "device": info.name,
                        "artifact": m.artifact,
                        "max_error": m.max_error,
                        "mismatches": m.mismatches,
                        "bytes": m.bytes,
                        "launches": m.launches,
                        "us_per_launch": m.per_launch.as_secs_f64() * 1e6,
                        "gb_per_s": m.bytes_per_second() / 1e9,
                    });
                    writeln!(out, "{line}")?;
                }
                Ok(m) => {
                    let ok = m.mismatches == 0;
                    failures += usize::from(!ok);
                    let (abs, rel) = tolerance(m.dtype);
                    writeln!(
                        out,
                        "{:<18} {:<5} {:<20} {:<7} {:<34} {:>10.2e} {:>9.1} {:>10.1}  {}",
                        m.op,
                        m.dtype.to_string(),
                        m.size,
                        info.backend.to_string(),
                        truncate(&info.name, 34),
                        m.max_error,
                        m.bytes_per_second() / 1e9,
                        m.per_launch.as_secs_f64() * 1e6,
                        if ok {
                            "ok".to_string()
                        } else {
                            format!("FAIL: {} outside {abs:e} + {rel:e}·|ref|", m.mismatches)
                        }
                    )?;
                }
                Err(error) if args.json => {
                    failures += 1;
                    let line = serde_json::json!({
                        "op": choice.op,
                        "dtype": choice.dtype.to_string(),
                        "tokens": args.tokens,
                        "backend": info.backend.to_string(),
                        "device": info.name,
                        "error": error.to_string(),
                    });
                    writeln!(out, "{line}")?;
                    crate::report_error(&error);
                }
                Err(error) => {
                    failures += 1;
                    writeln!(
                        out,
                        "{:<18} {:<5} {:<20} {:<7} {:<34} {:>10} {:>9} {:>10}  FAIL",
                        choice.op,
                        choice.dtype.to_string(),
                        "-",
                        info.backend.to_string(),
                        truncate(&info.name, 34),
                        "-",
                        "-",
                        "-"
                    )?;
                    crate::report_error(&error);
                }
            }
        }
    }
    drop(out);
    for note in notes {
        eprint(&format!("note: {note}\n"));
    }
    Ok(if failures == 0 {
        Outcome::Clean
    } else {
        eprint(&format!("error: {failures} op(s) failed\n"));
        Outcome::Problems
    })
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let kept: String = text.chars().take(width - 1).collect();
        format!("{kept}…")
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct DoctorArgs {
    /// Kernels to explain: names of embedded reference kernels, or kernel
    /// repo directories [default: the kernels of `kernels.lock`, else every
    /// embedded kernel]
    kernels: Vec<String>,
    #[command(flatten)]
    hub: HubArgs,
}

pub(crate) fn doctor(args: DoctorArgs) -> CliResult {
    let mut out = std::io::stdout().lock();
    writeln!(out, "wgpu adapters, in the order kernelhub prefers them:")?;
    let adapters = kernelhub_wgpu::adapters();
    if adapters.is_empty() {
        writeln!(out, "  none")?;
    }
    for adapter in &adapters {
        let features: Vec<String> = adapter.features.iter().map(|f| f.to_string()).collect();
        writeln!(
            out,
            "  {} ({}, {}; {})\n    features: {}{}",
            adapter.name,
            adapter.device_type,
            adapter.backend,
            adapter.driver,
            if features.is_empty() {
                "none".to_string()
            } else {
                features.join(", ")
            },
            adapter
                .subgroup_sizes
                .map(|(min, max)| format!(" (subgroup size {min} to {max})"))
                .unwrap_or_default()
        )?;
    }
    let platforms: Vec<String> = kernelhub_hub::platform::host_platforms()
        .iter()
        .map(|p| p.to_string())
        .collect();
    writeln!(
        out,
        "platforms `kernelhub fetch` downloads for: {}",
        platforms.join(", ")
    )?;
    let hub = match Hub::new() {
        Ok(hub) => hub,
        Err(error) => {
            drop(out);
            crate::report_error(&error);
            return Ok(Outcome::Problems);
        }
    };
    writeln!(out, "devices:")?;
    for device in hub.devices() {
        let info = device.info();
        writeln!(out, "  {}: {} ({})", info.backend, info.name, info.kind)?;
    }
    for (backend, why) in hub.unavailable() {
        writeln!(out, "  {backend}: unavailable: {why}")?;
    }
    // The project's locked kernels, or the embedded reference kernels.
    let lock_path = args.hub.project().join("kernels.lock");
    let sources: Vec<KernelSource> = if !args.kernels.is_empty() {
        writeln!(out, "kernels:")?;
        args.kernels.iter().map(|k| source(k)).collect()
    } else if lock_path.exists() {
        let project = crate::hub::read_project(args.hub.project())?;
        let settings = crate::hub::settings(&args.hub, project.as_ref())?;
        let lock = crate::hub::read_lock(args.hub.project())?;
        writeln!(out, "kernels in `{}`:", lock_path.display())?;
        lock.kernels
            .into_iter()
            .map(|kernel| KernelSource::Cached {
                cache: HubCache::new(&settings.cache_dir),
                kernel,
                trust: project
                    .as_ref()
                    .map(|p| p.trust.clone())
                    .unwrap_or_default(),
            })
            .collect()
    } else {
        writeln!(out, "embedded reference kernels (no kernels.lock here):")?;
        embedded::KERNELS
            .iter()
            .map(|k| KernelSource::Embedded(k.name.to_string()))
            .collect()
    };
    let mut problems = 0usize;
    for source in &sources {
        let manifest = match source.manifest() {
            Ok(manifest) => manifest,
            Err(error) => {
                writeln!(out, "  {}: {error}", source.describe())?;
                problems += 1;
                continue;
            }
        };
        // Loading asks the drivers too: an artifact a driver refuses shows
        // with the driver's reason, and the plan that replaced it.
        match hub.load(source) {
            Ok(loaded) => print_plans(&mut out, &hub, &manifest, loaded.plans())?,
            Err(error) => {
                print_plans(&mut out, &hub, &manifest, &hub.plans(&manifest))?;
                writeln!(out, "    does not load: {error}")?;
                problems += 1;
            }
        }
    }
    Ok(if problems == 0 {
        Outcome::Clean
    } else {
        Outcome::Problems
    })
}

fn print_plans(
    out: &mut impl Write,
    hub: &Hub,
    manifest: &KernelManifest,
    plans: &[DevicePlan],
) -> std::io::Result<()> {
    let total = plans.first().map_or(0, |p| p.choices.len());
    writeln!(
        out,
        "  {} {}",
        manifest.kernel.name.get_ref(),
        manifest.kernel.version.get_ref()
    )?;
    for (rank, plan) in plans.iter().enumerate() {
        let info = hub.devices()[plan.device].info();
        writeln!(
            out,
            "    {} {} ({}): runs {} of {total} op/dtype pairs",
            if rank == 0 { "->" } else { "  " },
            info.name,
            info.backend,
            plan.covered()
        )?;
        // Each artifact not chosen, once, with every reason given for it;
        // for the chosen device also what runs each (op, dtype).
        let mut unused: Vec<(usize, Vec<&str>)> = Vec::new();
        for choice in &plan.choices {
            match choice.chosen {
                _ if rank > 0 => {}
                Some(index) => writeln!(
                    out,
                    "       {} {}: `{}`",
                    choice.op,
                    choice.dtype,
                    manifest.artifacts[index].path.get_ref()
                )?,
                None => writeln!(
                    out,
                    "       {} {}: nothing runs it",
                    choice.op, choice.dtype
                )?,
            }
            for (index, why) in &choice.rejected {
                match unused.iter_mut().find(|(i, _)| i == index) {
                    Some((_, reasons)) if !reasons.contains(&why.as_str()) => reasons.push(why),
                    Some(_) => {}
                    None => unused.push((*index, vec![why])),
                }
            }
        }
        unused.sort_by_key(|(i, _)| *i);
        // Another backend's artifacts say only that they are another
        // backend's: noise on every device but their own.
        if rank > 0 {
            unused.retain(|(i, _)| *manifest.artifacts[*i].backend.get_ref() == info.backend);
        }
        for (index, reasons) in unused {
            writeln!(
                out,
                "       not `{}`: {}",
                manifest.artifacts[index].path.get_ref(),
                reasons.join("; ")
            )?;
        }
    }
    Ok(())
}
