//! Variant selection over synthetic platforms: the NVIDIA and AMD machines
//! CI does not have (SM 7.5, 8.0, 9.0; old and new drivers; gfx90a with and
//! without xnack), for the project's own reference kernels and for the
//! preference order the native backends promise: a cubin for the exact SM,
//! then a fatbin containing it, then PTX the device can JIT, else WGSL on
//! the wgpu device.

use std::path::Path;

use kernelhub_manifest::kernel::{Backend, DriverVersion, Dtype, WgpuFeature};
use kernelhub_manifest::{KernelManifest, Strictness};
use kernelhub_runtime::DeviceInfo;
use kernelhub_runtime::select::choose;

fn reference(kernel: &str) -> KernelManifest {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../kernels")
        .join(kernel)
        .join("kernel.toml");
    let text = std::fs::read_to_string(&path).expect("reference manifest reads");
    KernelManifest::parse(&text, &path, Strictness::Load)
        .value
        .expect("reference manifest parses")
}

fn device(backend: Backend, platform: &str, driver: Option<(u32, u32)>) -> DeviceInfo {
    DeviceInfo {
        backend,
        platform: platform.parse().expect("test platform parses"),
        name: platform.to_string(),
        kind: String::new(),
        features: if backend == Backend::Wgpu {
            vec![WgpuFeature::ShaderF16, WgpuFeature::Subgroups]
        } else {
            Vec::new()
        },
        driver: driver.map(|(major, minor)| DriverVersion { major, minor }),
    }
}

/// The artifact chosen for (op, dtype), or every candidate's reason.
fn chosen(
    manifest: &KernelManifest,
    device: &DeviceInfo,
    op: &str,
    dtype: Dtype,
) -> Result<String, String> {
    let choice = choose(manifest, device)
        .into_iter()
        .find(|c| c.op == op && c.dtype == dtype)
        .expect("the op and dtype exist");
    match choice.chosen {
        Some(index) => Ok(manifest.artifacts[index].path.get_ref().clone()),
        None => Err(choice
            .rejected
            .iter()
            .map(|(_, why)| why.as_str())
            .collect::<Vec<_>>()
            .join(" | ")),
    }
}

#[test]
fn reference_kernels_on_synthetic_gpus() {
    use Backend::{Cuda, Rocm, Wgpu};
    let ptx = "build/cuda/activation_sm80.ptx";
    let gfx90a = "build/rocm/activation_gfx90a.hsaco";
    let gfx942 = "build/rocm/activation_gfx942.hsaco";
    // (backend, platform, driver, expected artifact or a fragment of the reason)
    type Row<'a> = (
        Backend,
        &'a str,
        Option<(u32, u32)>,
        Result<&'a str, &'a str>,
    );
    let table: &[Row<'_>] = &[
        (Cuda, "cuda:sm_90", Some((12, 4)), Ok(ptx)),
        (Cuda, "cuda:sm_90", Some((13, 0)), Ok(ptx)),
        (Cuda, "cuda:sm_80", Some((11, 0)), Ok(ptx)),
        (Cuda, "cuda:sm_86", Some((11, 4)), Ok(ptx)),
        (
            Cuda,
            "cuda:sm_75",
            Some((12, 4)),
            Err("built for `sm_80`, which cannot run on `sm_75`"),
        ),
        (
            Cuda,
            "cuda:sm_90",
            Some((10, 2)),
            Err(
                "needs a cuda driver of version 11.0 or newer; `cuda:sm_90` has 10.2: update the driver",
            ),
        ),
        (
            Rocm,
            "rocm:gfx90a:sramecc+:xnack-",
            Some((5, 2)),
            Ok(gfx90a),
        ),
        (
            Rocm,
            "rocm:gfx90a:sramecc-:xnack+",
            Some((6, 0)),
            Ok(gfx90a),
        ),
        (Rocm, "rocm:gfx90a", Some((5, 2)), Ok(gfx90a)),
        (
            Rocm,
            "rocm:gfx942:sramecc+:xnack-",
            Some((6, 0)),
            Ok(gfx942),
        ),
        (
            Rocm,
            "rocm:gfx1100",
            Some((6, 0)),
            Err("which cannot run on `gfx1100`"),
        ),
        (Wgpu, "wgpu", None, Ok("wgsl/activation_f32.wgsl")),
    ];
    let manifest = reference("activation");
    for (backend, platform, driver, expected) in table {
        let got = chosen(
            &manifest,
            &device(*backend, platform, *driver),
            "silu_and_mul",
            Dtype::F32,
        );
        match (expected, &got) {
            (Ok(path), Ok(got)) => assert_eq!(got, path, "{platform} {driver:?}"),
            (Err(fragment), Err(reasons)) => {
                assert!(
                    reasons.contains(fragment),
                    "{platform} {driver:?}: {reasons}"
                );
            }
            _ => panic!("{platform} {driver:?}: expected {expected:?}, got {got:?}"),
        }
    }
    // bf16 has native artifacts only: the wgpu device says why it cannot.
    let on_wgpu = chosen(
        &manifest,
        &device(Wgpu, "wgpu", None),
        "silu_and_mul",
        Dtype::Bf16,
    );
    assert!(on_wgpu.is_err_and(|r| r.contains("a cuda artifact")));
}

#[test]
fn every_reference_op_and_dtype_has_a_native_artifact_for_sm_90_and_gfx90a() {
    for kernel in ["activation", "rmsnorm", "rotary", "softmax"] {
        let manifest = reference(kernel);
        for platform in ["cuda:sm_90", "rocm:gfx90a:xnack-"] {
            let backend = if platform.starts_with("cuda") {
                Backend::Cuda
            } else {
                Backend::Rocm
            };
            let gpu = device(backend, platform, Some((12, 4)));
            for choice in choose(&manifest, &gpu) {
                assert!(
                    choice.chosen.is_some(),
                    "{kernel} {} {} on {platform}: {:?}",
                    choice.op,
                    choice.dtype,
                    choice.rejected
                );
            }
        }
    }
}

#[test]
fn cubin_then_fatbin_then_ptx_then_nothing() {
    let artifact = |format: &str, targets: &str, i: usize| {
        format!(
            "[[artifacts]]\nbackend = \"cuda\"\nformat = \"{format}\"\ntargets = [{targets}]\npath = \"a{i}.{format}\"\nsize = 1\nsha256 = \"{}\"\n\
             [[artifacts.entries]]\nop = \"scale\"\ndtype = \"f32\"\nsymbol = \"s\"\ngrid = [1]\nblock = [64]\n",
            "0".repeat(64)
        )
    };
    // The fatbin comes first in the manifest: order alone must not decide.
    let text = format!(
        "schema = 1\n[kernel]\nname = \"k\"\nversion = \"1.0.0\"\nlicense = \"MIT\"\n\
         [ops.scale]\ndtypes = [\"f32\"]\n\
         params = [{{ name = \"x\", tensor = \"T\", shape = [\"n\"], written = true }}, {{ name = \"n\", scalar = \"u32\" }}]\n\
         {}{}{}",
        artifact("fatbin", "\"sm_80\", \"sm_90\"", 0),
        artifact("cubin", "\"sm_90a\"", 1),
        artifact("ptx", "\"sm_80\"", 2),
    );
    let manifest = KernelManifest::parse(&text, Path::new("kernel.toml"), Strictness::Load)
        .value
        .expect("test manifest parses");
    let on = |platform: &str| {
        chosen(
            &manifest,
            &device(Backend::Cuda, platform, Some((12, 4))),
            "scale",
            Dtype::F32,
        )
    };
    assert_eq!(
        on("cuda:sm_90").unwrap(),
        "a1.cubin",
        "the exact cubin first"
    );
    assert_eq!(
        on("cuda:sm_80").unwrap(),
        "a0.fatbin",
        "then a fatbin holding the SM"
    );
    assert_eq!(
        on("cuda:sm_86").unwrap(),
        "a0.fatbin",
        "sm_80 machine code runs on sm_86"
    );
    assert_eq!(
        on("cuda:sm_100").unwrap(),
        "a2.ptx",
        "then PTX the driver can JIT"
    );
    assert!(on("cuda:sm_75").is_err(), "nothing for an older GPU");
}
