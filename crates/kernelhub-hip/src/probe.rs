//! What the HIP side of this machine offers: runtime and driver versions
//! and, per AMD GPU, its name, architecture and memory.
//!
//! Variant selection needs exactly this to pick an hsaco for each GPU (and
//! to say why none fits), and it must work everywhere: a machine without
//! the runtime gets an `Err` that says how to install it, a machine with the
//! runtime and no GPU gets `Ok` with no devices.

use kernelhub_manifest::target::{AmdArch, TargetError};

use crate::error::{HipError, LibraryError, codes};
use crate::result::Hip;
use crate::version::HipVersion;

/// The HIP runtime found and the GPUs it sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HipPlatform {
    /// The file name the runtime was opened by, e.g. `libamdhip64.so.5`.
    pub library: String,
    /// `hipRuntimeGetVersion`.
    pub runtime_version: HipVersion,
    /// `hipDriverGetVersion`.
    pub driver_version: HipVersion,
    /// Every device, by ordinal; empty where there is no AMD GPU.
    pub devices: Vec<HipDeviceInfo>,
    /// Devices HIP counts but could not describe, with why: one broken GPU
    /// does not hide the others.
    pub unusable: Vec<(i32, HipError)>,
}

/// One AMD GPU as HIP describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HipDeviceInfo {
    /// The HIP device ordinal (as `hipSetDevice` takes it).
    pub ordinal: i32,
    /// The marketing name, e.g. `AMD Instinct MI300X`.
    pub name: String,
    /// `gcnArchName`, the processor and its target features, e.g.
    /// `gfx942:sramecc+:xnack-`.
    pub gcn_arch_name: String,
    /// Device memory in bytes (`hipDeviceTotalMem`).
    pub total_memory: u64,
}

impl HipDeviceInfo {
    /// The architecture as manifests write targets, parsed from
    /// [`HipDeviceInfo::gcn_arch_name`].
    pub fn arch(&self) -> Result<AmdArch, TargetError> {
        self.gcn_arch_name.parse()
    }
}

/// Why the probe failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The HIP runtime is not installed (or not usable).
    #[error(transparent)]
    Library(#[from] LibraryError),
    /// The runtime is there but a call failed.
    #[error(transparent)]
    Hip(#[from] HipError),
    /// No GPU has the ordinal asked for.
    #[error("there is no AMD GPU #{ordinal}; HIP sees {count}")]
    NoSuchDevice {
        /// Asked for.
        ordinal: i32,
        /// How many there are.
        count: usize,
    },
}

/// Probes the process-wide HIP runtime ([`Hip::load`]).
pub fn probe() -> Result<HipPlatform, ProbeError> {
    Ok(probe_with(Hip::load()?)?)
}

/// Probes through an already opened runtime.
///
/// `hipErrorNoDevice` from `hipGetDeviceCount` means zero devices, not an
/// error. A failed `hipInit` is reported only if the device count then
/// finds devices: HIP 5.2 fails `hipInit` with `hipErrorInvalidDevice` on a
/// machine with no GPU, which is no reason to fail the probe.
pub fn probe_with(hip: Hip) -> Result<HipPlatform, HipError> {
    let runtime_version = hip.runtime_version()?;
    let driver_version = hip.driver_version()?;
    let init = hip.init();
    let count = match hip.device_count() {
        Ok(count) => count,
        Err(error) if error.is(codes::NO_DEVICE) => 0,
        Err(error) => return Err(error),
    };
    if count > 0 {
        init?;
    }
    let mut devices = Vec::new();
    let mut unusable = Vec::new();
    for ordinal in 0..count {
        match device_info(hip, ordinal) {
            Ok(device) => devices.push(device),
            Err(error) => unusable.push((ordinal, error)),
        }
    }
    Ok(HipPlatform {
        library: hip.library_path().to_string(),
        runtime_version,
        driver_version,
        devices,
        unusable,
    })
}

fn device_info(hip: Hip, ordinal: i32) -> Result<HipDeviceInfo, HipError> {
    let properties = hip.device_properties(ordinal)?;
    let name = match hip.device_name(ordinal)? {
        Some(name) if !name.is_empty() => name,
        _ => properties.name,
    };
    Ok(HipDeviceInfo {
        ordinal,
        name,
        gcn_arch_name: properties.gcn_arch_name,
        total_memory: hip.device_total_mem(ordinal)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(gcn_arch_name: &str) -> HipDeviceInfo {
        HipDeviceInfo {
            ordinal: 0,
            name: "AMD Instinct MI210".into(),
            gcn_arch_name: gcn_arch_name.into(),
            total_memory: 64 << 30,
        }
    }

    #[test]
    fn arch_parses_gcn_arch_name_with_features() {
        let arch = device("gfx90a:sramecc+:xnack-").arch().unwrap();
        assert_eq!(arch.processor, "gfx90a");
        assert_eq!(
            arch.features,
            vec![("sramecc".to_string(), true), ("xnack".to_string(), false)]
        );
        assert_eq!(arch.to_string(), "gfx90a:sramecc+:xnack-");
        assert_eq!(device("gfx1100").arch().unwrap().processor, "gfx1100");
    }

    #[test]
    fn arch_of_an_empty_name_is_an_error() {
        assert!(device("").arch().is_err());
    }
}
