//! The digests a pin can carry: SHA-256 (kernelhub's manifests and locks)
//! or SHA-512 (Hugging Face's `metadata.json` may use either). Blobs are
//! named by the lower-case hex of their pin's digest.

use std::fmt;

use kernelhub_manifest::hash::Sha256Digest;
use sha2::Digest as _;

/// Which hash function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

/// A file's expected or computed digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Checksum {
    /// SHA-256.
    Sha256(Sha256Digest),
    /// SHA-512 (boxed: errors carrying two checksums stay small).
    Sha512(Box<[u8; 64]>),
}

impl Checksum {
    /// Its hash function.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Checksum::Sha256(_) => Algorithm::Sha256,
            Checksum::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// The digest bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Checksum::Sha256(d) => &d.0,
            Checksum::Sha512(d) => &d[..],
        }
    }

    /// The digest of `bytes` under `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Self {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Checksum::Sha512(_) = self {
            f.write_str("sha512:")?;
        }
        for byte in self.bytes() {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl From<Sha256Digest> for Checksum {
    fn from(digest: Sha256Digest) -> Self {
        Checksum::Sha256(digest)
    }
}

/// A running hash of either kind.
pub enum Hasher {
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A fresh hasher.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// Hashes more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest.
    pub fn finish(self) -> Checksum {
        match self {
            Hasher::Sha256(h) => Checksum::Sha256(Sha256Digest(h.finalize().into())),
            Hasher::Sha512(h) => Checksum::Sha512(Box::new(h.finalize().into())),
        }
    }
}
