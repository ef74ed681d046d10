//! `bundle import`: a gzip tar into a fresh cache. Three modes (see
//! `kernelhub_fuzz::bundle`): raw file bytes, raw tar bytes, and pinned
//! bundles whose hashes match so the fuzzer reaches the manifest, the
//! ordering rules and the install. Checked on every run: a refused bundle
//! leaves the cache as it was; an accepted one reads back verified.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use kernelhub_hub::{Error, HubCache};
use libfuzzer_sys::fuzz_target;

/// One directory for the process, on tmpfs when there is one (import
/// fsyncs every file it stages).
fn base() -> &'static Path {
    static BASE: OnceLock<tempfile::TempDir> = OnceLock::new();
    BASE.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let builder = tempfile::Builder::new()
            .prefix("kernelhub-fuzz-")
            .tempdir_in(shm);
        builder
            .or_else(|_| tempfile::tempdir())
            .expect("a temporary directory")
    })
    .path()
}

/// What a cache root holds besides bookkeeping.
fn contents(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| {
            e.expect("a readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n != "CACHEDIR.TAG" && n != ".locks")
        .collect();
    names.sort();
    names
}

fuzz_target!(|data: &[u8]| {
    let Some(bundle) = kernelhub_fuzz::bundle::assemble(data) else {
        return;
    };
    let dir = tempfile::tempdir_in(base()).expect("a temporary directory");
    let path = dir.path().join("kernels.tar.gz");
    std::fs::write(&path, &bundle.file).expect("writing the bundle");
    let cache = HubCache::new(dir.path().join("cache"));
    match kernelhub_hub::bundle::import(&cache, &path, bundle.expected.as_ref(), &bundle.trust) {
        Ok((lock, summary)) => {
            // The lock, and a manifest when it locks a kernel.
            let least = 1 + usize::from(!lock.kernels.is_empty());
            assert!(summary.files >= least, "{summary:?}");
            for locked in &lock.kernels {
                let manifest = cache
                    .load_manifest(locked)
                    .expect("an imported manifest loads");
                // Each artifact is either imported whole or absent.
                for artifact in &manifest.artifacts {
                    if let Err(e) = cache.load_artifact(locked, artifact) {
                        assert!(
                            matches!(e, Error::NotCached { .. }),
                            "imported artifact `{}` does not load: {e}",
                            artifact.path.get_ref()
                        );
                    }
                }
            }
        }
        Err(error) => {
            let message = error.to_string();
            if matches!(error, Error::BundleRefused { .. }) {
                let left = contents(cache.root());
                assert!(left.is_empty(), "refused, but left {left:?}: {message}");
                let scratch = cache.root().join(".locks/kernelhub-tmp");
                if let Ok(entries) = std::fs::read_dir(&scratch) {
                    assert_eq!(entries.count(), 0, "staging left behind: {message}");
                }
            }
        }
    }
});
