//! Which artifact runs each (op, dtype) on one device, and why every other
//! candidate does not.
//!
//! The architecture rules (machine code for the exact SM beats older
//! machine code beats PTX, an hsaco runs on its own gfx processor) are
//! [`kernelhub_manifest::select::fit`], shared with `kernelhub fetch`. This
//! adds what only a live device knows: its backend, and for wgpu the
//! optional features the adapter has. Among artifacts that fit equally, a
//! cubin beats a fatbin, and among WGSL artifacts the one using more
//! features wins (a `subgroups` variant over the plain one).
//! An artifact whose `min_driver` is newer than the device's driver is
//! refused with both versions named, and [`choose_refusing`] moves on from
//! artifacts the driver itself would not load.

use std::collections::BTreeMap;

use kernelhub_manifest::kernel::{Dtype, KernelManifest};
use kernelhub_manifest::select::{Fit, fit, format_preference};

use crate::device::DeviceInfo;

/// The choice for one (op, dtype) on one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpChoice {
    /// The op.
    pub op: String,
    /// The dtype.
    pub dtype: Dtype,
    /// Index of the chosen artifact, if any fits.
    pub chosen: Option<usize>,
    /// Every other artifact with an entry for this (op, dtype), and why it
    /// was not chosen.
    pub rejected: Vec<(usize, String)>,
}

/// Chooses an artifact for every (op, dtype) of `manifest` on `device`.
pub fn choose(manifest: &KernelManifest, device: &DeviceInfo) -> Vec<OpChoice> {
    choose_refusing(manifest, device, &BTreeMap::new())
}

/// Like [`choose`], with some artifacts already refused by the device (a
/// driver that would not load them), each with the driver's reason: the
/// next best candidate is chosen instead.
pub fn choose_refusing(
    manifest: &KernelManifest,
    device: &DeviceInfo,
    refused: &BTreeMap<usize, String>,
) -> Vec<OpChoice> {
    let verdicts: Vec<Result<(Fit, u8, usize), String>> = manifest
        .artifacts
        .iter()
        .enumerate()
        .map(|(index, artifact)| {
            if let Some(reason) = refused.get(&index) {
                return Err(reason.clone());
            }
            let backend = *artifact.backend.get_ref();
            if backend != device.backend {
                return Err(format!(
                    "a {backend} artifact; `{}` is a {} device",
                    device.name, device.backend
                ));
            }
            let missing: Vec<String> = artifact
                .features
                .iter()
                .map(|f| *f.get_ref())
                .filter(|f| !device.features.contains(f))
                .map(|f| format!("`{f}`"))
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "needs the wgpu feature {}, which `{}` lacks",
                    missing.join(" and "),
                    device.name
                ));
            }
            if let (Some(needed), Some(installed)) = (&artifact.min_driver, device.driver) {
                let needed = *needed.get_ref();
                if installed < needed {
                    return Err(format!(
                        "needs a {backend} driver of version {needed} or newer; `{}` has {installed}: update the driver",
                        device.name
                    ));
                }
            }
            fit(artifact, &device.platform).map(|fit| {
                (
                    fit,
                    format_preference(*artifact.format.get_ref()),
                    artifact.features.len(),
                )
            })
        })
        .collect();
    let mut choices = Vec::new();
    for op in &manifest.ops {
        for dtype in op.dtypes.iter().map(|d| *d.get_ref()) {
            let name = op.name.get_ref();
            let candidates: Vec<usize> = manifest
                .artifacts
                .iter()
                .enumerate()
                .filter(|(_, a)| {
                    a.entries
                        .iter()
                        .any(|e| e.op.get_ref() == name && *e.dtype.get_ref() == dtype)
                })
                .map(|(i, _)| i)
                .collect();
            // Best fit wins; among equals the first in the manifest.
            let chosen = candidates
                .iter()
                .filter_map(|&i| verdicts[i].as_ref().ok().map(|v| (*v, i)))
                .max_by(|(va, ia), (vb, ib)| va.cmp(vb).then(ib.cmp(ia)))
                .map(|(_, i)| i);
            let rejected = candidates
                .iter()
                .filter(|&&i| Some(i) != chosen)
                .map(|&i| {
                    let reason = match (&verdicts[i], chosen) {
                        (Err(reason), _) => reason.clone(),
                        (Ok(_), Some(best)) => format!(
                            "`{}` fits `{}` better",
                            manifest.artifacts[best].path.get_ref(),
                            device.name
                        ),
                        (Ok(_), None) => unreachable!("a fitting candidate is always chosen"),
                    };
                    (i, reason)
                })
                .collect();
            choices.push(OpChoice {
                op: name.clone(),
                dtype,
                chosen,
                rejected,
            });
        }
    }
    choices
}

/// Why nothing runs `choice` on `device`, for an error message: every
/// candidate with its reason, or that the manifest has none.
pub fn explain_uncovered(manifest: &KernelManifest, choice: &OpChoice, device: &str) -> String {
    let mut text = format!(
        "nothing in kernel `{}` runs op `{}` at {} on `{device}`",
        manifest.kernel.name.get_ref(),
        choice.op,
        choice.dtype
    );
    if choice.rejected.is_empty() {
        text.push_str(": no artifact has an entry for it");
    }
    for (index, reason) in &choice.rejected {
        text.push_str(&format!(
            "\n  `{}`: {reason}",
            manifest.artifacts[*index].path.get_ref()
        ));
    }
    if choice.dtype == Dtype::Bf16 && !choice.rejected.is_empty() {
        text.push_str("\n  hint: WGSL has no bf16 type; bf16 runs on the native backends only (CUDA, ROCm), or convert to f16/f32");
    }
    text
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use kernelhub_manifest::kernel::{Backend, WgpuFeature};
    use kernelhub_manifest::{KernelManifest, Strictness};

    use super::*;

    /// One op `scale` in f32 and f16, with the given artifacts.
    fn manifest(artifacts: &[(&str, &str, &str, &[&str])]) -> KernelManifest {
        let mut text = String::from(
            "schema = 1\n[kernel]\nname = \"k\"\nversion = \"1.0.0\"\nlicense = \"MIT\"\n\
             [ops.scale]\ndtypes = [\"f32\", \"f16\", \"bf16\"]\n\
             params = [{ name = \"x\", tensor = \"T\", shape = [\"n\"], written = true }, { name = \"n\", scalar = \"u32\" }]\n",
        );
        for (i, (backend, format, extra, dtypes)) in artifacts.iter().enumerate() {
            text += &format!(
                "[[artifacts]]\nbackend = \"{backend}\"\nformat = \"{format}\"\n{extra}\npath = \"a{i}\"\nsize = 1\nsha256 = \"{}\"\n",
                "0".repeat(64)
            );
            for dtype in *dtypes {
                text += &format!(
                    "[[artifacts.entries]]\nop = \"scale\"\ndtype = \"{dtype}\"\nsymbol = \"s\"\ngrid = [1]\nblock = [64]\n"
                );
            }
        }
        KernelManifest::parse(&text, Path::new("kernel.toml"), Strictness::Load)
            .value
            .expect("test manifest parses")
    }

    fn device(backend: Backend, platform: &str, features: &[WgpuFeature]) -> DeviceInfo {
        DeviceInfo {
            backend,
            platform: platform.parse().unwrap(),
            name: "gpu".into(),
            kind: String::new(),
            features: features.to_vec(),
            driver: None,
        }
    }

    /// The chosen artifact per dtype, f32, f16, bf16.
    fn chosen(manifest: &KernelManifest, device: &DeviceInfo) -> Vec<Option<usize>> {
        choose(manifest, device).iter().map(|c| c.chosen).collect()
    }

    #[test]
    fn wgsl_variants_by_adapter_features() {
        let m = manifest(&[
            ("wgpu", "wgsl", "features = []", &["f32"]),
            ("wgpu", "wgsl", "features = [\"shader-f16\"]", &["f16"]),
            ("wgpu", "wgsl", "features = [\"subgroups\"]", &["f32"]),
            (
                "cuda",
                "ptx",
                "targets = [\"sm_80\"]",
                &["f32", "f16", "bf16"],
            ),
        ]);
        use WgpuFeature::{ShaderF16, Subgroups};
        let table: [(&[WgpuFeature], [Option<usize>; 3]); 4] = [
            (&[], [Some(0), None, None]),
            (&[ShaderF16], [Some(0), Some(1), None]),
            (&[Subgroups], [Some(2), None, None]),
            (&[ShaderF16, Subgroups], [Some(2), Some(1), None]),
        ];
        for (features, expected) in table {
            let d = device(Backend::Wgpu, "wgpu", features);
            assert_eq!(chosen(&m, &d), expected, "features {features:?}");
        }
        let plain = choose(&m, &device(Backend::Wgpu, "wgpu", &[]));
        let f16 = &plain[1];
        assert_eq!(
            f16.rejected,
            [
                (
                    1,
                    "needs the wgpu feature `shader-f16`, which `gpu` lacks".to_string()
                ),
                (3, "a cuda artifact; `gpu` is a wgpu device".to_string()),
            ]
        );
        let with_subgroups = choose(&m, &device(Backend::Wgpu, "wgpu", &[Subgroups]));
        assert!(
            with_subgroups[0]
                .rejected
                .contains(&(0, "`a2` fits `gpu` better".to_string())),
            "{:?}",
            with_subgroups[0].rejected
        );
    }

    #[test]
    fn native_devices_use_the_architecture_rules() {
        let m = manifest(&[
            (
                "cuda",
                "ptx",
                "targets = [\"sm_80\"]",
                &["f32", "f16", "bf16"],
            ),
            ("cuda", "cubin", "targets = [\"sm_90\"]", &["f32"]),
            ("rocm", "hsaco", "targets = [\"gfx90a:xnack-\"]", &["f32"]),
            ("wgpu", "wgsl", "features = []", &["f32"]),
        ]);
        let table = [
            (Backend::Cuda, "cuda:sm_90", [Some(1), Some(0), Some(0)]),
            (Backend::Cuda, "cuda:sm_80", [Some(0), Some(0), Some(0)]),
            (Backend::Cuda, "cuda:sm_75", [None, None, None]),
            (Backend::Rocm, "rocm:gfx90a:xnack-", [Some(2), None, None]),
            (Backend::Rocm, "rocm:gfx90a:xnack+", [None, None, None]),
            (Backend::Wgpu, "wgpu", [Some(3), None, None]),
        ];
        for (backend, platform, expected) in table {
            let d = device(backend, platform, &[]);
            assert_eq!(chosen(&m, &d), expected, "{platform}");
        }
        let old = choose(&m, &device(Backend::Cuda, "cuda:sm_75", &[]));
        assert!(
            old[0].rejected[0]
                .1
                .contains("built for `sm_80`, which cannot run on `sm_75`"),
            "{:?}",
            old[0].rejected
        );
        let text = explain_uncovered(&m, &old[2], "gpu");
        assert!(
            text.starts_with("nothing in kernel `k` runs op `scale` at bf16 on `gpu`")
                && text.contains("\n  `a0`: built for `sm_80`"),
            "{text}"
        );
    }
}
