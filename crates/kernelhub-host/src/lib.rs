//! Host code: a kernel artifact that is a shared library, opened from a
//! sealed in-memory copy of its verified bytes.
//!
//! The bytes the caller verified are written into an anonymous memory file
//! (`memfd_create`), which is then sealed against every change (no write,
//! no shrink, no grow, no further seals) before `dlopen` opens it through
//! `/proc/self/fd`. Nothing else can write the file between verification and
//! loading: it has no name in any directory, and the seals hold even for
//! this process. Whether host code may be loaded at all is the caller's
//! decision (`kernels.toml` `allow_host_code`, checked by the `kernelhub`
//! crate); this crate only makes the load itself safe from tampering.

use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{MemfdFlags, SealFlags};

/// Why a shared library could not be opened or a symbol found.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The in-memory copy could not be made or sealed.
    #[error("cannot make a sealed in-memory copy of `{name}`: {source}")]
    Seal {
        /// The artifact.
        name: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The dynamic loader refused the library.
    #[error("the dynamic loader refused `{name}`: {message}")]
    Open {
        /// The artifact.
        name: String,
        /// `dlerror`'s text.
        message: String,
    },
    /// The library has no such symbol.
    #[error("`{name}` has no symbol `{symbol}`: {message}")]
    Symbol {
        /// The artifact.
        name: String,
        /// The symbol asked for.
        symbol: String,
        /// `dlerror`'s text.
        message: String,
    },
}

/// A shared library opened from a sealed in-memory file.
///
/// The memory file is never closed, even after the library is dropped: the
/// dynamic loader knows a library by its path, `/proc/self/fd/N`, and a
/// library `dlclose` does not unload (many do not) keeps that name. If `N`
/// were reused for another library, `dlopen` would hand back the old one.
pub struct HostLibrary {
    name: String,
    library: libloading::Library,
    memfd: BorrowedFd<'static>,
}

impl HostLibrary {
    /// Opens `bytes` as a shared library named `name` in messages.
    ///
    /// # Safety
    ///
    /// The library's initialisers run now, in this process, and its code
    /// afterwards: `bytes` must be code the caller trusts, verified against
    /// its pin and allowed by the project (`kernelhub::host` checks both).
    #[allow(unsafe_code)]
    pub unsafe fn open(name: &str, bytes: &[u8]) -> Result<Self, HostError> {
        let seal_error = |source: std::io::Error| HostError::Seal {
            name: name.to_string(),
            source,
        };
        let memfd = rustix::fs::memfd_create(
            "kernelhub-host",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .map_err(|e| seal_error(e.into()))?;
        let mut file = std::fs::File::from(memfd);
        file.write_all(bytes).map_err(seal_error)?;
        let memfd = OwnedFd::from(file);
        rustix::fs::fcntl_add_seals(
            &memfd,
            SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
        )
        .map_err(|e| seal_error(e.into()))?;
        let path = format!("/proc/self/fd/{}", memfd.as_raw_fd());
        // SAFETY: loading a library runs its initialisers; this function's
        // caller vouches for the code. The file it is read from is sealed,
        // so it is exactly those bytes.
        let library = unsafe { libloading::Library::new(&path) }.map_err(|e| HostError::Open {
            name: name.to_string(),
            message: e.to_string(),
        })?;
        // Kept open for the life of the process (see the type's docs).
        let raw = std::os::fd::IntoRawFd::into_raw_fd(memfd);
        // SAFETY: `raw` was just released from its `OwnedFd` and is never
        // closed, so it stays valid for `'static`.
        let memfd = unsafe { BorrowedFd::borrow_raw(raw) };
        Ok(HostLibrary {
            name: name.to_string(),
            library,
            memfd,
        })
    }

    /// The seals on the in-memory file (for checks and tests).
    pub fn seals(&self) -> std::io::Result<SealFlags> {
        rustix::fs::fcntl_get_seals(self.memfd).map_err(Into::into)
    }

    /// The in-memory file the library was loaded from.
    pub fn memfd(&self) -> BorrowedFd<'static> {
        self.memfd
    }

    /// The symbol `symbol`, as a `T`.
    ///
    /// # Safety
    ///
    /// `T` must be the symbol's real type (for a function, its exact
    /// signature and ABI); calling through a wrong type is undefined
    /// behaviour, as with any `dlsym`.
    #[allow(unsafe_code)]
    pub unsafe fn symbol<T>(&self, symbol: &str) -> Result<libloading::Symbol<'_, T>, HostError> {
        // SAFETY: the caller guarantees `T` (this function's contract).
        unsafe { self.library.get(symbol.as_bytes()) }.map_err(|e| HostError::Symbol {
            name: self.name.clone(),
            symbol: symbol.to_string(),
            message: e.to_string(),
        })
    }
}
