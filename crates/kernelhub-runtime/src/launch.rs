//! What every backend does between "load this plan" or "give me op X at
//! dtype D" and the driver call: pair the plan's artifacts with their
//! verified bytes, find the op's signature and chosen entry, evaluate the manifest's
//! launch geometry from the call's integer scalars, and (for the native
//! backends) lay the arguments out the way `cuLaunchKernel` and
//! `hipModuleLaunchKernel` read them.

use std::ffi::c_void;

use kernelhub_manifest::expr::Expr;
use kernelhub_manifest::kernel::{Artifact, Dtype, Entry, KernelManifest, Op as Signature};

use crate::args::{Checked, Scalar, Sizes};
use crate::device::{Arg, RuntimeError, VerifiedArtifact, describe};
use crate::select::{OpChoice, explain_uncovered};

/// The distinct artifacts `choices` chose, ascending: what a load reads,
/// verifies and hands to a backend.
pub fn chosen_indices(choices: &[OpChoice]) -> Vec<usize> {
    let mut chosen: Vec<usize> = choices.iter().filter_map(|c| c.chosen).collect();
    chosen.sort_unstable();
    chosen.dedup();
    chosen
}

/// Each artifact `choices` chose, with its verified bytes from `artifacts`,
/// for [`crate::Device::load`]; an error naming the artifact and `device`
/// where the plan and the bytes passed do not agree.
pub fn chosen_artifacts<'a>(
    manifest: &'a KernelManifest,
    choices: &[OpChoice],
    artifacts: &'a [VerifiedArtifact],
    device: &str,
) -> Result<Vec<(&'a Artifact, &'a VerifiedArtifact)>, RuntimeError> {
    chosen_indices(choices)
        .into_iter()
        .map(|index| {
            let artifact = manifest.artifacts.get(index).ok_or_else(|| {
                RuntimeError::NoOp(format!(
                    "the plan names artifact {index}, which the manifest lacks"
                ))
            })?;
            let verified =
                artifacts
                    .iter()
                    .find(|a| a.index == index)
                    .ok_or_else(|| RuntimeError::Load {
                        path: artifact.path.get_ref().clone(),
                        device: device.to_string(),
                        reason: "its verified bytes were not passed to `load`".into(),
                    })?;
            Ok((artifact, verified))
        })
        .collect()
}

/// An (op, dtype) found in a loaded kernel: its signature, the artifact
/// chosen for it and that artifact's entry.
#[derive(Debug, Clone)]
pub struct FoundOp {
    /// Index of the op in `manifest.ops`.
    pub signature: usize,
    /// Index of the chosen artifact in `manifest.artifacts`.
    pub artifact: usize,
    /// The artifact's entry for the (op, dtype).
    pub entry: Entry,
}

/// Finds op `name` at `dtype` among `choices`, or says why it cannot run on
/// `device`: no such op (naming the ones there are), no such dtype, or
/// every candidate with the reason it was refused.
pub fn find_op(
    manifest: &KernelManifest,
    choices: &[OpChoice],
    name: &str,
    dtype: Dtype,
    device: &str,
) -> Result<FoundOp, RuntimeError> {
    let kernel = manifest.kernel.name.get_ref();
    let Some(signature) = manifest.ops.iter().position(|o| o.name.get_ref() == name) else {
        let names: Vec<&str> = manifest
            .ops
            .iter()
            .map(|o| o.name.get_ref().as_str())
            .collect();
        return Err(RuntimeError::NoOp(format!(
            "kernel `{kernel}` has no op `{name}`; it has {}",
            names.join(", ")
        )));
    };
    let Some(choice) = choices.iter().find(|c| c.op == name && c.dtype == dtype) else {
        let dtypes: Vec<String> = manifest.ops[signature]
            .dtypes
            .iter()
            .map(|d| d.get_ref().to_string())
            .collect();
        return Err(RuntimeError::NoOp(format!(
            "op `{name}` of kernel `{kernel}` has no {dtype} variant; it supports {}",
            dtypes.join(", ")
        )));
    };
    let Some(artifact) = choice.chosen else {
        return Err(RuntimeError::NoOp(explain_uncovered(
            manifest, choice, device,
        )));
    };
    let entry = manifest.artifacts[artifact]
        .entries
        .iter()
        .find(|e| e.op.get_ref() == name && *e.dtype.get_ref() == dtype)
        .cloned()
        .ok_or_else(|| {
            RuntimeError::NoOp(format!(
                "`{}` has no entry for op `{name}` at {dtype}",
                manifest.artifacts[artifact].path.get_ref()
            ))
        })?;
    Ok(FoundOp {
        signature,
        artifact,
        entry,
    })
}

/// The name of parameter `index` of `signature` (`#index` past its end),
/// for messages.
pub fn param_name(signature: &Signature, index: usize) -> String {
    signature
        .params
        .get(index)
        .map_or_else(|| format!("#{index}"), |p| p.name.get_ref().clone())
}

/// Checks a call before anything is launched: every tensor in a buffer of
/// `device`, then the signature ([`crate::args::check`]).
pub fn check_call<'a>(
    signature: &'a Signature,
    dtype: Dtype,
    arguments: &[Arg<'_>],
    device: u64,
) -> Result<Checked<'a>, RuntimeError> {
    let described = describe(arguments, device).map_err(|i| RuntimeError::ForeignBuffer {
        op: signature.name.get_ref().clone(),
        param: param_name(signature, i),
    })?;
    Ok(crate::args::check(signature, dtype, &described)?)
}

/// Evaluates up to three geometry expressions (`grid` or `block`); missing
/// dimensions are 1. The error names the expression that failed.
pub fn dims<'e>(
    exprs: impl IntoIterator<Item = &'e Expr>,
    sizes: &Sizes<'_>,
) -> Result<[u64; 3], String> {
    let mut out = [1u64; 3];
    for (slot, expr) in out.iter_mut().zip(exprs) {
        *slot = expr
            .eval(&|n| sizes.get(n))
            .map_err(|e| format!("`{expr}`: {e}"))?;
    }
    Ok(out)
}

/// A call's arguments as a native kernel's parameter block: one 8-byte slot
/// per parameter (device addresses and 64-bit scalars fill it, 32-bit
/// scalars its first four bytes), and [`KernelParams::pointers`] gives the
/// `void**` array `cuLaunchKernel` and `hipModuleLaunchKernel` read each
/// parameter through.
#[derive(Debug, Default)]
pub struct KernelParams {
    slots: Vec<u64>,
}

impl KernelParams {
    /// Lays out `arguments`; `address` gives a tensor's device address
    /// (its buffer's base plus its offset).
    pub fn new(arguments: &[Arg<'_>], address: impl Fn(&crate::Tensor<'_>) -> u64) -> Self {
        let slots = arguments
            .iter()
            .map(|argument| match argument {
                Arg::Tensor(tensor) => address(tensor),
                Arg::Scalar(Scalar::U32(v)) => u64::from(*v),
                Arg::Scalar(Scalar::I32(v)) => u64::from(v.cast_unsigned()),
                Arg::Scalar(Scalar::F32(v)) => u64::from(v.to_bits()),
                Arg::Scalar(Scalar::U64(v)) => *v,
                Arg::Scalar(Scalar::I64(v)) => v.cast_unsigned(),
            })
            .collect();
        KernelParams { slots }
    }

    /// One pointer per parameter, to its value. Valid while `self` is
    /// neither moved nor changed; the driver copies the values at launch.
    /// A 32-bit value sits in the first four bytes of its slot, which is
    /// where a little-endian reader finds it (every platform CUDA and ROCm
    /// support is little-endian).
    pub fn pointers(&mut self) -> Vec<*mut c_void> {
        self.slots
            .iter_mut()
            .map(|slot| std::ptr::from_mut(slot).cast::<c_void>())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_hold_each_value_where_the_kernel_reads_it() {
        let mut params = KernelParams::new(
            &[
                Arg::Scalar(Scalar::U32(7)),
                Arg::Scalar(Scalar::F32(1.5)),
                Arg::Scalar(Scalar::I32(-2)),
                Arg::Scalar(Scalar::U64(1 << 40)),
            ],
            |_| unreachable!("no tensors"),
        );
        let pointers = params.pointers();
        assert_eq!(pointers.len(), 4);
        let first_four = |i: usize| params.slots[i].to_le_bytes()[..4].to_vec();
        assert_eq!(first_four(0), 7u32.to_le_bytes());
        assert_eq!(first_four(1), 1.5f32.to_le_bytes());
        assert_eq!(first_four(2), (-2i32).to_le_bytes());
        assert_eq!(params.slots[3], 1 << 40);
        // Each pointer addresses its own slot.
        for (i, pointer) in params.pointers().into_iter().enumerate() {
            assert_eq!(
                pointer.cast::<u64>(),
                std::ptr::from_mut(&mut params.slots[i])
            );
        }
    }
}
