//! Checking a call against an op's signature, before any launch.
//!
//! Tensors are described by where they live (a buffer identity plus a byte
//! range), their dtype and their length, so the check works the same for
//! kernelhub-owned buffers, an engine's `wgpu::Buffer` or a raw device
//! pointer. The integer scalars fix every shape expression; each tensor must
//! hold at least the elements its shape needs, and no written tensor may
//! overlap another tensor of the call.

use kernelhub_manifest::kernel::{Dtype, Op, ParamKind, ScalarType, TensorDtype};

/// A scalar argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    /// `u32`.
    U32(u32),
    /// `i32`.
    I32(i32),
    /// `u64`.
    U64(u64),
    /// `i64`.
    I64(i64),
    /// `f32`.
    F32(f32),
}

impl Scalar {
    fn scalar_type(self) -> ScalarType {
        match self {
            Scalar::U32(_) => ScalarType::U32,
            Scalar::I32(_) => ScalarType::I32,
            Scalar::U64(_) => ScalarType::U64,
            Scalar::I64(_) => ScalarType::I64,
            Scalar::F32(_) => ScalarType::F32,
        }
    }

    /// The value as a non-negative integer, for shape and grid expressions.
    pub fn as_size(self) -> Option<u64> {
        match self {
            Scalar::U32(v) => Some(u64::from(v)),
            Scalar::U64(v) => Some(v),
            Scalar::I32(v) => u64::try_from(v).ok(),
            Scalar::I64(v) => u64::try_from(v).ok(),
            Scalar::F32(_) => None,
        }
    }
}

/// Where a tensor argument lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorRef {
    /// Identifies the allocation (a wgpu buffer), or the address space of
    /// a device whose buffers share one (CUDA, HIP).
    pub buffer: u64,
    /// Byte offset of the tensor in it (its device address, for CUDA and HIP).
    pub offset: u64,
    /// Bytes available from the offset.
    pub len: u64,
    /// Its element type.
    pub dtype: Dtype,
}

/// One argument of a call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arg {
    /// A tensor.
    Tensor(TensorRef),
    /// A scalar.
    Scalar(Scalar),
}

/// Why a call does not fit the op's signature.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArgError {
    /// The op has no such dtype.
    #[error("op `{op}` has no {dtype:?} variant; it supports {supported}")]
    Dtype {
        /// The op.
        op: String,
        /// Asked for.
        dtype: Dtype,
        /// What it has.
        supported: String,
    },
    /// Too many or too few arguments.
    #[error("op `{op}` takes {expected} arguments ({names}), the call passed {got}")]
    Count {
        /// The op.
        op: String,
        /// Its parameter count.
        expected: usize,
        /// Its parameter names.
        names: String,
        /// Passed.
        got: usize,
    },
    /// A tensor where a scalar belongs, or the other way round, or a wrong type.
    #[error("op `{op}`, parameter `{param}`: expected {expected}, got {got}")]
    Mismatch {
        /// The op.
        op: String,
        /// The parameter.
        param: String,
        /// What the signature says.
        expected: String,
        /// What was passed.
        got: String,
    },
    /// A buffer smaller than its shape needs.
    #[error(
        "op `{op}`, parameter `{param}`: the shape needs {needed} elements ({bytes} bytes), the buffer holds {have} bytes"
    )]
    TooSmall {
        /// The op.
        op: String,
        /// The parameter.
        param: String,
        /// Elements needed.
        needed: u64,
        /// Bytes needed.
        bytes: u64,
        /// Bytes available.
        have: u64,
    },
    /// A shape that cannot be computed from the scalars.
    #[error("op `{op}`, parameter `{param}`: its shape cannot be computed: {reason}")]
    Shape {
        /// The op.
        op: String,
        /// The parameter.
        param: String,
        /// Why.
        reason: String,
    },
    /// A written tensor overlapping another tensor.
    #[error(
        "op `{op}`: `{written}` is written and overlaps `{other}` in the same buffer; pass separate buffers or disjoint ranges"
    )]
    Alias {
        /// The op.
        op: String,
        /// The written parameter.
        written: String,
        /// The other parameter.
        other: String,
    },
}

/// The integer scalars of a call by parameter name: what shape and launch
/// geometry expressions are evaluated with. A list, not a map: ops have a
/// handful of parameters, and a launch should not hash.
#[derive(Debug, Clone, Default)]
pub struct Sizes<'a>(Vec<(&'a str, u64)>);

impl Sizes<'_> {
    /// The value of parameter `name`, if it is an integer scalar of the call.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// What a call that passed [`check`] needs.
#[derive(Debug, Clone)]
pub struct Checked<'a> {
    /// The elements each tensor parameter needs (`None` for scalars), in
    /// parameter order.
    pub needed: Vec<Option<u64>>,
    /// The integer scalars.
    pub sizes: Sizes<'a>,
}

/// Checks `args` against `op` at `dtype`.
pub fn check<'a>(op: &'a Op, dtype: Dtype, args: &[Arg]) -> Result<Checked<'a>, ArgError> {
    let name = op.name.get_ref().as_str();
    if !op.dtypes.iter().any(|d| *d.get_ref() == dtype) {
        let supported: Vec<String> = op
            .dtypes
            .iter()
            .map(|d| format!("{:?}", d.get_ref()))
            .collect();
        return Err(ArgError::Dtype {
            op: name.to_string(),
            dtype,
            supported: supported.join(", "),
        });
    }
    if args.len() != op.params.len() {
        let names: Vec<&str> = op
            .params
            .iter()
            .map(|p| p.name.get_ref().as_str())
            .collect();
        return Err(ArgError::Count {
            op: name.to_string(),
            expected: op.params.len(),
            names: names.join(", "),
            got: args.len(),
        });
    }
    let mismatch = |param: &str, expected: String, got: String| ArgError::Mismatch {
        op: name.to_string(),
        param: param.to_string(),
        expected,
        got,
    };
    let mut sizes = Sizes(Vec::with_capacity(args.len()));
    for (param, arg) in op.params.iter().zip(args) {
        let param_name = param.name.get_ref();
        match (&param.kind, arg) {
            (ParamKind::Scalar(expected), Arg::Scalar(value)) => {
                if value.scalar_type() != *expected.get_ref() {
                    return Err(mismatch(
                        param_name,
                        format!("a {:?} scalar", expected.get_ref()),
                        format!("a {:?} scalar", value.scalar_type()),
                    ));
                }
                if let Some(size) = value.as_size() {
                    sizes.0.push((param_name, size));
                }
            }
            (
                ParamKind::Tensor {
                    dtype: expected, ..
                },
                Arg::Tensor(tensor),
            ) => {
                let wanted = match expected.get_ref() {
                    TensorDtype::Generic => dtype,
                    TensorDtype::Fixed(fixed) => *fixed,
                };
                if tensor.dtype != wanted {
                    return Err(mismatch(
                        param_name,
                        format!("a {wanted:?} tensor"),
                        format!("a {:?} tensor", tensor.dtype),
                    ));
                }
            }
            (ParamKind::Scalar(expected), Arg::Tensor(_)) => {
                return Err(mismatch(
                    param_name,
                    format!("a {:?} scalar", expected.get_ref()),
                    "a tensor".into(),
                ));
            }
            (ParamKind::Tensor { .. }, Arg::Scalar(_)) => {
                return Err(mismatch(param_name, "a tensor".into(), "a scalar".into()));
            }
        }
    }
    let mut needed = Vec::with_capacity(args.len());
    for (param, arg) in op.params.iter().zip(args) {
        let (ParamKind::Tensor { shape, .. }, Arg::Tensor(tensor)) = (&param.kind, arg) else {
            needed.push(None);
            continue;
        };
        let param_name = param.name.get_ref();
        let mut elements: u64 = 1;
        for dim in shape {
            let value = dim
                .get_ref()
                .eval(&|n| sizes.get(n))
                .map_err(|e| ArgError::Shape {
                    op: name.to_string(),
                    param: param_name.clone(),
                    reason: e.to_string(),
                })?;
            elements = elements.checked_mul(value).ok_or_else(|| ArgError::Shape {
                op: name.to_string(),
                param: param_name.clone(),
                reason: "the element count overflows 64 bits".into(),
            })?;
        }
        let bytes = elements.saturating_mul(tensor.dtype.size() as u64);
        if bytes > tensor.len {
            return Err(ArgError::TooSmall {
                op: name.to_string(),
                param: param_name.clone(),
                needed: elements,
                bytes,
                have: tensor.len,
            });
        }
        needed.push(Some(elements));
    }
    // A written tensor may share no byte with any other tensor of the call.
    let used = |i: usize| -> Option<(TensorRef, u64)> {
        match (&args[i], needed[i]) {
            (Arg::Tensor(t), Some(n)) => Some((*t, n * t.dtype.size() as u64)),
            _ => None,
        }
    };
    for (i, param) in op.params.iter().enumerate() {
        let ParamKind::Tensor { written: true, .. } = param.kind else {
            continue;
        };
        let Some((a, a_len)) = used(i) else { continue };
        for (j, other) in op.params.iter().enumerate() {
            let Some((b, b_len)) = used(j).filter(|_| j != i) else {
                continue;
            };
            let overlap = a.buffer == b.buffer
                && a_len > 0
                && b_len > 0
                && a.offset < b.offset.saturating_add(b_len)
                && b.offset < a.offset.saturating_add(a_len);
            if overlap {
                return Err(ArgError::Alias {
                    op: name.to_string(),
                    written: param.name.get_ref().clone(),
                    other: other.name.get_ref().clone(),
                });
            }
        }
    }
    Ok(Checked { needed, sizes })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use kernelhub_manifest::{KernelManifest, Strictness};

    use super::*;

    fn activation() -> Op {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kernels/activation/kernel.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let manifest = KernelManifest::parse(&text, &path, Strictness::Load)
            .value
            .unwrap();
        manifest
            .ops
            .into_iter()
            .find(|o| o.name.get_ref() == "silu_and_mul")
            .unwrap()
    }

    fn tensor(buffer: u64, offset: u64, elements: u64, dtype: Dtype) -> Arg {
        Arg::Tensor(TensorRef {
            buffer,
            offset,
            len: elements * dtype.size() as u64,
            dtype,
        })
    }

    #[test]
    fn a_right_call_passes_and_reports_what_each_tensor_needs() {
        let op = activation();
        let args = [
            tensor(1, 0, 3 * 8, Dtype::F32),
            tensor(2, 0, 3 * 16, Dtype::F32),
            Arg::Scalar(Scalar::U32(3)),
            Arg::Scalar(Scalar::U32(8)),
        ];
        assert_eq!(
            check(&op, Dtype::F32, &args).unwrap().needed,
            [Some(24), Some(48), None, None]
        );
    }

    #[test]
    fn every_kind_of_wrong_call_names_the_op_and_parameter() {
        let op = activation();
        let good = [
            tensor(1, 0, 24, Dtype::F32),
            tensor(2, 0, 48, Dtype::F32),
            Arg::Scalar(Scalar::U32(3)),
            Arg::Scalar(Scalar::U32(8)),
        ];
        let error = |args: &[Arg], dtype: Dtype| check(&op, dtype, args).unwrap_err().to_string();
        assert!(error(&good, Dtype::I8).contains("has no I8 variant"));
        assert!(
            error(&good[..3], Dtype::F32).contains("takes 4 arguments (out, input, tokens, d)")
        );
        let mut wrong = good;
        wrong[1] = tensor(2, 0, 48, Dtype::F16);
        assert!(
            error(&wrong, Dtype::F32)
                .contains("parameter `input`: expected a F32 tensor, got a F16 tensor")
        );
        let mut wrong = good;
        wrong[3] = Arg::Scalar(Scalar::I64(8));
        assert!(error(&wrong, Dtype::F32).contains("parameter `d`: expected a U32 scalar"));
        let mut wrong = good;
        wrong[1] = tensor(2, 0, 47, Dtype::F32);
        assert!(error(&wrong, Dtype::F32).contains(
            "parameter `input`: the shape needs 48 elements (192 bytes), the buffer holds 188 bytes"
        ));
        let mut wrong = good;
        wrong[1] = tensor(1, 64, 48, Dtype::F32);
        assert!(error(&wrong, Dtype::F32).contains("`out` is written and overlaps `input`"));
        let mut disjoint = good;
        disjoint[1] = tensor(1, 96, 48, Dtype::F32);
        assert!(
            check(&op, Dtype::F32, &disjoint).is_ok(),
            "disjoint ranges of one buffer are fine"
        );
    }
}
