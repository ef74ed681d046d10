//! Fixture repos in Hugging Face's kernel layout (`build/<variant>/` with a
//! `metadata.json` digest of every file), built as git repos and served by
//! olah like the native fixtures.
//!
//! - `hf-test/activation`: branches `v1` and `v2` (and `main` = `v2`), each
//!   with variants for torch 2.9 and 2.10 × CUDA 12.8 / ROCm 6.4 / CPU, plus
//!   the noarch `torch-cpu`; every variant has a digest.
//! - `hf-test/tampered`: `v1`; in `torch210-cxx11-cu128-x86_64-linux` one
//!   file changed after its digest was taken; `torch-cuda` has a file its
//!   digest does not list and lacks one it does.
//! - `hf-test/nodigest`: `v1`, a `torch-cpu` variant without a digest.
//! - `hf-test/old-activation`: only a `kernel-status.toml` redirecting to
//!   `hf-test/activation` at `v1`.

use std::path::Path;

use base64::Engine as _;
use sha2::Digest as _;

use crate::olah::{Olah, git};

/// The owner of the Hugging Face layout fixtures.
pub const HF_OWNER: &str = "hf-test";

/// The arch variants of `hf-test/activation`.
pub const ARCH_VARIANTS: [&str; 6] = [
    "torch29-cxx11-cu128-x86_64-linux",
    "torch210-cxx11-cu128-x86_64-linux",
    "torch29-cxx11-rocm64-x86_64-linux",
    "torch210-cxx11-rocm64-x86_64-linux",
    "torch29-cxx11-cpu-x86_64-linux",
    "torch210-cxx11-cpu-x86_64-linux",
];

/// The files of one variant: small Python modules (importable without
/// torch) and a binary payload that differs per variant and version.
fn variant_files(variant: &str, version: u64) -> Vec<(String, Vec<u8>)> {
    let mut payload = Vec::with_capacity(8192);
    let mut state = variant.bytes().fold(version * 7919 + 1, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    while payload.len() < 8192 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        payload.extend_from_slice(&state.to_le_bytes());
    }
    vec![
        (
            "__init__.py".into(),
            format!("VARIANT = {variant:?}\nVERSION = {version}\nfrom ._ops import ops\n")
                .into_bytes(),
        ),
        ("_ops.py".into(), b"ops = object()\n".to_vec()),
        (
            format!("_activation_{}.abi3.so", variant.replace('-', "_")),
            payload,
        ),
    ]
}

fn backend_of(variant: &str) -> &'static str {
    if variant.contains("-cu") {
        "cuda"
    } else if variant.contains("-rocm") {
        "rocm"
    } else {
        "cpu"
    }
}

/// Writes `build/<variant>/` with its files and a `metadata.json`; with
/// `digest` false the metadata has no digest.
pub fn write_variant(repo: &Path, variant: &str, version: u64, digest: bool) {
    let dir = repo.join("build").join(variant);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut digests = serde_json::Map::new();
    for (name, bytes) in variant_files(variant, version) {
        std::fs::write(dir.join(&name), &bytes).expect("write");
        let sha = sha2::Sha256::digest(&bytes);
        digests.insert(
            name,
            base64::engine::general_purpose::STANDARD.encode(sha).into(),
        );
    }
    let mut metadata = serde_json::json!({
        "name": "activation",
        "id": format!("_activation_{}_0123456", variant.replace('-', "_")),
        "version": version,
        "license": "apache-2.0",
        "python-depends": [],
        "backend": { "type": backend_of(variant) },
    });
    if backend_of(variant) == "cuda" {
        metadata["backend"]["archs"] = serde_json::json!(["8.0", "9.0"]);
    }
    if digest {
        metadata["digest"] = serde_json::json!({ "algorithm": "sha256", "files": digests });
    }
    std::fs::write(
        dir.join("metadata.json"),
        serde_json::to_vec_pretty(&metadata).expect("json"),
    )
    .expect("write");
}

fn commit_all(repo: &Path, message: &str) {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
}

/// Builds `hf-test/<name>` like `hf-test/activation`: branches `v1`, `v2`
/// (and `main`), each with every variant of [`ARCH_VARIANTS`] and `torch-cpu`.
pub fn build_versioned(mirrors: &Path, name: &str) {
    let repo = mirrors.join("models").join(HF_OWNER).join(name);
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q", "-b", "main"]);
    for version in [1, 2] {
        let _ = std::fs::remove_dir_all(repo.join("build"));
        for variant in ARCH_VARIANTS.iter().chain(&["torch-cpu"]) {
            write_variant(&repo, variant, version, true);
        }
        commit_all(&repo, &format!("v{version}"));
        git(&repo, &["branch", &format!("v{version}")]);
    }
}

/// Builds the fixture repos under `mirrors/models/hf-test/`.
pub fn build(mirrors: &Path) {
    let root = mirrors.join("models").join(HF_OWNER);
    build_versioned(mirrors, "activation");

    let tampered = root.join("tampered");
    std::fs::create_dir_all(&tampered).expect("mkdir");
    git(&tampered, &["init", "-q", "-b", "main"]);
    write_variant(&tampered, "torch210-cxx11-cu128-x86_64-linux", 1, true);
    write_variant(&tampered, "torch-cpu", 1, true);
    let victim = tampered.join("build/torch210-cxx11-cu128-x86_64-linux/_ops.py");
    std::fs::write(&victim, b"ops = 'changed after signing'\n").expect("tamper");
    // A file the digest does not list, and a listed file that is gone.
    write_variant(&tampered, "torch-cuda", 1, true);
    std::fs::write(
        tampered.join("build/torch-cuda/extra.py"),
        b"print('not listed')\n",
    )
    .expect("extra");
    std::fs::remove_file(tampered.join("build/torch-cuda/_ops.py")).expect("remove");
    commit_all(&tampered, "v1");
    git(&tampered, &["branch", "v1"]);

    let nodigest = root.join("nodigest");
    std::fs::create_dir_all(&nodigest).expect("mkdir");
    git(&nodigest, &["init", "-q", "-b", "main"]);
    write_variant(&nodigest, "torch-cpu", 1, false);
    commit_all(&nodigest, "v1");
    git(&nodigest, &["branch", "v1"]);

    let old = root.join("old-activation");
    std::fs::create_dir_all(&old).expect("mkdir");
    git(&old, &["init", "-q", "-b", "main"]);
    std::fs::write(
        old.join("kernel-status.toml"),
        "kind = \"redirect\"\ndestination = \"hf-test/activation\"\nrevision = \"v1\"\n",
    )
    .expect("write");
    commit_all(&old, "moved");
}

/// An olah serving the Hugging Face layout fixtures, shared by a test binary.
pub fn shared() -> &'static Olah {
    static OLAH: std::sync::OnceLock<Olah> = std::sync::OnceLock::new();
    OLAH.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        build(&dir.path().join("mirrors"));
        Olah::launch(dir, 1, &format!("/api/models/{HF_OWNER}/activation/refs"))
    })
}
