//! Hugging Face's kernel repo layout, as published by kernel-builder for the
//! Python `kernels` package: `build/<variant>/` folders with a
//! `metadata.json` that pins every file by digest.
//!
//! - [`variant`] parses variant names and ranks them for a target system
//!   exactly as the Python loader does, with a reason for each rejection.
//! - [`metadata`] reads `metadata.json` and checks a variant's file list and
//!   digests against it.
//! - [`repo`] reads a repo on the Hub (versions, variants, redirects) and
//!   fetches chosen variants into the Hub cache where the Python loader
//!   finds them offline, verifying every byte on the way.

pub mod lock;
pub mod metadata;
pub mod repo;
pub mod variant;
