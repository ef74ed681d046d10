//! Which wgpu adapters this machine has, and opening the preferred one.
//!
//! Each adapter is opened at most once per process ([`open`] hands out the
//! same [`WgpuDevice`] every time), so pipelines compiled by one part of a
//! program serve every other part.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use kernelhub_manifest::kernel::WgpuFeature;

use crate::device::WgpuDevice;

/// Why no wgpu device could be opened.
#[derive(Debug, thiserror::Error)]
pub enum WgpuError {
    /// No adapter at all, or none named like `WGPU_ADAPTER_NAME`.
    #[error("no GPU adapter found{0}")]
    NoAdapter(String),
    /// The adapter refused a device.
    #[error("adapter `{adapter}` refused a device: {reason}")]
    Device {
        /// Adapter name.
        adapter: String,
        /// wgpu's message.
        reason: String,
    },
}

impl WgpuError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            WgpuError::NoAdapter(_) => {
                "install a Vulkan driver (on Debian, `mesa-vulkan-drivers` gives lavapipe, which runs on the CPU), check `VK_ICD_FILENAMES`/`VK_DRIVER_FILES`, or unset `WGPU_ADAPTER_NAME`"
            }
            WgpuError::Device { .. } => {
                "pick another adapter with `WGPU_ADAPTER_NAME` (see `kernelhub doctor`)"
            }
        }
    }
}

/// One adapter, as `kernelhub doctor` shows it.
#[derive(Debug, Clone)]
pub struct AdapterReport {
    /// Its name.
    pub name: String,
    /// Discrete, integrated, virtual, CPU.
    pub device_type: String,
    /// Vulkan, Metal, DX12, GL.
    pub backend: String,
    /// Driver name and version.
    pub driver: String,
    /// The optional WGSL features kernelhub uses that it has.
    pub features: Vec<WgpuFeature>,
    /// Subgroup sizes it may use, when it has subgroups.
    pub subgroup_sizes: Option<(u32, u32)>,
}

/// The adapters, enumerated once per process: each enumeration probes every
/// driver again (and some print warnings each time).
fn enumerate() -> Vec<wgpu::Adapter> {
    static ADAPTERS: OnceLock<Vec<wgpu::Adapter>> = OnceLock::new();
    ADAPTERS
        .get_or_init(|| {
            let instance = wgpu::Instance::new(
                wgpu::InstanceDescriptor::new_without_display_handle_from_env(),
            );
            pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        })
        .clone()
}

/// The WGSL features kernelhub knows that `features` includes.
pub(crate) fn known_features(features: wgpu::Features) -> Vec<WgpuFeature> {
    let mut known = Vec::new();
    if features.contains(wgpu::Features::SHADER_F16) {
        known.push(WgpuFeature::ShaderF16);
    }
    if features.contains(wgpu::Features::SUBGROUP) {
        known.push(WgpuFeature::Subgroups);
    }
    known
}

/// Every adapter wgpu finds, in the order [`open`] prefers them.
pub fn adapters() -> Vec<AdapterReport> {
    let mut found = enumerate();
    found.sort_by_key(rank);
    found
        .iter()
        .map(|adapter| {
            let info = adapter.get_info();
            let features = known_features(adapter.features());
            AdapterReport {
                subgroup_sizes: features
                    .contains(&WgpuFeature::Subgroups)
                    .then_some((info.subgroup_min_size, info.subgroup_max_size)),
                name: info.name,
                device_type: format!("{:?}", info.device_type),
                backend: format!("{:?}", info.backend),
                driver: format!("{} {}", info.driver, info.driver_info)
                    .trim()
                    .to_string(),
                features,
            }
        })
        .collect()
}

/// Lower is preferred: discrete, integrated, virtual, CPU, other.
fn rank(adapter: &wgpu::Adapter) -> u8 {
    match adapter.get_info().device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// The devices opened so far, by adapter identity.
fn opened() -> &'static Mutex<HashMap<String, Arc<WgpuDevice>>> {
    static OPENED: OnceLock<Mutex<HashMap<String, Arc<WgpuDevice>>>> = OnceLock::new();
    OPENED.get_or_init(Default::default)
}

/// Opens the preferred adapter, or hands out the device already opened on it.
pub fn open() -> Result<Arc<WgpuDevice>, WgpuError> {
    let adapters = enumerate();
    let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
    let wanted = std::env::var("WGPU_ADAPTER_NAME")
        .ok()
        .filter(|n| !n.is_empty());
    let adapter = match &wanted {
        Some(name) => adapters
            .into_iter()
            .find(|a| {
                a.get_info()
                    .name
                    .to_lowercase()
                    .contains(&name.to_lowercase())
            })
            .ok_or_else(|| {
                WgpuError::NoAdapter(format!(
                    " named like `{name}` (WGPU_ADAPTER_NAME); found: {}",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ))
            })?,
        None => adapters
            .into_iter()
            .min_by_key(rank)
            .ok_or_else(|| WgpuError::NoAdapter(String::new()))?,
    };
    let info = adapter.get_info();
    let key = format!(
        "{:?}/{}/{}/{}/{}",
        info.backend, info.vendor, info.device, info.device_pci_bus_id, info.name
    );
    let mut opened = opened().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(device) = opened.get(&key) {
        return Ok(device.clone());
    }
    let wanted_features =
        adapter.features() & (wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP);
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("kernelhub"),
        required_features: wanted_features,
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .map_err(|e| WgpuError::Device {
        adapter: info.name.clone(),
        reason: e.to_string(),
    })?;
    let device = Arc::new(WgpuDevice::new(adapter, device, queue));
    opened.insert(key, device.clone());
    Ok(device)
}
