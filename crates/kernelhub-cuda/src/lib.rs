//! kernelhub's NVIDIA backend: PTX, cubin and fatbin artifacts loaded from
//! their verified bytes and launched through the CUDA driver API.
//!
//! The driver (`libcuda.so.1`) is opened at run time, never linked, so one
//! binary runs on NVIDIA, AMD and GPU-less machines: without the driver,
//! [`probe()`] and [`open`] return an error and kernelhub falls
//! back to another backend.
//!
//! This is a thin binding of its own rather than `cudarc`: kernelhub needs
//! about twenty driver calls, every one of which must return an error
//! rather than panic when the library or a symbol is missing (cudarc's
//! dynamic loader panics there unless probed first, and a probe cannot
//! cover a missing symbol of an old driver), and module loading needs the
//! JIT log options, which belong in the error the user reads.
//!
//! - [`sys`]: the driver's types, constants and function table.
//! - [`result`]: driver statuses as [`CudaError`]s with the driver's words.
//! - [`mod@probe`]: the driver version and each GPU's name, architecture, memory.
//! - [`device`]: [`CudaQueue`], the driver calls kernelhub's shared native
//!   device ([`kernelhub_runtime::native`]) runs on: primary context,
//!   stream, memory, modules with JIT logs, `cuLaunchKernel`.
//!
//! Engines that already hold CUDA memory and streams pass them in:
//! `CudaDevice::wrap` takes a device pointer, [`with_stream`] a stream.
//! Both are `unsafe`: kernelhub cannot check where a raw pointer points.

pub mod device;
pub mod probe;
pub mod result;
pub mod sys;

pub use device::{CudaDevice, CudaQueue, open, open_probed, with_stream};
pub use probe::{CudaDeviceInfo, CudaPlatform, KERNELHUB_CUDA_LIBRARY, ProbeError, probe};
pub use result::CudaError;
