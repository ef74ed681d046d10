//! `kernelhub lock`, `fetch`, `verify` and `bundle` end to end: against a
//! real Hub server (olah over git repos built from `kernels/`), against the
//! Python `huggingface_hub` in both directions, across processes (SIGKILL
//! mid-download, two fetches at once), and on an air-gapped "machine" (a
//! fresh cache, offline, an endpoint nobody listens on).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kernelhub_hub::HubCache;
use kernelhub_manifest::hash::Sha256Digest;
use kernelhub_manifest::{Lockfile, Strictness};
use kernelhub_tests::faults::scale_repo;
use kernelhub_tests::olah::{Olah, venv};
use kernelhub_tests::tamper;

/// A consuming project and its own cache, isolated from the host's settings.
struct Project {
    dir: tempfile::TempDir,
    cache: PathBuf,
}

impl Project {
    fn new(kernels_toml: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kernels.toml"), kernels_toml).unwrap();
        let cache = dir.path().join("cache");
        Project { dir, cache }
    }

    /// The three reference kernels from the shared olah, one way each.
    fn reference() -> Project {
        Project::new(&format!(
            r#"schema = 1
[hub]
endpoint = "{}"
repo_type = "model"

[dependencies]
activation = {{ repo = "kernels-test/activation", version = "^1" }}
rmsnorm = {{ repo = "kernels-test/rmsnorm", version = 1 }}
rotary = {{ repo = "kernels-test/rotary", branch = "main" }}
"#,
            Olah::shared().endpoint
        ))
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        kernelhub_tests::isolated_command(
            env!("CARGO_BIN_EXE_kernelhub"),
            self.path(),
            &self.cache,
            args,
        )
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("kernelhub runs")
    }

    /// Runs and asserts success; returns stderr.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "kernelhub {args:?} failed:\n{stderr}"
        );
        stderr
    }

    fn lock(&self) -> Lockfile {
        let text = std::fs::read_to_string(self.path().join("kernels.lock")).unwrap();
        Lockfile::parse(&text, Path::new("kernels.lock"), Strictness::Check)
            .value
            .unwrap()
    }

    /// The commit `kernel` is locked at.
    fn commit(&self, kernel: &str) -> String {
        let lock = self.lock();
        let entry = lock.kernels.iter().find(|k| k.name == kernel);
        entry.expect("kernel is locked").commit.clone()
    }

    /// `snapshots/<commit>/` of a locked reference kernel in this cache.
    fn snapshot(&self, kernel: &str) -> PathBuf {
        let commit = self.commit(kernel);
        self.cache
            .join(format!("models--kernels-test--{kernel}/snapshots/{commit}"))
    }

    fn fetch_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["fetch", "--json"];
        all.extend_from_slice(args);
        let output = self.run(&all);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("JSON on stdout")
    }
}

/// Every file path a fetch summary lists, sorted, as `kernel/path`.
fn fetched_paths(summary: &serde_json::Value) -> Vec<String> {
    let mut paths: Vec<String> = summary["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|k| {
            let name = k["name"].as_str().unwrap().to_string();
            k["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |f| format!("{name}/{}", f["path"].as_str().unwrap()))
        })
        .collect();
    paths.sort();
    paths
}

#[test]
fn lock_resolves_tags_version_branches_and_branches() {
    let olah = Olah::shared();
    let project = Project::reference();
    let stderr = project.ok(&["lock"]);
    assert!(stderr.contains("Added activation v1.1.0"), "{stderr}");
    let lock = project.lock();
    let entry = |name: &str| {
        lock.kernels
            .iter()
            .find(|k| k.name == name)
            .unwrap()
            .clone()
    };
    let expect = [
        ("activation", "v1.1.0", "v1.1.0"),
        ("rmsnorm", "v1", "v1.1.0"),
        ("rotary", "main", "v2.0.0"),
    ];
    for (name, reference, at) in expect {
        let locked = entry(name);
        assert_eq!(locked.reference, reference);
        assert_eq!(locked.commit, olah.commit(name, at));
        let manifest = olah.file(name, at, "kernel.toml");
        assert_eq!(
            locked.manifest_sha256,
            Sha256Digest::of(&manifest),
            "{name}"
        );
    }
}

#[test]
fn an_existing_lock_is_honoured_and_update_moves_only_what_is_named() {
    let project = Project::reference();
    project.ok(&["lock"]);
    let first = std::fs::read(project.path().join("kernels.lock")).unwrap();
    // Widening the requirement keeps the locked v1.1.0: it still matches.
    let widened = std::fs::read_to_string(project.path().join("kernels.toml"))
        .unwrap()
        .replace("version = \"^1\"", "version = \">=1\"");
    std::fs::write(project.path().join("kernels.toml"), widened).unwrap();
    let stderr = project.ok(&["lock"]);
    assert!(stderr.contains("Unchanged"), "{stderr}");
    assert_eq!(
        std::fs::read(project.path().join("kernels.lock")).unwrap(),
        first
    );
    // Naming it moves it to the highest match; the others stay byte-identical.
    let stderr = project.ok(&["lock", "--update", "activation"]);
    assert!(stderr.contains("Updated activation v2.0.0"), "{stderr}");
    let after =
        String::from_utf8(std::fs::read(project.path().join("kernels.lock")).unwrap()).unwrap();
    let before = String::from_utf8(first).unwrap();
    let untouched = |text: &str| text[text.find("name = \"rmsnorm\"").unwrap()..].to_string();
    assert_eq!(untouched(&after), untouched(&before));
    // A requirement the lock no longer satisfies: fetch says so.
    let narrowed = std::fs::read_to_string(project.path().join("kernels.toml"))
        .unwrap()
        .replace("version = \">=1\"", "version = \"~1.0\"");
    std::fs::write(project.path().join("kernels.toml"), narrowed).unwrap();
    let warned = project.ok(&["fetch", "--target", "wgpu"]);
    assert!(
        warned.contains("`kernels.lock` does not match `kernels.toml` for activation;"),
        "{warned}"
    );
    let unknown = project.run(&["lock", "--update", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no kernel `nope`"));
}

#[test]
fn fetch_downloads_only_what_the_targets_use() {
    let project = Project::reference();
    project.ok(&["lock"]);
    let cuda = project.fetch_json(&["--target", "cuda:sm_90"]);
    assert_eq!(
        fetched_paths(&cuda),
        [
            "activation/build/cuda/activation_sm80.ptx",
            "activation/kernel.toml",
            "rmsnorm/build/cuda/rmsnorm_sm80.ptx",
            "rmsnorm/kernel.toml",
            "rotary/build/cuda/rotary_sm80.ptx",
            "rotary/kernel.toml",
        ]
    );
    assert_eq!(
        cuda["downloaded"]["files"], 3,
        "the lock already cached the manifests"
    );
    let snapshot = |kernel: &str| project.snapshot(kernel);
    assert!(
        !snapshot("activation").join("build/rocm").exists(),
        "no ROCm file for a CUDA target"
    );
    assert!(
        !snapshot("activation").join("wgsl").exists(),
        "no WGSL where PTX covers everything"
    );

    let amd = project.fetch_json(&["--target", "rocm:gfx942", "--target", "cuda:sm_90"]);
    let amd_paths = fetched_paths(&amd);
    assert!(amd_paths.contains(&"activation/build/rocm/activation_gfx942.hsaco".to_string()));
    assert!(
        !amd_paths.iter().any(|p| p.contains("gfx90a")),
        "{amd_paths:?}"
    );
    assert_eq!(
        amd["cached"]["files"], 6,
        "manifests and PTX were already there"
    );

    let warm = project.fetch_json(&["--all"]);
    let again = project.fetch_json(&["--all"]);
    assert!(warm["downloaded"]["files"].as_u64().unwrap() > 0);
    assert_eq!(
        again["downloaded"]["files"], 0,
        "a warm fetch downloads nothing"
    );
    project.ok(&["verify", "--all"]);
}

fn python(script: &str, env: &[(&str, &Path)]) -> String {
    let mut command = Command::new(venv().join("bin/python"));
    command
        .arg("-c")
        .arg(script)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("HF_ENDPOINT");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("python runs");
    assert!(
        output.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn python_huggingface_hub_reads_what_kernelhub_fetched() {
    let olah = Olah::shared();
    let project = Project::reference();
    project.ok(&["lock"]);
    project.ok(&["fetch", "--target", "cuda:sm_80"]);
    let commit = olah.commit("activation", "v1.1.0");
    let script = format!(
        "import hashlib, os\n\
         from huggingface_hub import hf_hub_download\n\
         for rev in ['{commit}', 'v1.1.0']:\n\
         \x20   p = hf_hub_download('kernels-test/activation', 'build/cuda/activation_sm80.ptx', repo_type='model', revision=rev, cache_dir=os.environ['CACHE'], local_files_only=True)\n\
         \x20   print(hashlib.sha256(open(p, 'rb').read()).hexdigest())\n"
    );
    let printed = python(&script, &[("CACHE", &project.cache)]);
    let expected =
        Sha256Digest::of(&olah.file("activation", "v1.1.0", "build/cuda/activation_sm80.ptx"))
            .to_string();
    assert_eq!(printed, format!("{expected}\n{expected}"));
}

#[test]
fn kernelhub_loads_offline_what_hf_download_fetched() {
    let olah = Olah::shared();
    let project = Project::reference();
    project.ok(&["lock"]);
    let wanted = project.fetch_json(&["--target", "cuda:sm_80"]);
    // A second cache, filled only by the Python CLI.
    let python_cache = project.path().join("python-cache");
    for kernel in wanted["kernels"].as_array().unwrap() {
        let name = kernel["name"].as_str().unwrap();
        let files: Vec<&str> = kernel["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        let output = Command::new(venv().join("bin/hf"))
            .args(["download", &format!("kernels-test/{name}")])
            .args(&files)
            .args([
                "--revision",
                kernel["commit"].as_str().unwrap(),
                "--cache-dir",
            ])
            .arg(&python_cache)
            .env("HF_ENDPOINT", &olah.endpoint)
            .env_remove("HF_HUB_OFFLINE")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "hf download: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let offline = project
        .command(&["fetch", "--json", "--target", "cuda:sm_80", "--cache-dir"])
        .arg(&python_cache)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&offline.stdout).unwrap();
    assert_eq!(summary["downloaded"]["files"], 0);
    assert_eq!(summary["cached"]["files"], 6);
    // And the engine's load path reads and verifies the same files.
    let cache = HubCache::new(&python_cache);
    for locked in &project.lock().kernels {
        let manifest = cache.load_manifest(locked).unwrap();
        let ptx = manifest
            .artifacts
            .iter()
            .find(|a| a.path.get_ref().ends_with("sm80.ptx"))
            .unwrap();
        let bytes = cache.load_artifact(locked, ptx).unwrap();
        assert!(bytes.starts_with(b"//"), "PTX text");
    }
}

#[test]
fn air_gapped_lock_fetch_bundle_import_and_offline_load() {
    // The connected staging machine.
    let staging = Project::reference();
    staging.ok(&["lock"]);
    staging.ok(&["fetch", "--target", "cuda:sm_90", "--target", "rocm:gfx942"]);
    let bundle = staging.path().join("kernels.tar.gz");
    let stderr = staging.ok(&[
        "bundle",
        "create",
        "kernels.tar.gz",
        "--target",
        "cuda:sm_90",
        "--target",
        "rocm:gfx942",
    ]);
    assert!(
        stderr.contains("Bundled kernels.tar.gz (10 files"),
        "{stderr}"
    );

    // The air-gapped machine: its own project copy (with the lock), an empty
    // cache, offline, and an endpoint where nothing listens.
    let gapped = Project::new("schema = 1\n");
    std::fs::copy(
        staging.path().join("kernels.lock"),
        gapped.path().join("kernels.lock"),
    )
    .unwrap();
    let offline = |args: &[&str]| {
        gapped
            .command(args)
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .output()
            .unwrap()
    };
    let missing = offline(&["fetch", "--target", "cuda:sm_90"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("is not in the cache"));

    // A bundle with one changed byte is refused and leaves the cache empty.
    let tampered = gapped.path().join("tampered.tar.gz");
    std::fs::copy(&bundle, &tampered).unwrap();
    let commit = gapped.commit("rmsnorm");
    tamper(
        &tampered,
        &format!("models--kernels-test--rmsnorm/{commit}/build/rocm/rmsnorm_gfx942.hsaco"),
    );
    let refused = offline(&["bundle", "import", "tampered.tar.gz"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("was refused, nothing was imported")
            && stderr.contains("rmsnorm_gfx942.hsaco"),
        "{stderr}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&gapped.cache)
        .map(|d| {
            d.map(|e| e.unwrap().file_name())
                .filter(|n| n != "CACHEDIR.TAG" && n != ".locks")
                .collect()
        })
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "the refused bundle left {leftovers:?}"
    );
    let scratch = std::fs::read_dir(gapped.cache.join(".locks/kernelhub-tmp")).unwrap();
    assert_eq!(scratch.count(), 0, "the staging directory is removed");

    std::fs::copy(&bundle, gapped.path().join("kernels.tar.gz")).unwrap();
    let imported = offline(&[
        "bundle",
        "import",
        "kernels.tar.gz",
        "--lock",
        "kernels.lock",
    ]);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    for args in [
        &["fetch", "--target", "cuda:sm_90", "--target", "rocm:gfx942"][..],
        &[
            "verify",
            "--target",
            "cuda:sm_90",
            "--target",
            "rocm:gfx942",
        ][..],
    ] {
        let output = offline(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // Loading, as an engine does it: settings from the environment say
    // offline, so there is no client; every byte comes verified from the cache.
    let cache = HubCache::new(&gapped.cache);
    for locked in &gapped.lock().kernels {
        let manifest = cache.load_manifest(locked).unwrap();
        for artifact in manifest.artifacts.iter().filter(|a| {
            let path = a.path.get_ref();
            path.ends_with("sm80.ptx") || path.ends_with("gfx942.hsaco")
        }) {
            let bytes = cache.load_artifact(locked, artifact).unwrap();
            assert_eq!(bytes.len() as u64, *artifact.size.get_ref());
        }
    }
}

#[test]
fn offline_with_an_empty_cache_opens_no_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let project = Project::new(&format!("schema = 1\n[hub]\nendpoint = \"{endpoint}\"\n"));
    let (_server, lock) = scale_repo(b"unused".to_vec());
    std::fs::write(project.path().join("kernels.lock"), lock.to_toml()).unwrap();
    for args in [&["fetch"][..], &["fetch", "--offline"][..]] {
        let mut command = project.command(args);
        if args.len() == 1 {
            command.env("HF_HUB_OFFLINE", "1");
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("`kernel.toml` of `acme/scale`") && stderr.contains("kernelhub fetch"),
            "{stderr}"
        );
    }
    let lock_offline = project.command(&["lock", "--offline"]).output().unwrap();
    assert!(!lock_offline.status.success());
    let mut connections = 0;
    while listener.accept().is_ok() {
        connections += 1;
    }
    assert_eq!(connections, 0, "offline kernelhub connected to the Hub");
}

#[test]
fn a_lock_whose_commit_is_gone_or_whose_manifest_changed_is_refused() {
    let olah = Olah::shared();
    let project = Project::reference();
    project.ok(&["lock"]);
    let lock = std::fs::read_to_string(project.path().join("kernels.lock")).unwrap();
    let commit = olah.commit("activation", "v1.1.0");
    let gone = "0123456789abcdef0123456789abcdef01234567";
    std::fs::write(
        project.path().join("kernels.lock"),
        lock.replace(&commit, gone),
    )
    .unwrap();
    let output = project
        .command(&["fetch", "--target", "wgpu"])
        .env("KERNELHUB_HTTP_ATTEMPTS", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(gone),
        "the error names the commit: {stderr}"
    );

    let manifest_hash =
        Sha256Digest::of(&olah.file("activation", "v1.1.0", "kernel.toml")).to_string();
    let wrong = "0".repeat(64);
    std::fs::write(
        project.path().join("kernels.lock"),
        lock.replace(&manifest_hash, &wrong),
    )
    .unwrap();
    let output = project.run(&["fetch", "--target", "wgpu"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("does not match its pinned hash") && stderr.contains(&manifest_hash),
        "{stderr}"
    );
}

#[test]
fn a_fetch_killed_mid_download_is_completed_by_the_next() {
    let big = vec![b'a'; 4 << 20];
    let (server, lock) = scale_repo(big);
    server.slow(64 * 1024, Duration::from_millis(20));
    let project = Project::new("schema = 1\n");
    std::fs::write(project.path().join("kernels.lock"), lock.to_toml()).unwrap();
    let args = ["fetch", "--target", "wgpu", "--endpoint", &server.endpoint];
    let mut child = project
        .command(&args)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.sent("scale.wgsl") < 256 * 1024 {
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let verify = project.run(&["verify", "--target", "wgpu"]);
    assert_eq!(
        verify.status.code(),
        Some(1),
        "the half-written file is not in the cache"
    );
    server.slow(64 * 1024, Duration::ZERO);
    project.ok(&args);
    project.ok(&["verify", "--target", "wgpu"]);
    let blobs = project.cache.join("models--acme--scale/blobs");
    let incomplete: Vec<_> = std::fs::read_dir(blobs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".incomplete"))
        .collect();
    assert!(incomplete.is_empty(), "left behind: {incomplete:?}");
}

#[test]
fn two_processes_fetching_at_once_download_each_file_once() {
    let (server, lock) = scale_repo(vec![b'b'; 2 << 20]);
    server.slow(64 * 1024, Duration::from_millis(5));
    let project = Project::new("schema = 1\n");
    std::fs::write(project.path().join("kernels.lock"), lock.to_toml()).unwrap();
    let args = ["fetch", "--target", "wgpu", "--endpoint", &server.endpoint];
    let finished = Arc::new(AtomicUsize::new(0));
    let children: Vec<_> = (0..2)
        .map(|_| {
            project
                .command(&args)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        finished.fetch_add(1, Ordering::SeqCst);
    }
    assert_eq!(finished.load(Ordering::SeqCst), 2);
    assert_eq!(
        server.gets("scale.wgsl"),
        1,
        "the artifact was downloaded once"
    );
    assert_eq!(
        server.gets("kernel.toml"),
        1,
        "the manifest was downloaded once"
    );
    project.ok(&["verify", "--target", "wgpu"]);
}

#[test]
fn verify_lists_corrupt_and_missing_files_and_repair_fetches_them() {
    let project = Project::reference();
    project.ok(&["lock"]);
    project.ok(&["fetch", "--target", "cuda:sm_80"]);
    let snapshot = |kernel: &str| {
        project
            .snapshot(kernel)
            .join(format!("build/cuda/{kernel}_sm80.ptx"))
    };
    std::fs::write(snapshot("activation"), b"not the PTX that was pinned").unwrap();
    std::fs::remove_file(snapshot("rmsnorm")).unwrap();
    let output = project.run(&["verify", "--target", "cuda:sm_80"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "Corrupt kernels-test/activation `build/cuda/activation_sm80.ptx` is truncated"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("Missing kernels-test/rmsnorm `build/cuda/rmsnorm_sm80.ptx`"),
        "{stderr}"
    );
    assert!(stderr.contains("1 missing, 1 corrupt"), "{stderr}");
    let repaired = project.ok(&["verify", "--target", "cuda:sm_80", "--repair"]);
    // The removed link's blob still verified: only the corrupt file is downloaded.
    assert!(
        repaired.contains("Repaired 2 of 2 files (1 downloaded)"),
        "{repaired}"
    );
    let clean = project.ok(&["verify", "--target", "cuda:sm_80"]);
    assert!(clean.contains("0 missing, 0 corrupt"), "{clean}");
}

// ---- signatures: `[trust]`, `kernelhub sign`, checked offline ----

/// A minisign key pair on disk: its public key (base64) and secret key file.
struct Key {
    public: String,
    id: String,
    secret: PathBuf,
    _dir: tempfile::TempDir,
}

impl Key {
    fn new() -> Key {
        let dir = tempfile::tempdir().unwrap();
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let secret = dir.path().join("key.sec");
        std::fs::write(&secret, pair.sk.to_box(None).unwrap().into_string()).unwrap();
        std::fs::write(
            dir.path().join("key.pub"),
            pair.pk.to_box().unwrap().into_string(),
        )
        .unwrap();
        let public = pair.pk.to_base64();
        let id = kernelhub_manifest::trust::TrustedKey::parse(&public)
            .unwrap()
            .id
            .to_string();
        Key {
            public,
            id,
            secret,
            _dir: dir,
        }
    }

    /// Signs `dir/kernel.toml` with `kernelhub sign`.
    fn sign(&self, dir: &Path) {
        let output = Command::new(env!("CARGO_BIN_EXE_kernelhub"))
            .args([
                "sign",
                dir.to_str().unwrap(),
                "--key",
                self.secret.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Keys A (signs activation), B (signs rmsnorm) and R (a rotation key that
/// signs nothing), and an olah whose rotary is unsigned.
struct Signed {
    a: Key,
    b: Key,
    r: Key,
    olah: Olah,
}

fn signed() -> &'static Signed {
    static SIGNED: std::sync::OnceLock<Signed> = std::sync::OnceLock::new();
    SIGNED.get_or_init(|| {
        let (a, b, r) = (Key::new(), Key::new(), Key::new());
        let repos: Vec<(String, &str)> = ["activation", "rmsnorm", "rotary"]
            .iter()
            .map(|k| (k.to_string(), *k))
            .collect();
        let olah = Olah::start_with(&repos, 1, &|dir, name| match name {
            "activation" => a.sign(dir),
            "rmsnorm" => b.sign(dir),
            _ => {}
        });
        Signed { a, b, r, olah }
    })
}

fn trusting(trust: &str, dependencies: &str) -> Project {
    Project::new(&format!(
        "schema = 1\n[hub]\nendpoint = \"{}\"\nrepo_type = \"model\"\n\n{trust}\n[dependencies]\n{dependencies}\n",
        signed().olah.endpoint
    ))
}

fn failure(project: &Project, args: &[&str]) -> String {
    let output = project.run(args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(2),
        "{args:?} should fail:\n{stderr}"
    );
    stderr
}

#[test]
fn signed_kernels_lock_fetch_bundle_and_load_offline_and_minisign_agrees() {
    let keys = signed();
    let trust = format!(
        "[trust.keys]\n\"kernels-test\" = [\"{}\", \"{}\"]\n",
        keys.a.public, keys.r.public
    );
    let staging = trusting(
        &trust,
        "activation = { repo = \"kernels-test/activation\", version = \"^1\" }",
    );
    staging.ok(&["lock"]);
    let lock = std::fs::read_to_string(staging.path().join("kernels.lock")).unwrap();
    assert!(
        lock.contains(&format!("signed_by = \"{}\"", keys.a.id)),
        "{lock}"
    );
    assert!(lock.contains("signature_sha256 = \""), "{lock}");
    staging.ok(&["fetch", "--target", "wgpu"]);
    let snapshot = staging.snapshot("activation");
    // The standalone minisign verifies what kernelhub verified.
    let minisign = Command::new("minisign")
        .args(["-V", "-m"])
        .arg(snapshot.join("kernel.toml"))
        .arg("-P")
        .arg(&keys.a.public)
        .output()
        .expect("minisign is installed (scripts/test.sh installs it)");
    assert!(
        minisign.status.success(),
        "{}",
        String::from_utf8_lossy(&minisign.stderr)
    );
    staging.ok(&["bundle", "create", "signed.tar.gz", "--target", "wgpu"]);

    // Air-gapped: the same kernels.toml and lock, a fresh cache, offline.
    let gapped = trusting(
        &trust,
        "activation = { repo = \"kernels-test/activation\", version = \"^1\" }",
    );
    std::fs::copy(
        staging.path().join("kernels.lock"),
        gapped.path().join("kernels.lock"),
    )
    .unwrap();
    std::fs::copy(
        staging.path().join("signed.tar.gz"),
        gapped.path().join("signed.tar.gz"),
    )
    .unwrap();
    let offline = |args: &[&str]| {
        let output = gapped
            .command(args)
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    for args in [
        &["bundle", "import", "signed.tar.gz"][..],
        &["fetch", "--target", "wgpu"][..],
        &["verify", "--target", "wgpu"][..],
    ] {
        let (code, stderr) = offline(args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
    }
    // An engine's load checks the signature too.
    let locked = gapped.lock().kernels[0].clone();
    let project = kernelhub_manifest::ProjectManifest::parse(
        &std::fs::read_to_string(gapped.path().join("kernels.toml")).unwrap(),
        Path::new("kernels.toml"),
        Strictness::Load,
    )
    .value
    .unwrap();
    let source = |trust: kernelhub_manifest::trust::TrustPolicy| kernelhub::KernelSource::Cached {
        cache: HubCache::new(&gapped.cache),
        kernel: locked.clone(),
        trust,
    };
    source(project.trust.clone())
        .manifest()
        .expect("signed by a trusted key");

    // Key rotation: a policy that dropped key A refuses what A signed, at
    // load, at fetch and at lock.
    let rotated = format!("[trust.keys]\n\"kernels-test\" = [\"{}\"]\n", keys.r.public);
    let only_r = kernelhub_manifest::ProjectManifest::parse(
        &format!(
            "schema = 1\n{rotated}\n[dependencies]\nactivation = {{ repo = \"kernels-test/activation\", version = \"^1\" }}\n"
        ),
        Path::new("kernels.toml"),
        Strictness::Load,
    )
    .value
    .unwrap();
    let refused = source(only_r.trust).manifest().unwrap_err().to_string();
    let expected = format!(
        "is signed by key {}, which `kernels.toml` does not trust for it; it trusts key {} (scope `kernels-test`)",
        keys.a.id, keys.r.id
    );
    assert!(refused.contains(&expected), "{refused}");
    std::fs::write(
        gapped.path().join("kernels.toml"),
        format!("schema = 1\n{rotated}\n[dependencies]\nactivation = {{ repo = \"kernels-test/activation\", version = \"^1\" }}\n"),
    )
    .unwrap();
    let (code, stderr) = offline(&["fetch", "--target", "wgpu"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&expected), "{stderr}");
    std::fs::write(
        staging.path().join("kernels.toml"),
        format!(
            "schema = 1\n[hub]\nendpoint = \"{}\"\nrepo_type = \"model\"\n{rotated}\n[dependencies]\nactivation = {{ repo = \"kernels-test/activation\", version = \"^1\" }}\n",
            keys.olah.endpoint
        ),
    )
    .unwrap();
    let stderr = failure(&staging, &["lock"]);
    assert!(
        stderr.contains(&expected),
        "the lock re-checks a key the policy dropped:\n{stderr}"
    );
}

#[test]
fn unsigned_and_wrongly_signed_kernels_are_refused_where_a_signature_is_required() {
    let keys = signed();
    let org_a = format!("[trust.keys]\n\"kernels-test\" = [\"{}\"]\n", keys.a.public);
    // Signed by B, which the organisation's list lacks.
    let project = trusting(
        &org_a,
        "rmsnorm = { repo = \"kernels-test/rmsnorm\", version = \"^1\" }",
    );
    let stderr = failure(&project, &["lock"]);
    assert!(
        stderr.contains(&format!(
            "`kernel.toml` of `kernels-test/rmsnorm` is signed by key {}, which `kernels.toml` does not trust for it; it trusts key {} (scope `kernels-test`)",
            keys.b.id, keys.a.id
        )) && stderr.contains("hint: if the publisher rotated keys"),
        "{stderr}"
    );
    assert!(
        !project.path().join("kernels.lock").exists(),
        "nothing is locked"
    );
    // Unsigned.
    let project = trusting(
        &org_a,
        "rotary = { repo = \"kernels-test/rotary\", branch = \"main\" }",
    );
    let stderr = failure(&project, &["lock"]);
    assert!(
        stderr.contains(&format!(
            "`kernels-test/rotary` publishes no `kernel.toml.minisig`, but `kernels.toml` requires its `kernel.toml` to be signed by key {} (scope `kernels-test`)",
            keys.a.id
        )),
        "{stderr}"
    );
    // A repo's own list wins over its owner's.
    let per_repo = format!(
        "[trust.keys]\n\"kernels-test\" = [\"{}\"]\n\"kernels-test/rmsnorm\" = [\"{}\"]\n",
        keys.a.public, keys.b.public
    );
    let project = trusting(
        &per_repo,
        "rmsnorm = { repo = \"kernels-test/rmsnorm\", version = \"^1\" }",
    );
    project.ok(&["lock"]);
    assert_eq!(
        project.lock().kernels[0].signature.unwrap().key.to_string(),
        keys.b.id
    );
    // Everything required, no key for the scope.
    let strict = format!(
        "[trust]\nrequire_signatures = true\n[trust.keys]\nelsewhere = [\"{}\"]\n",
        keys.a.public
    );
    let project = trusting(
        &strict,
        "rotary = { repo = \"kernels-test/rotary\", branch = \"main\" }",
    );
    let stderr = failure(&project, &["lock"]);
    assert!(
        stderr.contains("lists no key for `kernels-test/rotary` or `kernels-test`"),
        "{stderr}"
    );
    // No policy: unsigned kernels lock as before, with no signature recorded.
    let project = trusting(
        "",
        "rotary = { repo = \"kernels-test/rotary\", branch = \"main\" }",
    );
    project.ok(&["lock"]);
    assert!(project.lock().kernels[0].signature.is_none());
}

#[test]
fn an_attacker_with_the_lock_and_the_cache_cannot_swap_in_another_key() {
    let keys = signed();
    let trust = format!("[trust.keys]\n\"kernels-test\" = [\"{}\"]\n", keys.a.public);
    let project = trusting(
        &trust,
        "activation = { repo = \"kernels-test/activation\", version = \"^1\" }",
    );
    project.ok(&["lock"]);
    project.ok(&["fetch", "--target", "wgpu"]);
    // B signs the same manifest; the attacker rewrites the lock's signature
    // fields and the cached signature file to match.
    let snapshot = project.snapshot("activation");
    let scratch = tempfile::tempdir().unwrap();
    std::fs::copy(
        snapshot.join("kernel.toml"),
        scratch.path().join("kernel.toml"),
    )
    .unwrap();
    keys.b.sign(scratch.path());
    let forged = std::fs::read(scratch.path().join("kernel.toml.minisig")).unwrap();
    let signature = snapshot.join("kernel.toml.minisig");
    std::fs::remove_file(&signature).unwrap();
    std::fs::write(&signature, &forged).unwrap();
    let mut lock = project.lock();
    lock.kernels[0].signature = Some(kernelhub_manifest::lock::LockedSignature {
        key: keys.b.id.parse().unwrap(),
        sha256: Sha256Digest::of(&forged),
    });
    std::fs::write(project.path().join("kernels.lock"), lock.to_toml()).unwrap();
    let stderr = failure(&project, &["fetch", "--offline", "--target", "wgpu"]);
    let refused = format!(
        "is signed by key {}, which `kernels.toml` does not trust",
        keys.b.id
    );
    assert!(stderr.contains(&refused), "{stderr}");
    // An engine's load refuses it too.
    let policy = kernelhub_manifest::ProjectManifest::parse(
        &std::fs::read_to_string(project.path().join("kernels.toml")).unwrap(),
        Path::new("kernels.toml"),
        Strictness::Load,
    )
    .value
    .unwrap()
    .trust;
    let load = kernelhub::KernelSource::Cached {
        cache: HubCache::new(&project.cache),
        kernel: project.lock().kernels[0].clone(),
        trust: policy,
    }
    .manifest()
    .unwrap_err()
    .to_string();
    assert!(load.contains(&refused), "{load}");
}

#[test]
fn a_lock_edited_to_point_a_signed_name_at_another_repo_is_refused() {
    let keys = signed();
    // Keys for one repo only: the attacker's repo has none, and nothing
    // requires signatures elsewhere.
    let trust = format!(
        "[trust.keys]\n\"kernels-test/activation\" = [\"{}\"]\n",
        keys.a.public
    );
    let project = trusting(
        &trust,
        "activation = { repo = \"kernels-test/activation\", version = \"^1\" }",
    );
    project.ok(&["lock"]);
    let mut lock = project.lock();
    let rotary = &mut lock.kernels[0];
    rotary.repo = "kernels-test/rotary".into();
    rotary.commit = keys.olah.commit("rotary", "v1.1.0");
    rotary.manifest_sha256 = Sha256Digest::of(&keys.olah.file("rotary", "v1.1.0", "kernel.toml"));
    rotary.signature = None;
    std::fs::write(project.path().join("kernels.lock"), lock.to_toml()).unwrap();
    let stderr = failure(&project, &["fetch", "--target", "wgpu"]);
    assert!(
        stderr.contains("`kernels.lock` points `activation` at `kernels-test/rotary`, but `kernels.toml` names `kernels-test/activation`"),
        "{stderr}"
    );
}

#[test]
fn legacy_minisign_signatures_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = Command::new("minisign")
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("minisign is installed (scripts/test.sh installs it)");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&["-G", "-W", "-p", "key.pub", "-s", "key.sec"]);
    std::fs::write(dir.path().join("kernel.toml"), "schema = 1\n").unwrap();
    run(&["-S", "-l", "-s", "key.sec", "-m", "kernel.toml"]);
    let public = std::fs::read_to_string(dir.path().join("key.pub")).unwrap();
    let policy = kernelhub_manifest::trust::TrustPolicy {
        keys: [(
            "acme".to_string(),
            vec![
                kernelhub_manifest::trust::TrustedKey::parse(public.lines().nth(1).unwrap())
                    .unwrap(),
            ],
        )]
        .into(),
        ..Default::default()
    };
    let signature = std::fs::read(dir.path().join("kernel.toml.minisig")).unwrap();
    let refused = policy
        .check("acme/k", b"schema = 1\n", Some(&signature))
        .unwrap_err();
    assert!(
        matches!(
            refused,
            kernelhub_manifest::trust::TrustError::Invalid { .. }
        ),
        "{refused}"
    );
}

#[test]
fn an_encrypted_secret_key_signs_with_its_password_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let pair = minisign::KeyPair::generate_encrypted_keypair(Some("hunter2".into())).unwrap();
    let secret = dir.path().join("key.sec");
    std::fs::write(&secret, pair.sk.to_box(None).unwrap().into_string()).unwrap();
    let repo = dir.path().join("activation");
    std::fs::create_dir(&repo).unwrap();
    std::fs::copy(
        kernelhub_tests::olah::repo_root().join("kernels/activation/kernel.toml"),
        repo.join("kernel.toml"),
    )
    .unwrap();
    let sign = |password: &str| {
        Command::new(env!("CARGO_BIN_EXE_kernelhub"))
            .args([
                "sign",
                repo.to_str().unwrap(),
                "--key",
                secret.to_str().unwrap(),
            ])
            .env("KERNELHUB_SIGNING_PASSWORD", password)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let wrong = sign("wrong");
    assert_eq!(wrong.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("Wrong password") || stderr.contains("the password is wrong"),
        "{stderr}"
    );
    assert!(
        !repo.join("kernel.toml.minisig").exists(),
        "nothing written on failure"
    );
    let right = sign("hunter2");
    assert!(
        right.status.success(),
        "{}",
        String::from_utf8_lossy(&right.stderr)
    );
    let policy = kernelhub_manifest::trust::TrustPolicy {
        require_signatures: true,
        keys: [(
            "kernels-test".to_string(),
            vec![kernelhub_manifest::trust::TrustedKey::parse(&pair.pk.to_base64()).unwrap()],
        )]
        .into(),
        ..Default::default()
    };
    let manifest = std::fs::read(repo.join("kernel.toml")).unwrap();
    let signature = std::fs::read(repo.join("kernel.toml.minisig")).unwrap();
    assert!(
        policy
            .check("kernels-test/activation", &manifest, Some(&signature))
            .unwrap()
            .is_some()
    );
}
