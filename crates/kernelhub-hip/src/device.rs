//! [`HipQueue`]: one AMD GPU and the stream kernelhub's work goes to, as
//! the HIP calls that kernelhub's shared native device
//! ([`kernelhub_runtime::native`]) needs; [`HipDevice`] is the GPU behind
//! kernelhub's `Device` interface.
//!
//! HIP has no context object to hold: the current device is per thread, so
//! every call selects the queue's GPU (`hipSetDevice`) first, and any thread
//! may launch. Work goes to a non-blocking stream kernelhub creates, or the
//! engine's own ([`with_stream`]). Code objects are loaded from the
//! verified bytes with `hipModuleLoadData`; the module keeps those bytes,
//! since HIP may read the image after the call. An image the runtime will
//! not run on this GPU is refused with the runtime's reason, so the loader
//! moves on to the next candidate.
#![allow(unsafe_code)]

use std::ffi::{CString, c_void};
use std::sync::{Arc, OnceLock};

use kernelhub_manifest::kernel::{Backend, DriverVersion, Format};
use kernelhub_manifest::select::Platform;
use kernelhub_runtime::DeviceInfo;
use kernelhub_runtime::native::{LaunchError, Limits, ModuleError, NativeDevice, NativeQueue};

use crate::error::{HipError, codes};
use crate::probe::{HipDeviceInfo, HipPlatform, ProbeError, probe};
use crate::result::Hip;
use crate::sys::{hipFunction_t, hipModule_t, hipStream_t, hipStreamNonBlocking};

/// An AMD GPU behind kernelhub's `Device` interface.
pub type HipDevice = NativeDevice<HipQueue>;

/// Opens GPU `ordinal`; its non-blocking stream (and so HIP's context on
/// the GPU) is made on first use, so probing every GPU costs none of them
/// memory.
pub fn open(ordinal: i32) -> Result<HipDevice, ProbeError> {
    let platform = probe()?;
    let Some(described) = platform.devices.iter().find(|d| d.ordinal == ordinal) else {
        return Err(ProbeError::NoSuchDevice {
            ordinal,
            count: platform.devices.len(),
        });
    };
    open_probed(&platform, described)
}

/// [`open`] for a GPU of a `platform` [`crate::probe()`] already
/// returned: no second probe.
pub fn open_probed(
    platform: &HipPlatform,
    described: &HipDeviceInfo,
) -> Result<HipDevice, ProbeError> {
    let runtime = platform.runtime_version;
    let gpu = Arc::new(Gpu {
        hip: Hip::load()?,
        ordinal: described.ordinal,
        id: kernelhub_runtime::device::unique_id(),
        info: device_info_for(
            described,
            DriverVersion {
                major: runtime.major().max(0).cast_unsigned(),
                minor: runtime.minor().max(0).cast_unsigned(),
            },
        ),
    });
    Ok(NativeDevice::new(HipQueue {
        gpu,
        stream: OnceLock::new(),
        owned: true,
    }))
}

/// The same GPU as `device`, queueing work on the engine's `stream`
/// instead. Buffers pass freely between the two.
///
/// # Safety
/// `stream` must be a `hipStream_t` of this GPU (or null, the null stream)
/// and stay valid for as long as the returned device, or any kernel loaded
/// on it, is used.
pub unsafe fn with_stream(device: &HipDevice, stream: *mut c_void) -> HipDevice {
    NativeDevice::new(HipQueue {
        gpu: device.queue().gpu.clone(),
        stream: OnceLock::from(stream.cast::<crate::sys::ihipStream_t>()),
        owned: false,
    })
}

/// One GPU as kernelhub knows it.
struct Gpu {
    hip: Hip,
    ordinal: i32,
    /// kernelhub's identity for the GPU: its buffers carry it.
    id: u64,
    info: DeviceInfo,
}

impl Gpu {
    /// Runs `f` with this GPU as the calling thread's current device, then
    /// gives the thread back the device it had, so kernelhub never leaves
    /// an engine's thread on another GPU. One `hipGetDevice` where the
    /// thread has this GPU already.
    fn selected<T>(&self, f: impl FnOnce() -> Result<T, HipError>) -> Result<T, HipError> {
        let previous = self.hip.get_device()?;
        if previous == self.ordinal {
            return f();
        }
        self.hip.set_device(self.ordinal)?;
        let result = f();
        let _ = self.hip.set_device(previous);
        result
    }
}

/// One GPU and a stream on it.
pub struct HipQueue {
    gpu: Arc<Gpu>,
    /// The engine's stream, or kernelhub's once created.
    stream: OnceLock<hipStream_t>,
    /// Created by kernelhub (destroyed on drop) rather than the engine's.
    owned: bool,
}

// SAFETY: HIP streams, modules and functions may be used from any thread
// once the device is selected on it, which every call here does first; the
// handles are only passed to the runtime, which synchronises internally.
unsafe impl Send for HipQueue {}
// SAFETY: as above; there is no interior mutability on this side.
unsafe impl Sync for HipQueue {}

impl Drop for HipQueue {
    fn drop(&mut self) {
        if let (true, Some(stream)) = (self.owned, self.stream.get()) {
            let hip = self.gpu.hip;
            // SAFETY: a stream this crate created and nothing else holds.
            let _ = self.gpu.selected(|| unsafe { hip.stream_destroy(*stream) });
        }
    }
}

impl HipQueue {
    /// The stream launches are queued on (`hipStream_t`), created on first
    /// use.
    pub fn stream(&self) -> Result<*mut c_void, HipError> {
        self.raw_stream().map(|s| s.cast())
    }

    fn raw_stream(&self) -> Result<hipStream_t, HipError> {
        if let Some(stream) = self.stream.get() {
            return Ok(*stream);
        }
        let hip = self.gpu.hip;
        let stream = self
            .gpu
            .selected(|| hip.stream_create_with_flags(hipStreamNonBlocking))?;
        if self.stream.set(stream).is_err() {
            // Another thread made one first: use that, drop this one.
            // SAFETY: the stream just created, which nothing else holds.
            let _ = self.gpu.selected(|| unsafe { hip.stream_destroy(stream) });
        }
        Ok(*self.stream.get().unwrap_or(&stream))
    }

    /// Makes the call(s) with the GPU selected ([`Gpu::selected`]); the
    /// runtime's error as text.
    fn call(&self, f: impl FnOnce(Hip) -> Result<(), HipError>) -> Result<(), String> {
        self.gpu
            .selected(|| f(self.gpu.hip))
            .map_err(|e| e.to_string())
    }

    fn sync(&self, hip: Hip) -> Result<(), HipError> {
        // SAFETY: a live stream of the selected device.
        let stream = self.raw_stream()?;
        // SAFETY: as above.
        unsafe { hip.stream_synchronize(stream) }
    }
}

/// A loaded module and the image it was loaded from; unloaded on drop.
pub struct HipModule {
    gpu: Arc<Gpu>,
    raw: hipModule_t,
    /// HIP may read the image after `hipModuleLoadData` returns.
    _image: Arc<[u8]>,
}

// SAFETY: see `HipQueue`.
unsafe impl Send for HipModule {}
// SAFETY: see `HipQueue`.
unsafe impl Sync for HipModule {}

impl Drop for HipModule {
    fn drop(&mut self) {
        let hip = self.gpu.hip;
        let _ = self.gpu.selected(|| {
            // Launches of its functions may still be running, on any stream
            // (an engine's included): wait for them first.
            hip.device_synchronize()?;
            // SAFETY: a module this crate loaded; no op refers to it any
            // more and none of its work is pending.
            unsafe { hip.module_unload(self.raw) }
        });
    }
}

/// A kernel function of a [`HipModule`] (the op keeps the module alive).
pub struct HipFunction(hipFunction_t);

// SAFETY: see `HipQueue`.
unsafe impl Send for HipFunction {}
// SAFETY: see `HipQueue`.
unsafe impl Sync for HipFunction {}

/// Runtime statuses that mean "this image will not run here": the loader
/// moves on to the next candidate instead of failing.
const REFUSALS: &[i32] = &[
    codes::INVALID_IMAGE,
    codes::NO_BINARY_FOR_GPU,
    codes::INVALID_KERNEL_FILE,
    codes::SHARED_OBJECT_SYMBOL_NOT_FOUND,
    codes::SHARED_OBJECT_INIT_FAILED,
];

impl NativeQueue for HipQueue {
    type Module = HipModule;
    type Function = HipFunction;

    const BACKEND: Backend = Backend::Rocm;
    const LIMITS: Limits = Limits {
        grid: [(1 << 31) - 1, 65535, 65535],
        block: [1024, 1024, 1024],
        threads: 1024,
        grid_threads: u32::MAX as u64,
    };

    fn info(&self) -> &DeviceInfo {
        &self.gpu.info
    }

    fn device_id(&self) -> u64 {
        self.gpu.id
    }

    fn alloc(&self, len: u64) -> Result<u64, String> {
        let len = len as usize;
        let mut pointer = std::ptr::null_mut();
        self.call(|hip| {
            pointer = hip.malloc(len)?;
            Ok(())
        })?;
        let zeroed = self.call(|hip| {
            // SAFETY: the `len` bytes just allocated.
            unsafe { hip.memset_d8_async(pointer, 0, len, self.raw_stream()?) }?;
            // The zeros are there before the buffer is handed out,
            // whatever stream the caller uses it on next.
            self.sync(hip)
        });
        if let Err(e) = zeroed {
            self.free(pointer as u64);
            return Err(e);
        }
        Ok(pointer as u64)
    }

    fn free(&self, address: u64) {
        let _ = self.call(|hip| {
            // SAFETY: an allocation of `alloc` that no buffer refers to any
            // more; queued work using it is waited for first.
            unsafe {
                self.sync(hip)?;
                hip.free(address as *mut c_void)
            }
        });
    }

    fn upload(&self, address: u64, bytes: &[u8]) -> Result<(), String> {
        self.call(|hip| {
            // SAFETY: the memory at `address` is at least `bytes.len()`
            // long (the caller allocated it so); the copy completes in the
            // synchronisation below, while `bytes` is borrowed.
            unsafe { hip.memcpy_htod_async(address as *mut c_void, bytes, self.raw_stream()?) }?;
            self.sync(hip)
        })
    }

    fn download(&self, address: u64, out: &mut [u8]) -> Result<(), String> {
        self.call(|hip| {
            // SAFETY: the caller checked the range against the buffer; the
            // copy completes in the synchronisation below, while `out` is
            // borrowed.
            unsafe { hip.memcpy_dtoh_async(out, address as *mut c_void, self.raw_stream()?) }?;
            self.sync(hip)
        })
    }

    fn synchronize(&self) -> Result<(), String> {
        self.call(|hip| self.sync(hip))
    }

    fn load_module(&self, format: Format, bytes: &Arc<[u8]>) -> Result<HipModule, ModuleError> {
        if format != Format::Hsaco {
            return Err(ModuleError::Refused(format!(
                "a {format} artifact; the ROCm backend loads hsaco code objects"
            )));
        }
        let hip = self.gpu.hip;
        // SAFETY: the verified bytes of an hsaco (its size and hash match
        // the manifest, and `kernelhub check` parses it as an AMD GPU ELF);
        // the module keeps them alive until it is unloaded.
        match self.gpu.selected(|| unsafe { hip.module_load_data(bytes) }) {
            Ok(raw) => Ok(HipModule {
                gpu: self.gpu.clone(),
                raw,
                _image: bytes.clone(),
            }),
            Err(error) if error.is(codes::NO_BINARY_FOR_GPU) => Err(ModuleError::Refused(format!(
                "the hsaco holds no code for `{}` ({error})",
                self.gpu.info.platform
            ))),
            Err(error) if REFUSALS.contains(&error.code) => {
                Err(ModuleError::Refused(error.to_string()))
            }
            Err(error) => Err(ModuleError::Failed(error.to_string())),
        }
    }

    fn function(&self, module: &HipModule, symbol: &CString) -> Result<HipFunction, String> {
        let mut function: hipFunction_t = std::ptr::null_mut();
        self.call(|hip| {
            // SAFETY: a loaded module, kept alive by the op with the function.
            function = unsafe { hip.module_get_function(module.raw, symbol) }?;
            Ok(())
        })?;
        Ok(HipFunction(function))
    }

    unsafe fn launch(
        &self,
        function: &HipFunction,
        grid: [u32; 3],
        block: [u32; 3],
        shared_bytes: u32,
        params: &mut [*mut c_void],
    ) -> Result<(), LaunchError> {
        let hip = self.gpu.hip;
        self.gpu
            .selected(|| {
                let stream = self.raw_stream()?;
                // SAFETY: the caller guarantees `params` and the geometry
                // fit the function (the trait's contract); the stream is live.
                unsafe {
                    hip.module_launch_kernel(function.0, grid, block, shared_bytes, stream, params)
                }
            })
            .map_err(|e| LaunchError::from_status(e.code, e.to_string()))
    }
}

/// The runtime's description of a probed GPU.
fn device_info_for(device: &HipDeviceInfo, runtime: DriverVersion) -> DeviceInfo {
    // A feature kernelhub does not know (beyond xnack and sramecc) leaves
    // the processor alone, which matches code objects of any mode; the
    // runtime refuses one that does not fit, and the loader moves on.
    let processor = device.gcn_arch_name.split(':').next().unwrap_or_default();
    let platform = Platform::Rocm(device.arch().or_else(|_| processor.parse()).unwrap_or(
        kernelhub_manifest::target::AmdArch {
            processor: processor.to_string(),
            features: Vec::new(),
        },
    ));
    DeviceInfo {
        backend: Backend::Rocm,
        platform,
        name: device.name.clone(),
        kind: format!(
            "{}, {} MiB, HIP {runtime}",
            device.gcn_arch_name,
            device.total_memory >> 20
        ),
        features: Vec::new(),
        driver: Some(runtime),
    }
}
