//! One test per diagnostic: each breaks the good repo in one way and asserts
//! the exact code, file and line `check` reports.

use kernelhub_tests::Repo;

/// Asserts that `repo` reports `code` at `file:line` (line 0: no location).
fn assert_reports(repo: &Repo, code: &str, file: &str, line: usize) {
    let problems = repo.problems();
    assert!(
        problems
            .iter()
            .any(|(c, f, l)| *c == code && f == file && *l == line),
        "expected {code} at {file}:{line}, got {problems:?}"
    );
}

/// The first diagnostic of `code` that checking `repo` reports.
fn first_diagnostic(repo: &Repo, code: &str) -> kernelhub_manifest::Diagnostic {
    repo.check()
        .diagnostics
        .into_iter()
        .find(|d| d.code == code)
        .unwrap_or_else(|| panic!("no {code} reported"))
}

#[test]
fn the_good_repo_is_clean() {
    let report = Repo::good().check();
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
    assert_eq!(report.artifacts_checked, 1);
}

macro_rules! manifest_diagnostic {
    ($($name:ident: $from:literal => $to:literal reports $code:literal at line $line:literal;)*) => {$(
        #[test]
        fn $name() {
            assert_reports(&Repo::good().edit($from, $to), $code, "kernel.toml", $line);
        }
    )*};
}

manifest_diagnostic! {
    syntax_error: "schema = 1" => "schema = = 1" reports "syntax" at line 1;
    duplicate_toml_key: "license = \"MIT\"" => "license = \"MIT\"\nlicense = \"MIT\"" reports "syntax" at line 7;
    unsupported_schema: "schema = 1" => "schema = 2" reports "unsupported-schema" at line 1;
    unknown_field: "license = \"MIT\"" => "license = \"MIT\"\ncolour = \"red\"" reports "unknown-field" at line 7;
    unknown_field_in_param: "{ name = \"n\", scalar = \"u32\" }" => "{ name = \"n\", scalar = \"u32\", default = 1 }" reports "unknown-field" at line 13;
    missing_field: "license = \"MIT\"\n" => "" reports "missing-field" at line 3;
    missing_field_in_artifact: "format = \"wgsl\"\n" => "" reports "missing-field" at line 17;
    wrong_type: "size = {SIZE}" => "size = \"{SIZE}\"" reports "wrong-type" at line 21;
    negative_size: "size = {SIZE}" => "size = -1" reports "wrong-type" at line 21;
    invalid_version: "version = \"0.1.0\"" => "version = \"0.1\"" reports "invalid-version" at line 5;
    invalid_license: "license = \"MIT\"" => "license = \"MIT OR Nonsense-1.0\"" reports "invalid-license" at line 6;
    invalid_kernel_name: "name = \"scale\"" => "name = \"Scale Kernel\"" reports "invalid-name" at line 4;
    invalid_param_name: "{ name = \"y\"," => "{ name = \"y-1\"," reports "invalid-name" at line 12;
    duplicate_param: "{ name = \"y\"," => "{ name = \"x\"," reports "duplicate-name" at line 12;
    duplicate_dtype: "dtypes = [\"f32\"]" => "dtypes = [\"f32\", \"f32\"]" reports "duplicate-name" at line 9;
    unknown_dtype: "dtypes = [\"f32\"]" => "dtypes = [\"f31\"]" reports "unknown-value" at line 9;
    unknown_backend: "backend = \"wgpu\"" => "backend = \"vulkan\"" reports "unknown-value" at line 18;
    tensor_and_scalar: "{ name = \"n\", scalar = \"u32\" }" => "{ name = \"n\", scalar = \"u32\", tensor = \"T\" }" reports "conflicting-fields" at line 13;
    invalid_expression: "grid = [\"ceil_div(n, 64)\"]" => "grid = [\"ceil_div(n, )\"]" reports "invalid-expression" at line 28;
    too_many_dimensions: "grid = [\"ceil_div(n, 64)\"]" => "grid = [1, 1, 1, 1]" reports "invalid-geometry" at line 28;
    unknown_param_in_grid: "grid = [\"ceil_div(n, 64)\"]" => "grid = [\"ceil_div(m, 64)\"]" reports "unknown-param" at line 28;
    unknown_param_in_shape: "shape = [\"n\"] }" => "shape = [\"len\"] }" reports "unknown-param" at line 12;
    float_param_in_grid: "grid = [\"ceil_div(n, 64)\"]" => "grid = [\"alpha\"]" reports "not-an-integer" at line 28;
    tensor_param_in_grid: "grid = [\"ceil_div(n, 64)\"]" => "grid = [\"y\"]" reports "not-an-integer" at line 28;
    no_output: ", written = true" => "" reports "no-output" at line 8;
    uncovered_dtype: "dtypes = [\"f32\"]" => "dtypes = [\"f32\", \"f16\"]" reports "uncovered" at line 9;
    unknown_op: "op = \"scale\"" => "op = \"scael\"" reports "unknown-op" at line 25;
    unsupported_dtype: "dtype = \"f32\"" => "dtype = \"f16\"" reports "unsupported-dtype" at line 26;
    duplicate_entry: "block = [64]\n" => "block = [64]\n\n[[artifacts.entries]]\nop = \"scale\"\ndtype = \"f32\"\nsymbol = \"scale\"\ngrid = [1]\n" reports "duplicate-entry" at line 32;
    invalid_symbol: "symbol = \"scale\"" => "symbol = \"sc ale\"" reports "invalid-symbol" at line 27;
    format_mismatch: "format = \"wgsl\"" => "format = \"ptx\"" reports "format-mismatch" at line 19;
    targets_on_wgpu: "format = \"wgsl\"" => "format = \"wgsl\"\ntargets = [\"sm_80\"]" reports "invalid-target" at line 20;
    min_driver_on_wgpu: "format = \"wgsl\"" => "format = \"wgsl\"\nmin_driver = \"12.0\"" reports "invalid-field" at line 20;
    invalid_hash: "sha256 = \"{SHA}\"" => "sha256 = \"ABC\"" reports "invalid-hash" at line 22;
    absolute_path: "path = \"scale.wgsl\"" => "path = \"/etc/passwd\"" reports "invalid-path" at line 20;
    dotdot_path: "path = \"scale.wgsl\"" => "path = \"x/../scale.wgsl\"" reports "invalid-path" at line 20;
    unnormalised_path: "path = \"scale.wgsl\"" => "path = \"./scale.wgsl\"" reports "invalid-path" at line 20;
    missing_file: "path = \"scale.wgsl\"" => "path = \"missing.wgsl\"" reports "missing-file" at line 20;
    size_mismatch: "size = {SIZE}" => "size = 1" reports "size-mismatch" at line 21;
    hash_mismatch: "sha256 = \"{SHA}\"" => "sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"" reports "hash-mismatch" at line 22;
    missing_wgsl_entry_point: "symbol = \"scale\"" => "symbol = \"scale_f32\"" reports "missing-symbol" at line 27;
    workgroup_size_mismatch: "block = [64]" => "block = [128]" reports "geometry-mismatch" at line 29;
    parametric_wgsl_block: "block = [64]" => "block = [\"n\"]" reports "invalid-geometry" at line 29;
    missing_dtypes: "dtypes = [\"f32\"]" => "dtypes = []" reports "missing-dtypes" at line 8;
    empty_shape: "shape = [\"n\"] }" => "shape = [] }" reports "invalid-shape" at line 12;
    empty_artifact: "[[artifacts.entries]]" => "entries = []\n[[artifacts.entriez]]" reports "empty-artifact" at line 20;
    unused_feature: "format = \"wgsl\"" => "format = \"wgsl\"\nfeatures = [\"shader-f16\"]" reports "unused-feature" at line 20;
}

#[test]
fn native_artifact_without_targets() {
    let repo = Repo::good()
        .edit(
            "backend = \"wgpu\"\nformat = \"wgsl\"",
            "backend = \"cuda\"\nformat = \"ptx\"",
        )
        .edit("block = [64]", "block = [64]");
    assert_reports(&repo, "missing-targets", "kernel.toml", 18);
}

#[test]
fn invalid_targets_are_each_located() {
    let repo = Repo::good().edit(
        "backend = \"wgpu\"\nformat = \"wgsl\"",
        "backend = \"rocm\"\nformat = \"hsaco\"\ntargets = [\"gfx90a:xnack\", \"sm_80\"]",
    );
    let problems = repo.problems();
    let targets: Vec<_> = problems
        .iter()
        .filter(|(c, _, _)| *c == "invalid-target")
        .collect();
    assert_eq!(targets.len(), 2, "{problems:?}");
    assert!(targets.iter().all(|(_, _, line)| *line == 20));
}

#[test]
fn native_entry_without_block() {
    let repo = Repo::good()
        .edit(
            "backend = \"wgpu\"\nformat = \"wgsl\"",
            "backend = \"cuda\"\nformat = \"ptx\"\ntargets = [\"sm_80\"]",
        )
        .edit("block = [64]\n", "");
    assert_reports(&repo, "missing-field", "kernel.toml", 25);
}

#[test]
fn oversized_native_block() {
    let repo = Repo::good()
        .edit(
            "backend = \"wgpu\"\nformat = \"wgsl\"",
            "backend = \"cuda\"\nformat = \"ptx\"\ntargets = [\"sm_80\"]",
        )
        .edit("block = [64]", "block = [64, 32]");
    assert_reports(&repo, "invalid-geometry", "kernel.toml", 30);
}

#[test]
fn duplicate_artifact_path() {
    let second = "\n[[artifacts]]\nbackend = \"wgpu\"\nformat = \"wgsl\"\npath = \"scale.wgsl\"\nsize = {SIZE}\nsha256 = \"{SHA}\"\nentries = []\n";
    let mut repo = Repo::good();
    repo.manifest.push_str(second);
    assert_reports(&repo, "duplicate-path", "kernel.toml", 34);
}

#[test]
fn artifact_that_is_a_directory() {
    let repo = Repo::good()
        .edit("path = \"scale.wgsl\"", "path = \"dir\"")
        .file("dir/inner.txt", "x");
    assert_reports(&repo, "not-a-file", "kernel.toml", 20);
}

#[cfg(unix)]
#[test]
fn symlink_escaping_the_repo() {
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), kernelhub_tests::GOOD_WGSL).unwrap();
    let repo = Repo::good()
        .without_file("scale.wgsl")
        .edit("path = \"scale.wgsl\"", "path = \"link.wgsl\"");
    repo.write();
    std::os::unix::fs::symlink(outside.path(), repo.path().join("link.wgsl")).unwrap();
    let report = kernelhub_manifest::check::check_repo(repo.path()).unwrap();
    assert!(
        report.diagnostics.iter().any(|d| d.code == "path-escapes"),
        "{:?}",
        report.diagnostics
    );
    assert_eq!(
        report.artifacts_checked, 0,
        "nothing outside the repo is read"
    );
}

#[cfg(unix)]
#[test]
fn symlink_inside_the_repo_is_fine() {
    let repo = Repo::good().edit("path = \"scale.wgsl\"", "path = \"link.wgsl\"");
    repo.write();
    std::os::unix::fs::symlink("scale.wgsl", repo.path().join("link.wgsl")).unwrap();
    let report = kernelhub_manifest::check::check_repo(repo.path()).unwrap();
    let codes: Vec<_> = report.diagnostics.iter().map(|d| d.code).collect();
    assert!(
        !codes.contains(&"path-escapes") && !codes.contains(&"missing-file"),
        "{codes:?}"
    );
}

#[test]
fn invalid_wgsl_points_into_the_shader() {
    let repo = Repo::good().edit_file(
        "scale.wgsl",
        "x[id.x] + params.alpha",
        "x[id.x] + params.beta",
    );
    assert_reports(&repo, "invalid-wgsl", "scale.wgsl", 9);
}

#[test]
fn wgsl_written_tensor_bound_read_only() {
    let repo = Repo::good().edit_file(
        "scale.wgsl",
        "var<storage, read_write> x",
        "var<storage, read> x",
    );
    // naga itself refuses the store into read-only storage; either way the shader is rejected.
    let problems = repo.problems();
    assert!(
        problems.iter().any(
            |(c, f, _)| (*c == "invalid-wgsl" || *c == "binding-mismatch") && f == "scale.wgsl"
        ),
        "{problems:?}"
    );
}

#[test]
fn wgsl_read_tensor_bound_read_write() {
    let repo = Repo::good().edit_file(
        "scale.wgsl",
        "var<storage, read> y",
        "var<storage, read_write> y",
    );
    assert_reports(&repo, "binding-mismatch", "scale.wgsl", 3);
}

#[test]
fn wgsl_element_type_does_not_fit_dtype() {
    let repo = Repo::good()
        .edit_file("scale.wgsl", "read> y: array<f32>", "read> y: array<i32>")
        .edit_file(
            "scale.wgsl",
            "params.alpha * y[id.x]",
            "params.alpha * f32(y[id.x])",
        );
    assert_reports(&repo, "binding-mismatch", "scale.wgsl", 3);
}

#[test]
fn wgsl_uniform_does_not_match_scalars() {
    let repo = Repo::good()
        .edit_file(
            "scale.wgsl",
            "struct Params { n: u32, alpha: f32 }",
            "struct Params { n: u32, alpha: u32 }",
        )
        .edit_file("scale.wgsl", "params.alpha * y", "f32(params.alpha) * y");
    assert_reports(&repo, "binding-mismatch", "scale.wgsl", 4);
}

#[test]
fn wgsl_binding_beyond_the_signature() {
    let repo = Repo::good()
        .edit_file(
            "scale.wgsl",
            "@compute",
            "@group(0) @binding(7) var<storage, read> extra: array<f32>;\n@compute",
        )
        .edit_file("scale.wgsl", "* y[id.x]", "* y[id.x] + extra[0]");
    assert_reports(&repo, "binding-mismatch", "scale.wgsl", 6);
}

#[test]
fn wgsl_binding_in_another_group() {
    let repo = Repo::good().edit_file(
        "scale.wgsl",
        "@group(0) @binding(1)",
        "@group(1) @binding(1)",
    );
    assert_reports(&repo, "binding-mismatch", "scale.wgsl", 3);
}

#[test]
fn f16_shader_without_the_feature() {
    let repo = Repo::good()
        .edit_file("scale.wgsl", "struct Params", "enable f16;\nstruct Params")
        .edit_file(
            "scale.wgsl",
            "x[id.x] + params.alpha",
            "x[id.x] + f32(f16(params.alpha))",
        );
    assert_reports(&repo, "missing-feature", "kernel.toml", 20);
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let repo = Repo::good()
        .edit("version = \"0.1.0\"", "version = \"one\"")
        .edit("dtypes = [\"f32\"]", "dtypes = [\"f31\"]")
        .edit("size = {SIZE}", "size = 1")
        .edit("grid = [\"ceil_div(n, 64)\"]", "grid = [\"m\"]");
    let codes: Vec<_> = repo.problems().into_iter().map(|(c, _, _)| c).collect();
    for code in [
        "invalid-version",
        "unknown-value",
        "size-mismatch",
        "unknown-param",
    ] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
}

/// PTX of `scale(x, y, n, alpha)` as clang emits it: two pointers, a `.u32`, an `.f32`.
const SCALE_PTX: &str = "//
// Generated by LLVM NVPTX Back-End
//

.version 7.0
.target sm_80
.address_size 64

.visible .entry scale(
\t.param .u64 scale_param_0,
\t.param .u64 scale_param_1,
\t.param .u32 scale_param_2,
\t.param .f32 scale_param_3
)
{
\tret;
}
";

/// The good repo with its artifact replaced by `scale.ptx` holding `ptx`.
fn ptx_repo(ptx: &str) -> Repo {
    let sha = kernelhub_manifest::hash::Sha256Digest::of(ptx.as_bytes());
    Repo::good()
        .edit(
            "backend = \"wgpu\"\nformat = \"wgsl\"\npath = \"scale.wgsl\"\nsize = {SIZE}\nsha256 = \"{SHA}\"",
            &format!(
                "backend = \"cuda\"\nformat = \"ptx\"\ntargets = [\"sm_80\"]\nmin_driver = \"11.0\"\npath = \"scale.ptx\"\nsize = {}\nsha256 = \"{sha}\"",
                ptx.len()
            ),
        )
        .file("scale.ptx", ptx)
}

#[test]
fn ptx_with_the_op_signature_is_clean() {
    let report = ptx_repo(SCALE_PTX).check();
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
}

#[test]
fn ptx_signature_with_one_param_too_few() {
    // The op no longer passes `alpha`, but the kernel still reads a 4th parameter.
    let repo = ptx_repo(SCALE_PTX).edit("  { name = \"alpha\", scalar = \"f32\" },\n", "");
    assert_reports(&repo, "signature-mismatch", "kernel.toml", 28);
    let d = first_diagnostic(&repo, "signature-mismatch");
    assert_eq!(d.severity, kernelhub_manifest::Severity::Error);
    assert_eq!(
        d.message,
        "Kernel `scale` in `scale.ptx` (line 9) takes 4 parameters, but op `scale` passes 3 arguments"
    );
    assert_eq!(
        d.label.as_deref(),
        Some("kernel (.u64, .u64, .u32, .f32), op (x: tensor, y: tensor, n: u32)")
    );
}

#[test]
fn ptx_param_of_another_size() {
    let repo = ptx_repo(SCALE_PTX).edit(
        "{ name = \"n\", scalar = \"u32\" }",
        "{ name = \"n\", scalar = \"u64\" }",
    );
    assert_reports(&repo, "signature-mismatch", "kernel.toml", 29);
    let d = first_diagnostic(&repo, "signature-mismatch");
    assert!(
        d.message.starts_with(
            "Parameter 2 (0-based) of kernel `scale` is `.u32` `scale_param_2` (4 bytes) at `scale.ptx` line 12, but op `scale` passes `n: u64` (8 bytes)"
        ),
        "{}",
        d.message
    );
}

#[test]
fn ptx_eight_byte_array_param_takes_a_pointer() {
    // `.align 8 .b8 name[8]` is how some compilers pass an 8-byte value: ABI-compatible.
    let ptx = SCALE_PTX.replace(
        ".param .u64 scale_param_1",
        ".param .align 8 .b8 scale_param_1[8]",
    );
    let report = ptx_repo(&ptx).check();
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
}

#[test]
fn ptx_param_list_that_cannot_be_read_warns() {
    let ptx = SCALE_PTX.replace(".param .f32 scale_param_3", ".param .quux scale_param_3");
    let repo = ptx_repo(&ptx);
    assert_reports(&repo, "unverified-signature", "kernel.toml", 29);
    let report = repo.check();
    assert_eq!(report.count(kernelhub_manifest::Severity::Error), 0);
}

/// A gfx90a code object of `scale(float*, const float*, unsigned, float)` whose
/// metadata also lists hidden arguments after the explicit ones.
const SCALE_HSACO: &[u8] =
    include_bytes!("../crates/kernelhub-manifest/tests/fixtures/scale_hidden_gfx90a.hsaco");

/// The good repo with its artifact replaced by `scale.hsaco`.
fn hsaco_repo() -> Repo {
    let sha = kernelhub_manifest::hash::Sha256Digest::of(SCALE_HSACO);
    Repo::good()
        .edit(
            "backend = \"wgpu\"\nformat = \"wgsl\"\npath = \"scale.wgsl\"\nsize = {SIZE}\nsha256 = \"{SHA}\"",
            &format!(
                "backend = \"rocm\"\nformat = \"hsaco\"\ntargets = [\"gfx90a\"]\npath = \"scale.hsaco\"\nsize = {}\nsha256 = \"{sha}\"",
                SCALE_HSACO.len()
            ),
        )
        .file("scale.hsaco", SCALE_HSACO)
}

#[test]
fn hsaco_with_the_op_signature_is_clean() {
    // The hidden arguments are the HIP runtime's to fill: not part of the signature.
    let report = hsaco_repo().check();
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
}

#[test]
fn hsaco_signature_with_one_param_too_many() {
    let repo = hsaco_repo().edit(
        "  { name = \"alpha\", scalar = \"f32\" },\n",
        "  { name = \"alpha\", scalar = \"f32\" },\n  { name = \"beta\", scalar = \"f32\" },\n",
    );
    assert_reports(&repo, "signature-mismatch", "kernel.toml", 29);
}

#[test]
fn hsaco_param_of_another_size() {
    let repo = hsaco_repo().edit(
        "{ name = \"alpha\", scalar = \"f32\" }",
        "{ name = \"alpha\", scalar = \"i64\" }",
    );
    assert_reports(&repo, "signature-mismatch", "kernel.toml", 28);
}

/// `scale.ptx` above assembled by ptxas 13.0 for sm_80
/// (crates/kernelhub-manifest/tests/fixtures/README.md).
const SCALE_CUBIN: &[u8] =
    include_bytes!("../crates/kernelhub-manifest/tests/fixtures/scale_sm80.cubin");

/// The good repo with its artifact replaced by `scale.cubin` holding `cubin`.
fn cubin_repo(cubin: &[u8]) -> Repo {
    let sha = kernelhub_manifest::hash::Sha256Digest::of(cubin);
    Repo::good()
        .edit(
            "backend = \"wgpu\"\nformat = \"wgsl\"\npath = \"scale.wgsl\"\nsize = {SIZE}\nsha256 = \"{SHA}\"",
            &format!(
                "backend = \"cuda\"\nformat = \"cubin\"\ntargets = [\"sm_80\"]\npath = \"scale.cubin\"\nsize = {}\nsha256 = \"{sha}\"",
                cubin.len()
            ),
        )
        .file("scale.cubin", cubin)
}

#[test]
fn cubin_with_the_op_signature_is_clean() {
    let report = cubin_repo(SCALE_CUBIN).check();
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
}

#[test]
fn cubin_signature_with_one_param_too_few() {
    let repo = cubin_repo(SCALE_CUBIN).edit("  { name = \"alpha\", scalar = \"f32\" },\n", "");
    assert_reports(&repo, "signature-mismatch", "kernel.toml", 27);
    let d = first_diagnostic(&repo, "signature-mismatch");
    assert_eq!(
        d.message,
        "Kernel `scale` in `scale.cubin` takes 4 parameters, but op `scale` passes 3 arguments"
    );
    assert_eq!(
        d.label.as_deref(),
        Some("kernel (8 bytes, 8 bytes, 4 bytes, 4 bytes), op (x: tensor, y: tensor, n: u32)")
    );
}

#[test]
fn cubin_param_of_another_size() {
    let repo = cubin_repo(SCALE_CUBIN).edit(
        "{ name = \"n\", scalar = \"u32\" }",
        "{ name = \"n\", scalar = \"u64\" }",
    );
    assert_reports(&repo, "signature-mismatch", "kernel.toml", 28);
    let d = first_diagnostic(&repo, "signature-mismatch");
    assert!(
        d.message.starts_with(
            "Parameter 2 (0-based) of kernel `scale` is the one at offset 16 (4 bytes) in the parameter table of `scale.cubin`, but op `scale` passes `n: u64` (8 bytes)"
        ),
        "{}",
        d.message
    );
}

#[test]
fn cubin_without_a_parameter_table_warns() {
    // The section renamed: `.nv.info.scale` becomes `.nv.info.scalf`.
    let name = b".nv.info.scale\0";
    let at = SCALE_CUBIN
        .windows(name.len())
        .position(|w| w == name)
        .unwrap();
    let mut cubin = SCALE_CUBIN.to_vec();
    cubin[at + name.len() - 2] = b'f';
    let repo = cubin_repo(&cubin);
    assert_reports(&repo, "unverified-signature", "kernel.toml", 28);
    let report = repo.check();
    assert_eq!(report.count(kernelhub_manifest::Severity::Error), 0);
    assert!(
        report.diagnostics[0]
            .message
            .contains("has no parameter table for kernel `scale` (section `.nv.info.scale`)"),
        "{:?}",
        report.diagnostics
    );
}

/// `scale_sm80.cubin` and `scale.ptx` in one fatbin, stored plain
/// (`fatbinary -compress=false`), and with fatbinary's default compression,
/// which compresses the PTX (crates/kernelhub-manifest/tests/fixtures/README.md).
const SCALE_FATBIN: &[u8] =
    include_bytes!("../crates/kernelhub-manifest/tests/fixtures/scale.fatbin");
const SCALE_FATBIN_COMPRESSED: &[u8] =
    include_bytes!("../crates/kernelhub-manifest/tests/fixtures/scale_compressed.fatbin");

/// The good repo with its artifact replaced by `scale.fatbin` holding `fatbin`.
fn fatbin_repo(fatbin: &[u8]) -> Repo {
    let sha = kernelhub_manifest::hash::Sha256Digest::of(fatbin);
    Repo::good()
        .edit(
            "backend = \"wgpu\"\nformat = \"wgsl\"\npath = \"scale.wgsl\"\nsize = {SIZE}\nsha256 = \"{SHA}\"",
            &format!(
                "backend = \"cuda\"\nformat = \"fatbin\"\ntargets = [\"sm_80\", \"sm_90\"]\nmin_driver = \"11.0\"\npath = \"scale.fatbin\"\nsize = {}\nsha256 = \"{sha}\"",
                fatbin.len()
            ),
        )
        .file("scale.fatbin", fatbin)
}

fn messages(repo: &Repo, code: &str) -> Vec<String> {
    repo.check()
        .diagnostics
        .into_iter()
        .filter(|d| d.code == code)
        .map(|d| d.message)
        .collect()
}

#[test]
fn fatbin_with_the_op_signature_is_clean() {
    // sm_80 runs the cubin; sm_90 JIT-compiles the PTX.
    let report = fatbin_repo(SCALE_FATBIN).check();
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
}

#[test]
fn fatbin_signature_is_checked_in_each_cubin_and_ptx() {
    let repo = fatbin_repo(SCALE_FATBIN).edit("  { name = \"alpha\", scalar = \"f32\" },\n", "");
    assert_reports(&repo, "signature-mismatch", "kernel.toml", 28);
    assert_eq!(
        messages(&repo, "signature-mismatch"),
        [
            "Kernel `scale` in the sm_80 cubin in `scale.fatbin` takes 4 parameters, but op `scale` passes 3 arguments",
            "Kernel `scale` in the sm_80 PTX in `scale.fatbin` (line 9) takes 4 parameters, but op `scale` passes 3 arguments",
        ]
    );
}

#[test]
fn fatbin_kernel_missing_from_its_code() {
    let repo = fatbin_repo(SCALE_FATBIN).edit("symbol = \"scale\"", "symbol = \"scale2\"");
    assert_eq!(
        messages(&repo, "missing-symbol"),
        [
            "The sm_80 cubin in `scale.fatbin` has no kernel `scale2`",
            "The sm_80 PTX in `scale.fatbin` has no kernel `scale2`",
        ]
    );
}

#[test]
fn fatbin_target_nothing_in_it_runs_on() {
    let repo = fatbin_repo(SCALE_FATBIN).edit("[\"sm_80\", \"sm_90\"]", "[\"sm_80\", \"sm_75\"]");
    assert_reports(&repo, "target-mismatch", "kernel.toml", 20);
    let d = first_diagnostic(&repo, "target-mismatch");
    assert_eq!(
        d.message,
        "Nothing in `scale.fatbin` runs on `sm_75`: it holds sm_80 cubin, sm_80 PTX"
    );
}

#[test]
fn fatbin_compressed_entries_warn_and_the_rest_is_checked() {
    let repo = fatbin_repo(SCALE_FATBIN_COMPRESSED);
    let report = repo.check();
    assert_eq!(
        report.count(kernelhub_manifest::Severity::Error),
        0,
        "{:?}",
        report.diagnostics
    );
    assert_eq!(
        messages(&repo, "unverified-signature"),
        [
            "The sm_80 PTX in `scale.fatbin` is compressed, and kernelhub does not inflate it: kernels and signatures there were not checked"
        ]
    );
    // The compressed PTX still counts for the targets it serves.
    assert!(messages(&repo, "target-mismatch").is_empty());
    // The plain cubin beside it is still checked.
    let repo = repo.edit("  { name = \"alpha\", scalar = \"f32\" },\n", "");
    assert_eq!(
        messages(&repo, "signature-mismatch"),
        [
            "Kernel `scale` in the sm_80 cubin in `scale.fatbin` takes 4 parameters, but op `scale` passes 3 arguments"
        ]
    );
}

#[test]
fn fatbin_that_is_not_one() {
    let repo = fatbin_repo(SCALE_CUBIN);
    assert_reports(&repo, "invalid-fatbin", "kernel.toml", 22);
    assert_eq!(
        messages(&repo, "invalid-fatbin"),
        [
            "`scale.fatbin` is not a valid fatbin: no fatbin header at byte 0 (expected the magic bytes 50 ed 55 ba, found 7f 45 4c 46)"
        ]
    );
    // A cut-off fatbin, with its hash and size made to match.
    let repo = fatbin_repo(&SCALE_FATBIN[..SCALE_FATBIN.len() - 100]);
    assert!(
        messages(&repo, "invalid-fatbin")[0]
            .starts_with("`scale.fatbin` is not a valid fatbin: it is cut off: "),
        "{:?}",
        repo.check().diagnostics
    );
}

/// `SCALE_FATBIN` with the flags of its first entry (the cubin) or second
/// (the PTX, after the cubin's payload) or-ed with `flag`, or its
/// architecture number replaced.
fn fatbin_edited(entry: usize, flag: u64, arch: Option<u32>) -> Vec<u8> {
    let mut bytes = SCALE_FATBIN.to_vec();
    let cubin_payload = u64::from_le_bytes(bytes[16 + 8..16 + 16].try_into().unwrap()) as usize;
    let at = if entry == 0 {
        16
    } else {
        16 + 64 + cubin_payload
    };
    let flags = u64::from_le_bytes(bytes[at + 40..at + 48].try_into().unwrap()) | flag;
    bytes[at + 40..at + 48].copy_from_slice(&flags.to_le_bytes());
    if let Some(arch) = arch {
        bytes[at + 28..at + 32].copy_from_slice(&arch.to_le_bytes());
    }
    bytes
}

#[test]
fn fatbin_entry_recorded_for_another_arch() {
    let repo = fatbin_repo(&fatbin_edited(0, 0, Some(90)));
    assert_eq!(
        messages(&repo, "invalid-fatbin"),
        [
            "The sm_90 cubin in `scale.fatbin` is built for `sm_80`, but the fatbin records it as `sm_90`, so the driver would pick it for the wrong GPUs"
        ]
    );
}

#[test]
fn fatbin_family_ptx_serves_only_its_family() {
    // The PTX recorded as `sm_80f`: it runs on sm_8x only, so nothing serves sm_90.
    let repo = fatbin_repo(&fatbin_edited(1, 0x20_0000, None));
    assert_eq!(
        messages(&repo, "target-mismatch"),
        ["Nothing in `scale.fatbin` runs on `sm_90`: it holds sm_80 cubin, sm_80f PTX"]
    );
}

#[test]
fn fatbin_ptx_needs_a_newer_driver_than_declared() {
    let repo = fatbin_repo(SCALE_FATBIN).edit("min_driver = \"11.0\"", "min_driver = \"10.2\"");
    assert_eq!(
        messages(&repo, "driver-mismatch"),
        ["The sm_80 PTX in `scale.fatbin` is PTX ISA 7.0, which needs CUDA driver 11.0, not 10.2"]
    );
}

#[test]
fn fatbin_of_many_broken_entries_is_reported_in_bounds() {
    // 2000 empty cubins: the first 8 are reported, then one line for the rest.
    let mut bytes = Vec::new();
    let size: u64 = 2000 * 64;
    bytes.extend_from_slice(&0xBA55_ED50u32.to_le_bytes());
    bytes.extend_from_slice(&[1, 0, 16, 0]);
    bytes.extend_from_slice(&size.to_le_bytes());
    for _ in 0..2000 {
        let mut entry = [0u8; 64];
        entry[0] = 2; // a cubin
        entry[4] = 64; // its header's size; no payload
        entry[28] = 80; // sm_80
        bytes.extend_from_slice(&entry);
    }
    let repo = fatbin_repo(&bytes);
    let report = repo.check();
    assert_eq!(
        messages(&repo, "invalid-fatbin").len(),
        8,
        "{:?}",
        report.diagnostics
    );
    assert_eq!(
        messages(&repo, "not-inspected"),
        ["`scale.fatbin`: 1992 more entries were not inspected, after 8 with problems"]
    );
    assert!(report.diagnostics.len() <= 12, "{:?}", report.diagnostics);
}
