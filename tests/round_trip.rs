//! Property tests: random bytes never panic a parser, and random valid
//! manifests survive writing and reading back unchanged.

use std::path::Path;

use kernelhub_manifest::expr::Expr;
use kernelhub_manifest::hash::Sha256Digest;
use kernelhub_manifest::introspect::{elf, ptx, wgsl::WgslModule};
use kernelhub_manifest::kernel::{
    Artifact, Backend, Dtype, Entry, Format, KernelInfo, Op, Param, ParamKind, ScalarType,
    TensorDtype,
};
use kernelhub_manifest::target::Target;
use kernelhub_manifest::validate::validate;
use kernelhub_manifest::{KernelManifest, Lockfile, ProjectManifest, Strictness};
use proptest::prelude::*;
use toml::Spanned;

fn s<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

prop_compose! {
    fn arb_op(index: usize)(
        dtypes in proptest::sample::subsequence(vec![Dtype::F32, Dtype::F16, Dtype::Bf16], 1..=3),
        n_ints in 1usize..4,
        n_tensors in 1usize..4,
        with_float in any::<bool>(),
        factor in 1u64..8,
    ) -> Op {
        let mut params = Vec::new();
        for t in 0..n_tensors {
            let dim = format!("{} * s{}", factor, t % n_ints);
            params.push(Param {
                name: s(format!("t{t}")),
                kind: ParamKind::Tensor {
                    dtype: s(if t == n_tensors - 1 { TensorDtype::Fixed(Dtype::U32) } else { TensorDtype::Generic }),
                    shape: vec![s(Expr::parse(&dim).unwrap()), s(Expr::literal(factor))],
                    written: t == 0,
                },
            });
        }
        for i in 0..n_ints {
            params.push(Param { name: s(format!("s{i}")), kind: ParamKind::Scalar(s(ScalarType::U32)) });
        }
        if with_float {
            params.push(Param { name: s("eps".into()), kind: ParamKind::Scalar(s(ScalarType::F32)) });
        }
        Op { name: s(format!("op_{index}")), description: None, dtypes: dtypes.into_iter().map(s).collect(), params }
    }
}

fn arb_manifest() -> impl Strategy<Value = KernelManifest> {
    (
        1usize..4,
        0usize..3,
        any::<[u8; 32]>(),
        0u64..1 << 40,
        "[a-z][a-z0-9_-]{0,20}",
        (0u64..20, 0u64..20, 0u64..20),
    )
        .prop_flat_map(|(n_ops, backend, digest, size, name, version)| {
            let ops: Vec<_> = (0..n_ops).map(arb_op).collect();
            (ops, Just((backend, digest, size, name, version)))
        })
        .prop_map(
            |(ops, (backend, digest, size, name, (major, minor, patch)))| {
                let (backend, format, targets) = match backend {
                    0 => (
                        Backend::Cuda,
                        Format::Ptx,
                        vec![s(Target::Cuda("sm_80".parse().unwrap()))],
                    ),
                    1 => (
                        Backend::Rocm,
                        Format::Hsaco,
                        vec![s(Target::Rocm("gfx90a:xnack-".parse().unwrap()))],
                    ),
                    _ => (Backend::Wgpu, Format::Wgsl, vec![]),
                };
                let entries = ops
                    .iter()
                    .flat_map(|op| {
                        op.dtypes.iter().map(move |dtype| Entry {
                            op: op.name.clone(),
                            dtype: dtype.clone(),
                            symbol: s(format!("{}_{}", op.name.get_ref(), dtype.get_ref())),
                            grid: vec![
                                s(Expr::parse("ceil_div(s0, 256)").unwrap()),
                                s(Expr::literal(1)),
                            ],
                            block: (backend != Backend::Wgpu).then(|| vec![s(Expr::literal(256))]),
                            shared_mem: None,
                            span: 0..0,
                        })
                    })
                    .collect();
                let artifact = Artifact {
                    backend: s(backend),
                    format: s(format),
                    targets,
                    min_driver: None,
                    features: vec![],
                    path: s(format!("build/{name}.bin")),
                    size: s(size),
                    sha256: s(Sha256Digest(digest)),
                    entries,
                    span: 0..0,
                };
                KernelManifest {
                    schema: s(1),
                    kernel: KernelInfo {
                        name: s(name),
                        version: s(semver::Version::new(major, minor, patch)),
                        license: s("Apache-2.0".into()),
                        description: None,
                    },
                    ops,
                    artifacts: vec![artifact],
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_valid_manifests_round_trip(manifest in arb_manifest()) {
        let text = toml::to_string(&manifest).unwrap();
        let file = Path::new("kernel.toml");
        let parsed = KernelManifest::parse(&text, file, Strictness::Check);
        prop_assert!(parsed.diagnostics.is_empty(), "{:?}\n{}", parsed.diagnostics, text);
        let read = parsed.value.unwrap();
        prop_assert!(validate(&read.ops, &read.artifacts, file, true).is_empty());
        prop_assert_eq!(&read.kernel, &manifest.kernel);
        prop_assert_eq!(&read.ops, &manifest.ops);
        prop_assert_eq!(toml::to_string(&read).unwrap(), text);
    }

    #[test]
    fn random_bytes_never_panic_the_parsers(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        let file = Path::new("kernel.toml");
        let _ = KernelManifest::parse(&text, file, Strictness::Check);
        let _ = ProjectManifest::parse(&text, file, Strictness::Check);
        let _ = Lockfile::parse(&text, file, Strictness::Check);
        let _ = ptx::parse_ptx(&bytes);
        let _ = elf::parse_elf(&bytes);
        let _ = WgslModule::parse(&text);
        let _ = Expr::parse(&text);
    }

    #[test]
    fn random_toml_shaped_text_never_panics(text in "(schema = 1\n)?(\\[kernel\\]\n|\\[ops\\.[a-z]{1,3}\\]\n|\\[\\[artifacts\\]\\]\n|\\[\\[artifacts\\.entries\\]\\]\n|[a-z_]{1,8} = (\"[a-z0-9_ ./*()+-]{0,12}\"|-?[0-9]{1,22}|\\[[0-9\", a-z]{0,12}\\]|true|\\{ ?[a-z]{1,5} = [0-9]{1,3} ?\\})\n){0,24}") {
        let parsed = KernelManifest::parse(&text, Path::new("kernel.toml"), Strictness::Check);
        if let Some(manifest) = parsed.value {
            let _ = validate(&manifest.ops, &manifest.artifacts, Path::new("kernel.toml"), parsed.complete);
        }
    }
}
