//! Build variant names under `build/`, and which variant a platform uses —
//! ported from the Python `kernels` 0.17 loader (`variants.py`,
//! `backends.py`) so kernelhub picks exactly what that loader would pick.
//!
//! ```text
//! torch210-cxx11-cu128-x86_64-linux      torch 2.10, C++11 ABI, CUDA 12.8
//! torch-stable-abi210-cu128-x86_64-linux stable ABI 2.10 (any torch ≥ 2.10)
//! tvm-ffi01-cu128-x86_64-linux           tvm-ffi 0.1
//! torch-cuda, torch-cpu, torch-universal noarch (Python only)
//! ```
//!
//! Version digits follow the loader's regexes exactly: the torch major is
//! one digit and the minor the rest (`torch210` = 2.10); a backend's minor
//! is its last digit (`cu128` = 12.8, `rocm72` = 7.2, `xpu20253` = 2025.3).

use std::fmt;

/// A `major.minor` version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A compute backend with its version where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// CPU.
    Cpu,
    /// Apple Metal.
    Metal,
    /// AWS Neuron.
    Neuron,
    /// Google TPU.
    Tpu,
    /// NVIDIA CUDA.
    Cuda(Version),
    /// AMD ROCm.
    Rocm(Version),
    /// Intel XPU.
    Xpu(Version),
    /// Huawei CANN (noarch name `npu`).
    Cann(Version),
}

impl Backend {
    /// Parses `cpu`, `metal`, `neuron`, `tpu`, `cu128`, `rocm72`, `xpu20253`, `cann82`.
    pub fn parse(text: &str) -> Option<Self> {
        let versioned = |prefix: &str| -> Option<Version> {
            let digits = text.strip_prefix(prefix)?;
            if digits.len() < 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let (major, minor) = digits.split_at(digits.len() - 1);
            Some(Version {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
            })
        };
        match text {
            "cpu" => Some(Backend::Cpu),
            "metal" => Some(Backend::Metal),
            "neuron" => Some(Backend::Neuron),
            "tpu" => Some(Backend::Tpu),
            _ => versioned("cu")
                .map(Backend::Cuda)
                .or_else(|| versioned("rocm").map(Backend::Rocm))
                .or_else(|| versioned("xpu").map(Backend::Xpu))
                .or_else(|| versioned("cann").map(Backend::Cann)),
        }
    }

    /// The noarch name of this backend (`torch-<name>`).
    pub fn noarch_name(&self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Metal => "metal",
            Backend::Neuron => "neuron",
            Backend::Tpu => "tpu",
            Backend::Cuda(_) => "cuda",
            Backend::Rocm(_) => "rocm",
            Backend::Xpu(_) => "xpu",
            Backend::Cann(_) => "npu",
        }
    }

    /// The minor version the loader ranks variants by (0 for unversioned).
    fn minor(&self) -> u32 {
        match self {
            Backend::Cuda(v) | Backend::Rocm(v) | Backend::Xpu(v) | Backend::Cann(v) => v.minor,
            _ => 0,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Cuda(v) => write!(f, "cu{}{}", v.major, v.minor),
            Backend::Rocm(v) => write!(f, "rocm{}{}", v.major, v.minor),
            Backend::Xpu(v) => write!(f, "xpu{}{}", v.major, v.minor),
            Backend::Cann(v) => write!(f, "cann{}{}", v.major, v.minor),
            other => f.write_str(other.noarch_name()),
        }
    }
}

/// What a variant is built against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framework {
    /// A torch version, with the C++ ABI when the name says (`cxx11` true).
    Torch(Version, Option<bool>),
    /// torch's stable ABI of this version.
    StableAbi(Version),
    /// tvm-ffi of this version.
    TvmFfi(Version),
}

/// A parsed variant directory name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variant {
    /// Built for a framework, backend, CPU and OS.
    Arch {
        /// torch, stable ABI or tvm-ffi.
        framework: Framework,
        /// The compute backend.
        backend: Backend,
        /// `x86_64`, `aarch64`, ….
        cpu: String,
        /// `linux`, `darwin`, `windows`.
        os: String,
    },
    /// `torch-<name>`: pure Python for one backend, or `universal`.
    Noarch(String),
}

fn split_version(digits: &str, major_digits: Option<usize>) -> Option<Version> {
    if digits.len() < 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (major, minor) = digits.split_at(major_digits.unwrap_or(1));
    Some(Version {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
    })
}

impl Variant {
    /// Parses a directory name under `build/`; `None` if the loader would
    /// skip it.
    pub fn parse(name: &str) -> Option<Self> {
        let parts: Vec<&str> = name.split('-').collect();
        let arch = |rest: &[&str], framework: Framework| match rest {
            [backend, cpu, os] => Some(Variant::Arch {
                framework,
                backend: Backend::parse(backend)?,
                cpu: cpu.to_string(),
                os: os.to_string(),
            }),
            _ => None,
        };
        if name.starts_with("torch-stable-abi") {
            let digits = parts.get(2)?.strip_prefix("abi")?;
            return arch(
                parts.get(3..)?,
                Framework::StableAbi(split_version(digits, None)?),
            );
        }
        if parts[0] == "torch" {
            return (parts.len() > 1).then(|| Variant::Noarch(parts[1..].join("-")));
        }
        if let Some(digits) = parts[0].strip_prefix("torch") {
            let version = split_version(digits, None)?;
            return match parts.get(1).copied() {
                Some("cxx11") => arch(&parts[2..], Framework::Torch(version, Some(true))),
                Some("cxx98") => arch(&parts[2..], Framework::Torch(version, Some(false))),
                _ => arch(&parts[1..], Framework::Torch(version, None)),
            };
        }
        if parts[0] == "tvm" {
            let digits = parts.get(1)?.strip_prefix("ffi")?;
            return arch(
                parts.get(2..)?,
                Framework::TvmFfi(split_version(digits, None)?),
            );
        }
        None
    }
}

/// The machine a variant is chosen for: what the loader reads from the
/// running system, written as `torch2.10[-cxx11|-cxx98]-cu128-x86_64-linux`
/// (optionally `+tvm-ffi0.1`), or `cpu-x86_64-linux` for a machine with no
/// torch (only noarch variants fit it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    /// torch's version and whether it uses the C++11 ABI (known on Linux only).
    pub torch: Option<(Version, Option<bool>)>,
    /// tvm-ffi's version, if installed.
    pub tvm_ffi: Option<Version>,
    /// The backend torch was built for.
    pub backend: Backend,
    /// CPU name.
    pub cpu: String,
    /// OS name.
    pub os: String,
}

/// Why a `--target` is not a system description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a target; write `torch<MAJOR>.<MINOR>[-cxx11|-cxx98]-<backend>-<cpu>-<os>[+tvm-ffi<MAJOR>.<MINOR>]`, e.g. `torch2.10-cu128-x86_64-linux`, or `<backend>-<cpu>-<os>` for a machine without torch"
)]
pub struct TargetError(pub String);

fn dotted(text: &str) -> Option<Version> {
    let (major, minor) = text.split_once('.')?;
    Some(Version {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
    })
}

impl std::str::FromStr for System {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || TargetError(text.to_string());
        let (main, tvm) = match text.split_once('+') {
            Some((main, tvm)) => (
                main,
                Some(dotted(tvm.strip_prefix("tvm-ffi").ok_or_else(bad)?).ok_or_else(bad)?),
            ),
            None => (text, None),
        };
        let parts: Vec<&str> = main.split('-').collect();
        let (torch, rest) = match parts.first().and_then(|p| p.strip_prefix("torch")) {
            Some(version) => {
                let version = dotted(version).ok_or_else(bad)?;
                match parts.get(1).copied() {
                    Some("cxx11") => (Some((version, Some(true))), &parts[2..]),
                    Some("cxx98") => (Some((version, Some(false))), &parts[2..]),
                    _ => (Some((version, None)), &parts[1..]),
                }
            }
            None => (None, &parts[..]),
        };
        let [backend, cpu, os] = rest else {
            return Err(bad());
        };
        // torch on Linux is built with the C++11 ABI unless the target says
        // otherwise; elsewhere the loader reports no ABI at all.
        let torch = torch.map(|(version, abi)| {
            let abi = if *os == "linux" {
                abi.or(Some(true))
            } else {
                None
            };
            (version, abi)
        });
        Ok(System {
            torch,
            tvm_ffi: tvm,
            backend: Backend::parse(backend).ok_or_else(bad)?,
            cpu: cpu.to_string(),
            os: os.to_string(),
        })
    }
}

/// The loader's sort key (`_sort_variants`): framework kind (stable ABI 0,
/// torch 1, tvm-ffi and noarch 2), then two framework numbers, then the
/// backend's minor version negated (noarch: 1 for `universal`, else 0).
pub type Rank = (u8, i64, i64, i64);

/// The loader's verdict on one variant for a system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The directory name.
    pub name: String,
    /// `Ok(rank)`: usable, lower ranks preferred; `Err(reason)`: not usable.
    pub fit: Result<Rank, String>,
}

/// Every variant's verdict for `system`, usable ones first in the loader's
/// order of preference (ties broken by name, where Python's order is
/// arbitrary), then the rejected ones by name.
pub fn rank(names: &[String], system: &System) -> Vec<Verdict> {
    let mut verdicts: Vec<Verdict> = names
        .iter()
        .map(|name| Verdict {
            name: name.clone(),
            fit: match Variant::parse(name) {
                None => Err("not a variant name the loader understands".into()),
                Some(variant) => check(&variant, system),
            },
        })
        .collect();
    verdicts.sort_by(|a, b| match (&a.fit, &b.fit) {
        (Ok(x), Ok(y)) => x.cmp(y).then_with(|| a.name.cmp(&b.name)),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.name.cmp(&b.name),
    });
    verdicts
}

/// `_check_variants` and the sort key of `_sort_variants`, for one variant.
fn check(variant: &Variant, system: &System) -> Result<Rank, String> {
    match variant {
        Variant::Noarch(name) => {
            let fits = name == system.backend.noarch_name() || name == "universal";
            if !fits {
                return Err(format!(
                    "a pure-Python variant for `{name}`; the target's backend is `{}`",
                    system.backend.noarch_name()
                ));
            }
            Ok((2, 0, 0, i64::from(name == "universal")))
        }
        Variant::Arch {
            framework,
            backend,
            cpu,
            os,
        } => {
            if *cpu != system.cpu {
                return Err(format!(
                    "built for CPU `{cpu}`, the target has `{}`",
                    system.cpu
                ));
            }
            if *os != system.os {
                return Err(format!("built for `{os}`, the target runs `{}`", system.os));
            }
            let key = match framework {
                Framework::Torch(version, abi) => {
                    let Some((torch, torch_abi)) = system.torch else {
                        return Err("needs torch; the target has none".into());
                    };
                    if *version != torch {
                        return Err(format!("built for torch {version}, the target has {torch}"));
                    }
                    if abi.is_some() && *abi != torch_abi {
                        let name = |abi: Option<bool>| match abi {
                            Some(true) => "the C++11 ABI",
                            Some(false) => "the pre-C++11 ABI",
                            None => "no known C++ ABI",
                        };
                        return Err(format!(
                            "built for {}, the target's torch has {}",
                            name(*abi),
                            name(torch_abi)
                        ));
                    }
                    (1, 0, i64::from(abi.is_some()))
                }
                Framework::StableAbi(version) => {
                    let Some((torch, _)) = system.torch else {
                        return Err("needs torch; the target has none".into());
                    };
                    if *version > torch {
                        return Err(format!(
                            "needs torch ≥ {version} (stable ABI), the target has {torch}"
                        ));
                    }
                    (0, -i64::from(version.major), -i64::from(version.minor))
                }
                Framework::TvmFfi(version) => {
                    if system.tvm_ffi != Some(*version) {
                        return Err(format!(
                            "built for tvm-ffi {version}, the target has {}",
                            system.tvm_ffi.map_or("none".to_string(), |v| v.to_string())
                        ));
                    }
                    (2, 0, 0)
                }
            };
            match (backend, system.backend) {
                (Backend::Cuda(built), Backend::Cuda(device))
                    if built.major != device.major || built.minor > device.minor =>
                {
                    return Err(format!(
                        "built for CUDA {built}, which CUDA {device} cannot load"
                    ));
                }
                (Backend::Cuda(_), Backend::Cuda(_)) => {}
                (built, device) if built.to_string() != device.to_string() => {
                    return Err(format!(
                        "built for `{built}`, the target's backend is `{device}`"
                    ));
                }
                _ => {}
            }
            if *backend == Backend::Metal {
                return Err("Metal variants need macOS 26, which a target cannot state".into());
            }
            // Below the framework keys: the backend's minor, newest first.
            Ok((key.0, key.1, key.2, -i64::from(backend.minor())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(names: &[&str], target: &str) -> Vec<String> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        rank(&names, &target.parse().unwrap())
            .into_iter()
            .filter(|v| v.fit.is_ok())
            .map(|v| v.name)
            .collect()
    }

    const CANDIDATES: [&str; 18] = [
        "torch-stable-abi210-cu126-x86_64-linux",
        "torch-stable-abi211-cu128-x86_64-linux",
        "torch-stable-abi29-cu130-x86_64-linux",
        "torch29-cxx11-cu126-x86_64-linux",
        "torch29-cxx11-cu128-x86_64-linux",
        "torch29-cxx11-cu130-x86_64-linux",
        "torch29-cu129-x86_64-linux",
        "torch29-cxx98-cu128-x86_64-linux",
        "torch28-cxx11-cu128-x86_64-linux",
        "torch29-cxx11-cu128-aarch64-linux",
        "tvm-ffi01-cu128-x86_64-linux",
        "torch29-cxx11-rocm64-x86_64-linux",
        "torch29-cxx11-cpu-x86_64-linux",
        "torch-cuda",
        "torch-cpu",
        "torch-universal",
        "torch-rocm",
        "torch-npu",
    ];

    #[test]
    fn names_parse_like_the_loader() {
        let v = Variant::parse("torch210-cxx11-cu128-x86_64-linux").unwrap();
        assert_eq!(
            v,
            Variant::Arch {
                framework: Framework::Torch(
                    Version {
                        major: 2,
                        minor: 10
                    },
                    Some(true)
                ),
                backend: Backend::Cuda(Version {
                    major: 12,
                    minor: 8
                }),
                cpu: "x86_64".into(),
                os: "linux".into()
            }
        );
        assert_eq!(
            Backend::parse("cu1210"),
            Some(Backend::Cuda(Version {
                major: 121,
                minor: 0
            }))
        );
        assert_eq!(
            Backend::parse("xpu20253"),
            Some(Backend::Xpu(Version {
                major: 2025,
                minor: 3
            }))
        );
        assert_eq!(
            Variant::parse("torch-universal"),
            Some(Variant::Noarch("universal".into()))
        );
        for bad in [
            "torch29-cu128-x86_64",
            "torch2-cu128-x86_64-linux",
            "torch-stable-abi3-cu128-x86_64-linux",
            "CU128",
            "build",
        ] {
            assert_eq!(Variant::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_loaders_worked_examples() {
        // Each expectation was produced by kernels 0.17.2's own resolver.
        assert_eq!(
            accepted(&CANDIDATES, "torch2.9-cxx11-cu128-x86_64-linux"),
            [
                "torch29-cxx11-cu128-x86_64-linux",
                "torch29-cxx11-cu126-x86_64-linux",
                "torch-cuda",
                "torch-universal"
            ]
        );
        assert_eq!(
            accepted(&CANDIDATES, "torch2.11-cu129-x86_64-linux+tvm-ffi0.1"),
            [
                "torch-stable-abi211-cu128-x86_64-linux",
                "torch-stable-abi210-cu126-x86_64-linux",
                "tvm-ffi01-cu128-x86_64-linux",
                "torch-cuda",
                "torch-universal"
            ]
        );
        assert_eq!(
            accepted(&CANDIDATES, "torch2.9-cpu-x86_64-linux"),
            [
                "torch29-cxx11-cpu-x86_64-linux",
                "torch-cpu",
                "torch-universal"
            ]
        );
        assert_eq!(
            accepted(&CANDIDATES, "torch2.9-rocm64-x86_64-linux"),
            [
                "torch29-cxx11-rocm64-x86_64-linux",
                "torch-rocm",
                "torch-universal"
            ]
        );
        assert_eq!(
            accepted(&CANDIDATES, "cpu-x86_64-linux"),
            ["torch-cpu", "torch-universal"]
        );
        assert_eq!(
            accepted(&CANDIDATES, "cann82-x86_64-linux"),
            ["torch-npu", "torch-universal"]
        );
    }

    #[test]
    fn untagged_beats_a_higher_cuda_minor_and_reasons_are_given() {
        let names = [
            "torch29-cu126-x86_64-linux",
            "torch29-cxx11-cu128-x86_64-linux",
        ];
        assert_eq!(accepted(&names, "torch2.9-cu128-x86_64-linux"), names);
        let names: Vec<String> = CANDIDATES.iter().map(|n| n.to_string()).collect();
        let verdicts = rank(
            &names,
            &"torch2.9-cxx11-cu128-x86_64-linux".parse().unwrap(),
        );
        let reason = |name: &str| {
            verdicts
                .iter()
                .find(|v| v.name == name)
                .unwrap()
                .fit
                .clone()
                .unwrap_err()
        };
        assert!(reason("torch29-cxx11-cu130-x86_64-linux").contains("CUDA 13.0"));
        assert!(reason("torch28-cxx11-cu128-x86_64-linux").contains("torch 2.8"));
        assert!(reason("torch29-cxx98-cu128-x86_64-linux").contains("pre-C++11"));
        assert!(reason("torch29-cxx11-cu128-aarch64-linux").contains("aarch64"));
        assert!(
            "torch2.9-cu128"
                .parse::<System>()
                .unwrap_err()
                .to_string()
                .contains("e.g.")
        );
    }
}
