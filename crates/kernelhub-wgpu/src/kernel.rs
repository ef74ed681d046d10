//! A kernel's WGSL ops on one [`crate::WgpuDevice`].
//!
//! [`WgslKernel`] hands out ops, compiling each (op, dtype)'s entry point
//! on first use. [`WgslOp::launch`] checks the call, binds the tensors at
//! `@group(0) @binding(i)` in parameter order with the scalars as one
//! uniform struct after them (docs/formats.md), computes the grid from the
//! manifest's expressions and dispatches. An empty grid launches nothing.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};

use kernelhub_manifest::kernel::{Dtype, Entry, Format, KernelManifest};
use kernelhub_runtime::args::Scalar;
use kernelhub_runtime::device::VerifiedArtifact;
use kernelhub_runtime::launch::{FoundOp, check_call, chosen_artifacts, dims, find_op, param_name};
use kernelhub_runtime::select::OpChoice;
use kernelhub_runtime::{Arg, DeviceInfo, Kernel, Op, RuntimeError};

use crate::device::{CompiledEntry, Shared};

/// A kernel loaded on a wgpu device.
pub(crate) struct WgslKernel {
    shared: Arc<Shared>,
    manifest: Arc<KernelManifest>,
    choices: Vec<OpChoice>,
    artifacts: HashMap<usize, Arc<[u8]>>,
    ops: Mutex<HashMap<(String, Dtype), Arc<WgslOp>>>,
}

impl WgslKernel {
    pub(crate) fn new(
        shared: Arc<Shared>,
        manifest: Arc<KernelManifest>,
        choices: Vec<OpChoice>,
        artifacts: Vec<VerifiedArtifact>,
    ) -> Result<Self, RuntimeError> {
        for (artifact, _) in chosen_artifacts(&manifest, &choices, &artifacts, &shared.info.name)? {
            if *artifact.format.get_ref() != Format::Wgsl {
                return Err(RuntimeError::Load {
                    path: artifact.path.get_ref().clone(),
                    device: shared.info.name.clone(),
                    reason: "the wgpu backend runs WGSL artifacts only".into(),
                });
            }
        }
        let artifacts: HashMap<usize, Arc<[u8]>> =
            artifacts.into_iter().map(|a| (a.index, a.bytes)).collect();
        Ok(WgslKernel {
            shared,
            manifest,
            choices,
            artifacts,
            ops: Mutex::default(),
        })
    }
}

impl Kernel for WgslKernel {
    fn manifest(&self) -> &KernelManifest {
        &self.manifest
    }

    fn device(&self) -> &DeviceInfo {
        &self.shared.info
    }

    fn op(&self, name: &str, dtype: Dtype) -> Result<Arc<dyn Op>, RuntimeError> {
        let key = (name.to_string(), dtype);
        if let Some(op) = self.ops.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(op.clone());
        }
        let FoundOp {
            signature,
            artifact: index,
            entry,
        } = find_op(
            &self.manifest,
            &self.choices,
            name,
            dtype,
            &self.shared.info.name,
        )?;
        let artifact = &self.manifest.artifacts[index];
        let compiled = self.shared.compile(
            artifact.path.get_ref(),
            *artifact.sha256.get_ref(),
            &self.artifacts[&index],
            entry.symbol.get_ref(),
        )?;
        let op = Arc::new(WgslOp {
            shared: self.shared.clone(),
            manifest: self.manifest.clone(),
            signature,
            dtype,
            path: artifact.path.get_ref().clone(),
            entry,
            compiled,
        });
        self.ops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, op.clone());
        Ok(op)
    }
}

/// One (op, dtype), compiled.
pub(crate) struct WgslOp {
    shared: Arc<Shared>,
    manifest: Arc<KernelManifest>,
    /// Index of the op in the manifest.
    signature: usize,
    dtype: Dtype,
    path: String,
    entry: Entry,
    compiled: Arc<CompiledEntry>,
}

impl Op for WgslOp {
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
        let checked = check_call(signature, self.dtype, arguments, self.shared.id)?;
        let launch_error = |reason: String| RuntimeError::Launch {
            op: op.clone(),
            reason,
        };
        // Each tensor's binding: the range it may address, checked against
        // what the shape needs and what the adapter can bind.
        let limits = &self.shared.limits;
        let mut bindings: Vec<(&wgpu::Buffer, u64, u64)> = Vec::new();
        for (i, (argument, elements)) in arguments.iter().zip(&checked.needed).enumerate() {
            let (Arg::Tensor(tensor), Some(elements)) = (argument, elements) else {
                continue;
            };
            let name = param_name(i);
            let buffer = tensor.buffer.handle::<wgpu::Buffer>().ok_or_else(|| {
                RuntimeError::ForeignBuffer {
                    op: op.clone(),
                    param: name.clone(),
                }
            })?;
            let alignment = u64::from(limits.min_storage_buffer_offset_alignment);
            if tensor.offset % alignment != 0 {
                return Err(launch_error(format!(
                    "parameter `{name}` starts at byte {}; `{}` binds storage buffers only at multiples of {alignment} bytes",
                    tensor.offset, self.shared.info.name
                )));
            }
            let stride = self
                .compiled
                .strides
                .get(&(bindings.len() as u32))
                .copied()
                .unwrap_or(1);
            // A binding covers whole array elements and whole 4-byte words.
            let unit = stride.max(4);
            let bytes = elements * tensor.dtype.size() as u64;
            let available = buffer.size().saturating_sub(tensor.offset);
            let addressable = available / unit * unit;
            if bytes > addressable {
                return Err(launch_error(format!(
                    "parameter `{name}` needs {bytes} bytes; the shader reads it in {unit}-byte units, so only {addressable} of the buffer's {available} bytes are addressable; allocate it rounded up to {unit} bytes"
                )));
            }
            let max = limits.max_storage_buffer_binding_size / unit * unit;
            if bytes > max {
                return Err(launch_error(format!(
                    "parameter `{name}` needs {bytes} bytes; `{}` binds at most {max} bytes per buffer; split the call",
                    self.shared.info.name
                )));
            }
            let size = addressable.min(max);
            if size == 0 {
                return Err(launch_error(format!(
                    "parameter `{name}` is an empty buffer; wgpu cannot bind it"
                )));
            }
            bindings.push((buffer, tensor.offset, size));
        }
        // wgpu tracks usage per buffer, not per range: a buffer bound as
        // written cannot also be bound for another tensor of the launch,
        // even where the ranges are disjoint.
        let tensors: Vec<(usize, u64)> = arguments
            .iter()
            .enumerate()
            .filter_map(|(i, a)| match a {
                Arg::Tensor(t) => Some((i, t.buffer.id())),
                Arg::Scalar(_) => None,
            })
            .collect();
        for (i, param) in signature.params.iter().enumerate() {
            let kernelhub_manifest::kernel::ParamKind::Tensor { written: true, .. } = param.kind
            else {
                continue;
            };
            let Some((_, id)) = tensors.iter().find(|(j, _)| *j == i) else {
                continue;
            };
            if let Some((other, _)) = tensors.iter().find(|(j, other)| *j != i && other == id) {
                return Err(launch_error(format!(
                    "`{}` is written and `{}` is in the same buffer; wgpu cannot bind one buffer as written and as another tensor in one launch, even at disjoint offsets: pass separate buffers",
                    param.name.get_ref(),
                    param_name(*other)
                )));
            }
        }
        // Integer scalars give the grid.
        let grid = dims(self.entry.grid.iter().map(|e| e.get_ref()), &checked.sizes)
            .map_err(|e| launch_error(format!("its grid {e}")))?;
        let most = limits.max_compute_workgroups_per_dimension;
        let grid = grid.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        if let Some(n) = grid.iter().find(|n| **n > most) {
            return Err(launch_error(format!(
                "its grid is {n} workgroups in one dimension; `{}` allows at most {most} per dimension",
                self.shared.info.name
            )));
        }
        if grid.contains(&0) {
            return Ok(());
        }
        let uniform = pack_scalars(arguments);
        self.shared.dispatch(
            &self.compiled,
            &uniform,
            |scalars| {
                let mut entries: Vec<wgpu::BindGroupEntry<'_>> = bindings
                    .iter()
                    .enumerate()
                    .map(|(i, (buffer, offset, size))| wgpu::BindGroupEntry {
                        binding: i as u32,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer,
                            offset: *offset,
                            size: NonZeroU64::new(*size),
                        }),
                    })
                    .collect();
                if let Some(scalars) = scalars {
                    entries.push(wgpu::BindGroupEntry {
                        binding: entries.len() as u32,
                        resource: wgpu::BindingResource::Buffer(scalars),
                    });
                }
                self.shared
                    .device
                    .create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(op),
                        layout: &self.compiled.layout,
                        entries: &entries,
                    })
            },
            grid,
        )
    }
}

/// The scalars of a call as the uniform struct the shader declares: in
/// parameter order, each at its natural alignment, padded to 16 bytes.
fn pack_scalars(arguments: &[Arg<'_>]) -> Vec<u8> {
    let mut uniform: Vec<u8> = Vec::new();
    for argument in arguments {
        let Arg::Scalar(scalar) = argument else {
            continue;
        };
        let (bytes, align): ([u8; 8], usize) = match *scalar {
            Scalar::U32(v) => (widen(v.to_le_bytes()), 4),
            Scalar::I32(v) => (widen(v.to_le_bytes()), 4),
            Scalar::F32(v) => (widen(v.to_le_bytes()), 4),
            Scalar::U64(v) => (v.to_le_bytes(), 8),
            Scalar::I64(v) => (v.to_le_bytes(), 8),
        };
        uniform.resize(uniform.len().next_multiple_of(align), 0);
        uniform.extend_from_slice(&bytes[..align]);
    }
    uniform.resize(uniform.len().next_multiple_of(16), 0);
    uniform
}

fn widen(bytes: [u8; 4]) -> [u8; 8] {
    let mut wide = [0u8; 8];
    wide[..4].copy_from_slice(&bytes);
    wide
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_pack_at_their_alignment() {
        let packed = pack_scalars(&[
            Arg::Scalar(Scalar::F32(1.5)),
            Arg::Scalar(Scalar::U64(7)),
            Arg::Scalar(Scalar::U32(3)),
        ]);
        let mut expected = Vec::new();
        expected.extend(1.5f32.to_le_bytes());
        expected.extend([0; 4]);
        expected.extend(7u64.to_le_bytes());
        expected.extend(3u32.to_le_bytes());
        expected.extend([0; 12]);
        assert_eq!(packed, expected);
    }
}
