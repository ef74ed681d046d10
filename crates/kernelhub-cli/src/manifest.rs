//! `kernelhub manifest update`: recompute artifact sizes and hashes and write
//! the manifest back atomically (temp file in the same directory, then rename),
//! so an interrupted run never leaves a half-written `kernel.toml`.

use std::io::Write;
use std::path::{Path, PathBuf};

use kernelhub_manifest::update::update_manifest;

use crate::{Outcome, UpdateArgs, eprint};

pub(crate) fn update(args: UpdateArgs) -> Result<Outcome, Box<dyn std::error::Error>> {
    let mut stale = false;
    for path in &args.paths {
        let manifest = if path.is_dir() {
            path.join("kernel.toml")
        } else {
            path.clone()
        };
        let updated = update_manifest(&manifest)?;
        let mut out = String::new();
        for change in &updated.changes {
            let old_size = change
                .old_size
                .map_or("none".to_string(), |s| s.to_string());
            let old_hash = match change.old_sha256.as_deref() {
                None | Some("") => "none",
                Some(h) => h.get(..12).unwrap_or(h),
            };
            out.push_str(&format!(
                "{:>12} {}: size {old_size} -> {}, sha256 {old_hash}… -> {}…\n",
                if args.check { "Stale" } else { "Updated" },
                change.path,
                change.new_size,
                &change.new_sha256.to_string()[..12],
            ));
        }
        if updated.changes.is_empty() {
            out.push_str(&format!("{:>12} {}\n", "Fresh", manifest.display()));
        } else if args.check {
            stale = true;
        } else {
            write_atomically(&manifest, updated.text.as_bytes())?;
            out.push_str(&format!("{:>12} {}\n", "Wrote", manifest.display()));
        }
        eprint(&out);
    }
    if stale {
        eprint(
            "error: manifests are out of date; run `kernelhub manifest update` without `--check`\n",
        );
        return Ok(Outcome::Problems);
    }
    Ok(Outcome::Clean)
}

/// Replaces `path` with `contents` via a temp file in the same directory,
/// keeping the original file's permissions.
fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), std::io::Error> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let permissions = fs_err::metadata(path)?.permissions();
    let mut temp = tempfile::Builder::new()
        .prefix(".kernel.toml.")
        .tempfile_in(&dir)?;
    temp.write_all(contents)?;
    temp.as_file().sync_all()?;
    fs_err::set_permissions(temp.path(), permissions)?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
