//! Hub access for kernelhub: from `kernels.toml` to verified bytes on disk.
//!
//! ```text
//! kernels.toml ─► lock ─► kernels.lock ─► fetch ─► Hub cache ─► load (offline)
//!                (refs)                  (verify while streaming)
//! ```
//!
//! - [`settings`] merges flags, `kernels.toml` `[hub]` and the environment
//!   into one [`Settings`], with offline mode as a [`Connectivity`] value.
//! - [`client`] is the only code that talks to a Hub (through `hf-hub`),
//!   with kernelhub's retry policy and errors; offline there is no client.
//! - [`cache`] owns the standard Hub cache layout: verified writes (hash
//!   while streaming, size enforced, atomic rename, per-blob file locks) and
//!   verified reads for loading.
//! - [`resolve`] turns requirements into a lock; [`fetch`] downloads what a
//!   lock pins for chosen platforms; [`verify`] re-hashes the cache on all
//!   cores; [`bundle`] carries a lock and its files to an air-gapped machine.
//!
//! Nothing here prints: progress goes through [`fetch::Observer`], results
//! come back as reports, and the binary decides how to show them.

pub mod bundle;
pub mod cache;
pub mod checksum;
pub mod client;
pub mod env;
mod error;
pub mod fetch;
pub mod hf_digest;
pub mod platform;
pub mod resolve;
pub mod settings;
pub mod signed;
pub mod verify;

pub use cache::{HubCache, PinnedFile};
pub use checksum::{Algorithm, Checksum};
pub use client::HubClient;
pub use error::{Error, FileProblem};
pub use settings::{Connectivity, Settings};
