//! Hostile and broken input: each gets a clear, located error — never a
//! panic, never unbounded time or memory. Bundles built by hand (escaping
//! names, links, decompression bombs) are refused by entry name, with
//! nothing written outside the cache and nothing inflated past its limit.

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

// ---- bundles: archives built by hand against `bundle::import` ----

mod bundles {
    use std::path::{Path, PathBuf};

    use flate2::{Compress, Compression, Crc, FlushCompress, Status};
    use kernelhub_hub::bundle;
    use kernelhub_hub::cache::HubCache;
    use kernelhub_manifest::Lockfile;
    use kernelhub_manifest::hash::Sha256Digest;
    use kernelhub_manifest::lock::LockedKernel;
    use kernelhub_manifest::project::RepoType;
    use kernelhub_manifest::trust::TrustPolicy;
    use kernelhub_tests::faults::COMMIT;
    use kernelhub_tests::{GOOD_WGSL, Repo, walk};

    const FOLDER: &str = "models--acme--scale";

    /// The test kernel as a bundle carries it: the lock, the manifest it
    /// pins, the artifact that pins.
    struct Pinned {
        lock: String,
        manifest: Vec<u8>,
        wgsl: Vec<u8>,
    }

    fn pinned() -> Pinned {
        let repo = Repo::good();
        let manifest = std::fs::read(repo.write()).unwrap();
        let lock = Lockfile {
            kernels: vec![LockedKernel {
                name: "scale".into(),
                repo: "acme/scale".into(),
                repo_type: RepoType::Model,
                reference: "v1.0.0".into(),
                commit: COMMIT.into(),
                manifest_sha256: Sha256Digest::of(&manifest),
                signature: None,
            }],
            hf: Vec::new(),
        };
        Pinned {
            lock: lock.to_toml(),
            manifest,
            wgsl: GOOD_WGSL.as_bytes().to_vec(),
        }
    }

    /// A bundle entry name for a file of the test kernel.
    fn member(path: &str) -> String {
        format!("{FOLDER}/{COMMIT}/{path}")
    }

    /// A header written field by field: any name and link target (the tar
    /// crate's own setters refuse `..` and absolute paths), any type.
    fn raw_header(name: &[u8], kind: tar::EntryType, link: &[u8], size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(kind);
        header.set_cksum();
        header
    }

    fn regular(tar: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let header = raw_header(
            name.as_bytes(),
            tar::EntryType::Regular,
            b"",
            data.len() as u64,
        );
        tar.append(&header, data).unwrap();
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn import(cache: &Path, bundle: &Path) -> Result<(), String> {
        bundle::import(&HubCache::new(cache), bundle, None, &TrustPolicy::default())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Asserts `cache` holds nothing but its tag and an empty scratch
    /// directory: no snapshot, no blob, no ref, no staged file.
    fn assert_empty(cache: &Path) {
        let mut left: Vec<PathBuf> = walk(cache)
            .into_iter()
            .filter(|p| !p.is_dir() || p.is_symlink())
            .collect();
        left.retain(|p| !p.ends_with("CACHEDIR.TAG"));
        assert!(left.is_empty(), "left in the cache: {left:?}");
    }

    #[cfg(unix)]
    #[test]
    fn entries_that_escape_or_link_are_refused_by_name_and_write_nothing() {
        let pinned = pinned();
        let dir = tempfile::tempdir().unwrap();
        // Deep enough that a naive join of the `..` name, from the cache root
        // or from the staging directory inside it, lands inside `dir`.
        let cache = dir.path().join("a/b/c/d/e/f/cache");
        let outside = tempfile::tempdir().unwrap();
        let decoy = outside.path().join("decoy");
        std::fs::write(&decoy, b"not yours to write").unwrap();
        let absolute = outside.path().join("absolute.wgsl");
        let dotdot = member(&format!("{}escape.wgsl", "../".repeat(8)));
        let decoy_name = decoy.to_str().unwrap().to_string();
        let cases: [(&str, String, tar::EntryType, String, &str); 5] = [
            (
                "`..`",
                dotdot,
                tar::EntryType::Regular,
                String::new(),
                "is not a file the bundle's lock pins",
            ),
            (
                "an absolute path",
                absolute.to_str().unwrap().to_string(),
                tar::EntryType::Regular,
                String::new(),
                "is not a file the bundle's lock pins",
            ),
            (
                "a symlink out",
                member("scale.wgsl"),
                tar::EntryType::Symlink,
                decoy_name.clone(),
                "is not a regular file",
            ),
            (
                "a hard link out",
                member("scale.wgsl"),
                tar::EntryType::Link,
                decoy_name,
                "is not a regular file",
            ),
            (
                "a hard link to another entry",
                member("scale.wgsl"),
                tar::EntryType::Link,
                member("kernel.toml"),
                "is not a regular file",
            ),
        ];
        for (what, name, kind, link, reason) in cases {
            let mut tar = tar::Builder::new(Vec::new());
            regular(&mut tar, "kernels.lock", pinned.lock.as_bytes());
            regular(&mut tar, &member("kernel.toml"), &pinned.manifest);
            let data: &[u8] = if kind == tar::EntryType::Regular {
                &pinned.wgsl
            } else {
                b""
            };
            let header = raw_header(name.as_bytes(), kind, link.as_bytes(), data.len() as u64);
            tar.append(&header, data).unwrap();
            // The real artifact after it: skipping the bad entry would succeed.
            regular(&mut tar, &member("scale.wgsl"), &pinned.wgsl);
            let path = dir.path().join("hostile.tar.gz");
            std::fs::write(&path, gzip(&tar.into_inner().unwrap())).unwrap();

            let error = import(&cache, &path).expect_err(what);
            assert!(
                error.contains("was refused, nothing was imported")
                    && error.contains(&format!("`{name}` {reason}")),
                "{what}: {error}"
            );
            assert_empty(&cache);
            assert_eq!(
                std::fs::read(&decoy).unwrap(),
                b"not yours to write",
                "{what}: written through"
            );
            assert!(!absolute.exists(), "{what}: written at the absolute path");
            let escaped: Vec<_> = walk(dir.path())
                .into_iter()
                .filter(|p| p.ends_with("escape.wgsl"))
                .collect();
            assert!(escaped.is_empty(), "{what}: written outside: {escaped:?}");
            assert_eq!(walk(outside.path()), std::slice::from_ref(&decoy), "{what}");
        }
    }

    /// Raw deflate of `data` by a fresh compressor, ending in a full flush
    /// (byte-aligned, no back-reference into earlier segments, not final)
    /// or, when `last`, in the final block.
    fn deflate(data: &[u8], last: bool) -> Vec<u8> {
        let mut compress = Compress::new(Compression::best(), false);
        let flush = if last {
            FlushCompress::Finish
        } else {
            FlushCompress::Full
        };
        let mut out = Vec::with_capacity(data.len() / 4 + 4096);
        for _ in 0..1_000_000 {
            if out.capacity() - out.len() < 4096 {
                out.reserve(64 * 1024);
            }
            let consumed = compress.total_in() as usize;
            let status = compress
                .compress_vec(&data[consumed..], &mut out, flush)
                .unwrap();
            let all_in = compress.total_in() as usize == data.len();
            let flushed = if last {
                status == Status::StreamEnd
            } else {
                out.len() < out.capacity()
            };
            if all_in && flushed {
                return out;
            }
        }
        panic!("deflate made no progress");
    }

    /// A gzip file whose content is `head`, then `filler` `times` times,
    /// then `tail`. The segments are deflated separately and concatenated,
    /// so a gigabyte of content costs about a megabyte and milliseconds.
    fn gzip_bomb(head: &[u8], filler: &[u8], times: usize, tail: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
        out.extend(deflate(head, false));
        let one = deflate(filler, false);
        for _ in 0..times {
            out.extend_from_slice(&one);
        }
        out.extend(deflate(tail, true));
        let mut crc = Crc::new();
        crc.update(head);
        let mut filler_crc = Crc::new();
        filler_crc.update(filler);
        for _ in 0..times {
            crc.combine(&filler_crc);
        }
        let mut tail_crc = Crc::new();
        tail_crc.update(tail);
        crc.combine(&tail_crc);
        let length = head.len() as u64 + filler.len() as u64 * times as u64 + tail.len() as u64;
        out.extend(crc.sum().to_le_bytes());
        out.extend((length as u32).to_le_bytes());
        out
    }

    /// This thread's `read()` and `write()` byte counts so far (Linux).
    fn io_counts() -> (u64, u64) {
        let text = std::fs::read_to_string("/proc/thread-self/io").unwrap();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap()
        };
        (field("rchar:"), field("wchar:"))
    }

    const GIB_OF: usize = 1024; // times one MiB of filler

    /// One tar block boundary after `length` bytes of entry data.
    fn padding(length: usize) -> Vec<u8> {
        vec![0; (512 - length % 512) % 512]
    }

    /// Imports a bomb on this thread and returns the error and the bytes
    /// this thread read and wrote meanwhile.
    fn import_counted(cache: &Path, bundle: &Path) -> (String, u64, u64) {
        let (read_before, written_before) = io_counts();
        let result = import(cache, bundle);
        let (read_after, written_after) = io_counts();
        let error = result.expect_err("a bomb is refused");
        (
            error,
            read_after - read_before,
            written_after - written_before,
        )
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_lock_entry_that_inflates_to_a_gigabyte_is_refused_at_its_limit() {
        let pinned = pinned();
        let filler = vec![b'\n'; 1 << 20];
        let size = pinned.lock.len() + filler.len() * GIB_OF;
        // A valid lock followed by a gigabyte of newlines (still valid TOML),
        // then the rest of a good bundle.
        let mut head = raw_header(b"kernels.lock", tar::EntryType::Regular, b"", size as u64)
            .as_bytes()
            .to_vec();
        head.extend(pinned.lock.as_bytes());
        let mut rest = tar::Builder::new(Vec::new());
        regular(&mut rest, &member("kernel.toml"), &pinned.manifest);
        regular(&mut rest, &member("scale.wgsl"), &pinned.wgsl);
        let mut tail = padding(size);
        tail.extend(rest.into_inner().unwrap());
        let bomb = gzip_bomb(&head, &filler, GIB_OF, &tail);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.tar.gz");
        std::fs::write(&path, &bomb).unwrap();
        let cache = dir.path().join("cache");

        let (error, read, written) = import_counted(&cache, &path);
        assert!(
            error.contains("was refused, nothing was imported")
                && error.contains("`kernels.lock` is larger than 16 MiB"),
            "{error}"
        );
        // 16 MiB of newlines is ~16 kB of the 1 MB file: reading stopped there.
        assert!(
            read < bomb.len() as u64 / 4,
            "read {read} of the bomb's {} bytes: it was inflated past the limit",
            bomb.len()
        );
        assert!(written < 64 * 1024, "wrote {written} bytes");
        assert_empty(&cache);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_artifact_entry_that_inflates_past_its_pin_is_refused_without_hitting_the_disk() {
        let pinned = pinned();
        let filler = vec![0u8; 1 << 20];
        let size = filler.len() * GIB_OF;
        let mut first = tar::Builder::new(Vec::new());
        regular(&mut first, "kernels.lock", pinned.lock.as_bytes());
        regular(&mut first, &member("kernel.toml"), &pinned.manifest);
        // Not `into_inner`: that would end the archive here.
        let mut head = first.get_ref().clone();
        head.extend(
            raw_header(
                member("scale.wgsl").as_bytes(),
                tar::EntryType::Regular,
                b"",
                size as u64,
            )
            .as_bytes(),
        );
        let bomb = gzip_bomb(&head, &filler, GIB_OF, &[0; 1024]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.tar.gz");
        std::fs::write(&path, &bomb).unwrap();
        let cache = dir.path().join("cache");

        let (error, read, written) = import_counted(&cache, &path);
        let expected = format!(
            "`{}` is larger than its pinned {} bytes",
            member("scale.wgsl"),
            pinned.wgsl.len()
        );
        assert!(
            error.contains("was refused, nothing was imported") && error.contains(&expected),
            "{error}"
        );
        assert!(
            read < bomb.len() as u64 / 4,
            "read {read} of the bomb's {} bytes: it was inflated past the pin",
            bomb.len()
        );
        // The manifest and at most one byte past the pin, staged then removed.
        assert!(written < 64 * 1024, "wrote {written} bytes");
        assert_empty(&cache);
    }
}
