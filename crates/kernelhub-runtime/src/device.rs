//! The one interface every backend implements, and the types an engine
//! passes through it.
//!
//! An engine holds a [`Device`] (a wgpu adapter, a CUDA or HIP device),
//! loads a kernel onto it ([`Device::load`] gives an `Arc<dyn Kernel>`),
//! asks the kernel for an op at a dtype ([`Kernel::op`]) and launches that op
//! on [`Buffer`]s with [`Op::launch`]. The calls are the same on every
//! backend; only the buffers' contents live in different places. Every
//! launch is checked against the op's signature first
//! ([`crate::args::check`]): a wrong call is an `Err` naming the op and the
//! parameter, never undefined behaviour.
//!
//! Buffers are either kernelhub's own ([`Device::upload`], [`Device::alloc`])
//! or an engine's, wrapped by the backend (for wgpu, `WgpuDevice::wrap` takes
//! a `wgpu::Buffer`). Either way a [`Buffer`] records which device it belongs
//! to, so a buffer of another device is refused instead of misused.
//!
//! Launches are asynchronous: [`Op::launch`] enqueues the work and returns.
//! [`Device::download`] and [`Device::synchronize`] wait for it. Between
//! [`Device::begin_batch`] and [`Device::flush`], backends that submit work
//! in batches (wgpu) record every launch into one submission.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kernelhub_manifest::hash::Sha256Digest;
use kernelhub_manifest::kernel::{Backend, DriverVersion, Dtype, KernelManifest, WgpuFeature};
use kernelhub_manifest::select::Platform;

use crate::args::{ArgError, Scalar};
use crate::select::OpChoice;

/// Why a device, kernel or op could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The call does not fit the op's signature.
    #[error(transparent)]
    Args(#[from] ArgError),
    /// The kernel has no such op, or nothing on this device runs it at this dtype.
    #[error("{0}")]
    NoOp(String),
    /// A buffer that belongs to another device, or is not this backend's kind.
    #[error(
        "op `{op}`, parameter `{param}`: the buffer belongs to another device; pass buffers created by (or wrapped for) the device the kernel was loaded on"
    )]
    ForeignBuffer {
        /// The op.
        op: String,
        /// The parameter.
        param: String,
    },
    /// A launch that this backend cannot express (offset alignment, grid size, ...).
    #[error("op `{op}`: {reason}")]
    Launch {
        /// The op.
        op: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// An artifact that does not load or compile on this device.
    #[error("`{path}` does not load on `{device}`: {reason}")]
    Load {
        /// The artifact's path in its kernel repo.
        path: String,
        /// The device's name.
        device: String,
        /// The backend's message.
        reason: String,
    },
    /// The driver would not load a chosen artifact (no code for this GPU,
    /// PTX newer than the driver, a JIT failure): the loader records the
    /// reason and chooses the next candidate.
    #[error("`{path}` does not load on `{device}`: {reason}")]
    Refused {
        /// Index of the artifact in the manifest.
        artifact: usize,
        /// The artifact's path in its kernel repo.
        path: String,
        /// The device's name.
        device: String,
        /// The driver's message.
        reason: String,
    },
    /// Anything else the backend reports (out of memory, a lost device).
    #[error("{backend} backend: {message}")]
    Backend {
        /// The backend.
        backend: Backend,
        /// The backend's message.
        message: String,
    },
}

/// What a device is, for selection and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The backend that drives it.
    pub backend: Backend,
    /// The artifacts it can run, as a selection platform.
    pub platform: Platform,
    /// The device's name (`NVIDIA H100 80GB HBM3`, `llvmpipe (LLVM 15.0.6, 256 bits)`).
    pub name: String,
    /// The kind of device and its driver, for reports (`DiscreteGpu, Vulkan`).
    pub kind: String,
    /// Optional WGSL features it has (wgpu only).
    pub features: Vec<WgpuFeature>,
    /// The driver's version (the CUDA driver API's, HIP's runtime), checked
    /// against each artifact's `min_driver`; `None` for wgpu.
    pub driver: Option<DriverVersion>,
}

/// One artifact's verified bytes, ready for a backend to load.
#[derive(Debug, Clone)]
pub struct VerifiedArtifact {
    /// Index into the manifest's `artifacts`.
    pub index: usize,
    /// The bytes whose SHA-256 equals the manifest's pin: the only bytes a
    /// backend may load.
    pub bytes: Arc<[u8]>,
}

impl VerifiedArtifact {
    /// Checks `bytes` against artifact `index` of `manifest` (size and
    /// SHA-256); `None` when they differ.
    pub fn check(manifest: &KernelManifest, index: usize, bytes: Arc<[u8]>) -> Option<Self> {
        let artifact = manifest.artifacts.get(index)?;
        (bytes.len() as u64 == *artifact.size.get_ref()
            && Sha256Digest::of(&bytes) == *artifact.sha256.get_ref())
        .then_some(VerifiedArtifact { index, bytes })
    }
}

/// A GPU (or CPU adapter) that kernels load onto.
pub trait Device: Send + Sync {
    /// What it is.
    fn info(&self) -> &DeviceInfo;

    /// Loads `manifest`'s ops onto this device. `choices` says which
    /// artifact runs each (op, dtype) and why the others do not
    /// ([`crate::select::choose`] for this device); `artifacts` holds the
    /// verified bytes of every chosen artifact. Backends compile lazily and
    /// cache what they compile.
    fn load(
        &self,
        manifest: Arc<KernelManifest>,
        choices: Vec<OpChoice>,
        artifacts: Vec<VerifiedArtifact>,
    ) -> Result<Arc<dyn Kernel>, RuntimeError>;

    /// A zero-filled buffer of `len` bytes.
    fn alloc(&self, len: u64) -> Result<Buffer, RuntimeError>;

    /// A buffer holding `bytes`.
    fn upload(&self, bytes: &[u8]) -> Result<Buffer, RuntimeError>;

    /// Waits for the work enqueued so far, then reads `len` bytes of
    /// `buffer` from `offset`.
    fn download(&self, buffer: &Buffer, offset: u64, len: u64) -> Result<Vec<u8>, RuntimeError>;

    /// From now until [`Device::flush`], launches may be recorded into one
    /// submission instead of one each.
    fn begin_batch(&self);

    /// Submits what was recorded since [`Device::begin_batch`] and ends the
    /// batch.
    fn flush(&self) -> Result<(), RuntimeError>;

    /// Submits anything pending and waits until the device is idle.
    fn synchronize(&self) -> Result<(), RuntimeError>;
}

/// A kernel loaded onto one device.
pub trait Kernel: Send + Sync {
    /// The kernel's manifest.
    fn manifest(&self) -> &KernelManifest;

    /// The device it is loaded on.
    fn device(&self) -> &DeviceInfo;

    /// The op `name` at `dtype`, compiled on first use and cached.
    fn op(&self, name: &str, dtype: Dtype) -> Result<Arc<dyn Op>, RuntimeError>;
}

/// One (op, dtype) of a loaded kernel, ready to launch.
pub trait Op: Send + Sync {
    /// The op's name.
    fn name(&self) -> &str;

    /// Its dtype.
    fn dtype(&self) -> Dtype;

    /// The path of the artifact it runs from.
    fn artifact(&self) -> &str;

    /// Checks `args` against the op's signature, then enqueues the launch.
    fn launch(&self, args: &[Arg<'_>]) -> Result<(), RuntimeError>;
}

/// Memory on a device: kernelhub's own, or an engine's wrapped by the backend.
#[derive(Clone)]
pub struct Buffer {
    device: u64,
    id: u64,
    /// Where the buffer starts in the space `id` names: 0 for a backend
    /// whose buffers are separate objects (wgpu), the device address for
    /// one whose buffers share the GPU's address space (CUDA, HIP).
    base: u64,
    len: u64,
    handle: Arc<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("device", &self.device)
            .field("id", &self.id)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A process-unique number, for device and buffer identities.
pub fn unique_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

impl Buffer {
    /// For backends: a buffer of device `device`, `len` bytes, holding the
    /// backend's handle. `id` identifies the allocation for the aliasing
    /// check (two `Buffer`s of one allocation must have the same id).
    pub fn new(device: u64, id: u64, len: u64, handle: Arc<dyn Any + Send + Sync>) -> Self {
        Buffer {
            device,
            id,
            base: 0,
            len,
            handle,
        }
    }

    /// For backends whose buffers are ranges of one address space per
    /// device (CUDA, HIP): a buffer of `len` bytes at `address`. The
    /// aliasing check then compares address ranges, so two buffers over
    /// overlapping memory (an engine's wrapped sub-allocations) are caught.
    pub fn at_address(
        device: u64,
        address: u64,
        len: u64,
        handle: Arc<dyn Any + Send + Sync>,
    ) -> Self {
        Buffer {
            device,
            id: device,
            base: address,
            len,
            handle,
        }
    }

    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The identity of the allocation.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The device it belongs to.
    pub fn device(&self) -> u64 {
        self.device
    }

    /// For backends: the handle, if it is a `T`.
    pub fn handle<T: Any>(&self) -> Option<&T> {
        self.handle.downcast_ref()
    }
}

/// A tensor argument: a buffer, where the tensor starts in it, its dtype.
#[derive(Debug, Clone, Copy)]
pub struct Tensor<'a> {
    /// The buffer.
    pub buffer: &'a Buffer,
    /// Byte offset of the first element.
    pub offset: u64,
    /// Element type.
    pub dtype: Dtype,
}

/// One argument of a launch, in the op's parameter order.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// A tensor.
    Tensor(Tensor<'a>),
    /// A scalar.
    Scalar(Scalar),
}

impl<'a> Arg<'a> {
    /// The whole of `buffer` as a tensor of `dtype`.
    pub fn tensor(buffer: &'a Buffer, dtype: Dtype) -> Self {
        Arg::Tensor(Tensor {
            buffer,
            offset: 0,
            dtype,
        })
    }

    /// `buffer` from byte `offset` on, as a tensor of `dtype`.
    pub fn tensor_at(buffer: &'a Buffer, offset: u64, dtype: Dtype) -> Self {
        Arg::Tensor(Tensor {
            buffer,
            offset,
            dtype,
        })
    }
}

impl From<Scalar> for Arg<'_> {
    fn from(scalar: Scalar) -> Self {
        Arg::Scalar(scalar)
    }
}

impl From<u32> for Arg<'_> {
    fn from(value: u32) -> Self {
        Arg::Scalar(Scalar::U32(value))
    }
}

impl From<f32> for Arg<'_> {
    fn from(value: f32) -> Self {
        Arg::Scalar(Scalar::F32(value))
    }
}

/// The check-level description of `args` (see [`crate::args::check`]), or
/// the index of the first tensor whose buffer is not on `device`.
pub fn describe(args: &[Arg<'_>], device: u64) -> Result<Vec<crate::args::Arg>, usize> {
    args.iter()
        .enumerate()
        .map(|(i, arg)| match arg {
            Arg::Tensor(t) if t.buffer.device != device => Err(i),
            Arg::Tensor(t) => Ok(crate::args::Arg::Tensor(crate::args::TensorRef {
                buffer: t.buffer.id,
                offset: t.buffer.base.wrapping_add(t.offset),
                len: t.buffer.len.saturating_sub(t.offset),
                dtype: t.dtype,
            })),
            Arg::Scalar(s) => Ok(crate::args::Arg::Scalar(*s)),
        })
        .collect()
}
