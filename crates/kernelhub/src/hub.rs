//! [`Hub`]: this process's devices, and loading a kernel onto the one that
//! runs it best.
//!
//! Devices are probed once, native GPUs first (every CUDA GPU, then every
//! ROCm GPU), then the wgpu adapter; `KERNELHUB_BACKEND` keeps only one backend. A kernel goes
//! to the device on which the most of its (op, dtype) pairs have a fitting
//! artifact, the earlier device on a tie; every other choice is recorded
//! with its reason, for `kernelhub doctor` and for errors. Only the chosen
//! artifacts are read, and each is verified against the manifest's pin
//! before the backend sees a byte. A driver's refusal of an artifact is one
//! more reason: the next candidate is chosen, down to the WGSL fallback.

use std::collections::BTreeMap;
use std::sync::Arc;

use kernelhub_hub::env::KERNELHUB_BACKEND;
use kernelhub_manifest::kernel::{Backend, Dtype, KernelManifest};
use kernelhub_runtime::device::VerifiedArtifact;
use kernelhub_runtime::launch::chosen_indices;
use kernelhub_runtime::select::{OpChoice, choose_refusing};
use kernelhub_runtime::{Device, Kernel, Op, RuntimeError};

use crate::{KernelSource, LoadError};

/// How one round of [`Hub::load`] ended.
enum Round {
    /// The kernel is loaded.
    Loaded(LoadedKernel),
    /// Device `device`'s driver would not load artifact `artifact`.
    Refused {
        device: usize,
        artifact: usize,
        reason: String,
    },
}

/// The devices kernels can load onto.
pub struct Hub {
    devices: Vec<Arc<dyn Device>>,
    unavailable: Vec<(Backend, String)>,
}

/// How one device would run a kernel.
#[derive(Debug, Clone)]
pub struct DevicePlan {
    /// Index into [`Hub::devices`].
    pub device: usize,
    /// The choice for every (op, dtype).
    pub choices: Vec<OpChoice>,
}

impl DevicePlan {
    /// How many (op, dtype) pairs it runs.
    pub fn covered(&self) -> usize {
        self.choices.iter().filter(|c| c.chosen.is_some()).count()
    }
}

/// A kernel loaded onto a device.
pub struct LoadedKernel {
    kernel: Arc<dyn Kernel>,
    device: Arc<dyn Device>,
    plans: Vec<DevicePlan>,
}

impl LoadedKernel {
    /// The op `name` at `dtype`.
    pub fn op(&self, name: &str, dtype: Dtype) -> Result<Arc<dyn Op>, RuntimeError> {
        self.kernel.op(name, dtype)
    }

    /// The device it runs on; buffers for its ops come from here.
    pub fn device(&self) -> &Arc<dyn Device> {
        &self.device
    }

    /// The backend's kernel.
    pub fn kernel(&self) -> &Arc<dyn Kernel> {
        &self.kernel
    }

    /// How each device of the hub would have run it (the chosen one first).
    pub fn plans(&self) -> &[DevicePlan] {
        &self.plans
    }
}

impl Hub {
    /// Probes the backends (all, or the one `KERNELHUB_BACKEND` names).
    pub fn new() -> Result<Self, LoadError> {
        let forced = match std::env::var(KERNELHUB_BACKEND) {
            Ok(value) if !value.is_empty() => Some(
                value
                    .parse::<Backend>()
                    .map_err(|()| LoadError::BadBackend(value))?,
            ),
            _ => None,
        };
        let mut hub = Hub {
            devices: Vec::new(),
            unavailable: Vec::new(),
        };
        for backend in [Backend::Cuda, Backend::Rocm, Backend::Wgpu] {
            if forced.is_some_and(|f| f != backend) {
                continue;
            }
            match backend {
                Backend::Wgpu => match kernelhub_wgpu::open() {
                    Ok(device) => hub.devices.push(device),
                    Err(e) => hub
                        .unavailable
                        .push((backend, format!("{e}\n    hint: {}", e.hint()))),
                },
                Backend::Cuda => hub.open_cuda(),
                Backend::Rocm => hub.open_rocm(),
            }
        }
        if hub.devices.is_empty() {
            let mut reasons = String::new();
            for (backend, why) in &hub.unavailable {
                reasons.push_str(&format!("\n  {backend}: {why}"));
            }
            if let Some(backend) = forced {
                reasons.push_str(&format!(
                    "\n  hint: `{KERNELHUB_BACKEND}={backend}` keeps only that backend; unset it to let kernelhub choose"
                ));
            }
            return Err(LoadError::NoDevice(reasons));
        }
        Ok(hub)
    }

    /// Every NVIDIA GPU the driver sees, or why there is none.
    fn open_cuda(&mut self) {
        let platform = match kernelhub_cuda::probe() {
            Ok(platform) => platform,
            Err(e) => {
                let why = format!("{e}\n    hint: {}", e.hint());
                self.unavailable.push((Backend::Cuda, why));
                return;
            }
        };
        if platform.devices.is_empty() && platform.unusable.is_empty() {
            self.unavailable.push((
                Backend::Cuda,
                format!(
                    "the driver (`{}`, CUDA {}) finds no NVIDIA GPU",
                    platform.library,
                    platform.driver()
                ),
            ));
        }
        for (ordinal, error) in &platform.unusable {
            self.unavailable
                .push((Backend::Cuda, format!("GPU #{ordinal}: {error}")));
        }
        for device in &platform.devices {
            match kernelhub_cuda::open_probed(device, platform.driver()) {
                Ok(opened) => self.devices.push(Arc::new(opened)),
                Err(e) => self
                    .unavailable
                    .push((Backend::Cuda, format!("{device}: {e}"))),
            }
        }
    }

    /// Every AMD GPU the HIP runtime sees, or why there is none.
    fn open_rocm(&mut self) {
        let platform = match kernelhub_hip::probe() {
            Ok(platform) => platform,
            Err(e) => {
                self.unavailable.push((Backend::Rocm, e.to_string()));
                return;
            }
        };
        if platform.devices.is_empty() && platform.unusable.is_empty() {
            self.unavailable.push((
                Backend::Rocm,
                format!(
                    "the HIP runtime (`{}`, HIP {}) finds no AMD GPU",
                    platform.library, platform.runtime_version
                ),
            ));
        }
        for (ordinal, error) in &platform.unusable {
            self.unavailable
                .push((Backend::Rocm, format!("GPU #{ordinal}: {error}")));
        }
        for device in &platform.devices {
            match kernelhub_hip::open_probed(&platform, device) {
                Ok(opened) => self.devices.push(Arc::new(opened)),
                Err(e) => self.unavailable.push((
                    Backend::Rocm,
                    format!(
                        "#{} {} ({}): {e}",
                        device.ordinal, device.name, device.gcn_arch_name
                    ),
                )),
            }
        }
    }

    /// A hub over devices the caller opened (an engine's own wgpu device,
    /// wrapped with [`kernelhub_wgpu::WgpuDevice::new`]), in preference order.
    pub fn with_devices(devices: Vec<Arc<dyn Device>>) -> Self {
        Hub {
            devices,
            unavailable: Vec::new(),
        }
    }

    /// The devices, in preference order.
    pub fn devices(&self) -> &[Arc<dyn Device>] {
        &self.devices
    }

    /// The backends that have no device here, and why.
    pub fn unavailable(&self) -> &[(Backend, String)] {
        &self.unavailable
    }

    /// How every device would run `manifest`, best first.
    pub fn plans(&self, manifest: &KernelManifest) -> Vec<DevicePlan> {
        self.plans_refusing(manifest, &vec![BTreeMap::new(); self.devices.len()])
    }

    /// [`Hub::plans`], with the artifacts each device's driver refused.
    fn plans_refusing(
        &self,
        manifest: &KernelManifest,
        refused: &[BTreeMap<usize, String>],
    ) -> Vec<DevicePlan> {
        let mut plans: Vec<DevicePlan> = self
            .devices
            .iter()
            .zip(refused)
            .enumerate()
            .map(|(device, (d, refused))| DevicePlan {
                device,
                choices: choose_refusing(manifest, d.info(), refused),
            })
            .collect();
        // Stable: on a tie the earlier (preferred) device stays first.
        plans.sort_by_key(|p| std::cmp::Reverse(p.covered()));
        plans
    }

    /// Loads `source` onto the device that runs most of its ops, reading and
    /// verifying only the artifacts chosen there. An artifact the device's
    /// driver refuses (no code for this GPU, PTX too new for the driver)
    /// is recorded with the driver's reason and the next best plan is
    /// tried, down to the WGSL fallback.
    pub fn load(&self, source: &KernelSource) -> Result<LoadedKernel, LoadError> {
        let manifest = source.manifest()?;
        let mut refused = vec![BTreeMap::new(); self.devices.len()];
        // Bytes read and verified in an earlier round, not read again.
        let mut verified = BTreeMap::new();
        loop {
            match self.try_load(source, &manifest, &refused, &mut verified)? {
                Round::Loaded(loaded) => return Ok(loaded),
                // Each round refuses an artifact that was chosen, so not
                // refused before: the loop ends.
                Round::Refused {
                    device,
                    artifact,
                    reason,
                } => {
                    let reason = format!("the driver refused it: {reason}");
                    if refused[device].insert(artifact, reason).is_some() {
                        // A device refusing what it was not offered (or
                        // twice) would loop here; report it instead.
                        return Err(LoadError::Runtime(RuntimeError::Backend {
                            backend: self.devices[device].info().backend,
                            message: format!(
                                "`{}` refused artifact {artifact} again after it was planned around",
                                self.devices[device].info().name
                            ),
                        }));
                    }
                }
            }
        }
    }

    /// One round of [`Hub::load`] with the refusals so far.
    fn try_load(
        &self,
        source: &KernelSource,
        manifest: &Arc<KernelManifest>,
        refused: &[BTreeMap<usize, String>],
        verified: &mut BTreeMap<usize, VerifiedArtifact>,
    ) -> Result<Round, LoadError> {
        let plans = self.plans_refusing(manifest, refused);
        let Some(best) = plans.first().filter(|p| p.covered() > 0) else {
            // Each (device, artifact, reason) once, not once per op.
            let mut lines: Vec<String> = Vec::new();
            for plan in &plans {
                let device = &self.devices[plan.device].info().name;
                for choice in &plan.choices {
                    for (index, why) in &choice.rejected {
                        let line = format!(
                            "\n  on `{device}`: `{}`: {why}",
                            manifest.artifacts[*index].path.get_ref()
                        );
                        if !lines.contains(&line) {
                            lines.push(line);
                        }
                    }
                }
            }
            let mut reasons = lines.concat();
            reasons.push_str("\n  hint: `kernelhub doctor` lists the devices kernelhub found");
            return Err(LoadError::NothingRuns {
                kernel: source.describe(),
                reasons,
            });
        };
        let chosen = chosen_indices(&best.choices);
        let mut artifacts = Vec::with_capacity(chosen.len());
        for index in chosen {
            let artifact = match verified.get(&index) {
                Some(artifact) => artifact.clone(),
                None => {
                    let artifact = source.verified_artifact(manifest, index)?;
                    verified.insert(index, artifact.clone());
                    artifact
                }
            };
            artifacts.push(artifact);
        }
        let device = self.devices[best.device].clone();
        match device.load(manifest.clone(), best.choices.clone(), artifacts) {
            Ok(kernel) => Ok(Round::Loaded(LoadedKernel {
                kernel,
                device,
                plans,
            })),
            Err(RuntimeError::Refused {
                artifact, reason, ..
            }) => Ok(Round::Refused {
                device: best.device,
                artifact,
                reason,
            }),
            Err(e) => Err(e.into()),
        }
    }
}
