//! The raw binding: `libamdhip64` opened at run time, one function pointer
//! per HIP call.
//!
//! The library is never linked, so one kernelhub binary starts on NVIDIA,
//! AMD and GPU-less machines alike; a missing library or symbol is a
//! [`LibraryError`], never a panic. The library is opened once per process
//! ([`lib`]) from [`LIBRARY_CANDIDATES`], in order.
//!
//! Names and signatures are the C ones, from ROCm's `hip/hip_runtime_api.h`
//! (checked against Debian 12's `libamdhip64-dev` 5.2.3 and against
//! `projects/hip/include/hip/hip_runtime_api.h` in ROCm/rocm-systems, HIP 6+;
//! the calls bound here have the same signature in both). Nothing here is
//! safe to call: [`crate::result`] wraps each call in a function that
//! returns `Result`.

#![allow(
    unsafe_code,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals
)]

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::sync::OnceLock;

use crate::error::LibraryError;

/// `hipError_t`: a C enum, so an `int` on every ABI HIP supports.
pub type hipError_t = c_int;
/// `hipDevice_t`: a device ordinal.
pub type hipDevice_t = c_int;
/// `hipDeviceptr_t`: a device address (`void*`).
pub type hipDeviceptr_t = *mut c_void;

/// The opaque type behind [`hipModule_t`] (`struct ihipModule_t`).
#[repr(C)]
pub struct ihipModule_t {
    _opaque: [u8; 0],
}
/// The opaque type behind [`hipFunction_t`] (`struct ihipModuleSymbol_t`).
#[repr(C)]
pub struct ihipModuleSymbol_t {
    _opaque: [u8; 0],
}
/// The opaque type behind [`hipStream_t`] (`struct ihipStream_t`).
#[repr(C)]
pub struct ihipStream_t {
    _opaque: [u8; 0],
}
/// `hipModule_t`: a loaded code object.
pub type hipModule_t = *mut ihipModule_t;
/// `hipFunction_t`: a kernel in a loaded code object.
pub type hipFunction_t = *mut ihipModuleSymbol_t;
/// `hipStream_t`: a stream; null is the default (null) stream.
pub type hipStream_t = *mut ihipStream_t;

/// `hipStreamDefault`: flags for [`HipLib::hipStreamCreateWithFlags`].
pub const hipStreamDefault: c_uint = 0x0;
/// `hipStreamNonBlocking`: the stream does not synchronise with the null stream.
pub const hipStreamNonBlocking: c_uint = 0x1;

/// The file names tried, in order, by [`lib`].
///
/// ROCm installs the unversioned `.so` (and `.so.6` or `.so.7`); Debian's
/// `libamdhip64-5` installs only `libamdhip64.so.5`, the unversioned name
/// coming with the -dev package.
pub const LIBRARY_CANDIDATES: [&str; 3] =
    ["libamdhip64.so", "libamdhip64.so.6", "libamdhip64.so.5"];

/// Declares [`HipLib`] and its loader from one table: required symbols
/// become plain function pointers (loading fails without them), optional
/// ones `Option`s.
macro_rules! hip_api {
    (
        required {
            $( $(#[$rdoc:meta])* fn $rname:ident ( $($rarg:ident : $rty:ty),* $(,)? ) -> $rret:ty; )*
        }
        optional {
            $( $(#[$odoc:meta])* fn $oname:ident ( $($oarg:ident : $oty:ty),* $(,)? ) -> $oret:ty; )*
        }
    ) => {
        /// `libamdhip64`, open, with one function pointer per symbol kernelhub uses.
        ///
        /// The pointers stay valid as long as this value lives: it owns the
        /// [`libloading::Library`] they came from. The one returned by [`lib`]
        /// lives for the whole process.
        pub struct HipLib {
            library: libloading::Library,
            path: String,
            $(
                $(#[$rdoc])*
                pub $rname: unsafe extern "C" fn($($rarg: $rty),*) -> $rret,
            )*
            $(
                $(#[$odoc])*
                #[doc = ""]
                #[doc = "Optional: `None` where this runtime lacks the symbol."]
                pub $oname: Option<unsafe extern "C" fn($($oarg: $oty),*) -> $oret>,
            )*
        }

        impl HipLib {
            /// Every required symbol, by name.
            pub const REQUIRED_SYMBOLS: &'static [&'static str] = &[$(stringify!($rname)),*];
            /// Every optional symbol, by name.
            pub const OPTIONAL_SYMBOLS: &'static [&'static str] = &[$(stringify!($oname)),*];

            fn from_library(library: libloading::Library, path: String) -> Result<Self, LibraryError> {
                $(
                    // SAFETY: the type is the C signature of this symbol in
                    // `hip_runtime_api.h`; the pointer is kept beside the
                    // library it came from, which is never unloaded first.
                    let $rname = unsafe {
                        symbol::<unsafe extern "C" fn($($rty),*) -> $rret>(&library, stringify!($rname))
                    }
                    .map_err(|message| LibraryError::MissingSymbol {
                        library: path.clone(),
                        symbol: stringify!($rname),
                        message,
                    })?;
                )*
                $(
                    // SAFETY: as for the required symbols above.
                    let $oname = unsafe {
                        symbol::<unsafe extern "C" fn($($oty),*) -> $oret>(&library, stringify!($oname))
                    }
                    .ok();
                )*
                Ok(Self { library, path, $($rname,)* $($oname,)* })
            }
        }
    };
}

hip_api! {
    required {
        /// `hipError_t hipInit(unsigned int flags)`; `flags` must be 0.
        fn hipInit(flags: c_uint) -> hipError_t;
        /// `hipError_t hipDriverGetVersion(int* driverVersion)`.
        fn hipDriverGetVersion(driverVersion: *mut c_int) -> hipError_t;
        /// `hipError_t hipRuntimeGetVersion(int* runtimeVersion)`.
        fn hipRuntimeGetVersion(runtimeVersion: *mut c_int) -> hipError_t;
        /// `hipError_t hipGetDeviceCount(int* count)`; `hipErrorNoDevice` with
        /// a count of 0 where there is no GPU.
        fn hipGetDeviceCount(count: *mut c_int) -> hipError_t;
        /// `hipError_t hipDeviceTotalMem(size_t* bytes, hipDevice_t device)`.
        fn hipDeviceTotalMem(bytes: *mut usize, device: hipDevice_t) -> hipError_t;
        /// `hipError_t hipSetDevice(int deviceId)`: the calling thread's device.
        fn hipSetDevice(deviceId: c_int) -> hipError_t;
        /// `hipError_t hipGetDevice(int* deviceId)`: the calling thread's device.
        fn hipGetDevice(deviceId: *mut c_int) -> hipError_t;
        /// `hipError_t hipDeviceSynchronize(void)`.
        fn hipDeviceSynchronize() -> hipError_t;
        /// `const char* hipGetErrorName(hipError_t hip_error)`: a static string.
        fn hipGetErrorName(hip_error: hipError_t) -> *const c_char;
        /// `const char* hipGetErrorString(hipError_t hipError)`: a static
        /// string (HIP 5 returns the name again).
        fn hipGetErrorString(hipError: hipError_t) -> *const c_char;
        /// `hipError_t hipModuleLoadData(hipModule_t* module, const void* image)`.
        /// HIP reads the image without being told its length.
        fn hipModuleLoadData(module: *mut hipModule_t, image: *const c_void) -> hipError_t;
        /// `hipError_t hipModuleUnload(hipModule_t module)`.
        fn hipModuleUnload(module: hipModule_t) -> hipError_t;
        /// `hipError_t hipModuleGetFunction(hipFunction_t* function, hipModule_t module, const char* kname)`.
        fn hipModuleGetFunction(
            function: *mut hipFunction_t,
            module: hipModule_t,
            kname: *const c_char,
        ) -> hipError_t;
        /// `hipError_t hipModuleLaunchKernel(hipFunction_t f, unsigned gridDimX,
        /// unsigned gridDimY, unsigned gridDimZ, unsigned blockDimX, unsigned
        /// blockDimY, unsigned blockDimZ, unsigned sharedMemBytes, hipStream_t
        /// stream, void** kernelParams, void** extra)`.
        fn hipModuleLaunchKernel(
            f: hipFunction_t,
            gridDimX: c_uint,
            gridDimY: c_uint,
            gridDimZ: c_uint,
            blockDimX: c_uint,
            blockDimY: c_uint,
            blockDimZ: c_uint,
            sharedMemBytes: c_uint,
            stream: hipStream_t,
            kernelParams: *mut *mut c_void,
            extra: *mut *mut c_void,
        ) -> hipError_t;
        /// `hipError_t hipMalloc(void** ptr, size_t size)`.
        fn hipMalloc(ptr: *mut *mut c_void, size: usize) -> hipError_t;
        /// `hipError_t hipFree(void* ptr)`.
        fn hipFree(ptr: *mut c_void) -> hipError_t;
        /// `hipError_t hipMemcpyHtoDAsync(hipDeviceptr_t dst, void* src, size_t sizeBytes, hipStream_t stream)`.
        fn hipMemcpyHtoDAsync(
            dst: hipDeviceptr_t,
            src: *mut c_void,
            sizeBytes: usize,
            stream: hipStream_t,
        ) -> hipError_t;
        /// `hipError_t hipMemcpyDtoHAsync(void* dst, hipDeviceptr_t src, size_t sizeBytes, hipStream_t stream)`.
        fn hipMemcpyDtoHAsync(
            dst: *mut c_void,
            src: hipDeviceptr_t,
            sizeBytes: usize,
            stream: hipStream_t,
        ) -> hipError_t;
        /// `hipError_t hipMemsetD8Async(hipDeviceptr_t dest, unsigned char value, size_t count, hipStream_t stream)`.
        fn hipMemsetD8Async(
            dest: hipDeviceptr_t,
            value: u8,
            count: usize,
            stream: hipStream_t,
        ) -> hipError_t;
        /// `hipError_t hipStreamCreateWithFlags(hipStream_t* stream, unsigned int flags)`.
        fn hipStreamCreateWithFlags(stream: *mut hipStream_t, flags: c_uint) -> hipError_t;
        /// `hipError_t hipStreamDestroy(hipStream_t stream)`.
        fn hipStreamDestroy(stream: hipStream_t) -> hipError_t;
        /// `hipError_t hipStreamSynchronize(hipStream_t stream)`.
        fn hipStreamSynchronize(stream: hipStream_t) -> hipError_t;
    }
    optional {
        /// `hipError_t hipDeviceGetName(char* name, int len, hipDevice_t device)`.
        fn hipDeviceGetName(name: *mut c_char, len: c_int, device: hipDevice_t) -> hipError_t;
        /// `hipError_t hipGetDeviceProperties(hipDeviceProp_tR0000* prop, int deviceId)`:
        /// the unversioned export fills the **old** (`R0000`) layout in HIP 5
        /// *and* in HIP 6+, where only the header maps the name onto
        /// `hipGetDevicePropertiesR0600`. See [`crate::properties`].
        fn hipGetDeviceProperties(prop: *mut c_void, deviceId: c_int) -> hipError_t;
        /// `hipError_t hipGetDevicePropertiesR0600(hipDeviceProp_tR0600* prop, int deviceId)`:
        /// HIP 6+ only, fills the `R0600` layout. See [`crate::properties`].
        fn hipGetDevicePropertiesR0600(prop: *mut c_void, deviceId: c_int) -> hipError_t;
    }
}

/// Looks `name` up in `library` and copies the pointer out.
///
/// # Safety
/// `T` must be the symbol's real type (a function pointer of its C
/// signature), and the result must not outlive `library`.
unsafe fn symbol<T: Copy>(library: &libloading::Library, name: &str) -> Result<T, String> {
    // SAFETY: forwarded to the caller: `T` is the symbol's type.
    unsafe { library.get::<T>(name.as_bytes()) }
        .map(|symbol| *symbol)
        .map_err(|error| error.to_string())
}

impl HipLib {
    /// Opens the HIP runtime at `path` (a file name the dynamic loader
    /// searches for, or a path) and loads every symbol.
    pub fn open(path: &str) -> Result<Self, LibraryError> {
        // SAFETY: opening runs the library's initialisers. libamdhip64's only
        // register the runtime; with no GPU it opens cleanly (GPU.md, "The HIP
        // runtime without an AMD GPU"). Whatever file the loader finds under
        // this name is trusted to be the HIP runtime, as with any system library.
        let library =
            unsafe { libloading::Library::new(path) }.map_err(|error| LibraryError::NotFound {
                attempts: vec![(path.to_string(), error.to_string())],
            })?;
        let lib = Self::from_library(library, path.to_string())?;
        if lib.hipGetDeviceProperties.is_none() && lib.hipGetDevicePropertiesR0600.is_none() {
            return Err(LibraryError::NoDeviceProperties {
                library: lib.path.clone(),
            });
        }
        Ok(lib)
    }

    /// Opens the first of [`LIBRARY_CANDIDATES`] the dynamic loader finds.
    ///
    /// A candidate that opens but lacks a required symbol is an error; later
    /// candidates are not tried, so a broken install is reported, not hidden.
    pub fn open_default() -> Result<Self, LibraryError> {
        let mut attempts = Vec::new();
        for candidate in LIBRARY_CANDIDATES {
            match Self::open(candidate) {
                Ok(lib) => return Ok(lib),
                Err(LibraryError::NotFound { attempts: failed }) => attempts.extend(failed),
                Err(other) => return Err(other),
            }
        }
        Err(LibraryError::NotFound { attempts })
    }

    /// The name or path the library was opened by.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The underlying library, to look up a symbol this table lacks.
    pub fn library(&self) -> &libloading::Library {
        &self.library
    }
}

/// The environment variable naming the HIP runtime library to open instead
/// of [`LIBRARY_CANDIDATES`] (a ROCm installed outside the loader's path).
pub const KERNELHUB_HIP_LIBRARY: &str = "KERNELHUB_HIP_LIBRARY";

/// The process-wide HIP runtime, opened on first use from the path in
/// [`KERNELHUB_HIP_LIBRARY`], else from [`LIBRARY_CANDIDATES`]. A failure
/// is remembered: the library is looked for once per process.
pub fn lib() -> Result<&'static HipLib, LibraryError> {
    static LIB: OnceLock<Result<HipLib, LibraryError>> = OnceLock::new();
    LIB.get_or_init(|| match std::env::var(KERNELHUB_HIP_LIBRARY) {
        Ok(path) if !path.is_empty() => HipLib::open(&path),
        _ => HipLib::open_default(),
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Whether the HIP runtime can be opened (and has every required symbol).
pub fn is_present() -> bool {
    lib().is_ok()
}
