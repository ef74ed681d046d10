//! kernelhub's portable backend: a kernel's WGSL artifacts run through wgpu
//! (Vulkan, Metal, DX12, or Mesa's lavapipe on a CPU).
//!
//! - [`adapter`] finds the adapters and opens the preferred one, once per
//!   process: `WGPU_ADAPTER_NAME` if set, else a discrete GPU, then an
//!   integrated one, then anything.
//! - [`device`] is [`WgpuDevice`], the [`kernelhub_runtime::Device`] of one
//!   adapter: buffers (kernelhub's, or an engine's `wgpu::Buffer` wrapped),
//!   batching of launches into one submission, and the caches that make a
//!   launch cheap (compiled pipelines per artifact and entry point, a ring
//!   of uniform slots for the scalars).
//! - [`kernel`] turns a manifest's WGSL entries into ops: the binding
//!   convention of docs/formats.md (tensors at `@group(0) @binding(i)` in
//!   parameter order, the scalars as one uniform struct after them) and the
//!   grid from the manifest's expressions.

pub mod adapter;
pub mod device;
pub mod kernel;

pub use adapter::{AdapterReport, WgpuError, adapters, open};
pub use device::WgpuDevice;
