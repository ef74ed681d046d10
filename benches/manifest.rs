//! Parse + validate of a 200-artifact manifest (target: under 1 ms).

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use kernelhub_manifest::validate::validate;
use kernelhub_manifest::{KernelManifest, Strictness};

fn parse_and_validate(c: &mut Criterion) {
    // 200 artifacts, each implementing 3 ops in 2 dtypes: 1200 entries.
    let text = kernelhub_benches::large_manifest(3, 200);
    let file = Path::new("kernel.toml");
    let parsed = KernelManifest::parse(&text, file, Strictness::Check);
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics.first());
    let mut group = c.benchmark_group("manifest");
    group.throughput(criterion::Throughput::Bytes(text.len() as u64));
    group.bench_function("parse_validate_200_artifacts", |b| {
        b.iter(|| {
            let parsed = KernelManifest::parse(black_box(&text), file, Strictness::Check);
            let manifest = parsed.value.expect("valid");
            black_box(validate(&manifest.ops, &manifest.artifacts, file, parsed.complete))
        })
    });
    group.finish();
}

criterion_group!(benches, parse_and_validate);
criterion_main!(benches);
