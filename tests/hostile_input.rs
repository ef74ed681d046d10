//! Hostile and broken input: each gets a clear, located error — never a
//! panic, never unbounded time or memory.

use kernelhub_manifest::check::{CheckError, check_repo};
use kernelhub_manifest::introspect::{elf, ptx};
use kernelhub_manifest::{KernelManifest, Lockfile, ProjectManifest, Strictness};
use kernelhub_tests::Repo;
use std::path::Path;

fn codes(repo: &Repo) -> Vec<&'static str> {
    repo.problems().into_iter().map(|(c, _, _)| c).collect()
}

#[test]
fn manifest_with_invalid_utf8() {
    let repo = Repo::good();
    repo.write();
    let mut bytes = std::fs::read(repo.path().join("kernel.toml")).unwrap();
    bytes.splice(20..20, [0xff, 0xfe]);
    std::fs::write(repo.path().join("kernel.toml"), bytes).unwrap();
    let report = check_repo(repo.path()).unwrap();
    let d = &report.diagnostics[0];
    assert_eq!(d.code, "not-utf8");
    assert!(d.message.contains("line 3"), "{}", d.message);
    assert!(d.file.ends_with("kernel.toml"));
}

#[test]
fn manifest_with_nul_bytes() {
    let repo = Repo::good().edit("name = \"scale\"", "name = \"sc\0ale\"");
    assert!(codes(&repo).contains(&"syntax"));
}

#[test]
fn manifest_of_100_mb_is_refused_unparsed() {
    let repo = Repo::good();
    repo.write();
    let file = std::fs::File::options()
        .append(true)
        .open(repo.path().join("kernel.toml"))
        .unwrap();
    file.set_len(100 * 1024 * 1024).unwrap();
    // Only 16 MiB + 1 byte is ever read: the file is refused, not parsed.
    let report = check_repo(repo.path()).unwrap();
    assert_eq!(report.diagnostics[0].code, "file-too-large");
    assert!(report.diagnostics[0].file.ends_with("kernel.toml"));
}

#[test]
fn deeply_nested_toml() {
    let depth = 100_000;
    let text = format!("schema = 1\nx = {}{}", "[".repeat(depth), "]".repeat(depth));
    let parsed = KernelManifest::parse(&text, Path::new("kernel.toml"), Strictness::Check);
    assert!(parsed.value.is_none());
    assert!(
        parsed.diagnostics.iter().any(|d| d.code == "syntax"),
        "{:?}",
        parsed.diagnostics.first()
    );
    let inline = format!(
        "schema = 1\nx = {}1{}",
        "{a=".repeat(depth),
        "}".repeat(depth)
    );
    let parsed = ProjectManifest::parse(&inline, Path::new("kernels.toml"), Strictness::Check);
    assert!(!parsed.diagnostics.is_empty());
}

#[cfg(unix)]
#[test]
fn symlink_loop_as_artifact() {
    let repo = Repo::good().edit("path = \"scale.wgsl\"", "path = \"a.wgsl\"");
    repo.write();
    std::os::unix::fs::symlink("b.wgsl", repo.path().join("a.wgsl")).unwrap();
    std::os::unix::fs::symlink("a.wgsl", repo.path().join("b.wgsl")).unwrap();
    assert!(
        check_repo(repo.path())
            .unwrap()
            .diagnostics
            .iter()
            .any(|d| d.code == "unreadable")
    );
}

#[cfg(unix)]
#[test]
fn symlink_loop_as_manifest() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("kernel.toml", dir.path().join("kernel.toml")).unwrap();
    assert!(matches!(
        check_repo(dir.path()),
        Err(CheckError::NoManifest(_))
    ));
    let err = check_repo(&dir.path().join("kernel.toml")).unwrap_err();
    assert!(err.to_string().contains("kernel.toml"), "{err}");
}

#[test]
fn paths_that_are_not_kernel_repos() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        check_repo(dir.path()),
        Err(CheckError::NoManifest(_))
    ));
    assert!(matches!(
        check_repo(&dir.path().join("nope")),
        Err(CheckError::NotFound(_))
    ));
}

#[test]
fn artifact_of_random_bytes_declared_as_wgsl() {
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let repo = Repo::good().file("scale.wgsl", noise);
    assert!(codes(&repo).contains(&"invalid-wgsl"));
}

#[test]
fn ptx_of_random_bytes() {
    let noise: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    assert!(ptx::parse_ptx(&noise).is_err());
    assert!(ptx::parse_ptx(b"").is_err());
    assert!(ptx::parse_ptx(b".version 7.0\n").is_err());
}

#[test]
fn truncated_and_garbage_elf() {
    assert!(elf::parse_elf(b"").is_err());
    assert!(elf::parse_elf(b"\x7fELF").is_err());
    let mut header = b"\x7fELF\x02\x01\x01".to_vec();
    header.resize(64, 0);
    assert!(elf::parse_elf(&header).is_err());
    let noise: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(40_503) >> 7) as u8)
        .collect();
    let mut elf_noise = b"\x7fELF\x02\x01\x01".to_vec();
    elf_noise.extend(noise);
    assert!(elf::parse_elf(&elf_noise).is_err());
}

#[test]
fn lock_and_project_files_of_garbage() {
    for text in [
        "\u{0}",
        "[[kernel]]\nname = 1",
        "schema = \"1\"",
        "[dependencies]\nx = 5",
        "[[[",
        "",
    ] {
        let lock = Lockfile::parse(text, Path::new("kernels.lock"), Strictness::Load);
        let project = ProjectManifest::parse(text, Path::new("kernels.toml"), Strictness::Load);
        assert!(
            !lock.diagnostics.is_empty() && !project.diagnostics.is_empty(),
            "{text:?}"
        );
    }
}
