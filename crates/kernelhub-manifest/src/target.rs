//! GPU architecture names as manifests write them: `sm_80`, `sm_90a`, `gfx90a:xnack-`.
//!
//! Parsed once here so every later stage (check, variant selection, fetch
//! `--target`) compares structured values, not strings.

use std::fmt;
use std::str::FromStr;

/// A GPU architecture an artifact is built for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// An NVIDIA streaming-multiprocessor version.
    Cuda(CudaArch),
    /// An AMD GCN/CDNA/RDNA processor.
    Rocm(AmdArch),
}

/// `sm_XY` with an optional `a` (arch-specific) or `f` (family) suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CudaArch {
    /// Compute capability major version (`9` in `sm_90a`).
    pub major: u32,
    /// Compute capability minor version (`0` in `sm_90a`).
    pub minor: u32,
    /// `Some('a')` or `Some('f')` for the suffixed variants.
    pub suffix: Option<char>,
}

/// `gfxNNN` plus target features such as `xnack-` or `sramecc+`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AmdArch {
    /// The processor, e.g. `gfx90a`.
    pub processor: String,
    /// Features that must be on (`true`) or off (`false`), e.g. `("xnack", false)`.
    pub features: Vec<(String, bool)>,
}

/// Why a target name is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not a valid {backend} target: {reason}")]
pub struct TargetError {
    /// The name as written.
    pub name: String,
    /// `CUDA` or `ROCm`.
    pub backend: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FromStr for CudaArch {
    type Err = TargetError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let error = |reason| TargetError {
            name: name.to_string(),
            backend: "CUDA",
            reason,
        };
        let rest = name
            .strip_prefix("sm_")
            .ok_or_else(|| error("CUDA targets are written `sm_XY` (e.g. `sm_80`, `sm_90a`)"))?;
        let (digits, suffix) = match rest.strip_suffix(['a', 'f']) {
            Some(digits) => (digits, rest.chars().last()),
            None => (rest, None),
        };
        if !(2..=3).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error(
                "expected two or three digits after `sm_`, then optionally `a` or `f`",
            ));
        }
        let number: u32 = digits.parse().map_err(|_| error("not a number"))?;
        let (major, minor) = (number / 10, number % 10);
        if major < 2 {
            return Err(error("compute capabilities start at 2.0"));
        }
        Ok(Self {
            major,
            minor,
            suffix,
        })
    }
}

impl CudaArch {
    /// The architecture's number, `major * 10 + minor` (`90` for `sm_90a`).
    pub fn number(self) -> u32 {
        self.major * 10 + self.minor
    }
}

impl fmt::Display for CudaArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sm_{}{}", self.major, self.minor)?;
        if let Some(suffix) = self.suffix {
            write!(f, "{suffix}")?;
        }
        Ok(())
    }
}

impl FromStr for AmdArch {
    type Err = TargetError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let error = |reason| TargetError {
            name: name.to_string(),
            backend: "ROCm",
            reason,
        };
        let mut parts = name.split(':');
        let processor = parts.next().unwrap_or_default();
        let version = processor.strip_prefix("gfx").ok_or_else(|| {
            error("ROCm targets are written `gfxNNN` (e.g. `gfx90a`, `gfx942:xnack-`)")
        })?;
        let valid_version = (3..=4).contains(&version.len())
            && version.bytes().next().is_some_and(|b| b.is_ascii_digit())
            && version
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid_version {
            return Err(error(
                "expected three or four digits after `gfx`, the last may be a-f",
            ));
        }
        let mut features: Vec<(String, bool)> = Vec::new();
        for feature in parts {
            let (feature_name, on) = match feature.strip_suffix('+') {
                Some(n) => (n, true),
                None => match feature.strip_suffix('-') {
                    Some(n) => (n, false),
                    None => return Err(error("a feature ends in `+` or `-`, e.g. `xnack-`")),
                },
            };
            if !matches!(feature_name, "xnack" | "sramecc") {
                return Err(error("the known features are `xnack` and `sramecc`"));
            }
            if features.iter().any(|(n, _)| n == feature_name) {
                return Err(error("a feature is named twice"));
            }
            features.push((feature_name.to_string(), on));
        }
        Ok(Self {
            processor: processor.to_string(),
            features,
        })
    }
}

impl fmt::Display for AmdArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.processor)?;
        for (name, on) in &self.features {
            write!(f, ":{name}{}", if *on { '+' } else { '-' })?;
        }
        Ok(())
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Cuda(arch) => arch.fmt(f),
            Target::Rocm(arch) => arch.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_names() {
        let arch: CudaArch = "sm_90a".parse().unwrap();
        assert_eq!((arch.major, arch.minor, arch.suffix), (9, 0, Some('a')));
        assert_eq!(
            "sm_120f".parse::<CudaArch>().unwrap().to_string(),
            "sm_120f"
        );
        assert_eq!("sm_80".parse::<CudaArch>().unwrap().to_string(), "sm_80");
        for bad in [
            "sm80",
            "sm_8",
            "sm_80b",
            "compute_80",
            "sm_1234",
            "sm_",
            "sm_10",
        ] {
            assert!(bad.parse::<CudaArch>().is_err(), "{bad}");
        }
    }

    #[test]
    fn amd_names() {
        let arch: AmdArch = "gfx90a:sramecc+:xnack-".parse().unwrap();
        assert_eq!(arch.processor, "gfx90a");
        assert_eq!(
            arch.features,
            vec![("sramecc".into(), true), ("xnack".into(), false)]
        );
        assert_eq!(arch.to_string(), "gfx90a:sramecc+:xnack-");
        for good in ["gfx942", "gfx1100", "gfx1030", "gfx950", "gfx1201"] {
            assert!(good.parse::<AmdArch>().is_ok(), "{good}");
        }
        for bad in [
            "gfx",
            "gfx9",
            "gfx90A",
            "gfx90a:xnack",
            "gfx90a:foo+",
            "sm_80",
            "gfx90a:xnack+:xnack-",
            "gfxa00",
        ] {
            assert!(bad.parse::<AmdArch>().is_err(), "{bad}");
        }
    }
}
