//! `kernelhub hf fetch --target` against `huggingface_hub` on the same local
//! olah server, in the same run: the variants one target system needs from
//! 5 repos in Hugging Face's kernel layout (fixtures of
//! `tests/support/hf_layout.rs`, 7 variants each), cold (empty cache each
//! iteration).
//!
//! The baseline is what `kernels download` does for a machine: one
//! `snapshot_download(..., allow_patterns=["build/<variant>/*"])` per repo,
//! here in one Python process for all 5 repos. Before timing, the bench
//! asserts that kernelhub downloads exactly the bytes of the matching
//! variants. Needs `.venv` from `scripts/test.sh`.
//! Run: `cargo bench -p kernelhub-cli --bench hf_fetch`.
#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::io::Write;
use std::path::Path;
use std::process::Command;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use kernelhub_tests::hf_layout::{HF_OWNER, build_versioned};
use kernelhub_tests::olah::{Olah, venv};

const REPOS: usize = 5;
const TARGET: &str = "torch2.10-cu128-x86_64-linux";
const VARIANT: &str = "torch210-cxx11-cu128-x86_64-linux";

const PYTHON: &str = r#"
import sys
from huggingface_hub import snapshot_download
cache, variant, repos = sys.argv[1], sys.argv[2], sys.argv[3:]
for repo in repos:
    snapshot_download(repo, repo_type="model", revision="v1", cache_dir=cache,
                      allow_patterns=[f"build/{variant}/*"])
"#;

fn run(mut command: Command) -> Vec<u8> {
    let output = command.output().expect("command runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn hf_fetch(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let names: Vec<String> = (0..REPOS).map(|i| format!("bench{i}")).collect();
    for name in &names {
        build_versioned(&dir.path().join("mirrors"), name);
    }
    let mirrors = dir.path().join("mirrors/models").join(HF_OWNER);
    let olah = Olah::launch(dir, 1, &format!("/api/models/{HF_OWNER}/bench0/refs"));
    let repos: Vec<String> = names.iter().map(|n| format!("{HF_OWNER}/{n}@v1")).collect();
    let plain: Vec<String> = names.iter().map(|n| format!("{HF_OWNER}/{n}")).collect();
    let work = tempfile::tempdir().expect("tempdir");
    let script = work.path().join("download.py");
    std::fs::write(&script, PYTHON).expect("script");

    let kernelhub = |cache: &Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kernelhub"));
        command
            .args([
                "hf",
                "fetch",
                "--target",
                TARGET,
                "--repo-type",
                "model",
                "--endpoint",
                &olah.endpoint,
            ])
            .args(&repos)
            .env("KERNELHUB_CACHE", cache)
            .env_remove("HF_HUB_OFFLINE");
        command
    };
    let python = |cache: &Path| {
        let mut command = Command::new(venv().join("bin/python"));
        command
            .arg(&script)
            .arg(cache)
            .arg(VARIANT)
            .args(&plain)
            .env("HF_ENDPOINT", &olah.endpoint)
            .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            .env_remove("HF_HUB_OFFLINE");
        command
    };

    // Exactly the matching variants' bytes, metadata.json included.
    let mut expected = 0u64;
    for name in &names {
        let listing = Command::new("git")
            .args(["ls-tree", "-r", "-l", "v1", &format!("build/{VARIANT}/")])
            .current_dir(mirrors.join(name))
            .output()
            .expect("git ls-tree");
        for line in String::from_utf8_lossy(&listing.stdout).lines() {
            expected += line
                .split_whitespace()
                .nth(3)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    let probe = work.path().join("probe");
    let mut json = kernelhub(&probe);
    json.arg("--json");
    let summary: serde_json::Value = serde_json::from_slice(&run(json)).expect("JSON");
    let fetched: u64 = summary["variants"]
        .as_array()
        .expect("variants")
        .iter()
        .flat_map(|v| {
            v["files"]
                .as_array()
                .expect("files")
                .iter()
                .map(|f| f["size"].as_u64().unwrap_or(0))
        })
        .sum();
    assert_eq!(
        fetched, expected,
        "kernelhub fetched more or less than the matching variants"
    );
    // Printed for BENCHMARKS.md: the bytes of the matching variants.
    let _ = writeln!(
        std::io::stderr(),
        "matching variants: {expected} bytes in {REPOS} repos"
    );

    let fresh = || {
        let dir = tempfile::tempdir_in(work.path()).expect("tempdir");
        let cache = dir.path().join("cache");
        (dir, cache)
    };
    let mut group = c.benchmark_group("hf_fetch_one_target_5_repos");
    group.sample_size(10);
    group.bench_function("kernelhub", |b| {
        b.iter_batched(
            fresh,
            |(_dir, cache)| run(kernelhub(&cache)),
            BatchSize::PerIteration,
        )
    });
    group.bench_function("snapshot_download", |b| {
        b.iter_batched(
            fresh,
            |(_dir, cache)| run(python(&cache)),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, hf_fetch);
criterion_main!(benches);
