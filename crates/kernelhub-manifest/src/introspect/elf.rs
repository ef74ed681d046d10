//! Reads the GPU-specific parts of a device-code ELF file: NVIDIA cubins (`EM_CUDA`) and
//! AMD code objects / hsaco (`EM_AMDGPU`): vendor, target architecture and features from
//! `e_flags`, and the defined kernel symbols; for AMD also each kernel's argument list
//! from the code object's metadata note. It exists so that prebuilt kernels can be
//! checked against the architecture and signatures a manifest claims, on any host,
//! without a GPU driver.

use std::collections::HashSet;
use std::fmt;

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader, Sym};
use object::{Endianness, SectionIndex};

use super::msgpack::{self, Value};

/// `EM_CUDA`: NVIDIA CUDA cubin.
const EM_CUDA: u16 = 190;
/// `EM_AMDGPU`: AMD GPU code object.
const EM_AMDGPU: u16 = 224;
/// `ELFOSABI_AMDGPU_HSA`: the OS ABI of ROCm/HIP code objects, the only one whose
/// `EI_ABIVERSION` numbering (and so feature-bit layout) is defined.
const ELFOSABI_AMDGPU_HSA: u8 = 64;
/// `STT_AMDGPU_HSA_KERNEL`: kernel symbol type of AMD code object v2.
const STT_AMDGPU_HSA_KERNEL: u8 = 10;
/// `NT_AMDGPU_METADATA`: the MessagePack metadata note (owner "AMDGPU") of AMD code
/// objects v3 and later.
const NT_AMDGPU_METADATA: u32 = 32;
/// Longest symbol name accepted, in bytes (long C++ template kernel names fit easily).
const MAX_NAME_LEN: usize = 64 * 1024;
/// Most bytes of symbol names read in total; bounds time and memory on crafted input.
const MAX_NAME_BYTES: usize = 64 * 1024 * 1024;

/// Which GPU vendor's device code an ELF file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GpuVendor {
    /// NVIDIA cubin (`EM_CUDA`, 190).
    Nvidia,
    /// AMD code object / hsaco (`EM_AMDGPU`, 224).
    Amd,
}

impl fmt::Display for GpuVendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GpuVendor::Nvidia => "NVIDIA",
            GpuVendor::Amd => "AMD",
        })
    }
}

/// What a GPU device-code ELF file declares, as read by [`parse_elf`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// The vendor, from `e_machine`.
    pub vendor: GpuVendor,
    /// The `e_machine` value (190 = `EM_CUDA`, 224 = `EM_AMDGPU`).
    pub machine: u16,
    /// `EI_ABIVERSION` from the identification bytes; it selects the `e_flags` layout.
    pub abi_version: u8,
    /// Architecture from `e_flags`: "sm_80", "sm_90a" for CUDA; "gfx90a", "gfx942",
    /// "gfx1100" for AMD. `None` if the flags name an architecture this code does not
    /// know (then `raw_flags` and `abi_version` help the message).
    pub arch: Option<String>,
    /// AMD only: target features from `e_flags` in LLVM target-ID order, e.g.
    /// `["sramecc+", "xnack-"]`; a feature that is "any" or unsupported is left out.
    pub features: Vec<String>,
    /// The raw `e_flags` value.
    pub raw_flags: u32,
    /// Names of the defined symbols, in symbol-table order without duplicates:
    /// `STT_FUNC` and, for AMD, also the `STT_OBJECT` `<name>.kd` kernel descriptors
    /// (and code-object-v2 `STT_AMDGPU_HSA_KERNEL` symbols). Both `.symtab` and
    /// `.dynsym` are read.
    pub symbols: Vec<String>,
}

impl ElfInfo {
    /// Whether a defined symbol of this name is present.
    pub fn has_symbol(&self, name: &str) -> bool {
        self.symbols.iter().any(|s| s == name)
    }

    /// Whether the kernel object (AMD) has a kernel descriptor `<symbol>.kd`; hsaco
    /// kernels must, or the HIP runtime cannot launch them. Always false for NVIDIA.
    pub fn has_kernel_descriptor(&self, symbol: &str) -> bool {
        self.vendor == GpuVendor::Amd
            && self
                .symbols
                .iter()
                .any(|s| s.strip_suffix(".kd").is_some_and(|kernel| kernel == symbol))
    }

    /// The target as toolchains spell it: "sm_90a", or for AMD the LLVM target ID with
    /// features, e.g. "gfx90a:sramecc+:xnack-". `None` when the architecture is unknown.
    pub fn target_id(&self) -> Option<String> {
        let arch = self.arch.as_ref()?;
        let mut id = arch.clone();
        for feature in &self.features {
            id.push(':');
            id.push_str(feature);
        }
        Some(id)
    }
}

/// Why a file could not be read as GPU device code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// The file does not start with the ELF magic bytes.
    #[error("not an ELF file (expected the magic bytes 7f 45 4c 46, found {found})")]
    NotElf {
        /// The first bytes of the file in hex, or "an empty file".
        found: String,
    },
    /// A header, table or section reaches past the end of the file.
    #[error(
        "truncated ELF file: the {what} ends at byte {needed}, but the file is only {len} bytes long"
    )]
    Truncated {
        /// The part of the file that is cut off.
        what: String,
        /// The file length that part needs.
        needed: u64,
        /// The actual file length.
        len: u64,
    },
    /// The ELF structure is invalid (bad class, offsets, string tables, ...).
    #[error("malformed ELF file: {0}")]
    Malformed(String),
    /// The ELF file is for a CPU or other non-GPU machine.
    #[error("ELF machine is {machine}{}, expected EM_CUDA (190) or EM_AMDGPU (224)", machine_label(*machine))]
    WrongMachine {
        /// The `e_machine` value found.
        machine: u16,
    },
}

/// Parses the header and symbol tables of an NVIDIA cubin or AMD code object.
///
/// Checks the magic, class, encoding and machine, that every header, table, segment and
/// section lies inside the file (so a truncated download is reported as such), decodes
/// the architecture from `e_flags` and collects the defined kernel symbols. Time and
/// memory are linear in the input, with symbol names capped at 64 MiB in total.
pub fn parse_elf(bytes: &[u8]) -> Result<ElfInfo, ElfError> {
    let len = bytes.len() as u64;
    let truncated = |what: &str, needed: u64| ElfError::Truncated {
        what: what.to_owned(),
        needed,
        len,
    };

    if !bytes.starts_with(&elf::ELFMAG) {
        if !bytes.is_empty() && elf::ELFMAG.starts_with(bytes) {
            return Err(truncated("ELF magic", 4));
        }
        let found = if bytes.is_empty() {
            "an empty file".to_owned()
        } else {
            bytes
                .iter()
                .take(4)
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        return Err(ElfError::NotElf { found });
    }
    let ident = bytes
        .get(..16)
        .ok_or_else(|| truncated("ELF identification", 16))?;
    let [
        _,
        _,
        _,
        _,
        class,
        encoding,
        version,
        os_abi,
        abi_version,
        ..,
    ] = *ident
    else {
        return Err(truncated("ELF identification", 16));
    };
    let is_64 = match class {
        1 => false,
        2 => true,
        other => {
            return Err(ElfError::Malformed(format!(
                "unknown ELF class {other} (expected 1 for 32-bit or 2 for 64-bit)"
            )));
        }
    };
    let endian = match encoding {
        1 => Endianness::Little,
        2 => Endianness::Big,
        other => {
            return Err(ElfError::Malformed(format!(
                "unknown ELF data encoding {other} (expected 1 for little-endian or 2 for big-endian)"
            )));
        }
    };
    let header_len: u64 = if is_64 { 64 } else { 52 };
    if len < header_len {
        return Err(truncated("ELF header", header_len));
    }
    let machine = read_u16(bytes, 18, endian).ok_or_else(|| truncated("ELF header", header_len))?;
    let vendor = match machine {
        EM_CUDA => GpuVendor::Nvidia,
        EM_AMDGPU => GpuVendor::Amd,
        other => return Err(ElfError::WrongMachine { machine: other }),
    };
    if version != 1 {
        return Err(ElfError::Malformed(format!(
            "ELF identification version is {version}, expected 1 (EV_CURRENT)"
        )));
    }
    let flags_offset = if is_64 { 48 } else { 36 };
    let raw_flags =
        read_u32(bytes, flags_offset, endian).ok_or_else(|| truncated("ELF header", header_len))?;

    let symbols = if is_64 {
        read_symbols::<elf::FileHeader64<Endianness>>(bytes, vendor)?
    } else {
        read_symbols::<elf::FileHeader32<Endianness>>(bytes, vendor)?
    };

    let (arch, features) = match vendor {
        GpuVendor::Nvidia => (cuda_arch(abi_version, raw_flags), Vec::new()),
        GpuVendor::Amd => (
            amdgpu_mach_name(raw_flags & 0xff).map(str::to_owned),
            amdgpu_features(os_abi, abi_version, raw_flags),
        ),
    };

    Ok(ElfInfo {
        vendor,
        machine,
        abi_version,
        arch,
        features,
        raw_flags,
        symbols,
    })
}

/// Checks the layout of the file and collects the defined kernel symbols.
fn read_symbols<Elf: FileHeader<Endian = Endianness>>(
    data: &[u8],
    vendor: GpuVendor,
) -> Result<Vec<String>, ElfError> {
    let len = data.len() as u64;
    let truncated = |what: String, needed: u64| ElfError::Truncated { what, needed, len };
    let malformed =
        |what: &str, e: object::read::Error| ElfError::Malformed(format!("{what}: {e}"));

    let header = Elf::parse(data).map_err(|e| malformed("bad ELF header", e))?;
    let endian = header
        .endian()
        .map_err(|e| malformed("bad ELF header", e))?;

    // Table extents from the raw header fields, so that a cut-off file reads as truncated
    // rather than as whatever `object` finds wrong first.
    let shoff: u64 = header.e_shoff(endian).into();
    if shoff != 0 {
        let count = u64::from(header.e_shnum(endian)).max(1);
        let end = u64::from(header.e_shentsize(endian))
            .checked_mul(count)
            .and_then(|size| size.checked_add(shoff));
        match end {
            Some(end) if end <= len => {}
            Some(end) => return Err(truncated("section header table".to_owned(), end)),
            None => {
                return Err(ElfError::Malformed(
                    "section header table offset overflows".into(),
                ));
            }
        }
    }
    let phoff: u64 = header.e_phoff(endian).into();
    if phoff != 0 && header.e_phnum(endian) != 0 {
        let end = u64::from(header.e_phentsize(endian))
            .checked_mul(u64::from(header.e_phnum(endian)))
            .and_then(|size| size.checked_add(phoff));
        match end {
            Some(end) if end <= len => {}
            Some(end) => return Err(truncated("program header table".to_owned(), end)),
            None => {
                return Err(ElfError::Malformed(
                    "program header table offset overflows".into(),
                ));
            }
        }
    }

    let segments = header
        .program_headers(endian, data)
        .map_err(|e| malformed("bad program header table", e))?;
    for (i, segment) in segments.iter().enumerate() {
        let offset: u64 = segment.p_offset(endian).into();
        let size: u64 = segment.p_filesz(endian).into();
        check_range(offset, size, len, || format!("segment {i}"))?;
    }

    let sections = header
        .section_headers(endian, data)
        .map_err(|e| malformed("bad section header table", e))?;
    for (i, section) in sections.iter().enumerate() {
        let kind = section.sh_type(endian);
        if kind == elf::SHT_NULL {
            continue;
        }
        if let Some((offset, size)) = section.file_range(endian) {
            check_range(offset, size, len, || format!("contents of section {i}"))?;
        }
    }

    let mut names = Vec::new();
    let mut seen = HashSet::new();
    let mut budget = MAX_NAME_BYTES;
    // The gABI allows one `.symtab` and one `.dynsym`; reading only the first of each
    // keeps crafted files with many tables over the same bytes linear in time.
    let mut tables = Vec::new();
    for kind in [elf::SHT_SYMTAB, elf::SHT_DYNSYM] {
        if let Some(found) = sections
            .iter()
            .enumerate()
            .find(|(_, s)| s.sh_type(endian) == kind)
        {
            tables.push(found);
        }
    }
    for (i, section) in tables {
        let symbols: &[Elf::Sym] = section
            .data_as_array(endian, data)
            .map_err(|e| malformed(&format!("bad symbol table in section {i}"), e))?;
        let link = section.link(endian);
        let strtab_header = sections.get(link.0).filter(|_| link != SectionIndex(0)).ok_or_else(|| {
            ElfError::Malformed(format!(
                "symbol table in section {i} links to string table section {}, which does not exist",
                link.0
            ))
        })?;
        let strtab = strtab_header
            .data(endian, data)
            .map_err(|e| malformed(&format!("bad string table in section {}", link.0), e))?;

        for sym in symbols {
            if sym.st_shndx(endian) == elf::SHN_UNDEF {
                continue;
            }
            let kind = sym.st_type();
            let wanted = kind == elf::STT_FUNC
                || (vendor == GpuVendor::Amd
                    && (kind == elf::STT_OBJECT || kind.0 == STT_AMDGPU_HSA_KERNEL));
            if !wanted {
                continue;
            }
            let name = symbol_name(strtab, sym.st_name(endian), &mut budget)?;
            if name.is_empty() {
                continue;
            }
            if kind == elf::STT_OBJECT && !name.ends_with(b".kd") {
                continue;
            }
            let name = String::from_utf8_lossy(name).into_owned();
            if seen.insert(name.clone()) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

/// Errors with `Truncated` if `offset + size` reaches past `len`.
fn check_range(
    offset: u64,
    size: u64,
    len: u64,
    what: impl FnOnce() -> String,
) -> Result<(), ElfError> {
    match offset.checked_add(size) {
        Some(end) if end <= len => Ok(()),
        Some(end) => Err(ElfError::Truncated {
            what: what(),
            needed: end,
            len,
        }),
        None => Err(ElfError::Malformed(format!(
            "{} has an overflowing offset",
            what()
        ))),
    }
}

/// Reads the NUL-terminated name at `offset` in `strtab`, looking at no more than
/// [`MAX_NAME_LEN`] bytes and charging its length to `budget`.
fn symbol_name<'a>(
    strtab: &'a [u8],
    offset: u32,
    budget: &mut usize,
) -> Result<&'a [u8], ElfError> {
    let tail = usize::try_from(offset)
        .ok()
        .and_then(|start| strtab.get(start..))
        .ok_or_else(|| {
            ElfError::Malformed(format!(
                "symbol name offset {offset} is outside the {}-byte string table",
                strtab.len()
            ))
        })?;
    let window = tail.get(..=MAX_NAME_LEN).unwrap_or(tail);
    let end = window.iter().position(|&b| b == 0).ok_or_else(|| {
        if window.len() > MAX_NAME_LEN {
            ElfError::Malformed(format!(
                "symbol name at string table offset {offset} is longer than {MAX_NAME_LEN} bytes"
            ))
        } else {
            ElfError::Malformed(format!(
                "symbol name at string table offset {offset} is not NUL-terminated"
            ))
        }
    })?;
    *budget = budget.checked_sub(end + 1).ok_or_else(|| {
        ElfError::Malformed(format!(
            "symbol names exceed {} MiB in total",
            MAX_NAME_BYTES / (1024 * 1024)
        ))
    })?;
    Ok(window.get(..end).unwrap_or_default())
}

fn read_u16(bytes: &[u8], offset: usize, endian: Endianness) -> Option<u16> {
    let raw: [u8; 2] = bytes.get(offset..offset.checked_add(2)?)?.try_into().ok()?;
    Some(match endian {
        Endianness::Little => u16::from_le_bytes(raw),
        Endianness::Big => u16::from_be_bytes(raw),
    })
}

fn read_u32(bytes: &[u8], offset: usize, endian: Endianness) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(offset..offset.checked_add(4)?)?.try_into().ok()?;
    Some(match endian {
        Endianness::Little => u32::from_le_bytes(raw),
        Endianness::Big => u32::from_be_bytes(raw),
    })
}

/// One kernel as an AMD code object's metadata note describes it (`amdhsa.kernels[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmdKernel {
    /// `.name`: the kernel's name, as a launch names it.
    pub name: String,
    /// `.symbol`: its kernel descriptor symbol, normally `<name>.kd`.
    pub symbol: String,
    /// The explicit arguments in order: `.args` without the `hidden_*` ones, which the
    /// runtime fills in itself.
    pub args: Vec<AmdKernelArg>,
}

/// One explicit kernel argument from `.args`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmdKernelArg {
    /// `.name`, present only when the compiler kept argument names.
    pub name: Option<String>,
    /// `.value_kind`: `global_buffer`, `by_value`, `dynamic_shared_pointer`, ...
    pub value_kind: String,
    /// `.size` in bytes: what the runtime copies from the launch's argument pointer.
    pub size: u64,
    /// `.offset` in the kernel argument segment.
    pub offset: u64,
}

/// Reads the kernels and their arguments from an AMD code object's metadata note
/// (`NT_AMDGPU_METADATA`, MessagePack, code object v3 and later).
///
/// `Ok(None)` when the file has no such note (code object v2 kept YAML metadata, which
/// is not read). Call it on a file [`parse_elf`] accepted as AMD; errors describe a
/// malformed note or metadata.
pub fn amdgpu_kernels(bytes: &[u8]) -> Result<Option<Vec<AmdKernel>>, ElfError> {
    let note = match bytes.get(4) {
        Some(2) => metadata_note::<elf::FileHeader64<Endianness>>(bytes)?,
        _ => metadata_note::<elf::FileHeader32<Endianness>>(bytes)?,
    };
    let Some(note) = note else {
        return Ok(None);
    };
    let bad = |what: String| ElfError::Malformed(format!("AMDGPU metadata note: {what}"));
    let root = msgpack::decode(note).map_err(bad)?;
    let kernels = root
        .get("amdhsa.kernels")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no `amdhsa.kernels` array".to_owned()))?;
    let mut out = Vec::with_capacity(kernels.len());
    for (i, kernel) in kernels.iter().enumerate() {
        let name = kernel
            .get(".name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("kernel {i} has no `.name` string")))?;
        let symbol = match kernel.get(".symbol") {
            None => format!("{name}.kd"),
            Some(v) => v
                .as_str()
                .ok_or_else(|| bad(format!("`.symbol` of kernel `{name}` is not a string")))?
                .to_owned(),
        };
        let listed = match kernel.get(".args") {
            None => &[][..],
            Some(v) => v
                .as_array()
                .ok_or_else(|| bad(format!("`.args` of kernel `{name}` is not an array")))?,
        };
        let mut args = Vec::new();
        for (j, arg) in listed.iter().enumerate() {
            let field = |key: &str| bad(format!("argument {j} of kernel `{name}` has no `{key}`"));
            let value_kind = arg
                .get(".value_kind")
                .and_then(Value::as_str)
                .ok_or_else(|| field(".value_kind"))?;
            if value_kind.starts_with("hidden_") {
                continue;
            }
            let size = arg
                .get(".size")
                .and_then(Value::as_u64)
                .ok_or_else(|| field(".size"))?;
            let offset = arg
                .get(".offset")
                .and_then(Value::as_u64)
                .ok_or_else(|| field(".offset"))?;
            args.push(AmdKernelArg {
                name: arg.get(".name").and_then(Value::as_str).map(str::to_owned),
                value_kind: value_kind.to_owned(),
                size,
                offset,
            });
        }
        out.push(AmdKernel {
            name: name.to_owned(),
            symbol,
            args,
        });
    }
    Ok(Some(out))
}

/// The description of the first `AMDGPU` / `NT_AMDGPU_METADATA` note, looked for in the
/// note sections, then in the note segments.
fn metadata_note<Elf: FileHeader<Endian = Endianness>>(
    data: &[u8],
) -> Result<Option<&[u8]>, ElfError> {
    let malformed =
        |what: &str, e: object::read::Error| ElfError::Malformed(format!("{what}: {e}"));
    let header = Elf::parse(data).map_err(|e| malformed("bad ELF header", e))?;
    let endian = header
        .endian()
        .map_err(|e| malformed("bad ELF header", e))?;
    let sections = header
        .section_headers(endian, data)
        .map_err(|e| malformed("bad section header table", e))?;
    for section in sections {
        let notes = section
            .notes(endian, data)
            .map_err(|e| malformed("bad note section", e))?;
        if let Some(desc) = find_metadata(notes, endian)? {
            return Ok(Some(desc));
        }
    }
    let segments = header
        .program_headers(endian, data)
        .map_err(|e| malformed("bad program header table", e))?;
    for segment in segments {
        let notes = segment
            .notes(endian, data)
            .map_err(|e| malformed("bad note segment", e))?;
        if let Some(desc) = find_metadata(notes, endian)? {
            return Ok(Some(desc));
        }
    }
    Ok(None)
}

/// The description of the first metadata note among `notes`.
fn find_metadata<'data, Elf: FileHeader<Endian = Endianness>>(
    notes: Option<object::read::elf::NoteIterator<'data, Elf>>,
    endian: Endianness,
) -> Result<Option<&'data [u8]>, ElfError> {
    let Some(mut notes) = notes else {
        return Ok(None);
    };
    while let Some(note) = notes
        .next()
        .map_err(|e| ElfError::Malformed(format!("bad note: {e}")))?
    {
        if note.name() == b"AMDGPU" && note.n_type(endian).0 == NT_AMDGPU_METADATA {
            return Ok(Some(note.desc()));
        }
    }
    Ok(None)
}

/// " (x86-64)" for well-known CPU machines, "" otherwise.
fn machine_label(machine: u16) -> &'static str {
    match machine {
        0 => " (none)",
        3 => " (x86)",
        8 => " (MIPS)",
        20 => " (PowerPC)",
        21 => " (PowerPC64)",
        22 => " (S/390)",
        40 => " (ARM)",
        62 => " (x86-64)",
        183 => " (AArch64)",
        243 => " (RISC-V)",
        247 => " (BPF)",
        258 => " (LoongArch)",
        _ => "",
    }
}

/// SM numbers (major * 10 + minor) of real NVIDIA architectures a cubin can target.
/// `sm_88`, `sm_103`, `sm_110` and `sm_121` are from CUDA 12.9/13.0; `sm_101` is the
/// pre-13.0 name of `sm_110`.
const KNOWN_SM: &[u32] = &[
    20, 21, 30, 32, 35, 37, 50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 88, 89, 90, 100, 101,
    103, 110, 120, 121,
];

/// Decodes a cubin's architecture from `EI_ABIVERSION` and `e_flags`.
///
/// Two layouts exist, as in LLVM's `llvm/BinaryFormat/ELF.h` and
/// `ELFObjectFileBase::getNVPTXCPUName`:
/// - ABI version 7 and below (`ELFABIVERSION_CUDA_V1`, CUDA <= 12.x): SM in bits 0-7
///   (`EF_CUDA_SM`), bit 11 (`EF_CUDA_ACCELERATORS_V1`, 0x800) marks the "a" variant;
///   bits 8-10 are texture-mode / 64-bit-address flags, bits 16-23 the virtual SM.
/// - ABI version 8 (`ELFABIVERSION_CUDA_V2`, CUDA 13 / Blackwell-era ptxas): SM in bits
///   8-15 (`EF_CUDA_SM_MASK`, `EF_CUDA_SM_OFFSET` = 8), bit 3 (`EF_CUDA_ACCELERATORS`,
///   0x8) marks the "a" variant; bits 16-23 the virtual SM.
///
/// Uncertain: NVIDIA does not document these bits. The layouts follow LLVM; one public
/// report of CUDA 13 cubins says `cuobjdump` showed `sm_100a`..`sm_121a` while bit 3 was
/// clear, so under ABI v8 a missing "a" may not prove a plain target. The "f" family
/// suffix (`sm_100f`) is not encoded at all. Unknown ABI versions give `None`.
fn cuda_arch(abi_version: u8, flags: u32) -> Option<String> {
    let (sm, accelerated) = match abi_version {
        0..=7 => (flags & 0xff, flags & 0x800 != 0),
        8 => ((flags >> 8) & 0xff, flags & 0x8 != 0),
        _ => return None,
    };
    if !KNOWN_SM.contains(&sm) || (accelerated && sm < 90) {
        return None;
    }
    Some(format!("sm_{sm}{}", if accelerated { "a" } else { "" }))
}

/// Names `EF_AMDGPU_MACH` values (`e_flags & 0xff`), from LLVM's
/// `llvm/include/llvm/BinaryFormat/ELF.h` and `test/CodeGen/AMDGPU/elf-header-flags-mach.ll`.
/// gfx940/gfx941 (0x40, 0x4b) were dropped from LLVM after being folded into gfx942 but
/// still appear in older code objects. The newest entries (gfx1154, gfx1170-gfx1172,
/// gfx1310, gfx11-7-generic, gfx13-generic) come from LLVM main and are not yet in a
/// release this was checked against. R600-era values are not device targets for HIP and
/// are left out.
fn amdgpu_mach_name(mach: u32) -> Option<&'static str> {
    Some(match mach {
        // GFX6-GFX8
        0x020 => "gfx600",
        0x021 => "gfx601",
        0x03a => "gfx602",
        0x022 => "gfx700",
        0x023 => "gfx701",
        0x024 => "gfx702",
        0x025 => "gfx703",
        0x026 => "gfx704",
        0x03b => "gfx705",
        0x028 => "gfx801",
        0x029 => "gfx802",
        0x02a => "gfx803",
        0x03c => "gfx805",
        0x02b => "gfx810",
        // GFX9
        0x02c => "gfx900",
        0x02d => "gfx902",
        0x02e => "gfx904",
        0x02f => "gfx906",
        0x030 => "gfx908",
        0x031 => "gfx909",
        0x03f => "gfx90a",
        0x032 => "gfx90c",
        0x040 => "gfx940",
        0x04b => "gfx941",
        0x04c => "gfx942",
        0x04f => "gfx950",
        // GFX10
        0x033 => "gfx1010",
        0x034 => "gfx1011",
        0x035 => "gfx1012",
        0x042 => "gfx1013",
        0x036 => "gfx1030",
        0x037 => "gfx1031",
        0x038 => "gfx1032",
        0x039 => "gfx1033",
        0x03e => "gfx1034",
        0x03d => "gfx1035",
        0x045 => "gfx1036",
        // GFX11
        0x041 => "gfx1100",
        0x046 => "gfx1101",
        0x047 => "gfx1102",
        0x044 => "gfx1103",
        0x043 => "gfx1150",
        0x04a => "gfx1151",
        0x055 => "gfx1152",
        0x058 => "gfx1153",
        0x057 => "gfx1154",
        0x05d => "gfx1170",
        0x05e => "gfx1171",
        0x05c => "gfx1172",
        // GFX12
        0x048 => "gfx1200",
        0x04e => "gfx1201",
        0x049 => "gfx1250",
        0x05a => "gfx1251",
        // GFX13
        0x050 => "gfx1310",
        // Generic targets (code object v6).
        0x051 => "gfx9-generic",
        0x05f => "gfx9-4-generic",
        0x052 => "gfx10-1-generic",
        0x053 => "gfx10-3-generic",
        0x054 => "gfx11-generic",
        0x062 => "gfx11-7-generic",
        0x059 => "gfx12-generic",
        0x05b => "gfx12-5-generic",
        0x063 => "gfx13-generic",
        _ => return None,
    })
}

/// Decodes the xnack / sramecc settings from an AMD HSA code object's `e_flags`.
///
/// Code object v4+ (`EI_ABIVERSION` >= 2): `EF_AMDGPU_FEATURE_XNACK_V4` (0x300) and
/// `EF_AMDGPU_FEATURE_SRAMECC_V4` (0xc00) each hold unsupported (0) / any (1) / off (2) /
/// on (3); only off and on are reported. Code object v3 (`EI_ABIVERSION` 1): single
/// "enabled" bits 0x100 (xnack) and 0x200 (sramecc). Code object v2 (`EI_ABIVERSION` 0):
/// bit 0x1 (xnack). Other OS ABIs (PAL, Mesa) give no features.
fn amdgpu_features(os_abi: u8, abi_version: u8, flags: u32) -> Vec<String> {
    let mut features = Vec::new();
    if os_abi != ELFOSABI_AMDGPU_HSA {
        return features;
    }
    let mut push = |name: &str| features.push(name.to_owned());
    match abi_version {
        0 => {
            if flags & 0x1 != 0 {
                push("xnack+");
            }
        }
        1 => {
            if flags & 0x200 != 0 {
                push("sramecc+");
            }
            if flags & 0x100 != 0 {
                push("xnack+");
            }
        }
        _ => {
            match flags & 0xc00 {
                0x800 => push("sramecc-"),
                0xc00 => push("sramecc+"),
                _ => {}
            }
            match flags & 0x300 {
                0x200 => push("xnack-"),
                0x300 => push("xnack+"),
                _ => {}
            }
        }
    }
    features
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::write::{Object, StandardSection, Symbol, SymbolSection};
    use object::{Architecture, BinaryFormat, SymbolFlags, SymbolKind, SymbolScope};

    const GFX90A: &[u8] = include_bytes!("../../tests/fixtures/silu_gfx90a.hsaco");
    const GFX90A_XNACK_OFF: &[u8] = include_bytes!("../../tests/fixtures/silu_gfx90a_xnack-.hsaco");
    const GFX90A_SRAMECC_XNACK_ON: &[u8] =
        include_bytes!("../../tests/fixtures/silu_gfx90a_sramecc+_xnack+.hsaco");
    const GFX940: &[u8] = include_bytes!("../../tests/fixtures/silu_gfx940.hsaco");
    const GFX1100: &[u8] = include_bytes!("../../tests/fixtures/silu_gfx1100.hsaco");
    /// `scale(float*, const float*, unsigned, float)`, whose metadata also lists the
    /// hidden arguments it reads (tests/fixtures/scale_hidden.hip).
    const HIDDEN_ARGS: &[u8] = include_bytes!("../../tests/fixtures/scale_hidden_gfx90a.hsaco");

    /// An ELF file with one `.text` function `kernel`, written for `arch` and then given
    /// `machine`, `abi_version` and `e_flags` by patching the header.
    fn synth(
        arch: Architecture,
        endian: Endianness,
        machine: u16,
        os_abi: u8,
        abi_version: u8,
        e_flags: u32,
    ) -> Vec<u8> {
        let mut obj = Object::new(BinaryFormat::Elf, arch, endian);
        obj.flags = object::FileFlags::Elf {
            os_abi: elf::OsAbi(os_abi),
            abi_version,
            e_flags: elf::FileFlags(0),
        };
        let text = obj.section_id(StandardSection::Text);
        let offset = obj.append_section_data(text, &[0u8; 16], 16);
        obj.add_symbol(Symbol {
            name: b"kernel".to_vec(),
            value: offset,
            size: 16,
            kind: SymbolKind::Text,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Section(text),
            flags: SymbolFlags::None,
        });
        obj.add_symbol(Symbol {
            name: b"undefined_fn".to_vec(),
            value: 0,
            size: 0,
            kind: SymbolKind::Text,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Undefined,
            flags: SymbolFlags::None,
        });
        let mut bytes = obj.write().expect("object writes");
        let flags_offset = if bytes.get(4) == Some(&2) { 48 } else { 36 };
        let (m, f) = match endian {
            Endianness::Little => (machine.to_le_bytes(), e_flags.to_le_bytes()),
            Endianness::Big => (machine.to_be_bytes(), e_flags.to_be_bytes()),
        };
        bytes[18..20].copy_from_slice(&m);
        bytes[flags_offset..flags_offset + 4].copy_from_slice(&f);
        bytes
    }

    fn cubin(abi_version: u8, e_flags: u32) -> Vec<u8> {
        // ELFOSABI_CUDA is 0x33 in real cubins.
        synth(
            Architecture::X86_64,
            Endianness::Little,
            EM_CUDA,
            0x33,
            abi_version,
            e_flags,
        )
    }

    #[test]
    fn real_hsaco_gfx90a() {
        let info = parse_elf(GFX90A).unwrap();
        assert_eq!(info.vendor, GpuVendor::Amd);
        assert_eq!(info.machine, 224);
        assert_eq!(info.abi_version, 2);
        assert_eq!(info.arch.as_deref(), Some("gfx90a"));
        assert_eq!(info.raw_flags, 0x53f);
        assert!(
            info.features.is_empty(),
            "xnack/sramecc are 'any': {:?}",
            info.features
        );
        assert_eq!(info.symbols, vec!["silu_f32", "silu_f32.kd"]);
        assert!(info.has_symbol("silu_f32"));
        assert!(info.has_kernel_descriptor("silu_f32"));
        assert!(!info.has_kernel_descriptor("silu_f16"));
        assert_eq!(info.target_id().as_deref(), Some("gfx90a"));
    }

    #[test]
    fn real_hsaco_features_and_other_archs() {
        let info = parse_elf(GFX90A_XNACK_OFF).unwrap();
        assert_eq!(info.features, vec!["xnack-"]);
        assert_eq!(info.target_id().as_deref(), Some("gfx90a:xnack-"));
        let info = parse_elf(GFX90A_SRAMECC_XNACK_ON).unwrap();
        assert_eq!(info.features, vec!["sramecc+", "xnack+"]);
        assert_eq!(info.target_id().as_deref(), Some("gfx90a:sramecc+:xnack+"));
        let info = parse_elf(GFX940).unwrap();
        assert_eq!(info.arch.as_deref(), Some("gfx940"));
        let info = parse_elf(GFX1100).unwrap();
        assert_eq!(info.arch.as_deref(), Some("gfx1100"));
        assert!(info.features.is_empty());
        assert!(info.has_kernel_descriptor("silu_f32"));
    }

    #[test]
    fn amd_mach_table() {
        for (mach, name) in [
            (0x2c, "gfx900"),
            (0x2f, "gfx906"),
            (0x30, "gfx908"),
            (0x3f, "gfx90a"),
            (0x4c, "gfx942"),
            (0x4f, "gfx950"),
            (0x36, "gfx1030"),
            (0x41, "gfx1100"),
            (0x48, "gfx1200"),
            (0x4e, "gfx1201"),
            (0x5f, "gfx9-4-generic"),
        ] {
            assert_eq!(amdgpu_mach_name(mach), Some(name));
        }
        assert_eq!(amdgpu_mach_name(0), None);
        assert_eq!(amdgpu_mach_name(0xff), None);
    }

    #[test]
    fn synthetic_amd_gfx942_and_unknown() {
        let bytes = synth(
            Architecture::X86_64,
            Endianness::Little,
            EM_AMDGPU,
            64,
            3,
            0xe4c,
        );
        let info = parse_elf(&bytes).unwrap();
        assert_eq!(info.arch.as_deref(), Some("gfx942"));
        assert_eq!(info.features, vec!["sramecc+", "xnack-"]);
        assert_eq!(info.symbols, vec!["kernel"]);
        assert!(!info.has_kernel_descriptor("kernel"));
        let bytes = synth(
            Architecture::X86_64,
            Endianness::Little,
            EM_AMDGPU,
            64,
            2,
            0x5ee,
        );
        let info = parse_elf(&bytes).unwrap();
        assert_eq!(info.arch, None);
        assert_eq!(info.raw_flags, 0x5ee);
    }

    #[test]
    fn synthetic_cubins() {
        // ABI v1: SM in the low byte, 0x800 = "a"; 0x500 = 64-bit address + unified texmode.
        let info = parse_elf(&cubin(7, 0x0050_0550)).unwrap();
        assert_eq!(info.vendor, GpuVendor::Nvidia);
        assert_eq!(info.machine, 190);
        assert_eq!(info.arch.as_deref(), Some("sm_80"));
        assert!(info.features.is_empty());
        assert_eq!(info.symbols, vec!["kernel"]);
        assert!(!info.has_kernel_descriptor("kernel"));
        let info = parse_elf(&cubin(7, 0x005a_0d5a)).unwrap();
        assert_eq!(info.arch.as_deref(), Some("sm_90a"));
        let info = parse_elf(&cubin(7, 0x005a_055a)).unwrap();
        assert_eq!(info.arch.as_deref(), Some("sm_90"));
        // ABI v2: SM in bits 8-15, 0x8 = "a".
        let info = parse_elf(&cubin(8, 0x0064_640a)).unwrap();
        assert_eq!(info.arch.as_deref(), Some("sm_100a"));
        let info = parse_elf(&cubin(8, 0x0600_7802)).unwrap();
        assert_eq!(info.arch.as_deref(), Some("sm_120"));
        let info = parse_elf(&cubin(8, 0x0600_5a04)).unwrap();
        assert_eq!(info.arch.as_deref(), Some("sm_90"));
        // Unknown SM, impossible "a", unknown ABI: arch None, flags kept.
        let info = parse_elf(&cubin(7, 0x0000_0577)).unwrap();
        assert_eq!((info.arch, info.raw_flags), (None, 0x577));
        assert_eq!(parse_elf(&cubin(7, 0x0000_0d50)).unwrap().arch, None);
        assert_eq!(parse_elf(&cubin(9, 0x0000_5000)).unwrap().arch, None);
    }

    #[test]
    fn synthetic_32_bit_and_big_endian() {
        let bytes = synth(
            Architecture::I386,
            Endianness::Little,
            EM_CUDA,
            0x33,
            7,
            0x0050_0150,
        );
        assert_eq!(bytes[4], 1, "32-bit ELF");
        let info = parse_elf(&bytes).unwrap();
        assert_eq!(info.arch.as_deref(), Some("sm_80"));
        assert_eq!(info.symbols, vec!["kernel"]);
        let bytes = synth(
            Architecture::PowerPc64,
            Endianness::Big,
            EM_CUDA,
            0x33,
            7,
            0x0056_0556,
        );
        let info = parse_elf(&bytes).unwrap();
        assert_eq!(info.arch.as_deref(), Some("sm_86"));
        assert_eq!(info.symbols, vec!["kernel"]);
    }

    #[test]
    fn wrong_machine() {
        let bytes = synth(Architecture::X86_64, Endianness::Little, 62, 0, 0, 0);
        let err = parse_elf(&bytes).unwrap_err();
        assert_eq!(err, ElfError::WrongMachine { machine: 62 });
        assert_eq!(
            err.to_string(),
            "ELF machine is 62 (x86-64), expected EM_CUDA (190) or EM_AMDGPU (224)"
        );
        assert_eq!(
            ElfError::WrongMachine { machine: 4242 }.to_string(),
            "ELF machine is 4242, expected EM_CUDA (190) or EM_AMDGPU (224)"
        );
        // The first 64 bytes of a host executable are enough to tell.
        if let Ok(host) = std::fs::read("/bin/true") {
            let head = host.get(..64).unwrap_or(&host);
            assert!(matches!(
                parse_elf(head),
                Err(ElfError::WrongMachine { .. })
            ));
        }
    }

    #[test]
    fn not_elf() {
        let err = parse_elf(b"\x00asm\x01\x00\x00\x00").unwrap_err();
        assert_eq!(
            err.to_string(),
            "not an ELF file (expected the magic bytes 7f 45 4c 46, found 00 61 73 6d)"
        );
        assert!(matches!(parse_elf(b""), Err(ElfError::NotElf { .. })));
        assert!(matches!(
            parse_elf(b"//\n.version 7.0"),
            Err(ElfError::NotElf { .. })
        ));
        assert!(matches!(
            parse_elf(b"\x7fEL"),
            Err(ElfError::Truncated { .. })
        ));
        let mut bad_class = GFX90A.to_vec();
        bad_class[4] = 9;
        assert!(
            parse_elf(&bad_class)
                .unwrap_err()
                .to_string()
                .contains("unknown ELF class 9")
        );
    }

    #[test]
    fn every_prefix_of_real_hsaco_is_an_error() {
        for fixture in [GFX90A, GFX1100] {
            for len in 0..fixture.len() {
                let result = parse_elf(&fixture[..len]);
                assert!(result.is_err(), "prefix of {len} bytes parsed: {result:?}");
            }
        }
        let err = parse_elf(&GFX90A[..GFX90A.len() - 1]).unwrap_err();
        assert!(matches!(err, ElfError::Truncated { .. }), "{err}");
        assert!(err.to_string().starts_with("truncated ELF file: the section header table ends at byte 3976, but the file is only 3975 bytes long"), "{err}");
    }

    #[test]
    fn corrupt_string_table_offsets_are_errors() {
        // Point every symbol's st_name far outside the string table.
        let mut bytes = GFX90A.to_vec();
        let info = parse_elf(&bytes).unwrap();
        assert!(!info.symbols.is_empty());
        let header = elf::FileHeader64::<Endianness>::parse(GFX90A).unwrap();
        let endian = header.endian().unwrap();
        let sections = header.section_headers(endian, GFX90A).unwrap();
        for section in sections {
            let kind = section.sh_type(endian);
            if kind != elf::SHT_SYMTAB && kind != elf::SHT_DYNSYM {
                continue;
            }
            let start = section.sh_offset(endian) as usize;
            let count = section.sh_size(endian) as usize / 24;
            for sym in 1..count {
                let at = start + sym * 24;
                bytes[at..at + 4].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
            }
        }
        let err = parse_elf(&bytes).unwrap_err();
        assert!(err.to_string().contains("outside the"), "{err}");
    }

    #[test]
    fn many_symbol_tables_over_the_same_bytes_stay_fast() {
        // 65535 section headers, all but two `.symtab`s over one 4 MB table of symbols.
        const SHNUM: usize = 0xffff;
        const NSYMS: usize = 4 * 1024 * 1024 / 24;
        let shoff = 64;
        let symoff = shoff + SHNUM * 64;
        let stroff = symoff + NSYMS * 24;
        let mut bytes = GFX90A[..64].to_vec();
        bytes[32..40].copy_from_slice(&0u64.to_le_bytes()); // e_phoff
        bytes[40..48].copy_from_slice(&(shoff as u64).to_le_bytes()); // e_shoff
        bytes[56..58].copy_from_slice(&0u16.to_le_bytes()); // e_phnum
        bytes[60..62].copy_from_slice(&(SHNUM as u16).to_le_bytes()); // e_shnum
        bytes[62..64].copy_from_slice(&0u16.to_le_bytes()); // e_shstrndx
        bytes.resize(stroff + 4, 0);
        let strtab_index = (SHNUM - 1) as u32;
        for i in 1..SHNUM {
            let at = shoff + i * 64;
            let (kind, offset, size) = if i == SHNUM - 1 {
                (3u32, stroff, 4)
            } else {
                (2u32, symoff, NSYMS * 24)
            };
            bytes[at + 4..at + 8].copy_from_slice(&kind.to_le_bytes());
            bytes[at + 24..at + 32].copy_from_slice(&(offset as u64).to_le_bytes());
            bytes[at + 32..at + 40].copy_from_slice(&(size as u64).to_le_bytes());
            bytes[at + 40..at + 44].copy_from_slice(&strtab_index.to_le_bytes());
            bytes[at + 56..at + 64].copy_from_slice(&24u64.to_le_bytes());
        }
        for i in 0..NSYMS {
            let at = symoff + i * 24;
            bytes[at..at + 4].copy_from_slice(&1u32.to_le_bytes()); // st_name -> "f"
            bytes[at + 4] = 0x12; // STB_GLOBAL, STT_FUNC
            bytes[at + 6..at + 8].copy_from_slice(&1u16.to_le_bytes()); // st_shndx
        }
        bytes[stroff + 1] = b'f';
        let start = std::time::Instant::now();
        let info = parse_elf(&bytes).unwrap();
        assert_eq!(info.symbols, vec!["f"]);
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn large_inputs_are_fast() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut random: Vec<u8> = (0..100_000_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect();
        let start = std::time::Instant::now();
        assert!(matches!(parse_elf(&random), Err(ElfError::NotElf { .. })));
        // A valid AMD header in front of 100 MB of noise.
        random[..64].copy_from_slice(&GFX90A[..64]);
        let _ = parse_elf(&random);
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }

    /// `(value_kind, size, offset)` of each explicit argument of the only kernel.
    fn args_of(bytes: &[u8]) -> (String, Vec<(String, u64, u64)>) {
        let kernels = amdgpu_kernels(bytes).unwrap().expect("metadata note");
        assert_eq!(kernels.len(), 1);
        let kernel = &kernels[0];
        assert_eq!(kernel.symbol, format!("{}.kd", kernel.name));
        let args = kernel
            .args
            .iter()
            .map(|a| (a.value_kind.clone(), a.size, a.offset))
            .collect();
        (kernel.name.clone(), args)
    }

    #[test]
    fn amd_metadata_arguments() {
        let pointer = |offset| ("global_buffer".to_owned(), 8, offset);
        let by_value = |offset| ("by_value".to_owned(), 4, offset);
        for bytes in [GFX90A, GFX90A_XNACK_OFF, GFX940, GFX1100] {
            assert_eq!(
                args_of(bytes),
                (
                    "silu_f32".to_owned(),
                    vec![pointer(0), pointer(8), by_value(16)]
                )
            );
        }
        // Hidden arguments (offsets 24 and up) are the runtime's business: left out.
        assert_eq!(
            args_of(HIDDEN_ARGS),
            (
                "scale".to_owned(),
                vec![pointer(0), pointer(8), by_value(16), by_value(20)]
            )
        );
    }

    #[test]
    fn reference_kernels_metadata() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../kernels");
        for kernel in ["activation", "rmsnorm", "rotary", "softmax"] {
            for arch in ["gfx90a", "gfx942"] {
                let path = format!("{root}/{kernel}/build/rocm/{kernel}_{arch}.hsaco");
                let Ok(bytes) = std::fs::read(&path) else {
                    continue; // packaged crate without the repo's kernels
                };
                let kernels = amdgpu_kernels(&bytes).unwrap().expect("metadata note");
                assert!(!kernels.is_empty(), "{path}");
                let info = parse_elf(&bytes).unwrap();
                for k in &kernels {
                    assert!(info.has_kernel_descriptor(&k.name), "{path}: {}", k.name);
                    assert!(
                        k.args.len() >= 4 && k.args.iter().all(|a| matches!(a.size, 4 | 8)),
                        "{path}: {k:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn no_metadata_note_and_bad_metadata() {
        // A cubin (or any ELF without the note): nothing to read, not an error.
        assert_eq!(amdgpu_kernels(&cubin(7, 80)).unwrap(), None);
        // Break the MessagePack inside the note: the string `amdhsa.kernels` loses its
        // length byte, so the map's keys no longer line up.
        let at = GFX90A
            .windows(14)
            .position(|w| w == b"amdhsa.kernels")
            .expect("key present");
        let mut bytes = GFX90A.to_vec();
        bytes[at - 1] = 0xc1;
        let err = amdgpu_kernels(&bytes).unwrap_err();
        assert!(err.to_string().contains("AMDGPU metadata note"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_random_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
            let _ = parse_elf(&bytes);
        }

        #[test]
        fn never_panics_on_random_header_tail(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
            let mut bytes = GFX90A[..64].to_vec();
            bytes.extend_from_slice(&tail);
            let _ = parse_elf(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_hsaco(
            edits in proptest::collection::vec((0..3976usize, proptest::num::u8::ANY), 1..16)
        ) {
            let mut bytes = GFX90A.to_vec();
            for (at, value) in edits {
                if let Some(b) = bytes.get_mut(at) {
                    *b = value;
                }
            }
            let _ = parse_elf(&bytes);
            let _ = amdgpu_kernels(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_metadata(
            edits in proptest::collection::vec((0..600usize, proptest::num::u8::ANY), 1..8)
        ) {
            // The metadata note of the fixture starts a little before this key.
            let start = GFX90A
                .windows(14)
                .position(|w| w == b"amdhsa.kernels")
                .unwrap_or(0)
                .saturating_sub(16);
            let mut bytes = GFX90A.to_vec();
            for (at, value) in edits {
                if let Some(b) = bytes.get_mut(start + at) {
                    *b = value;
                }
            }
            let _ = amdgpu_kernels(&bytes);
        }
    }
}
