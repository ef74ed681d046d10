//! What a GPU code object (NVIDIA cubin, AMD hsaco) is built for: machine,
//! architecture from the ELF flags, and the symbols it defines.
//!
//! `check` compares these with the manifest so an artifact built for the
//! wrong GPU, or missing a kernel, is caught before anyone loads it. Parsing
//! goes through the `object` crate, which bounds every read by the input.

use object::read::elf::ElfFile64;
use object::{LittleEndian, Object, ObjectSymbol};

/// `e_machine` of NVIDIA cubins.
pub const EM_CUDA: u16 = 190;
/// `e_machine` of AMD GPU code objects.
pub const EM_AMDGPU: u16 = 224;

/// Whose GPU a code object is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuVendor {
    /// NVIDIA (`EM_CUDA`).
    Nvidia,
    /// AMD (`EM_AMDGPU`).
    Amd,
}

/// What a code object is built for and what it defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// From `e_machine`.
    pub vendor: GpuVendor,
    /// `sm_90a`, `gfx90a`, …; `None` when the flags name an arch this code does not know.
    pub arch: Option<String>,
    /// AMD target features the object requires: `xnack-`, `sramecc+`, …
    /// (a feature built for "any" setting is not listed).
    pub features: Vec<String>,
    /// `e_flags`, for messages about unknown architectures.
    pub raw_flags: u32,
    /// Names of the symbols it defines (kernels, and on AMD their `.kd` descriptors).
    pub symbols: Vec<String>,
}

/// Why bytes are not a GPU code object kernelhub can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// No ELF magic.
    #[error("not an ELF file (it does not start with the bytes 7f 45 4c 46)")]
    NotElf,
    /// 32-bit or big-endian.
    #[error("a 32-bit or big-endian ELF; GPU code objects are 64-bit little-endian")]
    WrongClass,
    /// Truncated or inconsistent.
    #[error("malformed ELF: {0}")]
    Malformed(String),
    /// Some other machine's ELF.
    #[error("ELF machine is {0}, expected EM_CUDA (190) or EM_AMDGPU (224)")]
    WrongMachine(u16),
}

/// Reads a cubin or hsaco.
pub fn parse_elf(bytes: &[u8]) -> Result<ElfInfo, ElfError> {
    if !bytes.starts_with(b"\x7fELF") {
        return Err(ElfError::NotElf);
    }
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err(ElfError::WrongClass);
    }
    let file =
        ElfFile64::<LittleEndian>::parse(bytes).map_err(|e| ElfError::Malformed(e.to_string()))?;
    // The header was bounds-checked by the parse above; read its fields by offset.
    let field = |at: usize, len: usize| bytes.get(at..at + len).unwrap_or_default();
    let machine = u16::from_le_bytes(field(18, 2).try_into().unwrap_or_default());
    let flags = u32::from_le_bytes(field(48, 4).try_into().unwrap_or_default());
    let abi_version = field(8, 1).first().copied().unwrap_or_default();
    let (vendor, arch, features) = match machine {
        EM_CUDA => (GpuVendor::Nvidia, cuda_arch(flags, abi_version), Vec::new()),
        EM_AMDGPU => (
            GpuVendor::Amd,
            amd_processor(flags).map(str::to_string),
            amd_features(flags),
        ),
        other => return Err(ElfError::WrongMachine(other)),
    };
    let mut symbols = Vec::new();
    for symbol in file.symbols() {
        if symbol.is_definition()
            && let Ok(name) = symbol.name()
            && !name.is_empty()
        {
            symbols.push(name.to_string());
        }
    }
    Ok(ElfInfo {
        vendor,
        arch,
        features,
        raw_flags: flags,
        symbols,
    })
}

/// The SM of a cubin. NVIDIA has used two layouts: ELF ABI version 7 keeps
/// the SM in the low byte with `EF_CUDA_ACCELERATORS_V1` (0x800) marking the
/// `a` variants; ABI version 8 (CUDA 12.8 and later for new architectures)
/// moves the SM to bits 8..16 with `EF_CUDA_ACCELERATORS` at 0x8.
fn cuda_arch(flags: u32, abi_version: u8) -> Option<String> {
    let (sm, accelerated) = if abi_version >= 8 {
        ((flags >> 8) & 0xff, flags & 0x8 != 0)
    } else {
        (flags & 0xff, flags & 0x800 != 0)
    };
    (20..=255)
        .contains(&sm)
        .then(|| format!("sm_{sm}{}", if accelerated { "a" } else { "" }))
}

/// `EF_AMDGPU_MACH` values from LLVM's `BinaryFormat/ELF.h`.
const AMD_PROCESSORS: &[(u32, &str)] = &[
    (0x020, "gfx600"),
    (0x021, "gfx601"),
    (0x03a, "gfx602"),
    (0x022, "gfx700"),
    (0x023, "gfx701"),
    (0x024, "gfx702"),
    (0x025, "gfx703"),
    (0x026, "gfx704"),
    (0x03b, "gfx705"),
    (0x028, "gfx801"),
    (0x029, "gfx802"),
    (0x02a, "gfx803"),
    (0x03c, "gfx805"),
    (0x02b, "gfx810"),
    (0x02c, "gfx900"),
    (0x02d, "gfx902"),
    (0x02e, "gfx904"),
    (0x02f, "gfx906"),
    (0x030, "gfx908"),
    (0x031, "gfx909"),
    (0x032, "gfx90c"),
    (0x03f, "gfx90a"),
    (0x040, "gfx940"),
    (0x04b, "gfx941"),
    (0x04c, "gfx942"),
    (0x04f, "gfx950"),
    (0x033, "gfx1010"),
    (0x034, "gfx1011"),
    (0x035, "gfx1012"),
    (0x042, "gfx1013"),
    (0x036, "gfx1030"),
    (0x037, "gfx1031"),
    (0x038, "gfx1032"),
    (0x039, "gfx1033"),
    (0x03e, "gfx1034"),
    (0x03d, "gfx1035"),
    (0x045, "gfx1036"),
    (0x041, "gfx1100"),
    (0x046, "gfx1101"),
    (0x047, "gfx1102"),
    (0x044, "gfx1103"),
    (0x043, "gfx1150"),
    (0x04a, "gfx1151"),
    (0x048, "gfx1200"),
    (0x04e, "gfx1201"),
];

fn amd_processor(flags: u32) -> Option<&'static str> {
    let mach = flags & 0xff;
    AMD_PROCESSORS
        .iter()
        .find(|(value, _)| *value == mach)
        .map(|(_, name)| *name)
}

/// xnack and sramecc settings (code object v4+): 0 unsupported, 1 any, 2 off, 3 on.
fn amd_features(flags: u32) -> Vec<String> {
    [("xnack", (flags >> 8) & 3), ("sramecc", (flags >> 10) & 3)]
        .into_iter()
        .filter_map(|(name, setting)| match setting {
            2 => Some(format!("{name}-")),
            3 => Some(format!("{name}+")),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_flag_layouts() {
        assert_eq!(cuda_arch(0x0050_0550, 7).as_deref(), Some("sm_80"));
        assert_eq!(cuda_arch(0x005a_0d5a, 7).as_deref(), Some("sm_90a"));
        assert_eq!(cuda_arch(0x0600_5a04, 8).as_deref(), Some("sm_90"));
        assert_eq!(cuda_arch(0x0600_640a, 8).as_deref(), Some("sm_100a"));
        assert_eq!(cuda_arch(0, 7), None);
    }

    #[test]
    fn amd_flags() {
        assert_eq!(amd_processor(0x53f), Some("gfx90a"));
        assert_eq!(amd_features(0x53f), Vec::<String>::new());
        assert_eq!(amd_features(0x23f | 0xc00), vec!["xnack-", "sramecc+"]);
        assert_eq!(amd_processor(0xff), None);
    }

    #[test]
    fn not_gpu_elves() {
        assert_eq!(parse_elf(b"MZ"), Err(ElfError::NotElf));
        assert_eq!(parse_elf(b"\x7fELF\x01\x01"), Err(ElfError::WrongClass));
        let host = std::fs::read("/proc/self/exe").unwrap();
        assert_eq!(parse_elf(&host), Err(ElfError::WrongMachine(62)));
    }
}
