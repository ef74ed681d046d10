//! The trust policy applied to what the cache holds: a locked kernel's
//! `kernel.toml` and `kernel.toml.minisig`, both verified against their pins
//! first, then the signature against the keys `kernels.toml` trusts for the
//! repo. `fetch`, `bundle import` and loads call this, offline.

use kernelhub_manifest::lock::LockedKernel;
use kernelhub_manifest::trust::{KeyId, TrustPolicy};

use crate::cache::{HubCache, PinnedFile};
use crate::error::Error;

/// Checks the locked kernel's signature in `cache` against `policy`.
/// `Ok(Some(key))`: signed by that trusted key; `Ok(None)`: the policy asks
/// nothing of this repo.
pub fn check_cached(
    cache: &HubCache,
    locked: &LockedKernel,
    policy: &TrustPolicy,
) -> Result<Option<KeyId>, Error> {
    policy.check_repo(&locked.name, &locked.repo)?;
    if !policy.requires_signature(&locked.repo) {
        return Ok(None);
    }
    let manifest = cache.read_verified(&PinnedFile::manifest(locked))?;
    check_manifest(cache, locked, policy, &manifest)
}

/// [`check_cached`] for a caller that already read `kernel.toml` verified
/// (`manifest`), so it is not read and hashed twice.
pub fn check_manifest(
    cache: &HubCache,
    locked: &LockedKernel,
    policy: &TrustPolicy,
    manifest: &[u8],
) -> Result<Option<KeyId>, Error> {
    policy.check_repo(&locked.name, &locked.repo)?;
    if !policy.requires_signature(&locked.repo) {
        return Ok(None);
    }
    let signature = match PinnedFile::signature(locked) {
        Some(file) => Some(cache.read_verified(&file)?),
        None if policy.keys_for(&locked.repo).is_some() => {
            return Err(Error::SignatureNotLocked {
                name: locked.name.clone(),
                repo: locked.repo.clone(),
            });
        }
        None => None,
    };
    let signed_by = policy.check(&locked.repo, manifest, signature.as_deref())?;
    // The signature file is pinned by its hash, so this only fails for a
    // lock whose `signed_by` was edited; `lock` relies on that field.
    if let (Some(key), Some(locked_signature)) = (signed_by, locked.signature)
        && key != locked_signature.key
    {
        return Err(Error::Invalid {
            what: format!("`kernels.lock` entry `{}`", locked.name),
            diagnostics: format!(
                "`signed_by` says key {}, but `kernel.toml.minisig` is by key {key}; run `kernelhub lock --update {}`",
                locked_signature.key, locked.name
            ),
        });
    }
    Ok(signed_by)
}
