//! The part of the CUDA and HIP backends that is the same for both:
//! kernelhub's [`Device`], [`Kernel`] and [`Op`] over a driver that loads
//! code objects from memory and launches functions with a grid, a block and
//! a `void**` parameter block.
//!
//! A backend implements [`NativeQueue`] (a GPU plus the stream its work goes
//! to) with its driver's calls; [`NativeDevice`] does the rest: buffers that
//! free themselves, modules loaded from the verified bytes when the kernel
//! is, a refused module reported as [`RuntimeError::Refused`] so the loader
//! moves on to the next candidate, argument checks, geometry from the
//! manifest, alignment and limit checks before anything reaches the driver.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::{CString, c_void};
use std::sync::{Arc, Mutex};

use kernelhub_manifest::kernel::{Backend, Dtype, Entry, Format, KernelManifest};

use crate::device::VerifiedArtifact;
use crate::launch::{
    FoundOp, KernelParams, check_call, chosen_artifacts, dims, find_op, param_name,
};
use crate::select::OpChoice;
use crate::{Arg, Buffer, Device, DeviceInfo, Kernel, Op, RuntimeError};

/// Why a driver did not load a module.
#[derive(Debug, Clone)]
pub enum ModuleError {
    /// The image cannot run here (no code for this GPU, PTX too new for the
    /// driver, a JIT failure): try the next candidate. The text says why.
    Refused(String),
    /// Anything else (out of memory, a lost device).
    Failed(String),
}

/// A launch the driver refused.
#[derive(Debug, Clone)]
pub struct LaunchError {
    /// The driver's message.
    pub message: String,
    /// The GPU faulted (an illegal address, a trap, a launch failure:
    /// CUDA's and HIP's statuses 700 to 719): the context is unusable
    /// from now on.
    pub context_lost: bool,
}

impl LaunchError {
    /// The error for driver status `code` with `message`.
    pub fn from_status(code: i32, message: String) -> Self {
        LaunchError {
            message,
            context_lost: (700..=719).contains(&code),
        }
    }
}

/// Launch limits of a backend, per dimension.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most blocks per grid dimension.
    pub grid: [u64; 3],
    /// Most threads per block dimension.
    pub block: [u64; 3],
    /// Most threads per block in all.
    pub threads: u64,
    /// Most threads per grid dimension (blocks times threads per block).
    pub grid_threads: u64,
}

/// One GPU and the stream (queue) its work goes to, as a driver sees them.
/// Errors are the driver's text; [`NativeDevice`] adds the context.
pub trait NativeQueue: Send + Sync + 'static {
    /// A loaded module; unloads itself when dropped.
    type Module: Send + Sync + 'static;
    /// A kernel function of a module.
    type Function: Send + Sync + 'static;

    /// The backend.
    const BACKEND: Backend;
    /// Its launch limits.
    const LIMITS: Limits;

    /// The GPU.
    fn info(&self) -> &DeviceInfo;
    /// kernelhub's identity of the GPU, the same for every queue of it, so
    /// buffers pass between them.
    fn device_id(&self) -> u64;
    /// `len` (> 0) zero-filled bytes, ready when this returns.
    fn alloc(&self, len: u64) -> Result<u64, String>;
    /// Frees an allocation of [`NativeQueue::alloc`]; errors are dropped.
    fn free(&self, address: u64);
    /// Copies `bytes` to `address`, complete when this returns.
    fn upload(&self, address: u64, bytes: &[u8]) -> Result<(), String>;
    /// Waits for the queue, then copies `out.len()` bytes from `address`.
    fn download(&self, address: u64, out: &mut [u8]) -> Result<(), String>;
    /// Waits until the queue's work is done.
    fn synchronize(&self) -> Result<(), String>;
    /// Loads a code object of `format` from `bytes` (the verified bytes).
    /// The module may keep `bytes` (some drivers read the image lazily).
    fn load_module(&self, format: Format, bytes: &Arc<[u8]>) -> Result<Self::Module, ModuleError>;
    /// The kernel `symbol` of `module`.
    fn function(&self, module: &Self::Module, symbol: &CString) -> Result<Self::Function, String>;
    /// Queues `function` with `params` (one pointer per parameter, to its
    /// value).
    ///
    /// # Safety
    /// `params` must match the function's parameters in number and type,
    /// every device address among them must be memory of this GPU large
    /// enough for what the function accesses, and the geometry must be
    /// what the function was written for.
    unsafe fn launch(
        &self,
        function: &Self::Function,
        grid: [u32; 3],
        block: [u32; 3],
        shared_bytes: u32,
        params: &mut [*mut c_void],
    ) -> Result<(), LaunchError>;
}

/// Device memory a native [`Buffer`] refers to.
struct Memory<Q: NativeQueue> {
    queue: Arc<Q>,
    address: u64,
    /// Allocated by kernelhub (freed on drop) rather than the engine's.
    owned: bool,
}

impl<Q: NativeQueue> Drop for Memory<Q> {
    fn drop(&mut self) {
        if self.owned && self.address != 0 {
            self.queue.free(self.address);
        }
    }
}

/// A native GPU behind kernelhub's [`Device`] interface.
pub struct NativeDevice<Q: NativeQueue> {
    queue: Arc<Q>,
}

impl<Q: NativeQueue> NativeDevice<Q> {
    /// The device over `queue`.
    pub fn new(queue: Q) -> Self {
        NativeDevice {
            queue: Arc::new(queue),
        }
    }

    /// The backend's queue (its stream and context handles).
    pub fn queue(&self) -> &Q {
        &self.queue
    }

    /// The engine's device memory as a [`Buffer`] of this device; kernelhub
    /// never frees it.
    ///
    /// # Safety
    /// `address` must be memory of this GPU (in the context kernelhub
    /// uses: the primary one for CUDA), at least `len` bytes long, and stay
    /// allocated while any launch using the buffer may run.
    pub unsafe fn wrap(&self, address: u64, len: u64) -> Buffer {
        self.buffer(address, len, false)
    }

    /// The device address of a buffer of this GPU (to hand kernelhub's
    /// memory to an engine's own kernels).
    pub fn device_ptr(&self, buffer: &Buffer) -> Option<u64> {
        (buffer.device() == self.queue.device_id())
            .then(|| buffer.handle::<Memory<Q>>().map(|m| m.address))
            .flatten()
    }

    fn buffer(&self, address: u64, len: u64, owned: bool) -> Buffer {
        Buffer::at_address(
            self.queue.device_id(),
            address,
            len,
            Arc::new(Memory {
                queue: self.queue.clone(),
                address,
                owned,
            }),
        )
    }

    fn error(&self, message: String) -> RuntimeError {
        RuntimeError::Backend {
            backend: Q::BACKEND,
            message: format!("`{}`: {message}", self.queue.info().name),
        }
    }

    fn address(&self, buffer: &Buffer) -> Result<u64, RuntimeError> {
        self.device_ptr(buffer).ok_or_else(|| {
            self.error(
                "the buffer is not memory of this GPU; use buffers this device created or wrapped"
                    .into(),
            )
        })
    }
}

impl<Q: NativeQueue> Device for NativeDevice<Q> {
    fn info(&self) -> &DeviceInfo {
        self.queue.info()
    }

    fn load(
        &self,
        manifest: Arc<KernelManifest>,
        choices: Vec<OpChoice>,
        artifacts: Vec<VerifiedArtifact>,
    ) -> Result<Arc<dyn Kernel>, RuntimeError> {
        let mut modules = HashMap::new();
        let device = &self.queue.info().name;
        for (artifact, verified) in chosen_artifacts(&manifest, &choices, &artifacts, device)? {
            let (index, bytes) = (verified.index, &verified.bytes);
            let path = artifact.path.get_ref();
            let module = self
                .queue
                .load_module(*artifact.format.get_ref(), bytes)
                .map_err(|e| match e {
                    ModuleError::Refused(reason) => RuntimeError::Refused {
                        artifact: index,
                        path: path.clone(),
                        device: device.clone(),
                        reason,
                    },
                    ModuleError::Failed(reason) => RuntimeError::Load {
                        path: path.clone(),
                        device: device.clone(),
                        reason,
                    },
                })?;
            modules.insert(index, Arc::new(module));
        }
        Ok(Arc::new(NativeKernel {
            queue: self.queue.clone(),
            manifest,
            choices,
            modules,
            ops: Mutex::default(),
        }))
    }

    fn alloc(&self, len: u64) -> Result<Buffer, RuntimeError> {
        let address = if len == 0 {
            0
        } else {
            self.queue
                .alloc(len)
                .map_err(|e| self.error(format!("allocating {len} bytes: {e}")))?
        };
        Ok(self.buffer(address, len, true))
    }

    fn upload(&self, bytes: &[u8]) -> Result<Buffer, RuntimeError> {
        let buffer = self.alloc(bytes.len() as u64)?;
        if !bytes.is_empty() {
            let address = self.address(&buffer)?;
            self.queue
                .upload(address, bytes)
                .map_err(|e| self.error(e))?;
        }
        Ok(buffer)
    }

    fn download(&self, buffer: &Buffer, offset: u64, len: u64) -> Result<Vec<u8>, RuntimeError> {
        let address = self.address(buffer)?;
        if offset.checked_add(len).is_none_or(|end| end > buffer.len()) {
            return Err(self.error(format!(
                "cannot read bytes {offset}..{} of a {}-byte buffer",
                offset.saturating_add(len),
                buffer.len()
            )));
        }
        let mut bytes = vec![0u8; len as usize];
        if len == 0 {
            self.queue.synchronize().map_err(|e| self.error(e))?;
        } else {
            self.queue
                .download(address + offset, &mut bytes)
                .map_err(|e| self.error(e))?;
        }
        Ok(bytes)
    }

    /// Launches are queued on the stream as they come; there is nothing to
    /// gather.
    fn begin_batch(&self) {}

    fn flush(&self) -> Result<(), RuntimeError> {
        Ok(())
    }

    fn synchronize(&self) -> Result<(), RuntimeError> {
        self.queue.synchronize().map_err(|e| self.error(e))
    }
}

/// A kernel loaded on a native GPU: its modules, and the ops asked for.
struct NativeKernel<Q: NativeQueue> {
    queue: Arc<Q>,
    manifest: Arc<KernelManifest>,
    choices: Vec<OpChoice>,
    modules: HashMap<usize, Arc<Q::Module>>,
    ops: Mutex<OpCache<Q>>,
}

/// The ops of a kernel asked for so far, by (name, dtype).
type OpCache<Q> = HashMap<(String, Dtype), Arc<NativeOp<Q>>>;

impl<Q: NativeQueue> Kernel for NativeKernel<Q> {
    fn manifest(&self) -> &KernelManifest {
        &self.manifest
    }

    fn device(&self) -> &DeviceInfo {
        self.queue.info()
    }

    fn op(&self, name: &str, dtype: Dtype) -> Result<Arc<dyn Op>, RuntimeError> {
        let key = (name.to_string(), dtype);
        if let Some(op) = self.ops.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(op.clone());
        }
        let info = self.queue.info();
        let FoundOp {
            signature,
            artifact,
            entry,
        } = find_op(&self.manifest, &self.choices, name, dtype, &info.name)?;
        let path = self.manifest.artifacts[artifact].path.get_ref().clone();
        let module = self.modules[&artifact].clone();
        let symbol = entry.symbol.get_ref();
        let missing = |reason: String| RuntimeError::Load {
            path: path.clone(),
            device: info.name.clone(),
            reason,
        };
        let c_symbol = CString::new(symbol.as_str())
            .map_err(|_| missing(format!("the symbol `{symbol}` contains a NUL byte")))?;
        let function = self
            .queue
            .function(&module, &c_symbol)
            .map_err(|e| missing(format!("it has no kernel `{symbol}` ({e})")))?;
        let op = Arc::new(NativeOp {
            queue: self.queue.clone(),
            manifest: self.manifest.clone(),
            _module: module,
            function,
            signature,
            dtype,
            path,
            entry,
        });
        self.ops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, op.clone());
        Ok(op)
    }
}

/// One (op, dtype), its function looked up.
struct NativeOp<Q: NativeQueue> {
    queue: Arc<Q>,
    manifest: Arc<KernelManifest>,
    /// Keeps the function's module loaded.
    _module: Arc<Q::Module>,
    function: Q::Function,
    signature: usize,
    dtype: Dtype,
    path: String,
    entry: Entry,
}

impl<Q: NativeQueue> Op for NativeOp<Q> {
    fn name(&self) -> &str {
        self.manifest.ops[self.signature].name.get_ref()
    }

    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn artifact(&self) -> &str {
        &self.path
    }

    fn launch(&self, arguments: &[Arg<'_>]) -> Result<(), RuntimeError> {
        let signature = &self.manifest.ops[self.signature];
        let op = signature.name.get_ref();
        let param_name = |i: usize| param_name(signature, i);
        let checked = check_call(signature, self.dtype, arguments, self.queue.device_id())?;
        let launch_error = |reason: String| RuntimeError::Launch {
            op: op.clone(),
            reason,
        };
        for (i, argument) in arguments.iter().enumerate() {
            let Arg::Tensor(tensor) = argument else {
                continue;
            };
            let Some(memory) = tensor.buffer.handle::<Memory<Q>>() else {
                return Err(RuntimeError::ForeignBuffer {
                    op: op.clone(),
                    param: param_name(i),
                });
            };
            let size = tensor.dtype.size() as u64;
            let address = memory.address.wrapping_add(tensor.offset);
            if address % size != 0 {
                return Err(launch_error(format!(
                    "parameter `{}` starts at device address {address:#x} (byte {} of its buffer), not a multiple of its {size}-byte elements; a misaligned access would fault the GPU",
                    param_name(i),
                    tensor.offset
                )));
            }
        }
        let sizes = &checked.sizes;
        let grid = dims(self.entry.grid.iter().map(|e| e.get_ref()), sizes)
            .map_err(|e| launch_error(format!("its grid {e}")))?;
        let Some(block) = &self.entry.block else {
            return Err(launch_error(format!(
                "`{}` gives no block size for it",
                self.path
            )));
        };
        let block = dims(block.iter().map(|e| e.get_ref()), sizes)
            .map_err(|e| launch_error(format!("its block {e}")))?;
        let shared = match &self.entry.shared_mem {
            Some(expr) => expr.get_ref().eval(&|n| sizes.get(n)).map_err(|e| {
                launch_error(format!("its shared memory `{}`: {e}", expr.get_ref()))
            })?,
            None => 0,
        };
        if block.contains(&0) {
            return Err(launch_error(format!(
                "its block `{}` is {block:?} threads: a block needs at least one thread in each dimension (a manifest error in `{}`)",
                self.entry
                    .block
                    .iter()
                    .flatten()
                    .map(|e| e.get_ref().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                self.path
            )));
        }
        // An empty grid is no work.
        if grid.contains(&0) {
            return Ok(());
        }
        let limits = Q::LIMITS;
        if let Some(d) = (0..3).find(|d| grid[*d].saturating_mul(block[*d]) > limits.grid_threads) {
            return Err(launch_error(format!(
                "its grid is {} blocks of {} threads in dimension {d}; {} allows at most {} threads per grid dimension; split the call",
                grid[d],
                block[d],
                Q::BACKEND,
                limits.grid_threads
            )));
        }
        if let Some(d) = (0..3).find(|d| grid[*d] > limits.grid[*d]) {
            return Err(launch_error(format!(
                "its grid is {} blocks in dimension {d}; {} allows at most {}; split the call",
                grid[d],
                Q::BACKEND,
                limits.grid[d]
            )));
        }
        if (0..3).any(|d| block[d] > limits.block[d])
            || block.iter().product::<u64>() > limits.threads
        {
            return Err(launch_error(format!(
                "its block is {block:?} threads; {} allows at most {:?} and {} in all",
                Q::BACKEND,
                limits.block,
                limits.threads
            )));
        }
        let shared = u32::try_from(shared)
            .map_err(|_| launch_error(format!("it asks for {shared} bytes of shared memory")))?;
        let mut params = KernelParams::new(arguments, |tensor| {
            let base = tensor.buffer.handle::<Memory<Q>>().map_or(0, |m| m.address);
            base.wrapping_add(tensor.offset)
        });
        // Within the limits checked above, so each fits in 32 bits.
        let narrow = |v: [u64; 3]| v.map(|n| n as u32);
        // SAFETY: the arguments were checked against the op's signature
        // (count, kinds, dtypes, scalar types, each tensor's size against
        // its shape, written tensors not overlapping others), every tensor
        // is memory of this GPU at an element-aligned address, and the
        // geometry is the manifest's for this entry, within the backend's
        // limits. That the function takes exactly the signature's
        // parameters is the manifest's promise; `kernelhub check` verifies
        // it for PTX, hsaco and cubin (count and size of each parameter),
        // not for fatbin.
        unsafe {
            self.queue.launch(
                &self.function,
                narrow(grid),
                narrow(block),
                shared,
                &mut params.pointers(),
            )
        }
        .map_err(|driver| {
            let hint = if driver.context_lost {
                "; the GPU context is now unusable and the process must restart (`compute-sanitizer` shows where the kernel faulted)"
            } else {
                ""
            };
            launch_error(format!(
                "`{}` {} with grid {grid:?}, block {block:?}, {shared} bytes of shared memory: {}{hint}",
                self.path,
                self.entry.symbol.get_ref(),
                driver.message
            ))
        })
    }
}
