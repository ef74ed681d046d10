//! Lists what a fatbin holds: its cubins and PTX, each with the architecture
//! it was built for, so `check` can look at every one of them as it does a
//! lone cubin or PTX file. The driver picks one entry per device, so each
//! must define the manifest's kernels with the op's signature.
//!
//! NVIDIA does not document the container. What is read here is the layout
//! `fatbinary` 13.0 writes (checked on fatbins it made from the fixtures in
//! `tests/fixtures/`): a 16-byte header (magic `0xBA55ED50`, version 1, its
//! own size, the size of what follows), then entries, each a header of at
//! least 64 bytes followed by its payload. Several containers may follow one
//! another. A compressed payload (zstd since CUDA 12.8, an older scheme
//! before) is listed but not inflated: kernelhub reads only plain entries.

use std::ops::Range;

use crate::target::CudaArch;

/// `FATBIN_MAGIC`, the first 4 bytes of a container.
const MAGIC: u32 = 0xBA55_ED50;
/// The size of a container's header.
const CONTAINER_HEADER: usize = 16;
/// The size of the part of an entry's header read here; newer entries are longer.
const ENTRY_HEADER: usize = 64;
/// Entry kinds.
const KIND_PTX: u16 = 1;
const KIND_ELF: u16 = 2;
/// Entry flags: a compressed payload (the older scheme, then zstd).
const FLAG_COMPRESSED: u64 = 0x2000 | 0x8000;
/// Entry flags: code for the arch-specific target (`sm_90a`), or for the
/// family (`sm_100f`), not plain `sm_90` / `sm_100`. Seen on fatbinary 13.0
/// output; a cubin's own ELF header cannot always tell `sm_90a` from `sm_90`.
const FLAG_ARCH_SPECIFIC: u64 = 0x10_0000;
const FLAG_FAMILY: u64 = 0x20_0000;
/// The architecture numbers an entry may carry (`sm_10` to `sm_999`).
const ARCH_NUMBERS: std::ops::RangeInclusive<u32> = 10..=999;

/// Why a fatbin's container could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FatbinError {
    /// The bytes at `offset` are not a fatbin container.
    #[error(
        "no fatbin header at byte {offset} (expected the magic bytes 50 ed 55 ba, found {found})"
    )]
    NotFatbin {
        /// Where a container was expected.
        offset: usize,
        /// The bytes found there, in hex.
        found: String,
    },
    /// A header or payload reaches past the end of the file.
    #[error(
        "it is cut off: the {what} at byte {offset} ends at byte {needed}, but the file is only {len} bytes long"
    )]
    Truncated {
        /// The part that is cut off.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// Where it would end.
        needed: u64,
        /// The file's length.
        len: usize,
    },
    /// A field holds a value no fatbin has.
    #[error("{0}")]
    Malformed(String),
}

/// What an entry's payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatbinKind {
    /// PTX text, for the driver to JIT-compile.
    Ptx,
    /// A cubin (ELF machine code).
    Elf,
    /// A kind kernelhub does not know, by its number.
    Other(u16),
}

/// One entry of a fatbin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatbinEntry {
    /// Its kind.
    pub kind: FatbinKind,
    /// The architecture it was built for, as the fatbin records it: `sm_90`,
    /// `sm_90a` for arch-specific code, `sm_100f` for a family.
    pub arch: CudaArch,
    /// Whether its payload is compressed (and so not read by kernelhub).
    pub compressed: bool,
    /// Where its payload lies in the fatbin.
    pub payload: Range<usize>,
}

/// Lists the entries of every container in `bytes`, in order.
///
/// Checks the magic and version of each container and that every header and
/// payload lies inside it; time is linear in the number of entries, each of
/// which takes at least 64 bytes.
pub fn parse_fatbin(bytes: &[u8]) -> Result<Vec<FatbinEntry>, FatbinError> {
    let mut entries = Vec::new();
    let mut at = 0;
    loop {
        let container_end = read_container_header(bytes, at)?;
        let mut entry_at = at + CONTAINER_HEADER;
        while entry_at < container_end {
            let (entry, next) = read_entry(bytes, entry_at, container_end)?;
            entries.push(entry);
            entry_at = next;
        }
        at = container_end;
        // Containers may be padded to 8 bytes; anything else after one is another.
        if bytes[at..].iter().all(|&b| b == 0) {
            return Ok(entries);
        }
    }
}

/// Checks the container header at `at`; returns where the container ends.
fn read_container_header(bytes: &[u8], at: usize) -> Result<usize, FatbinError> {
    let header = slice(bytes, at, CONTAINER_HEADER, "container header", bytes.len())?;
    let magic = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    if magic != MAGIC {
        let found = header[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>();
        return Err(FatbinError::NotFatbin {
            offset: at,
            found: found.join(" "),
        });
    }
    let version = u16::from_le_bytes([header[4], header[5]]);
    let header_size = u16::from_le_bytes([header[6], header[7]]);
    if version != 1 || usize::from(header_size) != CONTAINER_HEADER {
        return Err(FatbinError::Malformed(format!(
            "the container at byte {at} is version {version} with a {header_size}-byte header; kernelhub reads version 1, 16 bytes"
        )));
    }
    let size = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    let whole = size.saturating_add(CONTAINER_HEADER as u64);
    end_of(bytes, at, whole, "container", bytes.len())
}

/// Reads the entry at `at` of a container ending at `end`; returns it and
/// where the next one starts.
fn read_entry(bytes: &[u8], at: usize, end: usize) -> Result<(FatbinEntry, usize), FatbinError> {
    let header = slice(bytes, at, ENTRY_HEADER, "entry header", end)?;
    let field_u32 =
        |offset: usize| u32::from_le_bytes(header[offset..offset + 4].try_into().expect("4 bytes"));
    let field_u64 =
        |offset: usize| u64::from_le_bytes(header[offset..offset + 8].try_into().expect("8 bytes"));
    let kind = match u16::from_le_bytes([header[0], header[1]]) {
        KIND_PTX => FatbinKind::Ptx,
        KIND_ELF => FatbinKind::Elf,
        other => FatbinKind::Other(other),
    };
    let header_size = field_u32(4) as usize;
    if header_size < ENTRY_HEADER {
        return Err(FatbinError::Malformed(format!(
            "the entry at byte {at} has a {header_size}-byte header, shorter than the {ENTRY_HEADER} bytes every entry has"
        )));
    }
    let payload_start = end_of(bytes, at, header_size as u64, "entry header", end)?;
    let payload_end = end_of(bytes, payload_start, field_u64(8), "entry payload", end)?;
    let flags = field_u64(40);
    let arch_number = field_u32(28);
    if !matches!(kind, FatbinKind::Other(_)) && !ARCH_NUMBERS.contains(&arch_number) {
        return Err(FatbinError::Malformed(format!(
            "the entry at byte {at} is for sm_{arch_number}, which is not an architecture"
        )));
    }
    let suffix = match (flags & FLAG_ARCH_SPECIFIC != 0, flags & FLAG_FAMILY != 0) {
        (true, _) => Some('a'),
        (false, true) => Some('f'),
        (false, false) => None,
    };
    let entry = FatbinEntry {
        kind,
        arch: CudaArch {
            major: arch_number / 10,
            minor: arch_number % 10,
            suffix,
        },
        compressed: flags & FLAG_COMPRESSED != 0,
        payload: payload_start..payload_end,
    };
    Ok((entry, payload_end))
}

/// `len` bytes at `at`, which must end by `end`.
fn slice<'a>(
    bytes: &'a [u8],
    at: usize,
    len: usize,
    what: &'static str,
    end: usize,
) -> Result<&'a [u8], FatbinError> {
    let stop = end_of(bytes, at, len as u64, what, end)?;
    Ok(&bytes[at..stop])
}

/// Where `len` bytes from `at` end, if that is by `end`: the end of the
/// file, or of the container the bytes belong to.
fn end_of(
    bytes: &[u8],
    at: usize,
    len: u64,
    what: &'static str,
    end: usize,
) -> Result<usize, FatbinError> {
    let needed = (at as u64).saturating_add(len);
    if needed > bytes.len() as u64 {
        return Err(FatbinError::Truncated {
            what,
            offset: at,
            needed,
            len: bytes.len(),
        });
    }
    if needed > end as u64 {
        return Err(FatbinError::Malformed(format!(
            "the {what} at byte {at} ends at byte {needed}, past the end of its container at byte {end}"
        )));
    }
    Ok(needed as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `scale_sm80.cubin` and `scale.ptx` in one fatbin, stored plain, and
    /// the same with `fatbinary`'s default compression (the PTX compressed).
    const PLAIN: &[u8] = include_bytes!("../../tests/fixtures/scale.fatbin");
    const COMPRESSED: &[u8] = include_bytes!("../../tests/fixtures/scale_compressed.fatbin");
    const CUBIN: &[u8] = include_bytes!("../../tests/fixtures/scale_sm80.cubin");
    const PTX: &[u8] = include_bytes!("../../tests/fixtures/scale.ptx");

    #[test]
    fn lists_a_cubin_and_a_ptx_with_their_payloads() {
        let entries = parse_fatbin(PLAIN).unwrap();
        assert_eq!(entries.len(), 2, "{entries:?}");
        let (cubin, ptx) = (&entries[0], &entries[1]);
        assert_eq!(
            (
                cubin.kind,
                cubin.arch.to_string().as_str(),
                cubin.compressed
            ),
            (FatbinKind::Elf, "sm_80", false)
        );
        // The payload is the cubin, padded to 8 bytes.
        let payload = &PLAIN[cubin.payload.clone()];
        assert_eq!(&payload[..CUBIN.len()], CUBIN);
        assert!(payload[CUBIN.len()..].iter().all(|&b| b == 0));
        assert_eq!(
            (ptx.kind, ptx.arch.to_string().as_str(), ptx.compressed),
            (FatbinKind::Ptx, "sm_80", false)
        );
        // fatbinary keeps the PTX's code (it drops comments): its kernel is there.
        let text = String::from_utf8_lossy(&PLAIN[ptx.payload.clone()]);
        assert!(text.contains(".entry scale("), "{text}");
        assert!(std::str::from_utf8(PTX).unwrap().contains(".entry scale("));
        assert_eq!(ptx.payload.end, PLAIN.len());
    }

    #[test]
    fn a_compressed_entry_is_marked() {
        let entries = parse_fatbin(COMPRESSED).unwrap();
        let flags: Vec<(FatbinKind, bool)> =
            entries.iter().map(|e| (e.kind, e.compressed)).collect();
        assert_eq!(flags, [(FatbinKind::Elf, false), (FatbinKind::Ptx, true)]);
        // zstd's magic number starts the compressed payload.
        assert_eq!(
            &COMPRESSED[entries[1].payload.start..][..4],
            b"\x28\xb5\x2f\xfd"
        );
    }

    #[test]
    fn containers_one_after_another_are_all_read() {
        let mut two = PLAIN.to_vec();
        two.extend_from_slice(COMPRESSED);
        two.extend_from_slice(&[0; 8]); // padding after the last container is fine
        let entries = parse_fatbin(&two).unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[2].payload.start, PLAIN.len() + 16 + 64);
    }

    #[test]
    fn arch_specific_and_family_flags_name_the_arch() {
        let mut flagged = PLAIN.to_vec();
        let ptx_header = parse_fatbin(PLAIN).unwrap()[0].payload.end;
        for (flag, arch) in [
            (0x10_0000u64, "sm_80a"),
            (0x20_0000, "sm_80f"),
            (0, "sm_80"),
        ] {
            let flags = u64::from_le_bytes(PLAIN[16 + 40..16 + 48].try_into().unwrap()) | flag;
            flagged[16 + 40..16 + 48].copy_from_slice(&flags.to_le_bytes());
            let entries = parse_fatbin(&flagged).unwrap();
            assert_eq!(
                (
                    entries[0].arch.to_string().as_str(),
                    entries[0].arch.number()
                ),
                (arch, 80)
            );
            assert_eq!(
                entries[1].arch.to_string(),
                "sm_80",
                "the PTX at {ptx_header} keeps its own flags"
            );
        }
    }

    #[test]
    fn an_entry_for_no_architecture_is_malformed() {
        let mut bad = PLAIN.to_vec();
        bad[16 + 28..16 + 32].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            parse_fatbin(&bad).unwrap_err().to_string(),
            "the entry at byte 16 is for sm_0, which is not an architecture"
        );
    }

    #[test]
    fn a_cut_off_fatbin_is_truncated() {
        for len in [0, 10, 16 + 30, PLAIN.len() - 1] {
            let error = parse_fatbin(&PLAIN[..len]).unwrap_err();
            assert!(
                matches!(error, FatbinError::Truncated { .. }),
                "{len}: {error}"
            );
        }
        let error = parse_fatbin(&PLAIN[..PLAIN.len() - 1]).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "it is cut off: the container at byte 0 ends at byte {}, but the file is only {} bytes long",
                PLAIN.len(),
                PLAIN.len() - 1
            )
        );
    }

    #[test]
    fn other_files_are_not_fatbins() {
        let error = parse_fatbin(CUBIN).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no fatbin header at byte 0 (expected the magic bytes 50 ed 55 ba, found 7f 45 4c 46)"
        );
        // Junk after a container is not taken for another one.
        let mut junk = PLAIN.to_vec();
        junk.extend_from_slice(b"trailing text, not a container");
        assert!(
            matches!(parse_fatbin(&junk).unwrap_err(), FatbinError::NotFatbin { offset, .. } if offset == PLAIN.len())
        );
    }

    #[test]
    fn an_entry_past_its_container_is_malformed() {
        // The last entry of the first of two containers grown by 8 bytes:
        // it now ends inside the second container.
        let mut bad = PLAIN.to_vec();
        bad.extend_from_slice(PLAIN);
        let entries = parse_fatbin(PLAIN).unwrap();
        let (ptx, header) = (&entries[1], entries[0].payload.end); // the PTX's header follows the cubin
        let size = u64::from_le_bytes(bad[header + 8..header + 16].try_into().unwrap()) + 8;
        bad[header + 8..header + 16].copy_from_slice(&size.to_le_bytes());
        let error = parse_fatbin(&bad).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "the entry payload at byte {} ends at byte {}, past the end of its container at byte {}",
                ptx.payload.start,
                PLAIN.len() + 8,
                PLAIN.len()
            )
        );
        // An entry header shorter than 64 bytes.
        let mut short = PLAIN.to_vec();
        short[20..24].copy_from_slice(&16u32.to_le_bytes());
        assert!(
            parse_fatbin(&short)
                .unwrap_err()
                .to_string()
                .contains("16-byte header")
        );
    }
}
