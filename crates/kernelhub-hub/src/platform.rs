//! What GPUs this machine has, for `kernelhub fetch` without `--target`.
//!
//! Read without loading any driver library: AMD GPUs from the kernel's KFD
//! topology in sysfs (`gfx_target_version`), NVIDIA GPUs from
//! `nvidia-smi --query-gpu=compute_cap` when it is installed. The portable
//! `wgpu` platform is always included, since the runtime falls back to it.
//! The runtime's own probe (driver calls, wgpu adapters) is finer; this one
//! only decides what to download.

use std::path::Path;
use std::process::Command;

use kernelhub_manifest::select::Platform;

/// The platforms of this machine: every GPU architecture found, then `wgpu`.
pub fn host_platforms() -> Vec<Platform> {
    let mut platforms: Vec<Platform> = amd_gpus(Path::new("/sys/class/kfd/kfd/topology/nodes"));
    platforms.extend(nvidia_gpus());
    platforms.sort();
    platforms.dedup();
    platforms.push(Platform::Wgpu);
    platforms
}

/// `gfx_target_version 90010` → `gfx90a`: major, minor and stepping, the
/// last two as one hex digit each.
fn amd_gpus(nodes: &Path) -> Vec<Platform> {
    let Ok(entries) = std::fs::read_dir(nodes) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let properties = std::fs::read_to_string(entry.ok()?.path().join("properties")).ok()?;
            let version: u32 = properties
                .lines()
                .find_map(|l| l.strip_prefix("gfx_target_version "))?
                .trim()
                .parse()
                .ok()?;
            if version == 0 {
                return None; // a CPU node
            }
            let (major, minor, stepping) = (version / 10000, version / 100 % 100, version % 100);
            format!("rocm:gfx{major}{minor:x}{stepping:x}").parse().ok()
        })
        .collect()
}

fn nvidia_gpus() -> Vec<Platform> {
    let Ok(output) = Command::new("nvidia-smi")
        .args(["--query-gpu=compute_cap", "--format=csv,noheader"])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (major, minor) = line.trim().split_once('.')?;
            format!("cuda:sm_{major}{minor}").parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kfd_topology_names_amd_processors() {
        let dir = tempfile::tempdir().unwrap();
        for (node, version) in [("0", "0"), ("1", "90010"), ("2", "90402"), ("3", "110000")] {
            let path = dir.path().join(node);
            std::fs::create_dir(&path).unwrap();
            std::fs::write(
                path.join("properties"),
                format!("cpu_cores_count 0\ngfx_target_version {version}\n"),
            )
            .unwrap();
        }
        let mut found: Vec<String> = amd_gpus(dir.path()).iter().map(|p| p.to_string()).collect();
        found.sort();
        assert_eq!(found, ["rocm:gfx1100", "rocm:gfx90a", "rocm:gfx942"]);
        assert_eq!(host_platforms().last(), Some(&Platform::Wgpu));
    }
}
