//! placeholder until the real parser lands
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuVendor {
    Nvidia,
    Amd,
}
#[derive(Debug)]
pub struct ElfInfo {
    pub vendor: GpuVendor,
    pub machine: u16,
    pub arch: Option<String>,
    pub features: Vec<String>,
    pub raw_flags: u32,
    pub symbols: Vec<String>,
}
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct ElfError;
pub fn parse_elf(_bytes: &[u8]) -> Result<ElfInfo, ElfError> {
    Err(ElfError)
}
