//! `kernelhub manifest update`: rewrite each artifact's `size` and `sha256`
//! from the file on disk, so nobody edits a hash by hand.
//!
//! Works on the TOML text with `toml_edit`, so the author's comments, order
//! and layout survive; only the two values change, keeping their own
//! trailing comments. Returns the new text; writing it is the caller's job.

use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, TableLike, Value};

use crate::hash::{Sha256Digest, hash_file};
use crate::validate::check_relative_path;

/// One artifact whose recorded size or hash changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The artifact's `path`.
    pub path: String,
    /// The size recorded before, if any.
    pub old_size: Option<i64>,
    /// The size on disk.
    pub new_size: u64,
    /// The hash recorded before, if any.
    pub old_sha256: Option<String>,
    /// The hash on disk.
    pub new_sha256: Sha256Digest,
}

/// The rewritten manifest.
#[derive(Debug, Clone)]
pub struct Updated {
    /// The manifest's new text (equal to the old one when nothing changed).
    pub text: String,
    /// What changed.
    pub changes: Vec<Change>,
}

/// Why a manifest could not be updated. Nothing is written in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The manifest could not be read.
    #[error("Could not read `{}`", .path.display())]
    Read {
        /// The manifest.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not valid TOML.
    #[error("`{}` is not valid TOML: {message}", .path.display())]
    Syntax {
        /// The manifest.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The manifest has no `[[artifacts]]` or they lack a `path`.
    #[error("`{}`: {message}", .path.display())]
    Shape {
        /// The manifest.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
    /// An artifact file could not be hashed.
    #[error("Could not hash artifact `{artifact}` of `{}`", .manifest.display())]
    Artifact {
        /// The manifest.
        manifest: PathBuf,
        /// The artifact's `path` value.
        artifact: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Recomputes sizes and hashes for the manifest at `manifest_path`, whose
/// artifact paths are relative to its directory.
pub fn update_manifest(manifest_path: &Path) -> Result<Updated, UpdateError> {
    let text = fs_err::read_to_string(manifest_path).map_err(|source| UpdateError::Read {
        path: manifest_path.to_path_buf(),
        source,
    })?;
    let root = manifest_path.parent().unwrap_or(Path::new("."));
    let mut document: DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| UpdateError::Syntax {
                path: manifest_path.to_path_buf(),
                message: e.message().to_string(),
            })?;
    let shape = |message: &str| UpdateError::Shape {
        path: manifest_path.to_path_buf(),
        message: message.to_string(),
    };
    let artifacts = document
        .get_mut("artifacts")
        .ok_or_else(|| shape("it has no `[[artifacts]]`"))?;
    let tables: Vec<&mut dyn TableLike> = match artifacts {
        Item::ArrayOfTables(array) => array.iter_mut().map(|t| t as &mut dyn TableLike).collect(),
        Item::Value(Value::Array(array)) => array
            .iter_mut()
            .filter_map(|v| v.as_inline_table_mut().map(|t| t as &mut dyn TableLike))
            .collect(),
        _ => return Err(shape("`artifacts` must be an array of tables")),
    };
    let mut changes = Vec::new();
    for table in tables {
        let path = table
            .get("path")
            .and_then(Item::as_str)
            .ok_or_else(|| shape("an artifact has no `path` string"))?
            .to_string();
        if let Err(reason) = check_relative_path(&path) {
            return Err(shape(&format!("artifact path `{path}` {reason}")));
        }
        let (digest, size) =
            hash_file(&root.join(&path)).map_err(|source| UpdateError::Artifact {
                manifest: manifest_path.to_path_buf(),
                artifact: path.clone(),
                source,
            })?;
        let old_size = table.get("size").and_then(Item::as_integer);
        let old_sha256 = table
            .get("sha256")
            .and_then(Item::as_str)
            .map(str::to_string);
        let size_value =
            i64::try_from(size).map_err(|_| shape("an artifact is larger than 2^63 bytes"))?;
        if old_size == Some(size_value)
            && old_sha256.as_deref() == Some(digest.to_string().as_str())
        {
            continue;
        }
        set_keeping_decor(table, "size", Value::from(size_value));
        set_keeping_decor(table, "sha256", Value::from(digest.to_string()));
        changes.push(Change {
            path,
            old_size,
            new_size: size,
            old_sha256,
            new_sha256: digest,
        });
    }
    let text = if changes.is_empty() {
        text
    } else {
        document.to_string()
    };
    Ok(Updated { text, changes })
}

/// Sets `key` to `value`, keeping the comments and spacing around the old value.
fn set_keeping_decor(table: &mut dyn TableLike, key: &str, mut value: Value) {
    match table.get_mut(key) {
        Some(Item::Value(old)) => {
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        _ => {
            table.insert(key, Item::Value(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_size_and_hash_and_keeps_comments() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("k.wgsl"), b"abc").unwrap();
        let manifest = dir.path().join("kernel.toml");
        let before = "# top comment\n[[artifacts]]\npath = \"k.wgsl\"  # the shader\nsize = 1 # bytes\nsha256 = \"00\"   # filled in by update\n";
        fs_err::write(&manifest, before).unwrap();
        let updated = update_manifest(&manifest).unwrap();
        assert_eq!(
            updated.text,
            "# top comment\n[[artifacts]]\npath = \"k.wgsl\"  # the shader\nsize = 3 # bytes\nsha256 = \"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"   # filled in by update\n"
        );
        assert_eq!(updated.changes.len(), 1);
        assert_eq!(updated.changes[0].old_size, Some(1));
        fs_err::write(&manifest, &updated.text).unwrap();
        let again = update_manifest(&manifest).unwrap();
        assert!(again.changes.is_empty());
        assert_eq!(again.text, updated.text);
    }

    #[test]
    fn inline_artifacts_and_missing_fields_are_filled() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("a.ptx"), b"").unwrap();
        let manifest = dir.path().join("kernel.toml");
        fs_err::write(&manifest, "artifacts = [ { path = \"a.ptx\" } ]\n").unwrap();
        let updated = update_manifest(&manifest).unwrap();
        assert!(updated.text.contains("size = 0"), "{}", updated.text);
        assert!(
            updated
                .text
                .contains("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
    }

    #[test]
    fn a_missing_artifact_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("kernel.toml");
        fs_err::write(&manifest, "[[artifacts]]\npath = \"gone.ptx\"\n").unwrap();
        let err = update_manifest(&manifest).unwrap_err();
        assert!(
            matches!(&err, UpdateError::Artifact { artifact, .. } if artifact == "gone.ptx"),
            "{err}"
        );
        let escape = dir.path().join("k2.toml");
        fs_err::write(&escape, "[[artifacts]]\npath = \"../x\"\n").unwrap();
        assert!(matches!(
            update_manifest(&escape),
            Err(UpdateError::Shape { .. })
        ));
    }
}
