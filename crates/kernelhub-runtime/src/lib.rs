//! kernelhub's runtime interface: what every backend implements and every
//! engine calls.
//!
//! - [`device`] is the common interface: a [`Device`] loads a kernel, a
//!   [`Kernel`] hands out ops, an [`Op`] launches on [`Buffer`]s. The same
//!   calls on wgpu, CUDA and HIP.
//! - [`args`] checks a call against an op's signature before anything is
//!   launched: kinds, dtypes, scalar types, buffer sizes against the shape
//!   expressions, and written tensors aliasing others.
//! - [`select`] chooses the artifact for each (op, dtype) on a device, with a
//!   reason for every candidate it rejects.
//! - [`launch`] is the part of a launch every backend shares: finding the
//!   op's chosen entry, evaluating its geometry, laying out native kernel
//!   parameters.
//! - [`native`] is the CUDA and HIP backends' common [`Device`]: a backend
//!   supplies its driver calls ([`native::NativeQueue`]), the rest is shared.
//! - [`convert`] encodes and decodes f16 and bf16 values.
//! - [`reference`] is a plain-Rust implementation of every reference op,
//!   the yardstick every backend is tested against.

pub mod args;
pub mod convert;
pub mod device;
pub mod launch;
pub mod native;
pub mod reference;
pub mod select;

pub use device::{Arg, Buffer, Device, DeviceInfo, Kernel, Op, RuntimeError, Tensor};
