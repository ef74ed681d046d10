#!/usr/bin/env bash
# The GPU check of the runtime: on an NVIDIA (or AMD) machine, every
# reference op the best device runs, checked against the CPU reference at a
# large size, with GB/s beside PyTorch's figure for the same op measured in
# the same run (see ../shared/GPU.md for the machine).
#
# The GPU machine has no Rust toolchain, so it runs in two steps:
#
#   scripts/gpu-check.sh build   # here (x86-64 Debian): release binary, the
#                                # Vulkan loader debs, this script -> .gpu-check/
#   scripts/gpu-check.sh run     # there, in the repo root with .gpu-check/
#                                # carried: prints one table, writes the logs
#                                # to $OUT (or .gpu-check/out)
#
# Sizes: KERNELHUB_GPU_TOKENS rows (default 16384: silu_and_mul then reads
# 512 MiB and writes 256 MiB per launch, f32).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DIR=.gpu-check

build() {
    cargo build --release --locked -q -p kernelhub-cli
    cargo bench --locked -q -p kernelhub-benches --bench runtime --no-run 2>/dev/null
    rm -rf "$DIR" && mkdir -p "$DIR/gl" /tmp/amd64-lists/partial
    cp target/release/kernelhub "$DIR/"
    bench=$(ls -t target/release/deps/runtime-* | grep -v '\.d$' | head -n1)
    cp "$bench" "$DIR/runtime-bench"
    # The GPU machine has the NVIDIA Vulkan driver but not the loader, nor
    # the GL dispatch libraries the NVIDIA driver's Vulkan library needs
    # (../shared/GPU.md).
    o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64-lists)
    apt-get "${o[@]}" update -qq
    (cd "$DIR/gl" && apt-get "${o[@]}" download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
    echo "built $DIR/: $(ls "$DIR" | tr '\n' ' ')"
}

run() {
    [[ -x $DIR/kernelhub ]] || { echo "error: $DIR/kernelhub missing; run \`$0 build\` on the build machine and carry $DIR" >&2; exit 2; }
    out=${OUT:-$DIR/out}
    mkdir -p "$out"
    if ! ldconfig -p | grep -q libvulkan.so.1; then
        for deb in "$DIR"/gl/*.deb; do dpkg -x "$deb" /; done
        ldconfig
    fi
    for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json; do
        [[ -e $icd ]] && export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd && break
    done
    tokens=${KERNELHUB_GPU_TOKENS:-16384}
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/device.txt" 2>&1 || true
    "$DIR/kernelhub" doctor > "$out/doctor.txt" 2>&1 || true
    "$DIR/kernelhub" run --tokens "$tokens" --time 1000 --json > "$out/kernelhub.jsonl" 2> "$out/kernelhub.err" || true
    python3 scripts/gpu_check.py --tokens "$tokens" --kernelhub "$out/kernelhub.jsonl" \
        --device-name "$(head -n1 "$out/device.txt")" | tee "$out/table.txt"
    "$DIR/runtime-bench" --bench launch > "$out/launch-bench.txt" 2>&1 || true
    grep -E "^launch/|time:" "$out/launch-bench.txt" | tee -a "$out/table.txt" || true
}

case ${1:-} in
build) build ;;
run) run ;;
*) echo "usage: $0 build|run" >&2; exit 2 ;;
esac
