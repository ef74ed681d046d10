//! `kernel.toml`: reading (both strictnesses), the cross-field rules of
//! `validate`, diagnostic rendering, and artifact selection.
#![no_main]

use std::path::Path;
use std::str::FromStr;

use kernelhub_manifest::kernel::ManifestParts;
use kernelhub_manifest::select::{Platform, select};
use kernelhub_manifest::validate::validate;
use kernelhub_manifest::{Diagnostic, KernelManifest, Strictness};
use libfuzzer_sys::fuzz_target;

const PLATFORMS: &[&str] = &[
    "cuda:sm_80",
    "cuda:sm_90a",
    "rocm:gfx942",
    "rocm:gfx90a",
    "wgpu",
];

fn render(diagnostics: &[Diagnostic], text: &str) {
    for d in diagnostics {
        let _ = d.render(Some(text));
    }
    // The JSON form shares the position code; a few are enough.
    for d in diagnostics.iter().take(4) {
        let _ = d.to_json(Some(text));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("kernel.toml");
    for strictness in [Strictness::Check, Strictness::Load] {
        // What `kernelhub check` reads: every part it can, then the rules.
        let parts = ManifestParts::parse(text, file, strictness);
        render(&parts.diagnostics, text);
        if let Some(parts) = &parts.value {
            let problems = validate(&parts.ops, &parts.artifacts, file, false);
            render(&problems, text);
        }

        // What loading reads: all or nothing, with the same diagnostics.
        let parsed = KernelManifest::parse(text, file, strictness);
        assert_eq!(parsed.diagnostics, parts.diagnostics);
        assert_eq!(parsed.complete, parsed.value.is_some());
        if let Some(manifest) = &parsed.value {
            let problems = validate(&manifest.ops, &manifest.artifacts, file, parsed.complete);
            render(&problems, text);
            for platform in PLATFORMS {
                let platform = Platform::from_str(platform).expect("a valid platform");
                let selection = select(manifest, &platform);
                for &i in &selection.chosen {
                    assert!(i < manifest.artifacts.len(), "selected a missing artifact");
                }
            }
        }
    }
});
