//! kernelhub's portable backend: a kernel's WGSL artifact run through wgpu.
//!
//! [`Gpu`] is one adapter and its device, chosen the way a user expects:
//! `WGPU_ADAPTER_NAME` if set (a case-insensitive substring of the adapter
//! name), else a discrete GPU, then an integrated one, then anything (Mesa's
//! lavapipe runs the same WGSL on the CPU). [`WgslKernel`] compiles each
//! entry point once and launches it on buffers after
//! [`kernelhub_runtime::args::check`] accepted the call: tensors bind at
//! `@group(0) @binding(i)` in parameter order, the scalars as one uniform
//! struct after them (docs/formats.md), and the grid comes from the
//! manifest's expressions. An empty grid launches nothing.
//!
//! This is the first slice of the runtime issue: no trait, no pipeline
//! cache across kernels, no batching yet.

use std::collections::HashMap;

use kernelhub_manifest::kernel::{Artifact, Dtype, KernelManifest, Op, ParamKind};
use kernelhub_runtime::args::{self, Arg, Scalar, TensorRef};

/// Why the wgpu backend cannot run something.
#[derive(Debug, thiserror::Error)]
pub enum WgpuError {
    /// No adapter at all (no Vulkan/Metal/DX12 driver, not even lavapipe).
    #[error(
        "no GPU adapter found{0}\n  hint: install a Vulkan driver (on Debian, `mesa-vulkan-drivers` gives the CPU one, lavapipe), or unset `WGPU_ADAPTER_NAME`"
    )]
    NoAdapter(String),
    /// The device could not be created.
    #[error("adapter `{adapter}` refused a device: {reason}")]
    Device {
        /// Adapter name.
        adapter: String,
        /// wgpu's message.
        reason: String,
    },
    /// The call does not fit the op's signature.
    #[error(transparent)]
    Args(#[from] args::ArgError),
    /// The artifact has no entry for this (op, dtype), or it is not WGSL.
    #[error("{0}")]
    NoEntry(String),
    /// The shader failed to compile or validate on this device.
    #[error("the WGSL of `{path}` does not compile on `{adapter}`: {reason}")]
    Shader {
        /// Artifact path.
        path: String,
        /// Adapter name.
        adapter: String,
        /// wgpu's message.
        reason: String,
    },
    /// Reading results back failed.
    #[error("reading back from the GPU failed: {0}")]
    Readback(String),
}

/// One adapter and its device.
pub struct Gpu {
    adapter: wgpu::Adapter,
    device: wgpu::Device,
    queue: wgpu::Queue,
}

impl Gpu {
    /// Opens the preferred adapter (see the module docs).
    pub fn open() -> Result<Self, WgpuError> {
        pollster::block_on(Self::open_async())
    }

    async fn open_async() -> Result<Self, WgpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
        let wanted = std::env::var("WGPU_ADAPTER_NAME")
            .ok()
            .filter(|n| !n.is_empty());
        let rank = |a: &wgpu::Adapter| match a.get_info().device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Cpu => 3,
            wgpu::DeviceType::Other => 4,
        };
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        let adapter = match &wanted {
            Some(name) => adapters
                .into_iter()
                .find(|a| {
                    a.get_info()
                        .name
                        .to_lowercase()
                        .contains(&name.to_lowercase())
                })
                .ok_or_else(|| {
                    WgpuError::NoAdapter(format!(
                        " named like `{name}` (WGPU_ADAPTER_NAME); found: {}",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ))
                })?,
            None => adapters
                .into_iter()
                .min_by_key(|a| rank(a))
                .ok_or_else(|| WgpuError::NoAdapter(String::new()))?,
        };
        let features = adapter.features() & wgpu::Features::SHADER_F16;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("kernelhub"),
                required_features: features,
                required_limits: adapter.limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| WgpuError::Device {
                adapter: adapter.get_info().name,
                reason: e.to_string(),
            })?;
        Ok(Gpu {
            adapter,
            device,
            queue,
        })
    }

    /// The adapter's name and backend, for reports.
    pub fn describe(&self) -> String {
        let info = self.adapter.get_info();
        format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
    }

    /// Whether the device has 16-bit floats in shaders.
    pub fn has_f16(&self) -> bool {
        self.device.features().contains(wgpu::Features::SHADER_F16)
    }

    /// A storage buffer holding `bytes` (padded to 4 bytes), readable back.
    pub fn upload(&self, bytes: &[u8]) -> wgpu::Buffer {
        let size = (bytes.len() as u64).next_multiple_of(4).max(4);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kernelhub tensor"),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut padded = bytes.to_vec();
        padded.resize(size as usize, 0);
        self.queue.write_buffer(&buffer, 0, &padded);
        buffer
    }

    /// The first `len` bytes of `buffer`.
    pub fn download(&self, buffer: &wgpu::Buffer, len: u64) -> Result<Vec<u8>, WgpuError> {
        let size = len.next_multiple_of(4).max(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kernelhub readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        self.queue.submit([encoder.finish()]);
        let slice = staging.slice(..);
        let (sender, receiver) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = sender.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| WgpuError::Readback(e.to_string()))?;
        receiver
            .recv()
            .map_err(|e| WgpuError::Readback(e.to_string()))?
            .map_err(|e| WgpuError::Readback(e.to_string()))?;
        let view = slice
            .get_mapped_range()
            .map_err(|e| WgpuError::Readback(e.to_string()))?;
        Ok(view[..len as usize].to_vec())
    }
}

/// An argument of a launch on this backend.
pub enum WgpuArg<'a> {
    /// A tensor: the buffer, and its dtype.
    Tensor(&'a wgpu::Buffer, Dtype),
    /// A scalar.
    Scalar(Scalar),
}

/// One WGSL artifact of a kernel, compiled for a device.
pub struct WgslKernel {
    manifest: KernelManifest,
    artifact: Artifact,
    pipelines: HashMap<(String, Dtype), wgpu::ComputePipeline>,
}

impl WgslKernel {
    /// Compiles every entry point of `artifact` (verified WGSL `source`).
    pub fn new(
        gpu: &Gpu,
        manifest: &KernelManifest,
        artifact: &Artifact,
        source: &str,
    ) -> Result<Self, WgpuError> {
        let shader_error = |reason: String| WgpuError::Shader {
            path: artifact.path.get_ref().clone(),
            adapter: gpu.adapter.get_info().name,
            reason,
        };
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = gpu
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(artifact.path.get_ref()),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let mut pipelines = HashMap::new();
        for entry in &artifact.entries {
            let pipeline = gpu
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry.symbol.get_ref()),
                    layout: None,
                    module: &module,
                    entry_point: Some(entry.symbol.get_ref()),
                    compilation_options: Default::default(),
                    cache: None,
                });
            pipelines.insert(
                (entry.op.get_ref().clone(), *entry.dtype.get_ref()),
                pipeline,
            );
        }
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(shader_error(error.to_string()));
        }
        Ok(WgslKernel {
            manifest: manifest.clone(),
            artifact: artifact.clone(),
            pipelines,
        })
    }

    fn op(&self, name: &str) -> Result<&Op, WgpuError> {
        self.manifest
            .ops
            .iter()
            .find(|o| o.name.get_ref() == name)
            .ok_or_else(|| {
                WgpuError::NoEntry(format!(
                    "kernel `{}` has no op `{name}`",
                    self.manifest.kernel.name.get_ref()
                ))
            })
    }

    /// Checks the call, then launches `op` at `dtype` and waits for it.
    pub fn launch(
        &self,
        gpu: &Gpu,
        op: &str,
        dtype: Dtype,
        arguments: &[WgpuArg<'_>],
    ) -> Result<(), WgpuError> {
        let signature = self.op(op)?;
        let (pipeline, entry) = match (
            self.pipelines.get(&(op.to_string(), dtype)),
            self.artifact
                .entries
                .iter()
                .find(|e| e.op.get_ref() == op && *e.dtype.get_ref() == dtype),
        ) {
            (Some(p), Some(e)) => (p, e),
            _ => {
                return Err(WgpuError::NoEntry(format!(
                    "`{}` has no entry for op `{op}` at {dtype:?}",
                    self.artifact.path.get_ref()
                )));
            }
        };
        let checked: Vec<Arg> = arguments
            .iter()
            .map(|a| match a {
                WgpuArg::Tensor(buffer, dtype) => Arg::Tensor(TensorRef {
                    buffer: buffer_id(buffer),
                    offset: 0,
                    len: buffer.size(),
                    dtype: *dtype,
                }),
                WgpuArg::Scalar(s) => Arg::Scalar(*s),
            })
            .collect();
        args::check(signature, dtype, &checked)?;
        // Integer scalars give the grid.
        let sizes: HashMap<&str, u64> = signature
            .params
            .iter()
            .zip(arguments)
            .filter_map(|(p, a)| match a {
                WgpuArg::Scalar(Scalar::U32(v)) => Some((p.name.get_ref().as_str(), u64::from(*v))),
                WgpuArg::Scalar(Scalar::U64(v)) => Some((p.name.get_ref().as_str(), *v)),
                WgpuArg::Scalar(Scalar::I32(v)) => u64::try_from(*v)
                    .ok()
                    .map(|v| (p.name.get_ref().as_str(), v)),
                WgpuArg::Scalar(Scalar::I64(v)) => u64::try_from(*v)
                    .ok()
                    .map(|v| (p.name.get_ref().as_str(), v)),
                _ => None,
            })
            .collect();
        let mut grid = [1u32; 3];
        for (slot, expr) in grid.iter_mut().zip(&entry.grid) {
            let value = expr
                .get_ref()
                .eval(&|n| sizes.get(n).copied())
                .map_err(|e| WgpuError::NoEntry(format!("grid of `{op}`: {e}")))?;
            *slot = u32::try_from(value)
                .map_err(|_| WgpuError::NoEntry(format!("grid of `{op}` is {value}, above u32")))?;
        }
        if grid.contains(&0) {
            return Ok(());
        }
        // The scalars, packed as the uniform struct after the tensors.
        let mut uniform: Vec<u8> = Vec::new();
        for argument in arguments {
            let WgpuArg::Scalar(scalar) = argument else {
                continue;
            };
            let (bytes, align): (Vec<u8>, usize) = match scalar {
                Scalar::U32(v) => (v.to_le_bytes().to_vec(), 4),
                Scalar::I32(v) => (v.to_le_bytes().to_vec(), 4),
                Scalar::F32(v) => (v.to_le_bytes().to_vec(), 4),
                Scalar::U64(v) => (v.to_le_bytes().to_vec(), 8),
                Scalar::I64(v) => (v.to_le_bytes().to_vec(), 8),
            };
            uniform.resize(uniform.len().next_multiple_of(align), 0);
            uniform.extend(bytes);
        }
        let scalar_buffer = (!uniform.is_empty()).then(|| {
            uniform.resize(uniform.len().next_multiple_of(16), 0);
            let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kernelhub scalars"),
                size: uniform.len() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            gpu.queue.write_buffer(&buffer, 0, &uniform);
            buffer
        });
        let mut entries: Vec<wgpu::BindGroupEntry<'_>> = Vec::new();
        for (param, argument) in signature.params.iter().zip(arguments) {
            if let (ParamKind::Tensor { .. }, WgpuArg::Tensor(buffer, _)) = (&param.kind, argument)
            {
                entries.push(wgpu::BindGroupEntry {
                    binding: entries.len() as u32,
                    resource: buffer.as_entire_binding(),
                });
            }
        }
        if let Some(buffer) = &scalar_buffer {
            entries.push(wgpu::BindGroupEntry {
                binding: entries.len() as u32,
                resource: buffer.as_entire_binding(),
            });
        }
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("kernelhub arguments"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
        }
        gpu.queue.submit([encoder.finish()]);
        Ok(())
    }
}

/// A stable identity for a buffer, for the aliasing check.
fn buffer_id(buffer: &wgpu::Buffer) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(buffer, &mut hasher);
    std::hash::Hasher::finish(&hasher)
}
