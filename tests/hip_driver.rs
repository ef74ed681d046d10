//! The ROCm backend against a test double of the HIP runtime
//! (`tests/fake-hip/fake_hip.c`), because CI has no AMD GPU: its real
//! `libamdhip64` (HIP 5.2) sees no device, so the backend's device path
//! (properties, streams, memory, code objects, launches) never runs there.
//! Here it does: `kernelhub doctor` lists the fake GPU under both
//! `hipDeviceProp_t` layouts; the hsaco for the GPU's processor is picked
//! and loaded; a launch reaches `hipModuleLaunchKernel` with the argument
//! block the code object's metadata declares (read back by the fake); a
//! code object the runtime refuses ends in a WGSL fallback with the reason;
//! and with two GPUs every call runs on its GPU and leaves the thread on
//! the device it had.
//!
//! Every process here opens the fake (`KERNELHUB_HIP_LIBRARY`) and no CUDA
//! driver (`KERNELHUB_CUDA_LIBRARY` names a file that does not exist). The
//! runtime is opened once per process, so each setting of the fake gets its
//! own process: the `kernelhub` binary, or this test binary re-run for one
//! test ([`FakeDriver::in_child`]) for library-level checks.
//!
//! Unsafe code: the engine-interop test plays an engine, with its own
//! stream and memory made through the runtime's function table.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kernelhub::{Arg, Backend, Buffer, Device, Dtype, Hub, KernelSource};
use kernelhub_hip::sys::HipLib;
use kernelhub_tests::fake_hip;

#[path = "support/fake_driver.rs"]
mod fake_driver;
use fake_driver::{FakeDriver, copy_dir, f32_bytes, lines, memory_round_trips, reasons, text};

/// The fake HIP runtime, and no CUDA driver.
const FAKE: FakeDriver = FakeDriver {
    library: fake_hip::library,
    file_name: "libfakehip.so",
    library_var: "KERNELHUB_HIP_LIBRARY",
    other_library: ("KERNELHUB_CUDA_LIBRARY", "libcuda.so.1"),
    settings: &[
        "FAKE_HIP_DEVICES",
        "FAKE_HIP_ARCH",
        "FAKE_HIP_RUNTIME",
        "FAKE_HIP_LAUNCH_LOG",
        "FAKE_HIP_CALL_LOG",
    ],
    call_log: "FAKE_HIP_CALL_LOG",
    launch_log: "FAKE_HIP_LAUNCH_LOG",
    launch_place: " stream=1 device=0",
    child_var: "KERNELHUB_TESTS_FAKE_HIP_CHILD",
    what: "runtime",
};
/// What `kernelhub doctor` calls the fake GPU with its default settings.
const DEFAULT_GPU: &str =
    "rocm: kernelhub fake AMD GPU (gfx90a:sramecc+:xnack-, 1024 MiB, HIP 5.2)";
/// The activation ops, as `kernelhub doctor` lists them (sorted).
const ACTIVATION_OPS: [&str; 3] = ["gelu_and_mul", "gelu_tanh_and_mul", "silu_and_mul"];

/// `kernelhub doctor [args]`'s standard output; it must succeed.
fn doctor(project: &Path, args: &[&str], settings: &[(&str, &str)]) -> String {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    let output = FAKE.kernelhub(project, &all, settings);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    stdout
}

/// The part of `doctor`'s output about kernel `name`: its line and the
/// more deeply indented ones under it.
fn kernel_section<'a>(doctor: &'a str, name: &str) -> &'a str {
    let start = doctor
        .find(&format!("\n  {name} 0.1.0\n"))
        .unwrap_or_else(|| panic!("{name} in:\n{doctor}"))
        + 1;
    let rest = &doctor[start..];
    let mut end = rest.find('\n').map_or(rest.len(), |i| i + 1);
    for line in rest[end..].split_inclusive('\n') {
        if !line.starts_with("   ") {
            break;
        }
        end += line.len();
    }
    &rest[..end]
}

/// (a) The fake is the runtime the backend binds, symbol for symbol: every
/// required one, both property calls (so the layout is chosen by version),
/// and not `hipDeviceGetName` (so the name comes from the properties).
#[test]
fn the_fake_exports_exactly_the_symbols_the_backend_binds() {
    let mut wanted: Vec<&str> = HipLib::REQUIRED_SYMBOLS.to_vec();
    assert!(
        HipLib::OPTIONAL_SYMBOLS.contains(&"hipDeviceGetName"),
        "{:?}",
        HipLib::OPTIONAL_SYMBOLS
    );
    for optional in ["hipGetDeviceProperties", "hipGetDevicePropertiesR0600"] {
        assert!(HipLib::OPTIONAL_SYMBOLS.contains(&optional), "{optional}");
        wanted.push(optional);
    }
    wanted.sort_unstable();
    let exported = FAKE.exported_symbols();
    assert!(
        wanted.contains(&"hipModuleLaunchKernel") && wanted.len() > 20,
        "the whole hip_api! list: {wanted:?}"
    );
    assert_eq!(exported, wanted, "tests/fake-hip/fake_hip.c vs sys.rs");
}

/// (b) `kernelhub doctor` lists the fake GPU (its name from the R0000
/// properties of a HIP 5 runtime) and loads the gfx90a hsaco for every op
/// and dtype; each module is unloaded after a device synchronisation, and
/// with one GPU the current device is never switched.
#[test]
fn doctor_lists_the_fake_gpu_and_loads_the_gfx90a_hsaco() {
    let project = tempfile::tempdir().unwrap();
    let calls = project.path().join("calls.log");
    let stdout = doctor(
        project.path(),
        &[],
        &[("FAKE_HIP_CALL_LOG", calls.to_str().unwrap())],
    );
    assert!(stdout.contains(&format!("\n  {DEFAULT_GPU}\n")), "{stdout}");
    assert!(
        stdout.contains("  cuda: unavailable: no NVIDIA driver library"),
        "{stdout}"
    );
    let activation = kernel_section(&stdout, "activation");
    assert!(
        activation.contains("-> kernelhub fake AMD GPU (rocm): runs 9 of 9 op/dtype pairs"),
        "{activation}"
    );
    for op in ACTIVATION_OPS {
        for dtype in ["f32", "f16", "bf16"] {
            let line = format!("       {op} {dtype}: `build/rocm/activation_gfx90a.hsaco`\n");
            assert!(activation.contains(&line), "{line}in:\n{activation}");
        }
    }
    assert!(
        activation.contains(
            "not `build/rocm/activation_gfx942.hsaco`: built for `gfx942`, which cannot run on `gfx90a:sramecc+:xnack-`"
        ),
        "{activation}"
    );
    let calls = lines(&calls);
    assert!(
        calls.contains(&"hipGetDeviceProperties 0".to_string())
            && !calls
                .iter()
                .any(|c| c.starts_with("hipGetDevicePropertiesR0600")),
        "HIP 5: the R0000 layout: {calls:?}"
    );
    let loads = calls
        .iter()
        .filter(|c| c.starts_with("hipModuleLoadData"))
        .count();
    let unloads: Vec<usize> = (0..calls.len())
        .filter(|i| calls[*i].starts_with("hipModuleUnload"))
        .collect();
    assert!(loads >= 4 && unloads.len() == loads, "{calls:?}");
    for i in unloads {
        assert_eq!(
            calls[i - 1],
            "hipDeviceSynchronize device=0",
            "pending work is waited for before an unload: {calls:?}"
        );
    }
    assert!(
        !calls.iter().any(|c| c.starts_with("hipSetDevice")),
        "the thread is on the only GPU already: {calls:?}"
    );
}

/// No GPU: HIP 5.2 fails `hipInit` and answers `hipErrorNoDevice` with a
/// count of 0; that is a platform without devices, not an error.
#[test]
fn a_runtime_without_a_gpu_is_a_platform_without_devices() {
    let project = tempfile::tempdir().unwrap();
    let stdout = doctor(project.path(), &[], &[("FAKE_HIP_DEVICES", "0")]);
    assert!(!stdout.contains("kernelhub fake AMD GPU"), "{stdout}");
    let rocm = stdout
        .lines()
        .find(|l| l.starts_with("  rocm: "))
        .unwrap_or_else(|| panic!("a rocm line in:\n{stdout}"));
    assert!(rocm.contains("unavailable"), "{rocm}");
    let activation = kernel_section(&stdout, "activation");
    assert!(
        activation.contains("(wgpu): runs 6 of 9"),
        "the WGSL fallback runs it:\n{activation}"
    );
}

/// (c) A HIP 6 runtime: the R0600 layout (`hipGetDevicePropertiesR0600`,
/// `gcnArchName` at byte 1160) is asked for and read right.
#[test]
fn hip_6_reads_the_r0600_properties() {
    let project = tempfile::tempdir().unwrap();
    let calls = project.path().join("calls.log");
    let stdout = doctor(
        project.path(),
        &[],
        &[
            ("FAKE_HIP_RUNTIME", "60032830"),
            ("FAKE_HIP_ARCH", "gfx942:sramecc+:xnack-"),
            ("FAKE_HIP_CALL_LOG", calls.to_str().unwrap()),
        ],
    );
    assert!(
        stdout.contains(
            "\n  rocm: kernelhub fake AMD GPU (gfx942:sramecc+:xnack-, 1024 MiB, HIP 6.0)\n"
        ),
        "{stdout}"
    );
    let calls = lines(&calls);
    assert!(
        calls.contains(&"hipGetDevicePropertiesR0600 0".to_string())
            && !calls.contains(&"hipGetDeviceProperties 0".to_string()),
        "{calls:?}"
    );
    assert!(
        kernel_section(&stdout, "activation")
            .contains("silu_and_mul f32: `build/rocm/activation_gfx942.hsaco`"),
        "{stdout}"
    );
}

/// (e) The hsaco follows the GPU's processor: gfx942 gets the gfx942 code
/// object; gfx1100, for which there is none, gets the WGSL fallback and the
/// runtime is never asked to load anything.
#[test]
fn the_processor_picks_the_hsaco_or_the_wgsl_fallback() {
    let project = tempfile::tempdir().unwrap();
    let stdout = doctor(
        project.path(),
        &[],
        &[("FAKE_HIP_ARCH", "gfx942:sramecc+:xnack-")],
    );
    assert!(
        stdout.contains(
            "\n  rocm: kernelhub fake AMD GPU (gfx942:sramecc+:xnack-, 1024 MiB, HIP 5.2)\n"
        ),
        "{stdout}"
    );
    let activation = kernel_section(&stdout, "activation");
    assert!(
        activation.contains("-> kernelhub fake AMD GPU (rocm): runs 9 of 9 op/dtype pairs"),
        "{activation}"
    );
    for op in ACTIVATION_OPS {
        for dtype in ["f32", "f16", "bf16"] {
            let line = format!("       {op} {dtype}: `build/rocm/activation_gfx942.hsaco`\n");
            assert!(activation.contains(&line), "{line}in:\n{activation}");
        }
    }

    let calls = project.path().join("calls.log");
    let stdout = doctor(
        project.path(),
        &[],
        &[
            ("FAKE_HIP_ARCH", "gfx1100"),
            ("FAKE_HIP_CALL_LOG", calls.to_str().unwrap()),
        ],
    );
    assert!(
        stdout.contains("\n  rocm: kernelhub fake AMD GPU (gfx1100, 1024 MiB, HIP 5.2)\n"),
        "{stdout}"
    );
    let activation = kernel_section(&stdout, "activation");
    assert!(
        activation.contains("kernelhub fake AMD GPU (rocm): runs 0 of 9 op/dtype pairs")
            && activation
                .lines()
                .nth(1)
                .is_some_and(|l| l.contains("-> ") && l.contains("(wgpu): runs 6 of 9")),
        "the WGSL fallback runs it:\n{activation}"
    );
    assert!(
        activation.contains(
            "not `build/rocm/activation_gfx90a.hsaco`: built for `gfx90a`, which cannot run on `gfx1100`"
        ),
        "{activation}"
    );
    assert!(
        !lines(&calls)
            .iter()
            .any(|c| c.starts_with("hipModuleLoadData")),
        "nothing was loaded"
    );
}

/// kernels/activation with the gfx942 code object in the place of the
/// gfx90a one, its manifest still saying gfx90a (size and hash updated):
/// selection picks it for a gfx90a GPU, and only the runtime can refuse it.
fn gfx90a_hsaco_holding_gfx942_code(project: &Path) -> PathBuf {
    let dir = project.join("activation");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels/activation"),
        &dir,
    );
    std::fs::copy(
        dir.join("build/rocm/activation_gfx942.hsaco"),
        dir.join("build/rocm/activation_gfx90a.hsaco"),
    )
    .unwrap();
    let output = FAKE.kernelhub(project, &["manifest", "update", dir.to_str().unwrap()], &[]);
    let stderr = text(&output.stderr);
    assert!(
        output.status.success() && stderr.contains("Updated build/rocm/activation_gfx90a.hsaco"),
        "{stderr}"
    );
    let manifest = std::fs::read_to_string(dir.join("kernel.toml")).unwrap();
    assert!(
        manifest.contains("targets = [\"gfx90a\"]\npath = \"build/rocm/activation_gfx90a.hsaco\""),
        "the manifest still says gfx90a:\n{manifest}"
    );
    dir
}

/// (f) The runtime refuses a code object for another processor
/// (`hipErrorNoBinaryForGpu`); kernelhub plans around it to WGSL, and
/// `kernelhub doctor DIR` and the library's plan (in a re-run of this test)
/// say why.
#[test]
fn an_hsaco_the_runtime_refuses_falls_back_to_wgsl() {
    const NAME: &str = "an_hsaco_the_runtime_refuses_falls_back_to_wgsl";
    const REASON: &str = "the driver refused it: the hsaco holds no code for `rocm:gfx90a:sramecc+:xnack-` (`hipModuleLoadData` failed: hipErrorNoBinaryForGpu (error 209))";
    if FAKE.is_child(NAME) {
        let dir = std::env::var("KERNELHUB_TESTS_KERNEL_DIR").unwrap();
        let hub = Hub::new().unwrap();
        let loaded = hub.load(&KernelSource::Dir(dir.into())).unwrap();
        assert_eq!(loaded.device().info().backend, Backend::Wgpu);
        let reasons = reasons(
            &loaded,
            &hub,
            Backend::Rocm,
            "build/rocm/activation_gfx90a.hsaco",
        );
        assert_eq!(reasons, REASON);
        return;
    }
    let project = tempfile::tempdir().unwrap();
    let dir = gfx90a_hsaco_holding_gfx942_code(project.path());
    let dir_arg = dir.to_str().unwrap();
    let stdout = doctor(project.path(), &[dir_arg], &[]);
    assert!(
        stdout.contains(&format!(
            "not `build/rocm/activation_gfx90a.hsaco`: {REASON}"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("(wgpu): runs 6 of 9") && stdout.contains("(rocm): runs 0 of 9"),
        "{stdout}"
    );
    FAKE.run_child(NAME, &[("KERNELHUB_TESTS_KERNEL_DIR", dir_arg)]);
}

/// (d) `Hub::new()` with the fake runtime (and no CUDA driver) prefers the
/// AMD GPU and loads the embedded gfx90a hsaco there; a launch reaches the
/// runtime with grid and block from the manifest, on kernelhub's stream.
#[test]
fn hub_new_launches_the_hsaco_on_the_fake_gpu() {
    let Some((log, _)) = FAKE.in_child_with_logs("hub_new_launches_the_hsaco_on_the_fake_gpu", &[])
    else {
        return;
    };
    FAKE.hub_new_launches_on_the_gpu(
        &log,
        (
            Backend::Rocm,
            "kernelhub fake AMD GPU",
            "gfx90a:sramecc+:xnack-, 1024 MiB, HIP 5.2",
        ),
        "build/rocm/activation_gfx90a.hsaco",
    );
}

/// (d) The same on a `HipDevice` the test holds, so device addresses can
/// be compared: arguments are where the code object's metadata note puts
/// them (`global_buffer` of 8 bytes, `by_value` of 4; an f32 is its bits,
/// which the fake prints as an integer); a grid beyond one block dimension
/// is cut by `ceil_div(d, 2048)`.
#[test]
fn launch_arguments_are_what_the_code_object_declares() {
    let Some((log, _)) =
        FAKE.in_child_with_logs("launch_arguments_are_what_the_code_object_declares", &[])
    else {
        return;
    };
    let hip = Arc::new(kernelhub_hip::open(0).unwrap());
    let device_ptr = |buffer: &Buffer| hip.device_ptr(buffer).unwrap();
    FAKE.launch_parameters_reach_the_driver(
        hip.clone(),
        &device_ptr,
        &log,
        &1.5e-5f32.to_bits().to_string(),
    );

    // d = 4097 f32 columns: two blocks along y.
    let hub = Hub::with_devices(vec![hip.clone() as Arc<dyn Device>]);
    let loaded = hub
        .load(&KernelSource::Embedded("activation".into()))
        .unwrap();
    let op = loaded.op("gelu_and_mul", Dtype::F32).unwrap();
    assert_eq!(op.artifact(), "build/rocm/activation_gfx90a.hsaco");
    let (tokens, d) = (2u32, 4097u32);
    let wide_out = hip.alloc(u64::from(tokens * d) * 4).unwrap();
    let wide_in = hip.alloc(u64::from(tokens * d) * 8).unwrap();
    op.launch(&[
        Arg::tensor(&wide_out, Dtype::F32),
        Arg::tensor(&wide_in, Dtype::F32),
        tokens.into(),
        d.into(),
    ])
    .unwrap();
    assert_eq!(
        lines(&log)[2],
        format!(
            "gelu_and_mul_f32 grid=2,3,1 block=256,1,1 shared=0 stream=1 device=0 params={:#x},{:#x},2,4097",
            device_ptr(&wide_out),
            device_ptr(&wide_in),
        )
    );
}

#[test]
fn memory_round_trips_through_the_runtime() {
    if FAKE.in_child("memory_round_trips_through_the_runtime", &[]) {
        memory_round_trips(&kernelhub_hip::open(0).unwrap());
    }
}

/// (g) Two GPUs: probing both and loading a kernel on GPU 0 makes no
/// stream, switches no device and leaves GPU 1 alone. Every call on GPU 1
/// runs with GPU 1 current — its stream, its module (the fake, like HIP,
/// ties both to the device current when they were made and refuses them
/// elsewhere), its launch — and the thread gets device 0 back after each,
/// on the calling thread or another. GPU 0 work on a thread already on
/// GPU 0 switches nothing.
#[test]
fn each_call_runs_on_its_gpu_and_restores_the_thread_device() {
    let Some((launches, calls)) = FAKE.in_child_with_logs(
        "each_call_runs_on_its_gpu_and_restores_the_thread_device",
        &[("FAKE_HIP_DEVICES", "2")],
    ) else {
        return;
    };
    let hub = Hub::new().unwrap();
    assert_eq!(hub.devices().len() - 1, 2, "two GPUs and the WGSL fallback");
    let made = |calls: &[String]| {
        calls
            .iter()
            .filter(|c| c.starts_with("hipStreamCreate") || c.starts_with("hipSetDevice"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(made(&lines(&calls)), Vec::<String>::new());
    let loaded = hub
        .load(&KernelSource::Embedded("activation".into()))
        .unwrap();
    assert_eq!(loaded.device().info().backend, Backend::Rocm);
    let after = lines(&calls);
    assert_eq!(
        made(&after),
        Vec::<String>::new(),
        "the stream comes with work"
    );
    assert!(
        after.contains(&"hipModuleLoadData device=0".to_string())
            && !after.iter().any(|c| c.ends_with("device=1")),
        "{after:?}"
    );
    drop((loaded, hub));

    let gpu0 = Arc::new(kernelhub_hip::open(0).unwrap());
    let gpu1 = Arc::new(kernelhub_hip::open(1).unwrap());
    let hub = Hub::with_devices(vec![gpu1.clone() as Arc<dyn Device>]);
    let loaded = hub
        .load(&KernelSource::Embedded("activation".into()))
        .unwrap();
    let op = loaded.op("silu_and_mul", Dtype::F32).unwrap();
    let out = gpu1.alloc(3 * 5 * 4).unwrap();
    let input = gpu1.upload(&f32_bytes((0..30).map(|i| i as f32))).unwrap();
    let launch = || {
        op.launch(&[
            Arg::tensor(&out, Dtype::F32),
            Arg::tensor(&input, Dtype::F32),
            3u32.into(),
            5u32.into(),
        ])
    };
    launch().unwrap();
    std::thread::scope(|s| s.spawn(launch).join())
        .unwrap()
        .unwrap();
    let logged = lines(&launches);
    assert_eq!(logged.len(), 2, "{logged:?}");
    for line in &logged {
        assert!(line.contains(" stream=1 device=1 params="), "{logged:?}");
    }
    // Every switch to GPU 1 is followed by a switch back to 0.
    let switches: Vec<String> = lines(&calls)
        .into_iter()
        .filter(|c| c.starts_with("hipSetDevice"))
        .collect();
    assert!(!switches.is_empty());
    for pair in switches.chunks(2) {
        assert_eq!(pair, ["hipSetDevice 1", "hipSetDevice 0"], "{switches:?}");
    }
    assert!(
        lines(&calls).contains(&"hipModuleLoadData device=1".to_string()),
        "{:?}",
        lines(&calls)
    );
    // Back on GPU 0, this thread needs no switch at all.
    let before = lines(&calls).len();
    let buffer = gpu0.upload(&[1, 2, 3]).unwrap();
    assert_eq!(gpu0.download(&buffer, 0, 3).unwrap(), [1, 2, 3]);
    let after = lines(&calls);
    assert!(
        after[before..]
            .iter()
            .all(|c| !c.starts_with("hipSetDevice")),
        "{:?}",
        &after[before..]
    );
    // The module is unloaded on GPU 1 when the kernel goes.
    drop(op);
    drop(loaded);
    drop(hub);
    let calls = lines(&calls);
    assert!(
        calls.ends_with(&[
            "hipSetDevice 1".to_string(),
            "hipDeviceSynchronize device=1".to_string(),
            "hipModuleUnload device=1".to_string(),
            "hipSetDevice 0".to_string(),
        ]),
        "{calls:?}"
    );
}

/// What an engine does with kernelhub on a GPU it already uses: it makes
/// its own stream and memory and hands them to kernelhub (`with_stream`,
/// `wrap`). Launches go to the engine's stream and write through its
/// memory; when kernelhub's device goes, the engine's stream and memory
/// are still the engine's to free.
#[test]
fn an_engines_stream_and_memory_are_used_as_they_are() {
    let Some((launches, _)) =
        FAKE.in_child_with_logs("an_engines_stream_and_memory_are_used_as_they_are", &[])
    else {
        return;
    };
    let gpu = kernelhub_hip::open(0).unwrap();
    let hip = kernelhub_hip::sys::lib().unwrap();
    let (mut stream, mut memory) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: each call writes one handle or address (hip_runtime_api.h).
    unsafe {
        assert_eq!((hip.hipStreamCreateWithFlags)(&mut stream, 1), 0);
        assert_eq!((hip.hipMalloc)(&mut memory, 64), 0);
    }
    // SAFETY: a stream of GPU 0 and 64 bytes of its memory, both alive
    // until the end of the test.
    let engine = Arc::new(unsafe { kernelhub_hip::with_stream(&gpu, stream.cast()) });
    assert_eq!(engine.queue().stream().unwrap(), stream.cast());
    let address = memory as u64;
    let wrapped = unsafe { engine.wrap(address, 60) };
    FAKE.an_engines_stream_and_memory_are_used(engine.clone(), &wrapped, address, &launches);
    drop((wrapped, engine, gpu));
    // SAFETY: the engine's own memory and stream.
    unsafe {
        assert_eq!((hip.hipFree)(memory), 0, "the memory is still the engine's");
        assert_eq!((hip.hipStreamDestroy)(stream), 0, "the stream too");
    }
}
