//! The reference kernels' WGSL run through wgpu (in CI on Mesa's lavapipe,
//! installed by `scripts/test.sh`), compared with the CPU references.
//!
//! Every op (the gated activations, rms_norm, softmax, both rotaries) runs
//! at every dtype the adapter has (f32; f16 with `shader-f16`) and in every
//! WGSL variant it has (the plain artifact; the `subgroups` one where the
//! adapter has subgroups), on ragged sizes (a row length that is not a
//! multiple of 4, so the kernels' component path runs, next to multiples of
//! 4 for their vec4 path), rows longer than a workgroup (1000 and 5000
//! columns), more rows than workgroups, 1x1, empty calls (no rows), a few
//! random shapes, and NaN and ±infinity in the inputs.
//!
//! Tolerance, with `cpu` the reference's answer (computed in f64, rounded to
//! f32):
//! - f32: |gpu - cpu| ≤ 1e-5 + 1e-5·|cpu| (the WGSL uses its own exp, erf and
//!   tanh in f32).
//! - f16: the inputs are rounded to f16 first and the reference runs on the
//!   rounded values; then |gpu - cpu| ≤ 1e-5 + 2e-3·|cpu| (the output's own
//!   f16 rounding is up to 2^-11 ≈ 4.9e-4 relative, plus the f32 arithmetic;
//!   the absolute term covers f16's subnormals).
//! - both: NaN where the reference has NaN, the same infinity where it has
//!   one. Elements after the output tensor keep their sentinel.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kernelhub_manifest::kernel::{Backend, Dtype, WgpuFeature};
use kernelhub_manifest::{KernelManifest, Strictness};
use kernelhub_runtime::args::Scalar;
use kernelhub_runtime::convert::{f16_from_f32, f32_from_f16};
use kernelhub_runtime::device::VerifiedArtifact;
use kernelhub_runtime::reference;
use kernelhub_runtime::select::choose;
use kernelhub_runtime::{Arg, Buffer, Device, Kernel, RuntimeError};
use kernelhub_wgpu::WgpuDevice;

fn gpu() -> Arc<WgpuDevice> {
    kernelhub_wgpu::open().expect("an adapter (scripts/test.sh installs lavapipe)")
}

fn kernel_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../kernels")
        .join(name)
}

fn manifest(name: &str) -> KernelManifest {
    let text = std::fs::read_to_string(kernel_dir(name).join("kernel.toml")).unwrap();
    KernelManifest::parse(&text, Path::new("kernel.toml"), Strictness::Load)
        .value
        .unwrap()
}

/// Loads `kernels/<name>` onto `gpu` the way the facade does: choose an
/// artifact per (op, dtype), verify each chosen file against its pin.
fn kernel(gpu: &WgpuDevice, name: &str) -> Arc<dyn Kernel> {
    let manifest = manifest(name);
    let choices = choose(&manifest, gpu.info());
    load(gpu, name, manifest, choices)
}

fn load(
    gpu: &WgpuDevice,
    name: &str,
    manifest: KernelManifest,
    choices: Vec<kernelhub_runtime::select::OpChoice>,
) -> Arc<dyn Kernel> {
    let mut chosen: Vec<usize> = choices.iter().filter_map(|c| c.chosen).collect();
    chosen.sort_unstable();
    chosen.dedup();
    let artifacts = chosen
        .into_iter()
        .map(|index| {
            let path = kernel_dir(name).join(manifest.artifacts[index].path.get_ref());
            let bytes = std::fs::read(path).unwrap();
            VerifiedArtifact::check(&manifest, index, bytes.into()).expect("the pinned bytes")
        })
        .collect();
    gpu.load(Arc::new(manifest), choices, artifacts).unwrap()
}

/// `kernels/<name>` with each (op, dtype) forced onto its WGSL artifact
/// with (`subgroups`) or without subgroup operations, among those whose
/// features the adapter has; `None` when the adapter or the kernel has no
/// subgroup variant.
fn kernel_variant(gpu: &WgpuDevice, name: &str, subgroups: bool) -> Option<Arc<dyn Kernel>> {
    let features = &gpu.info().features;
    let manifest = manifest(name);
    let has_variant = manifest.artifacts.iter().any(|a| {
        a.features
            .iter()
            .any(|f| *f.get_ref() == WgpuFeature::Subgroups)
    });
    if subgroups && !(has_variant && features.contains(&WgpuFeature::Subgroups)) {
        return None;
    }
    let mut choices = choose(&manifest, gpu.info());
    for choice in &mut choices {
        choice.chosen = manifest.artifacts.iter().position(|a| {
            let has = |f: WgpuFeature| a.features.iter().any(|x| *x.get_ref() == f);
            *a.backend.get_ref() == Backend::Wgpu
                && a.entries
                    .iter()
                    .any(|e| *e.op.get_ref() == choice.op && *e.dtype.get_ref() == choice.dtype)
                && has(WgpuFeature::Subgroups) == subgroups
                && a.features.iter().all(|f| features.contains(f.get_ref()))
        });
        choice.rejected.clear();
    }
    Some(load(gpu, name, manifest, choices))
}

/// Every WGSL variant of `kernels/<name>` this adapter runs, named.
fn variants(gpu: &WgpuDevice, name: &str) -> Vec<(&'static str, Arc<dyn Kernel>)> {
    [("plain", false), ("subgroups", true)]
        .into_iter()
        .filter_map(|(label, subgroups)| Some((label, kernel_variant(gpu, name, subgroups)?)))
        .collect()
}

/// The dtypes this adapter runs WGSL at.
fn dtypes(gpu: &WgpuDevice) -> Vec<Dtype> {
    let mut dtypes = vec![Dtype::F32];
    if gpu.info().features.contains(&WgpuFeature::ShaderF16) {
        dtypes.push(Dtype::F16);
    }
    dtypes
}

fn upload(gpu: &WgpuDevice, bytes: &[u8]) -> Buffer {
    gpu.upload(bytes).unwrap()
}

fn download(gpu: &WgpuDevice, buffer: &Buffer, len: usize) -> Vec<u8> {
    gpu.download(buffer, 0, len as u64).unwrap()
}

/// A CPU reference for a gated activation.
type Gated = fn(&mut [f32], &[f32], usize, usize);

/// Deterministic values in [-4, 4).
fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| (rng.next() >> 40) as f32 / (1u64 << 24) as f32 * 8.0 - 4.0)
        .collect()
}

/// xorshift64, for values and shapes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
}

/// `values` as `dtype` would store them (f16: rounded to nearest).
fn rounded(values: &[f32], dtype: Dtype) -> Vec<f32> {
    match dtype {
        Dtype::F16 => values
            .iter()
            .map(|&v| f32_from_f16(f16_from_f32(v)))
            .collect(),
        _ => values.to_vec(),
    }
}

fn encode(values: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F16 => values
            .iter()
            .flat_map(|&v| f16_from_f32(v).to_le_bytes())
            .collect(),
        _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn decode(bytes: &[u8], dtype: Dtype) -> Vec<f32> {
    match dtype {
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| f32_from_f16(u16::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
    }
}

/// What an output buffer holds before the launch: a value no kernel
/// computes here (and exact in f16), so an element left unwritten shows.
const SENTINEL: f32 = 1234.0;

/// Elements after each output tensor, in the same buffer (so bound with
/// it), that the kernel must leave alone.
const TAIL: usize = 40;

/// An output tensor of `n` elements, and [`TAIL`] more, filled with
/// [`SENTINEL`].
fn output(gpu: &WgpuDevice, n: usize, dtype: Dtype) -> Buffer {
    upload(gpu, &encode(&vec![SENTINEL; n + TAIL], dtype))
}

/// Downloads `buffer` from [`output`] and compares its first elements with
/// `cpu`; the tail must still hold the sentinel.
fn check(gpu: &WgpuDevice, buffer: &Buffer, cpu: &[f32], dtype: Dtype, what: &str) {
    let got = decode(
        &download(gpu, buffer, (cpu.len() + TAIL) * dtype.size()),
        dtype,
    );
    assert_close(&got[..cpu.len()], cpu, dtype, what);
    assert!(
        got[cpu.len()..].iter().all(|&v| v == SENTINEL),
        "{what}: wrote past the tensor: {:?}",
        &got[cpu.len()..]
    );
}

fn assert_close(gpu: &[f32], cpu: &[f32], dtype: Dtype, what: &str) {
    assert_eq!(gpu.len(), cpu.len());
    let relative = match dtype {
        Dtype::F16 => 2e-3,
        _ => 1e-5,
    };
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let ok = if c.is_nan() || c.is_infinite() {
            (g.is_nan() && c.is_nan()) || g == c
        } else {
            (g - c).abs() <= 1e-5 + relative * c.abs()
        };
        assert!(ok, "{what}[{i}]: gpu {g}, cpu {c}");
    }
}

/// A few random (rows, row length) shapes, row lengths up to `longest`.
fn random_shapes(seed: u64, longest: usize) -> Vec<(usize, usize)> {
    let mut rng = Rng::new(seed);
    (0..4)
        .map(|_| (rng.range(1, 24), rng.range(1, longest)))
        .collect()
}

#[test]
fn activations_match_the_cpu_reference() {
    let gpu = gpu();
    let ops: [(&str, Gated); 3] = [
        ("silu_and_mul", reference::silu_and_mul),
        ("gelu_and_mul", reference::gelu_and_mul),
        ("gelu_tanh_and_mul", reference::gelu_tanh_and_mul),
    ];
    let mut shapes = vec![
        (37usize, 300usize), // vec4 path, partial tile
        (1, 1),
        (3, 257),  // component path
        (5, 1000), // a full 4096-output tile and a partial one
        (2, 5000),
        (3, 5001),
        (7, 2), // tokens * d not a multiple of 4
        (1, 4),
        (0, 8), // empty
        (0, 3),
    ];
    shapes.extend(random_shapes(1, 700));
    for (variant, activation) in variants(&gpu, "activation") {
        for dtype in dtypes(&gpu) {
            for &(tokens, d) in &shapes {
                let mut values = random(tokens * 2 * d, (tokens * d) as u64);
                // NaN and infinities in the gate and in the up half.
                let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
                for (slot, special) in specials.into_iter().enumerate() {
                    if tokens > 0 && slot < d {
                        values[slot] = special;
                        values[(tokens - 1) * 2 * d + d + (d - 1 - slot)] = special;
                    }
                }
                let input = rounded(&values, dtype);
                let input_buffer = upload(&gpu, &encode(&input, dtype));
                for (op, cpu) in ops {
                    let out = output(&gpu, tokens * d, dtype);
                    activation
                        .op(op, dtype)
                        .unwrap()
                        .launch(&[
                            Arg::tensor(&out, dtype),
                            Arg::tensor(&input_buffer, dtype),
                            (tokens as u32).into(),
                            (d as u32).into(),
                        ])
                        .unwrap();
                    let mut expected = vec![0.0f32; tokens * d];
                    cpu(&mut expected, &input, tokens, d);
                    let what = format!("{op} {dtype} {variant} {tokens}x{d}");
                    check(&gpu, &out, &expected, dtype, &what);
                }
            }
        }
    }
}

#[test]
fn rms_norm_matches_the_cpu_reference() {
    let gpu = gpu();
    let mut shapes = vec![
        (5usize, 1000usize), // rows longer than a workgroup
        (3, 5000),
        (2, 5003), // component path
        (1, 1),
        (4, 7),
        (6, 256),
        (2, 4096),
        (0, 16), // empty
    ];
    shapes.extend(random_shapes(2, 3000));
    for (variant, rmsnorm) in variants(&gpu, "rmsnorm") {
        for dtype in dtypes(&gpu) {
            let op = rmsnorm.op("rms_norm", dtype).unwrap();
            assert_eq!(
                op.artifact().contains("subgroups"),
                variant == "subgroups",
                "{}",
                op.artifact()
            );
            for &(tokens, hidden) in &shapes {
                let mut values = random(tokens * hidden, (tokens * hidden) as u64 + 3);
                // A NaN in row 1, +inf in row 2, -inf in row 3.
                for (row, special) in [(1, f32::NAN), (2, f32::INFINITY), (3, f32::NEG_INFINITY)] {
                    if row < tokens {
                        values[row * hidden + hidden / 2] = special;
                    }
                }
                let input = rounded(&values, dtype);
                let weight = rounded(&random(hidden, hidden as u64), dtype);
                let out = output(&gpu, tokens * hidden, dtype);
                let (input_buffer, weight_buffer) = (
                    upload(&gpu, &encode(&input, dtype)),
                    upload(&gpu, &encode(&weight, dtype)),
                );
                op.launch(&[
                    Arg::tensor(&out, dtype),
                    Arg::tensor(&input_buffer, dtype),
                    Arg::tensor(&weight_buffer, dtype),
                    Arg::Scalar(Scalar::F32(1e-6)),
                    (tokens as u32).into(),
                    (hidden as u32).into(),
                ])
                .unwrap();
                let mut expected = vec![0.0f32; tokens * hidden];
                reference::rms_norm(&mut expected, &input, &weight, 1e-6, tokens, hidden);
                let what = format!("rms_norm {dtype} {variant} {tokens}x{hidden}");
                check(&gpu, &out, &expected, dtype, &what);
            }
        }
    }
}

#[test]
fn softmax_matches_the_cpu_reference() {
    let gpu = gpu();
    let mut shapes = vec![
        (6usize, 1000usize), // rows longer than a workgroup
        (6, 5000),
        (6, 5001), // component path
        (1, 1),
        (7, 3),
        (5, 256),
        (3, 1024),
        (0, 4),      // empty
        (70_000, 1), // more rows than workgroups: the row loop
    ];
    shapes.extend(random_shapes(3, 3000));
    for (variant, softmax) in variants(&gpu, "softmax") {
        for dtype in dtypes(&gpu) {
            let op = softmax.op("softmax", dtype).unwrap();
            assert_eq!(
                op.artifact().contains("subgroups"),
                variant == "subgroups",
                "{}",
                op.artifact()
            );
            for &(rows, cols) in &shapes {
                let mut values = random(rows * cols, (rows * cols) as u64 + 5);
                if rows >= 6 && cols >= 2 {
                    // Row 0: a NaN; row 1: +inf; row 2: only -inf; row 3:
                    // some -inf; row 4: large values (stability); row 5
                    // stays random.
                    values[cols / 2] = f32::NAN;
                    values[cols + cols - 1] = f32::INFINITY;
                    values[2 * cols..3 * cols].fill(f32::NEG_INFINITY);
                    values[3 * cols] = f32::NEG_INFINITY;
                    values[4 * cols - 1] = f32::NEG_INFINITY;
                    for v in &mut values[4 * cols..5 * cols] {
                        *v += 1000.0;
                    }
                }
                let input = rounded(&values, dtype);
                let out = output(&gpu, rows * cols, dtype);
                let input_buffer = upload(&gpu, &encode(&input, dtype));
                op.launch(&[
                    Arg::tensor(&out, dtype),
                    Arg::tensor(&input_buffer, dtype),
                    (rows as u32).into(),
                    (cols as u32).into(),
                ])
                .unwrap();
                let mut expected = vec![0.0f32; rows * cols];
                reference::softmax(&mut expected, &input, rows, cols);
                let what = format!("softmax {dtype} {variant} {rows}x{cols}");
                check(&gpu, &out, &expected, dtype, &what);
            }
        }
    }
}

#[test]
fn rotary_matches_the_cpu_reference() {
    let gpu = gpu();
    // (tokens, num_heads, num_kv_heads, head_size, rot_dim, max_position)
    let mut shapes = vec![
        (5usize, 4usize, 2usize, 64usize, 64usize, 8usize),
        (3, 3, 1, 10, 6, 4),      // only part of each head rotates
        (7, 40, 8, 128, 128, 16), // more (head, pair) items than a workgroup
        (1, 1, 1, 2, 2, 1),
        (2, 2, 0, 6, 4, 3),  // no key heads
        (4, 2, 1, 8, 10, 4), // rot_dim > head_size: nothing rotates
        (0, 2, 2, 8, 8, 4),  // empty
    ];
    let mut rng = Rng::new(4);
    for _ in 0..4 {
        let head_size = rng.range(1, 80);
        let rot_dim = rng.range(0, head_size / 2) * 2;
        shapes.push((
            rng.range(1, 12),
            rng.range(1, 6),
            rng.range(0, 3),
            head_size,
            rot_dim,
            rng.range(1, 9),
        ));
    }
    for (variant, rotary) in variants(&gpu, "rotary") {
        for dtype in dtypes(&gpu) {
            for neox in [true, false] {
                let name = if neox { "rotary_neox" } else { "rotary_gptj" };
                let op = rotary.op(name, dtype).unwrap();
                for &(tokens, num_heads, num_kv_heads, head_size, rot_dim, max_position) in &shapes
                {
                    let g = reference::Rotary {
                        tokens,
                        num_heads,
                        num_kv_heads,
                        head_size,
                        rot_dim,
                        max_position,
                        neox,
                    };
                    // Positions up to 2 past the cache: those tokens stay as they are.
                    let positions: Vec<u32> = (0..tokens)
                        .map(|t| {
                            if t == 1 {
                                max_position as u32
                            } else {
                                rng.range(0, max_position + 1) as u32
                            }
                        })
                        .collect();
                    let mut query = rounded(&random(tokens * num_heads * head_size, 11), dtype);
                    if !query.is_empty() {
                        query[0] = f32::NAN;
                        let last = query.len() - 1;
                        query[last] = f32::INFINITY;
                    }
                    let mut key = rounded(&random(tokens * num_kv_heads * head_size, 12), dtype);
                    let cache = rounded(&random(max_position * rot_dim, 13), dtype);
                    let with_tail = |values: &[f32]| {
                        let mut v = values.to_vec();
                        v.extend([SENTINEL; TAIL]);
                        upload(&gpu, &encode(&v, dtype))
                    };
                    let (query_buffer, key_buffer) = (with_tail(&query), with_tail(&key));
                    let positions_buffer = upload(
                        &gpu,
                        &positions
                            .iter()
                            .flat_map(|p| p.to_le_bytes())
                            .collect::<Vec<u8>>(),
                    );
                    let cache_buffer = upload(&gpu, &encode(&cache, dtype));
                    op.launch(&[
                        Arg::tensor(&positions_buffer, Dtype::U32),
                        Arg::tensor(&query_buffer, dtype),
                        Arg::tensor(&key_buffer, dtype),
                        Arg::tensor(&cache_buffer, dtype),
                        (tokens as u32).into(),
                        (num_heads as u32).into(),
                        (num_kv_heads as u32).into(),
                        (head_size as u32).into(),
                        (rot_dim as u32).into(),
                        (max_position as u32).into(),
                    ])
                    .unwrap();
                    reference::rotary(&positions, &mut query, &mut key, &cache, g);
                    let what = format!("{name} {dtype} {variant} {g:?}");
                    check(
                        &gpu,
                        &query_buffer,
                        &query,
                        dtype,
                        &format!("query of {what}"),
                    );
                    check(&gpu, &key_buffer, &key, dtype, &format!("key of {what}"));
                }
            }
        }
    }
}

#[test]
fn empty_calls_launch_nothing_and_wrong_calls_are_errors() {
    let gpu = gpu();
    let activation = kernel(&gpu, "activation");
    let silu = activation.op("silu_and_mul", Dtype::F32).unwrap();
    let out = upload(&gpu, &[0u8; 16]);
    let input = upload(&gpu, &[0u8; 16]);
    let call = |tokens: u32, d: u32, out_dtype: Dtype| {
        silu.launch(&[
            Arg::tensor(&out, out_dtype),
            Arg::tensor(&input, Dtype::F32),
            tokens.into(),
            d.into(),
        ])
    };
    call(0, 4, Dtype::F32).expect("no tokens, no work");
    let small = call(4, 4, Dtype::F32).unwrap_err().to_string();
    assert!(
        small.contains("parameter `out`: the shape needs 16 elements"),
        "{small}"
    );
    let dtype = call(1, 1, Dtype::F16).unwrap_err().to_string();
    assert!(
        dtype.contains("parameter `out`: expected a F32 tensor"),
        "{dtype}"
    );
    let aliased = silu
        .launch(&[
            Arg::tensor(&out, Dtype::F32),
            Arg::tensor(&out, Dtype::F32),
            1u32.into(),
            1u32.into(),
        ])
        .unwrap_err();
    assert!(matches!(aliased, RuntimeError::Args(_)), "{aliased}");
    let unknown = activation
        .op("softmax", Dtype::F32)
        .err()
        .unwrap()
        .to_string();
    assert!(unknown.contains("has no op `softmax`"), "{unknown}");
    let bf16 = activation
        .op("silu_and_mul", Dtype::Bf16)
        .err()
        .unwrap()
        .to_string();
    assert!(
        bf16.contains("nothing in kernel `activation` runs op `silu_and_mul` at bf16")
            && bf16.contains("build/cuda/activation_sm80.ptx")
            && bf16.contains("hint: WGSL has no bf16 type"),
        "{bf16}"
    );
}
