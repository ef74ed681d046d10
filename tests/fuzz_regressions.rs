//! What fuzzing (`fuzz/`, see `fuzz/README.md`) found, kept as tests, and a
//! replay of the committed fuzz corpora through the parsers so a change
//! that makes any of those inputs panic fails `cargo test`, not only a
//! fuzzing session.

use std::path::{Path, PathBuf};

use kernelhub_manifest::introspect::{cubin, elf, fatbin, ptx};
use kernelhub_manifest::kernel::ManifestParts;
use kernelhub_manifest::validate::validate;
use kernelhub_manifest::{
    Diagnostic, KernelManifest, Lockfile, ProjectManifest, Severity, Strictness,
};

/// The example manifest of the `kernelhub-manifest` docs.
const VALID: &str = r#"schema = 1
[kernel]
name = "demo"
version = "0.1.0"
license = "MIT"
[ops.scale]
dtypes = ["f32"]
params = [
  { name = "x", tensor = "T", shape = ["n"], written = true },
  { name = "n", scalar = "u32" },
]
[[artifacts]]
backend = "wgpu"
format = "wgsl"
path = "scale.wgsl"
size = 10
sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
[[artifacts.entries]]
op = "scale"
dtype = "f32"
symbol = "main"
grid = ["ceil_div(n, 64)"]
"#;

/// Renders every diagnostic, as `kernelhub check` and the Hub's manifest
/// loading do.
fn render_all(diagnostics: &[Diagnostic], text: &str) -> usize {
    diagnostics
        .iter()
        .map(|d| d.render(Some(text)).len() + d.to_json(Some(text)).to_string().len())
        .sum()
}

/// A file with `n` problems is reported with at most 200 diagnostics and
/// one that counts the rest, and that one is an error when they are.
fn assert_bounded(diagnostics: &[Diagnostic], file: &str) {
    assert_eq!(diagnostics.len(), 201, "{file}");
    let summary = diagnostics.last().unwrap();
    assert_eq!(summary.code, "too-many-problems", "{file}");
    assert_eq!(summary.severity, Severity::Error, "{file}");
    assert!(summary.file.ends_with(file));
    assert!(
        summary
            .message
            .contains("more problems in this file are not reported"),
        "{}",
        summary.message
    );
}

/// Found while profiling the `manifest` target's slowest inputs: every
/// problem became a diagnostic, and rendering one scans the text up to
/// it, so a hostile `kernel.toml` (a Hub serves it before anything pins
/// it; the limit is 16 MiB) took minutes to report: 2.2 MB with 128,000
/// wrong-typed fields took 85 s to render in release. Now a file reports
/// at most 200 diagnostics plus one counting the rest.
#[test]
fn a_file_with_thousands_of_problems_reports_a_bounded_number() {
    let n = 20_000;
    let mut manifest = String::from(
        "schema = 1\n[kernel]\nname = \"x\"\nversion = \"0.1.0\"\nlicense = \"MIT\"\n",
    );
    for i in 0..n {
        manifest += &format!("[ops.o{i}]\ndtypes = 1\nparams = 2\n");
    }
    for strictness in [Strictness::Load, Strictness::Check] {
        let parsed = KernelManifest::parse(&manifest, Path::new("kernel.toml"), strictness);
        assert!(parsed.value.is_none() && !parsed.complete);
        assert_bounded(&parsed.diagnostics, "kernel.toml");
        // Two problems per op (and the missing `[[artifacts]]`), 200 shown.
        let message = &parsed.diagnostics[200].message;
        let dropped: usize = message.split(' ').next().unwrap().parse().unwrap();
        assert!(dropped >= 2 * n - 200, "{message}");
        assert!(render_all(&parsed.diagnostics, &manifest) > 0);
    }

    // Past the limit with warnings only (unknown fields, when loading): the
    // count is a warning.
    let unknown: String = (0..500).map(|i| format!("unknown{i} = 1\n")).collect();
    let warned = VALID.replace(
        "license = \"MIT\"\n",
        &format!("license = \"MIT\"\n{unknown}"),
    );
    let parts = ManifestParts::parse(&warned, Path::new("kernel.toml"), Strictness::Load);
    assert!(parts.complete, "{:?}", parts.diagnostics.first());
    assert_eq!(parts.diagnostics.len(), 201);
    assert_eq!(parts.diagnostics[200].code, "too-many-problems");
    assert_eq!(parts.diagnostics[200].severity, Severity::Warning);
    // And in `check`, where unknown fields are errors, it fails.
    let strict = ManifestParts::parse(&warned, Path::new("kernel.toml"), Strictness::Check);
    assert!(!strict.complete);
    assert_bounded(&strict.diagnostics, "kernel.toml");

    let mut lock = String::from("schema = 1\n");
    for i in 0..n {
        lock += &format!("[[kernel]]\nname = \"k{i}\"\nrepo = 1\n");
    }
    let parsed = Lockfile::parse(&lock, Path::new("kernels.lock"), Strictness::Load);
    assert!(!parsed.complete);
    assert_bounded(&parsed.diagnostics, "kernels.lock");
    assert!(render_all(&parsed.diagnostics, &lock) > 0);

    let mut project = String::from("schema = 1\n[dependencies]\n");
    for i in 0..n {
        project += &format!("d{i} = 5\n");
    }
    let parsed = ProjectManifest::parse(&project, Path::new("kernels.toml"), Strictness::Load);
    assert!(!parsed.complete);
    assert_bounded(&parsed.diagnostics, "kernels.toml");
    assert!(render_all(&parsed.diagnostics, &project) > 0);

    // The cross-field rules have their own bound.
    let mut many_ops = String::from(
        "schema = 1\n[kernel]\nname = \"x\"\nversion = \"0.1.0\"\nlicense = \"MIT\"\n",
    );
    for i in 0..1_000 {
        many_ops += &format!("[ops.o{i}]\ndtypes = [\"f32\"]\nparams = []\n");
    }
    let parts = ManifestParts::parse(&many_ops, Path::new("kernel.toml"), Strictness::Check);
    let parts = parts.value.expect("the ops read");
    let problems = validate(&parts.ops, &parts.artifacts, Path::new("kernel.toml"), true);
    assert!(problems.len() <= 201, "{}", problems.len());
}

/// `fuzz/artifacts/manifest/crash-42aeffb5…`, minimised: an expression
/// string with a non-ASCII character. The `invalid-expression` error got a
/// one-byte span on the three-byte U+FEFF, and rendering it sliced the text
/// inside the character: a panic in `kernelhub check` and in every load of
/// such a manifest from the Hub, which renders a refused manifest's errors.
const SHAPE_WITH_A_BOM: &[u8] = b"[ops.f]\nparams=[{tensor=\"\",shape=[\"r\xef\xbb\xbf\"]}]";

#[test]
fn an_expression_with_a_multibyte_character_is_an_error_not_a_panic() {
    let text = std::str::from_utf8(SHAPE_WITH_A_BOM).unwrap();
    for strictness in [Strictness::Check, Strictness::Load] {
        let parsed = KernelManifest::parse(text, Path::new("kernel.toml"), strictness);
        assert!(parsed.value.is_none());
        let bad = parsed
            .diagnostics
            .iter()
            .find(|d| d.code == "invalid-expression")
            .expect("the shape is reported");
        assert_eq!(bad.severity, Severity::Error);
        // The span covers the whole character, and renders with its line.
        let span = bad.span.clone().unwrap();
        assert_eq!(&text[span], "\u{feff}");
        let rendered = bad.render(Some(text));
        assert!(rendered.contains("--> kernel.toml:2:"), "{rendered}");
        assert!(rendered.contains("shape"), "{rendered}");
        render_all(&parsed.diagnostics, text);
    }
    // Same character elsewhere in an expression, and a span that starts
    // inside it (as a hand-made `Diagnostic` may have).
    for expression in ["\u{feff}", "n + \u{e9}", "ceil_div(n, 256)\u{2028}"] {
        let source = format!(
            "[ops.f]\nparams=[{{tensor=\"\",shape=[\"{expression}\"]}}]\ndtypes=[\"f32\"]\n"
        );
        let parsed = KernelManifest::parse(&source, Path::new("kernel.toml"), Strictness::Load);
        assert!(render_all(&parsed.diagnostics, &source) > 0);
    }
    let d = Diagnostic::error("x", Path::new("kernel.toml"), Some(37..38), "m");
    assert!(d.render(Some(text)).contains("kernel.toml:2:"));
}

/// The same manifest arriving in a bundle: refused with the field named,
/// the cache left empty.
#[test]
fn a_bundle_carrying_that_manifest_is_refused_not_a_panic() {
    use std::io::Write as _;

    use kernelhub_hub::HubCache;
    use kernelhub_manifest::hash::Sha256Digest;
    use kernelhub_manifest::trust::TrustPolicy;

    let commit = "0123456789abcdef0123456789abcdef01234567";
    let lock = format!(
        "schema = 1\n\n[[kernel]]\nname = \"k\"\nrepo = \"acme/k\"\nref = \"main\"\ncommit = \"{commit}\"\nmanifest_sha256 = \"{}\"\n",
        Sha256Digest::of(SHAPE_WITH_A_BOM)
    );
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("kernels.lock".to_string(), lock.as_bytes()),
        (
            format!("kernels--acme--k/{commit}/kernel.toml"),
            SHAPE_WITH_A_BOM,
        ),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, data).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar.into_inner().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("kernels.tar.gz");
    std::fs::write(&bundle, gz.finish().unwrap()).unwrap();
    let cache = HubCache::new(dir.path().join("cache"));
    let error = kernelhub_hub::bundle::import(&cache, &bundle, None, &TrustPolicy::default())
        .expect_err("an invalid manifest is refused")
        .to_string();
    assert!(error.contains("was refused"), "{error}");
    assert!(error.contains("Invalid expression"), "{error}");
    assert!(error.contains("acme/k@0123456789ab/kernel.toml"), "{error}");
    assert!(!dir.path().join("cache/kernels--acme--k").exists());
}

/// `fuzz/corpus/<target>/`, when present.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

/// The committed corpora through what the `manifest`, `lock_project`,
/// `ptx` and `elf` targets call (each input must not panic).
#[test]
fn committed_fuzz_corpora_do_not_panic() {
    for (path, bytes) in corpus("manifest") {
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        for strictness in [Strictness::Check, Strictness::Load] {
            let parts = ManifestParts::parse(text, &path, strictness);
            render_all(&parts.diagnostics, text);
            if let Some(parts) = &parts.value {
                render_all(&validate(&parts.ops, &parts.artifacts, &path, false), text);
            }
            let parsed = KernelManifest::parse(text, &path, strictness);
            if let Some(m) = &parsed.value {
                render_all(&validate(&m.ops, &m.artifacts, &path, true), text);
            }
        }
    }
    for (path, bytes) in corpus("lock_project") {
        let Some((which, rest)) = bytes.split_first() else {
            continue;
        };
        let Ok(text) = std::str::from_utf8(rest) else {
            continue;
        };
        for strictness in [Strictness::Check, Strictness::Load] {
            if which % 2 == 0 {
                let parsed = Lockfile::parse(text, &path, strictness);
                render_all(&parsed.diagnostics, text);
                if let Some(lock) = parsed.value.filter(|_| parsed.complete) {
                    let again = Lockfile::parse(&lock.to_toml(), &path, Strictness::Check);
                    assert_eq!(again.value, Some(lock), "{}", path.display());
                }
            } else {
                let parsed = ProjectManifest::parse(text, &path, strictness);
                render_all(&parsed.diagnostics, text);
            }
        }
    }
    for (_, bytes) in corpus("ptx") {
        if let Err(e) = ptx::parse_ptx(&bytes) {
            assert!(!e.to_string().is_empty());
        }
    }
    for (_, bytes) in corpus("elf") {
        if let Ok(info) = elf::parse_elf(&bytes) {
            let _ = info.target_id();
            if let Ok(cubin) = cubin::Cubin::parse(&bytes) {
                for symbol in &info.symbols {
                    let _ = cubin.kernel_params(symbol);
                }
            }
        }
        let _ = elf::amdgpu_kernels(&bytes);
        if let Ok(entries) = fatbin::parse_fatbin(&bytes) {
            for entry in entries {
                let _ = elf::parse_elf(&bytes[entry.payload]);
            }
        }
    }
}
