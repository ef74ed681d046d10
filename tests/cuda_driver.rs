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
//! real driver, and no HIP runtime (`KERNELHUB_HIP_LIBRARY` names a file
//! that does not exist). The driver is opened once per process, so each
//! setting of the fake gets its own process: the `kernelhub` binary, or
//! this test binary re-run for one test ([`FakeDriver::in_child`]) for
//! library-level checks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kernelhub::{Arg, Backend, Device, Dtype, Hub, KernelSource};
use kernelhub_tests::fake_cuda;

#[path = "support/fake_driver.rs"]
mod fake_driver;
use fake_driver::{FakeDriver, copy_dir, f32_bytes, lines, reasons, text};

/// The fake NVIDIA driver, and no HIP runtime.
const FAKE: FakeDriver = FakeDriver {
    library: fake_cuda::library,
    file_name: "libfakecuda.so",
    library_var: "KERNELHUB_CUDA_LIBRARY",
    other_library: ("KERNELHUB_HIP_LIBRARY", "libamdhip64.so"),
    settings: &[
        "FAKE_CUDA_DEVICES",
        "FAKE_CUDA_SM",
        "FAKE_CUDA_DRIVER",
        "FAKE_CUDA_LAUNCH_LOG",
    ],
    child_var: "KERNELHUB_TESTS_FAKE_CUDA_CHILD",
    what: "driver",
};

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
    let exported = FAKE.exported_symbols();
    assert!(
        wanted.contains(&"cuInit") && wanted.contains(&"cuGetErrorString"),
        "the whole driver_api! list: {wanted:?}"
    );
    assert_eq!(exported, wanted, "tests/fake-cuda/fake_cuda.c vs sys.rs");
}

#[test]
fn doctor_lists_the_fake_gpu_and_loads_the_ptx_on_it() {
    let project = tempfile::tempdir().unwrap();
    let output = FAKE.kernelhub(project.path(), &["doctor"], &[]);
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
    let output = FAKE.kernelhub(project.path(), &["doctor"], &[("FAKE_CUDA_DEVICES", "0")]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    // cuInit answers CUDA_ERROR_NO_DEVICE and leaves the driver
    // uninitialised; the probe must not go on to ask for the device count
    // (CUDA_ERROR_NOT_INITIALIZED).
    let expected = format!(
        "  cuda: unavailable: the driver (`{}`, CUDA 12.4) finds no NVIDIA GPU\n",
        FAKE.library().display()
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
    let output = FAKE.kernelhub(
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
    if !FAKE.in_child(
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
    let reasons = reasons(
        &loaded,
        &hub,
        Backend::Cuda,
        "build/cuda/activation_sm80.ptx",
    );
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
    let output = FAKE.kernelhub(project, &["manifest", "update", dir.to_str().unwrap()], &[]);
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
    if FAKE.is_child(NAME) {
        let dir = std::env::var("KERNELHUB_TESTS_KERNEL_DIR").unwrap();
        let hub = Hub::new().unwrap();
        let loaded = hub.load(&KernelSource::Dir(dir.into())).unwrap();
        assert_eq!(loaded.device().info().backend, Backend::Wgpu);
        let reasons = reasons(
            &loaded,
            &hub,
            Backend::Cuda,
            "build/cuda/activation_sm80.ptx",
        );
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
    let output = FAKE.kernelhub(
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
    assert!(lines(&log).is_empty(), "nothing reached cuLaunchKernel");
    let output = FAKE.kernelhub(project.path(), &["doctor", dir_arg], &settings);
    let doctor = text(&output.stdout);
    assert!(output.status.success(), "{doctor}");
    assert!(
        doctor.contains("not `build/cuda/activation_sm80.ptx`: the driver refused it: the PTX is ISA version 9.0, which needs a CUDA 13.0 driver or newer; this one is CUDA 12.4")
            && doctor.contains("Unsupported .version 9.0"),
        "{doctor}"
    );
    // `--json` says which backend ran each op, not why CUDA did not.
    let output = FAKE.kernelhub(
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
    FAKE.run_child(
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
    if !FAKE.in_child("a_cubin_for_another_gpu_is_refused_by_the_driver", &[]) {
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
    let reasons = reasons(&loaded, &hub, Backend::Cuda, "scale.cubin");
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
    if !FAKE.is_child(NAME) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("launches.log");
        FAKE.run_child(NAME, &[("FAKE_CUDA_LAUNCH_LOG", log.to_str().unwrap())]);
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
    let lines = lines(&log);
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
    if !FAKE.is_child(NAME) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("launches.log");
        FAKE.run_child(NAME, &[("FAKE_CUDA_LAUNCH_LOG", log.to_str().unwrap())]);
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
        lines(&log),
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
        lines(&log).len(),
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
    let lines = lines(&log);
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
    if !FAKE.in_child("memory_round_trips_through_the_driver", &[]) {
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
