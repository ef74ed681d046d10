//! `kernelhub check`: run the manifest crate's checks over each path and
//! print what they found, as rustc-style text or as JSON.

use std::io::Write;
use std::path::PathBuf;

use kernelhub_manifest::Severity;
use kernelhub_manifest::check::{CheckReport, check_repo};

use crate::{CheckArgs, Outcome, OutputFormat, eprint};

pub(crate) fn run(args: CheckArgs) -> Result<Outcome, Box<dyn std::error::Error>> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths
    };
    // A path that is not a kernel repo is reported at once; the others are
    // still checked, so one stray argument does not hide their problems.
    let mut reports: Vec<(PathBuf, CheckReport)> = Vec::with_capacity(paths.len());
    let mut unusable = false;
    for path in paths {
        match check_repo(&path) {
            Ok(report) => reports.push((path, report)),
            Err(error) => {
                crate::report_error(&error);
                unusable = true;
            }
        }
    }
    let errors: usize = reports.iter().map(|(_, r)| r.count(Severity::Error)).sum();
    let warnings: usize = reports
        .iter()
        .map(|(_, r)| r.count(Severity::Warning))
        .sum();
    let failed = errors > 0 || (args.deny_warnings && warnings > 0);
    match args.format {
        OutputFormat::Human => print_human(&reports, errors, warnings),
        OutputFormat::Json => print_json(&reports, errors, warnings, failed)?,
    }
    Ok(if unusable {
        Outcome::Unusable
    } else if failed {
        Outcome::Problems
    } else {
        Outcome::Clean
    })
}

fn print_human(reports: &[(PathBuf, CheckReport)], errors: usize, warnings: usize) {
    let mut out = String::new();
    for (path, report) in reports {
        for diagnostic in &report.diagnostics {
            let source = report.sources.get(&diagnostic.file).map(String::as_str);
            out.push_str(&diagnostic.render(source));
            out.push('\n');
        }
        let name = report
            .manifest
            .as_ref()
            .and_then(|m| m.kernel.as_ref())
            .map(|k| format!(" ({} {})", k.name.get_ref(), k.version.get_ref()))
            .unwrap_or_default();
        let status = match (
            report.count(Severity::Error),
            report.count(Severity::Warning),
        ) {
            (0, 0) => "ok".to_string(),
            (e, w) => format!("{} error{}, {} warning{}", e, plural(e), w, plural(w)),
        };
        out.push_str(&format!(
            "    Checked {}{name}: {} artifact{} ({} bytes) hashed, {status}\n",
            path.display(),
            report.artifacts_checked,
            plural(report.artifacts_checked),
            report.bytes_hashed,
        ));
    }
    if errors > 0 || warnings > 0 {
        out.push_str(&format!(
            "{}: {} error{} and {} warning{} in {} kernel repo{}\n",
            if errors > 0 { "error" } else { "warning" },
            errors,
            plural(errors),
            warnings,
            plural(warnings),
            reports.len(),
            plural(reports.len())
        ));
    }
    eprint(&out);
}

fn print_json(
    reports: &[(PathBuf, CheckReport)],
    errors: usize,
    warnings: usize,
    failed: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let repos: Vec<_> = reports
        .iter()
        .map(|(path, report)| {
            let kernel = report.manifest.as_ref().and_then(|m| m.kernel.as_ref());
            serde_json::json!({
                "path": path,
                "kernel": kernel.map(|k| k.name.get_ref()),
                "version": kernel.map(|k| k.version.get_ref().to_string()),
                "artifacts_checked": report.artifacts_checked,
                "bytes_hashed": report.bytes_hashed,
                "diagnostics": report
                    .diagnostics
                    .iter()
                    .map(|d| d.to_json(report.sources.get(&d.file).map(String::as_str)))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    let document = serde_json::json!({
        "ok": !failed,
        "errors": errors,
        "warnings": warnings,
        "repos": repos,
    });
    let mut stdout = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut stdout, &document)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(stdout));
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
