//! `kernelhub verify`'s hashing (`verify::hash_all`, one thread per core)
//! against `openssl dgst -sha256` on the same cache files in the same run
//! (target: at least 90% of openssl, using every core when there are
//! several files).
//!
//! 16 files of `KERNELHUB_BENCH_VERIFY_MIB / 16` MiB each (default 1024 MiB
//! in all), read from the page cache. openssl is measured two ways: one
//! process over all files (what `openssl dgst` does), and one process per
//! core, each over its share, so the comparison with every core is fair.
#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::io::Write;
use std::process::{Child, Command, Stdio};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kernelhub_hub::cache::{FileState, Size};
use kernelhub_hub::verify::hash_all;
use kernelhub_hub::{HubCache, PinnedFile};
use kernelhub_manifest::hash::Sha256Digest;
use kernelhub_manifest::project::RepoType;

const FILES: usize = 16;

fn verify(c: &mut Criterion) {
    let total_mib: usize = std::env::var("KERNELHUB_BENCH_VERIFY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let mib_each = (total_mib / FILES).max(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = HubCache::new(dir.path());
    let mut files = Vec::new();
    for i in 0..FILES {
        let mut bytes = vec![0u8; mib_each << 20];
        for (j, byte) in bytes.iter_mut().enumerate() {
            *byte = (i.wrapping_mul(131) ^ j.wrapping_mul(2_654_435_761) >> 9) as u8;
        }
        let file = PinnedFile {
            repo_type: RepoType::Kernel,
            repo: "bench/verify".into(),
            commit: "b".repeat(40),
            path: format!("build/artifact_{i:02}.bin"),
            checksum: Sha256Digest::of(&bytes).into(),
            size: Size::Exact(bytes.len() as u64),
        };
        let path = cache.snapshot_path(&file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&bytes))
            .expect("write");
        files.push(file);
    }
    let paths: Vec<_> = files.iter().map(|f| cache.snapshot_path(f)).collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        hash_all(&cache, &files, cores)
            .iter()
            .all(|s| matches!(s, Ok(FileState::Verified)))
    );

    let openssl = |paths: &[std::path::PathBuf]| -> Child {
        Command::new("openssl")
            .args(["dgst", "-sha256"])
            .args(paths)
            .stdout(Stdio::null())
            .spawn()
            .expect("openssl runs")
    };
    let mut group = c.benchmark_group("verify_16_files");
    group.throughput(Throughput::Bytes(((FILES * mib_each) << 20) as u64));
    group.sample_size(10);
    group.bench_function("kernelhub_all_cores", |b| {
        b.iter(|| hash_all(&cache, &files, cores))
    });
    group.bench_function("kernelhub_one_thread", |b| {
        b.iter(|| hash_all(&cache, &files, 1))
    });
    group.bench_function("openssl_one_process", |b| {
        b.iter(|| assert!(openssl(&paths).wait().expect("wait").success()))
    });
    group.bench_function("openssl_process_per_core", |b| {
        b.iter(|| {
            let children: Vec<Child> = paths.chunks(FILES.div_ceil(cores)).map(openssl).collect();
            for mut child in children {
                assert!(child.wait().expect("wait").success());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
