//! Helpers shared by the fuzz targets and the seed generator.
//!
//! The interesting one is [`bundle::assemble`]: a bundle whose bytes are
//! random is refused at the first hash check, so the bundle target also has
//! a structure-aware mode that builds an archive whose pins match (the lock
//! pins the manifest it carries, the manifest pins the artifacts it
//! carries), and lets the fuzzer choose the entries, their order, and a few
//! deliberate faults.

pub mod bundle;

/// Lower-case hex, as manifests and locks spell digests.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
