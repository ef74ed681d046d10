//! The two ways a HIP call fails: the runtime is not there
//! ([`LibraryError`]), or a call returned an error code ([`HipError`]).
//!
//! Kept apart so the library is looked for once, up front, and every later
//! call has one error type that carries the runtime's own name and text for
//! the code. [`codes`] names the codes the backend acts on.

/// The HIP runtime could not be opened, or lacks a call kernelhub needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LibraryError {
    /// No candidate file could be opened.
    #[error(
        "Cannot open the HIP runtime: tried {}{}; install ROCm, or on Debian and Ubuntu `apt install libamdhip64-5`",
        tried(attempts),
        unusual_reasons(attempts)
    )]
    NotFound {
        /// Each file name tried, with the dynamic loader's reason.
        attempts: Vec<(String, String)>,
    },
    /// The library opened but a required symbol is missing (not a HIP
    /// runtime, or one too old).
    #[error("`{library}` has no symbol `{symbol}`, so it is not a usable HIP runtime: {message}")]
    MissingSymbol {
        /// The library's file name or path.
        library: String,
        /// The symbol looked for.
        symbol: &'static str,
        /// The dynamic loader's reason.
        message: String,
    },
    /// The library exports neither `hipGetDevicePropertiesR0600` nor
    /// `hipGetDeviceProperties`, so a device's architecture cannot be read.
    #[error(
        "`{library}` exports neither `hipGetDevicePropertiesR0600` nor `hipGetDeviceProperties`, so it is not a usable HIP runtime"
    )]
    NoDeviceProperties {
        /// The library's file name or path.
        library: String,
    },
}

impl LibraryError {
    /// Whether the runtime is simply not installed: every candidate failed
    /// because no file of that name was found. `false` for a library that
    /// exists but cannot be loaded (a missing dependency, a corrupt file) or
    /// lacks a symbol: a broken install, not an absent one.
    pub fn is_absent(&self) -> bool {
        match self {
            Self::NotFound { attempts } => attempts
                .iter()
                .all(|(name, reason)| is_plain_absence(name, reason)),
            Self::MissingSymbol { .. } | Self::NoDeviceProperties { .. } => false,
        }
    }
}

/// Whether the loader's `reason` for `name` says only that no such file exists.
fn is_plain_absence(name: &str, reason: &str) -> bool {
    reason.starts_with(&format!("{name}: cannot open shared object file"))
}

fn tried(attempts: &[(String, String)]) -> String {
    let names: Vec<String> = attempts
        .iter()
        .map(|(name, _)| format!("`{name}`"))
        .collect();
    names.join(", ")
}

/// The loader's reasons, for the candidates that failed for some other
/// reason than their own absence (which the list of names already says):
/// a missing dependency such as `libhsa-runtime64.so.1`, a wrong ELF class.
fn unusual_reasons(attempts: &[(String, String)]) -> String {
    let reasons: Vec<&str> = attempts
        .iter()
        .filter(|(name, reason)| !is_plain_absence(name, reason))
        .map(|(_, reason)| reason.as_str())
        .collect();
    if reasons.is_empty() {
        String::new()
    } else {
        format!(" ({})", reasons.join("; "))
    }
}

/// A HIP call returned something other than `hipSuccess`.
///
/// Displays as "`hipModuleLoadData` failed: hipErrorNoBinaryForGpu (...)",
/// with the runtime's own description in parentheses where it differs from
/// the name (HIP 5 returns the name for both).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{call}` failed: {name}{}", detail(*code, name, message))]
pub struct HipError {
    /// The C function that failed, e.g. `hipModuleLoadData`.
    pub call: &'static str,
    /// The `hipError_t` it returned; compare with [`codes`].
    pub code: i32,
    /// `hipGetErrorName(code)`, e.g. `hipErrorNoBinaryForGpu`.
    pub name: String,
    /// `hipGetErrorString(code)`.
    pub message: String,
}

fn detail(code: i32, name: &str, message: &str) -> String {
    if message.is_empty() || message == name {
        format!(" (error {code})")
    } else {
        format!(" ({message})")
    }
}

impl HipError {
    /// Whether the call failed with `code` (one of [`codes`]).
    pub fn is(&self, code: i32) -> bool {
        self.code == code
    }
}

/// `hipError_t` values the backend recognises, from ROCm's
/// `hip_runtime_api.h`. Each was checked by compiling against Debian 12's
/// `libamdhip64-dev` 5.2.3 header; they are unchanged in HIP 6 and 7.
pub mod codes {
    /// `hipSuccess`.
    pub const SUCCESS: i32 = 0;
    /// `hipErrorInvalidValue`: a NULL or out-of-range argument.
    pub const INVALID_VALUE: i32 = 1;
    /// `hipErrorOutOfMemory` (also `hipErrorMemoryAllocation`).
    pub const OUT_OF_MEMORY: i32 = 2;
    /// `hipErrorNotInitialized` (also `hipErrorInitializationError`).
    pub const NOT_INITIALIZED: i32 = 3;
    /// `hipErrorInvalidConfiguration`: bad launch geometry.
    pub const INVALID_CONFIGURATION: i32 = 9;
    /// `hipErrorInsufficientDriver`: the kernel driver is older than the runtime.
    pub const INSUFFICIENT_DRIVER: i32 = 35;
    /// `hipErrorInvalidDeviceFunction`.
    pub const INVALID_DEVICE_FUNCTION: i32 = 98;
    /// `hipErrorNoDevice`: `hipGetDeviceCount` found no GPU.
    pub const NO_DEVICE: i32 = 100;
    /// `hipErrorInvalidDevice`: the ordinal is out of range. HIP 5.2's
    /// `hipInit` also returns it where there is no GPU.
    pub const INVALID_DEVICE: i32 = 101;
    /// `hipErrorInvalidImage`: the code object is malformed.
    pub const INVALID_IMAGE: i32 = 200;
    /// `hipErrorInvalidContext`.
    pub const INVALID_CONTEXT: i32 = 201;
    /// `hipErrorNoBinaryForGpu`: the code object has no code for this GPU.
    pub const NO_BINARY_FOR_GPU: i32 = 209;
    /// `hipErrorInvalidKernelFile`.
    pub const INVALID_KERNEL_FILE: i32 = 218;
    /// `hipErrorSharedObjectSymbolNotFound`.
    pub const SHARED_OBJECT_SYMBOL_NOT_FOUND: i32 = 302;
    /// `hipErrorSharedObjectInitFailed`: the code object could not be loaded.
    pub const SHARED_OBJECT_INIT_FAILED: i32 = 303;
    /// `hipErrorInvalidHandle` (also `hipErrorInvalidResourceHandle`).
    pub const INVALID_HANDLE: i32 = 400;
    /// `hipErrorNotFound`: e.g. no kernel of that name in the module.
    pub const NOT_FOUND: i32 = 500;
    /// `hipErrorNotReady`: queued work has not finished (not a failure).
    pub const NOT_READY: i32 = 600;
    /// `hipErrorIllegalAddress`: a kernel touched memory it does not own.
    pub const ILLEGAL_ADDRESS: i32 = 700;
    /// `hipErrorLaunchOutOfResources`.
    pub const LAUNCH_OUT_OF_RESOURCES: i32 = 701;
    /// `hipErrorLaunchTimeOut`.
    pub const LAUNCH_TIME_OUT: i32 = 702;
    /// `hipErrorLaunchFailure`: an exception on the device during a kernel.
    pub const LAUNCH_FAILURE: i32 = 719;
    /// `hipErrorNotSupported`.
    pub const NOT_SUPPORTED: i32 = 801;
    /// `hipErrorUnknown`.
    pub const UNKNOWN: i32 = 999;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hip_error_shows_the_runtime_text_when_it_differs_from_the_name() {
        let error = HipError {
            call: "hipModuleLoadData",
            code: codes::NO_BINARY_FOR_GPU,
            name: "hipErrorNoBinaryForGpu".into(),
            message: "no kernel image is available for execution on the device".into(),
        };
        assert_eq!(
            error.to_string(),
            "`hipModuleLoadData` failed: hipErrorNoBinaryForGpu (no kernel image is available for execution on the device)"
        );
        assert!(error.is(209));
    }

    #[test]
    fn hip_error_shows_the_code_when_the_text_is_the_name() {
        let error = HipError {
            call: "hipGetDeviceCount",
            code: codes::NO_DEVICE,
            name: "hipErrorNoDevice".into(),
            message: "hipErrorNoDevice".into(),
        };
        assert_eq!(
            error.to_string(),
            "`hipGetDeviceCount` failed: hipErrorNoDevice (error 100)"
        );
    }

    #[test]
    fn missing_library_names_every_candidate_and_the_package() {
        let error = LibraryError::NotFound {
            attempts: vec![
                (
                    "libamdhip64.so".into(),
                    "libamdhip64.so: cannot open shared object file: No such file or directory"
                        .into(),
                ),
                (
                    "libamdhip64.so.5".into(),
                    "libamdhip64.so.5: cannot open shared object file: No such file or directory"
                        .into(),
                ),
            ],
        };
        assert_eq!(
            error.to_string(),
            "Cannot open the HIP runtime: tried `libamdhip64.so`, `libamdhip64.so.5`; install ROCm, or on Debian and Ubuntu `apt install libamdhip64-5`"
        );
        assert!(error.is_absent());
    }

    #[test]
    fn missing_library_keeps_the_reason_of_a_candidate_that_exists() {
        let missing_dependency =
            "libhsa-runtime64.so.1: cannot open shared object file: No such file or directory";
        let error = LibraryError::NotFound {
            attempts: vec![
                (
                    "libamdhip64.so".into(),
                    "libamdhip64.so: cannot open shared object file: No such file or directory"
                        .into(),
                ),
                ("libamdhip64.so.5".into(), missing_dependency.into()),
            ],
        };
        assert!(
            error
                .to_string()
                .contains(&format!("`libamdhip64.so.5` ({missing_dependency});")),
            "{error}"
        );
        assert!(
            !error.is_absent(),
            "a library that is there but broken is not absent"
        );
    }
}
