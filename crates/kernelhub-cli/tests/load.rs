//! Load: eight `kernelhub fetch` processes filling one cache at the same
//! time from a server that fails requests at random (500s, 503s, 429s,
//! bodies cut short, stalls past the timeout), each request on its own
//! roll of a seeded generator. Every fetch must succeed within its retry
//! budget, and the cache must come out exactly as one quiet fetch leaves
//! it: `kernelhub verify` clean, each file downloaded by one process and
//! stored once, no temporary file anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kernelhub_manifest::hash::Sha256Digest;
use kernelhub_tests::faults::{COMMIT, Fault, FaultServer, RandomFaults};
use kernelhub_tests::{GOOD_MANIFEST, GOOD_WGSL, walk};

const PROCESSES: usize = 8;
/// Everything, the eight fetches and the checks, must finish by then.
const DEADLINE: Duration = Duration::from_secs(90);

/// The test kernel with six WGSL artifacts of 3 kB to 1.6 MB (each a valid
/// shader with its own padding): `(path, bytes)`, the manifest first.
fn kernel_files() -> Vec<(String, Vec<u8>)> {
    let (head, artifact) = GOOD_MANIFEST
        .split_once("[[artifacts]]")
        .expect("the manifest has an artifact");
    let mut manifest = head.to_string();
    let mut files = Vec::new();
    for (i, size) in [3_000usize, 40_000, 150_000, 400_000, 900_000, 1_600_000]
        .into_iter()
        .enumerate()
    {
        let path = if i == 0 {
            "scale.wgsl".to_string()
        } else {
            format!("more/scale_{i}.wgsl")
        };
        let mut text = GOOD_WGSL.to_string();
        while text.len() < size {
            text.push_str(&format!("// artifact {i}, padding line {}\n", text.len()));
        }
        manifest.push_str("[[artifacts]]");
        manifest.push_str(
            &artifact
                .replace("\"scale.wgsl\"", &format!("\"{path}\""))
                .replace("{SIZE}", &text.len().to_string())
                .replace("{SHA}", &Sha256Digest::of(text.as_bytes()).to_string()),
        );
        files.push((path, text.into_bytes()));
    }
    files.insert(0, ("kernel.toml".to_string(), manifest.into_bytes()));
    files
}

fn kernelhub(project: &Path, cache: &Path, args: &[&str]) -> Command {
    let mut command =
        kernelhub_tests::isolated_command(env!("CARGO_BIN_EXE_kernelhub"), project, cache, args);
    command
        // Three faults in a row at most per file: ten tries always suffice.
        .env("KERNELHUB_HTTP_ATTEMPTS", "10")
        // A stall costs one second.
        .env("KERNELHUB_HTTP_TIMEOUT", "1");
    command
}

/// Runs `children` to completion, or kills them all (by pid) at the deadline.
fn wait_all(children: Vec<std::process::Child>, deadline: Instant) -> Vec<Output> {
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    let (report, results) = mpsc::channel();
    for (i, child) in children.into_iter().enumerate() {
        let report = report.clone();
        std::thread::spawn(move || {
            let _ = report.send((i, child.wait_with_output()));
        });
    }
    let mut outputs: Vec<Option<Output>> = (0..pids.len()).map(|_| None).collect();
    for _ in 0..pids.len() {
        match results.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((i, output)) => outputs[i] = Some(output.expect("waited")),
            Err(_) => {
                let stuck: Vec<u32> = pids
                    .iter()
                    .zip(&outputs)
                    .filter(|(_, o)| o.is_none())
                    .map(|(p, _)| *p)
                    .collect();
                for pid in &stuck {
                    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                }
                panic!("fetches {stuck:?} did not finish by the deadline (deadlock?)");
            }
        }
    }
    outputs.into_iter().map(Option::unwrap).collect()
}

#[test]
fn eight_fetches_at_once_through_random_faults_leave_one_verified_copy_of_each_file() {
    let started = Instant::now();
    let files = kernel_files();
    let served: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    let server = FaultServer::start("acme/scale", COMMIT, &served);
    server.random(RandomFaults {
        // Chosen so the first three requests (the manifest, which every
        // process needs first) fail: the faults are certain to happen.
        seed: 57,
        per_mille: 500,
        max_in_a_row: 3,
        kinds: vec![
            Fault::Status(500, None),
            Fault::Status(503, None),
            Fault::Truncate(0),
            Fault::RateLimited(0),
            Fault::Stall(Duration::from_millis(1500)),
        ],
    });
    let (_, mut lock) = kernelhub_tests::faults::scale_repo(Vec::new());
    lock.kernels[0].manifest_sha256 = Sha256Digest::of(&files[0].1);
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path();
    std::fs::write(project.join("kernels.toml"), "schema = 1\n").unwrap();
    std::fs::write(project.join("kernels.lock"), lock.to_toml()).unwrap();
    let cache = project.join("cache");

    let args = [
        "fetch",
        "--all",
        "--json",
        "--endpoint",
        server.endpoint.as_str(),
    ];
    let children = (0..PROCESSES)
        .map(|_| {
            kernelhub(project, &cache, &args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs = wait_all(children, started + DEADLINE);

    // Every process succeeded and saw every file; each file was downloaded
    // by exactly one of them, the others found it verified.
    let mut downloads: BTreeMap<String, usize> = BTreeMap::new();
    for (i, output) in outputs.iter().enumerate() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "fetch {i} failed:\n{stderr}");
        let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let listed = summary["kernels"][0]["files"].as_array().unwrap();
        let mut paths: Vec<&str> = listed.iter().map(|f| f["path"].as_str().unwrap()).collect();
        paths.sort_unstable();
        let mut expected: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        expected.sort_unstable();
        assert_eq!(paths, expected, "fetch {i} lost a file");
        for file in listed {
            let count = downloads
                .entry(file["path"].as_str().unwrap().to_string())
                .or_default();
            if file["outcome"] == "downloaded" {
                *count += 1;
            }
        }
    }
    for (path, count) in &downloads {
        assert_eq!(*count, 1, "`{path}` was downloaded {count} times");
    }
    assert!(
        server.injected() >= 3,
        "only {} faults were injected",
        server.injected()
    );

    // `verify` finds every file, and each verifies.
    let verify = kernelhub(project, &cache, &["verify", "--all"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("Verified {} files", files.len()))
            && stderr.contains("0 missing, 0 corrupt"),
        "{stderr}"
    );

    // The cache holds exactly the Hub layout: one blob per file, one link
    // per file, the ref, the blob locks; no temporary file anywhere.
    let repo = cache.join("models--acme--scale");
    let blobs: BTreeSet<String> = files
        .iter()
        .map(|(_, b)| Sha256Digest::of(b).to_string())
        .collect();
    let snapshot = repo.join("snapshots").join(COMMIT);
    let mut unexpected: Vec<PathBuf> = Vec::new();
    let mut found_blobs = BTreeSet::new();
    for path in walk(&cache) {
        if path.is_dir() && !path.is_symlink() {
            continue;
        }
        let relative = path.strip_prefix(&cache).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let ok = if relative == Path::new("CACHEDIR.TAG") {
            true
        } else if path.parent() == Some(&repo.join("blobs")) {
            found_blobs.insert(name.clone());
            blobs.contains(&name) && path.is_file() && !path.is_symlink()
        } else if let Ok(inside) = path.strip_prefix(&snapshot) {
            path.is_symlink() && files.iter().any(|(p, _)| Path::new(p) == inside)
        } else if relative == Path::new("models--acme--scale/refs/v1.0.0") {
            std::fs::read_to_string(&path).unwrap() == COMMIT
        } else if path.parent() == Some(&cache.join(".locks/models--acme--scale")) {
            name.strip_suffix(".lock")
                .is_some_and(|sha| blobs.contains(sha))
        } else {
            false
        };
        if !ok {
            unexpected.push(path);
        }
    }
    assert!(
        unexpected.is_empty(),
        "unexpected in the cache: {unexpected:?}"
    );
    assert_eq!(found_blobs, blobs, "one blob per file");
    for (path, bytes) in &files {
        assert_eq!(
            &std::fs::read(snapshot.join(path)).unwrap(),
            bytes,
            "{path}"
        );
    }
    assert!(started.elapsed() < DEADLINE, "took {:?}", started.elapsed());
}
