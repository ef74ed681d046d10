//! `kernelhub sign`: signs a kernel repo's `kernel.toml` with a minisign
//! secret key, as `kernel.toml.minisig` beside it. The signature is
//! minisign's own format (prehashed Ed25519), so `minisign -V` verifies it
//! too, and kernelhub checks it offline against `kernels.toml`'s `[trust]`.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use kernelhub_hub::env::KERNELHUB_SIGNING_PASSWORD;
use kernelhub_manifest::trust::{KeyId, SIGNATURE_FILE};

use crate::Outcome;
use crate::hub::status;

#[derive(Debug, clap::Args)]
pub(crate) struct SignArgs {
    /// The kernel repo directory or its `kernel.toml` [default: .]
    path: Option<PathBuf>,
    /// The minisign secret key file (from `minisign -G`). An encrypted key
    /// takes its password from `KERNELHUB_SIGNING_PASSWORD`, else a prompt.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The signature's trusted comment [default: the kernel's name and version]
    #[arg(long, value_name = "TEXT")]
    trusted_comment: Option<String>,
}

pub(crate) fn run(args: SignArgs) -> Result<Outcome, Box<dyn std::error::Error>> {
    let path = args.path.unwrap_or_else(|| PathBuf::from("."));
    let manifest_path = if path.is_dir() {
        path.join("kernel.toml")
    } else {
        path
    };
    let dir = manifest_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let manifest = fs_err::read(&manifest_path)?;
    // Only a manifest that parses is worth signing.
    let text = std::str::from_utf8(&manifest)
        .map_err(|_| format!("`{}` is not UTF-8 text", manifest_path.display()))?;
    let parsed = kernelhub_manifest::KernelManifest::parse(
        text,
        &manifest_path,
        kernelhub_manifest::Strictness::Load,
    );
    let Some(parsed) = parsed.value.filter(|_| parsed.complete) else {
        return Err(format!(
            "`{}` is not a valid kernel manifest\n  hint: run `kernelhub check` on it first",
            manifest_path.display()
        )
        .into());
    };
    let key_text = fs_err::read_to_string(&args.key)?;
    let key_error = |e: minisign::PError| {
        format!(
            "`{}` is not a usable minisign secret key: {e}",
            args.key.display()
        )
    };
    let encoded = key_text.lines().nth(1).unwrap_or_default().trim();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| format!("`{}` is not a minisign secret key", args.key.display()))?;
    // An unencrypted key (`minisign -G -W`) is read as it is: minisign
    // 0.11 leaves its checksum zero, which the library would call corrupt.
    // The signature is verified below with the key's own public half.
    let secret = if raw.get(2..4) == Some(&[0, 0]) {
        minisign::SecretKey::from_bytes(&raw).map_err(key_error)?
    } else {
        let password = std::env::var(KERNELHUB_SIGNING_PASSWORD).ok();
        minisign::SecretKeyBox::from_string(&key_text)
            .and_then(|b| b.into_secret_key(password))
            .map_err(key_error)?
    };
    if let Some(comment) = &args.trusted_comment
        && comment.contains(['\n', '\r'])
    {
        return Err("`--trusted-comment` must be one line".into());
    }
    let comment = args.trusted_comment.unwrap_or_else(|| {
        format!(
            "kernel {} {}\tfile:kernel.toml",
            parsed.kernel.name.get_ref(),
            parsed.kernel.version.get_ref()
        )
    });
    let mut signature = minisign::sign(
        None,
        &secret,
        &manifest[..],
        Some(&comment),
        Some("signature from kernelhub sign"),
    )
    .map_err(|e| format!("signing failed: {e}"))?
    .into_string();
    if !signature.ends_with('\n') {
        signature.push('\n');
    }
    let key = KeyId(
        secret
            .keynum()
            .try_into()
            .map_err(|_| "the secret key has no 8-byte key id")?,
    );
    // The Ed25519 secret key ends with its public key: check the signature
    // with it, so a damaged key file never yields a signature nobody can
    // verify. Decrypted layout: algorithms and KDF parameters (54 bytes), the
    // key id (8), the 64-byte secret key, a checksum (32).
    let decrypted = secret.to_bytes();
    let mut public = b"Ed".to_vec();
    public.extend_from_slice(secret.keynum());
    public.extend_from_slice(decrypted.get(94..126).unwrap_or_default());
    let public = base64::engine::general_purpose::STANDARD.encode(public);
    let checked = minisign_verify::PublicKey::from_base64(&public).and_then(|pk| {
        minisign_verify::Signature::decode(&signature)
            .and_then(|sig| pk.verify(&manifest, &sig, false))
    });
    if checked.is_err() {
        return Err(format!(
            "`{}` produced a signature its own public key does not verify; the key file is damaged or the password is wrong",
            args.key.display()
        )
        .into());
    }
    let out = dir.join(SIGNATURE_FILE);
    let mut temporary = tempfile::NamedTempFile::new_in(&dir)?;
    std::io::Write::write_all(&mut temporary, signature.as_bytes())?;
    temporary
        .persist(&out)
        .map_err(|e| format!("cannot write `{}`: {}", out.display(), e.error))?;
    status(
        "Signed",
        format!(
            "`{}` with key {key}: {}",
            manifest_path.display(),
            out.display()
        ),
    );
    Ok(Outcome::Clean)
}
