//! `kernelhub run` and `kernelhub doctor` on this machine's wgpu adapter (in
//! CI Mesa's lavapipe, installed by `scripts/test.sh`): every op of the
//! embedded reference kernels runs and matches the CPU reference, a tampered
//! kernel repo is refused before anything loads, and a machine with no
//! Vulkan driver or a bad `KERNELHUB_BACKEND` gets an error that says what to
//! do.

use std::path::Path;
use std::process::{Command, Output};

fn kernelhub(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kernelhub"));
    command.args(args).env("NO_COLOR", "1");
    command
        .env_remove("KERNELHUB_BACKEND")
        .env_remove("WGPU_ADAPTER_NAME");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("kernelhub runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn run_checks_every_reference_op_against_the_cpu() {
    let output = kernelhub(&["run", "--tokens", "5", "--time", "0"], &[]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for op in [
        "silu_and_mul",
        "gelu_and_mul",
        "gelu_tanh_and_mul",
        "rms_norm",
        "rotary_neox",
        "rotary_gptj",
        "softmax",
    ] {
        let rows: Vec<&str> = stdout
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(op))
            .collect();
        assert!(
            rows.iter()
                .any(|r| r.split_whitespace().nth(1) == Some("f32") && r.ends_with(" ok")),
            "{op} f32 ran and matched:\n{stdout}"
        );
        assert!(rows.iter().all(|r| r.ends_with(" ok")), "{stdout}");
    }
    assert!(
        stderr.contains("note: silu_and_mul bf16: nothing runs it"),
        "bf16 has no WGSL artifact, and says so:\n{stderr}"
    );
}

#[test]
fn run_refuses_a_kernel_repo_whose_artifact_was_changed() {
    let dir = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kernels/activation");
    for file in [
        "kernel.toml",
        "wgsl/activation_f32.wgsl",
        "wgsl/activation_f16.wgsl",
    ] {
        let to = dir.path().join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(source.join(file), &to).unwrap();
    }
    let shader = dir.path().join("wgsl/activation_f32.wgsl");
    let mut bytes = std::fs::read(&shader).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&shader, bytes).unwrap();
    let path = dir.path().to_str().unwrap();
    let output = kernelhub(
        &[
            "run", path, "--tokens", "2", "--time", "0", "--dtype", "f32",
        ],
        &[],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`wgsl/activation_f32.wgsl` of")
            && stderr.contains("does not match its manifest; it was not loaded")
            && stderr.contains("Expected: sha256:"),
        "{stderr}"
    );
}

#[test]
fn no_vulkan_driver_is_an_error_with_a_hint() {
    let output = kernelhub(
        &["run", "--tokens", "2", "--time", "0"],
        &[
            ("VK_ICD_FILENAMES", "/nonexistent/icd.json"),
            ("VK_DRIVER_FILES", "/nonexistent/icd.json"),
        ],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: no device to run kernels on")
            && stderr.contains("wgpu: no GPU adapter found")
            && stderr.contains("mesa-vulkan-drivers"),
        "{stderr}"
    );
}

#[test]
fn kernelhub_backend_is_honoured_and_checked() {
    let output = kernelhub(&["run", "--time", "0"], &[("KERNELHUB_BACKEND", "metal")]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`KERNELHUB_BACKEND=metal` is not a backend; use `wgpu`, `cuda` or `rocm`"),
        "{stderr}"
    );
    let output = kernelhub(&["run", "--time", "0"], &[("KERNELHUB_BACKEND", "cuda")]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    // The build and CI machines have no NVIDIA driver: its absence is an
    // error that says what to install, not a panic.
    assert!(
        stderr.contains("cuda: no NVIDIA driver library: cannot open `libcuda.so.1`")
            && stderr.contains("hint: install the NVIDIA driver")
            && stderr.contains("`KERNELHUB_BACKEND=cuda` keeps only that backend")
            && !stderr.contains("wgpu:"),
        "only the forced backend is probed:\n{stderr}"
    );
}

/// Debian's `libamdhip64-5` (installed by scripts/test.sh) is a real HIP
/// runtime; with no AMD GPU it reports zero devices, and kernelhub says so
/// and falls back.
#[test]
fn a_hip_runtime_without_a_gpu_reports_no_device_and_falls_back() {
    let output = kernelhub(&["run", "--time", "0"], &[("KERNELHUB_BACKEND", "rocm")]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("rocm: the HIP runtime (`libamdhip64.so")
            && stderr.contains("finds no AMD GPU"),
        "{stderr}"
    );
    let output = kernelhub(&["doctor"], &[]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("  rocm: unavailable: the HIP runtime (`libamdhip64.so")
            && stdout.contains("  cuda: unavailable: no NVIDIA driver library")
            && stdout.contains("devices:\n  wgpu: "),
        "{stdout}"
    );
}

#[test]
fn doctor_shows_adapters_devices_and_every_choice() {
    let output = kernelhub(&["doctor"], &[]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(stdout.contains("wgpu adapters, in the order kernelhub prefers them:"));
    assert!(stdout.contains("devices:\n  wgpu: "), "{stdout}");
    assert!(
        stdout.contains("silu_and_mul f32: `wgsl/activation_f32.wgsl`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("not `build/cuda/activation_sm80.ptx`: a cuda artifact;"),
        "{stdout}"
    );
}
