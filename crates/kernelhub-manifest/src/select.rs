//! Which artifacts a platform would use: the rules `kernelhub fetch --target`
//! downloads by, and the runtime's variant selection starts from.
//!
//! A platform is a GPU architecture (`cuda:sm_90`, `rocm:gfx942`) or the
//! portable `wgpu` fallback. For each (op, dtype) the best native artifact
//! that can run on the architecture is chosen; where none can, the WGSL
//! artifact is chosen instead, because that is what the runtime falls back
//! to. Every artifact not chosen gets a reason, so `doctor` and `fetch` can
//! say why a file was skipped.

use std::fmt;
use std::str::FromStr;

use crate::kernel::{Artifact, Backend, Dtype, Format, KernelManifest};
use crate::target::{AmdArch, CudaArch, Target, TargetError};

/// A machine the artifacts are chosen for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    /// An NVIDIA GPU of this architecture.
    Cuda(CudaArch),
    /// An AMD GPU of this architecture; features left out match any.
    Rocm(AmdArch),
    /// Only the portable WGSL artifacts.
    Wgpu,
}

/// Why a `--target` value is not a platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// Not `cuda:…`, `rocm:…` or `wgpu`.
    #[error(
        "`{0}` is not a target platform; write `cuda:sm_XY`, `rocm:gfxNNN` or `wgpu` (e.g. `cuda:sm_90`)"
    )]
    Unknown(String),
    /// The architecture after the colon is not valid.
    #[error(transparent)]
    Arch(#[from] TargetError),
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            Some(("cuda", arch)) => Ok(Platform::Cuda(arch.parse()?)),
            Some(("rocm", arch)) => Ok(Platform::Rocm(arch.parse()?)),
            None if text == "wgpu" => Ok(Platform::Wgpu),
            _ => Err(PlatformError::Unknown(text.to_string())),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Platform::Cuda(arch) => write!(f, "cuda:{arch}"),
            Platform::Rocm(arch) => write!(f, "rocm:{arch}"),
            Platform::Wgpu => f.write_str("wgpu"),
        }
    }
}

/// How well an artifact fits a platform; higher is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fit {
    /// WGSL on a GPU that has a native backend: the fallback.
    Fallback,
    /// PTX JIT-compiled from an older architecture (older ranks lower).
    Jit(u32),
    /// Machine code for an older minor version of the same major.
    OlderBinary(u32),
    /// Machine code for exactly this architecture, or WGSL on `wgpu`.
    Exact,
}

/// The result of choosing artifacts for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Indices into `manifest.artifacts` of the chosen artifacts, ascending.
    pub chosen: Vec<usize>,
    /// (op, dtype) pairs nothing can run on this platform.
    pub uncovered: Vec<(String, Dtype)>,
    /// For every artifact not chosen, why.
    pub rejected: Vec<(usize, String)>,
}

/// Chooses, for every (op, dtype) of `manifest`, the artifact `platform`
/// would run.
pub fn select(manifest: &KernelManifest, platform: &Platform) -> Selection {
    let mut chosen = Vec::new();
    let mut uncovered = Vec::new();
    // Each artifact's fit, once; then per (op, dtype) the candidates that cover it.
    let fits: Vec<Result<Fit, String>> = manifest
        .artifacts
        .iter()
        .map(|a| fit(a, platform))
        .collect();
    // A GPU named without its xnack/sramecc mode may be in either: every
    // native variant that could load is kept, not only the best.
    let every_variant = matches!(platform, Platform::Rocm(d) if d.features.is_empty());
    for op in &manifest.ops {
        for dtype in &op.dtypes {
            let candidates: Vec<(Fit, usize)> = manifest
                .artifacts
                .iter()
                .zip(&fits)
                .enumerate()
                .filter(|(_, (a, _))| {
                    a.entries.iter().any(|e| {
                        e.op.get_ref() == op.name.get_ref() && e.dtype.get_ref() == dtype.get_ref()
                    })
                })
                .filter_map(|(i, (_, f))| f.as_ref().ok().map(|f| (*f, i)))
                .collect();
            // Highest fit wins, then the preferred format; among equals the
            // first in the manifest.
            let rank = |(fit, i): &(Fit, usize)| {
                (
                    *fit,
                    format_preference(*manifest.artifacts[*i].format.get_ref()),
                )
            };
            let best = candidates
                .iter()
                .max_by(|a, b| rank(a).cmp(&rank(b)).then(b.1.cmp(&a.1)));
            match best {
                Some((best_fit, _)) if every_variant && *best_fit != Fit::Fallback => chosen
                    .extend(
                        candidates
                            .iter()
                            .filter(|(f, _)| *f != Fit::Fallback)
                            .map(|(_, i)| *i),
                    ),
                Some((_, index)) => chosen.push(*index),
                None => uncovered.push((op.name.get_ref().clone(), *dtype.get_ref())),
            }
        }
    }
    chosen.sort_unstable();
    chosen.dedup();
    let rejected = fits
        .into_iter()
        .enumerate()
        .filter(|(i, _)| chosen.binary_search(i).is_err())
        .map(|(i, fit)| {
            let reason = fit
                .err()
                .unwrap_or_else(|| format!("a better artifact covers its ops on `{platform}`"));
            (i, reason)
        })
        .collect();
    Selection {
        chosen,
        uncovered,
        rejected,
    }
}

/// Between artifacts that fit equally well, which format to prefer: a cubin
/// (code for the one architecture) over a fatbin carrying it among others.
pub fn format_preference(format: Format) -> u8 {
    match format {
        Format::Cubin => 1,
        _ => 0,
    }
}

/// Whether `artifact` can run on `platform`, and how well; the reason when
/// it cannot.
pub fn fit(artifact: &Artifact, platform: &Platform) -> Result<Fit, String> {
    let backend = *artifact.backend.get_ref();
    let format = *artifact.format.get_ref();
    if format == Format::SharedLibrary {
        return Err(
            "host code (a shared library), never chosen as device code; load it with `kernelhub::host` where `kernels.toml` allows it".into(),
        );
    }
    match (platform, backend) {
        (_, Backend::Wgpu) if *platform == Platform::Wgpu => Ok(Fit::Exact),
        (_, Backend::Wgpu) => Ok(Fit::Fallback),
        (Platform::Wgpu, _) => Err("native artifact; the platform is `wgpu`".into()),
        (Platform::Cuda(device), Backend::Cuda) => artifact
            .targets
            .iter()
            .filter_map(|t| match t.get_ref() {
                Target::Cuda(arch) => cuda_fit(*arch, *device, format),
                Target::Rocm(_) => None,
            })
            .max()
            .ok_or_else(|| {
                format!(
                    "built for {}, which cannot run on `{device}`",
                    target_list(artifact)
                )
            }),
        (Platform::Rocm(device), Backend::Rocm) => artifact
            .targets
            .iter()
            .any(|t| matches!(t.get_ref(), Target::Rocm(arch) if amd_fits(arch, device)))
            .then_some(Fit::Exact)
            .ok_or_else(|| {
                format!(
                    "built for {}, which cannot run on `{device}`",
                    target_list(artifact)
                )
            }),
        (Platform::Cuda(_), _) | (Platform::Rocm(_), _) => Err(format!(
            "a {backend} artifact; the platform is `{platform}`"
        )),
    }
}

fn target_list(artifact: &Artifact) -> String {
    let names: Vec<String> = artifact
        .targets
        .iter()
        .map(|t| format!("`{}`", t.get_ref()))
        .collect();
    names.join(", ")
}

/// NVIDIA's compatibility rules: machine code runs on the same major
/// version with an equal or newer minor (`a` variants only on exactly their
/// architecture, `f` variants within their family); PTX is compiled by the
/// driver for the same or any newer architecture, except that `a` PTX
/// compiles only for its own architecture and `f` PTX only within its major.
fn cuda_fit(built: CudaArch, device: CudaArch, format: Format) -> Option<Fit> {
    let exact = built.major == device.major && built.minor == device.minor;
    match (format, built.suffix) {
        (Format::Ptx, Some('a')) => exact.then_some(Fit::Jit(built.number())),
        (_, Some('a')) => exact.then_some(Fit::Exact),
        // Family PTX compiles only within its major version.
        (Format::Ptx, Some('f')) => (built.major == device.major && built.minor <= device.minor)
            .then_some(Fit::Jit(built.number())),
        // Even for its own architecture, PTX is compiled at load: machine
        // code for the same architecture is preferred.
        (Format::Ptx, _) => (built.number() <= device.number()).then_some(Fit::Jit(built.number())),
        _ if exact => Some(Fit::Exact),
        _ => (built.major == device.major && built.minor < device.minor)
            .then(|| Fit::OlderBinary(built.number())),
    }
}

/// A code object runs on exactly its processor; a feature it pins must match
/// the device's when the device states it.
fn amd_fits(built: &AmdArch, device: &AmdArch) -> bool {
    built.processor == device.processor
        && built.features.iter().all(|(name, on)| {
            device
                .features
                .iter()
                .all(|(device_name, device_on)| device_name != name || device_on == on)
        })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::Strictness;

    fn manifest(artifacts: &str) -> KernelManifest {
        let text = format!(
            "schema = 1\n[kernel]\nname = \"k\"\nversion = \"1.0.0\"\nlicense = \"MIT\"\n\
             [ops.scale]\ndtypes = [\"f32\", \"f16\"]\n\
             params = [{{ name = \"x\", tensor = \"T\", shape = [\"n\"], written = true }}, {{ name = \"n\", scalar = \"u32\" }}]\n\
             {artifacts}"
        );
        KernelManifest::parse(&text, Path::new("kernel.toml"), Strictness::Load)
            .value
            .expect("test manifest parses")
    }

    fn artifact(backend: &str, format: &str, targets: &str, dtypes: &[&str]) -> String {
        let mut text = format!(
            "[[artifacts]]\nbackend = \"{backend}\"\nformat = \"{format}\"\n{targets}\npath = \"a/{backend}_{format}_{}.bin\"\nsize = 1\nsha256 = \"{}\"\n",
            dtypes.join("_"),
            "0".repeat(64)
        );
        for dtype in dtypes {
            text += &format!(
                "[[artifacts.entries]]\nop = \"scale\"\ndtype = \"{dtype}\"\nsymbol = \"s\"\ngrid = [1]\nblock = [64]\n"
            );
        }
        text
    }

    fn chosen(manifest: &KernelManifest, platform: &str) -> Vec<usize> {
        select(manifest, &platform.parse().unwrap()).chosen
    }

    #[test]
    fn ptx_runs_on_newer_cuda_but_cubin_only_within_its_major() {
        let m = manifest(
            &[
                artifact("cuda", "ptx", "targets = [\"sm_80\"]", &["f32", "f16"]),
                artifact("cuda", "cubin", "targets = [\"sm_90\"]", &["f32", "f16"]),
                artifact("wgpu", "wgsl", "", &["f32", "f16"]),
            ]
            .concat(),
        );
        assert_eq!(chosen(&m, "cuda:sm_90"), [1]);
        assert_eq!(chosen(&m, "cuda:sm_86"), [0]);
        assert_eq!(chosen(&m, "cuda:sm_80"), [0]);
        assert_eq!(chosen(&m, "cuda:sm_120"), [0]);
        assert_eq!(chosen(&m, "cuda:sm_75"), [2], "falls back to WGSL");
        assert_eq!(chosen(&m, "wgpu"), [2]);
        assert_eq!(chosen(&m, "rocm:gfx90a"), [2]);
        let selection = select(&m, &"cuda:sm_90".parse().unwrap());
        assert_eq!(selection.rejected.len(), 2);
        assert!(selection.uncovered.is_empty());
    }

    #[test]
    fn arch_specific_and_amd_features() {
        let m = manifest(
            &[
                artifact("cuda", "cubin", "targets = [\"sm_90a\"]", &["f32"]),
                artifact(
                    "rocm",
                    "hsaco",
                    "targets = [\"gfx942:xnack-\"]",
                    &["f32", "f16"],
                ),
            ]
            .concat(),
        );
        assert_eq!(chosen(&m, "cuda:sm_90"), [0]);
        let on_sm100 = select(&m, &"cuda:sm_100".parse().unwrap());
        assert!(on_sm100.chosen.is_empty());
        assert_eq!(on_sm100.uncovered.len(), 2);
        assert!(
            on_sm100.rejected[0].1.contains("`sm_90a`"),
            "{:?}",
            on_sm100.rejected
        );
        assert_eq!(chosen(&m, "rocm:gfx942"), [1]);
        assert_eq!(chosen(&m, "rocm:gfx942:xnack-"), [1]);
        assert_eq!(chosen(&m, "cuda:sm_90a"), [0]);
        assert!(chosen(&m, "rocm:gfx942:xnack+").is_empty());
        assert!(chosen(&m, "rocm:gfx90a").is_empty());
    }

    #[test]
    fn machine_code_beats_ptx_of_the_same_arch_and_family_ptx_stays_in_its_major() {
        let m = manifest(
            &[
                artifact("cuda", "ptx", "targets = [\"sm_90\"]", &["f32", "f16"]),
                artifact("cuda", "cubin", "targets = [\"sm_90\"]", &["f32", "f16"]),
                artifact("cuda", "ptx", "targets = [\"sm_100f\"]", &["f32", "f16"]),
            ]
            .concat(),
        );
        assert_eq!(chosen(&m, "cuda:sm_90"), [1]);
        assert_eq!(chosen(&m, "cuda:sm_103"), [2]);
        assert_eq!(
            chosen(&m, "cuda:sm_120"),
            [0],
            "family PTX does not cross majors"
        );
    }

    #[test]
    fn an_amd_gpu_of_unknown_mode_gets_every_variant() {
        let m = manifest(
            &[
                artifact(
                    "rocm",
                    "hsaco",
                    "targets = [\"gfx942:xnack-\"]",
                    &["f32", "f16"],
                ),
                artifact(
                    "rocm",
                    "hsaco",
                    "targets = [\"gfx942:xnack+\"]",
                    &["f32", "f16"],
                ),
            ]
            .concat(),
        );
        assert_eq!(chosen(&m, "rocm:gfx942"), [0, 1]);
        assert_eq!(chosen(&m, "rocm:gfx942:xnack+"), [1]);
    }

    #[test]
    fn platform_names_round_trip_and_bad_ones_explain() {
        for name in ["cuda:sm_90a", "rocm:gfx942:xnack-", "wgpu"] {
            assert_eq!(name.parse::<Platform>().unwrap().to_string(), name);
        }
        let error = "metal".parse::<Platform>().unwrap_err().to_string();
        assert!(error.contains("`cuda:sm_XY`"), "{error}");
        assert!("cuda:gfx90a".parse::<Platform>().is_err());
    }
}
