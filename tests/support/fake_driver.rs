//! What `tests/cuda_driver.rs` and `tests/hip_driver.rs` share: driving a
//! native backend through a test double of its driver library
//! (`tests/fake-cuda/fake_cuda.c`, `tests/fake-hip/fake_hip.c`), because CI
//! has no GPU of either kind. A [`FakeDriver`] describes one fake; the rest
//! — running `kernelhub` on it, re-running a test in a process of its own,
//! reading the fake's logs, the reasons a plan gives — is the same for both,
//! and so are the checks that hold for any native backend (launch
//! parameters, memory round trips), written once here.
//!
//! Every process here opens the fake, never a real library, and not the
//! other backend's library either. A driver is opened once per process, so
//! each setting of the fake gets its own process: the `kernelhub` binary,
//! or the test binary re-run for one test ([`FakeDriver::in_child`]) for
//! library-level checks.
//!
//! Unlike the other support modules this one is not part of the
//! `kernelhub_tests` library: each test file includes it with
//! `#[path = "support/fake_driver.rs"] mod fake_driver;`, so it can name
//! `kernelhub`'s types (a dev-dependency only) and `CARGO_TARGET_TMPDIR`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use kernelhub::{Arg, Backend, Buffer, Device, Dtype, Hub, KernelSource, LoadedKernel, Op};

/// One test double of a driver library and how to point a process at it.
pub struct FakeDriver {
    /// Builds the fake into the given directory (once per process) and
    /// returns its path: `fake_cuda::library` or `fake_hip::library`.
    pub library: fn(&Path) -> PathBuf,
    /// The file name the built library ends with (checked in a child).
    pub file_name: &'static str,
    /// The variable that names the library the backend opens.
    pub library_var: &'static str,
    /// The other backend's library variable, pointed at a file that does
    /// not exist, and that library's usual file name.
    pub other_library: (&'static str, &'static str),
    /// The fake's settings; cleared from every child's environment first.
    pub settings: &'static [&'static str],
    /// The setting that names the fake's launch log.
    pub launch_log: &'static str,
    /// The setting that names the fake's call log.
    pub call_log: &'static str,
    /// Where a launch on GPU 0 ran, as the launch log says it between
    /// `shared=N` and `params=`: " context=0 stream=1", " stream=1 device=0".
    pub launch_place: &'static str,
    /// Set (to the test's name) in a re-run of the test binary for one test.
    pub child_var: &'static str,
    /// What the fake stands for in messages: "driver", "runtime".
    pub what: &'static str,
}

impl FakeDriver {
    /// The fake library, built under `CARGO_TARGET_TMPDIR`.
    pub fn library(&self) -> PathBuf {
        (self.library)(Path::new(env!("CARGO_TARGET_TMPDIR")))
    }

    /// The functions the fake library exports (`nm -D`), sorted.
    pub fn exported_symbols(&self) -> Vec<String> {
        let output = Command::new("nm")
            .args(["-D", "--defined-only"])
            .arg(self.library())
            .output()
            .expect("run nm");
        assert!(output.status.success(), "{}", text(&output.stderr));
        let mut exported: Vec<String> = text(&output.stdout)
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("T"))
            .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
            .collect();
        exported.sort_unstable();
        exported
    }

    /// The fake and `settings` in `command`'s environment, no library for
    /// the other backend and nothing of this machine's backend choice.
    pub fn configure(&self, command: &mut Command, settings: &[(&str, &str)]) {
        let (other_var, other_file) = self.other_library;
        command
            .env(self.library_var, self.library())
            .env(
                other_var,
                Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .join("no-such-dir")
                    .join(other_file),
            )
            .env_remove("KERNELHUB_BACKEND")
            .env_remove("WGPU_ADAPTER_NAME");
        for name in self.settings {
            command.env_remove(name);
        }
        for (name, value) in settings {
            command.env(name, value);
        }
    }

    /// `kernelhub args...` in `project` on the fake with `settings`.
    pub fn kernelhub(&self, project: &Path, args: &[&str], settings: &[(&str, &str)]) -> Output {
        let binary = kernelhub_tests::fake_cuda::kernelhub_binary();
        let cache = project.join(".cache");
        let mut command = kernelhub_tests::isolated_command(
            binary.to_str().expect("a UTF-8 path"),
            project,
            &cache,
            args,
        );
        self.configure(&mut command, settings);
        command.output().expect("kernelhub runs")
    }

    /// Whether this process is the re-run of the test binary for test
    /// `name` (see [`Self::run_child`]); there the fake must be the library
    /// configured.
    pub fn is_child(&self, name: &str) -> bool {
        if std::env::var(self.child_var).is_ok_and(|v| v == name) {
            let library = std::env::var(self.library_var).unwrap_or_default();
            assert!(
                library.ends_with(self.file_name),
                "the fake {}, never a real one: `{library}`",
                self.what
            );
            return true;
        }
        false
    }

    /// Re-runs the test binary for test `name` alone, with the fake and
    /// `settings` in its environment, and asserts that it ran and passed.
    pub fn run_child(&self, name: &str, settings: &[(&str, &str)]) {
        let mut command = Command::new(std::env::current_exe().expect("this test binary"));
        command
            .args([name, "--exact", "--nocapture", "--test-threads", "1"])
            .env(self.child_var, name);
        self.configure(&mut command, settings);
        let output = command.output().expect("the test binary re-runs");
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "`{name}` in its own process:\n{stdout}\n{stderr}"
        );
    }

    /// In the test process: runs test `name` in its own process (see
    /// [`Self::run_child`]) and returns `false`. In that process: returns
    /// `true`, and the test goes on to its body.
    pub fn in_child(&self, name: &str, settings: &[(&str, &str)]) -> bool {
        if self.is_child(name) {
            return true;
        }
        self.run_child(name, settings);
        false
    }

    /// [`Self::in_child`] with the fake's launch and call logs in a new
    /// temporary directory, and `settings`: `None` in the test process;
    /// in the child, the paths of the two logs (launches, calls).
    pub fn in_child_with_logs(
        &self,
        name: &str,
        settings: &[(&str, &str)],
    ) -> Option<(PathBuf, PathBuf)> {
        if self.is_child(name) {
            return Some((path_from_env(self.launch_log), path_from_env(self.call_log)));
        }
        let dir = tempfile::tempdir().unwrap();
        let (launches, calls) = (
            dir.path().join("launches.log"),
            dir.path().join("calls.log"),
        );
        let mut all = vec![
            (self.launch_log, launches.to_str().unwrap()),
            (self.call_log, calls.to_str().unwrap()),
        ];
        all.extend_from_slice(settings);
        self.run_child(name, &all);
        None
    }

    /// `Hub::new()` on the fake (no `KERNELHUB_BACKEND`) prefers its GPU,
    /// described as `described` (backend, name, kind), and loads the
    /// embedded activation kernel's `artifact` there; a launch reaches the
    /// driver with grid and block from the manifest, on GPU 0.
    pub fn hub_new_launches_on_the_gpu(
        &self,
        log: &Path,
        described: (Backend, &str, &str),
        artifact: &str,
    ) {
        let hub = Hub::new().unwrap();
        let info = hub.devices()[0].info();
        assert_eq!(
            (info.backend, info.name.as_str(), info.kind.as_str()),
            described
        );
        let loaded = hub
            .load(&KernelSource::Embedded("activation".into()))
            .unwrap();
        assert_eq!(loaded.device().info().backend, described.0);
        let op = loaded.op("silu_and_mul", Dtype::F32).unwrap();
        assert_eq!(op.artifact(), artifact);
        let device = loaded.device();
        let out = device.alloc(3 * 5 * 4).unwrap();
        self.launch_silu_once(&*op, &**device, &out, "0x", log);
    }

    /// Launches `op` (silu_and_mul f32) on 3 rows of 5 into `out`, from an
    /// input uploaded to `device`, waits, and asserts that the launch log
    /// `log` holds that one launch, on GPU 0's first stream, with `out`
    /// passed as what starts with `out_param`.
    fn launch_silu_once(
        &self,
        op: &dyn Op,
        device: &dyn Device,
        out: &Buffer,
        out_param: &str,
        log: &Path,
    ) {
        let input = device
            .upload(&f32_bytes((0..30).map(|i| i as f32)))
            .unwrap();
        op.launch(&[
            Arg::tensor(out, Dtype::F32),
            Arg::tensor(&input, Dtype::F32),
            3u32.into(),
            5u32.into(),
        ])
        .unwrap();
        device.synchronize().unwrap();
        let launches = lines(log);
        let prefix = format!(
            "silu_and_mul_f32 grid=3,1,1 block=256,1,1 shared=0{} params={out_param}",
            self.launch_place
        );
        assert!(
            launches.len() == 1
                && launches[0].starts_with(&prefix)
                && launches[0].ends_with(",3,5"),
            "{launches:?}"
        );
    }

    /// On `device`, a GPU of the fake whose device addresses `device_ptr`
    /// gives: tensors pass as their buffer's address plus their offset,
    /// 32-bit scalars in their 4-byte slots, the f32 one (rms_norm's eps,
    /// between the tensors and the sizes) printed by the fake as `eps`;
    /// a misaligned tensor is refused before any driver call. Two lines
    /// of the launch log `log`.
    pub fn launch_parameters_reach_the_driver(
        &self,
        device: Arc<dyn Device>,
        device_ptr: &dyn Fn(&Buffer) -> u64,
        log: &Path,
        eps: &str,
    ) {
        let hub = Hub::with_devices(vec![device.clone()]);
        let loaded = hub
            .load(&KernelSource::Embedded("activation".into()))
            .unwrap();
        let op = loaded.op("silu_and_mul", Dtype::F32).unwrap();
        let out = device.alloc(3 * 5 * 4).unwrap();
        // The input starts 16 bytes into its buffer.
        let input = device.upload(&[0u8; 16 + 3 * 10 * 4]).unwrap();
        op.launch(&[
            Arg::tensor(&out, Dtype::F32),
            Arg::tensor_at(&input, 16, Dtype::F32),
            3u32.into(),
            5u32.into(),
        ])
        .unwrap();
        assert_eq!(
            lines(log),
            [format!(
                "silu_and_mul_f32 grid=3,1,1 block=256,1,1 shared=0{} params={:#x},{:#x},3,5",
                self.launch_place,
                device_ptr(&out),
                device_ptr(&input) + 16
            )]
        );

        // Misaligned for f32: refused before any driver call.
        let error = op
            .launch(&[
                Arg::tensor(&out, Dtype::F32),
                Arg::tensor_at(&input, 2, Dtype::F32),
                3u32.into(),
                5u32.into(),
            ])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("parameter `input` starts at device address 0x")
                && error.contains("(byte 2 of its buffer), not a multiple of its 4-byte elements"),
            "{error}"
        );
        assert_eq!(
            lines(log).len(),
            1,
            "the misaligned launch must not reach the {}",
            self.what
        );

        let loaded = hub.load(&KernelSource::Embedded("rmsnorm".into())).unwrap();
        let op = loaded.op("rms_norm", Dtype::F32).unwrap();
        let x = device.alloc(2 * 8 * 4).unwrap();
        let y = device.alloc(2 * 8 * 4).unwrap();
        let weight = device.alloc(8 * 4).unwrap();
        op.launch(&[
            Arg::tensor(&y, Dtype::F32),
            Arg::tensor(&x, Dtype::F32),
            Arg::tensor(&weight, Dtype::F32),
            1.5e-5f32.into(),
            2u32.into(),
            8u32.into(),
        ])
        .unwrap();
        assert_eq!(
            lines(log)[1],
            format!(
                "rms_norm_f32 grid=2,1,1 block=256,1,1 shared=0{} params={:#x},{:#x},{:#x},{eps},2,8",
                self.launch_place,
                device_ptr(&y),
                device_ptr(&x),
                device_ptr(&weight),
            )
        );
    }

    /// What an engine does (docs/runtime.md, "Engine interop"): `engine` is
    /// a GPU of the fake queueing on the engine's stream, the fake's first
    /// (`stream=1`), and `wrapped` the engine's own memory at `address`,
    /// 60 bytes of it. A launch writes through that address, on that
    /// stream; copies go there too, within the wrapped length.
    pub fn an_engines_stream_and_memory_are_used(
        &self,
        engine: Arc<dyn Device>,
        wrapped: &Buffer,
        address: u64,
        log: &Path,
    ) {
        let hub = Hub::with_devices(vec![engine.clone()]);
        let loaded = hub
            .load(&KernelSource::Embedded("activation".into()))
            .unwrap();
        let op = loaded.op("silu_and_mul", Dtype::F32).unwrap();
        let out_param = format!("{address:#x},0x");
        self.launch_silu_once(&*op, &*engine, wrapped, &out_param, log);
        assert_eq!(engine.download(wrapped, 0, 60).unwrap().len(), 60);
        assert!(engine.download(wrapped, 0, 61).is_err(), "past the wrap");
    }
}

/// Memory goes through the driver's copies on `device`: bytes come back
/// as uploaded, from any offset and on any thread, and a new buffer reads
/// as zeros (the fakes fill fresh allocations with 0xa5, so the zeros are
/// the backend's memset). Dropped buffers are freed through the driver,
/// which refuses unknown addresses.
pub fn memory_round_trips(device: &dyn Device) {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let buffer = device.upload(&bytes).unwrap();
    assert_eq!(device.download(&buffer, 0, 1000).unwrap(), bytes);
    assert_eq!(device.download(&buffer, 10, 20).unwrap(), &bytes[10..30]);
    assert!(device.download(&buffer, 990, 20).is_err(), "past the end");
    let copied = std::thread::scope(|s| s.spawn(|| device.download(&buffer, 0, 1000)).join());
    assert_eq!(copied.unwrap().unwrap(), bytes);
    let zeros = device.alloc(4096).unwrap();
    assert_eq!(device.download(&zeros, 0, 4096).unwrap(), vec![0u8; 4096]);
    let empty = device.upload(&[]).unwrap();
    assert_eq!(device.download(&empty, 0, 0).unwrap(), Vec::<u8>::new());
    drop((buffer, zeros, empty));
    device.synchronize().unwrap();
}

/// The path in environment variable `name` (a child's settings).
fn path_from_env(name: &str) -> PathBuf {
    PathBuf::from(std::env::var(name).unwrap_or_else(|_| panic!("{name} is set")))
}

/// Bytes as text, invalid UTF-8 replaced.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The lines of one of the fake's logs so far (none before it exists).
pub fn lines(log: &Path) -> Vec<String> {
    match std::fs::read_to_string(log) {
        Ok(text) => text.lines().map(str::to_string).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", log.display()),
    }
}

/// Every reason the plan of the `backend` device gives for not using
/// artifact `path`, one a line.
pub fn reasons(loaded: &LoadedKernel, hub: &Hub, backend: Backend, path: &str) -> String {
    let manifest = loaded.kernel().manifest();
    let plan = loaded
        .plans()
        .iter()
        .find(|p| hub.devices()[p.device].info().backend == backend)
        .unwrap_or_else(|| panic!("a plan for the {backend:?} device"));
    let mut reasons = Vec::new();
    for choice in &plan.choices {
        for (index, why) in &choice.rejected {
            if manifest.artifacts[*index].path.get_ref() == path && !reasons.contains(why) {
                reasons.push(why.clone());
            }
        }
    }
    reasons.join("\n")
}

/// Copies the directory `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `values` as little-endian f32 bytes.
pub fn f32_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_le_bytes).collect()
}
