//! `kernelhub check`: is this kernel repo publishable?
//!
//! Reads a repo's `kernel.toml`, applies the format and cross-field rules,
//! then opens every artifact: the path stays inside the repo (symlinks
//! included), size and SHA-256 match, and the contents agree with the
//! manifest — PTX `.target`/`.version`/`.entry` and each entry's `.param`
//! list, ELF machine, arch and symbols (and each kernel's parameter list:
//! hsaco metadata, a cubin's parameter table), the same for each cubin and
//! PTX in a fatbin, WGSL entry points, bindings and workgroup size. Each
//! artifact is read once; the bytes inspected are the bytes hashed.

use std::collections::HashMap;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::diagnostic::Diagnostic;
use crate::hash::{Sha256Digest, hash_reader};
use crate::introspect::cubin;
use crate::introspect::elf::{self, GpuVendor};
use crate::introspect::fatbin::{self, FatbinEntry, FatbinKind};
use crate::introspect::ptx;
use crate::introspect::wgsl::{BindingKind, Element, WgslCapabilities, WgslModule};
use crate::kernel::{
    Artifact, Dtype, Entry, Format, ManifestParts, Op, Param, ParamKind, ScalarType, Strictness,
    TensorDtype, WgpuFeature, find_op,
};
use crate::reader::MAX_FILE_SIZE;
use crate::target::{CudaArch, Target};
use crate::validate::{check_relative_path, validate};

/// Entries of a fatbin with problems after which the rest are not inspected.
const FATBIN_ENTRIES_WITH_PROBLEMS: usize = 8;

/// Artifacts larger than this are hashed but their contents are not inspected.
const MAX_INSPECT_SIZE: u64 = 512 * 1024 * 1024;

/// Everything `check` found in one kernel repo.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Every problem, in the order found.
    pub diagnostics: Vec<Diagnostic>,
    /// Text of the files diagnostics point into, for rendering snippets.
    pub sources: HashMap<PathBuf, String>,
    /// What could be read of the manifest.
    pub manifest: Option<ManifestParts>,
    /// How many artifact files were opened and hashed.
    pub artifacts_checked: usize,
    /// Bytes hashed across all artifacts.
    pub bytes_hashed: u64,
}

impl CheckReport {
    /// Number of diagnostics of `severity`.
    pub fn count(&self, severity: crate::Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    }
}

/// A `check` that could not start: the path given is not a kernel repo.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Nothing at the path.
    #[error("`{}` does not exist", .0.display())]
    NotFound(PathBuf),
    /// A directory without a `kernel.toml`.
    #[error("`{}` has no `kernel.toml`", .0.display())]
    NoManifest(PathBuf),
    /// The manifest could not be read at all.
    #[error("Could not read `{}`", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Checks the kernel repo at `path`: a directory holding `kernel.toml`, or the
/// `kernel.toml` file itself.
pub fn check_repo(path: &Path) -> Result<CheckReport, CheckError> {
    let manifest_path = if path.is_dir() {
        let manifest = path.join("kernel.toml");
        if !manifest.is_file() {
            return Err(CheckError::NoManifest(path.to_path_buf()));
        }
        manifest
    } else if path.exists() {
        path.to_path_buf()
    } else {
        return Err(CheckError::NotFound(path.to_path_buf()));
    };
    let root = match manifest_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut report = CheckReport::default();
    let Some(source) = read_text(&manifest_path, &mut report.diagnostics)? else {
        return Ok(report);
    };
    let parsed = ManifestParts::parse(&source, &manifest_path, Strictness::Check);
    report.diagnostics.extend(parsed.diagnostics);
    report.sources.insert(manifest_path.clone(), source);
    let Some(manifest) = parsed.value else {
        return Ok(report);
    };
    report.diagnostics.extend(validate(
        &manifest.ops,
        &manifest.artifacts,
        &manifest_path,
        parsed.complete,
    ));
    let mut checker = ArtifactChecker {
        ops: &manifest.ops,
        manifest_path: &manifest_path,
        root: &root,
        report: &mut report,
    };
    for artifact in &manifest.artifacts {
        checker.check(artifact);
    }
    report.manifest = Some(manifest);
    Ok(report)
}

/// Reads a manifest as UTF-8 text within [`MAX_FILE_SIZE`]; problems with
/// the bytes become diagnostics, an unreadable file an error.
fn read_text(path: &Path, diagnostics: &mut Vec<Diagnostic>) -> Result<Option<String>, CheckError> {
    let io = |source| CheckError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = fs_err::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        diagnostics.push(
            Diagnostic::error(
                "file-too-large",
                path,
                None,
                format!("Manifest is larger than {} MiB", MAX_FILE_SIZE >> 20),
            )
            .with_hint("a kernel.toml is a few kilobytes; check that this is the right file"),
        );
        return Ok(None);
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Some(text)),
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let text = String::from_utf8_lossy(valid);
            let (line, column) = crate::diagnostic::line_col(&text, text.len());
            diagnostics.push(
                Diagnostic::error(
                    "not-utf8",
                    path,
                    None,
                    format!("Manifest is not UTF-8: invalid byte at line {line}, column {column}"),
                )
                .with_hint("save the file as UTF-8"),
            );
            Ok(None)
        }
    }
}

struct ArtifactChecker<'a> {
    ops: &'a [Op],
    manifest_path: &'a Path,
    root: &'a Path,
    report: &'a mut CheckReport,
}

impl ArtifactChecker<'_> {
    fn error(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.report
            .diagnostics
            .push(Diagnostic::error(code, self.manifest_path, Some(span), message).with_hint(hint));
    }

    fn warning(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.report.diagnostics.push(
            Diagnostic::warning(code, self.manifest_path, Some(span), message).with_hint(hint),
        );
    }

    fn check(&mut self, artifact: &Artifact) {
        let relative = artifact.path.get_ref();
        if check_relative_path(relative).is_err() {
            return; // already reported by `validate`
        }
        let Some(file) = self.locate(artifact) else {
            return;
        };
        let metadata = match fs_err::metadata(&file) {
            Ok(m) => m,
            Err(e) => {
                self.error(
                    "unreadable",
                    artifact.path.span(),
                    format!("Cannot read `{relative}`: {e}"),
                    "check the file's permissions",
                );
                return;
            }
        };
        let declared_size = *artifact.size.get_ref();
        if metadata.len() != declared_size {
            self.error(
                "size-mismatch",
                artifact.size.span(),
                format!(
                    "`{relative}` is {} bytes, the manifest says {declared_size}",
                    metadata.len()
                ),
                "run `kernelhub manifest update` after rebuilding artifacts",
            );
        }
        let inspect = metadata.len() <= MAX_INSPECT_SIZE;
        let read = fs_err::File::open(&file).and_then(|f| {
            if inspect {
                let mut bytes = Vec::with_capacity(metadata.len() as usize);
                f.take(MAX_INSPECT_SIZE + 1).read_to_end(&mut bytes)?;
                let digest = Sha256Digest::of(&bytes);
                Ok((digest, bytes.len() as u64, Some(bytes)))
            } else {
                hash_reader(f).map(|(digest, len)| (digest, len, None))
            }
        });
        let (digest, length, bytes) = match read {
            Ok(read) => read,
            Err(e) => {
                self.error(
                    "unreadable",
                    artifact.path.span(),
                    format!("Cannot read `{relative}`: {e}"),
                    "check the file's permissions",
                );
                return;
            }
        };
        self.report.artifacts_checked += 1;
        self.report.bytes_hashed += length;
        if digest != *artifact.sha256.get_ref() {
            self.error(
                "hash-mismatch",
                artifact.sha256.span(),
                format!(
                    "SHA-256 of `{relative}` does not match: expected {}, computed {digest}",
                    artifact.sha256.get_ref()
                ),
                "if the artifact was rebuilt on purpose, run `kernelhub manifest update`",
            );
        }
        let Some(bytes) = bytes else {
            self.warning(
                "not-inspected",
                artifact.path.span(),
                format!(
                    "`{relative}` is larger than {} MiB; its contents were not inspected",
                    MAX_INSPECT_SIZE >> 20
                ),
                "split the artifact if it really is this large",
            );
            return;
        };
        match artifact.format.get_ref() {
            Format::Ptx => self.check_ptx(artifact, &bytes),
            Format::Cubin | Format::Hsaco => self.check_elf(artifact, &bytes),
            Format::Wgsl => self.check_wgsl(artifact, &file, bytes),
            Format::Fatbin => self.check_fatbin(artifact, &bytes),
            Format::SharedLibrary => self.check_shared_library(artifact, &bytes),
        }
    }

    /// Resolves the artifact's path under the repo root, refusing symlinks that
    /// lead outside it and anything that is not a regular file.
    fn locate(&mut self, artifact: &Artifact) -> Option<PathBuf> {
        let relative = artifact.path.get_ref();
        let span = artifact.path.span();
        let file = self.root.join(relative);
        match fs_err::symlink_metadata(&file) {
            Err(_) => {
                self.error(
                    "missing-file",
                    span,
                    format!("`{relative}` does not exist in `{}`", self.root.display()),
                    "build the artifact, or fix the path",
                );
                return None;
            }
            Ok(m) if m.is_dir() => {
                self.error(
                    "not-a-file",
                    span,
                    format!("`{relative}` is a directory"),
                    "point `path` at the artifact file",
                );
                return None;
            }
            Ok(_) => {}
        }
        let canonical_root = std::fs::canonicalize(self.root).ok()?;
        match std::fs::canonicalize(&file) {
            Ok(target) if target.starts_with(&canonical_root) && target.is_file() => Some(file),
            Ok(target) if target.starts_with(&canonical_root) => {
                self.error(
                    "not-a-file",
                    span,
                    format!("`{relative}` is not a regular file"),
                    "point `path` at the artifact file",
                );
                None
            }
            Ok(target) => {
                self.error(
                    "path-escapes",
                    span,
                    format!(
                        "`{relative}` is a symlink to `{}`, outside the kernel repo",
                        target.display()
                    ),
                    "copy the artifact into the repo instead of linking to it",
                );
                None
            }
            Err(e) => {
                self.error(
                    "unreadable",
                    span,
                    format!("Cannot resolve `{relative}`: {e}"),
                    "a symlink along the path is broken or loops; replace it with the file",
                );
                None
            }
        }
    }

    fn check_ptx(&mut self, artifact: &Artifact, bytes: &[u8]) {
        let relative = artifact.path.get_ref();
        let info = match ptx::parse_ptx(bytes) {
            Ok(info) => info,
            Err(e) => {
                self.error(
                    "invalid-ptx",
                    artifact.path.span(),
                    format!("`{relative}` is not valid PTX: {e}"),
                    "check that `path` names the PTX built for this manifest",
                );
                return;
            }
        };
        let ptx_target = info.target.parse::<CudaArch>().ok();
        let targets_span = targets_span(artifact);
        match ptx_target {
            None => self.error(
                "target-mismatch",
                targets_span,
                format!(
                    "`{relative}` has `.target {}`, which is not an `sm_XY` architecture",
                    info.target
                ),
                "build the PTX for a real architecture, e.g. `--cuda-gpu-arch=sm_80`",
            ),
            Some(ptx_arch) => {
                if !artifact
                    .targets
                    .iter()
                    .any(|t| *t.get_ref() == Target::Cuda(ptx_arch))
                {
                    self.error(
                        "target-mismatch",
                        targets_span,
                        format!(
                            "`{relative}` is PTX for `{ptx_arch}`, which `targets` does not list"
                        ),
                        format!("list `{ptx_arch}` in `targets`"),
                    );
                }
                for target in &artifact.targets {
                    if let Target::Cuda(arch) = target.get_ref()
                        && !ptx_runs_on(ptx_arch, *arch)
                    {
                        self.error(
                            "target-mismatch",
                            target.span(),
                            format!("PTX built for `{ptx_arch}` cannot run on `{arch}`"),
                            "list only architectures at or above the PTX's `.target`",
                        );
                    }
                }
            }
        }
        let code = format!("`{relative}`");
        self.check_ptx_driver(artifact, &code, info.version);
        self.check_ptx_kernels(artifact, &code, &info);
    }

    /// The artifact's `min_driver` against the driver that PTX ISA `version`
    /// needs; `code` names the PTX in messages.
    fn check_ptx_driver(&mut self, artifact: &Artifact, code: &str, version: (u32, u32)) {
        let (major, minor) = version;
        match (ptx::min_driver_for_ptx(version), &artifact.min_driver) {
            (Some((need_major, need_minor)), Some(declared)) => {
                if (declared.get_ref().major, declared.get_ref().minor) < (need_major, need_minor) {
                    self.error(
                        "driver-mismatch",
                        declared.span(),
                        sentence(format!("{code} is PTX ISA {major}.{minor}, which needs CUDA driver {need_major}.{need_minor}, not {}", declared.get_ref())),
                        format!("write `min_driver = \"{need_major}.{need_minor}\"`"),
                    );
                }
            }
            (Some((need_major, need_minor)), None) => self.warning(
                "missing-min-driver",
                artifact.path.span(),
                sentence(format!("{code} is PTX ISA {major}.{minor}; older drivers than CUDA {need_major}.{need_minor} cannot load it")),
                format!("add `min_driver = \"{need_major}.{need_minor}\"` so the runtime can explain a refusal"),
            ),
            (None, _) => self.warning(
                "unknown-ptx-version",
                artifact.path.span(),
                sentence(format!("{code} is PTX ISA {major}.{minor}, which this kernelhub does not know")),
                "set `min_driver` by hand from NVIDIA's PTX ISA release notes",
            ),
        }
    }

    /// Each entry's kernel in the PTX `info` (named `code` in messages), with
    /// its op's signature.
    fn check_ptx_kernels(&mut self, artifact: &Artifact, code: &str, info: &ptx::PtxInfo) {
        for entry in &artifact.entries {
            match info.kernel(entry.symbol.get_ref()) {
                None => self.missing_symbol(code, entry, &info.entries),
                Some(kernel) => self.check_ptx_params(code, entry, kernel),
            }
        }
    }

    /// The `.param` list of the PTX entry `kernel` against the signature of
    /// `entry`'s op; `code` names the PTX in messages.
    fn check_ptx_params(&mut self, code: &str, entry: &Entry, kernel: &ptx::PtxEntry) {
        let params = match &kernel.params {
            Ok(params) => params,
            Err(e) => {
                self.warning(
                    "unverified-signature",
                    entry.symbol.span(),
                    format!(
                        "Cannot read the parameters of kernel `{}` in {code} ({e}); its signature was not checked",
                        kernel.name
                    ),
                    "check that the PTX assembles (`ptxas`); if it does, report the PTX to kernelhub",
                );
                return;
            }
        };
        let found: Vec<KernelParam> = params
            .iter()
            .map(|p| KernelParam {
                ty: p.ty.clone(),
                what: format!("`{}` `{}`", p.ty, p.name),
                place: format!("at {code} line {}", p.line),
                size: p.size,
            })
            .collect();
        let place = format!("{code} (line {})", kernel.line);
        self.check_signature(entry, &place, &found);
    }

    /// The argument lists of an AMD code object's metadata against the signatures of
    /// the entries; entries without their kernel are reported elsewhere.
    fn check_hsaco_args(&mut self, artifact: &Artifact, bytes: &[u8], info: &elf::ElfInfo) {
        let relative = artifact.path.get_ref();
        let kernels = match elf::amdgpu_kernels(bytes) {
            // Code object v2 keeps YAML metadata, which is not read.
            Ok(None) => return,
            Ok(Some(kernels)) => kernels,
            Err(e) => {
                self.warning(
                    "unverified-signature",
                    artifact.path.span(),
                    format!("Cannot read the kernel metadata of `{relative}` ({e}); kernel signatures were not checked"),
                    "check that the code object loads (`llvm-readelf --notes`); rebuild it if not",
                );
                return;
            }
        };
        for entry in &artifact.entries {
            let symbol = entry.symbol.get_ref();
            if !info.has_symbol(symbol) || !info.has_kernel_descriptor(symbol) {
                continue; // reported as `missing-symbol`
            }
            let Some(kernel) = kernels.iter().find(|k| k.name == *symbol) else {
                self.warning(
                    "unverified-signature",
                    entry.symbol.span(),
                    format!("The metadata of `{relative}` does not describe kernel `{symbol}`; its signature was not checked"),
                    "rebuild the code object with a current compiler, which describes every kernel",
                );
                continue;
            };
            let found: Vec<KernelParam> = kernel
                .args
                .iter()
                .map(|a| KernelParam {
                    ty: format!("{}({})", a.value_kind, a.size),
                    what: match &a.name {
                        Some(name) => format!("`{}` `{name}`", a.value_kind),
                        None => format!("`{}`", a.value_kind),
                    },
                    place: format!(
                        "in the metadata of `{relative}` (argument offset {})",
                        a.offset
                    ),
                    size: Some(a.size),
                })
                .collect();
            let place = format!("`{relative}`");
            self.check_signature(entry, &place, &found);
        }
    }

    /// Whether the kernel's parameters `found` take what kernelhub passes for the op of
    /// `entry`: one argument per op parameter, in order, of the same size.
    fn check_signature(&mut self, entry: &Entry, place: &str, found: &[KernelParam]) {
        let Some(op) = find_op(self.ops, entry.op.get_ref()) else {
            return; // reported by `validate`
        };
        let symbol = entry.symbol.get_ref();
        let op_name = op.name.get_ref();
        if op.params.len() != found.len() {
            let kernel: Vec<&str> = found.iter().map(|p| p.ty.as_str()).collect();
            let passed: Vec<String> = op
                .params
                .iter()
                .map(|p| format!("{}: {}", p.name.get_ref(), param_type(p)))
                .collect();
            self.report.diagnostics.push(
                Diagnostic::error(
                    "signature-mismatch",
                    self.manifest_path,
                    Some(entry.symbol.span()),
                    format!(
                        "Kernel `{symbol}` in {place} takes {}, but op `{op_name}` passes {}",
                        count(found.len(), "parameter"),
                        count(op.params.len(), "argument"),
                    ),
                )
                .with_label(format!(
                    "kernel ({}), op ({})",
                    kernel.join(", "),
                    passed.join(", ")
                ))
                .with_hint(format!(
                    "the driver reads one argument per kernel parameter: make `[ops.{op_name}] params` list the kernel's parameters in order, or rebuild the kernel for this signature"
                )),
            );
            return;
        }
        for (index, (param, kernel)) in op.params.iter().zip(found).enumerate() {
            let want = abi_size(param);
            if kernel.size == Some(want) {
                continue;
            }
            let have = match kernel.size {
                Some(n) => format!("{n} bytes"),
                None => "not a size kernelhub can pass".to_owned(),
            };
            self.error(
                "signature-mismatch",
                entry.symbol.span(),
                format!(
                    "Parameter {index} (0-based) of kernel `{symbol}` is {} ({have}) {}, but op `{op_name}` passes `{}: {}` ({want} bytes)",
                    kernel.what,
                    kernel.place,
                    param.name.get_ref(),
                    param_type(param),
                ),
                format!(
                    "tensors are passed as 8-byte device pointers, u32/i32/f32 scalars as 4 bytes, u64/i64 as 8: fix the type in `[ops.{op_name}] params` or in the kernel"
                ),
            );
        }
    }

    /// `entry`'s kernel is not among `found`, the kernels `code` defines.
    fn missing_symbol(&mut self, code: &str, entry: &Entry, found: &[String]) {
        let listed = if found.is_empty() {
            "it defines no kernels".to_string()
        } else {
            format!("it defines: {}", found.join(", "))
        };
        self.error(
            "missing-symbol",
            entry.symbol.span(),
            sentence(format!("{code} has no kernel `{}`", entry.symbol.get_ref())),
            listed,
        );
    }

    /// A host library: an ELF shared object exporting every entry symbol.
    fn check_shared_library(&mut self, artifact: &Artifact, bytes: &[u8]) {
        use object::{Object, ObjectKind, ObjectSymbol};
        let relative = artifact.path.get_ref();
        let file = match object::File::parse(bytes) {
            Ok(file) if file.kind() == ObjectKind::Dynamic => file,
            _ => {
                self.error(
                    "invalid-elf",
                    artifact.path.span(),
                    format!("`{relative}` is not an ELF shared library"),
                    "a `shared-library` artifact is a `.so` built with `-shared`",
                );
                return;
            }
        };
        let exported: Vec<&str> = file
            .dynamic_symbols()
            .filter(|s| s.is_definition())
            .filter_map(|s| s.name().ok())
            .collect();
        for entry in &artifact.entries {
            let symbol = entry.symbol.get_ref();
            if !exported.contains(&symbol.as_str()) {
                self.error(
                    "missing-symbol",
                    entry.symbol.span(),
                    format!("`{relative}` exports no symbol `{symbol}`"),
                    "export it (`extern \"C\"`, default visibility) or fix `symbol`",
                );
            }
        }
    }

    fn check_elf(&mut self, artifact: &Artifact, bytes: &[u8]) {
        let relative = artifact.path.get_ref();
        let info = match elf::parse_elf(bytes) {
            Ok(info) => info,
            Err(e) => {
                self.error(
                    "invalid-elf",
                    artifact.path.span(),
                    format!("`{relative}` is not a GPU code object: {e}"),
                    "check that `path` names the file built for this manifest",
                );
                return;
            }
        };
        let expected = if *artifact.format.get_ref() == Format::Cubin {
            GpuVendor::Nvidia
        } else {
            GpuVendor::Amd
        };
        if info.vendor != expected {
            self.error(
                "wrong-machine",
                artifact.format.span(),
                format!(
                    "`{relative}` is an ELF for {:?} GPUs, but its format is `{}`",
                    info.vendor,
                    artifact.format.get_ref()
                ),
                "fix `format` and `backend`, or point `path` at the right file",
            );
            return;
        }
        let targets_span = targets_span(artifact);
        match &info.arch {
            None => self.warning(
                "unknown-arch",
                targets_span,
                format!("Cannot tell the architecture of `{relative}` (ELF flags {:#x})", info.raw_flags),
                "kernelhub may be older than this architecture; the declared targets were not verified",
            ),
            Some(arch) => self.check_elf_targets(artifact, arch, &info.features),
        }
        let functions: Vec<String> = info
            .symbols
            .iter()
            .filter(|s| !s.ends_with(".kd"))
            .cloned()
            .collect();
        for entry in &artifact.entries {
            let symbol = entry.symbol.get_ref();
            if !info.symbols.iter().any(|s| s == symbol) {
                self.missing_symbol(&format!("`{relative}`"), entry, &functions);
            } else if expected == GpuVendor::Amd
                && !info.symbols.iter().any(|s| *s == format!("{symbol}.kd"))
            {
                self.error(
                    "missing-symbol",
                    entry.symbol.span(),
                    format!("`{relative}` defines `{symbol}` but no kernel descriptor `{symbol}.kd`: it is not a kernel"),
                    "declare it as a kernel (`__global__` / `amdgpu_kernel`) and rebuild",
                );
            }
        }
        match expected {
            GpuVendor::Amd => self.check_hsaco_args(artifact, bytes, &info),
            GpuVendor::Nvidia => {
                self.check_cubin_params(artifact, &format!("`{relative}`"), bytes, &info)
            }
        }
    }

    /// Each entry's kernel's parameter table in a cubin against the signature of the
    /// entry's op; entries without their kernel are reported elsewhere. The table's
    /// format is NVIDIA's and undocumented ([`cubin`]): a table kernelhub cannot read
    /// is a warning, not an error. `code` names the cubin in messages.
    fn check_cubin_params(
        &mut self,
        artifact: &Artifact,
        code: &str,
        bytes: &[u8],
        info: &elf::ElfInfo,
    ) {
        let cubin = match cubin::Cubin::parse(bytes) {
            Ok(cubin) => cubin,
            Err(e) => {
                self.warning(
                    "unverified-signature",
                    artifact.path.span(),
                    format!("Cannot read the sections of {code} ({e}); kernel signatures were not checked"),
                    "check that the cubin loads (`cuobjdump -elf`); rebuild it if not",
                );
                return;
            }
        };
        for entry in &artifact.entries {
            let symbol = entry.symbol.get_ref();
            if !info.has_symbol(symbol) {
                continue; // reported as `missing-symbol`
            }
            let params = match cubin.kernel_params(symbol) {
                Ok(Some(params)) => params,
                Ok(None) => {
                    self.warning(
                        "unverified-signature",
                        entry.symbol.span(),
                        sentence(format!("{code} has no parameter table for kernel `{symbol}` (section `.nv.info.{symbol}`); its signature was not checked")),
                        "rebuild the cubin with a current ptxas or nvcc, which writes one for every kernel",
                    );
                    continue;
                }
                Err(e) => {
                    self.warning(
                        "unverified-signature",
                        entry.symbol.span(),
                        format!("Cannot read the parameter table of kernel `{symbol}` in {code} ({e}); its signature was not checked"),
                        "if the cubin loads and runs, report it to kernelhub: the table's format is NVIDIA's and undocumented",
                    );
                    continue;
                }
            };
            let found: Vec<KernelParam> = params
                .iter()
                .map(|p| KernelParam {
                    ty: format!("{} bytes", p.size),
                    what: format!("the one at offset {}", p.offset),
                    place: format!("in the parameter table of {code}"),
                    size: Some(u64::from(p.size)),
                })
                .collect();
            self.check_signature(entry, code, &found);
        }
    }

    /// A fatbin: every declared target is served by one of its cubins or PTX,
    /// and each of them that is stored plain is checked as a lone cubin or
    /// PTX is (the driver picks one per device). Compressed ones are listed
    /// in a warning. After [`FATBIN_ENTRIES_WITH_PROBLEMS`] entries with
    /// problems the rest are not inspected, so a hostile file cannot flood
    /// the report.
    fn check_fatbin(&mut self, artifact: &Artifact, bytes: &[u8]) {
        let relative = artifact.path.get_ref();
        let entries = match fatbin::parse_fatbin(bytes) {
            Ok(entries) => entries,
            Err(e) => {
                self.error(
                    "invalid-fatbin",
                    artifact.path.span(),
                    format!("`{relative}` is not a valid fatbin: {e}"),
                    "check that `path` names the fatbin built for this manifest (`nvcc -fatbin` or `fatbinary --create`)",
                );
                return;
            }
        };
        // Its cubins and PTX, each with what it is called in messages.
        let code: Vec<(&FatbinEntry, String)> = entries
            .iter()
            .filter_map(|entry| {
                let kind = match entry.kind {
                    FatbinKind::Elf => "cubin",
                    FatbinKind::Ptx => "PTX",
                    FatbinKind::Other(_) => return None,
                };
                Some((entry, format!("{} {kind}", entry.arch)))
            })
            .collect();
        if code.is_empty() {
            self.error(
                "invalid-fatbin",
                artifact.path.span(),
                format!("`{relative}` holds no cubin and no PTX"),
                "rebuild the fatbin with code for the declared targets",
            );
            return;
        }
        let (mut with_problems, mut not_inspected) = (0, 0);
        for (entry, label) in code.iter().filter(|(entry, _)| !entry.compressed) {
            if with_problems == FATBIN_ENTRIES_WITH_PROBLEMS {
                not_inspected += 1;
                continue;
            }
            let before = self.report.diagnostics.len();
            let payload = &bytes[entry.payload.clone()];
            let name = format!("the {label} in `{relative}`");
            if entry.kind == FatbinKind::Elf {
                self.check_fatbin_cubin(artifact, entry, &name, payload);
            } else {
                self.check_fatbin_ptx(artifact, entry, &name, payload);
            }
            if self.report.diagnostics.len() > before {
                with_problems += 1;
            }
        }
        if not_inspected > 0 {
            self.warning(
                "not-inspected",
                artifact.path.span(),
                format!(
                    "`{relative}`: {} not inspected, after {with_problems} with problems",
                    if not_inspected == 1 {
                        "1 more entry was".to_owned()
                    } else {
                        format!("{not_inspected} more entries were")
                    }
                ),
                "fix the problems above and check again",
            );
        }
        for target in &artifact.targets {
            let Target::Cuda(device) = target.get_ref() else {
                continue; // a ROCm target on a CUDA artifact is reported by `validate`
            };
            let served = code.iter().any(|(entry, _)| {
                if entry.kind == FatbinKind::Elf {
                    sass_runs_on(entry.arch, *device)
                } else {
                    ptx_runs_on(entry.arch, *device)
                }
            });
            if !served {
                self.error(
                    "target-mismatch",
                    target.span(),
                    format!(
                        "Nothing in `{relative}` runs on `{device}`: it holds {}",
                        distinct(code.iter().map(|(_, label)| label)).join(", ")
                    ),
                    format!("add code for `{device}` to the fatbin, or remove it from `targets`"),
                );
            }
        }
        let compressed = distinct(
            code.iter()
                .filter(|(entry, _)| entry.compressed)
                .map(|(_, label)| label),
        );
        if !compressed.is_empty() {
            let (one, is) = if compressed.len() == 1 {
                ("it", "is")
            } else {
                ("them", "are")
            };
            self.warning(
                "unverified-signature",
                artifact.path.span(),
                format!(
                    "The {} in `{relative}` {is} compressed, and kernelhub does not inflate {one}: kernels and signatures there were not checked",
                    compressed.join(", "),
                ),
                "build the fatbin uncompressed (`fatbinary -compress=false`, or `nvcc -Xfatbin=-compress=false`) so every entry is checked",
            );
        }
    }

    /// A fatbin's cubin, named `code` in messages: built for the architecture
    /// the fatbin says, its kernels and their parameter tables.
    fn check_fatbin_cubin(
        &mut self,
        artifact: &Artifact,
        entry: &FatbinEntry,
        code: &str,
        cubin: &[u8],
    ) {
        let info = match elf::parse_elf(cubin) {
            Ok(info) if info.vendor == GpuVendor::Nvidia => info,
            Ok(_) => {
                self.error(
                    "invalid-fatbin",
                    artifact.path.span(),
                    sentence(format!("{code} is an ELF for AMD GPUs")),
                    "rebuild the fatbin from NVIDIA cubins",
                );
                return;
            }
            Err(e) => {
                self.error(
                    "invalid-fatbin",
                    artifact.path.span(),
                    sentence(format!("{code} is not a cubin: {e}")),
                    "rebuild the fatbin",
                );
                return;
            }
        };
        // The ELF header cannot always tell `sm_90a` from `sm_90`, so only the number is compared.
        if let Some(built) = info
            .arch
            .as_deref()
            .and_then(|a| a.parse::<CudaArch>().ok())
        {
            self.check_fatbin_arch(artifact, entry, code, built);
        }
        for e in &artifact.entries {
            if !info.has_symbol(e.symbol.get_ref()) {
                self.missing_symbol(code, e, &info.symbols);
            }
        }
        self.check_cubin_params(artifact, code, cubin, &info);
    }

    /// A fatbin's PTX, named `code` in messages: its `.target` is the
    /// architecture the fatbin says, its ISA version suits `min_driver`, its
    /// kernels have their ops' signatures.
    fn check_fatbin_ptx(
        &mut self,
        artifact: &Artifact,
        entry: &FatbinEntry,
        code: &str,
        text: &[u8],
    ) {
        let info = match ptx::parse_ptx(text) {
            Ok(info) => info,
            Err(e) => {
                self.error(
                    "invalid-fatbin",
                    artifact.path.span(),
                    sentence(format!("{code} is not valid PTX: {e}")),
                    "rebuild the fatbin",
                );
                return;
            }
        };
        if let Ok(built) = info.target.parse::<CudaArch>() {
            self.check_fatbin_arch(artifact, entry, code, built);
        }
        self.check_ptx_driver(artifact, code, info.version);
        self.check_ptx_kernels(artifact, code, &info);
    }

    /// The fatbin's record of an entry's architecture against the one its
    /// code is built for: the driver picks the entry by the record.
    fn check_fatbin_arch(
        &mut self,
        artifact: &Artifact,
        entry: &FatbinEntry,
        code: &str,
        built: CudaArch,
    ) {
        if built.number() != entry.arch.number() {
            self.error(
                "invalid-fatbin",
                artifact.path.span(),
                sentence(format!(
                    "{code} is built for `{built}`, but the fatbin records it as `{}`, so the driver would pick it for the wrong GPUs",
                    entry.arch
                )),
                "rebuild the fatbin, giving each image the architecture it was compiled for",
            );
        }
    }

    fn check_elf_targets(&mut self, artifact: &Artifact, arch: &str, features: &[String]) {
        let relative = artifact.path.get_ref();
        let matches_declared = artifact.targets.iter().any(|t| match t.get_ref() {
            Target::Cuda(declared) => declared.to_string() == arch,
            Target::Rocm(declared) => {
                declared.processor == arch
                    && declared.features.iter().all(|(name, on)| {
                        // The object's setting must agree where it has one; "any" runs either way.
                        let want = format!("{name}{}", if *on { '+' } else { '-' });
                        let opposite = format!("{name}{}", if *on { '-' } else { '+' });
                        features.contains(&want) || !features.contains(&opposite)
                    })
            }
        });
        if !matches_declared {
            let built = if features.is_empty() {
                arch.to_string()
            } else {
                format!("{arch}:{}", features.join(":"))
            };
            self.error(
                "target-mismatch",
                targets_span(artifact),
                format!("`{relative}` is built for `{built}`, which `targets` does not list"),
                format!("list `{built}` in `targets`, or rebuild for the declared targets"),
            );
        }
        for target in &artifact.targets {
            let other = match target.get_ref() {
                Target::Cuda(declared) => {
                    let built = arch.parse::<CudaArch>().ok();
                    built.is_some_and(|b| !sass_runs_on(b, *declared))
                }
                Target::Rocm(declared) => declared.processor != arch,
            };
            if other {
                self.error(
                    "target-mismatch",
                    target.span(),
                    format!(
                        "`{relative}` is built for `{arch}` and cannot run on `{}`",
                        target.get_ref()
                    ),
                    "an artifact of machine code lists only the architectures it runs on",
                );
            }
        }
    }

    fn check_wgsl(&mut self, artifact: &Artifact, file: &Path, bytes: Vec<u8>) {
        let relative = artifact.path.get_ref();
        let source = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(_) => {
                self.error(
                    "invalid-wgsl",
                    artifact.path.span(),
                    format!("`{relative}` is not UTF-8 text"),
                    "WGSL sources are UTF-8",
                );
                return;
            }
        };
        let module = match WgslModule::parse(&source) {
            Ok(m) => m,
            Err(e) => {
                let mut d = Diagnostic::error(
                    "invalid-wgsl",
                    file,
                    e.span.clone(),
                    format!("Invalid WGSL in `{relative}`: {}", e.message),
                )
                .with_hint("fix the shader; naga (wgpu's compiler) rejects it");
                d.label = e.label;
                self.report.diagnostics.push(d);
                self.report.sources.insert(file.to_path_buf(), source);
                return;
            }
        };
        let has = |f: WgpuFeature| artifact.features.iter().any(|x| *x.get_ref() == f);
        let capabilities = WgslCapabilities {
            f16: has(WgpuFeature::ShaderF16),
            subgroups: has(WgpuFeature::Subgroups),
        };
        if let Err(e) = module.check_capabilities(capabilities) {
            self.error(
                "missing-feature",
                artifact.path.span(),
                format!("`{relative}` needs a wgpu feature its artifact does not list: {}", e.message),
                "add it to `features` (`shader-f16` for `enable f16;`, `subgroups` for subgroup operations)",
            );
        }
        if capabilities.f16 && !module.uses_f16() {
            let span = artifact
                .features
                .iter()
                .find(|f| *f.get_ref() == WgpuFeature::ShaderF16)
                .map(|f| f.span());
            self.warning(
                "unused-feature",
                span.unwrap_or_else(|| artifact.path.span()),
                format!("`{relative}` lists `shader-f16` but uses no f16 type"),
                "remove it, so adapters without f16 can run this artifact",
            );
        }
        for entry in &artifact.entries {
            self.check_wgsl_entry(artifact, entry, &module, file);
        }
        self.report.sources.insert(file.to_path_buf(), source);
    }

    fn check_wgsl_entry(
        &mut self,
        artifact: &Artifact,
        entry: &Entry,
        module: &WgslModule,
        file: &Path,
    ) {
        let symbol = entry.symbol.get_ref();
        let Some(ep) = module.entry_point(symbol) else {
            let names: Vec<String> = module
                .entry_point_names()
                .into_iter()
                .map(String::from)
                .collect();
            self.missing_symbol(&format!("`{}`", artifact.path.get_ref()), entry, &names);
            return;
        };
        if let Some(block) = &entry.block {
            let declared: Vec<u64> = block
                .iter()
                .filter_map(|d| d.get_ref().as_literal())
                .collect();
            let actual: Vec<u64> = ep.workgroup_size.iter().map(|&n| u64::from(n)).collect();
            let padded: Vec<u64> = declared
                .iter()
                .copied()
                .chain(std::iter::repeat(1))
                .take(3)
                .collect();
            if declared.len() == block.len() && padded != actual {
                self.error(
                    "geometry-mismatch",
                    block[0].span().start..block[block.len() - 1].span().end,
                    format!(
                        "`{symbol}` has @workgroup_size({}), the manifest says {:?}",
                        join(&actual),
                        declared
                    ),
                    "make `block` equal the shader's @workgroup_size, or leave it out",
                );
            }
        }
        let Some(op) = find_op(self.ops, entry.op.get_ref()) else {
            return; // reported by `validate`
        };
        let dtype = *entry.dtype.get_ref();
        let tensors: Vec<_> = op
            .params
            .iter()
            .filter_map(|p| match &p.kind {
                ParamKind::Tensor {
                    dtype: d, written, ..
                } => Some((p, *d.get_ref(), *written)),
                ParamKind::Scalar(_) => None,
            })
            .collect();
        let scalars: Vec<_> = op
            .params
            .iter()
            .filter_map(|p| match &p.kind {
                ParamKind::Scalar(t) => Some((p, *t.get_ref())),
                ParamKind::Tensor { .. } => None,
            })
            .collect();
        let hint = "tensors bind at @group(0) @binding(0..n) in parameter order, scalars as one uniform struct at @binding(n); see docs/formats.md";
        for binding in &ep.bindings {
            let at = format!(
                "`{symbol}` uses @group({}) @binding({}) `{}`",
                binding.group, binding.binding, binding.name
            );
            let span = binding.span.clone();
            let wgsl_error = |this: &mut Self, message: String| {
                this.report.diagnostics.push(
                    Diagnostic::error("binding-mismatch", file, span.clone(), message)
                        .with_hint(hint),
                );
            };
            let index = binding.binding as usize;
            if binding.group != 0 {
                wgsl_error(self, format!("{at}; kernelhub binds everything in group 0"));
            } else if let Some((param, declared, written)) = tensors.get(index) {
                let concrete = match declared {
                    TensorDtype::Generic => dtype,
                    TensorDtype::Fixed(d) => *d,
                };
                let name = param.name.get_ref();
                match &binding.kind {
                    BindingKind::Storage { writable, element } => {
                        if writable != written {
                            let (want, is) = if *written {
                                ("read_write", "read")
                            } else {
                                ("read", "read_write")
                            };
                            wgsl_error(
                                self,
                                format!(
                                    "{at} as `{is}` storage, but tensor `{name}` is {}: it must be `{want}`",
                                    if *written { "written" } else { "only read" }
                                ),
                            );
                        }
                        if !element_holds(*element, concrete) {
                            wgsl_error(
                                self,
                                format!(
                                    "{at} with elements of `{element}`, which cannot hold tensor `{name}` of `{concrete}`"
                                ),
                            );
                        }
                    }
                    _ => wgsl_error(
                        self,
                        format!("{at}, which is not a storage buffer, for tensor `{name}`"),
                    ),
                }
            } else if index == tensors.len() && !scalars.is_empty() {
                match &binding.kind {
                    BindingKind::Uniform { members } => {
                        let expected: Vec<String> = scalars
                            .iter()
                            .map(|(p, t)| format!("{}: {t}", p.name.get_ref()))
                            .collect();
                        let fits = members.len() == scalars.len()
                            && members
                                .iter()
                                .zip(&scalars)
                                .all(|((_, element), (_, ty))| scalar_holds(*element, *ty));
                        if !fits {
                            let found: Vec<String> =
                                members.iter().map(|(n, e)| format!("{n}: {e}")).collect();
                            wgsl_error(
                                self,
                                format!(
                                    "{at} as {{ {} }}, but the scalars of `{}` are {{ {} }}",
                                    found.join(", "),
                                    op.name.get_ref(),
                                    expected.join(", ")
                                ),
                            );
                        }
                    }
                    _ => wgsl_error(
                        self,
                        format!(
                            "{at}, which is not a uniform buffer, for the scalars of `{}`",
                            op.name.get_ref()
                        ),
                    ),
                }
            } else {
                wgsl_error(
                    self,
                    format!(
                        "{at}, which matches no parameter of `{}`",
                        op.name.get_ref()
                    ),
                );
            }
        }
    }
}

/// One parameter of a compiled kernel, as its artifact declares it.
struct KernelParam {
    /// Its type, short, for a list: `.u64`, `global_buffer(8)`.
    ty: String,
    /// Type and name for a message: `` `.u32` `k_param_2` ``.
    what: String,
    /// Where it is declared, as a phrase: `` at `k.ptx` line 14 ``.
    place: String,
    /// Bytes the driver copies from the launch's argument pointer; `None` when it is
    /// not something kernelhub can pass.
    size: Option<u64>,
}

/// Bytes kernelhub passes for `param` on the native backends: a device pointer for a
/// tensor, the value itself for a scalar.
fn abi_size(param: &Param) -> u64 {
    match &param.kind {
        ParamKind::Tensor { .. } => 8,
        ParamKind::Scalar(ty) => match ty.get_ref() {
            ScalarType::U32 | ScalarType::I32 | ScalarType::F32 => 4,
            ScalarType::U64 | ScalarType::I64 => 8,
        },
    }
}

/// `tensor` or the scalar type, for messages.
fn param_type(param: &Param) -> String {
    match &param.kind {
        ParamKind::Tensor { .. } => "tensor".to_owned(),
        ParamKind::Scalar(ty) => ty.get_ref().to_string(),
    }
}

/// "1 parameter", "3 parameters".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The span covering an artifact's `targets` (or its `backend` when absent).
fn targets_span(artifact: &Artifact) -> Range<usize> {
    match (artifact.targets.first(), artifact.targets.last()) {
        (Some(first), Some(last)) => first.span().start..last.span().end,
        _ => artifact.backend.span(),
    }
}

/// Whether PTX for `ptx` can be JIT-compiled for a device of `device`.
fn ptx_runs_on(ptx: CudaArch, device: CudaArch) -> bool {
    match ptx.suffix {
        // Arch-specific PTX (`sm_90a`) runs only on that exact architecture.
        Some('a') => device == ptx,
        // Family PTX (`sm_100f`) runs within its major version.
        Some(_) => device.major == ptx.major && device.minor >= ptx.minor,
        None => (device.major, device.minor) >= (ptx.major, ptx.minor),
    }
}

/// Whether SASS built for `built` runs on `device` (same major version,
/// minor at least as high; arch-specific code only on its own arch).
fn sass_runs_on(built: CudaArch, device: CudaArch) -> bool {
    if built.suffix == Some('a') {
        return device == built;
    }
    (device.major == built.major && device.minor >= built.minor && device.suffix != Some('a'))
        || device == built
}

/// Whether a WGSL storage array of `element` can carry a tensor of `dtype`:
/// the same scalar (possibly as a vector), or `u32` words packing smaller types.
fn element_holds(element: Element, dtype: Dtype) -> bool {
    let (kind, bits) = match dtype {
        Dtype::F32 => ('f', 32),
        Dtype::F16 => ('f', 16),
        Dtype::F64 => ('f', 64),
        Dtype::I32 => ('i', 32),
        Dtype::U32 => ('u', 32),
        Dtype::I64 => ('i', 64),
        Dtype::I8 | Dtype::U8 | Dtype::Bf16 => ('-', 0),
    };
    let exact = element.kind == kind && element.bits == bits && element.lanes >= 1;
    let packed =
        element.kind == 'u' && element.bits == 32 && element.lanes >= 1 && dtype.size() <= 4;
    exact || packed
}

/// Whether a uniform member of `element` carries a scalar parameter of `ty`.
fn scalar_holds(element: Element, ty: ScalarType) -> bool {
    let want = match ty {
        ScalarType::U32 => ('u', 32),
        ScalarType::I32 => ('i', 32),
        ScalarType::F32 => ('f', 32),
        // WGSL has no 64-bit integers: pass them as vec2<u32> (low, high).
        ScalarType::U64 | ScalarType::I64 => {
            return element.kind == 'u' && element.bits == 32 && element.lanes == 2;
        }
    };
    (element.kind, element.bits, element.lanes) == (want.0, want.1, 1)
}

/// Each of `labels` once, in the order they first come.
fn distinct<'a>(labels: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
    let mut list: Vec<&str> = Vec::new();
    for label in labels {
        if !list.contains(&label.as_str()) {
            list.push(label);
        }
    }
    list
}

/// `text` with its first letter capitalised, for a message that starts
/// with a name such as "the sm_80 cubin in `x.fatbin`".
fn sentence(text: String) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if first.is_lowercase() => first.to_uppercase().chain(chars).collect(),
        _ => text,
    }
}

fn join(values: &[u64]) -> String {
    values
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
