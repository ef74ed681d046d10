//! The reference kernels' WGSL run through wgpu (in CI on Mesa's lavapipe,
//! installed by `scripts/test.sh`), compared with the CPU references on
//! ragged sizes, rows longer than a workgroup, empty calls and NaN.
//! Tolerance for f32: |gpu - cpu| ≤ 1e-5 + 1e-5·|cpu| (the WGSL uses its
//! own exp/erf/tanh; the references compute in f64).

use std::path::Path;

use kernelhub_manifest::hash::Sha256Digest;
use kernelhub_manifest::kernel::{Backend, Dtype};
use kernelhub_manifest::{KernelManifest, Strictness};
use kernelhub_runtime::args::Scalar;
use kernelhub_runtime::reference;
use kernelhub_wgpu::{Gpu, WgpuArg, WgpuError, WgslKernel};

fn kernel(gpu: &Gpu, name: &str) -> WgslKernel {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../kernels")
        .join(name);
    let text = std::fs::read_to_string(dir.join("kernel.toml")).unwrap();
    let manifest = KernelManifest::parse(&text, Path::new("kernel.toml"), Strictness::Load)
        .value
        .unwrap();
    let artifact = manifest
        .artifacts
        .iter()
        .find(|a| {
            *a.backend.get_ref() == Backend::Wgpu
                && a.entries.iter().any(|e| *e.dtype.get_ref() == Dtype::F32)
        })
        .unwrap()
        .clone();
    let source = std::fs::read(dir.join(artifact.path.get_ref())).unwrap();
    assert_eq!(
        Sha256Digest::of(&source),
        *artifact.sha256.get_ref(),
        "the WGSL is the pinned one"
    );
    WgslKernel::new(
        gpu,
        &manifest,
        &artifact,
        std::str::from_utf8(&source).unwrap(),
    )
    .unwrap()
}

/// A CPU reference for a gated activation.
type Gated = fn(&mut [f32], &[f32], usize, usize);

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 8.0 - 4.0
        })
        .collect()
}

fn bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn assert_close(gpu: &[f32], cpu: &[f32], what: &str) {
    assert_eq!(gpu.len(), cpu.len());
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        let ok = (g.is_nan() && c.is_nan()) || (g - c).abs() <= 1e-5 + 1e-5 * c.abs();
        assert!(ok, "{what}[{i}]: gpu {g}, cpu {c}");
    }
}

#[test]
fn activations_match_the_cpu_reference() {
    let gpu = Gpu::open().expect("an adapter (scripts/test.sh installs lavapipe)");
    let activation = kernel(&gpu, "activation");
    let ops: [(&str, Gated); 3] = [
        ("silu_and_mul", reference::silu_and_mul),
        ("gelu_and_mul", reference::gelu_and_mul),
        ("gelu_tanh_and_mul", reference::gelu_tanh_and_mul),
    ];
    for (tokens, d) in [(37usize, 300usize), (1, 1), (3, 257)] {
        let mut input = random(tokens * 2 * d, (tokens * d) as u64);
        input[0] = f32::NAN;
        for (op, cpu) in ops {
            let out = gpu.upload(&vec![0u8; tokens * d * 4]);
            let input_buffer = gpu.upload(&bytes(&input));
            activation
                .launch(
                    &gpu,
                    op,
                    Dtype::F32,
                    &[
                        WgpuArg::Tensor(&out, Dtype::F32),
                        WgpuArg::Tensor(&input_buffer, Dtype::F32),
                        WgpuArg::Scalar(Scalar::U32(tokens as u32)),
                        WgpuArg::Scalar(Scalar::U32(d as u32)),
                    ],
                )
                .unwrap();
            let mut expected = vec![0.0f32; tokens * d];
            cpu(&mut expected, &input, tokens, d);
            let got = floats(&gpu.download(&out, (tokens * d * 4) as u64).unwrap());
            assert_close(&got, &expected, &format!("{op} {tokens}x{d}"));
        }
    }
}

#[test]
fn rms_norm_with_rows_longer_than_a_workgroup() {
    let gpu = Gpu::open().expect("an adapter");
    let rmsnorm = kernel(&gpu, "rmsnorm");
    let (tokens, hidden) = (5usize, 1000usize);
    let input = random(tokens * hidden, 7);
    let weight = random(hidden, 9);
    let out = gpu.upload(&vec![0u8; tokens * hidden * 4]);
    let (input_buffer, weight_buffer) = (gpu.upload(&bytes(&input)), gpu.upload(&bytes(&weight)));
    rmsnorm
        .launch(
            &gpu,
            "rms_norm",
            Dtype::F32,
            &[
                WgpuArg::Tensor(&out, Dtype::F32),
                WgpuArg::Tensor(&input_buffer, Dtype::F32),
                WgpuArg::Tensor(&weight_buffer, Dtype::F32),
                WgpuArg::Scalar(Scalar::F32(1e-6)),
                WgpuArg::Scalar(Scalar::U32(tokens as u32)),
                WgpuArg::Scalar(Scalar::U32(hidden as u32)),
            ],
        )
        .unwrap();
    let mut expected = vec![0.0f32; tokens * hidden];
    reference::rms_norm(&mut expected, &input, &weight, 1e-6, tokens, hidden);
    let got = floats(&gpu.download(&out, (tokens * hidden * 4) as u64).unwrap());
    assert_close(&got, &expected, "rms_norm");
}

#[test]
fn empty_calls_launch_nothing_and_wrong_calls_are_errors() {
    let gpu = Gpu::open().expect("an adapter");
    let activation = kernel(&gpu, "activation");
    let out = gpu.upload(&[0u8; 16]);
    let input = gpu.upload(&[0u8; 16]);
    let call = |tokens: u32, d: u32, out_dtype: Dtype| {
        activation.launch(
            &gpu,
            "silu_and_mul",
            Dtype::F32,
            &[
                WgpuArg::Tensor(&out, out_dtype),
                WgpuArg::Tensor(&input, Dtype::F32),
                WgpuArg::Scalar(Scalar::U32(tokens)),
                WgpuArg::Scalar(Scalar::U32(d)),
            ],
        )
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
    let aliased = activation
        .launch(
            &gpu,
            "silu_and_mul",
            Dtype::F32,
            &[
                WgpuArg::Tensor(&out, Dtype::F32),
                WgpuArg::Tensor(&out, Dtype::F32),
                WgpuArg::Scalar(Scalar::U32(1)),
                WgpuArg::Scalar(Scalar::U32(1)),
            ],
        )
        .unwrap_err();
    assert!(matches!(aliased, WgpuError::Args(_)), "{aliased}");
    let unknown = activation
        .launch(&gpu, "softmax", Dtype::F32, &[])
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("no op `softmax`"), "{unknown}");
}
