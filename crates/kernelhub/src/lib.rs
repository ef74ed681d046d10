//! Load prebuilt, verified GPU kernels and launch them the same way on
//! every backend.
//!
//! ```no_run
//! use kernelhub::{Arg, Dtype, Hub, KernelSource};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hub = Hub::new()?; // probes the backends; KERNELHUB_BACKEND forces one
//! let kernel = hub.load(&KernelSource::Embedded("activation".into()))?;
//! let op = kernel.op("silu_and_mul", Dtype::F32)?;
//! let device = kernel.device();
//! let input = device.upload(&[0u8; 2 * 4 * 8])?; // tokens = 2, d = 4: input is [2, 8]
//! let out = device.alloc(2 * 4 * 4)?;
//! op.launch(&[
//!     Arg::tensor(&out, Dtype::F32),
//!     Arg::tensor(&input, Dtype::F32),
//!     2u32.into(),
//!     4u32.into(),
//! ])?;
//! let bytes = device.download(&out, 0, out.len())?;
//! # Ok(()) }
//! ```
//!
//! - [`Hub`] holds this process's devices and loads kernels onto the one
//!   that runs them best ([`hub`]).
//! - [`KernelSource`] says where a kernel comes from: embedded reference
//!   kernels ([`embedded`]), a kernel repo on disk, or the Hub cache after
//!   `kernelhub fetch` ([`source`]).
//! - [`exercise`] runs a reference op against the CPU reference and
//!   times it (`kernelhub run`, the GPU check, the benches).
//! - [`host`] loads host code (`shared-library` artifacts) where the
//!   project allows it, from a sealed in-memory copy.
//! - The interface itself ([`Device`], [`Kernel`], [`Op`], [`Buffer`],
//!   [`Arg`]) is `kernelhub-runtime`'s, re-exported.

pub mod embedded;
pub mod exercise;
pub mod host;
pub mod hub;
pub mod source;

use std::path::PathBuf;

pub use hub::{Hub, LoadedKernel};
pub use kernelhub_manifest::kernel::{Backend, Dtype};
pub use kernelhub_runtime::args::Scalar;
pub use kernelhub_runtime::{Arg, Buffer, Device, DeviceInfo, Kernel, Op, RuntimeError, Tensor};
pub use kernelhub_wgpu::WgpuDevice;
pub use source::KernelSource;

use kernelhub_hub::env::KERNELHUB_BACKEND;

/// Why a kernel could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `KERNELHUB_BACKEND` is set to something else than a backend.
    #[error(
        "`{KERNELHUB_BACKEND}={0}` is not a backend; use `wgpu`, `cuda` or `rocm`, or unset it"
    )]
    BadBackend(String),
    /// No backend opened a device.
    #[error("no device to run kernels on:{0}")]
    NoDevice(String),
    /// A file could not be read.
    #[error("cannot read `{file}`")]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A manifest that does not parse.
    #[error(
        "`{file}` is not a valid kernel manifest: {message}\n  hint: run `kernelhub check` on it for details"
    )]
    Manifest {
        /// The file.
        file: PathBuf,
        /// The errors.
        message: String,
    },
    /// An artifact whose bytes differ from the manifest's pin.
    #[error(
        "`{path}` of {kernel} does not match its manifest; it was not loaded\n  Expected: {expected}\n  Computed: {computed} ({size} bytes)"
    )]
    Mismatch {
        /// The kernel.
        kernel: String,
        /// The artifact.
        path: String,
        /// The pinned hash and size.
        expected: String,
        /// The hash of the bytes read.
        computed: String,
        /// Their length.
        size: usize,
    },
    /// No embedded kernel has this name.
    #[error("no embedded kernel is called `{name}`; the embedded kernels are {known}")]
    NoEmbedded {
        /// Asked for.
        name: String,
        /// What exists.
        known: String,
    },
    /// Nothing on any device runs any op of the kernel.
    #[error("nothing in {kernel} runs on this machine:{reasons}")]
    NothingRuns {
        /// The kernel.
        kernel: String,
        /// Per device, per artifact, why not.
        reasons: String,
    },
    /// The Hub cache refused (missing or corrupt file).
    #[error(transparent)]
    Cache(Box<kernelhub_hub::Error>),
    /// The backend refused.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The kernel has no `shared-library` artifact at this path.
    #[error("{kernel} has no `shared-library` artifact `{path}`")]
    NoHostLibrary {
        /// The kernel.
        kernel: String,
        /// The path asked for.
        path: String,
    },
    /// Host code the project did not allow.
    #[error(
        "`{path}` of {kernel} is host code (a shared library that runs with this program's privileges); it was not loaded\n  hint: if you trust it, add `allow_host_code = true` to this dependency in `kernels.toml`"
    )]
    HostCodeNotAllowed {
        /// The kernel.
        kernel: String,
        /// The artifact.
        path: String,
    },
    /// The host library did not load.
    #[error(transparent)]
    Host(#[from] kernelhub_host::HostError),
}
