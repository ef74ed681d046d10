//! `check`'s SHA-256 throughput against `openssl dgst -sha256` on the same
//! file in the same run (target: at least 90% of openssl).
//!
//! The file is 1 GiB unless `KERNELHUB_BENCH_HASH_MIB` says otherwise. It is
//! read from the page cache in both cases (written just before, then read
//! once to warm), so the comparison is of hashing and reading, not the disk.
#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::io::Write;
use std::process::Command;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kernelhub_manifest::hash::hash_file;

fn hashing(c: &mut Criterion) {
    let mib: u64 = std::env::var("KERNELHUB_BENCH_HASH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    let mut block = vec![0u8; 1 << 20];
    for i in 0..mib {
        for (j, byte) in block.iter_mut().enumerate() {
            *byte = (i as usize)
                .wrapping_mul(31)
                .wrapping_add(j.wrapping_mul(2_654_435_761) >> 7) as u8;
        }
        file.write_all(&block).expect("write");
    }
    file.flush().expect("flush");
    let path = file.path().to_path_buf();
    let (ours, _) = hash_file(&path).expect("hash");
    let openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-r"])
        .arg(&path)
        .output()
        .expect("openssl runs");
    let theirs = String::from_utf8_lossy(&openssl.stdout);
    assert!(
        theirs.starts_with(&ours.to_string()),
        "digests differ: {ours} vs {theirs}"
    );

    let mut group = c.benchmark_group("sha256_file");
    group.throughput(Throughput::Bytes(mib << 20));
    group.sample_size(10);
    group.bench_function("kernelhub", |b| b.iter(|| hash_file(&path).expect("hash")));
    group.bench_function("openssl_dgst", |b| {
        b.iter(|| {
            let out = Command::new("openssl")
                .args(["dgst", "-sha256", "-r"])
                .arg(&path)
                .output()
                .expect("openssl");
            assert!(out.status.success());
        })
    });
    group.finish();
}

criterion_group!(benches, hashing);
criterion_main!(benches);
