//! cubin / hsaco (ELF) introspection: header, flags, symbol tables, the
//! AMD code object's msgpack metadata (kernel argument lists) and a cubin's
//! parameter tables; and the fatbin container that holds cubins.
#![no_main]

use kernelhub_manifest::introspect::cubin;
use kernelhub_manifest::introspect::elf::{amdgpu_kernels, parse_elf};
use kernelhub_manifest::introspect::fatbin::parse_fatbin;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_fatbin(data) {
        Ok(entries) => {
            for entry in &entries {
                // Every payload lies inside the input; a cubin in it is read as one.
                let payload = &data[entry.payload.clone()];
                let _ = parse_elf(payload);
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
    if let Ok(Some(kernels)) = amdgpu_kernels(data) {
        for kernel in kernels.iter().take(8) {
            let _ = format!("{kernel:?}");
        }
    }
    match parse_elf(data) {
        Ok(info) => {
            let _ = info.target_id();
            let _ = info.vendor.to_string();
            let cubin = cubin::Cubin::parse(data);
            for symbol in info.symbols.iter().take(8) {
                assert!(info.has_symbol(symbol));
                let _ = info.has_kernel_descriptor(symbol);
                if let Ok(Err(error)) = cubin.as_ref().map(|c| c.kernel_params(symbol)) {
                    let _ = error.to_string();
                }
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
