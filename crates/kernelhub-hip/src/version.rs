//! HIP's version numbers: one `int` from `hipRuntimeGetVersion` and
//! `hipDriverGetVersion`, shown as `5.2.21153`.
//!
//! HIP packs `HIP_VERSION = major * 10_000_000 + minor * 100_000 + patch`
//! (`hip/hip_version.h`); Debian 12's runtime returns 50221153, HIP 5.2 with
//! build 21153. The backend compares the major version to pick a
//! device-properties layout, and manifests state minimum runtime versions in
//! the dotted form, so both directions live here.

use std::fmt;
use std::str::FromStr;

/// A HIP runtime or driver version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HipVersion {
    raw: i32,
}

/// Why a dotted version string is not a HIP version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a HIP version: {reason}")]
pub struct VersionError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl HipVersion {
    const MAJOR: i32 = 10_000_000;
    const MINOR: i32 = 100_000;

    /// The version as the runtime reports it.
    pub const fn from_raw(raw: i32) -> Self {
        Self { raw }
    }

    /// The packed `int`, e.g. 50221153.
    pub const fn raw(self) -> i32 {
        self.raw
    }

    /// `5` in 5.2.21153.
    pub const fn major(self) -> i32 {
        self.raw / Self::MAJOR
    }

    /// `2` in 5.2.21153.
    pub const fn minor(self) -> i32 {
        (self.raw % Self::MAJOR) / Self::MINOR
    }

    /// `21153` in 5.2.21153: HIP's build number.
    pub const fn patch(self) -> i32 {
        self.raw % Self::MINOR
    }
}

impl fmt::Display for HipVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major(), self.minor(), self.patch())
    }
}

impl FromStr for HipVersion {
    type Err = VersionError;

    /// Parses `major.minor` or `major.minor.patch`, e.g. `6.0` or `5.2.21153`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason| VersionError {
            text: text.to_string(),
            reason,
        };
        let mut numbers = [0i32; 3];
        let mut count = 0;
        for part in text.split('.') {
            if count == 3 {
                return Err(error("expected at most three numbers, `major.minor.patch`"));
            }
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(error(
                    "expected numbers separated by dots, e.g. `5.2.21153`",
                ));
            }
            numbers[count] = part.parse().map_err(|_| error("a number is too large"))?;
            count += 1;
        }
        if count < 2 {
            return Err(error("expected at least `major.minor`, e.g. `6.0`"));
        }
        let [major, minor, patch] = numbers;
        if minor >= 100 {
            return Err(error("the minor version must be below 100"));
        }
        if patch >= Self::MINOR {
            return Err(error("the patch number must be below 100000"));
        }
        major
            .checked_mul(Self::MAJOR)
            .and_then(|raw| raw.checked_add(minor * Self::MINOR + patch))
            .map(Self::from_raw)
            .ok_or_else(|| error("the major version is too large"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_runtime_version_displays_dotted() {
        let version = HipVersion::from_raw(50_221_153);
        assert_eq!(
            (version.major(), version.minor(), version.patch()),
            (5, 2, 21153)
        );
        assert_eq!(version.to_string(), "5.2.21153");
    }

    #[test]
    fn hip_6_and_7_versions() {
        assert_eq!(HipVersion::from_raw(60_032_830).to_string(), "6.0.32830");
        assert_eq!(HipVersion::from_raw(60_443_484).to_string(), "6.4.43484");
        assert_eq!(HipVersion::from_raw(70_051_831).major(), 7);
        assert_eq!(HipVersion::from_raw(0).to_string(), "0.0.0");
    }

    #[test]
    fn parse_round_trips_and_orders() {
        for raw in [50_221_153, 60_032_830, 70_000_000, 1] {
            let version = HipVersion::from_raw(raw);
            assert_eq!(version.to_string().parse::<HipVersion>(), Ok(version));
        }
        assert_eq!("6.0".parse::<HipVersion>().unwrap().raw(), 60_000_000);
        assert!("5.2.21153".parse::<HipVersion>().unwrap() < "6.0".parse().unwrap());
    }

    #[test]
    fn parse_rejects_what_hip_cannot_pack() {
        for bad in [
            "",
            "6",
            "6.",
            "a.b",
            "6.0.1.2",
            "6.100",
            "6.0.100000",
            "300.0",
            "-1.0",
        ] {
            assert!(bad.parse::<HipVersion>().is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            "6".parse::<HipVersion>().unwrap_err().to_string(),
            "`6` is not a HIP version: expected at least `major.minor`, e.g. `6.0`"
        );
    }
}
