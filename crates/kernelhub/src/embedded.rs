//! The project's reference kernels, compiled into the library, so that
//! `kernelhub run` and engines' smoke tests work with no network and no
//! cache. They are the files of `kernels/` (a kernel repo each); every byte
//! is still verified against its manifest's pin before it is loaded.

/// One file of an embedded kernel repo.
pub struct EmbeddedFile {
    /// Path inside the kernel repo.
    pub path: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

/// One embedded kernel repo: its `kernel.toml` and every artifact.
pub struct EmbeddedKernel {
    /// The kernel's name (its directory under `kernels/`).
    pub name: &'static str,
    /// The files, `kernel.toml` first.
    pub files: &'static [EmbeddedFile],
}

macro_rules! kernel {
    ($name:literal: $($path:literal),* $(,)?) => {
        EmbeddedKernel {
            name: $name,
            files: &[
                EmbeddedFile {
                    path: "kernel.toml",
                    bytes: include_bytes!(concat!("../../../kernels/", $name, "/kernel.toml")),
                },
                $(EmbeddedFile {
                    path: $path,
                    bytes: include_bytes!(concat!("../../../kernels/", $name, "/", $path)),
                },)*
            ],
        }
    };
}

/// Every reference kernel (a test checks that this lists every artifact of
/// every `kernels/*/kernel.toml`).
pub static KERNELS: &[EmbeddedKernel] = &[
    kernel!("activation":
        "build/cuda/activation_sm80.ptx",
        "build/rocm/activation_gfx90a.hsaco",
        "build/rocm/activation_gfx942.hsaco",
        "wgsl/activation_f32.wgsl",
        "wgsl/activation_f16.wgsl",
    ),
    kernel!("rmsnorm":
        "build/cuda/rmsnorm_sm80.ptx",
        "build/rocm/rmsnorm_gfx90a.hsaco",
        "build/rocm/rmsnorm_gfx942.hsaco",
        "wgsl/rmsnorm_f32.wgsl",
        "wgsl/rmsnorm_f16.wgsl",
        "wgsl/rmsnorm_f32_subgroups.wgsl",
        "wgsl/rmsnorm_f16_subgroups.wgsl",
    ),
    kernel!("rotary":
        "build/cuda/rotary_sm80.ptx",
        "build/rocm/rotary_gfx90a.hsaco",
        "build/rocm/rotary_gfx942.hsaco",
        "wgsl/rotary_f32.wgsl",
        "wgsl/rotary_f16.wgsl",
    ),
    kernel!("softmax":
        "build/cuda/softmax_sm80.ptx",
        "build/rocm/softmax_gfx90a.hsaco",
        "build/rocm/softmax_gfx942.hsaco",
        "wgsl/softmax_f32.wgsl",
        "wgsl/softmax_f16.wgsl",
        "wgsl/softmax_f32_subgroups.wgsl",
        "wgsl/softmax_f16_subgroups.wgsl",
    ),
];

/// The embedded kernel called `name`.
pub fn find(name: &str) -> Option<&'static EmbeddedKernel> {
    KERNELS.iter().find(|k| k.name == name)
}

impl EmbeddedKernel {
    /// The file at `path`.
    pub fn file(&self, path: &str) -> Option<&'static [u8]> {
        self.files.iter().find(|f| f.path == path).map(|f| f.bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use kernelhub_manifest::{KernelManifest, Strictness};

    use super::*;

    #[test]
    fn every_artifact_of_every_reference_kernel_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kernels");
        let mut names: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut embedded: Vec<&str> = KERNELS.iter().map(|k| k.name).collect();
        embedded.sort();
        assert_eq!(names, embedded, "kernels/ and the embedded list differ");
        for kernel in KERNELS {
            let text = std::str::from_utf8(kernel.file("kernel.toml").unwrap()).unwrap();
            let manifest = KernelManifest::parse(text, Path::new("kernel.toml"), Strictness::Load)
                .value
                .unwrap();
            let mut wanted: Vec<&str> = manifest
                .artifacts
                .iter()
                .map(|a| a.path.get_ref().as_str())
                .collect();
            wanted.push("kernel.toml");
            wanted.sort();
            let mut have: Vec<&str> = kernel.files.iter().map(|f| f.path).collect();
            have.sort();
            assert_eq!(wanted, have, "kernel `{}`", kernel.name);
        }
    }
}
