#!/usr/bin/env bash
# The main job on a fresh Debian machine with Rust: run the reference kernels
# compiled into kernelhub (no network for the kernels, no cache, no GPU
# needed) on the best device here, each op checked against the CPU reference.
#
#   scripts/run.sh [kernelhub run options, e.g. --tokens 16384]
#
# wgpu needs a Vulkan driver; where there is none at all, Mesa's
# `mesa-vulkan-drivers` (lavapipe, a Vulkan driver on the CPU) is installed
# first. A machine with a GPU driver keeps its own.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

have_icd=0
for dir in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
    compgen -G "$dir/*.json" >/dev/null && have_icd=1
done
if ((!have_icd)) && command -v apt-get >/dev/null; then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    echo "==> no Vulkan driver found: installing mesa-vulkan-drivers (lavapipe)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq mesa-vulkan-drivers >/dev/null
fi
exec cargo run --release --locked -q -p kernelhub-cli -- run "$@"
