//! Runs a reference op on its device with random inputs, compares the
//! result with the CPU reference and times it: what `kernelhub run`
//! prints, and what the GPU check script and the benches measure.
//!
//! Shapes are fixed per op family except for the number of rows
//! (`tokens`): activation and rms_norm use rows of 4096, softmax 4096
//! columns, rotary 32 query and 8 key heads of 128 with a 4096-position
//! cache. f16 and bf16 inputs are rounded to their type first, so the CPU
//! reference sees exactly what the GPU sees.

use std::time::{Duration, Instant};

use kernelhub_manifest::kernel::Dtype;
use kernelhub_runtime::convert::{bf16_from_f32, f16_from_f32, f32_from_bf16, f32_from_f16};
use kernelhub_runtime::reference::{self, Rotary};
use kernelhub_runtime::{Arg, Buffer, Device, Op, RuntimeError};

/// The largest difference allowed between a backend and the CPU reference,
/// `abs + rel · |reference|`, per dtype.
pub fn tolerance(dtype: Dtype) -> (f64, f64) {
    match dtype {
        // The WGSL and native code use their own exp/erf/tanh and f32
        // accumulation; the reference computes in f64.
        Dtype::F32 => (1e-5, 1e-4),
        // One f16 rounding of the output (2^-11 relative) plus f32 arithmetic.
        Dtype::F16 => (1e-3, 2e-3),
        // One bf16 rounding (2^-8 relative).
        _ => (1e-2, 1.6e-2),
    }
}

/// What one op did.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// The op.
    pub op: String,
    /// Its dtype.
    pub dtype: Dtype,
    /// The shape, for reports (`256 x 4096`).
    pub size: String,
    /// The artifact it ran from.
    pub artifact: String,
    /// Largest |backend - reference| over the output.
    pub max_error: f64,
    /// Elements outside the tolerance (NaN where the reference is not, too).
    pub mismatches: usize,
    /// Bytes one launch reads and writes.
    pub bytes: u64,
    /// Launches timed.
    pub launches: u32,
    /// Mean time per launch.
    pub per_launch: Duration,
}

impl Measurement {
    /// Effective bandwidth, bytes moved per second.
    pub fn bytes_per_second(&self) -> f64 {
        self.bytes as f64 / self.per_launch.as_secs_f64().max(1e-12)
    }
}

/// How long to time each op for, at least.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Keep launching until this much time has passed (after one launch to
    /// estimate the count); zero times one launch.
    pub at_least: Duration,
}

/// The ops this module knows how to feed.
pub const OPS: &[&str] = &[
    "silu_and_mul",
    "gelu_and_mul",
    "gelu_tanh_and_mul",
    "rms_norm",
    "rotary_neox",
    "rotary_gptj",
    "softmax",
];

/// Deterministic values in [-4, 4).
fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0
        })
        .collect()
}

/// `values` rounded to `dtype`, and their bytes.
/// A 16-bit float encoding: to bits, from bits.
type HalfCodec = (fn(f32) -> u16, fn(u16) -> f32);

/// The 16-bit codec of `dtype`, or `None` for f32.
fn half_codec(dtype: Dtype) -> Option<HalfCodec> {
    match dtype {
        Dtype::F16 => Some((f16_from_f32, f32_from_f16)),
        Dtype::Bf16 => Some((bf16_from_f32, f32_from_bf16)),
        _ => None,
    }
}

fn encode(values: &[f32], dtype: Dtype) -> (Vec<f32>, Vec<u8>) {
    match half_codec(dtype) {
        Some((to_bits, from_bits)) => {
            let bits: Vec<u16> = values.iter().map(|&v| to_bits(v)).collect();
            (
                bits.iter().map(|&b| from_bits(b)).collect(),
                bits.iter().flat_map(|b| b.to_le_bytes()).collect(),
            )
        }
        None => (
            values.to_vec(),
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    }
}

fn decode(bytes: &[u8], dtype: Dtype) -> Vec<f32> {
    match half_codec(dtype) {
        Some((_, from_bits)) => bytes
            .chunks_exact(2)
            .map(|c| from_bits(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        None => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}

/// Largest error and the count outside tolerance.
pub fn compare(got: &[f32], expected: &[f32], dtype: Dtype) -> (f64, usize) {
    let (abs, rel) = tolerance(dtype);
    let mut max_error = 0.0f64;
    let mut mismatches = usize::from(got.len() != expected.len());
    for (&g, &e) in got.iter().zip(expected) {
        let (g, e) = (f64::from(g), f64::from(e));
        if g.is_nan() || e.is_nan() || g.is_infinite() || e.is_infinite() {
            let same = (g.is_nan() && e.is_nan()) || g == e;
            mismatches += usize::from(!same);
            continue;
        }
        let error = (g - e).abs();
        max_error = max_error.max(error);
        mismatches += usize::from(error > abs + rel * e.abs());
    }
    (max_error, mismatches)
}

/// One op's inputs on a device: the launch arguments' buffers, the output
/// to read back and the CPU reference's answer.
pub struct Workload {
    dtype: Dtype,
    buffers: Vec<Buffer>,
    params: Vec<Param>,
    /// The buffers the op writes, in order; `expected` is their
    /// concatenation.
    outputs: Vec<usize>,
    expected: Vec<f32>,
    size: String,
    bytes: u64,
}

/// A parameter: a tensor (index into the buffers, dtype) or a scalar.
enum Param {
    Tensor(usize, Dtype),
    Scalar(kernelhub_runtime::args::Scalar),
}

impl Workload {
    /// Random inputs for `op` at `dtype` with `tokens` rows, uploaded to
    /// `device`, and the CPU reference's answer.
    pub fn new(
        device: &dyn Device,
        op: &str,
        dtype: Dtype,
        tokens: u32,
    ) -> Result<Self, RuntimeError> {
        prepare(device, op, dtype, tokens)
    }

    /// The launch arguments, in parameter order.
    pub fn args(&self) -> Vec<Arg<'_>> {
        self.params
            .iter()
            .map(|p| match p {
                Param::Tensor(i, dtype) => Arg::tensor(&self.buffers[*i], *dtype),
                Param::Scalar(s) => Arg::Scalar(*s),
            })
            .collect()
    }

    /// Bytes one launch must read and write.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The shape, for reports.
    pub fn size(&self) -> &str {
        &self.size
    }

    /// Reads the output back and compares it with the reference: the
    /// largest error and the count of elements outside [`tolerance`].
    pub fn compare(&self, device: &dyn Device) -> Result<(f64, usize), RuntimeError> {
        let mut got = Vec::with_capacity(self.expected.len());
        for &index in &self.outputs {
            let output = &self.buffers[index];
            got.extend(decode(
                &device.download(output, 0, output.len())?,
                self.dtype,
            ));
        }
        Ok(compare(&got, &self.expected, self.dtype))
    }
}

/// Runs `op` once, checks it, then times it.
pub fn exercise(
    device: &dyn Device,
    op: &dyn Op,
    tokens: u32,
    timing: Timing,
) -> Result<Measurement, RuntimeError> {
    let dtype = op.dtype();
    let workload = Workload::new(device, op.name(), dtype, tokens)?;
    let args = workload.args();
    op.launch(&args)?;
    let (max_error, mismatches) = workload.compare(device)?;
    // Time: one launch to estimate, then enough launches for `at_least`.
    let start = Instant::now();
    op.launch(&args)?;
    device.synchronize()?;
    let one = start.elapsed().max(Duration::from_micros(1));
    let launches = (timing.at_least.as_secs_f64() / one.as_secs_f64()).clamp(1.0, 10_000.0) as u32;
    let per_launch = batched(device, op, &args, u64::from(launches))? / launches;
    Ok(Measurement {
        op: op.name().to_string(),
        dtype,
        size: workload.size.clone(),
        artifact: op.artifact().to_string(),
        max_error,
        mismatches,
        bytes: workload.bytes,
        launches,
        per_launch,
    })
}

/// Times `launches` launches of `op` recorded into one submission, up to the
/// device being idle again.
pub fn batched(
    device: &dyn Device,
    op: &dyn Op,
    args: &[Arg<'_>],
    launches: u64,
) -> Result<Duration, RuntimeError> {
    let start = Instant::now();
    device.begin_batch();
    for _ in 0..launches {
        op.launch(args)?;
    }
    device.flush()?;
    device.synchronize()?;
    Ok(start.elapsed())
}

fn prepare(
    device: &dyn Device,
    op: &str,
    dtype: Dtype,
    tokens: u32,
) -> Result<Workload, RuntimeError> {
    use kernelhub_runtime::args::Scalar::{F32, U32};
    let t = tokens as usize;
    let element = dtype.size() as u64;
    let mut buffers = Vec::new();
    // Rotary's token positions are the one integer tensor: uploaded first,
    // as buffer 0, so every other tensor goes through `upload` below.
    let positions: Vec<u32> = if op.starts_with("rotary") {
        let positions: Vec<u32> = (0..tokens)
            .map(|i| i.wrapping_mul(2_654_435_761) % 4096)
            .collect();
        let bytes: Vec<u8> = positions.iter().flat_map(|p| p.to_le_bytes()).collect();
        buffers.push(device.upload(&bytes)?);
        positions
    } else {
        Vec::new()
    };
    let mut upload = |values: &[f32]| -> Result<(usize, Vec<f32>), RuntimeError> {
        let (rounded, bytes) = encode(values, dtype);
        buffers.push(device.upload(&bytes)?);
        Ok((buffers.len() - 1, rounded))
    };
    let prepared = match op {
        "silu_and_mul" | "gelu_and_mul" | "gelu_tanh_and_mul" => {
            let d = 4096usize;
            let (out, _) = upload(&vec![0.0; t * d])?;
            let (input, values) = upload(&random(t * 2 * d, 1))?;
            let mut expected = vec![0.0; t * d];
            let cpu = match op {
                "silu_and_mul" => reference::silu_and_mul,
                "gelu_and_mul" => reference::gelu_and_mul,
                _ => reference::gelu_tanh_and_mul,
            };
            cpu(&mut expected, &values, t, d);
            Workload {
                dtype,
                params: vec![
                    Param::Tensor(out, dtype),
                    Param::Tensor(input, dtype),
                    Param::Scalar(U32(tokens)),
                    Param::Scalar(U32(d as u32)),
                ],
                outputs: vec![out],
                expected,
                size: format!("{t} x {d}"),
                bytes: (t * 3 * d) as u64 * element,
                buffers: Vec::new(),
            }
        }
        "rms_norm" => {
            let hidden = 4096usize;
            let (out, _) = upload(&vec![0.0; t * hidden])?;
            let (input, values) = upload(&random(t * hidden, 2))?;
            let (weight, weights) = upload(&random(hidden, 3))?;
            let mut expected = vec![0.0; t * hidden];
            reference::rms_norm(&mut expected, &values, &weights, 1e-6, t, hidden);
            Workload {
                dtype,
                params: vec![
                    Param::Tensor(out, dtype),
                    Param::Tensor(input, dtype),
                    Param::Tensor(weight, dtype),
                    Param::Scalar(F32(1e-6)),
                    Param::Scalar(U32(tokens)),
                    Param::Scalar(U32(hidden as u32)),
                ],
                outputs: vec![out],
                expected,
                size: format!("{t} x {hidden}"),
                bytes: (2 * t * hidden + hidden) as u64 * element,
                buffers: Vec::new(),
            }
        }
        "rotary_neox" | "rotary_gptj" => {
            let g = Rotary {
                tokens: t,
                num_heads: 32,
                num_kv_heads: 8,
                head_size: 128,
                rot_dim: 128,
                max_position: 4096,
                neox: op == "rotary_neox",
            };
            let (query, mut q) = upload(&random(t * 32 * 128, 4))?;
            let (key, mut k) = upload(&random(t * 8 * 128, 5))?;
            let angles: Vec<f32> = (0..4096 * 64)
                .map(|i| (i / 64) as f32 * 10_000f32.powf(-((i % 64) as f32) / 64.0))
                .collect();
            let mut cache_values = Vec::with_capacity(4096 * 128);
            for p in 0..4096 {
                cache_values.extend(angles[p * 64..(p + 1) * 64].iter().map(|a| a.cos()));
                cache_values.extend(angles[p * 64..(p + 1) * 64].iter().map(|a| a.sin()));
            }
            let (cache, cache_rounded) = upload(&cache_values)?;
            reference::rotary(&positions, &mut q, &mut k, &cache_rounded, g);
            q.extend_from_slice(&k);
            Workload {
                dtype,
                params: vec![
                    Param::Tensor(0, Dtype::U32),
                    Param::Tensor(query, dtype),
                    Param::Tensor(key, dtype),
                    Param::Tensor(cache, dtype),
                    Param::Scalar(U32(tokens)),
                    Param::Scalar(U32(32)),
                    Param::Scalar(U32(8)),
                    Param::Scalar(U32(128)),
                    Param::Scalar(U32(128)),
                    Param::Scalar(U32(4096)),
                ],
                outputs: vec![query, key],
                expected: q,
                size: format!("{t} x (32 + 8) x 128"),
                // Query and key read and written, one cache row read per token.
                bytes: (2 * t * 40 * 128 + t * 128) as u64 * element + 4 * t as u64,
                buffers: Vec::new(),
            }
        }
        "softmax" => {
            let cols = 4096usize;
            let (out, _) = upload(&vec![0.0; t * cols])?;
            let (input, values) = upload(&random(t * cols, 6))?;
            let mut expected = vec![0.0; t * cols];
            reference::softmax(&mut expected, &values, t, cols);
            Workload {
                dtype,
                params: vec![
                    Param::Tensor(out, dtype),
                    Param::Tensor(input, dtype),
                    Param::Scalar(U32(tokens)),
                    Param::Scalar(U32(cols as u32)),
                ],
                outputs: vec![out],
                expected,
                size: format!("{t} x {cols}"),
                bytes: (2 * t * cols) as u64 * element,
                buffers: Vec::new(),
            }
        }
        other => {
            return Err(RuntimeError::NoOp(format!(
                "no reference inputs for op `{other}`; `kernelhub run` knows {}",
                OPS.join(", ")
            )));
        }
    };
    Ok(Workload {
        buffers,
        ..prepared
    })
}
