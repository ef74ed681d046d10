//! WGSL introspection (through naga): parse, validate, capabilities, entry
//! points and their bindings.
#![no_main]

use kernelhub_manifest::introspect::wgsl::{WgslCapabilities, WgslModule};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let module = match WgslModule::parse(text) {
        Ok(module) => module,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    for f16 in [false, true] {
        for subgroups in [false, true] {
            let _ = module.check_capabilities(WgslCapabilities { f16, subgroups });
        }
    }
    let _ = module.uses_f16();
    for name in module.entry_point_names() {
        let entry = module.entry_point(name).expect("a listed entry point");
        let _ = format!("{entry:?}");
    }
});
