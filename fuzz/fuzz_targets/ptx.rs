//! PTX header introspection (`.version`, `.target`, `.address_size`,
//! `.entry`), as `kernelhub check` runs it on artifacts.
#![no_main]

use kernelhub_manifest::introspect::ptx::{min_driver_for_ptx, parse_ptx};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_ptx(data) {
        Ok(info) => {
            let _ = min_driver_for_ptx(info.version);
            assert!(info.version_line >= 1 && info.target_line >= 1);
            let _ = format!("{info:?}");
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
