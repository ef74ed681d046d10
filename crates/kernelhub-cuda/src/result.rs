//! Every driver call as a `Result`: a failing status becomes a
//! [`CudaError`] carrying the call's name, the status and the driver's own
//! name and description of it (`CUDA_ERROR_NO_BINARY_FOR_GPU: no kernel
//! image is available for execution on the device`).
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char};

use crate::sys::{CUDA_SUCCESS, CUresult, Driver};

/// A driver call that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{call}` failed with {name} ({code}): {description}")]
pub struct CudaError {
    /// The driver function.
    pub call: &'static str,
    /// Its status.
    pub code: CUresult,
    /// The status's name, e.g. `CUDA_ERROR_OUT_OF_MEMORY`.
    pub name: String,
    /// The driver's description of it.
    pub description: String,
}

impl Driver {
    /// `Ok` for `CUDA_SUCCESS`, else the error with the driver's words for it.
    pub fn check(&self, call: &'static str, code: CUresult) -> Result<(), CudaError> {
        if code == CUDA_SUCCESS {
            return Ok(());
        }
        let text = |f: unsafe extern "C" fn(CUresult, *mut *const c_char) -> CUresult| {
            let mut text: *const c_char = std::ptr::null();
            // SAFETY: the driver stores a pointer to a static NUL-terminated
            // string, or fails and leaves it null.
            let status = unsafe { f(code, &mut text) };
            if status != CUDA_SUCCESS || text.is_null() {
                return None;
            }
            // SAFETY: checked non-null above; the string is static.
            Some(
                unsafe { CStr::from_ptr(text) }
                    .to_string_lossy()
                    .into_owned(),
            )
        };
        Err(CudaError {
            call,
            code,
            name: text(self.get_error_name).unwrap_or_else(|| "an unknown status".to_string()),
            description: text(self.get_error_string)
                .unwrap_or_else(|| "the driver has no description for it".to_string()),
        })
    }
}
