//! Hostile input at the command line: a cache whose files were swapped for
//! symlinks out of it (`verify` reports them, `--repair` replaces the link
//! and never writes through it), and revision names carrying shell or path
//! characters in `kernels.toml` and `kernels.lock` (a clear error, nothing
//! sent, nothing written). Each against the in-process fault server, so no
//! Python is needed.

use std::path::{Path, PathBuf};
use std::process::Output;

use kernelhub_tests::faults::{COMMIT, FaultServer, scale_repo};
use kernelhub_tests::walk;

/// A project directory with its own cache, isolated from the host's settings.
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

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str]) -> Output {
        kernelhub_tests::isolated_command(
            env!("CARGO_BIN_EXE_kernelhub"),
            self.path(),
            &self.cache,
            args,
        )
        .env("KERNELHUB_HTTP_ATTEMPTS", "2")
        .output()
        .expect("kernelhub runs")
    }

    /// Runs `args`, expecting exit code `code`; returns stderr.
    fn expect(&self, args: &[&str], code: i32) -> String {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(code), "{args:?}:\n{stderr}");
        stderr
    }
}

/// Replaces `path` (a file or a link) with a symlink to `target`.
#[cfg(unix)]
fn swap(path: &Path, target: &Path) {
    std::fs::remove_file(path).unwrap();
    std::os::unix::fs::symlink(target, path).unwrap();
}

#[cfg(unix)]
#[test]
fn verify_reports_a_file_swapped_for_a_symlink_and_repair_replaces_the_link() {
    let body = kernelhub_tests::GOOD_WGSL.as_bytes().to_vec();
    let (server, lock) = scale_repo(body.clone());
    let project = Project::new("schema = 1\n");
    std::fs::write(project.path().join("kernels.lock"), lock.to_toml()).unwrap();
    let endpoint = server.endpoint.as_str();
    project.expect(&["fetch", "--target", "wgpu", "--endpoint", endpoint], 0);
    let snapshot = project
        .cache
        .join(format!("models--acme--scale/snapshots/{COMMIT}/scale.wgsl"));
    let link = std::fs::read_link(&snapshot).unwrap();
    let blob = std::fs::canonicalize(&snapshot).unwrap();
    let verify = ["verify", "--target", "wgpu"];

    // Read check: the snapshot, then its blob, point at /etc/passwd; only
    // `verify` (which writes nothing) runs on them.
    for swapped in [&snapshot, &blob] {
        swap(swapped, Path::new("/etc/passwd"));
        let stderr = project.expect(&verify, 1);
        assert!(
            stderr.contains("Corrupt acme/scale `scale.wgsl`")
                && stderr.contains("0 missing, 1 corrupt"),
            "{}: {stderr}",
            swapped.display()
        );
        std::fs::remove_file(swapped).unwrap();
        if swapped == &snapshot {
            std::os::unix::fs::symlink(&link, &snapshot).unwrap();
        } else {
            std::fs::write(&blob, &body).unwrap();
        }
        project.expect(&verify, 0);
    }

    // Write check: the same links to a decoy outside the cache; `verify
    // --repair` replaces each link (downloading the lost blob) and leaves
    // the decoy as it was.
    let outside = tempfile::tempdir().unwrap();
    let decoy = outside.path().join("decoy");
    std::fs::write(&decoy, b"not yours to write").unwrap();
    for (swapped, downloaded) in [(&snapshot, 0), (&blob, 1)] {
        swap(swapped, &decoy);
        let stderr = project.expect(&verify, 1);
        assert!(
            stderr.contains("Corrupt acme/scale `scale.wgsl`"),
            "{stderr}"
        );
        let stderr = project.expect(
            &[
                "verify",
                "--target",
                "wgpu",
                "--repair",
                "--endpoint",
                endpoint,
            ],
            0,
        );
        assert!(
            stderr.contains(&format!("Repaired 1 of 1 files ({downloaded} downloaded)")),
            "{stderr}"
        );
        assert_eq!(
            std::fs::read(&decoy).unwrap(),
            b"not yours to write",
            "written through the link at {}",
            swapped.display()
        );
        assert_eq!(std::fs::read_link(&snapshot).unwrap(), link);
        assert!(std::fs::symlink_metadata(&blob).unwrap().is_file());
        assert_eq!(std::fs::read(&snapshot).unwrap(), body);
        let stderr = project.expect(&verify, 0);
        assert!(stderr.contains("0 missing, 0 corrupt"), "{stderr}");
    }
}

/// Revision names an attacker (or a typo) might put where a branch or ref
/// goes; `{dir}` is the project directory.
const HOSTILE: [&str; 6] = [
    "../../x",
    "$(touch {dir}/pwned)",
    "`touch {dir}/pwned`",
    ";rm -rf {dir}/victim",
    "main\nx",
    "v1/../../../../x",
];

/// Every path below the project directory, sorted.
fn listing(project: &Project) -> Vec<PathBuf> {
    let mut paths = walk(project.path());
    paths.sort();
    paths
}

/// What must hold after a hostile name was refused.
fn assert_untouched(project: &Project, before: &[PathBuf], server: &FaultServer, name: &str) {
    assert_eq!(listing(project), before, "{name:?}: files appeared");
    assert!(
        !project.path().join("pwned").exists(),
        "{name:?}: ran a shell"
    );
    assert!(
        project.path().join("victim/keep").exists(),
        "{name:?}: ran a shell"
    );
    assert!(
        server.seen().is_empty(),
        "{name:?} reached the Hub: {:?}",
        server.seen()
    );
}

#[test]
fn revision_names_with_shell_or_path_characters_are_refused_before_any_request() {
    let (server, lock) = scale_repo(kernelhub_tests::GOOD_WGSL.as_bytes().to_vec());
    for template in HOSTILE {
        // `branch = ...` in kernels.toml, for `kernelhub lock`.
        let project = Project::new("");
        let name = template.replace("{dir}", project.path().to_str().unwrap());
        let quoted = format!("\"{}\"", name.replace('\n', "\\n"));
        std::fs::write(
            project.path().join("kernels.toml"),
            format!(
                "schema = 1\n[hub]\nendpoint = \"{}\"\nrepo_type = \"model\"\n\n[dependencies]\nscale = {{ repo = \"acme/scale\", branch = {quoted} }}\n",
                server.endpoint
            ),
        )
        .unwrap();
        std::fs::create_dir(project.path().join("victim")).unwrap();
        std::fs::write(project.path().join("victim/keep"), b"").unwrap();
        let before = listing(&project);
        for args in [&["lock"][..], &["fetch", "--target", "wgpu"][..]] {
            let stderr = project.expect(args, 2);
            assert!(
                stderr.contains("is not a branch name kernelhub accepts")
                    && stderr.contains("kernels.toml:7"),
                "{name:?} {args:?}: {stderr}"
            );
            assert_untouched(&project, &before, &server, &name);
        }

        // `ref = ...` in kernels.lock, for `fetch` and `verify`.
        let project = Project::new("schema = 1\n");
        let mut hostile = lock.clone();
        hostile.kernels[0].reference = template.replace("{dir}", project.path().to_str().unwrap());
        std::fs::write(project.path().join("kernels.lock"), hostile.to_toml()).unwrap();
        std::fs::create_dir(project.path().join("victim")).unwrap();
        std::fs::write(project.path().join("victim/keep"), b"").unwrap();
        let before = listing(&project);
        let endpoint = server.endpoint.as_str();
        for args in [
            &["fetch", "--target", "wgpu", "--endpoint", endpoint][..],
            &[
                "verify",
                "--target",
                "wgpu",
                "--repair",
                "--endpoint",
                endpoint,
            ][..],
        ] {
            let stderr = project.expect(args, 2);
            assert!(
                stderr.contains("is not a tag, branch or commit name")
                    && stderr.contains("kernels.lock"),
                "{name:?} {args:?}: {stderr}"
            );
            assert_untouched(&project, &before, &server, &name);
        }
    }
}
