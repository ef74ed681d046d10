//! The facade over the wgpu backend on this machine's adapter (Mesa's
//! lavapipe in CI): what engines rely on beyond "the numbers match", which
//! `crates/kernelhub-wgpu/tests/lavapipe.rs` covers op by op.

use std::path::Path;
use std::sync::Arc;

mod common;

use common::{bytes, floats, install_embedded};
use kernelhub::{Arg, Buffer, Device, Dtype, Hub, KernelSource, RuntimeError, WgpuDevice};
use kernelhub_manifest::hash::Sha256Digest;
use kernelhub_runtime::reference;

fn wgpu_device() -> Arc<WgpuDevice> {
    kernelhub_wgpu::open().expect("an adapter (scripts/test.sh installs lavapipe)")
}

fn hub() -> Hub {
    Hub::with_devices(vec![wgpu_device()])
}

#[test]
fn a_batch_longer_than_the_uniform_ring_gives_every_launch_its_own_scalars() {
    let hub = hub();
    let kernel = hub
        .load(&KernelSource::Embedded("activation".into()))
        .unwrap();
    let silu = kernel.op("silu_and_mul", Dtype::F32).unwrap();
    let device = kernel.device();
    // 1500 launches (the ring has 1024 slots), each with its own `d`; 31
    // and 1024 share no factor, so a reused slot would show.
    let input_values: Vec<f32> = (0..64).map(|i| i as f32 / 8.0 - 4.0).collect();
    let input = device.upload(&bytes(&input_values)).unwrap();
    let outs: Vec<Buffer> = (0..1500).map(|_| device.alloc(32 * 4).unwrap()).collect();
    device.begin_batch();
    for (i, out) in outs.iter().enumerate() {
        let d = (i % 31 + 1) as u32;
        silu.launch(&[
            Arg::tensor(out, Dtype::F32),
            Arg::tensor(&input, Dtype::F32),
            1u32.into(),
            d.into(),
        ])
        .unwrap();
    }
    device.flush().unwrap();
    for (i, out) in outs.iter().enumerate() {
        let d = i % 31 + 1;
        let mut expected = vec![0.0f32; d];
        reference::silu_and_mul(&mut expected, &input_values[..2 * d], 1, d);
        let got = floats(&device.download(out, 0, (d * 4) as u64).unwrap());
        for (g, e) in got.iter().zip(&expected) {
            assert!(
                (g - e).abs() <= 1e-5 + 1e-5 * e.abs(),
                "launch {i}: {got:?} vs {expected:?}"
            );
        }
        // Nothing past d was written.
        let rest = floats(
            &device
                .download(out, (d * 4) as u64, ((32 - d) * 4) as u64)
                .unwrap(),
        );
        assert!(
            rest.iter().all(|v| *v == 0.0),
            "launch {i} wrote past its `d`"
        );
    }
}

#[test]
fn loading_twice_compiles_nothing_new() {
    let device = wgpu_device();
    let hub = Hub::with_devices(vec![device.clone()]);
    let first = hub.load(&KernelSource::Embedded("rmsnorm".into())).unwrap();
    first.op("rms_norm", Dtype::F32).unwrap();
    let compiled = device.compiled_pipelines();
    let again = hub.load(&KernelSource::Embedded("rmsnorm".into())).unwrap();
    again.op("rms_norm", Dtype::F32).unwrap();
    again.op("rms_norm", Dtype::F32).unwrap();
    assert_eq!(device.compiled_pipelines(), compiled);
    assert!(
        Arc::ptr_eq(&kernelhub_wgpu::open().unwrap(), &device),
        "one device per adapter per process"
    );
}

#[test]
fn engine_owned_buffers_and_offsets() {
    let device = wgpu_device();
    let hub = Hub::with_devices(vec![device.clone()]);
    let kernel = hub
        .load(&KernelSource::Embedded("activation".into()))
        .unwrap();
    let silu = kernel.op("silu_and_mul", Dtype::F32).unwrap();
    // The engine's own buffer, created on the same wgpu device.
    let usage =
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let theirs = device.wgpu_device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("engine"),
        size: 512 + 16,
        usage,
        mapped_at_creation: false,
    });
    let input_values = [1.0f32, -2.0, 0.5, 3.0, 2.0, 4.0, 5.0, 0.5];
    device
        .queue()
        .write_buffer(&theirs, 256, &bytes(&input_values));
    let wrapped = device.wrap(theirs).unwrap();
    let out = device.alloc(16).unwrap();
    // The input at byte 256 of the engine's buffer.
    silu.launch(&[
        Arg::tensor(&out, Dtype::F32),
        Arg::tensor_at(&wrapped, 256, Dtype::F32),
        1u32.into(),
        4u32.into(),
    ])
    .unwrap();
    let mut expected = [0.0f32; 4];
    reference::silu_and_mul(&mut expected, &input_values, 1, 4);
    let got = floats(&device.download(&out, 0, 16).unwrap());
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() < 1e-5, "{got:?} vs {expected:?}");
    }
    // An offset the adapter cannot bind at.
    let misaligned = silu
        .launch(&[
            Arg::tensor(&out, Dtype::F32),
            Arg::tensor_at(&wrapped, 4, Dtype::F32),
            1u32.into(),
            4u32.into(),
        ])
        .unwrap_err()
        .to_string();
    assert!(
        misaligned.contains("parameter `input` starts at byte 4")
            && misaligned.contains("binds storage buffers only at multiples of"),
        "{misaligned}"
    );
    // Written and read tensors in one wgpu buffer, even at disjoint offsets:
    // refused at launch (wgpu would reject the bind group later).
    let shared = silu
        .launch(&[
            Arg::tensor(&wrapped, Dtype::F32),
            Arg::tensor_at(&wrapped, 256, Dtype::F32),
            1u32.into(),
            4u32.into(),
        ])
        .unwrap_err()
        .to_string();
    assert!(
        shared.contains("`out` is written and `input` is in the same buffer"),
        "{shared}"
    );
    device.synchronize().expect("nothing invalid reached wgpu");
    // A buffer without STORAGE usage cannot be wrapped.
    let plain = device.wgpu_device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 16,
        usage: wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    assert!(
        device
            .wrap(plain)
            .unwrap_err()
            .to_string()
            .contains("STORAGE")
    );
    // A kernelhub buffer claiming to be another device's.
    let handle = device.wgpu_device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 64,
        usage,
        mapped_at_creation: false,
    });
    let foreign = Buffer::new(u64::MAX, 7, 64, Arc::new(handle));
    let error = silu
        .launch(&[
            Arg::tensor(&out, Dtype::F32),
            Arg::tensor(&foreign, Dtype::F32),
            1u32.into(),
            4u32.into(),
        ])
        .unwrap_err();
    assert!(
        matches!(&error, RuntimeError::ForeignBuffer { param, .. } if param == "input"),
        "{error}"
    );
}

/// Copies `kernels/activation` into a temporary directory with `edit`
/// applied to the f32 WGSL, and the manifest re-pinned to the edited bytes.
fn edited_activation(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kernels/activation");
    let shader_path = "wgsl/activation_f32.wgsl";
    let original = std::fs::read(source.join(shader_path)).unwrap();
    let edited = edit(std::str::from_utf8(&original).unwrap());
    let manifest = std::fs::read_to_string(source.join("kernel.toml"))
        .unwrap()
        .replace(
            &Sha256Digest::of(&original).to_string(),
            &Sha256Digest::of(edited.as_bytes()).to_string(),
        )
        .replace(
            &format!("size = {}\n", original.len()),
            &format!("size = {}\n", edited.len()),
        );
    std::fs::create_dir_all(dir.path().join("wgsl")).unwrap();
    std::fs::write(dir.path().join("kernel.toml"), manifest).unwrap();
    std::fs::write(dir.path().join(shader_path), edited).unwrap();
    std::fs::copy(
        source.join("wgsl/activation_f16.wgsl"),
        dir.path().join("wgsl/activation_f16.wgsl"),
    )
    .unwrap();
    dir
}

#[test]
fn wgsl_that_fails_validation_is_a_load_error_naming_file_and_device() {
    let dir = edited_activation(|s| {
        s.replace(
            "fn silu(x: f32) -> f32 {",
            "fn silu(x: f32) -> f32 { let broken: u32 = 1.5;",
        )
    });
    let hub = hub();
    let kernel = hub
        .load(&KernelSource::Dir(dir.path().to_path_buf()))
        .unwrap();
    let error = kernel.op("silu_and_mul", Dtype::F32).err().unwrap();
    let text = error.to_string();
    assert!(
        matches!(error, RuntimeError::Load { .. })
            && text.contains("`wgsl/activation_f32.wgsl` does not load on `")
            && text.contains("invalid WGSL"),
        "{text}"
    );
    // The f16 artifact is untouched and still loads where the adapter has f16.
    if hub.devices()[0]
        .info()
        .features
        .contains(&kernelhub_manifest::kernel::WgpuFeature::ShaderF16)
    {
        kernel.op("silu_and_mul", Dtype::F16).unwrap();
    }
}

#[test]
fn a_kernel_whose_manifest_is_broken_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kernel.toml"),
        "schema = 1\n[kernel]\nname = 3\n",
    )
    .unwrap();
    let error = hub()
        .load(&KernelSource::Dir(dir.path().to_path_buf()))
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("kernel.toml` is not a valid kernel manifest")
            && error.contains("hint: run `kernelhub check`"),
        "{error}"
    );
    let missing = hub()
        .load(&KernelSource::Embedded("flash_attention".into()))
        .err()
        .unwrap()
        .to_string();
    assert!(
        missing.contains(
            "no embedded kernel is called `flash_attention`; the embedded kernels are activation"
        ),
        "{missing}"
    );
}

#[test]
fn a_locked_kernel_loads_from_the_hub_cache_and_a_corrupt_file_is_refused() {
    use kernelhub_hub::cache::{HubCache, PinnedFile};

    let dir = tempfile::tempdir().unwrap();
    let cache = HubCache::new(dir.path());
    let locked = install_embedded(
        &cache,
        "activation",
        "0123456789abcdef0123456789abcdef01234567",
    );
    let manifest = cache.load_manifest(&locked).unwrap();
    let source = KernelSource::Cached {
        cache: cache.clone(),
        kernel: locked.clone(),
        trust: Default::default(),
    };
    let kernel = hub().load(&source).unwrap();
    let device = kernel.device();
    let input = device.upload(&bytes(&[1.0, 2.0])).unwrap();
    let out = device.alloc(4).unwrap();
    kernel
        .op("silu_and_mul", Dtype::F32)
        .unwrap()
        .launch(&[
            Arg::tensor(&out, Dtype::F32),
            Arg::tensor(&input, Dtype::F32),
            1u32.into(),
            1u32.into(),
        ])
        .unwrap();
    let got = floats(&device.download(&out, 0, 4).unwrap())[0];
    assert!((got - 2.0 * 0.731_058_6).abs() < 1e-5, "{got}");

    // One flipped byte in the cached WGSL: refused, nothing loaded.
    let wgsl = manifest
        .artifacts
        .iter()
        .find(|a| a.path.get_ref() == "wgsl/activation_f32.wgsl")
        .unwrap();
    let path = cache.snapshot_path(&PinnedFile::artifact(&locked, wgsl));
    let mut corrupt = std::fs::read(&path).unwrap();
    corrupt[10] ^= 0x20;
    let real = std::fs::canonicalize(&path).unwrap();
    std::fs::remove_file(&real).unwrap();
    std::fs::write(&real, corrupt).unwrap();
    let error = hub().load(&source).err().unwrap().to_string();
    assert!(
        error.contains("wgsl/activation_f32.wgsl") && error.contains("Expected"),
        "{error}"
    );
}

/// The real lavapipe device behind a driver that refuses the subgroup
/// variants, as a CUDA driver refuses PTX newer than itself: a fault the
/// real driver here cannot produce.
struct RefusingDevice {
    inner: Arc<WgpuDevice>,
    loads: std::sync::Mutex<Vec<Vec<String>>>,
}

impl Device for RefusingDevice {
    fn info(&self) -> &kernelhub::DeviceInfo {
        self.inner.info()
    }

    fn load(
        &self,
        manifest: Arc<kernelhub_manifest::KernelManifest>,
        choices: Vec<kernelhub_runtime::select::OpChoice>,
        artifacts: Vec<kernelhub_runtime::device::VerifiedArtifact>,
    ) -> Result<Arc<dyn kernelhub::Kernel>, RuntimeError> {
        let paths: Vec<String> = artifacts
            .iter()
            .map(|a| manifest.artifacts[a.index].path.get_ref().clone())
            .collect();
        self.loads.lock().unwrap().push(paths);
        if let Some(refused) = artifacts.iter().find(|a| {
            manifest.artifacts[a.index]
                .path
                .get_ref()
                .contains("subgroups")
        }) {
            return Err(RuntimeError::Refused {
                artifact: refused.index,
                path: manifest.artifacts[refused.index].path.get_ref().clone(),
                device: self.info().name.clone(),
                reason: "the driver cannot compile it (simulated)".into(),
            });
        }
        self.inner.load(manifest, choices, artifacts)
    }

    fn alloc(&self, len: u64) -> Result<Buffer, RuntimeError> {
        self.inner.alloc(len)
    }

    fn upload(&self, bytes: &[u8]) -> Result<Buffer, RuntimeError> {
        self.inner.upload(bytes)
    }

    fn download(&self, buffer: &Buffer, offset: u64, len: u64) -> Result<Vec<u8>, RuntimeError> {
        self.inner.download(buffer, offset, len)
    }

    fn begin_batch(&self) {
        self.inner.begin_batch();
    }

    fn flush(&self) -> Result<(), RuntimeError> {
        self.inner.flush()
    }

    fn synchronize(&self) -> Result<(), RuntimeError> {
        self.inner.synchronize()
    }
}

#[test]
fn an_artifact_the_driver_refuses_is_planned_around_with_its_reason() {
    let device = wgpu_device();
    assert!(
        device
            .info()
            .features
            .contains(&kernelhub_manifest::kernel::WgpuFeature::Subgroups),
        "the test needs an adapter with subgroups (lavapipe has them) to refuse its subgroup variants"
    );
    let refusing = Arc::new(RefusingDevice {
        inner: device,
        loads: Default::default(),
    });
    let hub = Hub::with_devices(vec![refusing.clone()]);
    let loaded = hub
        .load(&KernelSource::Embedded("rmsnorm".into()))
        .expect("the plain variants load once the subgroup ones are refused");
    let loads = refusing.loads.lock().unwrap().clone();
    assert!(loads.len() >= 2, "{loads:?}");
    assert!(
        loads[0].iter().any(|p| p.contains("subgroups")),
        "{loads:?}"
    );
    let last = loads.last().unwrap();
    assert!(!last.iter().any(|p| p.contains("subgroups")), "{loads:?}");
    let op = loaded.op("rms_norm", Dtype::F32).unwrap();
    assert_eq!(op.artifact(), "wgsl/rmsnorm_f32.wgsl");
    // The refusal is recorded with the driver's reason in the plan.
    let rejected: Vec<&String> = loaded.plans()[0]
        .choices
        .iter()
        .flat_map(|c| c.rejected.iter().map(|(_, why)| why))
        .collect();
    assert!(
        rejected
            .iter()
            .any(|why| why
                .contains("the driver refused it: the driver cannot compile it (simulated)")),
        "{rejected:?}"
    );
    // And the op computes the right thing.
    let (rows, cols) = (3u32, 40u32);
    let input: Vec<f32> = (0..rows * cols).map(|i| (i as f32 * 0.37).sin()).collect();
    let weight: Vec<f32> = (0..cols).map(|i| 1.0 + i as f32 / 64.0).collect();
    let out = loaded.device().alloc(u64::from(rows * cols) * 4).unwrap();
    let input_buffer = loaded.device().upload(&bytes(&input)).unwrap();
    let weight_buffer = loaded.device().upload(&bytes(&weight)).unwrap();
    op.launch(&[
        Arg::tensor(&out, Dtype::F32),
        Arg::tensor(&input_buffer, Dtype::F32),
        Arg::tensor(&weight_buffer, Dtype::F32),
        1e-6f32.into(),
        rows.into(),
        cols.into(),
    ])
    .unwrap();
    let got = floats(&loaded.device().download(&out, 0, out.len()).unwrap());
    let mut expected = vec![0f32; input.len()];
    reference::rms_norm(
        &mut expected,
        &input,
        &weight,
        1e-6,
        rows as usize,
        cols as usize,
    );
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() <= 1e-5 * e.abs().max(1.0), "{g} vs {e}");
    }
}
