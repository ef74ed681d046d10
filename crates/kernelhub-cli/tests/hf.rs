//! `kernelhub hf`: Hugging Face's kernel layout against olah serving
//! fixture repos (`tests/support/hf_layout.rs`), and the Python `kernels`
//! package finding what kernelhub fetched, offline and without torch.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kernelhub_tests::hf_layout::{self, ARCH_VARIANTS};
use kernelhub_tests::olah::venv;

/// Runs `script` with the venv's Python against `cache`, offline; returns stdout.
fn offline_python(script: &str, cache: &Path) -> String {
    let output = Command::new(venv().join("bin/python"))
        .arg("-c")
        .arg(script)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", cache)
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env_remove("HF_ENDPOINT")
        .env_remove("KERNELS_CACHE")
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "python: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

struct Run {
    dir: tempfile::TempDir,
}

impl Run {
    fn new() -> Run {
        Run {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kernelhub"));
        command
            .args(args)
            .args([
                "--repo-type",
                "model",
                "--endpoint",
                &hf_layout::shared().endpoint,
            ])
            .current_dir(self.dir.path())
            .env("KERNELHUB_CACHE", self.cache())
            .env("NO_COLOR", "1");
        for name in [
            "HF_ENDPOINT",
            "HF_TOKEN",
            "HF_HUB_OFFLINE",
            "HF_HUB_CACHE",
            "HF_HOME",
        ] {
            command.env_remove(name);
        }
        command.output().expect("kernelhub runs")
    }

    fn ok(&self, args: &[&str]) -> (String, String) {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "kernelhub {args:?} failed:\n{stderr}"
        );
        (String::from_utf8_lossy(&output.stdout).into_owned(), stderr)
    }

    /// Variant folders present in the cache for `repo` (any commit).
    fn cached_variants(&self, repo: &str) -> Vec<String> {
        let snapshots = self
            .cache()
            .join(format!("kernels--hf-test--{repo}/snapshots"));
        let mut names: Vec<String> = std::fs::read_dir(&snapshots)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|commit| {
                std::fs::read_dir(commit.path().join("build"))
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .map(|v| v.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

#[test]
fn versions_and_info_describe_the_repo() {
    let run = Run::new();
    let (stdout, _) = run.ok(&["hf", "versions", "hf-test/activation"]);
    let versions: Vec<&str> = stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(versions, ["v2", "v1"]);
    let (stdout, stderr) = run.ok(&[
        "hf",
        "info",
        "hf-test/activation",
        "--version",
        "1",
        "--json",
    ]);
    assert!(
        stderr.contains("Resolved hf-test/activation v1"),
        "{stderr}"
    );
    let info: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let variants = info["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 7);
    let cuda = variants
        .iter()
        .find(|v| v["variant"] == "torch210-cxx11-cu128-x86_64-linux")
        .unwrap();
    assert_eq!(cuda["backend"], "cuda");
    assert_eq!(cuda["archs"], serde_json::json!(["8.0", "9.0"]));
    assert_eq!(cuda["digest"], "sha256");
    assert_eq!(cuda["files"], 3);
    assert_eq!(cuda["signed"], false);
    let (table, _) = run.ok(&["hf", "info", "hf-test/nodigest@v1"]);
    assert!(
        table.contains("torch-cpu") && table.contains("digest: -"),
        "{table}"
    );
}

#[test]
fn targets_fetch_exactly_the_variants_the_loader_would_pick() {
    let run = Run::new();
    let (stdout, stderr) = run.ok(&[
        "hf",
        "fetch",
        "hf-test/activation@v1",
        "--target",
        "torch2.10-cu128-x86_64-linux",
        "--target",
        "torch2.10-rocm64-x86_64-linux",
        "--json",
    ]);
    assert_eq!(
        run.cached_variants("activation"),
        [
            "torch210-cxx11-cu128-x86_64-linux",
            "torch210-cxx11-rocm64-x86_64-linux"
        ]
    );
    assert!(
        stderr
            .contains("Chose torch210-cxx11-cu128-x86_64-linux for `torch2.10-cu128-x86_64-linux`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Skipped torch29-cxx11-cu128-x86_64-linux for `torch2.10-cu128-x86_64-linux`: built for torch 2.9, the target has 2.10"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "Skipped torch-cpu for `torch2.10-cu128-x86_64-linux`: a pure-Python variant for `cpu`"
        ),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // Two variants × (3 files + metadata.json), and nothing else; `_ops.py`
    // is the same in both, so its second copy is the first's blob.
    let files: Vec<&serde_json::Value> = summary["variants"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|v| v["files"].as_array().unwrap())
        .collect();
    assert_eq!(files.len(), 8);
    assert_eq!(summary["downloaded"]["files"], 7);
    assert_eq!(summary["cached"]["files"], 1);
    let downloaded: u64 = files
        .iter()
        .filter(|f| f["outcome"] == "downloaded")
        .map(|f| f["size"].as_u64().unwrap())
        .sum();
    assert_eq!(summary["downloaded"]["bytes"], downloaded);
    let refs = run.cache().join("kernels--hf-test--activation/refs/v1");
    assert_eq!(
        std::fs::read_to_string(refs).unwrap().len(),
        40,
        "refs/v1 holds the commit, no newline"
    );
    let (_, again) = run.ok(&[
        "hf",
        "fetch",
        "hf-test/activation@v1",
        "--target",
        "torch2.10-cu128-x86_64-linux",
    ]);
    assert!(again.contains("0 files downloaded"), "{again}");
}

#[test]
fn a_tampered_file_is_refused_and_a_variant_without_digest_needs_consent() {
    let run = Run::new();
    let output = run.run(&[
        "hf",
        "fetch",
        "hf-test/tampered@v1",
        "--variant",
        "torch210-cxx11-cu128-x86_64-linux",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("build/torch210-cxx11-cu128-x86_64-linux/_ops.py")
            && stderr.contains("Expected: "),
        "{stderr}"
    );
    let ops = run.cache().join("kernels--hf-test--tampered/snapshots");
    let leaked = kernelhub_tests::walk(&ops)
        .into_iter()
        .any(|p| p.ends_with("_ops.py"));
    assert!(!leaked, "the tampered file reached the cache");

    let listing = run.run(&[
        "hf",
        "fetch",
        "hf-test/tampered@v1",
        "--variant",
        "torch-cuda",
    ]);
    let stderr = String::from_utf8_lossy(&listing.stderr);
    assert_eq!(listing.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`extra.py` is present but not listed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`_ops.py` is listed but missing"),
        "{stderr}"
    );

    let refused = run.run(&[
        "hf",
        "fetch",
        "hf-test/nodigest@v1",
        "--variant",
        "torch-cpu",
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("has no digest") && stderr.contains("--allow-unverified"),
        "{stderr}"
    );
    assert!(run.cached_variants("nodigest").is_empty());
    let (_, stderr) = run.ok(&[
        "hf",
        "fetch",
        "hf-test/nodigest@v1",
        "--variant",
        "torch-cpu",
        "--allow-unverified",
    ]);
    assert!(stderr.contains("NO DIGEST"), "{stderr}");
    assert_eq!(run.cached_variants("nodigest"), ["torch-cpu"]);

    let unknown = run.run(&[
        "hf",
        "fetch",
        "hf-test/activation@v1",
        "--variant",
        "torch-metal",
    ]);
    assert!(
        String::from_utf8_lossy(&unknown.stderr)
            .contains("has no variant `torch-metal`; it has: torch-cpu, torch210-")
    );
}

#[test]
fn a_redirect_is_followed_and_said() {
    let run = Run::new();
    let (_, stderr) = run.ok(&[
        "hf",
        "fetch",
        "hf-test/old-activation",
        "--variant",
        "torch-cpu",
    ]);
    assert!(
        stderr.contains("Redirected hf-test/old-activation → hf-test/activation@v1"),
        "{stderr}"
    );
    assert_eq!(run.cached_variants("activation"), ["torch-cpu"]);
}

#[test]
fn the_python_kernels_package_finds_the_fetched_variants_offline() {
    let run = Run::new();
    run.ok(&[
        "hf",
        "fetch",
        "hf-test/activation@v1",
        "--target",
        "cpu-x86_64-linux",
        "--target",
        "torch2.10-cu128-x86_64-linux",
    ]);
    assert_eq!(
        run.cached_variants("activation"),
        ["torch-cpu", ARCH_VARIANTS[1]]
    );
    // No torch here: the loader itself picks the noarch CPU variant, and its
    // resolver, given the named system, picks the CUDA variant kernelhub chose.
    let script = r#"
import os, sys
from pathlib import Path
from kernels import install_kernel, has_kernel
print(install_kernel("hf-test/activation", version=1, local_files_only=True))
print(has_kernel("hf-test/activation", version=1), "torch" in sys.modules)
from packaging.version import Version as V
from kernels._rust import KernelDependency, KernelVersion
from kernels.hf_hub import _get_hf_api
from kernels._versions import resolve_kernel_version
from kernels.variants import get_variants_local, _resolve_variant_for_system
from kernels.backends import CUDA
api = _get_hf_api()
rev = resolve_kernel_version(KernelDependency("hf-test/activation", KernelVersion.Version(1)), local_files_only=True)
snap = Path(api.snapshot_download("hf-test/activation", repo_type="kernel", revision=rev, local_files_only=True))
accepted, _ = _resolve_variant_for_system(get_variants_local(snap / "build"), selected_backend=CUDA(version=V("12.8")),
    cpu="x86_64", os="linux", torch_version=V("2.10"), torch_cxx11_abi=True, tvm_ffi_version=None)
print(accepted[0].variant_str)
"#;
    let stdout = offline_python(script, &run.cache());
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].ends_with("/build/torch-cpu"), "{stdout}");
    assert_eq!(
        lines[1], "True False",
        "found offline, torch never imported"
    );
    assert_eq!(lines[2], ARCH_VARIANTS[1]);
}

/// The issue's "done when": on a connected box with no GPU and no torch, an
/// operator locks Hugging Face layout kernels for a named cluster, fetches
/// and bundles them; on the air-gapped side the bundle imports (a tampered
/// one is refused whole) and the Python `kernels` package finds them offline.
#[test]
fn locked_hf_kernels_travel_in_a_bundle_and_load_offline_in_python() {
    let olah = hf_layout::shared();
    let staging = Run::new();
    std::fs::write(
        staging.dir.path().join("kernels.toml"),
        format!(
            "schema = 1\n[hub]\nendpoint = \"{}\"\nrepo_type = \"model\"\n[dependencies]\n\
             activation = {{ repo = \"hf-test/activation\", version = 1, layout = \"hf\", \
             targets = [\"torch2.10-cu128-x86_64-linux\", \"cpu-x86_64-linux\"] }}\n",
            olah.endpoint
        ),
    )
    .unwrap();
    let (_, stderr) = staging.ok(&["lock"]);
    assert!(
        stderr.contains("Chose torch210-cxx11-cu128-x86_64-linux"),
        "{stderr}"
    );
    let lock_text = std::fs::read_to_string(staging.dir.path().join("kernels.lock")).unwrap();
    assert!(
        lock_text.contains("[[hf]]") && lock_text.contains("name = \"torch-cpu\""),
        "{lock_text}"
    );
    assert!(
        staging.cached_variants("activation").is_empty(),
        "lock writes no half variant"
    );
    let (_, stderr) = staging.ok(&["fetch"]);
    assert!(stderr.contains("Fetched 1 kernels"), "{stderr}");
    assert_eq!(
        staging.cached_variants("activation"),
        ["torch-cpu", ARCH_VARIANTS[1]]
    );
    staging.ok(&["verify"]);
    staging.ok(&["bundle", "create", "cluster.tar.gz"]);

    let gapped = Run::new();
    std::fs::copy(
        staging.dir.path().join("kernels.lock"),
        gapped.dir.path().join("kernels.lock"),
    )
    .unwrap();
    let offline = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kernelhub"))
            .args(args)
            .current_dir(gapped.dir.path())
            .env("KERNELHUB_CACHE", gapped.cache())
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .output()
            .unwrap()
    };
    let commit = lock_text
        .lines()
        .find_map(|l| l.strip_prefix("commit = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    let tampered = gapped.dir.path().join("tampered.tar.gz");
    std::fs::copy(staging.dir.path().join("cluster.tar.gz"), &tampered).unwrap();
    kernelhub_tests::tamper(
        &tampered,
        &format!("kernels--hf-test--activation/{commit}/build/torch-cpu/_ops.py"),
    );
    let refused = offline(&["bundle", "import", "tampered.tar.gz"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("was refused") && stderr.contains("build/torch-cpu/_ops.py"),
        "{stderr}"
    );
    assert!(gapped.cached_variants("activation").is_empty());

    std::fs::copy(
        staging.dir.path().join("cluster.tar.gz"),
        gapped.dir.path().join("cluster.tar.gz"),
    )
    .unwrap();
    for args in [
        &["bundle", "import", "cluster.tar.gz"][..],
        &["fetch"][..],
        &["verify"][..],
    ] {
        let output = offline(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let script = r#"
from kernels import install_kernel
print(install_kernel("hf-test/activation", version=1, local_files_only=True))
"#;
    let stdout = offline_python(script, &gapped.cache());
    assert!(stdout.trim().ends_with("/build/torch-cpu"), "{stdout}");
}

#[test]
fn a_redirected_dependency_is_locked_under_both_names_and_stays_locked() {
    let run = Run::new();
    std::fs::write(
        run.dir.path().join("kernels.toml"),
        "schema = 1\n[dependencies]\n\
         old = { repo = \"hf-test/old-activation\", branch = \"main\", layout = \"hf\", variants = [\"torch-cpu\"] }\n",
    )
    .unwrap();
    let (_, stderr) = run.ok(&["lock"]);
    assert!(
        stderr.contains("Redirected hf-test/old-activation → hf-test/activation@v1"),
        "{stderr}"
    );
    let lock = std::fs::read_to_string(run.dir.path().join("kernels.lock")).unwrap();
    assert!(
        lock.contains("repo = \"hf-test/old-activation\"\nrepo_type = \"model\"\nredirected_to = \"hf-test/activation\"\nref = \"v1\""),
        "{lock}"
    );
    let (_, again) = run.ok(&["lock"]);
    assert!(again.contains("Unchanged"), "{again}");
    let (_, fetched) = run.ok(&["fetch"]);
    assert!(!fetched.contains("does not match"), "{fetched}");
    assert_eq!(run.cached_variants("activation"), ["torch-cpu"]);
}
