//! The reference kernels' WGSL run through wgpu (in CI on Mesa's lavapipe,
//! installed by `scripts/test.sh`), compared with the CPU references on
//! ragged sizes, rows longer than a workgroup, empty calls and NaN.
//! Tolerance for f32: |gpu - cpu| ≤ 1e-5 + 1e-5·|cpu| (the WGSL uses its
//! own exp/erf/tanh; the references compute in f64).

use std::path::Path;
use std::sync::Arc;

use kernelhub_manifest::kernel::Dtype;
use kernelhub_manifest::{KernelManifest, Strictness};
use kernelhub_runtime::args::Scalar;
use kernelhub_runtime::device::VerifiedArtifact;
use kernelhub_runtime::reference;
use kernelhub_runtime::select::choose;
use kernelhub_runtime::{Arg, Buffer, Device, Kernel, RuntimeError};
use kernelhub_wgpu::WgpuDevice;

fn gpu() -> Arc<WgpuDevice> {
    kernelhub_wgpu::open().expect("an adapter (scripts/test.sh installs lavapipe)")
}

/// Loads `kernels/<name>` onto `gpu` the way the facade does: choose an
/// artifact per (op, dtype), verify each chosen file against its pin.
fn kernel(gpu: &WgpuDevice, name: &str) -> Arc<dyn Kernel> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../kernels")
        .join(name);
    let text = std::fs::read_to_string(dir.join("kernel.toml")).unwrap();
    let manifest = KernelManifest::parse(&text, Path::new("kernel.toml"), Strictness::Load)
        .value
        .unwrap();
    let choices = choose(&manifest, gpu.info());
    let mut chosen: Vec<usize> = choices.iter().filter_map(|c| c.chosen).collect();
    chosen.sort_unstable();
    chosen.dedup();
    let artifacts = chosen
        .into_iter()
        .map(|index| {
            let bytes = std::fs::read(dir.join(manifest.artifacts[index].path.get_ref())).unwrap();
            VerifiedArtifact::check(&manifest, index, bytes.into()).expect("the pinned bytes")
        })
        .collect();
    gpu.load(Arc::new(manifest), choices, artifacts).unwrap()
}

fn upload(gpu: &WgpuDevice, bytes: &[u8]) -> Buffer {
    gpu.upload(bytes).unwrap()
}

fn download(gpu: &WgpuDevice, buffer: &Buffer, len: usize) -> Vec<u8> {
    gpu.download(buffer, 0, len as u64).unwrap()
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
    let gpu = gpu();
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
            let out = upload(&gpu, &vec![0u8; tokens * d * 4]);
            let input_buffer = upload(&gpu, &bytes(&input));
            activation
                .op(op, Dtype::F32)
                .unwrap()
                .launch(&[
                    Arg::tensor(&out, Dtype::F32),
                    Arg::tensor(&input_buffer, Dtype::F32),
                    (tokens as u32).into(),
                    (d as u32).into(),
                ])
                .unwrap();
            let mut expected = vec![0.0f32; tokens * d];
            cpu(&mut expected, &input, tokens, d);
            let got = floats(&download(&gpu, &out, tokens * d * 4));
            assert_close(&got, &expected, &format!("{op} {tokens}x{d}"));
        }
    }
}

#[test]
fn rms_norm_with_rows_longer_than_a_workgroup() {
    let gpu = gpu();
    let rmsnorm = kernel(&gpu, "rmsnorm");
    let (tokens, hidden) = (5usize, 1000usize);
    let input = random(tokens * hidden, 7);
    let weight = random(hidden, 9);
    let out = upload(&gpu, &vec![0u8; tokens * hidden * 4]);
    let (input_buffer, weight_buffer) =
        (upload(&gpu, &bytes(&input)), upload(&gpu, &bytes(&weight)));
    rmsnorm
        .op("rms_norm", Dtype::F32)
        .unwrap()
        .launch(&[
            Arg::tensor(&out, Dtype::F32),
            Arg::tensor(&input_buffer, Dtype::F32),
            Arg::tensor(&weight_buffer, Dtype::F32),
            Arg::Scalar(Scalar::F32(1e-6)),
            (tokens as u32).into(),
            (hidden as u32).into(),
        ])
        .unwrap();
    let mut expected = vec![0.0f32; tokens * hidden];
    reference::rms_norm(&mut expected, &input, &weight, 1e-6, tokens, hidden);
    let got = floats(&download(&gpu, &out, tokens * hidden * 4));
    assert_close(&got, &expected, "rms_norm");
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
