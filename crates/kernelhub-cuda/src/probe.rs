//! What the machine has: the CUDA driver (library, version) and each
//! NVIDIA GPU (name, compute capability, memory), read without creating a
//! context, so `kernelhub doctor` can report it cheaply.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int};
use std::fmt;

use kernelhub_manifest::kernel::DriverVersion;
use kernelhub_manifest::target::CudaArch;

use crate::result::CudaError;
use crate::sys::{self, CUDA_ERROR_NO_DEVICE, CUdevice, Driver};

/// The environment variable naming the driver library to open instead of
/// `libcuda.so.1` (a driver installed outside the loader's path).
pub const KERNELHUB_CUDA_LIBRARY: &str = "KERNELHUB_CUDA_LIBRARY";

/// The driver and its GPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaPlatform {
    /// The library opened.
    pub library: String,
    /// The driver API version, as `cuDriverGetVersion` gives it (`12040` is 12.4).
    pub driver_version: i32,
    /// The GPUs, by ordinal; empty when the driver finds none.
    pub devices: Vec<CudaDeviceInfo>,
    /// GPUs the driver counts but could not describe, with why: one broken
    /// GPU does not hide the others.
    pub unusable: Vec<(i32, CudaError)>,
}

impl CudaPlatform {
    /// The driver API version as `major.minor`.
    pub fn driver(&self) -> DriverVersion {
        driver_version(self.driver_version)
    }
}

/// `12040` → 12.4: the driver API encodes `1000 * major + 10 * minor`.
pub fn driver_version(raw: i32) -> DriverVersion {
    let raw = raw.max(0).cast_unsigned();
    DriverVersion {
        major: raw / 1000,
        minor: raw % 1000 / 10,
    }
}

/// One NVIDIA GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaDeviceInfo {
    /// Its ordinal.
    pub ordinal: i32,
    /// Its name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Its compute capability as an architecture, e.g. `sm_90`.
    pub arch: CudaArch,
    /// Its memory in bytes.
    pub total_memory: u64,
}

/// Why there is no usable CUDA driver.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProbeError {
    /// The driver library is not installed (or not on the loader's path).
    #[error("no NVIDIA driver library: {}", describe_load_errors(.0))]
    NoDriver(Vec<sys::LoadError>),
    /// The library is there but a call failed.
    #[error(transparent)]
    Driver(#[from] CudaError),
}

impl ProbeError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            ProbeError::NoDriver(_) => {
                "install the NVIDIA driver (its `libcuda.so.1`), or name the library in `KERNELHUB_CUDA_LIBRARY`; the WGSL artifacts run through wgpu meanwhile"
            }
            ProbeError::Driver(_) => {
                "`nvidia-smi` shows whether the driver and the GPU are healthy"
            }
        }
    }
}

fn describe_load_errors(errors: &[sys::LoadError]) -> String {
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    texts.join("; ")
}

impl fmt::Display for CudaDeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} {} ({}, {} MiB)",
            self.ordinal,
            self.name,
            self.arch,
            self.total_memory >> 20
        )
    }
}

/// The opened driver: the library `KERNELHUB_CUDA_LIBRARY` names, else
/// `libcuda.so.1`; initialised once.
pub(crate) fn initialised_driver() -> Result<&'static Driver, ProbeError> {
    init().map(|(driver, _)| driver)
}

/// The opened driver, and whether `cuInit` found a GPU: when it answers
/// `CUDA_ERROR_NO_DEVICE` the driver stays uninitialised, and every call
/// but `cuDriverGetVersion` and the error texts then fails with
/// `CUDA_ERROR_NOT_INITIALIZED`, `cuDeviceGetCount` included.
fn init() -> Result<(&'static Driver, bool), ProbeError> {
    let override_path = std::env::var(KERNELHUB_CUDA_LIBRARY)
        .ok()
        .filter(|v| !v.is_empty());
    let driver = sys::driver(override_path.as_deref()).map_err(ProbeError::NoDriver)?;
    // SAFETY: `cuInit` takes flags, which must be 0; it is idempotent.
    let status = unsafe { (driver.init)(0) };
    if status == CUDA_ERROR_NO_DEVICE {
        return Ok((driver, false));
    }
    driver.check("cuInit", status)?;
    Ok((driver, true))
}

/// Opens the driver and lists the GPUs. A driver with no GPU (`cuInit`
/// answering `CUDA_ERROR_NO_DEVICE`) is a platform with no devices.
pub fn probe() -> Result<CudaPlatform, ProbeError> {
    let (driver, has_devices) = init()?;
    let mut version: c_int = 0;
    // SAFETY: writes one int.
    driver.check("cuDriverGetVersion", unsafe {
        (driver.driver_get_version)(&mut version)
    })?;
    let mut count: c_int = 0;
    if has_devices {
        // SAFETY: writes one int.
        let status = unsafe { (driver.device_get_count)(&mut count) };
        if status != CUDA_ERROR_NO_DEVICE {
            driver.check("cuDeviceGetCount", status)?;
        }
    }
    let mut devices = Vec::new();
    let mut unusable = Vec::new();
    for ordinal in 0..count.max(0) {
        match device_info(driver, ordinal) {
            Ok(device) => devices.push(device),
            Err(error) => unusable.push((ordinal, error)),
        }
    }
    Ok(CudaPlatform {
        library: driver.library.clone(),
        driver_version: version,
        devices,
        unusable,
    })
}

/// Name, compute capability and memory of GPU `ordinal`.
pub(crate) fn device_info(driver: &Driver, ordinal: i32) -> Result<CudaDeviceInfo, CudaError> {
    let mut device: CUdevice = 0;
    // SAFETY: writes one handle; the ordinal is below the device count.
    driver.check("cuDeviceGet", unsafe {
        (driver.device_get)(&mut device, ordinal)
    })?;
    let mut name = [0 as c_char; 256];
    // SAFETY: the driver writes at most `len` bytes, NUL-terminated.
    driver.check("cuDeviceGetName", unsafe {
        (driver.device_get_name)(name.as_mut_ptr(), name.len() as c_int, device)
    })?;
    // SAFETY: NUL-terminated by the driver, and the last byte was 0 already.
    let name = unsafe { CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let attribute = |attribute: c_int, call| {
        let mut value: c_int = 0;
        // SAFETY: writes one int for a valid attribute and device.
        driver.check(call, unsafe {
            (driver.device_get_attribute)(&mut value, attribute, device)
        })?;
        Ok::<_, CudaError>(value.max(0).cast_unsigned())
    };
    let major = attribute(
        sys::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
        "cuDeviceGetAttribute",
    )?;
    let minor = attribute(
        sys::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
        "cuDeviceGetAttribute",
    )?;
    let mut memory: usize = 0;
    // SAFETY: writes one size_t.
    driver.check("cuDeviceTotalMem_v2", unsafe {
        (driver.device_total_mem)(&mut memory, device)
    })?;
    Ok(CudaDeviceInfo {
        ordinal,
        name,
        arch: CudaArch {
            major,
            minor,
            suffix: None,
        },
        total_memory: memory as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_versions_decode() {
        assert_eq!(
            driver_version(12040),
            DriverVersion {
                major: 12,
                minor: 4
            }
        );
        assert_eq!(
            driver_version(13000),
            DriverVersion {
                major: 13,
                minor: 0
            }
        );
        assert_eq!(
            driver_version(11080),
            DriverVersion {
                major: 11,
                minor: 8
            }
        );
    }
}
