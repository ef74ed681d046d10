//! `kernels.lock` and `kernels.toml`. The first byte picks the parser (even:
//! lock, odd: project) so each corpus entry is one file; both strictnesses
//! are read. A complete lock must survive its own canonical form unchanged.
#![no_main]

use std::path::Path;

use kernelhub_manifest::{Diagnostic, Lockfile, ProjectManifest, Strictness};
use libfuzzer_sys::fuzz_target;

fn render(diagnostics: &[Diagnostic], text: &str) {
    for d in diagnostics {
        let _ = d.render(Some(text));
        let _ = d.to_json(Some(text));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    for strictness in [Strictness::Check, Strictness::Load] {
        if which % 2 == 0 {
            let file = Path::new("kernels.lock");
            let parsed = Lockfile::parse(text, file, strictness);
            render(&parsed.diagnostics, text);
            if let Some(lock) = parsed.value.filter(|_| parsed.complete) {
                let written = lock.to_toml();
                let again = Lockfile::parse(&written, file, Strictness::Check);
                assert!(
                    again.complete,
                    "the canonical form of a valid lock does not read back:\n{written}\n{:?}",
                    again.diagnostics
                );
                assert_eq!(again.value.as_ref(), Some(&lock), "\n{written}");
                assert_eq!(again.value.unwrap().to_toml(), written);
            }
        } else {
            let file = Path::new("kernels.toml");
            let parsed = ProjectManifest::parse(text, file, strictness);
            render(&parsed.diagnostics, text);
        }
    }
});
