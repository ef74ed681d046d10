//! Reading a device's `gcnArchName` (e.g. `gfx90a:sramecc+:xnack-`) out of
//! `hipDeviceProp_t`, whose layout changed in HIP 6.
//!
//! kernelhub picks a code object by this name, and HIP gives it only inside
//! a large struct with no stable layout across versions. Rather than
//! mirroring ~100 fields, the runtime fills a zeroed buffer far larger than
//! either layout ([`PROPERTIES_BUFFER_BYTES`]) and the three fields used here
//! are read at offsets established once, below, for x86-64 (LP64).
//!
//! Two layouts exist, and which *symbol* fills which matters as much as the
//! HIP version:
//! - [`PropertiesLayout::R0000`]: the HIP 4.2–5.x `hipDeviceProp_t`, frozen in
//!   HIP 6 as `hipDeviceProp_tR0000`. The unversioned export
//!   `hipGetDeviceProperties` fills this layout in HIP 5 **and in HIP 6+**:
//!   the HIP 6 header maps the name onto `hipGetDevicePropertiesR0600` with a
//!   `#define`, which a program that looks symbols up by name never sees
//!   (ROCm issue 2728; clr's `hip_device_runtime.cpp` defines
//!   `hipGetDeviceProperties(hipDeviceProp_tR0000*, ...)`).
//! - [`PropertiesLayout::R0600`]: `hipDeviceProp_tR0600`, filled by
//!   `hipGetDevicePropertiesR0600`, which exists from HIP 6.0.
//!
//! [`PropertiesLayout::choose`] takes R0600 where the runtime is HIP 6 or
//! later and exports it, else R0000 through the unversioned symbol.

use crate::version::HipVersion;

/// Bytes handed to the runtime to fill: far more than either layout needs
/// (792 and 1472 bytes), so a runtime whose struct grew at the end still
/// writes inside the buffer.
pub const PROPERTIES_BUFFER_BYTES: usize = 8192;

/// Length of the `char name[256]` and `char gcnArchName[256]` fields.
pub const NAME_FIELD_BYTES: usize = 256;

/// Offset of `char name[256]`: the first field in both layouts.
pub const NAME_OFFSET: usize = 0;

/// `totalGlobalMem` (`size_t`) in `hipDeviceProp_tR0000`: right after
/// `name[256]`, already 8-aligned. Measured with `offsetof`, see
/// [`R0000_GCN_ARCH_NAME_OFFSET`].
pub const R0000_TOTAL_GLOBAL_MEM_OFFSET: usize = 256;

/// `gcnArchName` in `hipDeviceProp_tR0000` (HIP 4.2–5.x `hipDeviceProp_t`).
///
/// Measured: `offsetof(hipDeviceProp_t, gcnArchName)` compiled with gcc 12
/// (`-D__HIP_PLATFORM_AMD__`, x86-64) against Debian 12's `libamdhip64-dev`
/// 5.2.3 header `/usr/include/hip/hip_runtime_api.h` is 396 (struct size
/// 792). The field list of `hipDeviceProp_tR0000` in ROCm/rocm-systems
/// `projects/hip/include/hip/hip_deprecated.h`, compiled the same way, gives
/// the same offsets. By hand, as a check: `name[256]` 0..256; `size_t`
/// `totalGlobalMem`, `sharedMemPerBlock` ..272; 12 ints (`regsPerBlock` ..
/// `memoryBusWidth`, counting `maxThreadsDim[3]` and `maxGridSize[3]`)
/// ..320; `size_t totalConstMem` ..328; 7 ints (`major` ..
/// `clockInstructionRate`) ..356; `hipDeviceArch_t arch` (17 one-bit fields,
/// one `unsigned`) ..360; 4 ints (`concurrentKernels` .. `pciDeviceID`)
/// ..376; `size_t maxSharedMemoryPerMultiProcessor` ..384; `isMultiGpuBoard`,
/// `canMapHostMemory`, `gcnArch` ..396.
pub const R0000_GCN_ARCH_NAME_OFFSET: usize = 396;

/// Size of `hipDeviceProp_tR0000` on x86-64 (measured, as above).
pub const R0000_SIZE: usize = 792;

/// `totalGlobalMem` (`size_t`) in `hipDeviceProp_tR0600`: after `name[256]`,
/// `hipUUID uuid` (16), `char luid[8]` and `unsigned luidDeviceNodeMask`,
/// 256 + 16 + 8 + 4 = 284, aligned up to 288. Measured, see below.
pub const R0600_TOTAL_GLOBAL_MEM_OFFSET: usize = 288;

/// `gcnArchName` in `hipDeviceProp_tR0600` (HIP 6+).
///
/// Measured: the struct as declared in ROCm/rocm-systems
/// `projects/hip/include/hip/hip_runtime_api.h` (the current HIP header,
/// where `hipDeviceProp_t` is `#define`d to `hipDeviceProp_tR0600`), copied
/// field for field into a C file and compiled with gcc 12 and clang 15 for
/// x86-64: `offsetof(hipDeviceProp_tR0600, gcnArchName)` is 1160, struct size
/// 1472. The field follows `int reserved[63]` (at 780) and
/// `int hipReserved[32]` (at 1032): 1032 + 128 = 1160. tinygrad's
/// clang-generated HIP bindings (`tinygrad/runtime/autogen/hip.py`) give the
/// same three offsets. New fields are meant to come out of `hipReserved`
/// ("reserved for adding new entries"), so this versioned layout stays fixed.
pub const R0600_GCN_ARCH_NAME_OFFSET: usize = 1160;

/// Size of `hipDeviceProp_tR0600` on x86-64 (measured, as above).
pub const R0600_SIZE: usize = 1472;

const _: () = {
    assert!(R0000_GCN_ARCH_NAME_OFFSET + NAME_FIELD_BYTES <= R0000_SIZE);
    assert!(R0600_GCN_ARCH_NAME_OFFSET + NAME_FIELD_BYTES <= R0600_SIZE);
    assert!(R0000_SIZE <= PROPERTIES_BUFFER_BYTES);
    assert!(R0600_SIZE <= PROPERTIES_BUFFER_BYTES);
};

/// Which `hipDeviceProp_t` layout a properties buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropertiesLayout {
    /// `hipDeviceProp_tR0000`, filled by the unversioned `hipGetDeviceProperties`.
    R0000,
    /// `hipDeviceProp_tR0600`, filled by `hipGetDevicePropertiesR0600` (HIP 6+).
    R0600,
}

impl PropertiesLayout {
    /// The C function that fills this layout.
    pub const fn symbol(self) -> &'static str {
        match self {
            Self::R0000 => "hipGetDeviceProperties",
            Self::R0600 => "hipGetDevicePropertiesR0600",
        }
    }

    /// The struct's size on x86-64.
    pub const fn size(self) -> usize {
        match self {
            Self::R0000 => R0000_SIZE,
            Self::R0600 => R0600_SIZE,
        }
    }

    /// Offset of `char gcnArchName[256]`.
    pub const fn gcn_arch_name_offset(self) -> usize {
        match self {
            Self::R0000 => R0000_GCN_ARCH_NAME_OFFSET,
            Self::R0600 => R0600_GCN_ARCH_NAME_OFFSET,
        }
    }

    /// Offset of `size_t totalGlobalMem`.
    pub const fn total_global_mem_offset(self) -> usize {
        match self {
            Self::R0000 => R0000_TOTAL_GLOBAL_MEM_OFFSET,
            Self::R0600 => R0600_TOTAL_GLOBAL_MEM_OFFSET,
        }
    }

    /// The layout to ask for, given the runtime's version and which of the
    /// two symbols it exports; `None` if it exports neither.
    ///
    /// HIP 6+ with `hipGetDevicePropertiesR0600`: R0600. Otherwise the
    /// unversioned symbol, which fills R0000 in every HIP version. A runtime
    /// with only the R0600 symbol gets R0600 whatever its version says.
    pub fn choose(runtime: HipVersion, has_r0600: bool, has_unversioned: bool) -> Option<Self> {
        match (has_r0600, has_unversioned) {
            (true, true) if runtime.major() >= 6 => Some(Self::R0600),
            (_, true) => Some(Self::R0000),
            (true, false) => Some(Self::R0600),
            (false, false) => None,
        }
    }
}

/// The fields kernelhub reads from a device's properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceProperties {
    /// The layout they were read from.
    pub layout: PropertiesLayout,
    /// `name`, e.g. `AMD Instinct MI250X`.
    pub name: String,
    /// `gcnArchName`, e.g. `gfx90a:sramecc+:xnack-`.
    pub gcn_arch_name: String,
    /// `totalGlobalMem`, in bytes.
    pub total_global_mem: u64,
}

impl DeviceProperties {
    /// Reads the fields from a buffer the runtime filled in `layout`;
    /// `None` if the buffer is shorter than the layout.
    pub fn from_bytes(layout: PropertiesLayout, bytes: &[u8]) -> Option<Self> {
        if bytes.len() < layout.size() {
            return None;
        }
        let name = c_string(&bytes[NAME_OFFSET..NAME_OFFSET + NAME_FIELD_BYTES]);
        let arch = layout.gcn_arch_name_offset();
        let gcn_arch_name = c_string(&bytes[arch..arch + NAME_FIELD_BYTES]);
        let memory = layout.total_global_mem_offset();
        let total_global_mem = u64::from_ne_bytes(bytes[memory..memory + 8].try_into().ok()?);
        Some(Self {
            layout,
            name,
            gcn_arch_name,
            total_global_mem,
        })
    }
}

/// The text of a fixed-size C `char` array: up to the first NUL (or the
/// whole array if none), invalid UTF-8 replaced, surrounding spaces trimmed.
pub fn c_string(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zeroed buffer as the runtime would fill it in `layout`.
    fn filled(layout: PropertiesLayout, name: &str, arch: &str, memory: u64) -> Vec<u8> {
        let mut buffer = vec![0u8; PROPERTIES_BUFFER_BYTES];
        buffer[..name.len()].copy_from_slice(name.as_bytes());
        let at = layout.gcn_arch_name_offset();
        buffer[at..at + arch.len()].copy_from_slice(arch.as_bytes());
        let at = layout.total_global_mem_offset();
        buffer[at..at + 8].copy_from_slice(&memory.to_ne_bytes());
        buffer
    }

    #[test]
    fn reads_gcn_arch_name_from_an_r0000_buffer() {
        let buffer = filled(
            PropertiesLayout::R0000,
            "AMD Instinct MI210",
            "gfx90a:sramecc+:xnack-",
            64 << 30,
        );
        let properties = DeviceProperties::from_bytes(PropertiesLayout::R0000, &buffer).unwrap();
        assert_eq!(properties.name, "AMD Instinct MI210");
        assert_eq!(properties.gcn_arch_name, "gfx90a:sramecc+:xnack-");
        assert_eq!(properties.total_global_mem, 64 << 30);
    }

    #[test]
    fn reads_gcn_arch_name_from_an_r0600_buffer() {
        let buffer = filled(
            PropertiesLayout::R0600,
            "AMD Instinct MI300X",
            "gfx942:sramecc+:xnack-",
            192 << 30,
        );
        let properties = DeviceProperties::from_bytes(PropertiesLayout::R0600, &buffer).unwrap();
        assert_eq!(properties.gcn_arch_name, "gfx942:sramecc+:xnack-");
        assert_eq!(properties.total_global_mem, 192 << 30);
        // Read as the other layout, the same bytes give no architecture:
        // the offsets really differ.
        let wrong = DeviceProperties::from_bytes(PropertiesLayout::R0000, &buffer).unwrap();
        assert_eq!(wrong.gcn_arch_name, "");
    }

    #[test]
    fn a_name_that_fills_the_field_has_no_nul_and_stops_at_the_field_end() {
        let mut buffer = vec![b'x'; PROPERTIES_BUFFER_BYTES];
        buffer[..4].copy_from_slice(b"gpu\0");
        let properties = DeviceProperties::from_bytes(PropertiesLayout::R0000, &buffer).unwrap();
        assert_eq!(properties.name, "gpu");
        assert_eq!(properties.gcn_arch_name.len(), NAME_FIELD_BYTES);
    }

    #[test]
    fn a_zeroed_buffer_reads_as_empty_fields() {
        let buffer = vec![0u8; PROPERTIES_BUFFER_BYTES];
        let properties = DeviceProperties::from_bytes(PropertiesLayout::R0600, &buffer).unwrap();
        assert_eq!(properties.gcn_arch_name, "");
        assert_eq!(properties.total_global_mem, 0);
    }

    #[test]
    fn a_short_buffer_is_refused() {
        assert_eq!(
            DeviceProperties::from_bytes(PropertiesLayout::R0600, &[0; R0600_SIZE - 1]),
            None
        );
        assert!(DeviceProperties::from_bytes(PropertiesLayout::R0000, &[0; R0000_SIZE]).is_some());
    }

    #[test]
    fn c_string_stops_at_nul_and_replaces_invalid_utf8() {
        assert_eq!(c_string(b"gfx1100\0garbage"), "gfx1100");
        assert_eq!(c_string(b"gfx\xff\0"), "gfx\u{fffd}");
        assert_eq!(c_string(b"\0"), "");
    }

    #[test]
    fn layout_follows_the_runtime_version_and_the_exports() {
        let hip5 = HipVersion::from_raw(50_221_153);
        let hip6 = HipVersion::from_raw(60_032_830);
        use PropertiesLayout::{R0000, R0600};
        assert_eq!(PropertiesLayout::choose(hip5, false, true), Some(R0000));
        assert_eq!(PropertiesLayout::choose(hip6, true, true), Some(R0600));
        // HIP 6 without the versioned export: the unversioned one is R0000.
        assert_eq!(PropertiesLayout::choose(hip6, false, true), Some(R0000));
        // A HIP 5 runtime never has R0600; if one claimed both, trust the version.
        assert_eq!(PropertiesLayout::choose(hip5, true, true), Some(R0000));
        assert_eq!(PropertiesLayout::choose(hip6, true, false), Some(R0600));
        assert_eq!(PropertiesLayout::choose(hip6, false, false), None);
        assert_eq!(R0600.symbol(), "hipGetDevicePropertiesR0600");
        assert_eq!(R0000.symbol(), "hipGetDeviceProperties");
    }
}
