//! The real Hub for tests: `olah` (from PyPI, installed into `.venv` by
//! `scripts/test.sh`) in offline mode on 127.0.0.1, serving git repos built
//! from the reference kernels under `kernels/`.
//!
//! Each of `kernels/{activation,rmsnorm,rotary}` becomes the model repo
//! `kernels-test/<name>` with three releases: tags `v1.0.0`, `v1.1.0`,
//! `v2.0.0` (each changes `version` in `kernel.toml`, so each has its own
//! manifest hash), a `v1` branch at `v1.1.0`, and `main` at `v2.0.0`.
//! One server is shared by all tests of a test binary; a watchdog shell
//! stops it when the test process exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The owner of the fixture repos.
pub const OWNER: &str = "kernels-test";
/// The kernels served.
pub const KERNELS: [&str; 3] = ["activation", "rmsnorm", "rotary"];
/// The releases: tag and the `version` written into `kernel.toml`.
pub const RELEASES: [(&str, &str); 3] = [
    ("v1.0.0", "1.0.0"),
    ("v1.1.0", "1.1.0"),
    ("v2.0.0", "2.0.0"),
];

/// A running olah and the git mirrors it serves.
pub struct Olah {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    mirrors: PathBuf,
    /// The watchdog shell; it outlives nothing but this process.
    _watchdog: std::process::Child,
    _dir: tempfile::TempDir,
}

/// The repo's root (where `kernels/` and `.venv/` are).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The Python virtual environment with olah and `huggingface_hub`.
pub fn venv() -> PathBuf {
    std::env::var_os("KERNELHUB_TEST_VENV").map_or_else(|| repo_root().join(".venv"), PathBuf::from)
}

/// Runs git in `dir` with a fixed author and date; returns its output.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "kernelhub tests")
        .env("GIT_AUTHOR_EMAIL", "tests@kernelhub.invalid")
        .env("GIT_COMMITTER_NAME", "kernelhub tests")
        .env("GIT_COMMITTER_EMAIL", "tests@kernelhub.invalid")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read kernel dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

impl Olah {
    /// The server shared by this test binary, started on first use.
    pub fn shared() -> &'static Olah {
        static OLAH: OnceLock<Olah> = OnceLock::new();
        OLAH.get_or_init(|| Olah::start(&KERNELS.map(|k| (k.to_string(), k)), 1))
    }

    /// A server with one repo `kernels-test/<name>` per `(name, source)`,
    /// built from `kernels/<source>`, running `workers` processes.
    pub fn start(repos: &[(String, &str)], workers: u32) -> Olah {
        Olah::start_with(repos, workers, &|_, _| {})
    }

    /// Like [`Olah::start`], calling `release(repo_dir, name)` after each
    /// release's `kernel.toml` is written and before it is committed (to
    /// sign it, say).
    pub fn start_with(
        repos: &[(String, &str)],
        workers: u32,
        release: &dyn Fn(&Path, &str),
    ) -> Olah {
        let dir = tempfile::tempdir().expect("tempdir");
        let mirrors = dir.path().join("mirrors");
        for (name, source) in repos {
            let repo = mirrors.join("models").join(OWNER).join(name);
            copy_tree(&repo_root().join("kernels").join(source), &repo);
            git(&repo, &["init", "-q", "-b", "main"]);
            let manifest = std::fs::read_to_string(repo.join("kernel.toml")).expect("kernel.toml");
            for (tag, version) in RELEASES {
                let text = manifest.replacen(
                    "version = \"0.1.0\"",
                    &format!("version = \"{version}\""),
                    1,
                );
                std::fs::write(repo.join("kernel.toml"), text).expect("write kernel.toml");
                release(&repo, name);
                git(&repo, &["add", "-A"]);
                git(&repo, &["commit", "-q", "-m", tag]);
                git(&repo, &["tag", tag]);
            }
            git(&repo, &["branch", "v1", "v1.1.0"]);
        }
        let ready = format!("/api/models/{OWNER}/{}/refs", repos[0].0);
        Olah::launch(dir, workers, &ready)
    }

    /// Serves the git repos under `<dir>/mirrors/models/<owner>/<name>`,
    /// once `ready` (an API path) answers.
    pub fn launch(dir: tempfile::TempDir, workers: u32, ready: &str) -> Olah {
        let mirrors = dir.path().join("mirrors");
        let olah = venv().join("bin/olah-cli");
        assert!(
            olah.exists(),
            "`{}` is missing: run `scripts/test.sh` once (it installs olah into .venv), or set KERNELHUB_TEST_VENV",
            olah.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let config = dir.path().join("olah.toml");
        std::fs::write(
            &config,
            format!(
                "[basic]\nhost = \"127.0.0.1\"\nport = {port}\nrepos-path = \"{}\"\nmirrors-path = [\"{}\"]\n\
                 mirror-netloc = \"127.0.0.1:{port}\"\nmirror-lfs-netloc = \"127.0.0.1:{port}\"\n[accessibility]\noffline = true\n",
                dir.path().join("repos").display(),
                mirrors.display()
            ),
        )
        .expect("write olah.toml");
        // The watchdog stops olah when this test process is gone.
        let script = format!(
            "'{}' -c '{}' --workers {workers} >'{}' 2>&1 & server=$!; while kill -0 {} 2>/dev/null && kill -0 $server 2>/dev/null; do sleep 0.5; done; kill $server 2>/dev/null",
            olah.display(),
            config.display(),
            dir.path().join("olah.log").display(),
            std::process::id()
        );
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start olah");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !http_ok(port, ready) {
            assert!(
                Instant::now() < deadline,
                "olah did not answer within 60 s; its log:\n{}",
                std::fs::read_to_string(dir.path().join("olah.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Olah {
            endpoint,
            mirrors,
            _watchdog: watchdog,
            _dir: dir,
        }
    }

    /// `kernels-test/<kernel>`.
    pub fn repo(kernel: &str) -> String {
        format!("{OWNER}/{kernel}")
    }

    /// The commit a tag or branch of a fixture repo points at.
    pub fn commit(&self, kernel: &str, reference: &str) -> String {
        git(
            &self.mirrors.join("models").join(OWNER).join(kernel),
            &["rev-parse", &format!("{reference}^{{commit}}")],
        )
    }

    /// A file of a fixture repo at a reference, as bytes.
    pub fn file(&self, kernel: &str, reference: &str, path: &str) -> Vec<u8> {
        let output = Command::new("git")
            .args(["show", &format!("{reference}:{path}")])
            .current_dir(self.mirrors.join("models").join(OWNER).join(kernel))
            .output()
            .expect("git show");
        assert!(output.status.success());
        output.stdout
    }
}

/// Whether a GET of `path` answers 200.
fn http_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}
