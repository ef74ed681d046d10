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
//! - [`convert`] encodes and decodes f16 and bf16 values.
//! - [`reference`] is a plain-Rust implementation of every reference op,
//!   the yardstick every backend is tested against.

pub mod args;
pub mod convert;
pub mod device;
pub mod reference;
pub mod select;

pub use device::{Arg, Buffer, Device, DeviceInfo, Kernel, Op, RuntimeError, Tensor};
