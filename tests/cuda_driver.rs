//! The CUDA backend against a test double of the NVIDIA driver
//! (`tests/fake-cuda/fake_cuda.c`), because CI has no NVIDIA GPU or driver:
//! without it the backend is tested only as far as "cannot open
//! libcuda.so.1". Here it runs through its driver calls: `kernelhub doctor`
//! lists the fake GPU; a launch reaches `cuLaunchKernel` with the parameter
//! block the PTX declares (read back by the fake); the driver's own
//! faults (no GPU, a driver older than the PTX, PTX ISA newer than the
//! JIT, a cubin for another SM) end in a WGSL fallback with the reason;
//! and with two GPUs no context is retained before it is needed, and every
//! call runs in its GPU's context and leaves the thread's as it was.
//!
//! Every process here opens the fake (`KERNELHUB_CUDA_LIBRARY`), never a
//! real driver, and no HIP runtime (`KERNELHUB_HIP_LIBRARY` names a file
//! that does not exist). The driver is opened once per process, so each
//! setting of the fake gets its own process: the `kernelhub` binary, or
//! this test binary re-run for one test ([`FakeDriver::in_child`]) for
//! library-level checks.
//!
//! Unsafe code: the engine-interop test plays an engine, with its own
//! stream and memory made through the driver's function table.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kernelhub::{Arg, Backend, Device, Dtype, Hub, KernelSource};
use kernelhub_tests::fake_cuda;

#[path = "support/fake_driver.rs"]
mod fake_driver;
use fake_driver::{FakeDriver, copy_dir, lines, memory_round_trips, reasons, text};

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
        "FAKE_CUDA_CALL_LOG",
    ],
    call_log: "FAKE_CUDA_CALL_LOG",
    launch_log: "FAKE_CUDA_LAUNCH_LOG",
    launch_place: " context=0 stream=1",
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
    let Some((log, _)) = FAKE.in_child_with_logs("hub_new_launches_the_ptx_on_the_fake_gpu", &[])
    else {
        return;
    };
    FAKE.hub_new_launches_on_the_gpu(
        &log,
        (
            Backend::Cuda,
            "kernelhub fake GPU",
            "sm_80, 1024 MiB, CUDA driver 12.4",
        ),
        "build/cuda/activation_sm80.ptx",
    );
}

/// The same on a `CudaDevice` the test holds, so device addresses can be
/// compared: each parameter is where the PTX's `.param` list puts it (the
/// fake reads each at the size the PTX declares).
#[test]
fn launch_parameters_are_what_the_ptx_declares() {
    let Some((log, _)) =
        FAKE.in_child_with_logs("launch_parameters_are_what_the_ptx_declares", &[])
    else {
        return;
    };
    let cuda = Arc::new(kernelhub_cuda::open(0).unwrap());
    FAKE.launch_parameters_reach_the_driver(
        cuda.clone(),
        &|buffer| cuda.device_ptr(buffer).unwrap(),
        &log,
        // What C's %.9g prints for 1.5e-5f32.
        "1.49999996e-05",
    );
}

#[test]
fn memory_round_trips_through_the_driver() {
    if FAKE.in_child("memory_round_trips_through_the_driver", &[]) {
        memory_round_trips(&kernelhub_cuda::open(0).unwrap());
    }
}

/// Two GPUs. `Hub::new()` retains no context until a kernel is loaded, and
/// then only the chosen GPU's. On a thread that has GPU 0's context current
/// (as an engine's thread would), every call on GPU 1 runs in GPU 1's
/// context — its stream, its module (the fake, like the driver, ties both
/// to the context they were made in and refuses them elsewhere), its
/// launch — and the thread has GPU 0's context back after each; a thread
/// with no context keeps GPU 1's, so its next call switches nothing; the
/// module is unloaded in its context after a synchronisation, and the
/// context released when the last of kernelhub's users of it goes.
#[test]
fn each_call_runs_in_its_gpus_context_and_restores_the_threads() {
    let Some((launches, calls)) = FAKE.in_child_with_logs(
        "each_call_runs_in_its_gpus_context_and_restores_the_threads",
        &[("FAKE_CUDA_DEVICES", "2")],
    ) else {
        return;
    };
    let retained = |gpu: u8| {
        lines(&calls)
            .iter()
            .filter(|c| **c == format!("cuDevicePrimaryCtxRetain {gpu}"))
            .count()
    };

    let hub = Hub::new().unwrap();
    assert_eq!(hub.devices().len() - 1, 2, "two GPUs and the WGSL fallback");
    assert_eq!(
        lines(&calls),
        Vec::<String>::new(),
        "probing retains nothing"
    );
    let loaded = hub
        .load(&KernelSource::Embedded("activation".into()))
        .unwrap();
    assert_eq!(loaded.device().info().backend, Backend::Cuda);
    assert_eq!((retained(0), retained(1)), (1, 0), "{:?}", lines(&calls));
    drop((loaded, hub));
    assert!(
        lines(&calls).ends_with(&["cuDevicePrimaryCtxRelease 0".to_string()]),
        "{:?}",
        lines(&calls)
    );

    let gpu0 = kernelhub_cuda::open(0).unwrap();
    let gpu1 = Arc::new(kernelhub_cuda::open(1).unwrap());
    // This thread had no context: it keeps GPU 0's, like an engine's.
    let buffer = gpu0.upload(&[1, 2, 3]).unwrap();
    let before = lines(&calls).len();
    let hub = Hub::with_devices(vec![gpu1.clone() as Arc<dyn Device>]);
    let loaded = hub
        .load(&KernelSource::Embedded("activation".into()))
        .unwrap();
    let op = loaded.op("silu_and_mul", Dtype::F32).unwrap();
    let out = gpu1.alloc(3 * 5 * 4).unwrap();
    let input = gpu1.alloc(3 * 10 * 4).unwrap();
    let launch = || {
        op.launch(&[
            Arg::tensor(&out, Dtype::F32),
            Arg::tensor(&input, Dtype::F32),
            3u32.into(),
            5u32.into(),
        ])
    };
    launch().unwrap();
    let after: Vec<String> = lines(&calls).split_off(before);
    assert!(
        after.contains(&"cuModuleLoadDataEx context=1".to_string())
            && after.contains(&"cuStreamCreate context=1 stream=2".to_string()),
        "{after:?}"
    );
    let allocations: Vec<&String> = after
        .iter()
        .filter(|c| c.starts_with("cuMemAlloc"))
        .collect();
    assert_eq!(allocations, ["cuMemAlloc context=1"; 2], "{after:?}");
    let switches: Vec<&String> = after
        .iter()
        .filter(|c| c.starts_with("cuCtxSetCurrent"))
        .collect();
    assert!(switches.len() >= 2, "{after:?}");
    for pair in switches.chunks(2) {
        assert_eq!(
            pair,
            ["cuCtxSetCurrent 1", "cuCtxSetCurrent 0"],
            "{after:?}"
        );
    }
    // Still on GPU 0's context: no switch for GPU 0's work.
    let before = lines(&calls).len();
    assert_eq!(gpu0.download(&buffer, 0, 3).unwrap(), [1, 2, 3]);
    assert_eq!(lines(&calls).split_off(before), Vec::<String>::new());

    // A thread with no context current keeps GPU 1's.
    let before = lines(&calls).len();
    std::thread::scope(|s| {
        s.spawn(|| {
            launch().unwrap();
            launch().unwrap();
        })
        .join()
    })
    .unwrap();
    let switches: Vec<String> = lines(&calls)
        .split_off(before)
        .into_iter()
        .filter(|c| c.starts_with("cuCtxSetCurrent"))
        .collect();
    assert_eq!(switches, ["cuCtxSetCurrent 1"]);
    let logged = lines(&launches);
    assert_eq!(logged.len(), 3, "{logged:?}");
    for line in &logged {
        assert!(line.contains(" context=1 stream=2 params="), "{logged:?}");
    }

    // The module goes in GPU 1's context, once its work is done; the
    // stream and the context when the device goes.
    let before = lines(&calls).len();
    drop((op, out, input, loaded, hub));
    let expected = [
        "cuCtxSetCurrent 1",
        "cuCtxSynchronize context=1",
        "cuModuleUnload context=1",
        "cuCtxSetCurrent 0",
    ];
    assert!(
        lines(&calls)
            .split_off(before)
            .ends_with(&expected.map(String::from)),
        "{:?}",
        lines(&calls)
    );
    let before = lines(&calls).len();
    drop(gpu1);
    assert_eq!(
        lines(&calls).split_off(before),
        [
            "cuCtxSetCurrent 1",
            "cuStreamDestroy context=1 stream=2",
            "cuCtxSetCurrent 0",
            "cuDevicePrimaryCtxRelease 1"
        ]
    );
}

/// A copy of `kernels/<kernel>` in `project` whose PTX entry `symbol`
/// (whose grid and block lines are `geometry`) asks for `shared_mem`
/// bytes of dynamic shared memory.
fn with_shared_memory(
    project: &Path,
    kernel: &str,
    symbol: &str,
    geometry: &str,
    shared_mem: &str,
) -> PathBuf {
    let dir = project.join(kernel);
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../kernels")
            .join(kernel),
        &dir,
    );
    let manifest = dir.join("kernel.toml");
    let toml = std::fs::read_to_string(&manifest).unwrap();
    let entry = format!("symbol = \"{symbol}\"\n{geometry}");
    assert!(
        toml.find(&entry) < toml.find("backend = \"rocm\""),
        "the first is the PTX artifact's"
    );
    let edited = toml.replacen(
        &entry,
        &format!("{entry}shared_mem = \"{shared_mem}\"\n"),
        1,
    );
    std::fs::write(&manifest, edited).unwrap();
    dir
}

/// Dynamic shared memory past what a kernel may use unasked (48 KiB less
/// its static shared memory): the backend raises the kernel's limit
/// (`cuFuncSetAttribute`) the first time a launch asks for more, once per
/// new high; past what the GPU gives a block (163 KiB on sm_80, less the
/// static part) the launch is refused with both figures before
/// `cuLaunchKernel` is called.
#[test]
fn dynamic_shared_memory_past_48_kib_is_opted_in_to() {
    let Some((launches, calls)) =
        FAKE.in_child_with_logs("dynamic_shared_memory_past_48_kib_is_opted_in_to", &[])
    else {
        return;
    };
    let project = tempfile::tempdir().unwrap();
    let calls_of = |prefix: &str| {
        lines(&calls)
            .into_iter()
            .filter(|c| c.starts_with(prefix))
            .collect::<Vec<_>>()
    };
    let cuda = Arc::new(kernelhub_cuda::open(0).unwrap());
    let hub = Hub::with_devices(vec![cuda.clone() as Arc<dyn Device>]);

    // activation: no static shared memory.
    let dir = with_shared_memory(
        project.path(),
        "activation",
        "silu_and_mul_f32",
        "grid = [\"tokens\", \"ceil_div(d, 2048)\"]\nblock = [256]\n",
        "d * 1024",
    );
    let loaded = hub.load(&KernelSource::Dir(dir)).unwrap();
    let op = loaded.op("silu_and_mul", Dtype::F32).unwrap();
    assert_eq!(op.artifact(), "build/cuda/activation_sm80.ptx");
    let out = cuda.alloc(512 * 4).unwrap();
    let input = cuda.alloc(2 * 512 * 4).unwrap();
    let launch = |d: u32| {
        op.launch(&[
            Arg::tensor(&out, Dtype::F32),
            Arg::tensor(&input, Dtype::F32),
            1u32.into(),
            d.into(),
        ])
    };
    for d in [4, 48, 64, 64, 32, 100] {
        launch(d).unwrap();
    }
    assert_eq!(
        calls_of("cuFuncSetAttribute"),
        [
            "cuFuncSetAttribute silu_and_mul_f32 8 65536 context=0",
            "cuFuncSetAttribute silu_and_mul_f32 8 102400 context=0",
        ]
    );
    let shared: Vec<String> = lines(&launches)
        .iter()
        .map(|l| l.split_whitespace().nth(3).unwrap().to_string())
        .collect();
    assert_eq!(
        shared,
        [4096, 49152, 65536, 65536, 32768, 102400].map(|n| format!("shared={n}"))
    );
    let error = launch(200).unwrap_err().to_string();
    assert!(
        error.contains("204800 bytes of shared memory: this GPU gives a block at most 166912 bytes of shared memory and the kernel's static shared memory takes 0, so at most 166912 can be dynamic (`cuFuncSetAttribute` failed with CUDA_ERROR_INVALID_VALUE (1)"),
        "{error}"
    );
    assert_eq!(
        calls_of("cuLaunchKernel").len(),
        6,
        "the refused launch never ran"
    );
    assert_eq!(calls_of("cuFuncSetAttribute").len(), 3);

    // rms_norm: 32 bytes of static shared memory, so 49,120 bytes before
    // opting in and 166,880 at most.
    let dir = with_shared_memory(
        project.path(),
        "rmsnorm",
        "rms_norm_f32",
        "grid = [\"tokens\"]\nblock = [256]\n",
        "hidden * 16",
    );
    let loaded = hub.load(&KernelSource::Dir(dir)).unwrap();
    let op = loaded.op("rms_norm", Dtype::F32).unwrap();
    let (x, y, weight) = (
        cuda.alloc(12_000 * 4).unwrap(),
        cuda.alloc(12_000 * 4).unwrap(),
        cuda.alloc(12_000 * 4).unwrap(),
    );
    let launch = |hidden: u32| {
        op.launch(&[
            Arg::tensor(&y, Dtype::F32),
            Arg::tensor(&x, Dtype::F32),
            Arg::tensor(&weight, Dtype::F32),
            1e-5f32.into(),
            1u32.into(),
            hidden.into(),
        ])
    };
    launch(3070).unwrap(); // 49,120 bytes: no opt-in
    launch(3072).unwrap(); // 49,152 bytes: one
    assert_eq!(
        calls_of("cuFuncSetAttribute")[3..],
        ["cuFuncSetAttribute rms_norm_f32 8 49152 context=0"]
    );
    let error = launch(10_431).unwrap_err().to_string(); // 166,896 bytes
    assert!(
        error.contains(
            "the kernel's static shared memory takes 32, so at most 166880 can be dynamic"
        ),
        "{error}"
    );
    assert_eq!(calls_of("cuLaunchKernel").len(), 8);
}

/// What an engine does with kernelhub on a GPU it already uses: it holds
/// the primary context, makes its own stream and memory, and hands them to
/// kernelhub (`with_stream`, `wrap`). Launches go to the engine's stream
/// and write through its memory; when kernelhub's device goes, the
/// engine's stream and memory are still the engine's to free.
#[test]
fn an_engines_stream_and_memory_are_used_as_they_are() {
    let Some((launches, _)) =
        FAKE.in_child_with_logs("an_engines_stream_and_memory_are_used_as_they_are", &[])
    else {
        return;
    };
    let gpu = kernelhub_cuda::open(0).unwrap();
    let driver = kernelhub_cuda::sys::driver(None).unwrap();
    let check = |call, status| driver.check(call, status).unwrap();
    let (mut context, mut stream, mut memory) = (std::ptr::null_mut(), std::ptr::null_mut(), 0);
    // SAFETY: each call writes one handle or address (cuda.h signatures).
    unsafe {
        check(
            "cuDevicePrimaryCtxRetain",
            (driver.primary_ctx_retain)(&mut context, 0),
        );
        check("cuCtxSetCurrent", (driver.ctx_set_current)(context));
        check("cuStreamCreate", (driver.stream_create)(&mut stream, 1));
        check("cuMemAlloc_v2", (driver.mem_alloc)(&mut memory, 64));
    }
    // SAFETY: a stream of GPU 0's primary context, and 64 bytes of its
    // memory, both alive until the end of the test.
    let engine = Arc::new(unsafe { kernelhub_cuda::with_stream(&gpu, stream) });
    assert_eq!(engine.queue().stream().unwrap(), stream);
    let wrapped = unsafe { engine.wrap(memory, 60) };
    FAKE.an_engines_stream_and_memory_are_used(engine.clone(), &wrapped, memory, &launches);
    drop((wrapped, engine, gpu));
    // SAFETY: the engine's own stream, memory and context reference.
    unsafe {
        check("cuMemFree_v2", (driver.mem_free)(memory));
        check("cuStreamDestroy_v2", (driver.stream_destroy)(stream));
        check(
            "cuDevicePrimaryCtxRelease_v2",
            (driver.primary_ctx_release)(0),
        );
    }
}
