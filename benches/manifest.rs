//! Parse + validate of 200-artifact manifests (target: under 1 ms), next to
//! the TOML parser alone on the same text, which every reader pays.
#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kernelhub_manifest::validate::validate;
use kernelhub_manifest::{KernelManifest, Strictness};

fn parse_and_validate(c: &mut Criterion) {
    let file = Path::new("kernel.toml");
    let mut group = c.benchmark_group("manifest");
    // 200 artifacts with 1 op × 1 dtype each (200 entries), and with
    // 3 ops × 2 dtypes each (1200 entries).
    for (ops, dtypes) in [(1, 1), (3, 2)] {
        let text = kernelhub_benches::large_manifest(ops, dtypes, 200);
        let parsed = KernelManifest::parse(&text, file, Strictness::Check);
        assert!(
            parsed.diagnostics.is_empty(),
            "{:?}",
            parsed.diagnostics.first()
        );
        let entries = 200 * ops * dtypes;
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(
            format!("parse_validate/200_artifacts_{entries}_entries"),
            |b| {
                b.iter(|| {
                    let parsed = KernelManifest::parse(black_box(&text), file, Strictness::Check);
                    let manifest = parsed.value.expect("valid");
                    black_box(validate(
                        &manifest.ops,
                        &manifest.artifacts,
                        file,
                        parsed.complete,
                    ))
                })
            },
        );
        group.bench_function(
            format!("toml_parse_only/200_artifacts_{entries}_entries"),
            |b| b.iter(|| black_box(toml::de::DeTable::parse(black_box(&text)).is_ok())),
        );
    }
    group.finish();
}

criterion_group!(benches, parse_and_validate);
criterion_main!(benches);
