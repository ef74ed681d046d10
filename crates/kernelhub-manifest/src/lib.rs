//! The kernelhub file formats and the checks a kernel author runs in CI.
//!
//! - [`KernelManifest`] — `kernel.toml`, published in a kernel repo: ops,
//!   signatures, artifacts, hashes, launch geometry.
//! - [`ProjectManifest`] — `kernels.toml`, in a consuming project: which
//!   kernels it depends on.
//! - [`Lockfile`] — `kernels.lock`: the commit and manifest hash each
//!   dependency resolved to.
//! - [`trust`] — the `[trust]` policy of `kernels.toml` and the minisign
//!   signatures of `kernel.toml` it checks, offline.
//!
//! Reading never stops at the first problem: every function returns the value
//! it could build plus [`Diagnostic`]s with file, span and hint. [`check`]
//! adds what needs the files on disk: paths, sizes, hashes, and what PTX, ELF
//! and WGSL artifacts really contain. No I/O happens here beyond reading.
//!
//! ```
//! use std::path::Path;
//! use kernelhub_manifest::{KernelManifest, Strictness};
//!
//! let text = r#"
//! schema = 1
//! [kernel]
//! name = "demo"
//! version = "0.1.0"
//! license = "MIT"
//! [ops.scale]
//! dtypes = ["f32"]
//! params = [
//!   { name = "x", tensor = "T", shape = ["n"], written = true },
//!   { name = "n", scalar = "u32" },
//! ]
//! [[artifacts]]
//! backend = "wgpu"
//! format = "wgsl"
//! path = "scale.wgsl"
//! size = 10
//! sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
//! [[artifacts.entries]]
//! op = "scale"
//! dtype = "f32"
//! symbol = "main"
//! grid = ["ceil_div(n, 64)"]
//! "#;
//! let parsed = KernelManifest::parse(text, Path::new("kernel.toml"), Strictness::Check);
//! let manifest = parsed.value.unwrap();
//! assert!(parsed.diagnostics.is_empty());
//! assert_eq!(manifest.ops[0].name.get_ref(), "scale");
//! ```

pub mod check;
pub mod diagnostic;
pub mod expr;
pub mod hash;
pub mod introspect;
pub mod kernel;
pub mod lock;
pub mod project;
mod reader;
pub mod select;
pub mod target;
pub mod trust;
pub mod update;
pub mod validate;

pub use diagnostic::{Diagnostic, Severity};
pub use kernel::{KernelManifest, Parsed, Strictness};
pub use lock::Lockfile;
pub use project::ProjectManifest;
pub use reader::MAX_FILE_SIZE;
