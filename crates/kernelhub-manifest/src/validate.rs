//! The rules that tie a `kernel.toml` together, checked without touching disk.
//!
//! Reading (in `kernel`) makes sure each field has the right shape; this file
//! makes sure the fields agree with each other: every op × dtype has an
//! artifact, expressions name declared integer parameters, backends get the
//! formats and targets they can load, and paths stay inside the repo.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use toml::Spanned;

use crate::diagnostic::Diagnostic;
use crate::expr::Expr;
use crate::kernel::{Artifact, Backend, Entry, Op, ParamKind, find_op, is_identifier};
use crate::reader::{Ctx, Hint, closest};

/// Largest number of threads in one block the native backends accept.
const MAX_THREADS_PER_BLOCK: u64 = 1024;

/// Checks the cross-field rules. `complete` says whether reading found no
/// error; coverage is only judged then, so one typo does not also report
/// every op it would have covered as missing.
pub fn validate(
    ops: &[Op],
    artifacts: &[Artifact],
    file: &Path,
    complete: bool,
) -> Vec<Diagnostic> {
    let mut ctx = Ctx::new(file, true);
    for op in ops {
        validate_op(&mut ctx, op);
    }
    let mut paths: HashMap<&str, &Spanned<String>> = HashMap::new();
    for artifact in artifacts {
        validate_artifact(&mut ctx, ops, artifact);
        if paths
            .insert(artifact.path.get_ref(), &artifact.path)
            .is_some()
        {
            ctx.error(
                "duplicate-path",
                artifact.path.span(),
                format!("Two artifacts have the path `{}`", artifact.path.get_ref()),
            )
            .hint("each artifact is one file; merge their entries into one `[[artifacts]]` table");
        }
    }
    if complete {
        check_coverage(&mut ctx, ops, artifacts);
    }
    ctx.diagnostics
}

fn validate_op(ctx: &mut Ctx, op: &Op) {
    let name = op.name.get_ref();
    if op.dtypes.is_empty() {
        ctx.error(
            "missing-dtypes",
            op.name.span(),
            format!("Op `{name}` lists no dtypes"),
        )
        .hint("list the dtypes it supports, e.g. `dtypes = [\"f32\", \"f16\"]`");
    }
    let mut seen = BTreeSet::new();
    for dtype in &op.dtypes {
        if !seen.insert(*dtype.get_ref()) {
            ctx.error(
                "duplicate-name",
                dtype.span(),
                format!("Op `{name}` lists dtype `{}` twice", dtype.get_ref()),
            )
            .hint("remove the second one");
        }
    }
    let mut names: HashMap<&str, &Spanned<String>> = HashMap::new();
    for param in &op.params {
        if names.insert(param.name.get_ref(), &param.name).is_some() {
            ctx.error(
                "duplicate-name",
                param.name.span(),
                format!(
                    "Op `{name}` has two parameters named `{}`",
                    param.name.get_ref()
                ),
            )
            .hint("rename one of them");
        }
    }
    for param in &op.params {
        if let ParamKind::Tensor { shape, .. } = &param.kind {
            if shape.is_empty() {
                ctx.error(
                    "invalid-shape",
                    param.name.span(),
                    format!("Tensor `{}` has an empty shape", param.name.get_ref()),
                )
                .hint("give at least one dimension; a single value is `[1]`");
            }
            for dim in shape {
                check_expr_params(ctx, op, dim);
            }
        }
    }
    let writes = op
        .params
        .iter()
        .any(|p| matches!(p.kind, ParamKind::Tensor { written: true, .. }));
    if !writes {
        ctx.warning(
            "no-output",
            op.name.span(),
            format!("Op `{name}` writes no tensor"),
        )
        .hint("mark its output with `written = true`");
    }
}

/// Reports names in `expr` that are not integer scalars of `op`.
fn check_expr_params(ctx: &mut Ctx, op: &Op, expr: &Spanned<Expr>) {
    for name in expr.get_ref().params() {
        let integers = || {
            op.params
                .iter()
                .filter(|p| matches!(&p.kind, ParamKind::Scalar(t) if t.get_ref().is_integer()))
                .map(|p| p.name.get_ref().as_str())
                .collect::<Vec<_>>()
        };
        match op.param(name).map(|p| &p.kind) {
            Some(ParamKind::Scalar(ty)) if ty.get_ref().is_integer() => {}
            Some(kind) => {
                let what = match kind {
                    ParamKind::Tensor { .. } => "a tensor".to_string(),
                    ParamKind::Scalar(ty) => format!("a `{}` scalar", ty.get_ref()),
                };
                ctx.error(
                    "not-an-integer",
                    expr.span(),
                    format!(
                        "`{}` uses `{name}`, which is {what}, not an integer scalar",
                        expr.get_ref()
                    ),
                )
                .hint(format!(
                    "expressions may use the integer parameters of `{}`: {}",
                    op.name.get_ref(),
                    integers().join(", ")
                ));
            }
            None => {
                let known = integers();
                let diagnostic = ctx.error(
                    "unknown-param",
                    expr.span(),
                    format!(
                        "`{}` uses `{name}`, which is not a parameter of op `{}`",
                        expr.get_ref(),
                        op.name.get_ref()
                    ),
                );
                match closest(name, &known) {
                    Some(close) => diagnostic.hint(format!("did you mean `{close}`?")),
                    None => {
                        diagnostic.hint(format!("the integer parameters are: {}", known.join(", ")))
                    }
                }
            }
        }
    }
}

fn validate_artifact(ctx: &mut Ctx, ops: &[Op], artifact: &Artifact) {
    let backend = *artifact.backend.get_ref();
    let format = *artifact.format.get_ref();
    if !backend.formats().contains(&format) {
        let formats: Vec<_> = backend.formats().iter().map(|f| format!("`{f}`")).collect();
        ctx.error(
            "format-mismatch",
            artifact.format.span(),
            format!("Backend `{backend}` cannot load `{format}` artifacts"),
        )
        .hint(format!("`{backend}` loads {}", formats.join(", ")));
    }
    match backend {
        Backend::Cuda | Backend::Rocm if artifact.targets.is_empty() => {
            ctx.error(
                "missing-targets",
                artifact.backend.span(),
                format!("Artifact `{}` names no targets", artifact.path.get_ref()),
            )
            .hint(if backend == Backend::Cuda {
                "add e.g. `targets = [\"sm_80\"]`"
            } else {
                "add e.g. `targets = [\"gfx90a\"]`"
            });
        }
        Backend::Wgpu => {
            if let Some(min_driver) = &artifact.min_driver {
                ctx.error(
                    "invalid-field",
                    min_driver.span(),
                    "wgpu artifacts take no `min_driver`",
                )
                .hint("remove it; list needed capabilities in `features` instead");
            }
        }
        Backend::Cuda | Backend::Rocm => {
            if let Some(feature) = artifact.features.first() {
                ctx.error(
                    "invalid-field",
                    feature.span(),
                    format!("`features` are for wgpu artifacts, not `{backend}`"),
                )
                .hint("remove `features`");
            }
        }
    }
    let mut targets = BTreeSet::new();
    for target in &artifact.targets {
        if !targets.insert(target.get_ref()) {
            ctx.warning(
                "duplicate-name",
                target.span(),
                format!("Target `{}` is listed twice", target.get_ref()),
            )
            .hint("remove the second one");
        }
    }
    if let Err(reason) = check_relative_path(artifact.path.get_ref()) {
        ctx.error(
            "invalid-path",
            artifact.path.span(),
            format!("Path `{}` {reason}", artifact.path.get_ref()),
        )
        .hint("write a relative path inside the repo with `/` separators, e.g. `build/cuda/k.ptx`");
    }
    if artifact.entries.is_empty() {
        ctx.warning("empty-artifact", artifact.path.span(), format!("Artifact `{}` has no entries", artifact.path.get_ref()))
            .hint("add an `[[artifacts.entries]]` table for each op and dtype it implements, or remove it");
    }
    let mut seen: HashMap<(&str, crate::kernel::Dtype), &Entry> = HashMap::new();
    for entry in &artifact.entries {
        if seen
            .insert((entry.op.get_ref(), *entry.dtype.get_ref()), entry)
            .is_some()
        {
            ctx.error(
                "duplicate-entry",
                entry.op.span(),
                format!(
                    "Artifact `{}` has two entries for `{}` {}",
                    artifact.path.get_ref(),
                    entry.op.get_ref(),
                    entry.dtype.get_ref()
                ),
            )
            .hint("keep one entry per op and dtype");
        }
        validate_entry(ctx, ops, artifact, entry);
    }
}

fn validate_entry(ctx: &mut Ctx, ops: &[Op], artifact: &Artifact, entry: &Entry) {
    if !is_identifier(entry.symbol.get_ref()) && !entry.symbol.get_ref().contains(['$', '.']) {
        ctx.error(
            "invalid-symbol",
            entry.symbol.span(),
            format!("`{}` is not a valid symbol name", entry.symbol.get_ref()),
        )
        .hint("symbols are identifiers such as `silu_and_mul_f32`");
    }
    let native = *artifact.backend.get_ref() != Backend::Wgpu;
    match &entry.block {
        None if native => {
            ctx.error(
                "missing-field",
                entry.span.clone(),
                format!(
                    "The entry for `{}` {} has no `block`",
                    entry.op.get_ref(),
                    entry.dtype.get_ref()
                ),
            )
            .hint("native kernels need their threads per block, e.g. `block = [256]`");
        }
        Some(block) if !native => {
            for dim in block.iter().filter(|d| d.get_ref().as_literal().is_none()) {
                ctx.error(
                    "invalid-geometry",
                    dim.span(),
                    "A WGSL `block` is fixed by `@workgroup_size` and cannot use parameters",
                )
                .hint(
                    "write the numbers from the shader's `@workgroup_size`, or leave `block` out",
                );
            }
        }
        Some(block) => {
            let literal: Option<Vec<u64>> =
                block.iter().map(|d| d.get_ref().as_literal()).collect();
            if let Some(threads) =
                literal.and_then(|dims| dims.iter().try_fold(1u64, |a, b| a.checked_mul(*b)))
                && !(1..=MAX_THREADS_PER_BLOCK).contains(&threads)
            {
                ctx.error(
                    "invalid-geometry",
                    block[0].span().start..block[block.len() - 1].span().end,
                    format!("A block of {threads} threads cannot launch"),
                )
                .hint(format!(
                    "use 1 to {MAX_THREADS_PER_BLOCK} threads per block"
                ));
            }
        }
        None => {}
    }
    let Some(op) = find_op(ops, entry.op.get_ref()) else {
        let names: Vec<&str> = ops.iter().map(|o| o.name.get_ref().as_str()).collect();
        let diagnostic = ctx.error(
            "unknown-op",
            entry.op.span(),
            format!(
                "Artifact `{}` implements `{}`, which is not an op of this kernel",
                artifact.path.get_ref(),
                entry.op.get_ref()
            ),
        );
        match closest(entry.op.get_ref(), &names) {
            Some(close) => diagnostic.hint(format!("did you mean `{close}`?")),
            None => diagnostic.hint(format!(
                "declare it as `[ops.{}]`, or fix the name",
                entry.op.get_ref()
            )),
        }
        return;
    };
    if !op
        .dtypes
        .iter()
        .any(|d| d.get_ref() == entry.dtype.get_ref())
    {
        let dtypes: Vec<String> = op.dtypes.iter().map(|d| d.get_ref().to_string()).collect();
        ctx.error(
            "unsupported-dtype",
            entry.dtype.span(),
            format!(
                "Op `{}` does not list dtype `{}`",
                op.name.get_ref(),
                entry.dtype.get_ref()
            ),
        )
        .hint(format!(
            "add it to the op's `dtypes` ({}), or fix the entry",
            dtypes.join(", ")
        ));
    }
    let expressions = entry
        .grid
        .iter()
        .chain(entry.block.iter().flatten())
        .chain(entry.shared_mem.iter());
    for expr in expressions {
        check_expr_params(ctx, op, expr);
    }
}

fn check_coverage(ctx: &mut Ctx, ops: &[Op], artifacts: &[Artifact]) {
    for op in ops {
        for dtype in &op.dtypes {
            let covered = artifacts.iter().any(|a| {
                a.entries.iter().any(|e| {
                    e.op.get_ref() == op.name.get_ref() && e.dtype.get_ref() == dtype.get_ref()
                })
            });
            if !covered {
                ctx.error(
                    "uncovered",
                    dtype.span(),
                    format!(
                        "No artifact implements op `{}` for dtype `{}`",
                        op.name.get_ref(),
                        dtype.get_ref()
                    ),
                )
                .hint("add an entry for it to an artifact, or remove the dtype from the op");
            }
        }
    }
}

/// Checks that `path` is relative, normalised and stays inside the repo.
/// Returns what is wrong, phrased to follow the path in a message.
pub fn check_relative_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("is empty");
    }
    if path.len() > 1024 {
        return Err("is longer than 1024 bytes");
    }
    if path.contains('\0') || path.chars().any(char::is_control) {
        return Err("contains control characters");
    }
    if path.contains('\\') {
        return Err("contains `\\`; paths use `/`");
    }
    if path.starts_with('/') || path.as_bytes().get(1) == Some(&b':') {
        return Err("is absolute");
    }
    for component in path.split('/') {
        match component {
            ".." => return Err("leaves its directory with `..`"),
            "." | "" => return Err("is not normalised (no `.`, `//` or trailing `/`)"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert!(check_relative_path("build/cuda/k.ptx").is_ok());
        assert!(check_relative_path("k.wgsl").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../k",
            "a/../b",
            "a//b",
            "./a",
            "a/",
            "C:/x",
            "a\\b",
            "a\0b",
        ] {
            assert!(check_relative_path(bad).is_err(), "{bad:?}");
        }
    }
}
