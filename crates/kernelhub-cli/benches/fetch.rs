//! `kernelhub fetch` against `huggingface_hub` on the same local olah
//! server, in the same run, for 20 kernel repos (`--all`: every artifact,
//! 120 files).
//!
//! - cold: an empty cache each iteration;
//! - warm: everything already cached (kernelhub re-hashes every file; the
//!   Python client asks the server about each, as it does by default).
//!
//! The baseline is one Python process calling `hf_hub_download` for every
//! file — what `hf download` does per file, without paying interpreter
//! start-up once per repo, so it is the kinder baseline. Needs `.venv` from
//! `scripts/test.sh`. Run: `cargo bench -p kernelhub-cli --bench fetch`.
//!
//! olah runs `KERNELHUB_BENCH_OLAH_WORKERS` processes (default 1). Its
//! multi-process mode was measured slower per request on the 2-core build
//! machine (a sequential client took 3x longer), so one it is.
#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use kernelhub_tests::olah::{Olah, venv};

const SOURCES: [&str; 3] = ["activation", "rmsnorm", "rotary"];
const KERNELS: usize = 20;

const PYTHON: &str = r#"
import json, sys
from huggingface_hub import hf_hub_download
files, cache = json.load(open(sys.argv[1])), sys.argv[2]
for repo, commit, path in files:
    hf_hub_download(repo, path, repo_type="model", revision=commit, cache_dir=cache)
"#;

fn kernelhub(project: &Path, cache: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kernelhub"));
    command
        .current_dir(project)
        .env("KERNELHUB_CACHE", cache)
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_ENDPOINT");
    command
}

fn run(mut command: Command) {
    let output = command.output().expect("command runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn fetch(c: &mut Criterion) {
    let repos: Vec<(String, &str)> = (0..KERNELS)
        .map(|i| (format!("k{i:02}"), SOURCES[i % SOURCES.len()]))
        .collect();
    let workers = std::env::var("KERNELHUB_BENCH_OLAH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    let olah = Olah::start(&repos, workers);
    let work = tempfile::tempdir().expect("tempdir");
    let project = work.path();
    let mut toml = format!(
        "schema = 1\n[hub]\nendpoint = \"{}\"\nrepo_type = \"model\"\n[dependencies]\n",
        olah.endpoint
    );
    for (name, _) in &repos {
        toml += &format!("{name} = {{ repo = \"kernels-test/{name}\", version = \"^1\" }}\n");
    }
    std::fs::write(project.join("kernels.toml"), toml).expect("kernels.toml");
    let warm_ours = project.join("warm-kernelhub");
    let mut lock = kernelhub(project, &warm_ours);
    lock.arg("lock");
    run(lock);
    let mut first = kernelhub(project, &warm_ours);
    first.args(["fetch", "--all", "--json"]);
    let summary = first.output().expect("fetch runs");
    let summary: serde_json::Value = serde_json::from_slice(&summary.stdout).expect("JSON");
    let files: Vec<(String, String, String)> = summary["kernels"]
        .as_array()
        .expect("kernels")
        .iter()
        .flat_map(|k| {
            let repo = k["repo"].as_str().expect("repo").to_string();
            let commit = k["commit"].as_str().expect("commit").to_string();
            k["files"].as_array().expect("files").iter().map(move |f| {
                (
                    repo.clone(),
                    commit.clone(),
                    f["path"].as_str().expect("path").to_string(),
                )
            })
        })
        .collect();
    assert_eq!(
        files.len(),
        KERNELS * 6,
        "a manifest and five artifacts per kernel"
    );
    let list = project.join("files.json");
    std::fs::write(&list, serde_json::to_string(&files).expect("json")).expect("list");
    let script = project.join("download.py");
    std::fs::write(&script, PYTHON).expect("script");
    let python = |cache: &Path| {
        let mut command = Command::new(venv().join("bin/python"));
        command
            .arg(&script)
            .arg(&list)
            .arg(cache)
            .env("HF_ENDPOINT", &olah.endpoint)
            .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            .env_remove("HF_HUB_OFFLINE");
        command
    };
    let warm_theirs = project.join("warm-python");
    run(python(&warm_theirs));
    let fresh = || -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir_in(project).expect("tempdir");
        let cache = dir.path().join("cache");
        (dir, cache)
    };

    let mut cold = c.benchmark_group("cold_fetch_20_kernels");
    cold.sample_size(10);
    cold.bench_function("kernelhub", |b| {
        b.iter_batched(
            fresh,
            |(_dir, cache)| {
                let mut command = kernelhub(project, &cache);
                command.args(["fetch", "--all"]);
                run(command);
            },
            BatchSize::PerIteration,
        )
    });
    cold.bench_function("hf_hub_download", |b| {
        b.iter_batched(
            fresh,
            |(_dir, cache)| run(python(&cache)),
            BatchSize::PerIteration,
        )
    });
    cold.finish();

    let mut warm = c.benchmark_group("warm_fetch_20_kernels");
    warm.sample_size(10);
    warm.bench_function("kernelhub", |b| {
        b.iter(|| {
            let mut command = kernelhub(project, &warm_ours);
            command.args(["fetch", "--all"]);
            run(command);
        })
    });
    warm.bench_function("hf_hub_download", |b| b.iter(|| run(python(&warm_theirs))));
    warm.finish();
}

criterion_group!(benches, fetch);
criterion_main!(benches);
