//! Faults the real Hub server cannot be made to produce, against the fetch
//! path an engine or `kernelhub fetch` uses: wrong bytes, a body cut short,
//! too long or without end, a manifest claiming 100 GB, 500s and 429s,
//! three kinds of 404, a stalled connection, a redirect to another host,
//! and cache files swapped for symlinks out of the cache. After every
//! refusal the cache must hold nothing a later load would use.

use std::path::Path;
use std::time::{Duration, Instant};

use kernelhub_hub::cache::FileState;
use kernelhub_hub::fetch::{Outcome, Platforms, Quiet, fetch};
use kernelhub_hub::settings::{Overrides, Settings};
use kernelhub_hub::{Error, HubCache, HubClient, PinnedFile, env};
use kernelhub_manifest::Lockfile;
use kernelhub_manifest::project::RepoType;
use kernelhub_manifest::select::Platform;
use kernelhub_tests::faults::{Fault, scale_repo};

const TOKEN: &str = "hf_test_secret_token";

fn settings(endpoint: &str, cache: &Path, timeout: &str, attempts: &str) -> Settings {
    let overrides = Overrides {
        endpoint: Some(endpoint.to_string()),
        cache_dir: Some(cache.to_path_buf()),
        repo_type: Some(RepoType::Model),
        offline: false,
    };
    Settings::resolve(&overrides, None, |name| match name {
        env::HF_TOKEN => Some(TOKEN.to_string()),
        env::KERNELHUB_HTTP_TIMEOUT => Some(timeout.to_string()),
        env::KERNELHUB_HTTP_ATTEMPTS => Some(attempts.to_string()),
        _ => None,
    })
    .expect("settings resolve")
}

fn run(settings: &Settings, lock: &Lockfile) -> Result<kernelhub_hub::fetch::FetchReport, Error> {
    let client = HubClient::connect(settings).expect("client builds");
    let cache = HubCache::new(&settings.cache_dir);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(fetch(
        client.as_ref(),
        &cache,
        lock,
        &Default::default(),
        &Platforms::These(vec![Platform::Wgpu]),
        4,
        &Quiet,
    ))
}

/// The artifact's pin, from the manifest the server serves.
fn artifact(settings: &Settings, lock: &Lockfile) -> PinnedFile {
    let cache = HubCache::new(&settings.cache_dir);
    let manifest = cache
        .load_manifest(&lock.kernels[0])
        .expect("manifest cached");
    PinnedFile::artifact(&lock.kernels[0], &manifest.artifacts[0])
}

/// Asserts the cache holds no trace of `scale.wgsl`: no snapshot, no blob
/// but the manifest's, no temporary file.
fn assert_nothing_usable(settings: &Settings, lock: &Lockfile) {
    let cache = HubCache::new(&settings.cache_dir);
    let file = artifact(settings, lock);
    assert_eq!(cache.state(&file).unwrap(), FileState::Missing);
    let blobs = settings.cache_dir.join("models--acme--scale/blobs");
    let names: Vec<String> = std::fs::read_dir(blobs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [lock.kernels[0].manifest_sha256.to_string()],
        "only the manifest's blob"
    );
}

fn wgsl(size: usize) -> Vec<u8> {
    let mut text = kernelhub_tests::GOOD_WGSL.to_string();
    while text.len() < size {
        text.push_str("// padding to make the artifact larger than one network read\n");
    }
    text.into_bytes()
}

#[test]
fn wrong_bytes_are_refused_naming_repo_file_and_both_hashes() {
    let (server, lock) = scale_repo(wgsl(100_000));
    server.fail("scale.wgsl", [Fault::WrongBytes]);
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&server.endpoint, dir.path(), "5", "3");
    let error = run(&settings, &lock).unwrap_err().to_string();
    let expected = artifact(&settings, &lock).checksum.to_string();
    for part in [
        "`scale.wgsl`",
        "`acme/scale`",
        "Expected: ",
        &expected,
        "Computed: ",
    ] {
        assert!(error.contains(part), "`{part}` missing from: {error}");
    }
    assert_eq!(
        server.gets("scale.wgsl"),
        1,
        "a hash mismatch is not retried"
    );
    assert_nothing_usable(&settings, &lock);
}

#[test]
fn a_truncated_body_is_retried_and_refused_when_it_stays_short() {
    let (server, lock) = scale_repo(wgsl(100_000));
    server.fail(
        "scale.wgsl",
        [
            Fault::Truncate(50_000),
            Fault::Truncate(10),
            Fault::Truncate(0),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&server.endpoint, dir.path(), "5", "3");
    let error = run(&settings, &lock).unwrap_err().to_string();
    assert!(
        error.contains("`scale.wgsl`") && error.contains("tried 3 times"),
        "{error}"
    );
    assert_eq!(server.gets("scale.wgsl"), 3);
    assert_nothing_usable(&settings, &lock);

    // One cut-off body, then a good one: the retry completes the file.
    server.fail("scale.wgsl", [Fault::Truncate(1)]);
    let report = run(&settings, &lock).expect("second try succeeds");
    assert_eq!(report.downloaded().0, 1);
    assert_eq!(
        HubCache::new(dir.path())
            .state(&artifact(&settings, &lock))
            .unwrap(),
        FileState::Verified
    );
}

#[test]
fn an_oversize_body_is_cut_off_and_refused() {
    let (server, lock) = scale_repo(wgsl(100_000));
    server.fail("scale.wgsl", [Fault::Oversize(1_000_000)]);
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&server.endpoint, dir.path(), "5", "3");
    let error = run(&settings, &lock).unwrap_err().to_string();
    assert!(error.contains("larger than its pinned"), "{error}");
    assert_nothing_usable(&settings, &lock);
}

#[test]
fn server_errors_are_retried_with_backoff() {
    let (server, lock) = scale_repo(wgsl(1000));
    server.fail(
        "scale.wgsl",
        [Fault::Status(500, None), Fault::Status(503, None)],
    );
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&server.endpoint, dir.path(), "5", "5");
    let report = run(&settings, &lock).expect("third try succeeds");
    assert_eq!(report.downloaded().0, 2, "the manifest and the artifact");
    assert_eq!(server.gets("scale.wgsl"), 3);
}

#[test]
fn a_429_is_retried_after_its_retry_after() {
    let (server, lock) = scale_repo(wgsl(1000));
    server.fail("scale.wgsl", [Fault::RateLimited(2)]);
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&server.endpoint, dir.path(), "5", "5");
    let started = Instant::now();
    run(&settings, &lock).expect("the retry succeeds");
    // Behaviour, not speed: the server asked for two seconds and got them
    // (the default backoff alone would be 200 ms).
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(server.gets("scale.wgsl"), 2);
}

#[test]
fn missing_repo_revision_and_file_have_three_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut messages = Vec::new();
    for code in ["RepoNotFound", "RevisionNotFound", "EntryNotFound"] {
        let (server, lock) = scale_repo(wgsl(1000));
        server.status("kernel.toml", 404, code);
        let settings = settings(&server.endpoint, dir.path(), "5", "5");
        let error = run(&settings, &lock).unwrap_err();
        assert!(
            !format!("{error} {error:?} {settings:?}").contains(TOKEN),
            "the token leaked"
        );
        messages.push(error.to_string());
        match code {
            "RepoNotFound" => assert!(matches!(error, Error::RepoNotFound { .. }), "{error:?}"),
            "RevisionNotFound" => {
                assert!(matches!(error, Error::RevisionNotFound { .. }), "{error:?}")
            }
            _ => assert!(matches!(error, Error::FileNotFound { .. }), "{error:?}"),
        }
        assert_eq!(server.gets("kernel.toml"), 1, "a 404 is not retried");
    }
    assert!(
        messages[0].contains("has no model repo `acme/scale`"),
        "{}",
        messages[0]
    );
    assert!(
        messages[1].contains("has no revision `c0ffee"),
        "{}",
        messages[1]
    );
    assert!(
        messages[2].contains("has no file `kernel.toml`"),
        "{}",
        messages[2]
    );
}

#[test]
fn a_stalled_connection_times_out() {
    let (server, lock) = scale_repo(wgsl(1000));
    server.fail("scale.wgsl", [Fault::Stall(Duration::from_secs(30))]);
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&server.endpoint, dir.path(), "1", "1");
    let error = run(&settings, &lock).unwrap_err().to_string();
    assert!(error.contains("timed out"), "{error}");
    assert_nothing_usable(&settings, &lock);
}

#[test]
fn a_redirect_to_another_host_is_followed_without_the_token() {
    let (origin, lock) = scale_repo(wgsl(5000));
    let (mirror, _) = scale_repo(wgsl(5000));
    // `localhost` and `127.0.0.1` are different hosts to an HTTP client.
    let mirror_base = mirror.endpoint.replace("127.0.0.1", "localhost");
    origin.redirect("scale.wgsl", &mirror_base);
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&origin.endpoint, dir.path(), "5", "3");
    let report = run(&settings, &lock).expect("the redirect is followed");
    assert_eq!(report.downloaded().0, 2, "the manifest and the artifact");
    assert!(mirror.gets("scale.wgsl") >= 1, "the mirror served the file");
    let bearer = format!("Bearer {TOKEN}");
    assert!(
        origin
            .seen()
            .iter()
            .all(|s| s.authorization.as_deref() == Some(bearer.as_str()))
    );
    assert!(
        mirror.seen().iter().all(|s| s.authorization.is_none()),
        "the token leaked to another host: {:?}",
        mirror.seen()
    );
}

#[test]
fn offline_with_an_empty_cache_names_the_file_and_sends_nothing() {
    let (server, lock) = scale_repo(wgsl(1000));
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(&server.endpoint, dir.path(), "5", "3");
    settings.connectivity = kernelhub_hub::Connectivity::Offline;
    assert!(
        HubClient::connect(&settings).unwrap().is_none(),
        "offline has no client"
    );
    let error = run(&settings, &lock).unwrap_err().to_string();
    assert!(
        error.contains("`kernel.toml` of `acme/scale`") && error.contains("`kernelhub fetch`"),
        "{error}"
    );
    assert!(server.seen().is_empty(), "offline sent {:?}", server.seen());
}

#[test]
fn a_corrupt_cached_file_is_replaced_by_fetch() {
    let (server, lock) = scale_repo(wgsl(1000));
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&server.endpoint, dir.path(), "5", "3");
    run(&settings, &lock).unwrap();
    let file = artifact(&settings, &lock);
    let cache = HubCache::new(dir.path());
    std::fs::write(cache.snapshot_path(&file), b"tampered").unwrap();
    assert!(matches!(cache.state(&file).unwrap(), FileState::Corrupt(_)));
    let report = run(&settings, &lock).unwrap();
    let outcome = report.kernels[0]
        .files
        .iter()
        .find(|(f, _)| *f == file)
        .unwrap()
        .1;
    assert_eq!(outcome, Outcome::Downloaded);
    assert_eq!(cache.read_verified(&file).unwrap(), wgsl(1000));
}

#[test]
fn a_manifest_naming_a_path_outside_the_repo_is_refused_before_any_write() {
    let wgsl = wgsl(1000);
    let manifest = kernelhub_tests::GOOD_MANIFEST
        .replace(
            "path = \"scale.wgsl\"",
            "path = \"../../../../escape.wgsl\"",
        )
        .replace("{SIZE}", &wgsl.len().to_string())
        .replace(
            "{SHA}",
            &kernelhub_manifest::hash::Sha256Digest::of(&wgsl).to_string(),
        );
    let server = kernelhub_tests::faults::FaultServer::start(
        "acme/scale",
        kernelhub_tests::faults::COMMIT,
        &[
            ("kernel.toml", manifest.clone().into_bytes()),
            ("../../../../escape.wgsl", wgsl),
        ],
    );
    let (_, mut lock) = scale_repo(b"unused".to_vec());
    lock.kernels[0].manifest_sha256 =
        kernelhub_manifest::hash::Sha256Digest::of(manifest.as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("a/b/c/cache");
    let settings = settings(&server.endpoint, &cache, "5", "1");
    let error = run(&settings, &lock).unwrap_err().to_string();
    assert!(
        error.contains("kernel.toml` is not valid") && error.contains("invalid-path"),
        "{error}"
    );
    assert_eq!(server.gets("../../../../escape.wgsl"), 0);
    let escaped: Vec<_> = kernelhub_tests::walk(dir.path())
        .into_iter()
        .filter(|p| p.ends_with("escape.wgsl"))
        .collect();
    assert!(escaped.is_empty(), "written outside the cache: {escaped:?}");
}

#[test]
fn an_endless_body_is_cut_off_at_the_pinned_size() {
    let (server, lock) = scale_repo(wgsl(100_000));
    server.fail("scale.wgsl", [Fault::Endless]);
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&server.endpoint, dir.path(), "5", "3");
    let error = run(&settings, &lock).unwrap_err().to_string();
    assert!(
        error.contains("`scale.wgsl`") && error.contains("larger than its pinned"),
        "{error}"
    );
    assert_eq!(
        server.gets("scale.wgsl"),
        1,
        "a body over its pin is not retried"
    );
    // The client hung up: the server's count stops within what the socket
    // buffers held, far below its backstop.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = server.sent("scale.wgsl");
        std::thread::sleep(Duration::from_millis(200));
        if server.sent("scale.wgsl") == before {
            break;
        }
        assert!(Instant::now() < deadline, "the server is still sending");
    }
    let sent = server.sent("scale.wgsl");
    assert!(
        sent < 64 << 20,
        "{sent} bytes went out for a 100 kB file: the download did not stop"
    );
    assert_nothing_usable(&settings, &lock);
}

#[test]
fn a_manifest_claiming_100_gb_streams_to_a_limit_and_preallocates_nothing() {
    let body = wgsl(200_000);
    let claimed: u64 = 100_000_000_000;
    let manifest = kernelhub_tests::GOOD_MANIFEST
        .replace("{SIZE}", &claimed.to_string())
        .replace(
            "{SHA}",
            &kernelhub_manifest::hash::Sha256Digest::of(&body).to_string(),
        );
    let server = kernelhub_tests::faults::FaultServer::start(
        "acme/scale",
        kernelhub_tests::faults::COMMIT,
        &[
            ("kernel.toml", manifest.clone().into_bytes()),
            ("scale.wgsl", body.clone()),
        ],
    );
    // A first try that stalls (the temporary file sits there, empty, for a
    // second), then the whole file, slowly.
    server.fail("scale.wgsl", [Fault::Stall(Duration::from_secs(1))]);
    server.slow(16 * 1024, Duration::from_millis(10));
    let (_, mut lock) = scale_repo(b"unused".to_vec());
    lock.kernels[0].manifest_sha256 =
        kernelhub_manifest::hash::Sha256Digest::of(manifest.as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&server.endpoint, dir.path(), "5", "2");
    let blobs = dir.path().join("models--acme--scale/blobs");
    let done = std::sync::atomic::AtomicBool::new(false);
    let (result, (seen, largest)) = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let (mut seen, mut largest) = (0usize, 0u64);
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                for entry in std::fs::read_dir(&blobs).into_iter().flatten().flatten() {
                    if entry.file_name().to_string_lossy().ends_with(".incomplete") {
                        let length = entry.metadata().map_or(0, |m| m.len());
                        seen += 1;
                        largest = largest.max(length);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (seen, largest)
        });
        let result = run(&settings, &lock);
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (result, watcher.join().unwrap())
    });
    let error = result.unwrap_err().to_string();
    assert!(
        error.contains("`scale.wgsl`")
            && error.contains(&format!("is truncated: {} of {claimed} bytes", body.len())),
        "{error}"
    );
    assert!(seen > 0, "the temporary file was never seen");
    assert!(
        largest <= body.len() as u64,
        "the temporary file grew to {largest} bytes, more than ever arrived: preallocated"
    );
    assert_nothing_usable(&settings, &lock);
    // A load of such a pin reads what is on disk, and refuses it: it does
    // not reserve the claimed 100 GB first.
    let cache = HubCache::new(dir.path());
    let file = artifact(&settings, &lock);
    let snapshot = cache.snapshot_path(&file);
    std::fs::create_dir_all(snapshot.parent().unwrap()).unwrap();
    std::fs::write(&snapshot, &body).unwrap();
    let error = cache.read_verified(&file).unwrap_err().to_string();
    assert!(error.contains("is truncated"), "{error}");
}

/// For write checks: a file outside the cache, for a symlink in the cache
/// to point at, whose contents nobody may change.
#[cfg(unix)]
fn decoy() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decoy");
    std::fs::write(&path, b"not yours to write").unwrap();
    (dir, path)
}

#[cfg(unix)]
#[test]
fn a_cached_file_swapped_for_a_symlink_is_refused_and_replaced_never_written_through() {
    let body = wgsl(1000);
    let (server, lock) = scale_repo(body.clone());
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(&server.endpoint, dir.path(), "5", "3");
    run(&settings, &lock).unwrap();
    let cache = HubCache::new(dir.path());
    let file = artifact(&settings, &lock);
    let snapshot = cache.snapshot_path(&file);
    let blob = dir
        .path()
        .join("models--acme--scale/blobs")
        .join(file.checksum.to_string());
    let link_target = std::fs::read_link(&snapshot).unwrap();
    let manifest = cache.load_manifest(&lock.kernels[0]).unwrap();
    let swap = |path: &Path, target: &Path| {
        std::fs::remove_file(path).unwrap();
        std::os::unix::fs::symlink(target, path).unwrap();
    };

    // Read check: the snapshot, then the blob behind it, point at
    // /etc/passwd. Loading refuses; nothing here writes (the write checks
    // below use a decoy of their own).
    for swapped in [&snapshot, &blob] {
        swap(swapped, Path::new("/etc/passwd"));
        let error = cache.read_verified(&file).unwrap_err().to_string();
        assert!(
            error.contains("`scale.wgsl` of `acme/scale`"),
            "{}: {error}",
            swapped.display()
        );
        assert!(
            cache
                .load_artifact(&lock.kernels[0], &manifest.artifacts[0])
                .is_err()
        );
        assert!(matches!(cache.state(&file).unwrap(), FileState::Corrupt(_)));
        // Put back by hand what was there.
        std::fs::remove_file(swapped).unwrap();
        if swapped == &snapshot {
            std::os::unix::fs::symlink(&link_target, &snapshot).unwrap();
        } else {
            std::fs::write(&blob, &body).unwrap();
        }
        assert_eq!(cache.read_verified(&file).unwrap(), body);
    }

    // Write check: the snapshot, the blob and the blob's lock file point at
    // a file outside the cache; a repairing fetch replaces the link (and
    // downloads where the blob itself was lost) without writing through it.
    let (outside, decoy) = decoy();
    let lock_file = dir
        .path()
        .join(".locks/models--acme--scale")
        .join(format!("{}.lock", file.checksum));
    for swapped in [&snapshot, &blob, &lock_file] {
        swap(swapped, &decoy);
        if swapped != &lock_file {
            assert!(cache.read_verified(&file).is_err());
        }
        // The blob's lock file is only locked, but the blob must come back too.
        if swapped == &lock_file {
            std::fs::remove_file(&blob).unwrap();
        }
        run(&settings, &lock).expect("fetch repairs it");
        assert_eq!(
            std::fs::read(&decoy).unwrap(),
            b"not yours to write",
            "written through the link at {}",
            swapped.display()
        );
        assert_eq!(std::fs::read_link(&snapshot).unwrap(), link_target);
        assert!(
            std::fs::symlink_metadata(&blob).unwrap().is_file(),
            "the blob is a plain file again"
        );
        assert_eq!(cache.read_verified(&file).unwrap(), body);
    }
    // A dangling link as the lock file: nothing is created where it points.
    let nowhere = outside.path().join("created-through-the-link");
    std::fs::remove_file(&lock_file).unwrap();
    std::os::unix::fs::symlink(&nowhere, &lock_file).unwrap();
    std::fs::remove_file(&blob).unwrap();
    run(&settings, &lock).expect("fetch replaces the dangling lock link");
    assert!(
        !nowhere.exists(),
        "a file was created through the dangling link"
    );
    assert!(
        !std::fs::symlink_metadata(&lock_file)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the lock file is a plain file again"
    );
    assert!(
        server.gets("scale.wgsl") >= 4,
        "each lost blob was downloaded again"
    );
}
