//! The reference kernels pass `check`, and breaking their real PTX and hsaco
//! artifacts (or what the manifest says about them) is caught with a located
//! message. These are the content checks that need real device code.

use std::path::{Path, PathBuf};

use kernelhub_manifest::check::check_repo;

fn kernels_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels")
}

#[test]
fn every_reference_kernel_is_clean() {
    let mut checked = 0;
    for entry in std::fs::read_dir(kernels_dir()).unwrap() {
        let repo = entry.unwrap().path();
        let report = check_repo(&repo).unwrap();
        assert!(
            report.diagnostics.is_empty(),
            "{}: {:#?}",
            repo.display(),
            report.diagnostics
        );
        // Each has PTX, two hsaco and at least two WGSL artifacts (f32, f16).
        assert!(report.artifacts_checked >= 5, "{}", repo.display());
        checked += 1;
    }
    assert_eq!(checked, 4);
}

/// A copy of `kernels/activation` with `from` replaced by `to` in its
/// manifest; returns the codes `check` reports with their lines.
fn activation_with(
    from: &str,
    to: &str,
    edit_files: impl FnOnce(&Path),
) -> Vec<(&'static str, usize)> {
    let dir = tempfile::tempdir().unwrap();
    let source = kernels_dir().join("activation");
    for sub in ["build/cuda", "build/rocm", "wgsl"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        for file in std::fs::read_dir(source.join(sub)).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, dir.path().join(sub).join(file.file_name().unwrap())).unwrap();
        }
    }
    let manifest = std::fs::read_to_string(source.join("kernel.toml")).unwrap();
    assert!(manifest.contains(from), "{from}");
    std::fs::write(
        dir.path().join("kernel.toml"),
        manifest.replacen(from, to, 1),
    )
    .unwrap();
    edit_files(dir.path());
    let report = check_repo(dir.path()).unwrap();
    kernelhub_tests::located(&report)
        .into_iter()
        .map(|(code, _, line)| (code, line))
        .collect()
}

fn no_file_change(_: &Path) {}

/// The line of the first occurrence of `text` in the activation manifest, so
/// the expected lines follow the manifest's comments as they change.
fn line_of(text: &str) -> usize {
    let manifest = std::fs::read_to_string(kernels_dir().join("activation/kernel.toml")).unwrap();
    let at = manifest
        .find(text)
        .unwrap_or_else(|| panic!("`{text}` is in the manifest"));
    manifest[..at].lines().count() + 1
}

#[test]
fn ptx_target_not_declared() {
    let found = activation_with(
        "targets = [\"sm_80\"]",
        "targets = [\"sm_86\"]",
        no_file_change,
    );
    assert!(
        found.contains(&("target-mismatch", line_of("targets = [\"sm_80\"]"))),
        "{found:?}"
    );
}

#[test]
fn ptx_declared_for_an_older_gpu_than_it_targets() {
    let found = activation_with(
        "targets = [\"sm_80\"]",
        "targets = [\"sm_80\", \"sm_75\"]",
        no_file_change,
    );
    assert!(
        found.contains(&("target-mismatch", line_of("targets = [\"sm_80\"]"))),
        "{found:?}"
    );
}

#[test]
fn ptx_needs_a_newer_driver_than_declared() {
    let found = activation_with(
        "min_driver = \"11.0\"",
        "min_driver = \"10.2\"",
        no_file_change,
    );
    assert!(
        found.contains(&("driver-mismatch", line_of("min_driver = \"11.0\""))),
        "{found:?}"
    );
}

#[test]
fn ptx_without_min_driver_warns() {
    let found = activation_with("min_driver = \"11.0\"", "", no_file_change);
    assert!(
        found.contains(&(
            "missing-min-driver",
            line_of("path = \"build/cuda/activation_sm80.ptx\"")
        )),
        "{found:?}"
    );
}

#[test]
fn symbol_missing_from_ptx() {
    let found = activation_with(
        "symbol = \"silu_and_mul_f32\"",
        "symbol = \"silu_f32\"",
        no_file_change,
    );
    assert!(
        found.contains(&("missing-symbol", line_of("symbol = \"silu_and_mul_f32\""))),
        "{found:?}"
    );
}

#[test]
fn symbol_missing_from_hsaco() {
    let manifest = std::fs::read_to_string(kernels_dir().join("activation/kernel.toml")).unwrap();
    let symbol = "symbol = \"silu_and_mul_f32\"";
    let hsaco_symbol = manifest.match_indices(symbol).nth(1).unwrap().0;
    let line = manifest[..hsaco_symbol].lines().count() + 1;
    let patched = format!(
        "{}symbol = \"silu_f32\"{}",
        &manifest[..hsaco_symbol],
        &manifest[hsaco_symbol + symbol.len()..]
    );
    let found = activation_with(&manifest, &patched, no_file_change);
    assert!(found.contains(&("missing-symbol", line)), "{found:?}");
}

#[test]
fn random_bytes_as_ptx() {
    let found = activation_with("targets = [\"sm_80\"]", "targets = [\"sm_80\"]", |dir| {
        let ptx = dir.join("build/cuda/activation_sm80.ptx");
        // As long as the real file, so only the hash and the content differ.
        let len = std::fs::metadata(&ptx).unwrap().len() as u32;
        let noise: Vec<u8> = (0..len)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
            .collect();
        std::fs::write(&ptx, noise).unwrap();
    });
    assert!(
        found.contains(&(
            "invalid-ptx",
            line_of("path = \"build/cuda/activation_sm80.ptx\"")
        )),
        "{found:?}"
    );
    assert!(
        found.contains(&(
            "hash-mismatch",
            line_of("path = \"build/cuda/activation_sm80.ptx\"") + 2
        )),
        "{found:?}"
    );
}

#[test]
fn truncated_hsaco() {
    let found = activation_with("targets = [\"sm_80\"]", "targets = [\"sm_80\"]", |dir| {
        let path = dir.join("build/rocm/activation_gfx90a.hsaco");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    });
    assert!(
        found.contains(&(
            "invalid-elf",
            line_of("path = \"build/rocm/activation_gfx90a.hsaco\"")
        )),
        "{found:?}"
    );
    assert!(
        found.contains(&(
            "size-mismatch",
            line_of("path = \"build/rocm/activation_gfx90a.hsaco\"") + 1
        )),
        "{found:?}"
    );
}

#[test]
fn hsaco_declared_for_another_gpu() {
    let found = activation_with(
        "targets = [\"gfx90a\"]",
        "targets = [\"gfx1100\"]",
        no_file_change,
    );
    assert!(
        found.contains(&("target-mismatch", line_of("targets = [\"gfx90a\"]"))),
        "{found:?}"
    );
}

#[test]
fn hsaco_declared_as_a_cubin() {
    let found = activation_with(
        "backend = \"rocm\"\nformat = \"hsaco\"\ntargets = [\"gfx90a\"]",
        "backend = \"cuda\"\nformat = \"cubin\"\ntargets = [\"sm_90\"]",
        no_file_change,
    );
    assert!(
        found.contains(&("wrong-machine", line_of("targets = [\"gfx90a\"]") - 1)),
        "{found:?}"
    );
}

#[test]
fn hsaco_of_an_unknown_architecture_warns() {
    let found = activation_with("targets = [\"sm_80\"]", "targets = [\"sm_80\"]", |dir| {
        let path = dir.join("build/rocm/activation_gfx90a.hsaco");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[48] = 0xfe; // EF_AMDGPU_MACH: no processor has this value
        std::fs::write(&path, bytes).unwrap();
    });
    assert!(
        found.contains(&("unknown-arch", line_of("targets = [\"gfx90a\"]"))),
        "{found:?}"
    );
}

#[test]
fn ptx_of_an_unknown_isa_version_warns() {
    let found = activation_with("targets = [\"sm_80\"]", "targets = [\"sm_80\"]", |dir| {
        let path = dir.join("build/cuda/activation_sm80.ptx");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen(".version 7.0", ".version 42.0", 1)).unwrap();
    });
    assert!(
        found.contains(&(
            "unknown-ptx-version",
            line_of("path = \"build/cuda/activation_sm80.ptx\"")
        )),
        "{found:?}"
    );
}

#[test]
fn op_signature_disagrees_with_ptx_and_hsaco() {
    // `d` of `silu_and_mul` as u64: the PTX and both code objects take 4 bytes there.
    let found = activation_with(
        "{ name = \"d\", scalar = \"u32\" }",
        "{ name = \"d\", scalar = \"u64\" }",
        no_file_change,
    );
    let manifest = std::fs::read_to_string(kernels_dir().join("activation/kernel.toml")).unwrap();
    // Every `silu_and_mul_*` entry: f32, f16, bf16 in the PTX and in each hsaco.
    let expected: Vec<usize> = manifest
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("symbol = \"silu_and_mul_"))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(expected.len(), 9);
    let lines: Vec<usize> = found
        .iter()
        .filter(|(code, _)| *code == "signature-mismatch")
        .map(|(_, line)| *line)
        .collect();
    assert_eq!(lines, expected, "{found:?}");
    // The WGSL uniform struct disagrees too (a u64 is a `vec2<u32>` there); nothing else.
    assert!(
        found
            .iter()
            .all(|(code, _)| matches!(*code, "signature-mismatch" | "binding-mismatch")),
        "{found:?}"
    );
}
