//! The CUDA backend against a test double of the NVIDIA driver
//! (`tests/fake-cuda/fake_cuda.c`), because CI has no NVIDIA GPU or driver:
//! without it the backend is tested only as far as "cannot open
//! libcuda.so.1". Here it runs through its driver calls: `kernelhub doctor`
//! lists the fake GPU; a launch reaches `cuLaunchKernel` with the parameter
//! block the PTX declares (read back by the fake); and the driver's own
//! faults (no GPU, a driver older than the PTX, PTX ISA newer than the
//! JIT, a cubin for another SM) end in a WGSL fallback with the reason.
//!
//! Every process here opens the fake (`KERNELHUB_CUDA_LIBRARY`), never a
//! real driver. The driver is opened once per process, so each setting of
//! the fake gets its own process: the `kernelhub` binary, or this test
//! binary re-run for one test ([`in_child`]) for library-level checks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use kernelhub::{Arg, Backend, Device, Dtype, Hub, KernelSource, LoadedKernel};
use kernelhub_tests::fake_cuda;

/// Set (to the test's name) in a re-run of this binary for one test.
const CHILD: &str = "KERNELHUB_TESTS_FAKE_CUDA_CHILD";
/// The fake's settings; cleared from every child's environment first.
const SETTINGS: &[&str] = &[
    "FAKE_CUDA_DEVICES",
    "FAKE_CUDA_SM",
    "FAKE_CUDA_DRIVER",
    "FAKE_CUDA_LAUNCH_LOG",
];

fn fake_library() -> PathBuf {
    fake_cuda::library(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

/// The fake driver and `settings` in `command`'s environment, nothing of
/// this machine's backend choice.
fn with_fake(command: &mut Command, settings: &[(&str, &str)]) {
    command
        .env("KERNELHUB_CUDA_LIBRARY", fake_library())
        .env_remove("KERNELHUB_BACKEND")
        .env_remove("WGPU_ADAPTER_NAME");
    for name in SETTINGS {
        command.env_remove(name);
    }
    for (name, value) in settings {
        command.env(name, value);
    }
}

/// `kernelhub args...` in `project` on the fake driver with `settings`.
fn kernelhub(project: &Path, args: &[&str], settings: &[(&str, &str)]) -> Output {
    let binary = fake_cuda::kernelhub_binary();
    let cache = project.join(".cache");
    let mut command = kernelhub_tests::isolated_command(
        binary.to_str().expect("a UTF-8 path"),
        project,
        &cache,
        args,
    );
    with_fake(&mut command, settings);
    command.output().expect("kernelhub runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether this process is the re-run of this binary for test `name`
/// (see [`run_child`]); there the fake driver must be the one configured.
fn is_child(name: &str) -> bool {
    if std::env::var(CHILD).is_ok_and(|v| v == name) {
        let library = std::env::var("KERNELHUB_CUDA_LIBRARY").unwrap_or_default();
        assert!(
            library.ends_with("libfakecuda.so"),
            "the fake driver, never a real one: `{library}`"
        );
        return true;
    }
    false
}

/// Re-runs this binary for test `name` alone, with the fake driver and
/// `settings` in its environment, and asserts that it ran and passed.
fn run_child(name: &str, settings: &[(&str, &str)]) {
    let mut command = Command::new(std::env::current_exe().expect("this test binary"));
    command
        .args([name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD, name);
    with_fake(&mut command, settings);
    let output = command.output().expect("the test binary re-runs");
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "`{name}` in its own process:\n{stdout}\n{stderr}"
    );
}

/// In the test process: runs test `name` in its own process (see
/// [`run_child`]) and returns `false`. In that process: returns `true`, and
/// the test goes on to its body.
fn in_child(name: &str, settings: &[(&str, &str)]) -> bool {
    if is_child(name) {
        return true;
    }
    run_child(name, settings);
    false
}

/// The lines of the fake's launch log so far.
fn launches(log: &Path) -> Vec<String> {
    match std::fs::read_to_string(log) {
        Ok(text) => text.lines().map(str::to_string).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", log.display()),
    }
}

/// Every reason the plan of the CUDA device gives for not using artifact
/// `path`, one a line.
fn cuda_reasons(loaded: &LoadedKernel, hub: &Hub, path: &str) -> String {
    let manifest = loaded.kernel().manifest();
    let plan = loaded
        .plans()
        .iter()
        .find(|p| hub.devices()[p.device].info().backend == Backend::Cuda)
        .expect("a plan for the CUDA device");
    let mut reasons = Vec::new();
    for choice in &plan.choices {
        for (index, why) in &choice.rejected {
            if manifest.artifacts[*index].path.get_ref() == path && !reasons.contains(why) {
                reasons.push(why.clone());
            }
        }
    }
    reasons.join("\n")
}

/// Copies the directory `from` to `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn f32_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_le_bytes).collect()
}

#[test]
fn the_fake_exports_exactly_the_symbols_the_backend_binds() {
    let sys = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/kernelhub-cuda/src/sys.rs"),
    )
    .unwrap();
    let body = &sys[sys.find("driver_api! {").expect("the driver_api! list")..];
    let mut wanted: Vec<&str> = body
        .split('"')
        .skip(1)
        .step_by(2)
        .take_while(|s| s.starts_with("cu"))
        .collect();
    wanted.sort_unstable();
    let output = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(fake_library())
        .output()
        .expect("run nm");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let mut exported: Vec<String> = text(&output.stdout)
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("T"))
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    exported.sort_unstable();
    assert!(
        wanted.contains(&"cuInit") && wanted.contains(&"cuGetErrorString"),
        "the whole driver_api! list: {wanted:?}"
    );
    assert_eq!(exported, wanted, "tests/fake-cuda/fake_cuda.c vs sys.rs");
}

#[test]
fn doctor_lists_the_fake_gpu_and_loads_the_ptx_on_it() {
    let project = tempfile::tempdir().unwrap();
    let output = kernelhub(project.path(), &["doctor"], &[]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains("\n  cuda: kernelhub fake GPU (sm_80, 1024 MiB, CUDA driver 12.4)\n"),
        "{stdout}"
    );
    // The driver loaded the PTX (doctor loads every kernel), so the plan stands.
    assert!(
        stdout.contains("-> kernelhub fake GPU (cuda): runs 9 of 9 op/dtype pairs")
            && stdout.contains("silu_and_mul bf16: `build/cuda/activation_sm80.ptx`"),
        "{stdout}"
    );
}

#[test]
fn a_driver_without_a_gpu_is_a_platform_without_devices() {
    let project = tempfile::tempdir().unwrap();
    let output = kernelhub(project.path(), &["doctor"], &[("FAKE_CUDA_DEVICES", "0")]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    // cuInit answers CUDA_ERROR_NO_DEVICE and leaves the driver
    // uninitialised; the probe must not go on to ask for the device count
    // (CUDA_ERROR_NOT_INITIALIZED).
    let expected = format!(
        "  cuda: unavailable: the driver (`{}`, CUDA 12.4) finds no NVIDIA GPU\n",
        fake_library().display()
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(
        stdout.contains("-> llvmpipe") || stdout.contains("(wgpu): runs"),
        "{stdout}"
    );
}

#[test]
fn a_driver_older_than_min_driver_is_planned_around() {
    let project = tempfile::tempdir().unwrap();
    let output = kernelhub(
        project.path(),
        &["doctor"],
        &[("FAKE_CUDA_DRIVER", "10020")],
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("  cuda: kernelhub fake GPU (sm_80, 1024 MiB, CUDA driver 10.2)\n")
            && stdout.contains("kernelhub fake GPU (cuda): runs 0 of 9 op/dtype pairs"),
        "{stdout}"
    );
    let activation = &stdout[stdout.find("  activation 0.1.0").unwrap()..];
    assert!(
        activation
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("-> ") && l.contains("(wgpu): runs 6 of 9")),
        "the WGSL fallback runs it:\n{stdout}"
    );
    // Under the CUDA device's line, why its artifact does not run there.
    assert!(
        activation.contains(
            "not `build/cuda/activation_sm80.ptx`: needs a cuda driver of version 11.0 or newer; `kernelhub fake GPU` has 10.2: update the driver"
        ),
        "{stdout}"
    );
}

/// The reason for (c), in the library's plan.
#[test]
fn a_driver_older_than_min_driver_says_so_in_the_plan() {
    if !in_child(
        "a_driver_older_than_min_driver_says_so_in_the_plan",
        &[("FAKE_CUDA_DRIVER", "10020")],
    ) {
        return;
    }
    let hub = Hub::new().unwrap();
    let loaded = hub
        .load(&KernelSource::Embedded("activation".into()))
        .unwrap();
    assert_eq!(loaded.device().info().backend, Backend::Wgpu);
    let reasons = cuda_reasons(&loaded, &hub, "build/cuda/activation_sm80.ptx");
    assert_eq!(
        reasons,
        "needs a cuda driver of version 11.0 or newer; `kernelhub fake GPU` has 10.2: update the driver"
    );
}

/// kernels/activation with its PTX claiming ISA 9.0 (CUDA 13.0) and no
/// `min_driver`, so selection cannot know and the driver's JIT refuses it.
fn ptx_too_new_for_the_driver(project: &Path) -> PathBuf {
    let dir = project.join("activation");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels/activation"),
        &dir,
    );
    let ptx = dir.join("build/cuda/activation_sm80.ptx");
    let source = std::fs::read_to_string(&ptx).unwrap();
    assert!(source.contains("\n.version 7.0\n"));
    std::fs::write(
        &ptx,
        source.replacen("\n.version 7.0\n", "\n.version 9.0\n", 1),
    )
    .unwrap();
    let manifest = dir.join("kernel.toml");
    let toml = std::fs::read_to_string(&manifest).unwrap();
    let kept: Vec<&str> = toml
        .lines()
        .filter(|l| !l.starts_with("min_driver"))
        .collect();
    assert_eq!(kept.len() + 1, toml.lines().count(), "one min_driver line");
    std::fs::write(&manifest, kept.join("\n") + "\n").unwrap();
    let output = kernelhub(project, &["manifest", "update", dir.to_str().unwrap()], &[]);
    let stderr = text(&output.stderr);
    assert!(
        output.status.success() && stderr.contains("Updated build/cuda/activation_sm80.ptx"),
        "{stderr}"
    );
    dir
}

/// (d): the CLI falls back to WGSL, `kernelhub doctor DIR` shows the
/// driver's reason and JIT log, and (in a re-run of this test with the
/// kernel's directory) the library's plan holds them.
#[test]
fn ptx_newer_than_the_jit_falls_back_to_wgsl() {
    const NAME: &str = "ptx_newer_than_the_jit_falls_back_to_wgsl";
    if is_child(NAME) {
        let dir = std::env::var("KERNELHUB_TESTS_KERNEL_DIR").unwrap();
        let hub = Hub::new().unwrap();
        let loaded = hub.load(&KernelSource::Dir(dir.into())).unwrap();
        assert_eq!(loaded.device().info().backend, Backend::Wgpu);
        let reasons = cuda_reasons(&loaded, &hub, "build/cuda/activation_sm80.ptx");
        assert!(
            reasons.starts_with(
                "the driver refused it: the PTX is ISA version 9.0, which needs a CUDA 13.0 driver or newer; this one is CUDA 12.4: update the driver, or publish PTX of an older ISA version (CUDA_ERROR_UNSUPPORTED_PTX_VERSION)"
            ) && reasons.contains(
                "\n    JIT log: ptxas application ptx input, line 5; fatal: Unsupported .version 9.0"
            ),
            "{reasons}"
        );
        return;
    }
    let project = tempfile::tempdir().unwrap();
    let dir = ptx_too_new_for_the_driver(project.path());
    let log = project.path().join("launches.log");
    let settings = [
        ("FAKE_CUDA_DRIVER", "12040"),
        ("FAKE_CUDA_LAUNCH_LOG", log.to_str().unwrap()),
    ];
    let dir_arg = dir.to_str().unwrap();
    let output = kernelhub(
        project.path(),
        &["run", dir_arg, "--tokens", "4", "--time", "0"],
        &settings,
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let rows: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 6, "f32 and f16 of three ops:\n{stdout}");
    for row in &rows {
        // op, dtype, size ("4 x 4096"), backend, device...
        let columns: Vec<&str> = row.split_whitespace().collect();
        assert!(
            columns[5] == "wgpu" && columns[1] != "bf16" && row.ends_with(" ok"),
            "{stdout}"
        );
    }
    for op in ["silu_and_mul", "gelu_and_mul", "gelu_tanh_and_mul"] {
        assert!(
            stderr.contains(&format!("note: {op} bf16: nothing runs it on `")),
            "bf16 has native artifacts only:\n{stderr}"
        );
    }
    assert!(launches(&log).is_empty(), "nothing reached cuLaunchKernel");
    let output = kernelhub(project.path(), &["doctor", dir_arg], &settings);
    let doctor = text(&output.stdout);
    assert!(output.status.success(), "{doctor}");
    assert!(
        doctor.contains("not `build/cuda/activation_sm80.ptx`: the driver refused it: the PTX is ISA version 9.0, which needs a CUDA 13.0 driver or newer; this one is CUDA 12.4")
            && doctor.contains("Unsupported .version 9.0"),
        "{doctor}"
    );
    // `--json` says which backend ran each op, not why CUDA did not.
    let output = kernelhub(
        project.path(),
        &["run", dir_arg, "--tokens", "4", "--time", "0", "--json"],
        &settings,
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert_eq!(stdout.lines().count(), 6, "{stdout}");
    for line in stdout.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["backend"], "wgpu", "{line}");
        assert_eq!(row["mismatches"], 0, "{line}");
    }
    run_child(
        NAME,
        &[
            ("FAKE_CUDA_DRIVER", "12040"),
            ("KERNELHUB_TESTS_KERNEL_DIR", dir_arg),
        ],
    );
}

/// A 64-bit ELF header as a cubin for `sm` (`e_flags & 0xff`), no sections.
fn cubin(sm: u8) -> Vec<u8> {
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // 64-bit
    elf[5] = 1; // little-endian
    elf[6] = 1; // version
    elf[16] = 2; // ET_EXEC
    elf[18] = 190; // EM_CUDA
    elf[20] = 1;
    elf[48] = sm;
    elf[52] = 64; // e_ehsize
    elf[58] = 64; // e_shentsize
    elf
}

/// The support crate's `scale` kernel with a cubin for sm_90 that its
/// manifest says is for sm_80: selection picks it, the driver refuses it.
#[test]
fn a_cubin_for_another_gpu_is_refused_by_the_driver() {
    if !in_child("a_cubin_for_another_gpu_is_refused_by_the_driver", &[]) {
        return;
    }
    let repo = kernelhub_tests::Repo::good()
        .file("scale.cubin", cubin(90))
        .edit(
            "[[artifacts]]\nbackend = \"wgpu\"",
            &format!(
                "[[artifacts]]\nbackend = \"cuda\"\nformat = \"cubin\"\ntargets = [\"sm_80\"]\npath = \"scale.cubin\"\nsize = 64\nsha256 = \"{}\"\n\n[[artifacts.entries]]\nop = \"scale\"\ndtype = \"f32\"\nsymbol = \"scale\"\ngrid = [\"ceil_div(n, 64)\"]\nblock = [64]\n\n[[artifacts]]\nbackend = \"wgpu\"",
                kernelhub_manifest::hash::Sha256Digest::of(&cubin(90))
            ),
        );
    repo.write();
    let hub = Hub::new().unwrap();
    let loaded = hub
        .load(&KernelSource::Dir(repo.path().to_path_buf()))
        .unwrap();
    assert_eq!(loaded.device().info().backend, Backend::Wgpu);
    let reasons = cuda_reasons(&loaded, &hub, "scale.cubin");
    assert_eq!(
        reasons,
        "the driver refused it: the cubin holds no code for `cuda:sm_80` (CUDA_ERROR_NO_BINARY_FOR_GPU: no kernel image is available for execution on the device)"
    );
}

/// `Hub::new()` with the fake driver and no `KERNELHUB_BACKEND` prefers the
/// CUDA GPU and loads the PTX there; a launch reaches the driver with grid
/// and block from the manifest and each parameter where the PTX reads it.
#[test]
fn hub_new_launches_the_ptx_on_the_fake_gpu() {
    const NAME: &str = "hub_new_launches_the_ptx_on_the_fake_gpu";
    if !is_child(NAME) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("launches.log");
        run_child(NAME, &[("FAKE_CUDA_LAUNCH_LOG", log.to_str().unwrap())]);
        return;
    }
    let log = PathBuf::from(std::env::var("FAKE_CUDA_LAUNCH_LOG").unwrap());
    let hub = Hub::new().unwrap();
    let info = hub.devices()[0].info();
    assert_eq!(
        (info.backend, info.name.as_str(), info.kind.as_str()),
        (
            Backend::Cuda,
            "kernelhub fake GPU",
            "sm_80, 1024 MiB, CUDA driver 12.4"
        )
    );
    let loaded = hub
        .load(&KernelSource::Embedded("activation".into()))
        .unwrap();
    assert_eq!(loaded.device().info().backend, Backend::Cuda);
    let op = loaded.op("silu_and_mul", Dtype::F32).unwrap();
    assert_eq!(op.artifact(), "build/cuda/activation_sm80.ptx");
    let device = loaded.device();
    let out = device.alloc(3 * 5 * 4).unwrap();
    let input = device
        .upload(&f32_bytes((0..30).map(|i| i as f32)))
        .unwrap();
    op.launch(&[
        Arg::tensor(&out, Dtype::F32),
        Arg::tensor(&input, Dtype::F32),
        3u32.into(),
        5u32.into(),
    ])
    .unwrap();
    device.synchronize().unwrap();
    let lines = launches(&log);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let prefix = "silu_and_mul_f32 grid=3,1,1 block=256,1,1 shared=0 params=0x";
    assert!(
        lines[0].starts_with(prefix) && lines[0].ends_with(",3,5"),
        "{lines:?}"
    );
}

/// The same on a `CudaDevice` the test holds, so device addresses can be
/// compared: tensors pass as their buffer's address plus their offset,
/// 32-bit scalars (u32, f32) in the first four bytes of their slot, and a
/// refused launch reaches no driver call.
#[test]
fn launch_parameters_are_what_the_ptx_declares() {
    const NAME: &str = "launch_parameters_are_what_the_ptx_declares";
    if !is_child(NAME) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("launches.log");
        run_child(NAME, &[("FAKE_CUDA_LAUNCH_LOG", log.to_str().unwrap())]);
        return;
    }
    let log = PathBuf::from(std::env::var("FAKE_CUDA_LAUNCH_LOG").unwrap());
    let cuda = Arc::new(kernelhub_cuda::open(0).unwrap());
    let hub = Hub::with_devices(vec![cuda.clone() as Arc<dyn Device>]);
    let loaded = hub
        .load(&KernelSource::Embedded("activation".into()))
        .unwrap();
    let op = loaded.op("silu_and_mul", Dtype::F32).unwrap();
    let out = cuda.alloc(3 * 5 * 4).unwrap();
    // The input starts 16 bytes into its buffer.
    let input = cuda.upload(&[0u8; 16 + 3 * 10 * 4]).unwrap();
    let (out_at, input_at) = (
        cuda.device_ptr(&out).unwrap(),
        cuda.device_ptr(&input).unwrap(),
    );
    op.launch(&[
        Arg::tensor(&out, Dtype::F32),
        Arg::tensor_at(&input, 16, Dtype::F32),
        3u32.into(),
        5u32.into(),
    ])
    .unwrap();
    assert_eq!(
        launches(&log),
        [format!(
            "silu_and_mul_f32 grid=3,1,1 block=256,1,1 shared=0 params={out_at:#x},{:#x},3,5",
            input_at + 16
        )]
    );

    // Misaligned for f32: refused before any driver call.
    let error = op
        .launch(&[
            Arg::tensor(&out, Dtype::F32),
            Arg::tensor_at(&input, 2, Dtype::F32),
            3u32.into(),
            5u32.into(),
        ])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("parameter `input` starts at device address 0x")
            && error.contains("(byte 2 of its buffer), not a multiple of its 4-byte elements"),
        "{error}"
    );
    assert_eq!(
        launches(&log).len(),
        1,
        "the misaligned launch must not reach the driver"
    );

    // An f32 scalar: rms_norm's eps, between the tensors and the sizes.
    let loaded = hub.load(&KernelSource::Embedded("rmsnorm".into())).unwrap();
    let op = loaded.op("rms_norm", Dtype::F32).unwrap();
    let x = cuda.alloc(2 * 8 * 4).unwrap();
    let y = cuda.alloc(2 * 8 * 4).unwrap();
    let weight = cuda.alloc(8 * 4).unwrap();
    op.launch(&[
        Arg::tensor(&y, Dtype::F32),
        Arg::tensor(&x, Dtype::F32),
        Arg::tensor(&weight, Dtype::F32),
        1.5e-5f32.into(),
        2u32.into(),
        8u32.into(),
    ])
    .unwrap();
    let lines = launches(&log);
    assert_eq!(
        lines[1],
        format!(
            "rms_norm_f32 grid=2,1,1 block=256,1,1 shared=0 params={:#x},{:#x},{:#x},{},2,8",
            cuda.device_ptr(&y).unwrap(),
            cuda.device_ptr(&x).unwrap(),
            cuda.device_ptr(&weight).unwrap(),
            // What C's %.9g prints for 1.5e-5f32.
            "1.49999996e-05"
        )
    );
}

/// Memory goes through the driver's copies: bytes come back as uploaded,
/// from any offset, and a new buffer reads as zeros (the fake fills fresh
/// allocations with 0xa5, so the zeros are the backend's memset).
#[test]
fn memory_round_trips_through_the_driver() {
    if !in_child("memory_round_trips_through_the_driver", &[]) {
        return;
    }
    let cuda = kernelhub_cuda::open(0).unwrap();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let buffer = cuda.upload(&bytes).unwrap();
    assert_eq!(cuda.download(&buffer, 0, 1000).unwrap(), bytes);
    assert_eq!(cuda.download(&buffer, 10, 20).unwrap(), &bytes[10..30]);
    assert!(cuda.download(&buffer, 990, 20).is_err(), "past the end");
    // Any thread: each call makes the context current on its own thread.
    let copied = std::thread::scope(|s| s.spawn(|| cuda.download(&buffer, 0, 1000)).join());
    assert_eq!(copied.unwrap().unwrap(), bytes);
    let zeros = cuda.alloc(4096).unwrap();
    assert_eq!(cuda.download(&zeros, 0, 4096).unwrap(), vec![0u8; 4096]);
    let empty = cuda.upload(&[]).unwrap();
    assert_eq!(cuda.download(&empty, 0, 0).unwrap(), Vec::<u8>::new());
    // Freed through cuMemFree_v2 (the fake refuses unknown addresses).
    drop((buffer, zeros, empty));
    cuda.synchronize().unwrap();
}
