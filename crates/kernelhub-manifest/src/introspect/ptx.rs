//! placeholder until the real parser lands
#[derive(Debug)]
pub struct PtxInfo {
    pub version: (u32, u32),
    pub target: String,
    pub target_modifiers: Vec<String>,
    pub address_size: Option<u32>,
    pub entries: Vec<String>,
    pub version_line: usize,
    pub target_line: usize,
}
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct PtxError;
pub fn parse_ptx(_bytes: &[u8]) -> Result<PtxInfo, PtxError> {
    Err(PtxError)
}
pub fn min_driver_for_ptx(_v: (u32, u32)) -> Option<(u32, u32)> {
    None
}
