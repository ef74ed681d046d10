//! Which artifact runs each (op, dtype) on one device, and why every other
//! candidate does not.
//!
//! The architecture rules (machine code for the exact SM beats older
//! machine code beats PTX, an hsaco runs on its own gfx processor) are
//! [`kernelhub_manifest::select::fit`], shared with `kernelhub fetch`. This
//! adds what only a live device knows: its backend, and for wgpu the
//! optional features the adapter has. Among WGSL artifacts that fit, the one
//! using more features wins (a `subgroups` variant over the plain one).

use kernelhub_manifest::kernel::{Dtype, KernelManifest};
use kernelhub_manifest::select::fit;

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
    let verdicts: Vec<Result<(kernelhub_manifest::select::Fit, usize), String>> = manifest
        .artifacts
        .iter()
        .map(|artifact| {
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
            fit(artifact, &device.platform).map(|fit| (fit, artifact.features.len()))
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
