//! The probe against the real HIP runtime: Debian 12's `libamdhip64-5`
//! (HIP 5.2) on a machine with no AMD GPU, the situation CI is in.
//!
//! The runtime is a real one, so this pins what kernelhub sees at the
//! driver boundary: versions readable, `hipErrorNoDevice` turned into zero
//! devices, errors carrying HIP's own names. Without the library the tests
//! skip with a note, unless `CI` is set: there, `scripts/test.sh` installs
//! `libamdhip64-5`, so an absent library is a failure.

use kernelhub_hip::{Hip, LibraryError, ProbeError, codes, probe};

/// The runtime, or `None` (with a note) where it is not installed and `CI`
/// is unset. A library that is there but broken always fails.
#[allow(clippy::print_stderr)]
fn runtime_or_skip() -> Option<Hip> {
    match Hip::load() {
        Ok(hip) => Some(hip),
        Err(error) if error.is_absent() && std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {error} (set CI=1 to make this a failure)");
            None
        }
        Err(error) => panic!("the HIP runtime must be installed and usable here: {error}"),
    }
}

#[test]
fn probe_without_a_gpu_reports_versions_and_no_devices() {
    let Some(_) = runtime_or_skip() else { return };
    let platform = probe().expect("probe with the runtime installed");
    assert!(
        platform.runtime_version.major() >= 5,
        "runtime {}",
        platform.runtime_version
    );
    assert!(
        platform.driver_version.major() >= 5,
        "driver {}",
        platform.driver_version
    );
    assert!(
        platform.library.starts_with("libamdhip64.so"),
        "{}",
        platform.library
    );
    assert_eq!(
        platform.devices,
        vec![],
        "this test expects a machine without an AMD GPU"
    );
    // The dotted form is what messages show.
    let shown = platform.runtime_version.to_string();
    assert_eq!(shown.split('.').count(), 3, "{shown}");
    assert_eq!(shown.parse(), Ok(platform.runtime_version));
}

#[test]
fn device_count_without_a_gpu_is_hip_error_no_device_with_its_name() {
    let Some(hip) = runtime_or_skip() else { return };
    let error = hip.device_count().expect_err("no AMD GPU here");
    assert!(error.is(codes::NO_DEVICE), "{error:?}");
    assert_eq!(error.name, "hipErrorNoDevice");
    assert!(
        error
            .to_string()
            .starts_with("`hipGetDeviceCount` failed: hipErrorNoDevice"),
        "{error}"
    );
}

#[test]
fn error_names_come_from_the_runtime() {
    let Some(hip) = runtime_or_skip() else { return };
    for (code, name) in [
        (codes::SUCCESS, "hipSuccess"),
        (codes::NO_BINARY_FOR_GPU, "hipErrorNoBinaryForGpu"),
        (codes::INVALID_IMAGE, "hipErrorInvalidImage"),
        (
            codes::SHARED_OBJECT_INIT_FAILED,
            "hipErrorSharedObjectInitFailed",
        ),
        (codes::NOT_FOUND, "hipErrorNotFound"),
        (codes::INVALID_DEVICE, "hipErrorInvalidDevice"),
        (codes::LAUNCH_FAILURE, "hipErrorLaunchFailure"),
    ] {
        assert_eq!(hip.error("hipTest", code).name, name, "code {code}");
    }
}

#[test]
fn calls_on_a_missing_device_fail_with_an_error_not_a_crash() {
    let Some(hip) = runtime_or_skip() else { return };
    assert!(hip.device_properties(0).is_err());
    assert!(hip.device_total_mem(0).is_err());
    assert!(hip.set_device(0).is_err());
}

#[test]
fn hip_5_fills_device_properties_through_the_unversioned_symbol() {
    let Some(hip) = runtime_or_skip() else { return };
    let runtime = hip.runtime_version().unwrap();
    let layout = hip.properties_layout().unwrap();
    if runtime.major() < 6 {
        assert_eq!(layout, kernelhub_hip::PropertiesLayout::R0000);
        assert!(hip.sys().hipGetDevicePropertiesR0600.is_none());
    } else {
        assert_eq!(layout, kernelhub_hip::PropertiesLayout::R0600);
    }
}

#[test]
fn a_library_that_is_not_there_is_an_error_naming_it() {
    let error = match kernelhub_hip::sys::HipLib::open("libamdhip64-does-not-exist.so") {
        Err(error) => error,
        Ok(_) => panic!("opened a library that does not exist"),
    };
    assert!(matches!(error, LibraryError::NotFound { .. }));
    assert!(error.is_absent(), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("`libamdhip64-does-not-exist.so`"),
        "{message}"
    );
    assert!(message.contains("apt install libamdhip64-5"), "{message}");
    // Through the probe's error type it reads the same.
    assert_eq!(ProbeError::from(error).to_string(), message);
}

#[test]
fn a_library_without_the_hip_symbols_is_an_error_naming_the_symbol() {
    // libc opens fine but is no HIP runtime.
    let error = match kernelhub_hip::sys::HipLib::open("libc.so.6") {
        Err(error) => error,
        Ok(_) => panic!("libc passed for a HIP runtime"),
    };
    assert!(
        matches!(
            error,
            LibraryError::MissingSymbol {
                symbol: "hipInit",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("`libc.so.6` has no symbol `hipInit`"),
        "{error}"
    );
}

/// `open` on a machine whose HIP runtime sees no GPU names the ordinal and
/// the count instead of failing in a call it never made.
#[test]
fn opening_a_gpu_that_is_not_there_says_so() {
    let Some(_) = runtime_or_skip() else { return };
    let error = match kernelhub_hip::open(0) {
        Ok(_) => return, // a machine with an AMD GPU: nothing to check here
        Err(error) => error.to_string(),
    };
    assert_eq!(error, "there is no AMD GPU #0; HIP sees 0");
}
