//! Reads a cubin's parameter table: for each kernel, the offset and size of
//! every parameter, from its `.nv.info.<kernel>` section. The driver copies a
//! launch's arguments by this table, so `check` compares it with the op's
//! signature, as it does PTX `.param` lists and AMD code object metadata.
//!
//! NVIDIA does not document the format. What is read here is the record that
//! `cuobjdump -elf` prints as `EIATTR_KPARAM_INFO`, laid out as ptxas 13.0
//! writes it, checked against a PTX with a parameter of every size kernelhub
//! passes and some it does not (`tests/fixtures/params.ptx`, its cubins for
//! sm_80 and sm_90 beside it). Other records are skipped by their declared
//! length; a table that does not parse is reported as unreadable, never
//! guessed at.

use object::{Object, ObjectSection};

use super::elf::ElfError;

/// `EIFMT_NVAL`, `EIFMT_BVAL`, `EIFMT_HVAL`: a record whose value (if any) is
/// in its 4-byte header.
const FORMATS_WITHOUT_PAYLOAD: [u8; 3] = [1, 2, 3];
/// `EIFMT_SVAL`: a record with a payload, its length in the header.
const FORMAT_SIZED: u8 = 4;
/// `EIATTR_KPARAM_INFO`: one kernel parameter.
const KPARAM_INFO: u8 = 0x17;
/// `EIATTR_CBANK_PARAM_SIZE`: the parameter block's size, in the header.
const CBANK_PARAM_SIZE: u8 = 0x19;
/// `EIATTR_KPARAM_INFO_V2`: a newer parameter record, reportedly written
/// for newer architectures, whose layout is not known here.
const KPARAM_INFO_V2: u8 = 0x45;

/// One kernel parameter as a cubin's table describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CubinParam {
    /// Byte offset in the parameter block.
    pub offset: u16,
    /// Bytes the driver copies for it.
    pub size: u32,
}

/// A cubin whose sections have been read, to look up kernels' tables in.
pub struct Cubin<'data> {
    file: object::File<'data>,
}

impl<'data> Cubin<'data> {
    /// Reads the section table of `bytes`, a cubin.
    pub fn parse(bytes: &'data [u8]) -> Result<Self, ElfError> {
        let file = object::File::parse(bytes)
            .map_err(|e| ElfError::Malformed(format!("cannot read the cubin's sections: {e}")))?;
        Ok(Cubin { file })
    }

    /// The parameters of kernel `kernel`, in order. `Ok(None)` when the
    /// cubin has no `.nv.info.<kernel>` section; a kernel without
    /// parameters has the section and no parameter records. The records
    /// must account for the parameter block's size where the section gives
    /// it, so a table written in a form not read here is an error rather
    /// than a kernel that seems to take nothing.
    pub fn kernel_params(&self, kernel: &str) -> Result<Option<Vec<CubinParam>>, ElfError> {
        let name = format!(".nv.info.{kernel}");
        let Some(section) = self.file.section_by_name(&name) else {
            return Ok(None);
        };
        let data = section
            .data()
            .map_err(|e| ElfError::Malformed(format!("cannot read section `{name}`: {e}")))?;
        read_table(data)
            .map(Some)
            .map_err(|what| ElfError::Malformed(format!("section `{name}`: {what}")))
    }
}

/// The parameters a `.nv.info.<kernel>` section's records describe, in
/// order; the error says what in them could not be read.
fn read_table(data: &[u8]) -> Result<Vec<CubinParam>, String> {
    let mut params: Vec<(u16, CubinParam)> = Vec::new();
    let mut block_size: Option<u16> = None;
    let mut at = 0;
    while at < data.len() {
        let start = at;
        let header = data
            .get(at..at + 4)
            .ok_or_else(|| format!("a record header cut short at byte {start}"))?;
        let (format, attribute) = (header[0], header[1]);
        let value = u16::from_le_bytes([header[2], header[3]]);
        at += 4;
        if FORMATS_WITHOUT_PAYLOAD.contains(&format) {
            if attribute == CBANK_PARAM_SIZE {
                block_size = Some(value);
            }
            continue;
        }
        if format != FORMAT_SIZED {
            return Err(format!(
                "record format {format:#x} at byte {start} is not one kernelhub knows"
            ));
        }
        let payload = data
            .get(at..at + usize::from(value))
            .ok_or_else(|| format!("a {value}-byte record at byte {start} runs past its end"))?;
        at += usize::from(value);
        if attribute == KPARAM_INFO_V2 {
            return Err(format!(
                "a parameter record of a newer kind ({KPARAM_INFO_V2:#x}) at byte {start}, which kernelhub does not read"
            ));
        }
        if attribute != KPARAM_INFO {
            continue;
        }
        // u32 index, u16 ordinal, u16 offset, u32 flags with the size in
        // bits 18 to 31.
        if payload.len() < 12 {
            return Err(format!(
                "a parameter record of {} bytes (12 expected)",
                payload.len()
            ));
        }
        let ordinal = u16::from_le_bytes([payload[4], payload[5]]);
        let offset = u16::from_le_bytes([payload[6], payload[7]]);
        let flags = u32::from_le_bytes([payload[8], payload[9], payload[10], payload[11]]);
        params.push((
            ordinal,
            CubinParam {
                offset,
                size: flags >> 18,
            },
        ));
    }
    params.sort_by_key(|(ordinal, _)| *ordinal);
    for (expected, (ordinal, _)) in params.iter().enumerate() {
        if usize::from(*ordinal) != expected {
            return Err(format!(
                "parameter ordinals {:?} are not 0 to {}",
                params.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
                params.len() - 1
            ));
        }
    }
    let end = params
        .iter()
        .map(|(_, p)| u32::from(p.offset) + p.size)
        .max()
        .unwrap_or(0);
    if let Some(size) = block_size.map(u32::from)
        && (end > size || (params.is_empty() && size > 0))
    {
        return Err(format!(
            "its parameter records end at byte {end} of a {size}-byte parameter block"
        ));
    }
    Ok(params.into_iter().map(|(_, p)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SM80: &[u8] = include_bytes!("../../tests/fixtures/params_sm80.cubin");
    const SM90: &[u8] = include_bytes!("../../tests/fixtures/params_sm90.cubin");

    fn param(offset: u16, size: u32) -> CubinParam {
        CubinParam { offset, size }
    }

    #[test]
    fn every_parameter_size_is_read_as_the_ptx_declares_it() {
        // .u64, .f32, .u16, .align 8 .b8 [24], .u32, .f64
        let expected = vec![
            param(0, 8),
            param(8, 4),
            param(12, 2),
            param(16, 24),
            param(40, 4),
            param(48, 8),
        ];
        for cubin in [SM80, SM90] {
            assert_eq!(
                Cubin::parse(cubin).unwrap().kernel_params("mixed").unwrap(),
                Some(expected.clone())
            );
            assert_eq!(
                Cubin::parse(cubin).unwrap().kernel_params("none").unwrap(),
                Some(Vec::new())
            );
            assert_eq!(
                Cubin::parse(cubin)
                    .unwrap()
                    .kernel_params("absent")
                    .unwrap(),
                None
            );
        }
    }

    /// The byte range of section `name`'s contents in `cubin`.
    fn section_range(cubin: &[u8], name: &str) -> std::ops::Range<usize> {
        let file = object::File::parse(cubin).unwrap();
        let (offset, size) = file.section_by_name(name).unwrap().file_range().unwrap();
        offset as usize..(offset + size) as usize
    }

    #[test]
    fn a_damaged_table_is_an_error_not_a_guess() {
        let range = section_range(SM90, ".nv.info.mixed");
        let data = &SM90[range.clone()];
        let first_param = (0..data.len())
            .step_by(4)
            .find(|i| data[*i] == FORMAT_SIZED && data[*i + 1] == KPARAM_INFO)
            .unwrap();
        let at = range.start + first_param;

        let mut unknown_format = SM90.to_vec();
        unknown_format[at] = 9;
        let error = Cubin::parse(&unknown_format)
            .unwrap()
            .kernel_params("mixed")
            .unwrap_err()
            .to_string();
        assert!(error.contains("record format 0x9"), "{error}");

        let mut too_long = SM90.to_vec();
        too_long[at + 2] = 0xff;
        let error = Cubin::parse(&too_long)
            .unwrap()
            .kernel_params("mixed")
            .unwrap_err()
            .to_string();
        assert!(error.contains("runs past its end"), "{error}");

        let mut short = SM90.to_vec();
        short[at + 2] = 8;
        let error = Cubin::parse(&short)
            .unwrap()
            .kernel_params("mixed")
            .unwrap_err()
            .to_string();
        assert!(error.contains("of 8 bytes (12 expected)"), "{error}");

        // The first record listed is the last parameter: make it a second 0.
        let mut duplicate = SM90.to_vec();
        duplicate[at + 8] = 0;
        let error = Cubin::parse(&duplicate)
            .unwrap()
            .kernel_params("mixed")
            .unwrap_err()
            .to_string();
        assert!(error.contains("are not 0 to 5"), "{error}");

        // Records of a kind not read here: the block's 56 bytes unaccounted
        // for, or the newer record named.
        let mut renamed = SM90.to_vec();
        for i in (0..data.len()).step_by(4) {
            if data[i] == FORMAT_SIZED && data[i + 1] == KPARAM_INFO {
                renamed[range.start + i + 1] = 0x7f;
            }
        }
        let error = Cubin::parse(&renamed)
            .unwrap()
            .kernel_params("mixed")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("end at byte 0 of a 56-byte parameter block"),
            "{error}"
        );
        renamed[at + 1] = KPARAM_INFO_V2;
        let error = Cubin::parse(&renamed)
            .unwrap()
            .kernel_params("mixed")
            .unwrap_err()
            .to_string();
        assert!(error.contains("of a newer kind (0x45)"), "{error}");

        // The last parameter (8 bytes at 48) claimed to be 16 bytes long.
        let mut long = SM90.to_vec();
        long[at + 14] = 0x41; // flags 0x0041f000: 16 bytes
        let error = Cubin::parse(&long)
            .unwrap()
            .kernel_params("mixed")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("end at byte 64 of a 56-byte parameter block"),
            "{error}"
        );
    }
}
