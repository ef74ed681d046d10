//! `kernel.toml`: what a kernel repo publishes — its ops, their signatures, and
//! every artifact with its hash and launch geometry.
//!
//! This file holds the types and the reading of the TOML tree into them; the
//! cross-field rules (coverage, parameter references, …) live in `validate`.
//! See `docs/formats.md` for the format with a worked example.

use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;

use serde::{Serialize, Serializer};
use toml::Spanned;
use toml::de::DeValue;

use crate::diagnostic::Diagnostic;
use crate::expr::Expr;
use crate::hash::Sha256Digest;
use crate::reader::{self, Ctx, Fields, Hint, Node};
use crate::target::{AmdArch, CudaArch, Target};

/// The `schema` this version of kernelhub reads and writes.
pub const SCHEMA: u64 = 1;

/// A parsed `kernel.toml`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelManifest {
    /// Format version, `1`.
    pub schema: Spanned<u64>,
    /// The `[kernel]` table.
    pub kernel: KernelInfo,
    /// The `[ops.*]` tables, sorted by name.
    #[serde(serialize_with = "ops_as_table")]
    pub ops: Vec<Op>,
    /// The `[[artifacts]]` tables, in file order.
    pub artifacts: Vec<Artifact>,
}

/// The `[kernel]` table: who this kernel is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelInfo {
    /// Lower-case name, e.g. `activation`.
    pub name: Spanned<String>,
    /// Semantic version of this release.
    #[serde(serialize_with = "display")]
    pub version: Spanned<semver::Version>,
    /// SPDX license expression.
    pub license: Spanned<String>,
    /// One line for humans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One op and its call signature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Op {
    /// The key of `[ops.<name>]`.
    #[serde(skip)]
    pub name: Spanned<String>,
    /// One line for humans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The dtypes the generic `T` may take.
    pub dtypes: Vec<Spanned<Dtype>>,
    /// Parameters in call order.
    pub params: Vec<Param>,
}

/// A parameter of an op: a tensor or a scalar.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// A name usable in expressions (`[A-Za-z_][A-Za-z0-9_]*`).
    pub name: Spanned<String>,
    /// Tensor or scalar, with what each needs.
    pub kind: ParamKind,
}

/// What a parameter is.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamKind {
    /// A device buffer.
    Tensor {
        /// `T` or a fixed dtype.
        dtype: Spanned<TensorDtype>,
        /// Dimensions as expressions over the integer scalars.
        shape: Vec<Spanned<Expr>>,
        /// Whether the op writes it.
        written: bool,
    },
    /// A value passed by value.
    Scalar(Spanned<ScalarType>),
}

/// The dtype of a tensor parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorDtype {
    /// The op's dtype, one of `dtypes`.
    Generic,
    /// Always this dtype (e.g. `u32` positions).
    Fixed(Dtype),
}

/// Element types of tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dtype {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    Bf16,
    /// IEEE binary64.
    F64,
    /// Signed 8-bit.
    I8,
    /// Unsigned 8-bit.
    U8,
    /// Signed 32-bit.
    I32,
    /// Unsigned 32-bit.
    U32,
    /// Signed 64-bit.
    I64,
}

/// Types of scalar parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarType {
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 64-bit integer.
    U64,
    /// Signed 64-bit integer.
    I64,
    /// IEEE binary32.
    F32,
}

/// Which runtime loads an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// NVIDIA, through the CUDA driver API.
    Cuda,
    /// AMD, through the HIP runtime.
    Rocm,
    /// Anything wgpu runs on (Vulkan, Metal, DX12).
    Wgpu,
}

/// The file format of an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// NVIDIA PTX assembly text, JIT-compiled by the driver.
    Ptx,
    /// NVIDIA SASS in an ELF.
    Cubin,
    /// NVIDIA fat binary holding several cubins and/or PTX.
    Fatbin,
    /// AMD code object (ELF).
    Hsaco,
    /// WebGPU Shading Language source.
    Wgsl,
    /// A host shared library (ELF `.so`) that drives the GPU itself: host
    /// code, loaded only where `kernels.toml` allows it for the dependency.
    SharedLibrary,
}

/// Optional wgpu capabilities a WGSL artifact needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WgpuFeature {
    /// `enable f16;`
    ShaderF16,
    /// Subgroup operations.
    Subgroups,
}

/// One artifact file and the entries it implements.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Artifact {
    /// The runtime that loads it.
    #[serde(serialize_with = "display")]
    pub backend: Spanned<Backend>,
    /// Its format.
    #[serde(serialize_with = "display")]
    pub format: Spanned<Format>,
    /// Architectures it runs on (native backends only).
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "display_list")]
    pub targets: Vec<Spanned<Target>>,
    /// Oldest CUDA driver / HIP runtime able to load it, `major.minor`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "display_option"
    )]
    pub min_driver: Option<Spanned<DriverVersion>>,
    /// wgpu features the shader needs.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "display_list")]
    pub features: Vec<Spanned<WgpuFeature>>,
    /// Path inside the repo, `/`-separated.
    pub path: Spanned<String>,
    /// Size in bytes.
    pub size: Spanned<u64>,
    /// SHA-256 of the file.
    #[serde(serialize_with = "display")]
    pub sha256: Spanned<Sha256Digest>,
    /// What it implements.
    pub entries: Vec<Entry>,
    /// The span of the whole `[[artifacts]]` table.
    #[serde(skip)]
    pub span: Range<usize>,
}

/// How one (op, dtype) is launched from an artifact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// The op's name.
    pub op: Spanned<String>,
    /// The concrete dtype.
    #[serde(serialize_with = "display")]
    pub dtype: Spanned<Dtype>,
    /// Kernel symbol or WGSL entry point.
    pub symbol: Spanned<String>,
    /// Number of blocks / workgroups, 1 to 3 dimensions.
    #[serde(serialize_with = "expr_list")]
    pub grid: Vec<Spanned<Expr>>,
    /// Threads per block, 1 to 3 dimensions.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "expr_list_option"
    )]
    pub block: Option<Vec<Spanned<Expr>>>,
    /// Dynamic shared memory in bytes.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "expr_option"
    )]
    pub shared_mem: Option<Spanned<Expr>>,
    /// The span of the whole entry table.
    #[serde(skip)]
    pub span: Range<usize>,
}

/// A `major.minor` driver or runtime version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DriverVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

macro_rules! names {
    ($ty:ident { $($variant:ident = $name:literal),* $(,)? }) => {
        impl $ty {
            /// Every name this type accepts, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// The name as written in manifests.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }
        }

        impl FromStr for $ty {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($name => Ok($ty::$variant),)* _ => Err(()) }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names!(Dtype { F32 = "f32", F16 = "f16", Bf16 = "bf16", F64 = "f64", I8 = "i8", U8 = "u8", I32 = "i32", U32 = "u32", I64 = "i64" });
names!(ScalarType { U32 = "u32", I32 = "i32", U64 = "u64", I64 = "i64", F32 = "f32" });
names!(Backend { Cuda = "cuda", Rocm = "rocm", Wgpu = "wgpu" });
names!(Format { Ptx = "ptx", Cubin = "cubin", Fatbin = "fatbin", Hsaco = "hsaco", Wgsl = "wgsl", SharedLibrary = "shared-library" });
names!(WgpuFeature { ShaderF16 = "shader-f16", Subgroups = "subgroups" });

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::I8 | Dtype::U8 => 1,
            Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::F32 | Dtype::I32 | Dtype::U32 => 4,
            Dtype::F64 | Dtype::I64 => 8,
        }
    }
}

impl ScalarType {
    /// Whether values of this type may appear in shape and geometry expressions.
    pub fn is_integer(self) -> bool {
        !matches!(self, ScalarType::F32)
    }
}

impl Backend {
    /// The formats this backend loads.
    pub fn formats(self) -> &'static [Format] {
        match self {
            Backend::Cuda => &[
                Format::Ptx,
                Format::Cubin,
                Format::Fatbin,
                Format::SharedLibrary,
            ],
            Backend::Rocm => &[Format::Hsaco, Format::SharedLibrary],
            Backend::Wgpu => &[Format::Wgsl],
        }
    }
}

impl fmt::Display for TensorDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TensorDtype::Generic => f.write_str("T"),
            TensorDtype::Fixed(dtype) => dtype.fmt(f),
        }
    }
}

impl fmt::Display for DriverVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for DriverVersion {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (major, minor) = s.split_once('.').ok_or(())?;
        let number = |t: &str| {
            if t.is_empty() || t.len() > 4 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            t.parse().map_err(|_| ())
        };
        Ok(Self {
            major: number(major)?,
            minor: number(minor)?,
        })
    }
}

/// Whether a file is read for `kernelhub check` (unknown fields are errors) or
/// to be used (unknown fields are warnings, so newer manifests still load).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// `kernelhub check`.
    Check,
    /// Loading for use.
    Load,
}

/// The outcome of reading a file: the value when one could be built, and
/// every problem found on the way.
#[derive(Debug)]
pub struct Parsed<T> {
    /// The value; `None` when the file is not even valid TOML or lacks a required table.
    pub value: Option<T>,
    /// Whether every part was read without error (cross-reference checks
    /// only make sense then).
    pub complete: bool,
    /// Problems found.
    pub diagnostics: Vec<Diagnostic>,
}

/// Whatever parts of a `kernel.toml` could be read, for tools (like `check`)
/// that keep going on a broken manifest. A part that failed to read is
/// `None` or left out of its list, with a diagnostic saying why.
#[derive(Debug, Clone, Default)]
pub struct ManifestParts {
    /// `schema`, when present and supported.
    pub schema: Option<Spanned<u64>>,
    /// `[kernel]`, when every field of it is valid.
    pub kernel: Option<KernelInfo>,
    /// The ops that could be read, sorted by name.
    pub ops: Vec<Op>,
    /// The artifacts that could be read, in file order.
    pub artifacts: Vec<Artifact>,
}

impl ManifestParts {
    /// Reads what it can of a `kernel.toml`; `file` names it in diagnostics.
    /// `value` is `None` only when the text is not valid TOML.
    pub fn parse(source: &str, file: &Path, strictness: Strictness) -> Parsed<Self> {
        let mut ctx = Ctx::new(file, strictness == Strictness::Check);
        let value = ctx.parse(source).map(|root| read_manifest(&mut ctx, &root));
        Parsed {
            complete: value.is_some() && !ctx.has_errors(),
            value,
            diagnostics: ctx.diagnostics,
        }
    }
}

impl KernelManifest {
    /// Reads a `kernel.toml` from its text. `file` names it in diagnostics.
    /// Only the file's own structure is read here; see [`crate::validate`]
    /// for the rules that tie its parts together. `value` is `None` unless
    /// the schema, `[kernel]`, every op and every artifact could be read.
    pub fn parse(source: &str, file: &Path, strictness: Strictness) -> Parsed<Self> {
        let parts = ManifestParts::parse(source, file, strictness);
        let value = match parts.value {
            Some(ManifestParts {
                schema: Some(schema),
                kernel: Some(kernel),
                ops,
                artifacts,
            }) if parts.complete => Some(KernelManifest {
                schema,
                kernel,
                ops,
                artifacts,
            }),
            _ => None,
        };
        Parsed {
            complete: value.is_some(),
            value,
            diagnostics: parts.diagnostics,
        }
    }

    /// The op named `name`.
    pub fn op(&self, name: &str) -> Option<&Op> {
        find_op(&self.ops, name)
    }
}

/// The op named `name` in `ops`.
pub fn find_op<'a>(ops: &'a [Op], name: &str) -> Option<&'a Op> {
    ops.iter().find(|op| op.name.get_ref() == name)
}

impl Op {
    /// The parameter named `name`.
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name.get_ref() == name)
    }
}

fn read_manifest(ctx: &mut Ctx, root: &Spanned<toml::de::DeTable<'_>>) -> ManifestParts {
    let mut fields = Fields::new(root.get_ref(), 0..0, "`kernel.toml`");
    let schema = read_schema(ctx, &mut fields);
    let kernel = fields
        .require(
            ctx,
            "kernel",
            "{ name = \"…\", version = \"0.1.0\", license = \"Apache-2.0\" }",
        )
        .and_then(|node| read_kernel_info(ctx, node));
    let ops = match fields.get("ops") {
        Some(node) => read_ops(ctx, node),
        None => {
            ctx.error("missing-field", 0..0, "`kernel.toml` declares no ops")
                .hint("add an `[ops.<name>]` table for each op the kernel provides");
            Vec::new()
        }
    };
    let artifacts = match fields.get("artifacts") {
        Some(node) => reader::array(ctx, node, "artifacts")
            .map(|items| {
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| read_artifact(ctx, item, i + 1))
                    .collect()
            })
            .unwrap_or_default(),
        None => {
            ctx.error("missing-field", 0..0, "`kernel.toml` lists no artifacts")
                .hint("add an `[[artifacts]]` table for each artifact file");
            Vec::new()
        }
    };
    fields.finish(ctx, &["schema", "kernel", "ops", "artifacts"]);
    ManifestParts {
        schema,
        kernel,
        ops,
        artifacts,
    }
}

/// Reads and checks the top-level `schema` number (shared by all three formats).
pub(crate) fn read_schema(ctx: &mut Ctx, fields: &mut Fields<'_, '_>) -> Option<Spanned<u64>> {
    let node = fields.require(ctx, "schema", &SCHEMA.to_string())?;
    let schema = reader::unsigned(ctx, node, "schema")?;
    match *schema.get_ref() {
        SCHEMA => Some(schema),
        found if found > SCHEMA => {
            ctx.error(
                "unsupported-schema",
                schema.span(),
                format!("This file uses schema {found}, but this kernelhub reads schema {SCHEMA}"),
            )
            .hint("upgrade kernelhub to read it");
            None
        }
        found => {
            ctx.error(
                "unsupported-schema",
                schema.span(),
                format!("Unknown schema {found}"),
            )
            .hint(format!("write `schema = {SCHEMA}`"));
            None
        }
    }
}

fn read_kernel_info(ctx: &mut Ctx, node: &Node<'_>) -> Option<KernelInfo> {
    let mut fields = reader::table(ctx, node, "kernel", "`[kernel]`")?;
    let name = fields
        .require(ctx, "name", "\"my-kernel\"")
        .and_then(|n| reader::string(ctx, n, "name"))
        .and_then(|name| check_name(ctx, name, "kernel"));
    let version = fields
        .require(ctx, "version", "\"0.1.0\"")
        .and_then(|n| reader::string(ctx, n, "version"))
        .and_then(|v| match semver::Version::parse(v.get_ref()) {
            Ok(version) => Some(Spanned::new(v.span(), version)),
            Err(e) => {
                ctx.error(
                    "invalid-version",
                    v.span(),
                    format!("`{}` is not a semantic version: {e}", v.get_ref()),
                )
                .hint("write MAJOR.MINOR.PATCH, e.g. \"1.2.0\"");
                None
            }
        });
    let license = fields
        .require(ctx, "license", "\"Apache-2.0\"")
        .and_then(|n| reader::string(ctx, n, "license"))
        .and_then(|l| match spdx::Expression::parse(l.get_ref()) {
            Ok(_) => Some(l),
            Err(e) => {
                ctx.error(
                    "invalid-license",
                    l.span(),
                    format!("`{}` is not an SPDX license expression: {}", l.get_ref(), e.reason),
                )
                .hint("use an identifier from https://spdx.org/licenses/, e.g. \"Apache-2.0\" or \"MIT OR Apache-2.0\"");
                None
            }
        });
    let description = fields
        .get("description")
        .and_then(|n| reader::string(ctx, n, "description"))
        .map(Spanned::into_inner);
    fields.finish(ctx, &["name", "version", "license", "description"]);
    Some(KernelInfo {
        name: name?,
        version: version?,
        license: license?,
        description,
    })
}

/// Kernel and op names: `[a-z][a-z0-9_-]*`, at most 64 bytes.
fn check_name(ctx: &mut Ctx, name: Spanned<String>, what: &str) -> Option<Spanned<String>> {
    let text = name.get_ref();
    let valid = text.len() <= 64
        && text.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        return Some(name);
    }
    ctx.error(
        "invalid-name",
        name.span(),
        format!("`{text}` is not a valid {what} name"),
    )
    .hint("use lower-case letters, digits, `_` and `-`, starting with a letter, at most 64 bytes");
    None
}

/// Whether `name` can be used in expressions and as a WGSL member.
pub(crate) fn is_identifier(name: &str) -> bool {
    name.len() <= 64
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn read_ops(ctx: &mut Ctx, node: &Node<'_>) -> Vec<Op> {
    let DeValue::Table(table) = node.get_ref() else {
        reader::table(ctx, node, "ops", "");
        return Vec::new();
    };
    let mut ops: Vec<Op> = table
        .iter()
        .filter_map(|(key, value)| {
            let name = check_name(
                ctx,
                Spanned::new(key.span(), key.get_ref().to_string()),
                "op",
            )?;
            read_op(ctx, name, value)
        })
        .collect();
    ops.sort_by(|a, b| a.name.get_ref().cmp(b.name.get_ref()));
    ops
}

fn read_op(ctx: &mut Ctx, name: Spanned<String>, node: &Node<'_>) -> Option<Op> {
    let what = format!("op `{}`", name.get_ref());
    let mut fields = reader::table(ctx, node, name.get_ref(), what)?;
    let description = fields
        .get("description")
        .and_then(|n| reader::string(ctx, n, "description"))
        .map(Spanned::into_inner);
    let dtypes = fields
        .require(ctx, "dtypes", "[\"f32\", \"f16\"]")
        .map(|n| reader::string_list(ctx, n, "dtypes", read_dtype));
    let params = fields.require(
        ctx,
        "params",
        "[{ name = \"out\", tensor = \"T\", shape = [\"n\"], written = true }]",
    );
    let params = params
        .and_then(|n| reader::array(ctx, n, "params"))
        .map(|items| {
            items
                .iter()
                .filter_map(|item| read_param(ctx, item))
                .collect::<Vec<_>>()
        });
    fields.finish(ctx, &["description", "dtypes", "params"]);
    Some(Op {
        name,
        description,
        dtypes: dtypes?,
        params: params?,
    })
}

fn read_dtype(ctx: &mut Ctx, text: Spanned<String>) -> Option<Spanned<Dtype>> {
    match text.get_ref().parse() {
        Ok(dtype) => Some(Spanned::new(text.span(), dtype)),
        Err(()) => {
            unknown_name(ctx, &text, "dtype", Dtype::NAMES);
            None
        }
    }
}

/// Reports a value that is not one of `names`, suggesting the nearest.
fn unknown_name(ctx: &mut Ctx, text: &Spanned<String>, what: &str, names: &[&str]) {
    let diagnostic = ctx.error(
        "unknown-value",
        text.span(),
        format!("`{}` is not a known {what}", text.get_ref()),
    );
    match reader::closest(text.get_ref(), names) {
        Some(close) => diagnostic.hint(format!("did you mean `{close}`?")),
        None => diagnostic.hint(format!("expected one of: {}", names.join(", "))),
    }
}

fn read_param(ctx: &mut Ctx, node: &Node<'_>) -> Option<Param> {
    let mut fields = reader::table(ctx, node, "params", "a parameter")?;
    let name = fields
        .require(ctx, "name", "\"x\"")
        .and_then(|n| reader::string(ctx, n, "name"));
    if let Some(name) = &name {
        fields.what = format!("parameter `{}`", name.get_ref());
        if !is_identifier(name.get_ref()) {
            ctx.error(
                "invalid-name",
                name.span(),
                format!("`{}` is not a valid parameter name", name.get_ref()),
            )
            .hint("use letters, digits and `_`, not starting with a digit, at most 64 bytes");
        }
    }
    let tensor = fields.get("tensor");
    let scalar = fields.get("scalar");
    let kind = match (tensor, scalar) {
        (Some(tensor), None) => {
            let dtype = reader::string(ctx, tensor, "tensor").and_then(|text| {
                if text.get_ref() == "T" {
                    Some(Spanned::new(text.span(), TensorDtype::Generic))
                } else {
                    read_dtype(ctx, text)
                        .map(|d| Spanned::new(d.span(), TensorDtype::Fixed(d.into_inner())))
                }
            });
            let shape = fields
                .require(ctx, "shape", "[\"n\"]")
                .and_then(|n| reader::array(ctx, n, "shape"))
                .map(|dims| {
                    dims.iter()
                        .filter_map(|d| read_expr(ctx, d, "shape"))
                        .collect::<Vec<_>>()
                });
            let written = match fields.get("written") {
                Some(n) => reader::boolean(ctx, n, "written"),
                None => Some(false),
            };
            Some(ParamKind::Tensor {
                dtype: dtype?,
                shape: shape?,
                written: written?,
            })
        }
        (None, Some(scalar)) => {
            reader::string(ctx, scalar, "scalar").and_then(|text| match text.get_ref().parse() {
                Ok(ty) => Some(ParamKind::Scalar(Spanned::new(text.span(), ty))),
                Err(()) => {
                    unknown_name(ctx, &text, "scalar type", ScalarType::NAMES);
                    None
                }
            })
        }
        (Some(_), Some(scalar)) => {
            ctx.error(
                "conflicting-fields",
                scalar.span(),
                "A parameter is either a `tensor` or a `scalar`, not both",
            )
            .hint("remove one of them");
            None
        }
        (None, None) => {
            ctx.error(
                "missing-field",
                fields.span(),
                format!("{} has neither `tensor` nor `scalar`", fields.what),
            )
            .hint("add `tensor = \"T\"` (with `shape`) or `scalar = \"u32\"`");
            None
        }
    };
    let is_tensor = matches!(kind, Some(ParamKind::Tensor { .. }));
    let known: &[&str] = if is_tensor {
        &["name", "tensor", "shape", "written"]
    } else {
        &["name", "scalar"]
    };
    fields.finish(ctx, known);
    Some(Param {
        name: name?,
        kind: kind?,
    })
}

/// An expression written as an integer or a string.
fn read_expr(ctx: &mut Ctx, node: &Node<'_>, key: &str) -> Option<Spanned<Expr>> {
    if node.get_ref().is_integer() {
        return reader::unsigned(ctx, node, key)
            .map(|v| Spanned::new(v.span(), Expr::literal(*v.get_ref())));
    }
    let text = match node.get_ref() {
        DeValue::String(_) => reader::string(ctx, node, key)?,
        _ => {
            ctx.error(
                "wrong-type",
                node.span(),
                format!("Each `{key}` value must be an integer or an expression string"),
            )
            .hint("e.g. `256` or `\"ceil_div(n, 256)\"`");
            return None;
        }
    };
    match Expr::parse(text.get_ref()) {
        Ok(expr) => Some(Spanned::new(text.span(), expr)),
        Err(e) => {
            // +1 skips the opening quote; exact for the basic strings manifests use.
            let at = (text.span().start + 1 + e.offset).min(text.span().end);
            // The whole character found there, which need not be ASCII.
            let width = text
                .get_ref()
                .get(e.offset..)
                .and_then(|r| r.chars().next())
                .map_or(1, char::len_utf8);
            ctx.error("invalid-expression", at..at + width, format!("Invalid expression `{}`: {e}", text.get_ref()))
                .hint("expressions use integers, integer parameter names, + - * / %, ( ), ceil_div, min, max");
            None
        }
    }
}

/// Reads 1 to 3 launch dimensions.
fn read_dims(ctx: &mut Ctx, node: &Node<'_>, key: &str) -> Option<Vec<Spanned<Expr>>> {
    let items = reader::array(ctx, node, key)?;
    if !(1..=3).contains(&items.len()) {
        ctx.error(
            "invalid-geometry",
            node.span(),
            format!("`{key}` must have 1 to 3 dimensions, found {}", items.len()),
        )
        .hint("missing dimensions are 1: write `[x]`, `[x, y]` or `[x, y, z]`");
        return None;
    }
    let dims: Vec<_> = items
        .iter()
        .filter_map(|d| read_expr(ctx, d, key))
        .collect();
    (dims.len() == items.len()).then_some(dims)
}

fn read_artifact(ctx: &mut Ctx, node: &Node<'_>, index: usize) -> Option<Artifact> {
    let mut fields = reader::table(ctx, node, "artifacts", format!("artifact {index}"))?;
    let path = fields
        .require(ctx, "path", "\"build/kernel.ptx\"")
        .and_then(|n| reader::string(ctx, n, "path"));
    if let Some(path) = &path {
        fields.what = format!("artifact `{}`", path.get_ref());
    }
    let backend = fields
        .require(ctx, "backend", "\"cuda\"")
        .and_then(|n| reader::string(ctx, n, "backend"))
        .and_then(|text| parse_named(ctx, text, "backend", Backend::NAMES));
    let format = fields
        .require(ctx, "format", "\"ptx\"")
        .and_then(|n| reader::string(ctx, n, "format"))
        .and_then(|text| parse_named(ctx, text, "format", Format::NAMES));
    let targets = match (
        fields.get("targets"),
        backend.as_ref().map(|b| *b.get_ref()),
    ) {
        (Some(node), Some(backend)) => reader::string_list(ctx, node, "targets", |ctx, text| {
            read_target(ctx, text, backend)
        }),
        _ => Vec::new(),
    };
    let min_driver = fields
        .get("min_driver")
        .and_then(|n| reader::string(ctx, n, "min_driver"))
        .and_then(|text| match text.get_ref().parse() {
            Ok(version) => Some(Spanned::new(text.span(), version)),
            Err(()) => {
                ctx.error(
                    "invalid-version",
                    text.span(),
                    format!("`{}` is not a driver version", text.get_ref()),
                )
                .hint("write MAJOR.MINOR, e.g. \"12.0\"");
                None
            }
        });
    let features = fields
        .get("features")
        .map(|n| {
            reader::string_list(ctx, n, "features", |ctx, t| {
                parse_named(ctx, t, "wgpu feature", WgpuFeature::NAMES)
            })
        })
        .unwrap_or_default();
    let size = fields
        .require(ctx, "size", "0")
        .and_then(|n| reader::unsigned(ctx, n, "size"));
    let sha256 = fields
        .require(ctx, "sha256", "\"<64 hex digits>\"")
        .and_then(|n| reader::string(ctx, n, "sha256"))
        .and_then(|text| match Sha256Digest::from_hex(text.get_ref()) {
            Some(digest) => Some(Spanned::new(text.span(), digest)),
            None => {
                ctx.error(
                    "invalid-hash",
                    text.span(),
                    format!("`{}` is not a SHA-256 digest", text.get_ref()),
                )
                .hint("write 64 lower-case hex digits; `kernelhub manifest update` fills it in");
                None
            }
        });
    let entries = fields
        .require(
            ctx,
            "entries",
            "[{ op = \"…\", dtype = \"f32\", symbol = \"…\", grid = [1] }]",
        )
        .and_then(|n| reader::array(ctx, n, "entries"))
        .map(|items| {
            items
                .iter()
                .filter_map(|item| read_entry(ctx, item))
                .collect::<Vec<_>>()
        });
    fields.finish(
        ctx,
        &[
            "backend",
            "format",
            "targets",
            "min_driver",
            "features",
            "path",
            "size",
            "sha256",
            "entries",
        ],
    );
    Some(Artifact {
        backend: backend?,
        format: format?,
        targets,
        min_driver,
        features,
        path: path?,
        size: size?,
        sha256: sha256?,
        entries: entries?,
        span: node.span(),
    })
}

fn parse_named<T: FromStr<Err = ()>>(
    ctx: &mut Ctx,
    text: Spanned<String>,
    what: &str,
    names: &[&str],
) -> Option<Spanned<T>> {
    match text.get_ref().parse() {
        Ok(value) => Some(Spanned::new(text.span(), value)),
        Err(()) => {
            unknown_name(ctx, &text, what, names);
            None
        }
    }
}

fn read_target(ctx: &mut Ctx, text: Spanned<String>, backend: Backend) -> Option<Spanned<Target>> {
    let parsed = match backend {
        Backend::Cuda => text.get_ref().parse::<CudaArch>().map(Target::Cuda),
        Backend::Rocm => text.get_ref().parse::<AmdArch>().map(Target::Rocm),
        Backend::Wgpu => {
            ctx.error(
                "invalid-target",
                text.span(),
                "wgpu artifacts take no `targets`",
            )
            .hint("remove `targets`; wgpu picks the adapter at run time");
            return None;
        }
    };
    match parsed {
        Ok(target) => Some(Spanned::new(text.span(), target)),
        Err(e) => {
            ctx.error("invalid-target", text.span(), capitalise(&e.to_string()))
                .hint(e.reason);
            None
        }
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn read_entry(ctx: &mut Ctx, node: &Node<'_>) -> Option<Entry> {
    let mut fields = reader::table(ctx, node, "entries", "an entry")?;
    let op = fields
        .require(ctx, "op", "\"…\"")
        .and_then(|n| reader::string(ctx, n, "op"));
    let dtype = fields
        .require(ctx, "dtype", "\"f32\"")
        .and_then(|n| reader::string(ctx, n, "dtype"))
        .and_then(|t| read_dtype(ctx, t));
    if let (Some(op), Some(dtype)) = (&op, &dtype) {
        fields.what = format!("the entry for `{}` {}", op.get_ref(), dtype.get_ref());
    }
    let symbol = fields
        .require(ctx, "symbol", "\"…\"")
        .and_then(|n| reader::string(ctx, n, "symbol"));
    let grid = fields
        .require(ctx, "grid", "[1]")
        .and_then(|n| read_dims(ctx, n, "grid"));
    let block = fields.get("block").map(|n| read_dims(ctx, n, "block"));
    let shared_mem = fields
        .get("shared_mem")
        .map(|n| read_expr(ctx, n, "shared_mem"));
    fields.finish(
        ctx,
        &["op", "dtype", "symbol", "grid", "block", "shared_mem"],
    );
    Some(Entry {
        op: op?,
        dtype: dtype?,
        symbol: symbol?,
        grid: grid?,
        block: block.map_or(Some(None), |b| b.map(Some))?,
        shared_mem: shared_mem.map_or(Some(None), |s| s.map(Some))?,
        span: node.span(),
    })
}

// Serialization writes the TOML form back (used by tests that round-trip
// manifests, and by tools that emit manifests).

fn display<T: fmt::Display, S: Serializer>(value: &Spanned<T>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value.get_ref())
}

fn display_option<T: fmt::Display, S: Serializer>(
    value: &Option<Spanned<T>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v.get_ref()),
        None => s.serialize_none(),
    }
}

fn display_list<T: fmt::Display, S: Serializer>(
    values: &[Spanned<T>],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(values.iter().map(|v| v.get_ref().to_string()))
}

#[derive(Serialize)]
#[serde(untagged)]
enum ExprValue<'a> {
    Literal(u64),
    Text(&'a str),
}

fn expr_value(expr: &Expr) -> ExprValue<'_> {
    match expr.source().parse() {
        Ok(n) => ExprValue::Literal(n),
        Err(_) => ExprValue::Text(expr.source()),
    }
}

fn expr_list<S: Serializer>(values: &[Spanned<Expr>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(values.iter().map(|v| expr_value(v.get_ref())))
}

fn expr_list_option<S: Serializer>(
    values: &Option<Vec<Spanned<Expr>>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match values {
        Some(v) => expr_list(v, s),
        None => s.serialize_none(),
    }
}

fn expr_option<S: Serializer>(value: &Option<Spanned<Expr>>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => expr_value(v.get_ref()).serialize(s),
        None => s.serialize_none(),
    }
}

fn ops_as_table<S: Serializer>(ops: &[Op], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(ops.iter().map(|op| (op.name.get_ref(), op)))
}

impl Serialize for Param {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("name", self.name.get_ref())?;
        match &self.kind {
            ParamKind::Tensor {
                dtype,
                shape,
                written,
            } => {
                map.serialize_entry("tensor", &dtype.get_ref().to_string())?;
                let dims: Vec<_> = shape.iter().map(|d| expr_value(d.get_ref())).collect();
                map.serialize_entry("shape", &dims)?;
                if *written {
                    map.serialize_entry("written", &true)?;
                }
            }
            ParamKind::Scalar(ty) => map.serialize_entry("scalar", ty.get_ref().as_str())?,
        }
        map.end()
    }
}

impl Serialize for Dtype {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
