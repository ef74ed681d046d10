//! The CUDA backend on an NVIDIA GPU: launch overhead against the driver
//! called by hand, and how long a kernel takes to become launchable from
//! its verified bytes (PTX through the driver's JIT, or a cubin).
//! `scripts/gpu-check.sh run` runs it on the GPU machine.
//!
//! - `launch/*`: 10,000 launches of a tiny op (silu_and_mul, 1 x 4 f32,
//!   from the embedded `activation` kernel's PTX) per iteration, then one
//!   stream synchronisation. `trait` is `Op::launch` (argument checks,
//!   geometry from the manifest, context made current, `cuLaunchKernel`);
//!   `raw_cu_launch_kernel` is the same PTX loaded by hand
//!   (`cuModuleLoadDataEx` + `cuModuleGetFunction`) and launched with
//!   `cuLaunchKernel` on the same stream, parameters laid out as the backend
//!   lays them (one 8-byte slot per parameter). Throughput is in launches.
//!   Target: `trait` at most 1.1x `raw_cu_launch_kernel`.
//! - `first_load/*`: verified bytes to a launchable function, on a kernel
//!   planned and verified beforehand: `Device::load` (`cuModuleLoadDataEx`;
//!   for PTX the driver's JIT compiles it), `Kernel::op`
//!   (`cuModuleGetFunction`), one launch and a synchronisation (so that
//!   lazy module loading cannot move work out of the measured span). The
//!   module is unloaded outside it. `ptx` is the embedded activation
//!   kernel; `cubin` runs when `KERNELHUB_BENCH_CUBIN_KERNEL` names a
//!   kernel directory (a copy of `kernels/activation` with a cubin
//!   artifact, as the GPU check makes one with ptxas) whose cubin the
//!   selector picks for this GPU. Run with `CUDA_CACHE_DISABLE=1`, or the
//!   driver's JIT cache answers for the PTX from the second load on.
//!
//! Without an NVIDIA GPU it prints one line saying so and exits 0, so
//! `cargo bench` stays green on machines without one.
#![allow(missing_docs)] // a bench binary
#![allow(clippy::print_stderr)] // the device measured is printed for the record
#![allow(unsafe_code)] // the raw `cuLaunchKernel` baseline calls the driver itself

use std::collections::BTreeSet;
use std::ffi::{CString, c_void};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use kernelhub::hub::DevicePlan;
use kernelhub::{Arg, Buffer, Device, Dtype, Hub, KernelSource, embedded};
use kernelhub_cuda::CudaDevice;
use kernelhub_cuda::sys::{self, CUfunction, CUmodule, CUstream, Driver};
use kernelhub_manifest::KernelManifest;
use kernelhub_manifest::expr::Expr;
use kernelhub_manifest::kernel::Format;
use kernelhub_runtime::device::VerifiedArtifact;

/// Launches per iteration of the `launch` group.
const LAUNCHES: u64 = 10_000;
/// Launches per batch of the `enqueue` groups: well below the depth at
/// which a stream's queue makes `cuLaunchKernel` wait.
const ENQUEUED: u64 = 500;
/// The kernel and op measured.
const KERNEL: &str = "activation";
const OP: &str = "silu_and_mul";
/// Names a kernel directory with a cubin artifact for `first_load/cubin`.
const CUBIN_KERNEL: &str = "KERNELHUB_BENCH_CUBIN_KERNEL";

fn open() -> Result<Arc<CudaDevice>, String> {
    let platform = kernelhub_cuda::probe().map_err(|e| e.to_string())?;
    if platform.devices.is_empty() {
        return Err(format!(
            "the driver `{}` (CUDA {}) finds no NVIDIA GPU",
            platform.library,
            platform.driver()
        ));
    }
    kernelhub_cuda::open(0)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

fn main() {
    let cuda = match open() {
        Ok(cuda) => cuda,
        Err(why) => {
            eprintln!(
                "cuda bench: no CUDA device here, nothing measured ({})",
                why.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            return;
        }
    };
    eprintln!("device: {} ({})", cuda.info().name, cuda.info().kind);
    let mut c = Criterion::default().configure_from_args();
    launch(&mut c, &cuda);
    first_load(&mut c, &cuda);
    c.final_summary();
}

/// The tiny op's buffers (tokens = 1, d = 4) and its launch arguments'
/// values.
struct Tiny {
    input: Buffer,
    out: Buffer,
}

impl Tiny {
    fn new(device: &dyn Device) -> Tiny {
        Tiny {
            input: device.upload(&[0u8; 32]).expect("upload"),
            out: device.alloc(16).expect("alloc"),
        }
    }

    fn args(&self) -> [Arg<'_>; 4] {
        [
            Arg::tensor(&self.out, Dtype::F32),
            Arg::tensor(&self.input, Dtype::F32),
            1u32.into(),
            4u32.into(),
        ]
    }
}

/// A function loaded by hand from the same image, unloaded on drop.
struct RawFunction {
    driver: &'static Driver,
    module: CUmodule,
    function: CUfunction,
}

impl RawFunction {
    /// Loads `image` (PTX gets the NUL terminator the driver reads it up
    /// to) in `cuda`'s context and looks up `symbol`.
    fn load(cuda: &CudaDevice, format: Format, image: &[u8], symbol: &str) -> RawFunction {
        let driver = sys::driver(None).expect("the driver the backend opened");
        let mut image = image.to_vec();
        if format == Format::Ptx {
            image.push(0);
        }
        let symbol = CString::new(symbol).expect("a symbol without NUL");
        // SAFETY: the primary context the backend retained, alive while `cuda` is.
        driver
            .check("cuCtxSetCurrent", unsafe {
                (driver.ctx_set_current)(cuda.queue().context().expect("the primary context"))
            })
            .expect("context");
        let mut module: CUmodule = std::ptr::null_mut();
        // SAFETY: a whole PTX C string or cubin that outlives the call; no options.
        driver
            .check("cuModuleLoadDataEx", unsafe {
                (driver.module_load_data_ex)(
                    &mut module,
                    image.as_ptr().cast(),
                    0,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            })
            .expect("the image loads");
        let mut function: CUfunction = std::ptr::null_mut();
        // SAFETY: a loaded module and a NUL-terminated name; writes one handle.
        driver
            .check("cuModuleGetFunction", unsafe {
                (driver.module_get_function)(&mut function, module, symbol.as_ptr())
            })
            .expect("the symbol exists");
        RawFunction {
            driver,
            module,
            function,
        }
    }
}

impl Drop for RawFunction {
    fn drop(&mut self) {
        // SAFETY: the module loaded in `load`; no launch is pending on it
        // once the bench synchronised.
        let _ = unsafe { (self.driver.module_unload)(self.module) };
    }
}

fn launch(c: &mut Criterion, cuda: &Arc<CudaDevice>) {
    let device: Arc<dyn Device> = cuda.clone();
    let hub = Hub::with_devices(vec![device.clone()]);
    let kernel = hub
        .load(&KernelSource::Embedded(KERNEL.into()))
        .expect("the activation kernel loads on the GPU");
    let op = kernel.op(OP, Dtype::F32).expect("silu_and_mul f32");
    let tiny = Tiny::new(device.as_ref());
    let args = tiny.args();

    // The same function, by hand, with the manifest's symbol and geometry.
    let manifest = kernel.kernel().manifest();
    let artifact = manifest
        .artifacts
        .iter()
        .find(|a| a.path.get_ref() == op.artifact())
        .expect("the op's artifact");
    let entry = artifact
        .entries
        .iter()
        .find(|e| e.op.get_ref() == OP && *e.dtype.get_ref() == Dtype::F32)
        .expect("the op's entry");
    let sizes = |name: &str| match name {
        "tokens" => Some(1),
        "d" => Some(4),
        _ => None,
    };
    let dims = |exprs: Vec<&Expr>| {
        let mut dims = [1u32; 3];
        for (dim, expr) in dims.iter_mut().zip(exprs) {
            *dim = u32::try_from(expr.eval(&sizes).expect("geometry")).unwrap();
        }
        dims
    };
    let grid = dims(entry.grid.iter().map(|e| e.get_ref()).collect());
    let block = dims(entry.block.iter().flatten().map(|e| e.get_ref()).collect());
    let image = embedded::find(KERNEL)
        .and_then(|k| k.file(op.artifact()))
        .expect("the embedded artifact");
    let raw = RawFunction::load(
        cuda,
        *artifact.format.get_ref(),
        image,
        entry.symbol.get_ref(),
    );
    eprintln!(
        "launch: {OP} f32 (1 x 4) from `{}`, grid {grid:?}, block {block:?}, {LAUNCHES} launches per iteration",
        op.artifact()
    );
    let stream: CUstream = cuda.queue().stream().expect("kernelhub's stream");
    let mut slots: [u64; 4] = [
        cuda.device_ptr(&tiny.out).unwrap(),
        cuda.device_ptr(&tiny.input).unwrap(),
        1,
        4,
    ];
    let mut params: Vec<*mut c_void> = slots
        .iter_mut()
        .map(|slot| std::ptr::from_mut(slot).cast::<c_void>())
        .collect();
    let driver = raw.driver;

    let raw_sync = || {
        // SAFETY: the backend's live stream.
        driver
            .check("cuStreamSynchronize", unsafe {
                (driver.stream_synchronize)(stream)
            })
            .unwrap();
    };
    let mut raw_launch = || {
        // SAFETY: `params` points at the four slots (out and input device
        // pointers of 16 and 32 bytes, tokens = 1, d = 4), which outlive
        // the launches; the geometry is the manifest's for that size; the
        // stream is the backend's, alive while `cuda` is.
        let status = unsafe {
            (driver.launch_kernel)(
                raw.function,
                grid[0],
                grid[1],
                grid[2],
                block[0],
                block[1],
                block[2],
                0,
                stream,
                params.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        };
        driver.check("cuLaunchKernel", status).unwrap();
    };
    let mut trait_launch = || op.launch(&args).unwrap();
    let trait_sync = || device.synchronize().unwrap();
    // The raw side calls the driver on this thread's current context, which
    // the first trait call made the backend's.
    trait_launch();
    trait_sync();

    // `launch`: launches then one sync, timed together (the measure).
    // `enqueue`: only the time to enqueue ENQUEUED launches, the sync after
    // each batch untimed, so GPU execution cannot hide host-side cost.
    for (group_name, per_iteration, timed_sync) in
        [("launch", LAUNCHES, true), ("enqueue", ENQUEUED, false)]
    {
        let mut group = c.benchmark_group(group_name);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));
        group.sample_size(10);
        group.sampling_mode(SamplingMode::Flat);
        group.throughput(Throughput::Elements(per_iteration));
        group.bench_function("trait", |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    per_iteration,
                    timed_sync,
                    &mut trait_launch,
                    &trait_sync,
                )
            })
        });
        group.bench_function("raw_cu_launch_kernel", |b| {
            b.iter_custom(|iters| {
                timed(iters, per_iteration, timed_sync, &mut raw_launch, &raw_sync)
            })
        });
        group.finish();
    }
    let got = device.download(&tiny.out, 0, 16).unwrap();
    assert_eq!(got, [0u8; 16], "silu(0) * 0 is 0");
}

/// `iters` rounds of `per_iteration` launches, each round ended by `sync`;
/// the time of the launches alone, or with the syncs when `timed_sync`.
fn timed(
    iters: u64,
    per_iteration: u64,
    timed_sync: bool,
    launch: &mut dyn FnMut(),
    sync: &dyn Fn(),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        for _ in 0..per_iteration {
            launch();
        }
        if timed_sync {
            sync();
            total += start.elapsed();
        } else {
            total += start.elapsed();
            sync();
        }
    }
    total
}

/// A kernel planned for the GPU and its chosen artifacts verified, ready
/// for `Device::load`.
struct Prepared {
    manifest: Arc<KernelManifest>,
    plan: DevicePlan,
    artifacts: Vec<VerifiedArtifact>,
    /// The artifact that runs the measured op.
    path: String,
}

impl Prepared {
    /// The kernel of `source` planned for the hub's GPU, its chosen
    /// artifacts read with `read` and verified; why not, as text.
    fn new(
        hub: &Hub,
        source: &KernelSource,
        read: impl Fn(&str) -> std::io::Result<Vec<u8>>,
    ) -> Result<Prepared, String> {
        let manifest = source.manifest().map_err(|e| e.to_string())?;
        let plan = hub.plans(&manifest).remove(0);
        let chosen: BTreeSet<usize> = plan.choices.iter().filter_map(|c| c.chosen).collect();
        let artifacts = chosen
            .into_iter()
            .map(|index| {
                let path = manifest.artifacts[index].path.get_ref();
                let bytes = read(path).map_err(|e| format!("`{path}`: {e}"))?;
                VerifiedArtifact::check(&manifest, index, bytes.into())
                    .ok_or_else(|| format!("`{path}` does not match its pin in the manifest"))
            })
            .collect::<Result<_, String>>()?;
        let path = plan
            .choices
            .iter()
            .find(|c| c.op == OP && c.dtype == Dtype::F32)
            .and_then(|c| c.chosen)
            .map(|index| manifest.artifacts[index].path.get_ref().clone())
            .unwrap_or_default();
        Ok(Prepared {
            manifest,
            plan,
            artifacts,
            path,
        })
    }
}

fn first_load(c: &mut Criterion, cuda: &Arc<CudaDevice>) {
    let device: Arc<dyn Device> = cuda.clone();
    let hub = Hub::with_devices(vec![device.clone()]);
    let tiny = Tiny::new(device.as_ref());
    let args = tiny.args();
    // `name` is the format the measured op must run from here.
    let keep = |name: &'static str, what: &str, prepared: Result<Prepared, String>| match prepared {
        Ok(prepared) if prepared.path.ends_with(&format!(".{name}")) => Some((name, prepared)),
        Ok(prepared) => {
            eprintln!(
                "first_load/{name}: not measured: on this GPU {what} runs {OP} f32 from `{}`, not a {name}",
                prepared.path
            );
            None
        }
        Err(why) => {
            let why = why.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("first_load/{name}: not measured: {what}: {why}");
            None
        }
    };
    let mut kernels = Vec::new();
    let embedded_kernel = embedded::find(KERNEL).expect("embedded activation");
    kernels.extend(keep(
        "ptx",
        "the embedded kernel",
        Prepared::new(&hub, &KernelSource::Embedded(KERNEL.into()), |path| {
            embedded_kernel
                .file(path)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| std::io::ErrorKind::NotFound.into())
        }),
    ));
    match std::env::var_os(CUBIN_KERNEL).map(PathBuf::from) {
        Some(dir) => kernels.extend(keep(
            "cubin",
            &format!("`{}`", dir.display()),
            Prepared::new(&hub, &KernelSource::Dir(dir.clone()), |path| {
                std::fs::read(dir.join(path))
            }),
        )),
        None => eprintln!("first_load/cubin: not measured: {CUBIN_KERNEL} is not set"),
    }

    // One load first: a driver that refuses an artifact (no code for this
    // GPU) leaves its row out with the driver's reason instead of a panic.
    kernels.retain(|(name, prepared)| {
        match device.load(
            prepared.manifest.clone(),
            prepared.plan.choices.clone(),
            prepared.artifacts.clone(),
        ) {
            Ok(_) => true,
            Err(error) => {
                eprintln!(
                    "first_load/{name}: not measured: `{}` does not load: {}",
                    prepared.path,
                    error
                        .to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                false
            }
        }
    });

    let mut group = c.benchmark_group("first_load");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    for (name, prepared) in &kernels {
        eprintln!(
            "first_load/{name}: `{}` ({} bytes)",
            prepared.path,
            prepared
                .artifacts
                .iter()
                .map(|a| a.bytes.len())
                .sum::<usize>()
        );
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let kernel = device
                        .load(
                            prepared.manifest.clone(),
                            prepared.plan.choices.clone(),
                            prepared.artifacts.clone(),
                        )
                        .expect("the kernel loads");
                    let op = kernel.op(OP, Dtype::F32).expect("the op");
                    op.launch(&args).expect("the launch");
                    device.synchronize().expect("the GPU finishes");
                    total += start.elapsed();
                    // Unloaded outside the measured span.
                    drop((op, kernel));
                }
                total
            })
        });
    }
    group.finish();
}
