//! Every HIP call kernelhub makes, each returning `Result<_, HipError>`.
//!
//! The middle of three layers (after cudarc): [`crate::sys`] has the raw
//! pointers, this module checks each return code and turns a failure into
//! a [`HipError`] carrying the runtime's own name and text for it, and the
//! backend builds RAII types (device, module, buffer, stream) on top.
//!
//! [`Hip`] is a copyable handle on the open library: the library is looked
//! for once, when the handle is made ([`Hip::load`]), so the calls
//! themselves have a single error type. Calls that only read or create are
//! safe functions; calls that take a handle or device address the caller
//! must vouch for are `unsafe fn`, each with its contract.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr;

use crate::error::{HipError, LibraryError, codes};
use crate::properties::{DeviceProperties, PROPERTIES_BUFFER_BYTES, PropertiesLayout, c_string};
use crate::sys::{
    self, HipLib, hipDeviceptr_t, hipError_t, hipFunction_t, hipModule_t, hipStream_t,
};
use crate::version::HipVersion;

/// A handle on the open HIP runtime; cheap to copy.
#[derive(Clone, Copy)]
pub struct Hip {
    lib: &'static HipLib,
}

impl std::fmt::Debug for Hip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hip")
            .field("library", &self.lib.path())
            .finish()
    }
}

/// Reads a static C string the runtime returned; empty for null.
///
/// # Safety
/// `text` is null or points to a NUL-terminated string that lives for the
/// rest of the process (HIP's error names and descriptions do).
unsafe fn static_text(text: *const c_char) -> String {
    if text.is_null() {
        return String::new();
    }
    // SAFETY: non-null and NUL-terminated, per the caller.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

impl Hip {
    /// Opens the process-wide runtime ([`sys::lib`]).
    pub fn load() -> Result<Self, LibraryError> {
        sys::lib().map(Self::new)
    }

    /// A handle on a library opened some other way (e.g. [`HipLib::open`]
    /// on an explicit path, leaked to `'static`).
    pub fn new(lib: &'static HipLib) -> Self {
        Self { lib }
    }

    /// The raw binding, for a call this layer does not wrap.
    pub fn sys(&self) -> &'static HipLib {
        self.lib
    }

    /// The name or path the library was opened by.
    pub fn library_path(&self) -> &'static str {
        self.lib.path()
    }

    /// The error for `code` returned by `call`, with the runtime's name and
    /// description of the code.
    pub fn error(&self, call: &'static str, code: hipError_t) -> HipError {
        // SAFETY: both calls take any code (unknown ones map to
        // "hipErrorUnknown") and return static strings or null.
        let (name, message) = unsafe {
            (
                static_text((self.lib.hipGetErrorName)(code)),
                static_text((self.lib.hipGetErrorString)(code)),
            )
        };
        HipError {
            call,
            code,
            name,
            message,
        }
    }

    fn check(&self, call: &'static str, code: hipError_t) -> Result<(), HipError> {
        if code == codes::SUCCESS {
            Ok(())
        } else {
            Err(self.error(call, code))
        }
    }

    // ---- initialisation and versions ------------------------------------

    /// `hipInit(0)`. Optional: every other call initialises the runtime.
    /// Debian's HIP 5.2 returns `hipErrorInvalidDevice` (101) here where
    /// there is no GPU, while `hipGetDeviceCount` says `hipErrorNoDevice`.
    pub fn init(&self) -> Result<(), HipError> {
        // SAFETY: takes a plain integer; 0 is the only valid flag value.
        self.check("hipInit", unsafe { (self.lib.hipInit)(0) })
    }

    /// `hipDriverGetVersion`. Works without a GPU.
    pub fn driver_version(&self) -> Result<HipVersion, HipError> {
        let mut version: c_int = 0;
        // SAFETY: writes one int through a valid pointer.
        let code = unsafe { (self.lib.hipDriverGetVersion)(&mut version) };
        self.check("hipDriverGetVersion", code)?;
        Ok(HipVersion::from_raw(version))
    }

    /// `hipRuntimeGetVersion`. Works without a GPU.
    pub fn runtime_version(&self) -> Result<HipVersion, HipError> {
        let mut version: c_int = 0;
        // SAFETY: writes one int through a valid pointer.
        let code = unsafe { (self.lib.hipRuntimeGetVersion)(&mut version) };
        self.check("hipRuntimeGetVersion", code)?;
        Ok(HipVersion::from_raw(version))
    }

    // ---- devices -----------------------------------------------------------

    /// `hipGetDeviceCount`, as HIP reports it: where there is no GPU this is
    /// an `Err` with [`codes::NO_DEVICE`] (the probe turns that into zero
    /// devices).
    pub fn device_count(&self) -> Result<i32, HipError> {
        let mut count: c_int = 0;
        // SAFETY: writes one int through a valid pointer.
        let code = unsafe { (self.lib.hipGetDeviceCount)(&mut count) };
        self.check("hipGetDeviceCount", code)?;
        Ok(count)
    }

    /// `hipDeviceGetName`, or `None` where the runtime lacks the call
    /// ([`Hip::device_properties`] has the name too).
    pub fn device_name(&self, ordinal: i32) -> Result<Option<String>, HipError> {
        let Some(get_name) = self.lib.hipDeviceGetName else {
            return Ok(None);
        };
        let mut buffer = [0u8; 256];
        let len = c_int::try_from(buffer.len() - 1).unwrap_or(c_int::MAX);
        // SAFETY: HIP writes at most `len` bytes plus NUL into the buffer,
        // which has one byte more than `len` and is zeroed, so it stays
        // NUL-terminated even if HIP truncates without one.
        let code = unsafe { get_name(buffer.as_mut_ptr().cast::<c_char>(), len, ordinal) };
        self.check("hipDeviceGetName", code)?;
        Ok(Some(c_string(&buffer)))
    }

    /// `hipDeviceTotalMem`: the device's memory in bytes.
    pub fn device_total_mem(&self, ordinal: i32) -> Result<u64, HipError> {
        let mut bytes: usize = 0;
        // SAFETY: writes one size_t through a valid pointer.
        let code = unsafe { (self.lib.hipDeviceTotalMem)(&mut bytes, ordinal) };
        self.check("hipDeviceTotalMem", code)?;
        Ok(bytes as u64)
    }

    /// The `hipDeviceProp_t` layout this runtime fills, and so which call
    /// [`Hip::device_properties`] makes (see [`crate::properties`]).
    pub fn properties_layout(&self) -> Result<PropertiesLayout, HipError> {
        let runtime = self.runtime_version()?;
        // `HipLib::open` refuses a library with neither symbol, so `None`
        // cannot happen; R0000 is the call that would then fail cleanly.
        Ok(PropertiesLayout::choose(
            runtime,
            self.lib.hipGetDevicePropertiesR0600.is_some(),
            self.lib.hipGetDeviceProperties.is_some(),
        )
        .unwrap_or(PropertiesLayout::R0000))
    }

    /// `hipGetDevicePropertiesR0600` or `hipGetDeviceProperties`, whichever
    /// [`Hip::properties_layout`] picks, read into a zeroed 8 KiB buffer:
    /// the device's name, `gcnArchName` and `totalGlobalMem`.
    pub fn device_properties(&self, ordinal: i32) -> Result<DeviceProperties, HipError> {
        let layout = self.properties_layout()?;
        let call = layout.symbol();
        let function = match layout {
            PropertiesLayout::R0600 => self.lib.hipGetDevicePropertiesR0600,
            PropertiesLayout::R0000 => self.lib.hipGetDeviceProperties,
        };
        let Some(function) = function else {
            return Err(self.error(call, codes::NOT_SUPPORTED));
        };
        // u64 words: 8-aligned, as the struct's size_t and pointer fields need.
        let mut words = vec![0u64; PROPERTIES_BUFFER_BYTES / 8];
        // SAFETY: the function writes one struct of `layout.size()` bytes
        // (at most 1472) into a zeroed, 8-aligned buffer of 8192 bytes.
        let code = unsafe { function(words.as_mut_ptr().cast::<c_void>(), ordinal) };
        self.check(call, code)?;
        let bytes: Vec<u8> = words.iter().flat_map(|word| word.to_ne_bytes()).collect();
        DeviceProperties::from_bytes(layout, &bytes).ok_or_else(|| self.error(call, codes::UNKNOWN))
    }

    /// `hipSetDevice`: the device later calls on this thread use.
    pub fn set_device(&self, ordinal: i32) -> Result<(), HipError> {
        // SAFETY: takes a plain integer; HIP checks the range.
        self.check("hipSetDevice", unsafe { (self.lib.hipSetDevice)(ordinal) })
    }

    /// `hipGetDevice`: the calling thread's current device.
    pub fn get_device(&self) -> Result<i32, HipError> {
        let mut ordinal: c_int = 0;
        // SAFETY: writes one int.
        self.check("hipGetDevice", unsafe {
            (self.lib.hipGetDevice)(&mut ordinal)
        })?;
        Ok(ordinal)
    }

    /// `hipDeviceSynchronize`: waits for all work on the current device.
    pub fn device_synchronize(&self) -> Result<(), HipError> {
        // SAFETY: no arguments.
        self.check("hipDeviceSynchronize", unsafe {
            (self.lib.hipDeviceSynchronize)()
        })
    }

    // ---- modules and launches ---------------------------------------------

    /// `hipModuleLoadData`: loads a code object (an hsaco ELF or a clang
    /// offload bundle) onto the current device.
    ///
    /// # Safety
    /// `image` must be a complete code object: HIP is not told its length
    /// and reads as far as the headers inside say. Keep `image` alive and
    /// unchanged until the module is unloaded (the runtime may read it
    /// after this call returns, e.g. for another device).
    pub unsafe fn module_load_data(&self, image: &[u8]) -> Result<hipModule_t, HipError> {
        let mut module: hipModule_t = ptr::null_mut();
        // SAFETY: `module` is a valid out-pointer; the image's validity is
        // the caller's contract.
        let code =
            unsafe { (self.lib.hipModuleLoadData)(&mut module, image.as_ptr().cast::<c_void>()) };
        self.check("hipModuleLoadData", code)?;
        Ok(module)
    }

    /// `hipModuleUnload`.
    ///
    /// # Safety
    /// `module` came from [`Hip::module_load_data`], is not unloaded
    /// already, and none of its functions is used (or running) afterwards.
    pub unsafe fn module_unload(&self, module: hipModule_t) -> Result<(), HipError> {
        // SAFETY: per the caller's contract.
        self.check("hipModuleUnload", unsafe {
            (self.lib.hipModuleUnload)(module)
        })
    }

    /// `hipModuleGetFunction`: the kernel named `name` (the ELF symbol, e.g.
    /// `softmax_f32`). A missing name is [`codes::NOT_FOUND`].
    ///
    /// # Safety
    /// `module` is a loaded module; the function is valid only as long as it.
    pub unsafe fn module_get_function(
        &self,
        module: hipModule_t,
        name: &CStr,
    ) -> Result<hipFunction_t, HipError> {
        let mut function: hipFunction_t = ptr::null_mut();
        // SAFETY: valid out-pointer and NUL-terminated name; the module is
        // the caller's contract.
        let code = unsafe { (self.lib.hipModuleGetFunction)(&mut function, module, name.as_ptr()) };
        self.check("hipModuleGetFunction", code)?;
        Ok(function)
    }

    /// `hipModuleLaunchKernel` with `kernelParams` (no `extra`): queues the
    /// kernel on `stream` (null: the null stream) and returns.
    ///
    /// # Safety
    /// `function` is a live kernel; `params` has one pointer per kernel
    /// argument, in order, each to a value of exactly the argument's type
    /// and size (device addresses as `hipDeviceptr_t` values), and every
    /// device buffer the kernel touches stays allocated, large enough and
    /// unaliased by host writes until the launch completes. `stream` is null
    /// or live.
    pub unsafe fn module_launch_kernel(
        &self,
        function: hipFunction_t,
        grid: [u32; 3],
        block: [u32; 3],
        shared_mem_bytes: u32,
        stream: hipStream_t,
        params: &mut [*mut c_void],
    ) -> Result<(), HipError> {
        let params_ptr = if params.is_empty() {
            ptr::null_mut()
        } else {
            params.as_mut_ptr()
        };
        // SAFETY: per the caller's contract; HIP reads `params` during the
        // call only (the values are copied into the launch).
        let code = unsafe {
            (self.lib.hipModuleLaunchKernel)(
                function,
                grid[0],
                grid[1],
                grid[2],
                block[0],
                block[1],
                block[2],
                shared_mem_bytes,
                stream,
                params_ptr,
                ptr::null_mut(),
            )
        };
        self.check("hipModuleLaunchKernel", code)
    }

    // ---- memory -------------------------------------------------------------

    /// `hipMalloc`: `bytes` of device memory on the current device
    /// (uninitialised; null for 0 bytes).
    pub fn malloc(&self, bytes: usize) -> Result<hipDeviceptr_t, HipError> {
        let mut address: *mut c_void = ptr::null_mut();
        // SAFETY: valid out-pointer.
        let code = unsafe { (self.lib.hipMalloc)(&mut address, bytes) };
        self.check("hipMalloc", code)?;
        Ok(address)
    }

    /// `hipFree`.
    ///
    /// # Safety
    /// `address` came from [`Hip::malloc`] (or is null), is not freed
    /// already, and no queued or running work uses it.
    pub unsafe fn free(&self, address: hipDeviceptr_t) -> Result<(), HipError> {
        // SAFETY: per the caller's contract.
        self.check("hipFree", unsafe { (self.lib.hipFree)(address) })
    }

    /// `hipMemcpyHtoDAsync`: queues a copy of `src` to `dst` on `stream`.
    ///
    /// # Safety
    /// `dst` is device memory with at least `src.len()` bytes, and `src`
    /// stays alive and unchanged until the stream has passed the copy (e.g.
    /// [`Hip::stream_synchronize`]).
    pub unsafe fn memcpy_htod_async(
        &self,
        dst: hipDeviceptr_t,
        src: &[u8],
        stream: hipStream_t,
    ) -> Result<(), HipError> {
        // SAFETY: per the caller's contract.
        let code = unsafe {
            (self.lib.hipMemcpyHtoDAsync)(
                dst,
                src.as_ptr().cast_mut().cast::<c_void>(),
                src.len(),
                stream,
            )
        };
        self.check("hipMemcpyHtoDAsync", code)
    }

    /// `hipMemcpyDtoHAsync`: queues a copy from `src` into `dst` on `stream`.
    ///
    /// # Safety
    /// `src` is device memory with at least `dst.len()` bytes, and `dst`
    /// stays alive, and is neither read nor written by the host, until the
    /// stream has passed the copy.
    pub unsafe fn memcpy_dtoh_async(
        &self,
        dst: &mut [u8],
        src: hipDeviceptr_t,
        stream: hipStream_t,
    ) -> Result<(), HipError> {
        // SAFETY: per the caller's contract.
        let code = unsafe {
            (self.lib.hipMemcpyDtoHAsync)(dst.as_mut_ptr().cast::<c_void>(), src, dst.len(), stream)
        };
        self.check("hipMemcpyDtoHAsync", code)
    }

    /// `hipMemsetD8Async`: queues setting `count` bytes at `dst` to `value`
    /// on `stream`.
    ///
    /// # Safety
    /// `dst` is device memory with at least `count` bytes until the stream
    /// has passed the memset.
    pub unsafe fn memset_d8_async(
        &self,
        dst: hipDeviceptr_t,
        value: u8,
        count: usize,
        stream: hipStream_t,
    ) -> Result<(), HipError> {
        // SAFETY: per the caller's contract.
        self.check("hipMemsetD8Async", unsafe {
            (self.lib.hipMemsetD8Async)(dst, value, count, stream)
        })
    }

    // ---- streams ------------------------------------------------------------

    /// `hipStreamCreateWithFlags`, e.g. with [`sys::hipStreamNonBlocking`].
    pub fn stream_create_with_flags(&self, flags: u32) -> Result<hipStream_t, HipError> {
        let mut stream: hipStream_t = ptr::null_mut();
        // SAFETY: valid out-pointer; HIP checks the flags.
        let code = unsafe { (self.lib.hipStreamCreateWithFlags)(&mut stream, flags) };
        self.check("hipStreamCreateWithFlags", code)?;
        Ok(stream)
    }

    /// `hipStreamDestroy`.
    ///
    /// # Safety
    /// `stream` came from a create call here and is not destroyed already;
    /// nothing queues on it afterwards.
    pub unsafe fn stream_destroy(&self, stream: hipStream_t) -> Result<(), HipError> {
        // SAFETY: per the caller's contract.
        self.check("hipStreamDestroy", unsafe {
            (self.lib.hipStreamDestroy)(stream)
        })
    }

    /// `hipStreamSynchronize`: waits until everything queued on `stream`
    /// has finished.
    ///
    /// # Safety
    /// `stream` is null (the null stream) or live.
    pub unsafe fn stream_synchronize(&self, stream: hipStream_t) -> Result<(), HipError> {
        // SAFETY: per the caller's contract.
        self.check("hipStreamSynchronize", unsafe {
            (self.lib.hipStreamSynchronize)(stream)
        })
    }
}
