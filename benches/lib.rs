//! Inputs shared by the benchmarks: a large, valid manifest built in code so
//! the benchmark measures parsing and validation, not file I/O.

use std::fmt::Write as _;

/// A valid `kernel.toml` with `ops` ops in `dtypes` dtypes (1 to 3) and
/// `artifacts` PTX artifacts, each implementing every op in every dtype.
pub fn large_manifest(ops: usize, dtypes: usize, artifacts: usize) -> String {
    let dtypes = &["f32", "f16", "bf16"][..dtypes.clamp(1, 3)];
    let dtype_list = dtypes
        .iter()
        .map(|d| format!("\"{d}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut text = String::from(
        "schema = 1\n\n[kernel]\nname = \"bench\"\nversion = \"1.0.0\"\nlicense = \"Apache-2.0\"\n",
    );
    for op in 0..ops {
        let _ = write!(
            text,
            "\n[ops.op_{op}]\ndtypes = [{dtype_list}]\nparams = [\n  {{ name = \"out\", tensor = \"T\", shape = [\"tokens\", \"d\"], written = true }},\n  {{ name = \"input\", tensor = \"T\", shape = [\"tokens\", \"2 * d\"] }},\n  {{ name = \"tokens\", scalar = \"u32\" }},\n  {{ name = \"d\", scalar = \"u32\" }},\n]\n"
        );
    }
    for artifact in 0..artifacts {
        let sm = [70, 75, 80, 86, 89, 90][artifact % 6];
        let _ = write!(
            text,
            "\n[[artifacts]]\nbackend = \"cuda\"\nformat = \"ptx\"\ntargets = [\"sm_{sm}\"]\nmin_driver = \"11.0\"\npath = \"build/a{artifact}.ptx\"\nsize = {}\nsha256 = \"{:064x}\"\n",
            1000 + artifact,
            artifact
        );
        for op in 0..ops {
            for dtype in dtypes {
                let _ = write!(
                    text,
                    "\n[[artifacts.entries]]\nop = \"op_{op}\"\ndtype = \"{dtype}\"\nsymbol = \"op_{op}_{dtype}\"\ngrid = [\"ceil_div(tokens * d, 256)\"]\nblock = [256]\n"
                );
            }
        }
    }
    text
}
