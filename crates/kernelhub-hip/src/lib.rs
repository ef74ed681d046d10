//! kernelhub's AMD backend: the HIP runtime (`libamdhip64`)
//! opened at run time, and what it says about this machine's AMD GPUs.
//!
//! The library is never linked: one kernelhub binary starts on NVIDIA, AMD
//! and GPU-less machines, and a missing runtime is an `Err`, never a panic.
//! Three layers, after cudarc:
//! - [`sys`]: the raw binding, one function pointer per C call, loaded once;
//! - [`result`]: [`Hip`], each call returning `Result<_, HipError>`;
//! - [`device`]: [`HipQueue`], the calls kernelhub's shared native device
//!   ([`kernelhub_runtime::native`]) runs on, and [`open`], which gives a
//!   [`HipDevice`] behind kernelhub's `Device` interface.
//!
//! [`probe()`] reports the runtime and driver versions and each GPU's name,
//! `gcnArchName` and memory; [`properties`] explains how the architecture is
//! read across the HIP 5 and HIP 6 `hipDeviceProp_t` layouts.
//!
//! ```no_run
//! match kernelhub_hip::probe() {
//!     Ok(platform) => {
//!         for device in &platform.devices {
//!             let _arch = device.arch();
//!         }
//!     }
//!     Err(error) => eprintln!("no HIP: {error}"),
//! }
//! ```

pub mod device;
pub mod error;
pub mod probe;
pub mod properties;
pub mod result;
pub mod sys;
pub mod version;

pub use device::{HipDevice, HipQueue, open, open_probed, with_stream};
pub use error::{HipError, LibraryError, codes};
pub use probe::{HipDeviceInfo, HipPlatform, ProbeError, probe, probe_with};
pub use properties::{DeviceProperties, PropertiesLayout};
pub use result::Hip;
pub use sys::KERNELHUB_HIP_LIBRARY;
pub use version::{HipVersion, VersionError};
