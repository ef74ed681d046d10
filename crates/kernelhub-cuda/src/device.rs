//! [`CudaQueue`]: one NVIDIA GPU and the stream kernelhub's work goes to,
//! as the driver calls that [`NativeDevice`] needs; [`CudaDevice`] is the
//! GPU behind kernelhub's `Device` interface.
//!
//! It runs in the GPU's primary context, the one the CUDA runtime and
//! cudarc use, so an engine's allocations and kernelhub's live side by side
//! and pointers pass freely between them. Work goes to one stream: a
//! non-blocking stream kernelhub creates, or the engine's own
//! ([`with_stream`]). The context and the stream are made on first use:
//! probing every GPU costs none of them memory. Every call makes the context current on the calling
//! thread first, so any thread may launch.
//!
//! Modules are loaded from the verified bytes in memory (PTX gets the NUL
//! terminator the driver needs appended to a copy). An image the driver
//! will not run here is refused with the driver's reason, the PTX JIT's
//! error log, and for PTX newer than the driver the driver version it
//! needs, so the loader can move on to the next candidate.
#![allow(unsafe_code)]

use std::ffi::{CString, c_int, c_uint, c_void};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use kernelhub_manifest::introspect::ptx::{min_driver_for_ptx, parse_ptx};
use kernelhub_manifest::kernel::{Backend, DriverVersion, Format};
use kernelhub_manifest::select::Platform;
use kernelhub_runtime::DeviceInfo;
use kernelhub_runtime::native::{LaunchError, Limits, ModuleError, NativeDevice, NativeQueue};

use crate::probe::{CudaDeviceInfo, ProbeError, device_info, driver_version, initialised_driver};
use crate::result::CudaError;
use crate::sys::{
    self, CU_STREAM_NON_BLOCKING, CUcontext, CUdevice, CUdeviceptr, CUfunction, CUjit_option,
    CUmodule, CUstream, Driver,
};

/// An NVIDIA GPU behind kernelhub's `Device` interface.
pub type CudaDevice = NativeDevice<CudaQueue>;

/// Opens GPU `ordinal`: its primary context and a non-blocking stream of
/// kernelhub's, both made on first use, so a process that probes every GPU
/// but works on one holds no context on the others.
pub fn open(ordinal: i32) -> Result<CudaDevice, ProbeError> {
    let driver = initialised_driver()?;
    let described = device_info(driver, ordinal)?;
    let mut version = 0;
    // SAFETY: writes one int.
    driver.check("cuDriverGetVersion", unsafe {
        (driver.driver_get_version)(&mut version)
    })?;
    open_probed(&described, driver_version(version))
}

/// [`open`] for a GPU [`crate::probe()`] already described, under a driver
/// of version `driver`: no second round of queries.
pub fn open_probed(
    described: &CudaDeviceInfo,
    driver: DriverVersion,
) -> Result<CudaDevice, ProbeError> {
    let loaded = initialised_driver()?;
    let mut device: CUdevice = 0;
    // SAFETY: writes one handle.
    loaded.check("cuDeviceGet", unsafe {
        (loaded.device_get)(&mut device, described.ordinal)
    })?;
    let context = Arc::new(Context {
        driver: loaded,
        device,
        raw: OnceLock::new(),
        id: kernelhub_runtime::device::unique_id(),
        info: device_info_for(described, driver),
    });
    Ok(NativeDevice::new(CudaQueue {
        context,
        stream: OnceLock::new(),
        owned: true,
    }))
}

/// The same GPU as `device`, queueing work on the engine's `stream`
/// instead. Buffers pass freely between the two.
///
/// # Safety
/// `stream` must be a `CUstream` of this GPU's primary context (or null,
/// the legacy default stream) and stay valid for as long as the returned
/// device, or any kernel loaded on it, is used.
pub unsafe fn with_stream(device: &CudaDevice, stream: *mut c_void) -> CudaDevice {
    NativeDevice::new(CudaQueue {
        context: device.queue().context.clone(),
        stream: OnceLock::from(stream),
        owned: false,
    })
}

/// A GPU's primary context, retained on first use and for as long as
/// anything of kernelhub uses it.
struct Context {
    driver: &'static Driver,
    device: CUdevice,
    raw: OnceLock<CUcontext>,
    /// kernelhub's identity for the GPU: its buffers carry it.
    id: u64,
    info: DeviceInfo,
}

// SAFETY: a CUDA context may be made current on any thread; the handle
// is only passed to the driver, which synchronises internally.
unsafe impl Send for Context {}
// SAFETY: as above; there is no interior mutability on this side.
unsafe impl Sync for Context {}

impl Context {
    /// Runs `f` with this context current on the calling thread: every
    /// driver call that works in a context goes through here. Where the
    /// thread already has it (an engine on the primary context, or an
    /// earlier call here) that costs one `cuCtxGetCurrent`. Where the
    /// thread had another context current (an engine's own), it is made
    /// current again afterwards, so kernelhub never leaves an engine's
    /// thread on the wrong context; a thread that had none keeps this one.
    fn bound<T>(&self, f: impl FnOnce() -> Result<T, CudaError>) -> Result<T, CudaError> {
        let driver = self.driver;
        let raw = self.raw()?;
        let mut previous: CUcontext = std::ptr::null_mut();
        // SAFETY: writes one context handle (null when none is current).
        driver.check("cuCtxGetCurrent", unsafe {
            (driver.ctx_get_current)(&mut previous)
        })?;
        if previous == raw {
            return f();
        }
        // SAFETY: `raw` is a retained primary context, valid until `drop`.
        driver.check("cuCtxSetCurrent", unsafe { (driver.ctx_set_current)(raw) })?;
        let result = f();
        if !previous.is_null() {
            // SAFETY: the context that was current a moment ago, which the
            // thread's owner keeps alive; a failure leaves ours current.
            let _ = unsafe { (driver.ctx_set_current)(previous) };
        }
        result
    }

    /// The primary context, retained on the first call.
    fn raw(&self) -> Result<CUcontext, CudaError> {
        if let Some(raw) = self.raw.get() {
            return Ok(*raw);
        }
        let driver = self.driver;
        let mut raw: CUcontext = std::ptr::null_mut();
        // SAFETY: writes one context handle, retained until `drop`.
        driver.check("cuDevicePrimaryCtxRetain", unsafe {
            (driver.primary_ctx_retain)(&mut raw, self.device)
        })?;
        if self.raw.set(raw).is_err() {
            // Another thread retained it first: keep one reference.
            // SAFETY: balances the retain just above.
            let _ = unsafe { (driver.primary_ctx_release)(self.device) };
        }
        Ok(*self.raw.get().unwrap_or(&raw))
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        if self.raw.get().is_some() {
            // SAFETY: balances the retain in `raw`. A failure cannot be
            // reported from `drop`, and leaves only a reference behind.
            let _ = unsafe { (self.driver.primary_ctx_release)(self.device) };
        }
    }
}

/// One GPU's primary context and a stream in it.
pub struct CudaQueue {
    context: Arc<Context>,
    /// The engine's stream, or kernelhub's once created.
    stream: OnceLock<CUstream>,
    /// Created by kernelhub (destroyed on drop) rather than the engine's.
    owned: bool,
}

// SAFETY: a CUDA context may be made current on any thread, and streams,
// modules and functions used from any thread of it; the handles are only
// passed to the driver, which synchronises internally.
unsafe impl Send for CudaQueue {}
// SAFETY: as above; there is no interior mutability on this side.
unsafe impl Sync for CudaQueue {}

impl Drop for CudaQueue {
    fn drop(&mut self) {
        if let (true, Some(stream)) = (self.owned, self.stream.get()) {
            let driver = self.context.driver;
            let _ = self.context.bound(|| {
                // SAFETY: a stream this crate created and nothing else
                // holds; pending work completes before the driver frees it.
                driver.check("cuStreamDestroy_v2", unsafe {
                    (driver.stream_destroy)(*stream)
                })
            });
        }
    }
}

impl CudaQueue {
    /// The stream launches are queued on (`CUstream`), created on first use.
    pub fn stream(&self) -> Result<*mut c_void, CudaError> {
        if let Some(stream) = self.stream.get() {
            return Ok(*stream);
        }
        let driver = self.context.driver;
        let mut stream: CUstream = std::ptr::null_mut();
        self.context.bound(|| {
            // SAFETY: writes one stream handle in the current context.
            driver.check("cuStreamCreate", unsafe {
                (driver.stream_create)(&mut stream, CU_STREAM_NON_BLOCKING)
            })
        })?;
        if self.stream.set(stream).is_err() {
            // Another thread made one first: use that, drop this one.
            let _ = self.context.bound(|| {
                // SAFETY: the stream just created, which nothing else holds.
                driver.check("cuStreamDestroy_v2", unsafe {
                    (driver.stream_destroy)(stream)
                })
            });
        }
        Ok(*self.stream.get().unwrap_or(&stream))
    }

    /// The primary context (`CUcontext`), retained on first use.
    pub fn context(&self) -> Result<*mut c_void, CudaError> {
        self.context.raw()
    }

    /// Makes the driver call(s) in the context ([`Context::bound`]); the
    /// driver's error as text.
    fn call(&self, f: impl FnOnce(&'static Driver) -> Result<(), CudaError>) -> Result<(), String> {
        self.bound(|| f(self.context.driver))
            .map_err(|e| e.to_string())
    }

    fn bound<T>(&self, f: impl FnOnce() -> Result<T, CudaError>) -> Result<T, CudaError> {
        self.context.bound(f)
    }

    fn sync(&self, driver: &Driver) -> Result<(), CudaError> {
        let stream = self.stream()?;
        // SAFETY: a live stream of the current context.
        driver.check("cuStreamSynchronize", unsafe {
            (driver.stream_synchronize)(stream)
        })
    }

    /// Lets `function` be launched with `bytes` of dynamic shared memory.
    /// Beyond 48 KiB a kernel must opt in (`cuFuncSetAttribute`), up to
    /// the GPU's per-block limit less the kernel's static shared memory;
    /// past that the error gives both figures.
    fn allow_dynamic_shared(&self, function: &CudaFunction, bytes: u32) -> Result<(), LaunchError> {
        // One raise at a time in the process: the call sets the limit
        // outright, so two racing raises (or two ops on one kernel) must
        // not leave it below what either asked for. Read, then raise only
        // if still needed.
        static RAISING: Mutex<()> = Mutex::new(());
        let _one = RAISING.lock().unwrap_or_else(PoisonError::into_inner);
        let driver = self.context.driver;
        let raised = self.bound(|| {
            let mut current: c_int = 0;
            // SAFETY: a function of a module loaded in this context; writes one int.
            let read = driver.check("cuFuncGetAttribute", unsafe {
                (driver.func_get_attribute)(
                    &mut current,
                    sys::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    function.raw,
                )
            });
            let current = current.max(0).cast_unsigned();
            if read.is_ok() && current >= bytes {
                return Ok(current);
            }
            // SAFETY: as above.
            driver.check("cuFuncSetAttribute", unsafe {
                (driver.func_set_attribute)(
                    function.raw,
                    sys::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    c_int::try_from(bytes).unwrap_or(c_int::MAX),
                )
            })?;
            Ok(bytes)
        });
        let error = match raised {
            Ok(limit) => {
                function.dynamic_shared.fetch_max(limit, Ordering::Relaxed);
                return Ok(());
            }
            Err(error) => error,
        };
        let mut message = error.to_string();
        if error.code == sys::CUDA_ERROR_INVALID_VALUE
            && let Ok((per_block, fixed)) = self.shared_limits(function)
            && u64::from(bytes) > u64::from(per_block.saturating_sub(fixed))
        {
            message = format!(
                "this GPU gives a block at most {per_block} bytes of shared memory and the kernel's static shared memory takes {fixed}, so at most {} can be dynamic ({error})",
                per_block.saturating_sub(fixed)
            );
        }
        Err(LaunchError::from_status(error.code, message))
    }

    /// The most shared memory a block may have on this GPU (opted in), and
    /// the static shared memory `function` takes of it.
    fn shared_limits(&self, function: &CudaFunction) -> Result<(u32, u32), CudaError> {
        let driver = self.context.driver;
        self.bound(|| {
            let (mut per_block, mut fixed): (c_int, c_int) = (0, 0);
            // SAFETY: writes one int for a valid attribute and device.
            driver.check("cuDeviceGetAttribute", unsafe {
                (driver.device_get_attribute)(
                    &mut per_block,
                    sys::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                    self.context.device,
                )
            })?;
            // SAFETY: as above, for the function's attribute.
            driver.check("cuFuncGetAttribute", unsafe {
                (driver.func_get_attribute)(
                    &mut fixed,
                    sys::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES,
                    function.raw,
                )
            })?;
            Ok((
                per_block.max(0).cast_unsigned(),
                fixed.max(0).cast_unsigned(),
            ))
        })
    }
}

/// A loaded module, unloaded on drop.
pub struct CudaModule {
    context: Arc<Context>,
    raw: CUmodule,
}

// SAFETY: see `CudaQueue`.
unsafe impl Send for CudaModule {}
// SAFETY: see `CudaQueue`.
unsafe impl Sync for CudaModule {}

impl Drop for CudaModule {
    fn drop(&mut self) {
        let driver = self.context.driver;
        let _ = self.context.bound(|| {
            // Launches of its functions may still be running, on any
            // stream of the context (an engine's included): wait for them.
            // SAFETY: no arguments; the context is current.
            driver.check("cuCtxSynchronize", unsafe { (driver.ctx_synchronize)() })?;
            // SAFETY: a module this crate loaded; no op refers to it any
            // more and none of its work is pending.
            driver.check("cuModuleUnload", unsafe {
                (driver.module_unload)(self.raw)
            })
        });
    }
}

/// A kernel function of a [`CudaModule`] (the op keeps the module alive).
pub struct CudaFunction {
    raw: CUfunction,
    /// The most dynamic shared memory it may be launched with, as last
    /// read or raised (`CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`).
    dynamic_shared: AtomicU32,
}

// SAFETY: see `CudaQueue`.
unsafe impl Send for CudaFunction {}
// SAFETY: see `CudaQueue`.
unsafe impl Sync for CudaFunction {}

/// Size of each JIT log buffer.
const LOG_BYTES: usize = 16 * 1024;

/// Driver statuses that mean "this image will not run here": the loader
/// moves on to the next candidate instead of failing.
const REFUSALS: &[i32] = &[
    sys::CUDA_ERROR_INVALID_IMAGE,
    sys::CUDA_ERROR_INVALID_SOURCE,
    sys::CUDA_ERROR_NO_BINARY_FOR_GPU,
    sys::CUDA_ERROR_INVALID_PTX,
    sys::CUDA_ERROR_JIT_COMPILER_NOT_FOUND,
    sys::CUDA_ERROR_UNSUPPORTED_PTX_VERSION,
    sys::CUDA_ERROR_JIT_COMPILATION_DISABLED,
    sys::CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND,
    sys::CUDA_ERROR_SHARED_OBJECT_INIT_FAILED,
];

impl NativeQueue for CudaQueue {
    type Module = CudaModule;
    type Function = CudaFunction;

    const BACKEND: Backend = Backend::Cuda;
    const LIMITS: Limits = Limits {
        grid: [(1 << 31) - 1, 65535, 65535],
        block: [1024, 1024, 64],
        threads: 1024,
        grid_threads: u64::MAX,
    };

    fn info(&self) -> &DeviceInfo {
        &self.context.info
    }

    fn device_id(&self) -> u64 {
        self.context.id
    }

    fn alloc(&self, len: u64) -> Result<u64, String> {
        let mut address: CUdeviceptr = 0;
        let len = len as usize;
        self.call(|driver| {
            // SAFETY: writes one device address in the current context.
            driver.check("cuMemAlloc_v2", unsafe {
                (driver.mem_alloc)(&mut address, len)
            })
        })?;
        let zeroed = self.call(|driver| {
            // SAFETY: the `len` bytes just allocated.
            driver.check("cuMemsetD8Async", unsafe {
                (driver.memset_d8_async)(address, 0, len, self.stream()?)
            })?;
            // The zeros are there before the buffer is handed out,
            // whatever stream the caller uses it on next.
            self.sync(driver)
        });
        if let Err(e) = zeroed {
            self.free(address);
            return Err(e);
        }
        Ok(address)
    }

    fn free(&self, address: u64) {
        let _ = self.call(|driver| {
            // SAFETY: an allocation of `alloc` that no buffer refers to any
            // more; `cuMemFree` waits for work using it.
            driver.check("cuMemFree_v2", unsafe { (driver.mem_free)(address) })
        });
    }

    fn upload(&self, address: u64, bytes: &[u8]) -> Result<(), String> {
        self.call(|driver| {
            // SAFETY: `bytes` is readable for its length and the memory at
            // `address` is as long (the caller allocated it so); the copy
            // completes in the synchronisation below, while `bytes` is
            // still borrowed.
            driver.check("cuMemcpyHtoDAsync_v2", unsafe {
                (driver.memcpy_htod_async)(
                    address,
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    self.stream()?,
                )
            })?;
            self.sync(driver)
        })
    }

    fn download(&self, address: u64, out: &mut [u8]) -> Result<(), String> {
        self.call(|driver| {
            // SAFETY: the caller checked the range against the buffer;
            // `out` is writable for its length and the copy completes in
            // the synchronisation below, while it is borrowed.
            driver.check("cuMemcpyDtoHAsync_v2", unsafe {
                (driver.memcpy_dtoh_async)(
                    out.as_mut_ptr().cast(),
                    address,
                    out.len(),
                    self.stream()?,
                )
            })?;
            self.sync(driver)
        })
    }

    fn synchronize(&self) -> Result<(), String> {
        self.call(|driver| self.sync(driver))
    }

    fn load_module(&self, format: Format, bytes: &Arc<[u8]>) -> Result<CudaModule, ModuleError> {
        let image: std::borrow::Cow<'_, [u8]> = match format {
            // The driver reads PTX as a C string. A byte-order mark and
            // trailing NULs (which `kernelhub check` accepts) are dropped;
            // a NUL inside the text would cut it short, so it is refused.
            Format::Ptx => {
                let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
                let end = text.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
                let text = &text[..end];
                if text.contains(&0) {
                    return Err(ModuleError::Refused(
                        "the PTX text contains a NUL byte before its end".into(),
                    ));
                }
                let mut terminated = Vec::with_capacity(text.len() + 1);
                terminated.extend_from_slice(text);
                terminated.push(0);
                terminated.into()
            }
            Format::Cubin | Format::Fatbin => bytes[..].into(),
            other => {
                return Err(ModuleError::Refused(format!(
                    "a {other} artifact; the CUDA backend loads ptx, cubin and fatbin"
                )));
            }
        };
        let driver = self.context.driver;
        let mut error_log = vec![0u8; LOG_BYTES];
        let mut options: [CUjit_option; 2] = [
            sys::CU_JIT_ERROR_LOG_BUFFER,
            sys::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
        ];
        // Sizes are passed in the pointer-sized option values themselves.
        let mut values: [*mut c_void; 2] = [
            error_log.as_mut_ptr().cast(),
            std::ptr::without_provenance_mut(LOG_BYTES),
        ];
        let mut raw: CUmodule = std::ptr::null_mut();
        let status = self
            .bound(|| {
                // SAFETY: `image` is a whole PTX C string, cubin or fatbin
                // that outlives the call; the log buffer is writable for
                // the size given.
                Ok(unsafe {
                    (driver.module_load_data_ex)(
                        &mut raw,
                        image.as_ptr().cast(),
                        options.len() as c_uint,
                        options.as_mut_ptr(),
                        values.as_mut_ptr(),
                    )
                })
            })
            .map_err(|e| ModuleError::Failed(e.to_string()))?;
        match driver.check("cuModuleLoadDataEx", status) {
            Ok(()) => Ok(CudaModule {
                context: self.context.clone(),
                raw,
            }),
            Err(error) if REFUSALS.contains(&error.code) => {
                let mut reason = explain_refusal(&error, format, bytes, &self.context.info);
                let log = log_text(&error_log);
                if !log.is_empty() {
                    reason.push_str("\n    JIT log: ");
                    reason.push_str(&log.replace('\n', "\n      "));
                }
                Err(ModuleError::Refused(reason))
            }
            Err(error) => Err(ModuleError::Failed(error.to_string())),
        }
    }

    fn function(&self, module: &CudaModule, symbol: &CString) -> Result<CudaFunction, String> {
        let mut function: CUfunction = std::ptr::null_mut();
        let mut dynamic_shared: c_int = 0;
        self.call(|driver| {
            // SAFETY: a loaded module and a NUL-terminated name; writes one handle.
            driver.check("cuModuleGetFunction", unsafe {
                (driver.module_get_function)(&mut function, module.raw, symbol.as_ptr())
            })?;
            // SAFETY: the function just found; writes one int. A failure
            // leaves 0: the first launch with shared memory asks again.
            let _ = unsafe {
                (driver.func_get_attribute)(
                    &mut dynamic_shared,
                    sys::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    function,
                )
            };
            Ok(())
        })?;
        Ok(CudaFunction {
            raw: function,
            dynamic_shared: AtomicU32::new(dynamic_shared.max(0).cast_unsigned()),
        })
    }

    unsafe fn launch(
        &self,
        function: &CudaFunction,
        grid: [u32; 3],
        block: [u32; 3],
        shared_bytes: u32,
        params: &mut [*mut c_void],
    ) -> Result<(), LaunchError> {
        if shared_bytes > function.dynamic_shared.load(Ordering::Relaxed) {
            self.allow_dynamic_shared(function, shared_bytes)?;
        }
        let driver = self.context.driver;
        self.bound(|| {
            let stream = self.stream()?;
            // SAFETY: the caller guarantees `params` and the geometry fit
            // the function (the trait's contract); the stream is live.
            driver.check("cuLaunchKernel", unsafe {
                (driver.launch_kernel)(
                    function.raw,
                    grid[0],
                    grid[1],
                    grid[2],
                    block[0],
                    block[1],
                    block[2],
                    shared_bytes,
                    stream,
                    params.as_mut_ptr(),
                    std::ptr::null_mut(),
                )
            })
        })
        .map_err(|e| LaunchError::from_status(e.code, e.to_string()))
    }
}

/// The runtime's description of a probed GPU.
fn device_info_for(device: &CudaDeviceInfo, driver: DriverVersion) -> DeviceInfo {
    DeviceInfo {
        backend: Backend::Cuda,
        platform: Platform::Cuda(device.arch),
        name: device.name.clone(),
        kind: format!(
            "{}, {} MiB, CUDA driver {driver}",
            device.arch,
            device.total_memory >> 20
        ),
        features: Vec::new(),
        driver: Some(driver),
    }
}

/// The driver's refusal in words that say what to do.
fn explain_refusal(error: &CudaError, format: Format, bytes: &[u8], device: &DeviceInfo) -> String {
    let driver = device
        .driver
        .map_or_else(|| "unknown".to_string(), |d| d.to_string());
    match error.code {
        sys::CUDA_ERROR_UNSUPPORTED_PTX_VERSION => {
            let version = parse_ptx(bytes).ok().map(|info| info.version);
            match (version, version.and_then(min_driver_for_ptx)) {
                (Some((major, minor)), Some((needs_major, needs_minor))) => format!(
                    "the PTX is ISA version {major}.{minor}, which needs a CUDA {needs_major}.{needs_minor} driver or newer; this one is CUDA {driver}: update the driver, or publish PTX of an older ISA version ({})",
                    error.name
                ),
                _ => format!(
                    "the PTX is newer than this CUDA {driver} driver understands: update the driver ({})",
                    error.name
                ),
            }
        }
        sys::CUDA_ERROR_NO_BINARY_FOR_GPU => format!(
            "the {format} holds no code for `{}` ({}: {})",
            device.platform, error.name, error.description
        ),
        _ => error.to_string(),
    }
}

/// A NUL-terminated log buffer's text, trimmed.
fn log_text(buffer: &[u8]) -> String {
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_stop_at_the_terminator() {
        let mut buffer = b"ptxas error : bad\n\0garbage".to_vec();
        buffer.resize(64, 0);
        assert_eq!(log_text(&buffer), "ptxas error : bad");
        assert_eq!(log_text(&[0; 8]), "");
    }

    #[test]
    fn refusals_say_which_driver_the_ptx_needs() {
        let device = DeviceInfo {
            backend: Backend::Cuda,
            platform: "cuda:sm_90".parse().unwrap(),
            name: "gpu".into(),
            kind: String::new(),
            features: Vec::new(),
            driver: Some(driver_version(12040)),
        };
        let error = |code, name: &str| CudaError {
            call: "cuModuleLoadDataEx",
            code,
            name: name.into(),
            description: "text".into(),
        };
        let ptx = b".version 8.8\n.target sm_90\n.address_size 64\n";
        let text = explain_refusal(
            &error(
                sys::CUDA_ERROR_UNSUPPORTED_PTX_VERSION,
                "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
            ),
            Format::Ptx,
            ptx,
            &device,
        );
        assert!(
            text.contains(
                "ISA version 8.8, which needs a CUDA 12.9 driver or newer; this one is CUDA 12.4"
            ),
            "{text}"
        );
        let text = explain_refusal(
            &error(
                sys::CUDA_ERROR_NO_BINARY_FOR_GPU,
                "CUDA_ERROR_NO_BINARY_FOR_GPU",
            ),
            Format::Cubin,
            b"",
            &device,
        );
        assert!(
            text.starts_with("the cubin holds no code for `cuda:sm_90`"),
            "{text}"
        );
    }
}
