//! Host code end to end: a real shared library built here with clang
//! (installed by `scripts/test.sh`), described by a `shared-library`
//! artifact, refused without `allow_host_code`, refused when its bytes
//! differ from the pin, and otherwise loaded from a sealed memory file whose
//! function returns the right answer.

use std::path::Path;
use std::process::Command;

use kernelhub::host::{allowed, load_host_library};
use kernelhub::{KernelSource, LoadError};
use kernelhub_manifest::check::check_repo;
use kernelhub_manifest::hash::Sha256Digest;
use kernelhub_manifest::{ProjectManifest, Severity, Strictness};

/// A kernel repo with `libadd.so` exporting `kernelhub_add(a, b) = a + b`.
fn host_kernel() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("add.c"),
        "int kernelhub_add(int a, int b) { return a + b; }\n",
    )
    .unwrap();
    let clang = std::env::var("CC").unwrap_or_else(|_| "clang-15".into());
    let built = Command::new(&clang)
        .args(["-shared", "-fPIC", "-O2", "-o", "libadd.so", "add.c"])
        .current_dir(dir.path())
        .output()
        .unwrap_or_else(|e| panic!("`{clang}` runs (scripts/test.sh installs clang-15): {e}"));
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let library = std::fs::read(dir.path().join("libadd.so")).unwrap();
    std::fs::write(
        dir.path().join("kernel.toml"),
        format!(
            r#"schema = 1
[kernel]
name = "hostadd"
version = "0.1.0"
license = "MIT"

[ops.add]
dtypes = ["i32"]
params = [
  {{ name = "x", tensor = "T", shape = ["n"], written = true }},
  {{ name = "n", scalar = "u32" }},
]

[[artifacts]]
backend = "cuda"
format = "shared-library"
targets = ["sm_80"]
path = "libadd.so"
size = {}
sha256 = "{}"

[[artifacts.entries]]
op = "add"
dtype = "i32"
symbol = "kernelhub_add"
grid = [1]
block = [1]
"#,
            library.len(),
            Sha256Digest::of(&library)
        ),
    )
    .unwrap();
    dir
}

#[test]
fn kernelhub_check_accepts_the_library_and_names_a_missing_symbol() {
    let dir = host_kernel();
    let report = check_repo(dir.path()).unwrap();
    assert_eq!(report.count(Severity::Error), 0, "{report:?}");
    let manifest = std::fs::read_to_string(dir.path().join("kernel.toml")).unwrap();
    std::fs::write(
        dir.path().join("kernel.toml"),
        manifest.replace("symbol = \"kernelhub_add\"", "symbol = \"kernelhub_sub\""),
    )
    .unwrap();
    let report = check_repo(dir.path()).unwrap();
    let text = format!("{report:?}");
    assert!(text.contains("exports no symbol `kernelhub_sub`"), "{text}");
}

#[test]
fn host_code_loads_only_when_allowed_and_verified_from_a_sealed_copy() {
    let dir = host_kernel();
    let source = KernelSource::Dir(dir.path().to_path_buf());

    let refused = load_host_library(&source, "libadd.so", false)
        .err()
        .unwrap();
    assert!(matches!(refused, LoadError::HostCodeNotAllowed { .. }));
    assert!(
        refused
            .to_string()
            .contains("add `allow_host_code = true` to this dependency"),
        "{refused}"
    );

    let project = ProjectManifest::parse(
        "schema = 1\n[dependencies]\nhostadd = { repo = \"acme/hostadd\", version = \"^0.1\", allow_host_code = true }\nother = { repo = \"acme/other\", version = \"^1\" }\n",
        Path::new("kernels.toml"),
        Strictness::Check,
    );
    assert!(project.diagnostics.is_empty(), "{:?}", project.diagnostics);
    let project = project.value.unwrap();
    assert!(allowed(&project, "hostadd") && !allowed(&project, "other"));

    let library = load_host_library(&source, "libadd.so", true).unwrap();
    // SAFETY: the test's C function has exactly this signature.
    #[allow(unsafe_code)]
    let add = unsafe { library.symbol::<extern "C" fn(i32, i32) -> i32>("kernelhub_add") }.unwrap();
    assert_eq!(add(2, 40), 42);
    let seals = library.seals().unwrap();
    use rustix::fs::SealFlags;
    assert!(
        seals.contains(SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
    );
    // Nothing can write the loaded copy, not even this process.
    use std::os::fd::AsRawFd;
    let path = format!("/proc/self/fd/{}", library.memfd().as_raw_fd());
    let write = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"\x7fELF"));
    assert!(write.is_err(), "the sealed copy took a write");

    // Changed bytes on disk: refused before the loader sees them.
    let mut bytes = std::fs::read(dir.path().join("libadd.so")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(dir.path().join("libadd.so"), bytes).unwrap();
    let tampered = load_host_library(&source, "libadd.so", true).err().unwrap();
    assert!(matches!(tampered, LoadError::Mismatch { .. }), "{tampered}");
}

/// Builds a shared library from `source` in `dir`; returns its bytes.
fn build(dir: &Path, name: &str, source: &str) -> Vec<u8> {
    std::fs::write(dir.join(format!("{name}.c")), source).unwrap();
    let clang = std::env::var("CC").unwrap_or_else(|_| "clang-15".into());
    let built = Command::new(&clang)
        // `nodelete`: like many real libraries, never unloaded by dlclose.
        .args(["-shared", "-fPIC", "-O2", "-Wl,-z,nodelete", "-o"])
        .arg(format!("{name}.so"))
        .arg(format!("{name}.c"))
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("`{clang}` runs: {e}"));
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    std::fs::read(dir.join(format!("{name}.so"))).unwrap()
}

#[test]
fn a_library_loaded_after_another_is_dropped_is_not_mistaken_for_it() {
    // The loader knows libraries by path (`/proc/self/fd/N`): if the first
    // one's descriptor were closed and reused, `dlopen` would return the
    // first library again.
    let dir = tempfile::tempdir().unwrap();
    let first = build(
        dir.path(),
        "first",
        "int kernelhub_which(void) { return 1; }\n",
    );
    let second = build(
        dir.path(),
        "second",
        "int kernelhub_which(void) { return 2; }\n",
    );
    for _ in 0..3 {
        for (bytes, expected) in [(&first, 1), (&second, 2)] {
            // SAFETY: test libraries built just above.
            #[allow(unsafe_code)]
            let library = unsafe { kernelhub_host::HostLibrary::open("test", bytes) }.unwrap();
            // SAFETY: the C function has exactly this signature.
            #[allow(unsafe_code)]
            let which =
                unsafe { library.symbol::<extern "C" fn() -> i32>("kernelhub_which") }.unwrap();
            assert_eq!(which(), expected);
        }
    }
}
