//! The CLI as users see it: exit codes, stdout and stderr pinned with insta
//! snapshots. Every run happens inside the repo with relative paths, so the
//! output holds no host-specific path.

use std::path::Path;
use std::process::Command;

use kernelhub_tests::Repo;

/// Runs `kernelhub` in `dir`; returns "exit code / stdout / stderr" as one text.
fn run(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_kernelhub"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("kernelhub runs");
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn check_clean_repo() {
    let repo = Repo::good();
    repo.write();
    insta::assert_snapshot!(run(repo.path(), &["check"]));
}

#[test]
fn check_reports_every_problem_with_snippets() {
    let repo = Repo::good()
        .edit("license = \"MIT\"", "license = \"MIT\"\ncolour = \"red\"")
        .edit("size = {SIZE}", "size = 1")
        .edit(
            "grid = [\"ceil_div(n, 64)\"]",
            "grid = [\"ceil_div(m, 64)\"]",
        )
        .edit_file(
            "scale.wgsl",
            "var<storage, read> y",
            "var<storage, read_write> y",
        );
    repo.write();
    insta::assert_snapshot!(run(repo.path(), &["check", "."]));
}

#[test]
fn check_json() {
    let repo = Repo::good().edit("block = [64]", "block = [32]");
    repo.write();
    insta::assert_snapshot!(run(repo.path(), &["check", "--format", "json"]));
}

#[test]
fn warnings_fail_only_when_denied() {
    let repo = Repo::good().edit(
        "format = \"wgsl\"",
        "format = \"wgsl\"\nfeatures = [\"shader-f16\"]",
    );
    repo.write();
    assert!(run(repo.path(), &["check"]).starts_with("exit: 0"));
    insta::assert_snapshot!(run(repo.path(), &["check", "--deny-warnings"]));
}

#[test]
fn check_a_path_that_is_not_a_repo() {
    let dir = tempfile::tempdir().unwrap();
    insta::assert_snapshot!(run(dir.path(), &["check", "nowhere"]));
}

#[test]
fn usage_error_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["check", "--format", "yaml"]);
    assert!(out.starts_with("exit: 2"), "{out}");
}

#[test]
fn manifest_update_then_fresh() {
    let repo = Repo::good()
        .edit("size = {SIZE}", "size = 1 # bytes")
        .edit("sha256 = \"{SHA}\"", "sha256 = \"\"");
    repo.write();
    insta::assert_snapshot!(
        "stale",
        run(repo.path(), &["manifest", "update", "--check", "."])
    );
    insta::assert_snapshot!(
        "update",
        run(repo.path(), &["manifest", "update", "kernel.toml"])
    );
    let text = std::fs::read_to_string(repo.path().join("kernel.toml")).unwrap();
    assert!(
        text.contains(&format!(
            "size = {} # bytes",
            kernelhub_tests::GOOD_WGSL.len()
        )),
        "{text}"
    );
    insta::assert_snapshot!("fresh", run(repo.path(), &["manifest", "update", "."]));
    assert!(run(repo.path(), &["check"]).starts_with("exit: 0"));
}

#[test]
fn manifest_update_with_a_missing_artifact_writes_nothing() {
    let repo = Repo::good().edit("path = \"scale.wgsl\"", "path = \"gone.wgsl\"");
    let manifest = repo.write();
    let before = std::fs::read(&manifest).unwrap();
    insta::assert_snapshot!(run(repo.path(), &["manifest", "update", "."]));
    assert_eq!(std::fs::read(&manifest).unwrap(), before);
}

#[test]
fn one_unusable_path_does_not_hide_the_others() {
    let repo = Repo::good().edit("size = {SIZE}", "size = 1");
    repo.write();
    std::fs::create_dir(repo.path().join("empty")).unwrap();
    insta::assert_snapshot!(run(repo.path(), &["check", "empty", "."]));
}

#[test]
fn check_ptx_signature_with_one_param_too_few() {
    // The PTX kernel takes (x, y, n, alpha); the op no longer lists `alpha`.
    let ptx = ".version 7.0\n.target sm_80\n.address_size 64\n\n.visible .entry scale(\n\t.param .u64 scale_param_0,\n\t.param .u64 scale_param_1,\n\t.param .u32 scale_param_2,\n\t.param .f32 scale_param_3\n)\n{\n\tret;\n}\n";
    let sha = kernelhub_manifest::hash::Sha256Digest::of(ptx.as_bytes());
    let repo = Repo::good()
        .edit(
            "backend = \"wgpu\"\nformat = \"wgsl\"\npath = \"scale.wgsl\"\nsize = {SIZE}\nsha256 = \"{SHA}\"",
            &format!(
                "backend = \"cuda\"\nformat = \"ptx\"\ntargets = [\"sm_80\"]\nmin_driver = \"11.0\"\npath = \"scale.ptx\"\nsize = {}\nsha256 = \"{sha}\"",
                ptx.len()
            ),
        )
        .edit("  { name = \"alpha\", scalar = \"f32\" },\n", "")
        .file("scale.ptx", ptx);
    repo.write();
    insta::assert_snapshot!(run(repo.path(), &["check"]));
}
