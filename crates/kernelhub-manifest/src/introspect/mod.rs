//! Reading what artifact files really contain, so `check` can compare it with
//! what the manifest claims: PTX text, ELF code objects (cubin, hsaco) and a
//! cubin's parameter table, the entries of a fatbin, WGSL.

pub mod cubin;
pub mod elf;
pub mod fatbin;
mod msgpack;
pub mod ptx;
pub mod wgsl;
