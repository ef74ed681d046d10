//! The CUDA driver API, opened at run time: the few types and constants
//! kernelhub uses, and one table of function pointers looked up once from
//! `libcuda.so.1`.
//!
//! Nothing here is linked: a machine without the NVIDIA driver gets an
//! error naming the library and the paths tried, and a driver too old to
//! have a symbol gets an error naming the symbol, never a panic. Signatures
//! follow `cuda.h` of the driver API (the `_v2` entry points where the
//! plain ones are the 32-bit legacy versions).
#![allow(unsafe_code, non_camel_case_types)]

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::sync::OnceLock;

/// A driver call's status; 0 is success.
pub type CUresult = c_int;
/// A device ordinal handle.
pub type CUdevice = c_int;
/// A device address.
pub type CUdeviceptr = u64;
/// An opaque context.
pub type CUcontext = *mut c_void;
/// An opaque loaded module.
pub type CUmodule = *mut c_void;
/// An opaque kernel function of a module.
pub type CUfunction = *mut c_void;
/// An opaque stream.
pub type CUstream = *mut c_void;
/// A `cuModuleLoadDataEx` option.
pub type CUjit_option = c_int;

/// `CUDA_SUCCESS`.
pub const CUDA_SUCCESS: CUresult = 0;
/// `CUDA_ERROR_INVALID_VALUE`: an argument out of range.
pub const CUDA_ERROR_INVALID_VALUE: CUresult = 1;
/// `CUDA_ERROR_NO_DEVICE`: a driver, but no NVIDIA GPU.
pub const CUDA_ERROR_NO_DEVICE: CUresult = 100;
/// `CUDA_ERROR_INVALID_IMAGE`.
pub const CUDA_ERROR_INVALID_IMAGE: CUresult = 200;
/// `CUDA_ERROR_NO_BINARY_FOR_GPU`: no code in the image for this GPU.
pub const CUDA_ERROR_NO_BINARY_FOR_GPU: CUresult = 209;
/// `CUDA_ERROR_INVALID_PTX`: the JIT rejected the PTX.
pub const CUDA_ERROR_INVALID_PTX: CUresult = 218;
/// `CUDA_ERROR_UNSUPPORTED_PTX_VERSION`: PTX newer than the driver.
pub const CUDA_ERROR_UNSUPPORTED_PTX_VERSION: CUresult = 222;
/// `CUDA_ERROR_JIT_COMPILER_NOT_FOUND`.
pub const CUDA_ERROR_JIT_COMPILER_NOT_FOUND: CUresult = 221;
/// `CUDA_ERROR_JIT_COMPILATION_DISABLED`.
pub const CUDA_ERROR_JIT_COMPILATION_DISABLED: CUresult = 223;
/// `CUDA_ERROR_INVALID_SOURCE`: what drivers say of an image for another
/// architecture.
pub const CUDA_ERROR_INVALID_SOURCE: CUresult = 300;
/// `CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND`.
pub const CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND: CUresult = 302;
/// `CUDA_ERROR_SHARED_OBJECT_INIT_FAILED`.
pub const CUDA_ERROR_SHARED_OBJECT_INIT_FAILED: CUresult = 303;

/// `CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR`.
pub const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: c_int = 75;
/// `CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR`.
pub const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: c_int = 76;
/// `CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN`: the most shared
/// memory one block may have, static and dynamic together, once opted in.
pub const CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: c_int = 97;
/// `CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES`: a kernel's static shared memory.
pub const CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: c_int = 1;
/// `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`: the most dynamic
/// shared memory a kernel may be launched with (48 KiB less its static
/// shared memory until raised).
pub const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: c_int = 8;

/// `CU_STREAM_NON_BLOCKING`: no implicit sync with the legacy default stream.
pub const CU_STREAM_NON_BLOCKING: c_uint = 1;

/// `CU_JIT_ERROR_LOG_BUFFER`.
pub const CU_JIT_ERROR_LOG_BUFFER: CUjit_option = 5;
/// `CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES`.
pub const CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES: CUjit_option = 6;

/// The library names tried, in order: the driver installs `libcuda.so.1`;
/// the unversioned name exists only with development files.
pub const LIBRARY_CANDIDATES: &[&str] = &["libcuda.so.1", "libcuda.so"];

macro_rules! driver_api {
    ($($field:ident = $symbol:literal: fn($($arg:ty),*);)*) => {
        /// The driver's entry points, looked up once.
        pub struct Driver {
            /// The library the pointers point into; kept open for them.
            _library: libloading::Library,
            /// The file it was opened from.
            pub library: String,
            $(
                #[doc = concat!("`", $symbol, "`.")]
                pub $field: unsafe extern "C" fn($($arg),*) -> CUresult,
            )*
        }

        impl Driver {
            fn open(name: &str) -> Result<Driver, LoadError> {
                // SAFETY: loading the NVIDIA driver library runs its
                // initialisers, which have no preconditions on our side.
                let library = unsafe { libloading::Library::new(name) }.map_err(|e| {
                    LoadError::Library {
                        tried: name.to_string(),
                        reason: e.to_string(),
                    }
                })?;
                $(
                    // SAFETY: the pointer's type is the symbol's C signature
                    // from `cuda.h`; the library stays open in the struct.
                    let $field = *unsafe {
                        library.get::<unsafe extern "C" fn($($arg),*) -> CUresult>(
                            concat!($symbol, "\0").as_bytes(),
                        )
                    }
                    .map_err(|_| LoadError::Symbol {
                        library: name.to_string(),
                        symbol: $symbol,
                    })?;
                )*
                Ok(Driver {
                    _library: library,
                    library: name.to_string(),
                    $($field,)*
                })
            }
        }
    };
}

driver_api! {
    init = "cuInit": fn(c_uint);
    driver_get_version = "cuDriverGetVersion": fn(*mut c_int);
    device_get_count = "cuDeviceGetCount": fn(*mut c_int);
    device_get = "cuDeviceGet": fn(*mut CUdevice, c_int);
    device_get_name = "cuDeviceGetName": fn(*mut c_char, c_int, CUdevice);
    device_get_attribute = "cuDeviceGetAttribute": fn(*mut c_int, c_int, CUdevice);
    device_total_mem = "cuDeviceTotalMem_v2": fn(*mut usize, CUdevice);
    primary_ctx_retain = "cuDevicePrimaryCtxRetain": fn(*mut CUcontext, CUdevice);
    primary_ctx_release = "cuDevicePrimaryCtxRelease_v2": fn(CUdevice);
    ctx_get_current = "cuCtxGetCurrent": fn(*mut CUcontext);
    ctx_set_current = "cuCtxSetCurrent": fn(CUcontext);
    ctx_synchronize = "cuCtxSynchronize": fn();
    stream_create = "cuStreamCreate": fn(*mut CUstream, c_uint);
    stream_destroy = "cuStreamDestroy_v2": fn(CUstream);
    stream_synchronize = "cuStreamSynchronize": fn(CUstream);
    mem_alloc = "cuMemAlloc_v2": fn(*mut CUdeviceptr, usize);
    mem_free = "cuMemFree_v2": fn(CUdeviceptr);
    memcpy_htod_async = "cuMemcpyHtoDAsync_v2": fn(CUdeviceptr, *const c_void, usize, CUstream);
    memcpy_dtoh_async = "cuMemcpyDtoHAsync_v2": fn(*mut c_void, CUdeviceptr, usize, CUstream);
    memset_d8_async = "cuMemsetD8Async": fn(CUdeviceptr, u8, usize, CUstream);
    module_load_data_ex = "cuModuleLoadDataEx":
        fn(*mut CUmodule, *const c_void, c_uint, *mut CUjit_option, *mut *mut c_void);
    module_unload = "cuModuleUnload": fn(CUmodule);
    module_get_function = "cuModuleGetFunction": fn(*mut CUfunction, CUmodule, *const c_char);
    func_get_attribute = "cuFuncGetAttribute": fn(*mut c_int, c_int, CUfunction);
    func_set_attribute = "cuFuncSetAttribute": fn(CUfunction, c_int, c_int);
    launch_kernel = "cuLaunchKernel": fn(
        CUfunction, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, CUstream,
        *mut *mut c_void, *mut *mut c_void
    );
    get_error_name = "cuGetErrorName": fn(CUresult, *mut *const c_char);
    get_error_string = "cuGetErrorString": fn(CUresult, *mut *const c_char);
}

/// Why the driver library could not be opened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// No library of that name could be opened.
    #[error("cannot open `{tried}`: {reason}")]
    Library {
        /// The name tried.
        tried: String,
        /// The loader's message.
        reason: String,
    },
    /// The library lacks an entry point kernelhub needs (a driver older than CUDA 11).
    #[error("`{library}` has no `{symbol}`; kernelhub needs a CUDA 11 or newer driver")]
    Symbol {
        /// The library.
        library: String,
        /// The missing symbol.
        symbol: &'static str,
    },
}

/// The driver, opened on first use from the first of
/// [`LIBRARY_CANDIDATES`] that opens, or the path in `override_path`; the
/// errors of every candidate when none does. The result (either way) is
/// kept for the process.
pub fn driver(override_path: Option<&str>) -> Result<&'static Driver, Vec<LoadError>> {
    static DRIVER: OnceLock<Result<Driver, Vec<LoadError>>> = OnceLock::new();
    DRIVER
        .get_or_init(|| {
            let candidates: Vec<&str> = match override_path {
                Some(path) => vec![path],
                None => LIBRARY_CANDIDATES.to_vec(),
            };
            let mut errors = Vec::new();
            for name in candidates {
                match Driver::open(name) {
                    Ok(driver) => return Ok(driver),
                    // A library without a symbol is the answer: an older
                    // name will not be newer.
                    Err(e @ LoadError::Symbol { .. }) => return Err(vec![e]),
                    Err(e) => errors.push(e),
                }
            }
            Err(errors)
        })
        .as_ref()
        .map_err(Clone::clone)
}
