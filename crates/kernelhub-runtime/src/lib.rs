//! The parts of kernelhub's runtime that no backend owns.
//!
//! - [`args`] checks a call against an op's signature before anything is
//!   launched: kinds, dtypes, scalar types, buffer sizes against the shape
//!   expressions, and written tensors aliasing others. A wrong call is an
//!   `Err` naming the op and the parameter.
//! - [`reference`] is a plain-Rust implementation of every reference op,
//!   the yardstick every backend is tested against.
//!
//! The `Kernel`/op trait, variant selection against a platform probe and
//! the backends (wgpu, CUDA, HIP) build on these (issues 4 and 5).

pub mod args;
pub mod reference;
