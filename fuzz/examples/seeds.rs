//! Writes seed corpora from the repo's real files into `fuzz/seeds/<target>/`
//! (run from `fuzz/`: `cargo +nightly run --example seeds`), to be merged
//! into `fuzz/corpus/<target>/` with `cargo fuzz cmin`.
//!
//! - `manifest`: `kernels/*/kernel.toml`, and TOML from `docs/` and the
//!   tests' raw string literals that look like a `kernel.toml`;
//! - `lock_project`: the same sources for `kernels.lock` / `kernels.toml`,
//!   plus locks written by the bundle assembler; prefixed with the selector
//!   byte (0: lock, 1: project);
//! - `ptx`, `elf`, `wgsl`: `kernels/*/build/**` and `kernels/*/wgsl/*`;
//!   for `elf` also the cubins of `kernelhub-manifest`'s test fixtures;
//! - `bundle`: a real bundle written by `kernelhub_hub::bundle::create` from
//!   a cache holding `kernels/rmsnorm`, its tar, and pinned inputs built
//!   from every `kernel.toml`.

use std::fs;
use std::path::{Path, PathBuf};

use kernelhub_fuzz::bundle::{self, Pinned, TRUSTED_KEY, flags, op, step};
use kernelhub_hub::bundle::create;
use kernelhub_hub::fetch::Platforms;
use kernelhub_hub::{HubCache, PinnedFile};
use kernelhub_manifest::hash::Sha256Digest;
use kernelhub_manifest::select::Platform;
use kernelhub_manifest::{KernelManifest, Lockfile, Strictness};
use sha2::Digest as _;

fn main() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = fuzz.parent().expect("fuzz/ is inside the repo");
    let out = fuzz.join("seeds");
    let _ = fs::remove_dir_all(&out);
    let mut seeds = Seeds { out, count: 0 };

    let kernels = sorted_dirs(&repo.join("kernels"));
    let mut manifests: Vec<(String, Vec<u8>)> = Vec::new();
    for kernel in &kernels {
        let name = file_name(kernel);
        if let Ok(text) = fs::read(kernel.join("kernel.toml")) {
            seeds.add("manifest", &format!("{name}-kernel.toml"), &text);
            manifests.push((name.clone(), text));
        }
        for file in walk(&kernel.join("build")) {
            let bytes = fs::read(&file).expect("a readable build file");
            let target = match file.extension().and_then(|e| e.to_str()) {
                Some("ptx") => "ptx",
                Some("hsaco" | "cubin" | "co") => "elf",
                _ => continue,
            };
            seeds.add(target, &file_name(&file), &bytes);
        }
        for file in walk(&kernel.join("wgsl")) {
            seeds.add(
                "wgsl",
                &file_name(&file),
                &fs::read(&file).expect("readable"),
            );
        }
    }

    // Real ptxas output with parameter tables (`.nv.info.<kernel>`).
    for file in walk(&repo.join("crates/kernelhub-manifest/tests/fixtures")) {
        if file.extension().is_some_and(|e| e == "cubin") {
            seeds.add(
                "elf",
                &file_name(&file),
                &fs::read(&file).expect("readable"),
            );
        }
    }

    // TOML from the docs and from the tests' raw strings.
    let mut texts: Vec<(String, String)> = Vec::new();
    for doc in walk(&repo.join("docs")) {
        let text = fs::read_to_string(&doc).expect("readable docs");
        for (i, block) in fenced(&text, "```toml").into_iter().enumerate() {
            texts.push((format!("{}-{i}", file_name(&doc)), block));
        }
    }
    let mut rust = Vec::new();
    for dir in ["tests", "crates"] {
        rust.extend(
            walk(&repo.join(dir))
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "rs")),
        );
    }
    for file in rust {
        let text = fs::read_to_string(&file).expect("readable Rust");
        for (i, literal) in raw_strings(&text).into_iter().enumerate() {
            texts.push((format!("{}-{i}", file_name(&file)), literal));
        }
    }
    for (name, text) in &texts {
        if text.contains("[[kernel]]") || text.contains("[[hf]]") {
            seeds.add("lock_project", &format!("lock-{name}"), &prefixed(0, text));
        } else if text.contains("[dependencies") || text.contains("[hub]") {
            seeds.add(
                "lock_project",
                &format!("project-{name}"),
                &prefixed(1, text),
            );
        } else if text.contains("[kernel]") || text.contains("[ops") {
            seeds.add("manifest", name, text.as_bytes());
        }
    }

    // A real bundle: `kernels/rmsnorm` in a cache, bundled for sm_80.
    if let Some((_, text)) = manifests.iter().find(|(n, _)| n == "rmsnorm") {
        real_bundle(&mut seeds, &repo.join("kernels/rmsnorm"), text);
    }

    // Pinned inputs: every manifest, in `bundle create` order, with small
    // contents for its artifacts.
    let small: [&[u8]; 2] = [b"// PTX stand-in\n.version 8.0\n", b"\x7fELF stand-in"];
    let metadata = br#"{"name":"h","digest":{"algorithm":"sha256","files":{"torch/__init__.py":"","torch/_ops.py":""}}}"#;
    let signature = fake_signature();
    for (name, text) in &manifests {
        let plain = Pinned {
            manifest: text,
            files: &small,
            ..Pinned::default()
        };
        seeds.add(
            "bundle",
            &format!("pinned-{name}"),
            &bundle::encode_pinned(&plain),
        );
        let hf = Pinned {
            flags: flags::HF | flags::EXPECTED,
            metadata,
            ..plain
        };
        seeds.add(
            "bundle",
            &format!("pinned-{name}-hf"),
            &bundle::encode_pinned(&hf),
        );
        let signed = Pinned {
            flags: flags::SIGNED | flags::TRUST,
            signature: signature.as_bytes(),
            ..plain
        };
        seeds.add(
            "bundle",
            &format!("pinned-{name}-signed"),
            &bundle::encode_pinned(&signed),
        );
    }
    if let Some((name, text)) = manifests.first() {
        // Out of order, twice, and with faults.
        let plan = [
            step(op::LOCK, 0),
            step(op::ARTIFACT, 0),
            step(op::MANIFEST, 0),
            step(op::FAULT, 3),
            step(op::ARTIFACT, 1),
            step(op::FAULT, 16),
            step(op::ARTIFACT, 2),
            step(op::FAULT, 20),
            step(op::METADATA, 0),
            step(op::VARIANT_FILE, 0),
            step(op::SIGNATURE, 0),
            step(op::MANIFEST, 0),
        ];
        let faulty = Pinned {
            flags: flags::MODEL | flags::TWICE | flags::HF | flags::REDIRECT | flags::REQUIRE,
            plan: &plan,
            manifest: text,
            metadata,
            files: &small,
            ..Pinned::default()
        };
        seeds.add(
            "bundle",
            &format!("pinned-{name}-faults"),
            &bundle::encode_pinned(&faulty),
        );
    }
    // The locks those inputs carry, for the lock parser.
    let all = flags::MODEL | flags::TWICE | flags::HF | flags::REDIRECT | flags::SIGNED;
    for (i, bits) in [0, all].into_iter().enumerate() {
        let lock = bundle::lock_text(bits, b"schema = 1\n", metadata, signature.as_bytes());
        seeds.add(
            "lock_project",
            &format!("lock-bundle-{i}"),
            &prefixed(0, &lock),
        );
    }
    // The same pinned bundle as a file, for the raw mode.
    if let Some((_, text)) = manifests.iter().find(|(n, _)| n == "rmsnorm") {
        let input = Pinned {
            flags: flags::HF,
            manifest: text,
            metadata,
            files: &small,
            ..Pinned::default()
        };
        let assembled = bundle::assemble(&bundle::encode_pinned(&input)).expect("an input");
        let mut raw = vec![bundle::MODE_RAW];
        raw.extend_from_slice(&assembled.file);
        seeds.add("bundle", "assembled-rmsnorm-hf.tar.gz", &raw);
    }
    eprintln!("wrote {} seeds to {}", seeds.count, seeds.out.display());

    // How far each bundle seed gets, so a seed that stops early is noticed.
    for file in walk(&seeds.out.join("bundle")) {
        let data = fs::read(&file).expect("a seed");
        let input = bundle::assemble(&data).expect("a non-empty seed");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("b.tar.gz");
        fs::write(&path, &input.file).expect("writing");
        let cache = HubCache::new(dir.path().join("cache"));
        let outcome =
            kernelhub_hub::bundle::import(&cache, &path, input.expected.as_ref(), &input.trust);
        match outcome {
            Ok((_, summary)) => eprintln!("{}: imported {} files", file_name(&file), summary.files),
            Err(e) => eprintln!(
                "{}: {}",
                file_name(&file),
                e.to_string().lines().next().unwrap_or("")
            ),
        }
    }
}

struct Seeds {
    out: PathBuf,
    count: usize,
}

impl Seeds {
    fn add(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.out.join(target);
        fs::create_dir_all(&dir).expect("creating the seed directory");
        let short = hex(&sha2::Sha256::digest(bytes)[..4]);
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        fs::write(dir.join(format!("{name}-{short}")), bytes).expect("writing a seed");
        self.count += 1;
    }
}

fn hex(bytes: &[u8]) -> String {
    kernelhub_fuzz::hex(bytes)
}

fn prefixed(selector: u8, text: &str) -> Vec<u8> {
    let mut out = vec![selector];
    out.extend_from_slice(text.as_bytes());
    out
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// Every file under `dir`, sorted, skipping `target` folders.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if file_name(&path) != "target" {
                files.extend(walk(&path));
            }
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The bodies of the ``` blocks opened by `fence`.
fn fenced(text: &str, fence: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(fence) {
        let body = &rest[start + fence.len()..];
        let body = body.split_once('\n').map_or("", |(_, b)| b);
        let Some(end) = body.find("```") else { break };
        blocks.push(body[..end].to_string());
        rest = &body[end + 3..];
    }
    blocks
}

/// The `r#"…"#` literals of a Rust file that contain a TOML table header
/// (`format!` ones keep their `{{`/`}}`; the fuzzer copes).
fn raw_strings(text: &str) -> Vec<String> {
    let mut literals = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("r#\"") {
        let body = &rest[start + 3..];
        let Some(end) = body.find("\"#") else { break };
        let literal = &body[..end];
        if literal.contains("schema") || literal.contains("\n[") {
            literals.push(literal.replace("{{", "{").replace("}}", "}"));
        }
        rest = &body[end + 2..];
    }
    literals
}

/// A minisign-shaped signature naming [`TRUSTED_KEY`]'s id, so the
/// fuzzer starts past the key lookup (it cannot make one that verifies).
fn fake_signature() -> String {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine.decode(TRUSTED_KEY).expect("the key is base64");
    let mut signature = b"ED".to_vec();
    signature.extend_from_slice(&key[2..10]);
    signature.extend_from_slice(&[0x55; 64]);
    format!(
        "untrusted comment: signature from minisign secret key\n{}\ntrusted comment: timestamp:0\tfile:kernel.toml\n{}\n",
        engine.encode(&signature),
        engine.encode([0x33; 64])
    )
}

/// `bundle create` over a cache holding `kernel` at a made-up commit.
fn real_bundle(seeds: &mut Seeds, kernel: &Path, text: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cache = HubCache::new(dir.path().join("cache"));
    let lock_text = format!(
        "schema = 1\n\n[[kernel]]\nname = \"rmsnorm\"\nrepo = \"kernels-test/rmsnorm\"\nref = \"v1.0.0\"\ncommit = \"{}\"\nmanifest_sha256 = \"{}\"\n",
        bundle::COMMIT,
        Sha256Digest::of(text)
    );
    let lock = Lockfile::parse(&lock_text, Path::new("kernels.lock"), Strictness::Check)
        .value
        .expect("the seed lock parses");
    let locked = &lock.kernels[0];
    let manifest = KernelManifest::parse(
        std::str::from_utf8(text).expect("UTF-8"),
        Path::new("kernel.toml"),
        Strictness::Load,
    )
    .value
    .expect("the reference manifest parses");
    cache
        .install_verified(&PinnedFile::manifest(locked), text)
        .expect("installing the manifest");
    for artifact in &manifest.artifacts {
        let bytes = fs::read(kernel.join(artifact.path.get_ref())).expect("a built artifact");
        if let Err(e) = cache.install_verified(&PinnedFile::artifact(locked, artifact), &bytes) {
            eprintln!("skipping {}: {e}", artifact.path.get_ref());
        }
    }
    let platform: Platform = "cuda:sm_80".parse().expect("a platform");
    let out = dir.path().join("kernels.tar.gz");
    create(&cache, &lock, &Platforms::These(vec![platform]), &out).expect("bundle create");
    let file = fs::read(&out).expect("the bundle");
    let mut raw = vec![bundle::MODE_RAW];
    raw.extend_from_slice(&file);
    seeds.add("bundle", "real-rmsnorm-sm80.tar.gz", &raw);
    let mut tar = vec![bundle::MODE_TAR];
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(file.as_slice()), &mut tar)
        .expect("gunzip");
    seeds.add("bundle", "real-rmsnorm-sm80.tar", &tar);
}
