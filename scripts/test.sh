#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine that has Rust: installs
# what the tests need (Debian packages, a Python venv), then runs everything.
#
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages: clang/lld rebuild the PTX and hsaco to prove the committed
# artifacts are reproducible (clang-15's clang++-15 also builds the kernel
# simulation); openssl is the hashing benchmark's baseline;
# minisign verifies kernelhub's signatures independently; libamdhip64-5 is
# the HIP runtime the ROCm backend is tested against (no GPU needed);
# mesa-vulkan-drivers runs the WGSL kernels through wgpu without a GPU.
sudo=""
[[ $(id -u) -eq 0 ]] || sudo=sudo
missing=()
command -v clang-15 >/dev/null || missing+=(clang-15)
command -v ld.lld-15 >/dev/null || missing+=(lld-15)
command -v openssl >/dev/null || missing+=(openssl)
# The standalone minisign checks that kernelhub's signatures are minisign's.
command -v minisign >/dev/null || missing+=(minisign)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
# A real HIP runtime with no AMD GPU: the ROCm backend's probe runs up to
# the driver boundary and reports zero devices.
[[ -e /usr/lib/x86_64-linux-gnu/libamdhip64.so.5 ]] || missing+=(libamdhip64-5)
# Mesa's lavapipe: the Vulkan driver on the CPU that runs the WGSL kernels.
[[ -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ]] || missing+=(mesa-vulkan-drivers)
if ((${#missing[@]})); then
    echo "==> installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python tools, in a venv of the repo's own.
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r scripts/requirements-test.txt

echo "==> cargo test"
cargo test --workspace --locked
echo "==> benches compile"
cargo build --workspace --benches --locked -q
echo "==> kernel.toml JSON Schema"
.venv/bin/python scripts/validate-schema.py
echo "==> native artifacts rebuild byte-identically"
scripts/build-kernels.sh --check
echo "==> native kernels simulated on the CPU (tests/kernel-sim)"
scripts/simulate-kernels.sh
echo "==> kernelhub check kernels/*"
cargo run --locked -q -p kernelhub-cli -- check --deny-warnings kernels/*
echo "==> scripts/run.sh (the README's main job, small sizes)"
scripts/run.sh --tokens 16 --time 0
echo "==> all tests passed"
