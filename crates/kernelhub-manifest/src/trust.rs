//! Who may publish a kernel: the `[trust]` policy of `kernels.toml`, and
//! minisign signatures of `kernel.toml` checked against it, offline.
//!
//! A kernel repo signs its manifest with an Ed25519 key in the minisign
//! format, as `kernel.toml.minisig` beside it (so the standalone `minisign`
//! tool verifies it too). The policy lists the public keys allowed per
//! organisation (`owner`) or per repo (`owner/name`, which wins over its
//! owner's list); several keys per scope allow rotation. A repo whose scope
//! lists keys must be signed by one of them; with `require_signatures` every
//! repo must, and a repo with no listed key is refused. Pinned hashes prove
//! the bytes are the ones the lock named; the signature proves who
//! published them.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;

/// The file a signature of `kernel.toml` is published in.
pub const SIGNATURE_FILE: &str = "kernel.toml.minisig";

/// The largest signature file kernelhub reads.
pub const MAX_SIGNATURE_SIZE: u64 = 16 * 1024;

/// A minisign key id: 8 bytes, shown as minisign shows it (16 hex digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl std::str::FromStr for KeyId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.len() != 16 {
            return Err(format!("`{text}` is not a key id (16 hex digits)"));
        }
        u64::from_str_radix(text, 16)
            .map(|v| KeyId(v.to_le_bytes()))
            .map_err(|_| format!("`{text}` is not a key id (16 hex digits)"))
    }
}

/// A public key the policy trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// The key as minisign prints it (the base64 line of `minisign.pub`).
    pub base64: String,
    /// Its id.
    pub id: KeyId,
}

impl TrustedKey {
    /// Reads a minisign public key: base64 of `Ed`, the 8-byte id and the
    /// 32-byte Ed25519 key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| format!("`{text}` is not base64"))?;
        if bytes.len() != 42 || &bytes[..2] != b"Ed" {
            return Err(format!(
                "`{text}` is not a minisign public key (the base64 line of a `minisign.pub` file)"
            ));
        }
        minisign_verify::PublicKey::from_base64(text)
            .map_err(|e| format!("`{text}` is not a minisign public key: {e}"))?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[2..10]);
        Ok(TrustedKey {
            base64: text.to_string(),
            id: KeyId(id),
        })
    }
}

/// The `[trust]` table of `kernels.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustPolicy {
    /// Every dependency must be signed by a key of its scope.
    pub require_signatures: bool,
    /// Keys by scope: an owner (`kernelhub`) or a repo (`kernelhub/activation`).
    pub keys: BTreeMap<String, Vec<TrustedKey>>,
    /// The repo each dependency of `kernels.toml` names, by dependency name:
    /// an active policy holds a lock entry to it, so editing the lock to
    /// point a name at another repo (one no key covers) is refused.
    pub repos: BTreeMap<String, String>,
}

/// Why a manifest's signature is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The policy wants a signature and there is none.
    #[error(
        "`{repo}` publishes no `{SIGNATURE_FILE}`, but `kernels.toml` requires its `kernel.toml` to be signed by {expected}"
    )]
    Unsigned {
        /// The repo.
        repo: String,
        /// The keys allowed, for the message.
        expected: String,
    },
    /// `require_signatures` and no key listed for the repo or its owner.
    #[error(
        "`kernels.toml` requires signatures, but `[trust.keys]` lists no key for `{repo}` or `{owner}`"
    )]
    NoKey {
        /// The repo.
        repo: String,
        /// Its owner.
        owner: String,
    },
    /// Signed, by a key the policy does not list for the repo.
    #[error(
        "`kernel.toml` of `{repo}` is signed by key {found}, which `kernels.toml` does not trust for it; it trusts {expected}"
    )]
    UntrustedKey {
        /// The repo.
        repo: String,
        /// The key that signed.
        found: KeyId,
        /// The keys allowed.
        expected: String,
    },
    /// A lock entry that names another repo than `kernels.toml` does.
    #[error(
        "`kernels.lock` points `{name}` at `{locked}`, but `kernels.toml` names `{expected}`; with a `[trust]` policy the lock must agree"
    )]
    WrongRepo {
        /// The dependency.
        name: String,
        /// What the lock says.
        locked: String,
        /// What `kernels.toml` says (empty when it has no such dependency).
        expected: String,
    },
    /// The signature does not verify, or is not a minisign signature.
    #[error(
        "`{SIGNATURE_FILE}` of `{repo}` does not verify `kernel.toml` with key {key}: {reason}"
    )]
    Invalid {
        /// The repo.
        repo: String,
        /// The key it names.
        key: String,
        /// Why.
        reason: String,
    },
}

impl TrustError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            TrustError::Unsigned { .. } | TrustError::Invalid { .. } => {
                "ask the publisher to sign `kernel.toml` (`kernelhub sign`), or check that you fetch from the right Hub"
            }
            TrustError::NoKey { .. } => {
                "add the publisher's public key under `[trust.keys]` in `kernels.toml`"
            }
            TrustError::UntrustedKey { .. } => {
                "if the publisher rotated keys, add the new public key to the scope in `[trust.keys]`"
            }
            TrustError::WrongRepo { .. } => {
                "run `kernelhub lock` to rewrite the lock from `kernels.toml`"
            }
        }
    }
}

impl TrustPolicy {
    /// The scope that governs `repo` and its keys: the repo's own list if
    /// it has one, else its owner's.
    pub fn keys_for<'a>(&'a self, repo: &str) -> Option<(&'a str, &'a [TrustedKey])> {
        let owner = repo.split_once('/').map_or(repo, |(owner, _)| owner);
        [repo, owner].into_iter().find_map(|scope| {
            self.keys
                .get_key_value(scope)
                .map(|(scope, keys)| (scope.as_str(), keys.as_slice()))
        })
    }

    /// Whether the policy asks anything at all.
    pub fn is_active(&self) -> bool {
        self.require_signatures || !self.keys.is_empty()
    }

    /// Whether `repo` must be signed (its scope lists keys, or every repo must).
    pub fn requires_signature(&self, repo: &str) -> bool {
        self.require_signatures || self.keys_for(repo).is_some()
    }

    /// Holds a lock entry (`name` locked as `repo`) to the repo
    /// `kernels.toml` names, whenever the policy is active.
    pub fn check_repo(&self, name: &str, repo: &str) -> Result<(), TrustError> {
        if !self.is_active() || self.repos.get(name).is_some_and(|r| r == repo) {
            return Ok(());
        }
        Err(TrustError::WrongRepo {
            name: name.to_string(),
            locked: repo.to_string(),
            expected: self.repos.get(name).cloned().unwrap_or_default(),
        })
    }

    fn expected(keys: &[TrustedKey], scope: &str) -> String {
        let ids: Vec<String> = keys.iter().map(|k| format!("key {}", k.id)).collect();
        format!("{} (scope `{scope}`)", ids.join(" or "))
    }

    /// Checks `manifest` (the bytes of `kernel.toml`) of `repo` and its
    /// signature file against the policy. `Ok(Some(key))`: signed by that
    /// trusted key; `Ok(None)`: the policy asks nothing of this repo.
    pub fn check(
        &self,
        repo: &str,
        manifest: &[u8],
        signature: Option<&[u8]>,
    ) -> Result<Option<KeyId>, TrustError> {
        let Some((scope, keys)) = self.keys_for(repo) else {
            return if self.require_signatures {
                Err(TrustError::NoKey {
                    repo: repo.to_string(),
                    owner: repo.split_once('/').map_or(repo, |(o, _)| o).to_string(),
                })
            } else {
                Ok(None)
            };
        };
        let expected = Self::expected(keys, scope);
        let Some(signature) = signature else {
            return Err(TrustError::Unsigned {
                repo: repo.to_string(),
                expected,
            });
        };
        let invalid = |key: String, reason: String| TrustError::Invalid {
            repo: repo.to_string(),
            key,
            reason,
        };
        let text = std::str::from_utf8(signature)
            .map_err(|_| invalid("?".into(), "the signature file is not text".into()))?;
        let decoded = minisign_verify::Signature::decode(text)
            .map_err(|e| invalid("?".into(), format!("not a minisign signature ({e})")))?;
        let found = signature_key_id(text)
            .ok_or_else(|| invalid("?".into(), "not a minisign signature".into()))?;
        let key = keys
            .iter()
            .find(|k| k.id == found)
            .ok_or_else(|| TrustError::UntrustedKey {
                repo: repo.to_string(),
                found,
                expected: expected.clone(),
            })?;
        let public = minisign_verify::PublicKey::from_base64(&key.base64)
            .map_err(|e| invalid(found.to_string(), e.to_string()))?;
        // Only prehashed signatures (minisign's default since 0.8): the
        // legacy form signs the whole file with no domain separation.
        public
            .verify(manifest, &decoded, false)
            .map_err(|e| invalid(found.to_string(), e.to_string()))?;
        Ok(Some(found))
    }
}

/// The key id a minisign signature names (bytes 2..10 of its second line).
fn signature_key_id(text: &str) -> Option<KeyId> {
    let line = text.lines().nth(1)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line.trim())
        .ok()?;
    let id: [u8; 8] = bytes.get(2..10)?.try_into().ok()?;
    Some(KeyId(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh key pair: (public key base64, secret key).
    fn keypair() -> (String, minisign::SecretKey) {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        (pair.pk.to_base64(), pair.sk)
    }

    fn sign(sk: &minisign::SecretKey, bytes: &[u8]) -> Vec<u8> {
        minisign::sign(None, sk, bytes, Some("file:kernel.toml"), None)
            .unwrap()
            .into_string()
            .into_bytes()
    }

    fn policy(require: bool, keys: &[(&str, &str)]) -> TrustPolicy {
        let mut policy = TrustPolicy {
            require_signatures: require,
            ..Default::default()
        };
        for (scope, key) in keys {
            policy
                .keys
                .entry(scope.to_string())
                .or_default()
                .push(TrustedKey::parse(key).unwrap());
        }
        policy
    }

    #[test]
    fn signed_unsigned_wrong_key_and_tampered() {
        let (org_pk, org_sk) = keypair();
        let (new_pk, new_sk) = keypair();
        let (other_pk, other_sk) = keypair();
        let manifest = b"schema = 1\n";
        let p = policy(
            false,
            &[("acme", &org_pk), ("acme", &new_pk), ("other/k", &other_pk)],
        );
        let org_id = TrustedKey::parse(&org_pk).unwrap().id;
        let new_id = TrustedKey::parse(&new_pk).unwrap().id;
        // Either key of the scope (rotation).
        assert_eq!(
            p.check("acme/k", manifest, Some(&sign(&org_sk, manifest))),
            Ok(Some(org_id))
        );
        assert_eq!(
            p.check("acme/k", manifest, Some(&sign(&new_sk, manifest))),
            Ok(Some(new_id))
        );
        // No keys for the scope and nothing required: unsigned is fine.
        assert_eq!(p.check("free/k", manifest, None), Ok(None));
        // A scope with keys requires a signature.
        let unsigned = p.check("acme/k", manifest, None).unwrap_err().to_string();
        assert!(
            unsigned.contains("`acme/k` publishes no `kernel.toml.minisig`"),
            "{unsigned}"
        );
        assert!(
            unsigned.contains(&format!("key {org_id} or key {new_id} (scope `acme`)")),
            "{unsigned}"
        );
        // The repo's own list wins over its owner's.
        let wrong = p
            .check("other/k", manifest, Some(&sign(&org_sk, manifest)))
            .unwrap_err();
        assert!(
            matches!(wrong, TrustError::UntrustedKey { found, .. } if found == org_id),
            "{wrong}"
        );
        assert!(
            p.check("other/k", manifest, Some(&sign(&other_sk, manifest)))
                .is_ok()
        );
        // One changed byte.
        let tampered = p
            .check("acme/k", b"schema = 2\n", Some(&sign(&org_sk, manifest)))
            .unwrap_err();
        assert!(matches!(tampered, TrustError::Invalid { .. }), "{tampered}");
        // Garbage in the signature file.
        let garbage = p.check("acme/k", manifest, Some(b"hello")).unwrap_err();
        assert!(matches!(garbage, TrustError::Invalid { .. }), "{garbage}");
        // Everything required: a repo with no key is refused.
        let strict = policy(true, &[("acme", &org_pk)]);
        let no_key = strict
            .check("free/k", manifest, None)
            .unwrap_err()
            .to_string();
        assert!(
            no_key.contains("lists no key for `free/k` or `free`"),
            "{no_key}"
        );
    }

    #[test]
    fn key_ids_read_like_minisign_prints_them() {
        let (pk, _) = keypair();
        let key = TrustedKey::parse(&pk).unwrap();
        let printed = minisign::PublicKey::from_base64(&pk).unwrap();
        let expected = format!(
            "{:016X}",
            u64::from_le_bytes(printed.keynum().try_into().unwrap())
        );
        assert_eq!(key.id.to_string(), expected);
        assert_eq!(expected.parse::<KeyId>().unwrap(), key.id);
        assert!(TrustedKey::parse("RWQ").is_err());
        assert!(
            TrustedKey::parse(&base64::engine::general_purpose::STANDARD.encode([0u8; 42]))
                .is_err()
        );
    }
}
