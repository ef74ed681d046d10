//! [`WgpuDevice`]: one adapter's device behind kernelhub's `Device` interface.
//!
//! What a launch costs is decided here. Compiled shader modules and
//! pipelines are cached per device by (artifact hash, entry point), so a
//! kernel loaded twice compiles nothing the second time and a launch never
//! compiles. The scalars of a launch go into a slot of one uniform ring
//! buffer (no buffer is created per launch); a batch never reuses a slot
//! before it is submitted, and across submissions the queue orders each
//! slot's write after the work that read it. Validation errors wgpu reports
//! outside a scope (it would panic by default) are stored and returned by
//! the next `download` or `synchronize`.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex, MutexGuard};

use kernelhub_manifest::hash::Sha256Digest;
use kernelhub_manifest::introspect::wgsl::WgslModule;
use kernelhub_manifest::kernel::{Backend, KernelManifest};
use kernelhub_manifest::select::Platform;
use kernelhub_runtime::device::{VerifiedArtifact, unique_id};
use kernelhub_runtime::select::OpChoice;
use kernelhub_runtime::{Buffer, Device, DeviceInfo, Kernel, RuntimeError};

use crate::adapter::known_features;
use crate::kernel::WgslKernel;

/// Uniform slots in the ring; a batch longer than this is submitted in parts.
const UNIFORM_SLOTS: u64 = 1024;

/// kernelhub buffers are padded to this many bytes, so that kernels reading
/// `vec4<f32>` can address every element.
const PADDING: u64 = 16;

/// One wgpu device, shared by every kernel loaded on it.
pub struct WgpuDevice {
    pub(crate) shared: Arc<Shared>,
}

/// What kernels and ops of a device hold on to.
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) info: DeviceInfo,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) limits: wgpu::Limits,
    /// The uniform ring.
    arena: wgpu::Buffer,
    slot_size: u64,
    state: Mutex<State>,
    errors: Arc<Mutex<Vec<String>>>,
    modules: Mutex<HashMap<Sha256Digest, Arc<CompiledModule>>>,
    pipelines: Mutex<HashMap<(Sha256Digest, String), Arc<CompiledEntry>>>,
}

/// Launch recording state.
#[derive(Default)]
struct State {
    batching: bool,
    encoder: Option<wgpu::CommandEncoder>,
    next_slot: u64,
    slots_in_batch: u64,
}

/// A WGSL artifact compiled on a device, with naga's view of it.
pub(crate) struct CompiledModule {
    module: wgpu::ShaderModule,
    reflection: WgslModule,
}

/// An entry point's pipeline and what launches need to know about it.
pub(crate) struct CompiledEntry {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
    /// Bytes per array element of each storage binding, by binding number.
    pub(crate) strides: HashMap<u32, u64>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl WgpuDevice {
    /// Wraps a device an engine already opened. Ops launched through it
    /// are submitted to `queue`, so they order with the engine's own work.
    /// Only the features the device was created with are used (request
    /// `SHADER_F16` and `SUBGROUP` to get the f16 and subgroup variants).
    ///
    /// This installs the device's uncaptured-error handler (wgpu's default
    /// panics): errors wgpu reports outside a scope, the engine's own
    /// included, are then returned by the next `download`, `flush` or
    /// `synchronize` instead. Install your own handler afterwards if you
    /// prefer, at the cost of kernelhub not seeing them.
    pub fn new(adapter: wgpu::Adapter, device: wgpu::Device, queue: wgpu::Queue) -> Self {
        let adapter_info = adapter.get_info();
        let info = DeviceInfo {
            backend: Backend::Wgpu,
            platform: Platform::Wgpu,
            name: adapter_info.name.clone(),
            kind: format!("{:?}, {:?}", adapter_info.device_type, adapter_info.backend),
            features: known_features(device.features()),
            driver: None,
        };
        let limits = device.limits();
        let slot_size = u64::from(limits.min_uniform_buffer_offset_alignment).max(256);
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kernelhub scalars"),
            size: slot_size * UNIFORM_SLOTS,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            lock(&sink).push(error.to_string());
        }));
        WgpuDevice {
            shared: Arc::new(Shared {
                id: unique_id(),
                info,
                device,
                queue,
                limits,
                arena,
                slot_size,
                state: Mutex::default(),
                errors,
                modules: Mutex::default(),
                pipelines: Mutex::default(),
            }),
        }
    }

    /// The wgpu device, for engines that create their own resources on it.
    pub fn wgpu_device(&self) -> &wgpu::Device {
        &self.shared.device
    }

    /// The queue launches are submitted to.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.shared.queue
    }

    /// An engine's buffer, usable as a kernelhub [`Buffer`] on this device.
    /// It must have been created on this device with `STORAGE` usage (and
    /// `COPY_SRC` to be downloaded); its size should be a multiple of 16 so
    /// that kernels reading `vec4` can reach every element.
    pub fn wrap(&self, buffer: wgpu::Buffer) -> Result<Buffer, RuntimeError> {
        if !buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
            return Err(RuntimeError::Backend {
                backend: Backend::Wgpu,
                message:
                    "a wrapped buffer needs `BufferUsages::STORAGE`; create it with that usage"
                        .into(),
            });
        }
        Ok(Buffer::new(
            self.shared.id,
            buffer_identity(&buffer),
            buffer.size(),
            Arc::new(buffer),
        ))
    }

    /// How many pipelines this device has compiled (each (artifact, entry
    /// point) once, however often kernels are loaded).
    pub fn compiled_pipelines(&self) -> usize {
        lock(&self.shared.pipelines).len()
    }

    /// The `wgpu::Buffer` behind `buffer`, if it is one of this device's.
    pub fn unwrap_buffer<'a>(&self, buffer: &'a Buffer) -> Option<&'a wgpu::Buffer> {
        (buffer.device() == self.shared.id)
            .then(|| buffer.handle::<wgpu::Buffer>())
            .flatten()
    }
}

/// One identity per wgpu allocation, however many `Buffer`s wrap it.
fn buffer_identity(buffer: &wgpu::Buffer) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    buffer.hash(&mut hasher);
    hasher.finish()
}

impl Shared {
    fn backend_error(message: String) -> RuntimeError {
        RuntimeError::Backend {
            backend: Backend::Wgpu,
            message,
        }
    }

    /// Errors wgpu reported since the last call, as one `Err`.
    fn take_errors(&self) -> Result<(), RuntimeError> {
        let errors = std::mem::take(&mut *lock(&self.errors));
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Self::backend_error(errors.join("; ")))
        }
    }

    /// A zero-filled kernelhub buffer of `len` bytes, padded to [`PADDING`].
    fn create(&self, len: u64) -> Result<(wgpu::Buffer, Buffer), RuntimeError> {
        let size = len.max(1).next_multiple_of(PADDING);
        if size > self.limits.max_buffer_size {
            return Err(Self::backend_error(format!(
                "a buffer of {len} bytes is larger than `{}` allows ({} bytes)",
                self.info.name, self.limits.max_buffer_size
            )));
        }
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kernelhub tensor"),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let wrapped = Buffer::new(
            self.id,
            buffer_identity(&buffer),
            len,
            Arc::new(buffer.clone()),
        );
        Ok((buffer, wrapped))
    }

    fn submit_pending(&self, state: &mut State) {
        if let Some(encoder) = state.encoder.take() {
            self.queue.submit([encoder.finish()]);
        }
        state.slots_in_batch = 0;
    }

    fn wait(&self) -> Result<(), RuntimeError> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Self::backend_error(format!("waiting for the device failed: {e}")))?;
        self.take_errors()
    }

    /// Compiles (or finds compiled) entry point `symbol` of a WGSL artifact.
    pub(crate) fn compile(
        &self,
        path: &str,
        sha256: Sha256Digest,
        bytes: &[u8],
        symbol: &str,
    ) -> Result<Arc<CompiledEntry>, RuntimeError> {
        let key = (sha256, symbol.to_string());
        if let Some(entry) = lock(&self.pipelines).get(&key) {
            return Ok(entry.clone());
        }
        let load_error = |reason: String| RuntimeError::Load {
            path: path.to_string(),
            device: self.info.name.clone(),
            reason,
        };
        let module = {
            let mut modules = lock(&self.modules);
            match modules.get(&sha256) {
                Some(module) => module.clone(),
                None => {
                    let source = std::str::from_utf8(bytes)
                        .map_err(|e| load_error(format!("not UTF-8 text: {e}")))?;
                    let reflection = WgslModule::parse(source)
                        .map_err(|e| load_error(format!("invalid WGSL: {e}")))?;
                    let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
                    let module = self
                        .device
                        .create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: Some(path),
                            source: wgpu::ShaderSource::Wgsl(source.into()),
                        });
                    if let Some(error) = pollster::block_on(scope.pop()) {
                        return Err(load_error(error.to_string()));
                    }
                    let compiled = Arc::new(CompiledModule { module, reflection });
                    modules.insert(sha256, compiled.clone());
                    compiled
                }
            }
        };
        let interface = module
            .reflection
            .entry_point(symbol)
            .ok_or_else(|| load_error(format!("it has no compute entry point `{symbol}`")))?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(symbol),
                layout: None,
                module: &module.module,
                entry_point: Some(symbol),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(load_error(error.to_string()));
        }
        let strides = interface
            .bindings
            .iter()
            .filter(|b| b.group == 0)
            .filter_map(|b| match &b.kind {
                kernelhub_manifest::introspect::wgsl::BindingKind::Storage { element, .. } => {
                    // vec3 is laid out like vec4.
                    let lanes = if element.lanes == 3 { 4 } else { element.lanes };
                    Some((b.binding, u64::from(element.bits / 8 * lanes).max(1)))
                }
                _ => None,
            })
            .collect();
        let entry = Arc::new(CompiledEntry {
            layout: pipeline.get_bind_group_layout(0),
            pipeline,
            strides,
        });
        lock(&self.pipelines).insert(key, entry.clone());
        Ok(entry)
    }

    /// Records or submits one dispatch: `uniform` goes into a ring slot,
    /// `bind` builds the bind group around that slot.
    pub(crate) fn dispatch(
        &self,
        entry: &CompiledEntry,
        uniform: &[u8],
        bind: impl FnOnce(Option<wgpu::BufferBinding<'_>>) -> wgpu::BindGroup,
        grid: [u32; 3],
    ) -> Result<(), RuntimeError> {
        if uniform.len() as u64 > self.slot_size {
            return Err(Self::backend_error(format!(
                "the op's scalars take {} bytes; at most {} fit a launch",
                uniform.len(),
                self.slot_size
            )));
        }
        let mut state = lock(&self.state);
        let slot = (!uniform.is_empty()).then(|| {
            if state.batching && state.slots_in_batch == UNIFORM_SLOTS {
                self.submit_pending(&mut state);
            }
            let offset = state.next_slot * self.slot_size;
            state.next_slot = (state.next_slot + 1) % UNIFORM_SLOTS;
            state.slots_in_batch += 1;
            self.queue.write_buffer(&self.arena, offset, uniform);
            offset
        });
        let group = bind(slot.map(|offset| wgpu::BufferBinding {
            buffer: &self.arena,
            offset,
            size: NonZeroU64::new(uniform.len() as u64),
        }));
        let mut encoder = match state.encoder.take() {
            Some(encoder) => encoder,
            None => self.device.create_command_encoder(&Default::default()),
        };
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&entry.pipeline);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
        }
        if state.batching {
            state.encoder = Some(encoder);
        } else {
            self.queue.submit([encoder.finish()]);
            state.slots_in_batch = 0;
        }
        Ok(())
    }
}

impl Device for WgpuDevice {
    fn info(&self) -> &DeviceInfo {
        &self.shared.info
    }

    fn load(
        &self,
        manifest: Arc<KernelManifest>,
        choices: Vec<OpChoice>,
        artifacts: Vec<VerifiedArtifact>,
    ) -> Result<Arc<dyn Kernel>, RuntimeError> {
        Ok(Arc::new(WgslKernel::new(
            self.shared.clone(),
            manifest,
            choices,
            artifacts,
        )?))
    }

    fn alloc(&self, len: u64) -> Result<Buffer, RuntimeError> {
        self.shared.create(len).map(|(_, buffer)| buffer)
    }

    fn upload(&self, bytes: &[u8]) -> Result<Buffer, RuntimeError> {
        let (wgpu_buffer, buffer) = self.shared.create(bytes.len() as u64)?;
        let whole = bytes.len() / 4 * 4;
        if whole > 0 {
            self.shared
                .queue
                .write_buffer(&wgpu_buffer, 0, &bytes[..whole]);
        }
        if whole < bytes.len() {
            // write_buffer takes whole 4-byte words: pad the tail with zeros.
            let mut tail = [0u8; 4];
            tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
            self.shared
                .queue
                .write_buffer(&wgpu_buffer, whole as u64, &tail);
        }
        Ok(buffer)
    }

    fn download(&self, buffer: &Buffer, offset: u64, len: u64) -> Result<Vec<u8>, RuntimeError> {
        let source = self.unwrap_buffer(buffer).ok_or_else(|| {
            Shared::backend_error(
                "download: the buffer belongs to another device; download it from its own".into(),
            )
        })?;
        if offset.checked_add(len).is_none_or(|end| end > buffer.len()) {
            return Err(Shared::backend_error(format!(
                "download: bytes {offset}..{} are outside the buffer's {} bytes",
                offset.saturating_add(len),
                buffer.len()
            )));
        }
        if !source.usage().contains(wgpu::BufferUsages::COPY_SRC) {
            return Err(Shared::backend_error(
                "download: the buffer was created without `BufferUsages::COPY_SRC`".into(),
            ));
        }
        // Copies move whole 4-byte words.
        let start = offset / 4 * 4;
        let end = (offset + len).next_multiple_of(4);
        if end > source.size() {
            return Err(Shared::backend_error(format!(
                "download: bytes {start}..{end} (rounded to 4-byte words) are outside the buffer's {} bytes; allocate buffers in multiples of 4 bytes",
                source.size()
            )));
        }
        if start == end {
            return Ok(Vec::new());
        }
        let staging = self.shared.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kernelhub readback"),
            size: end - start,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        {
            let mut state = lock(&self.shared.state);
            let mut encoder = state.encoder.take().unwrap_or_else(|| {
                self.shared
                    .device
                    .create_command_encoder(&Default::default())
            });
            encoder.copy_buffer_to_buffer(source, start, &staging, 0, end - start);
            self.shared.queue.submit([encoder.finish()]);
            state.slots_in_batch = 0;
        }
        let slice = staging.slice(..);
        let (sender, receiver) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = sender.send(r);
        });
        self.shared.wait()?;
        receiver
            .recv()
            .map_err(|e| Shared::backend_error(format!("download: {e}")))?
            .map_err(|e| Shared::backend_error(format!("download: {e}")))?;
        let view = slice
            .get_mapped_range()
            .map_err(|e| Shared::backend_error(format!("download: {e}")))?;
        let skip = (offset - start) as usize;
        Ok(view[skip..skip + len as usize].to_vec())
    }

    fn begin_batch(&self) {
        lock(&self.shared.state).batching = true;
    }

    fn flush(&self) -> Result<(), RuntimeError> {
        let mut state = lock(&self.shared.state);
        self.shared.submit_pending(&mut state);
        state.batching = false;
        drop(state);
        self.shared.take_errors()
    }

    fn synchronize(&self) -> Result<(), RuntimeError> {
        {
            let mut state = lock(&self.shared.state);
            self.shared.submit_pending(&mut state);
        }
        self.shared.wait()
    }
}
