#!/usr/bin/env bash
# Build the reference kernels' native artifacts from source:
#
#   kernels/<k>/src/<k>.cu   -> kernels/<k>/build/cuda/<k>_sm80.ptx
#   kernels/<k>/src/<k>.hip  -> kernels/<k>/build/rocm/<k>_gfx90a.hsaco
#                               kernels/<k>/build/rocm/<k>_gfx942.hsaco
#   kernels/<k>/src/<k>.wgsl -> kernels/<k>/wgsl/*.wgsl, one per WGSL artifact
#                               in kernel.toml (scripts/wgsl-variants.py)
#
# Needs only clang-15 and lld-15 (Debian 12 packages): no CUDA toolkit, no
# ROCm; and python3 for the WGSL. The outputs are deterministic: a rebuild
# gives byte-identical files, so the sha256 in each kernel.toml stays valid.
#
#   scripts/build-kernels.sh          build into kernels/*/build/
#   scripts/build-kernels.sh --check  build into a temporary directory and
#                                     compare with the files in kernels/*/build/
#                                     (and each derived .hip with what its .cu
#                                     gives, each WGSL file with what its
#                                     source gives); exit 1 naming every file
#                                     that differs
#
# After changing a source, rebuild and then update size and sha256 in that
# kernel's kernel.toml (`kernelhub manifest update`). The .hip of activation,
# rmsnorm and rotary is derived from the .cu (scripts/hip-from-cu.py K);
# softmax.hip is written by hand.
#
# gfx942 (MI300): clang-15 predates the gfx942 target ID, so the gfx942 code
# object is compiled for gfx940, the first CDNA3 target ID, which has the same
# instruction set, and then re-tagged as gfx942: the ELF header's e_flags
# machine (EF_AMDGPU_MACH_AMDGCN_GFX940 0x40 -> _GFX942 0x4c) and the
# "amdgcn-amd-amdhsa--gfx940" target string in the code object metadata note.
# The re-tag checks that it finds exactly what it expects and fails otherwise.
set -euo pipefail

CLANG=${CLANG:-clang-15}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KERNELS=(activation rmsnorm rotary softmax)
# Kernels whose .hip scripts/hip-from-cu.py derives from the .cu.
DERIVED_HIP=(activation rmsnorm rotary)

usage() {
    echo "usage: $0 [--check]" >&2
    exit 2
}

check=0
case $# in
0) ;;
1) [[ $1 == --check ]] && check=1 || usage ;;
*) usage ;;
esac

command -v "$CLANG" >/dev/null || { echo "error: $CLANG not found (apt install clang-15 lld-15)" >&2; exit 2; }
command -v ld.lld-15 >/dev/null || command -v ld.lld >/dev/null ||
    { echo "error: lld not found (apt install lld-15)" >&2; exit 2; }

# Same flags for every build; no debug info, so no paths end up in the output.
CUDA_FLAGS=(-x cuda --cuda-device-only -nocudainc -nocudalib -O3 -S)
HIP_FLAGS=(-x hip --cuda-device-only -nogpuinc -nogpulib -O3 -fuse-ld=lld --no-gpu-bundle-output)

# Compiler temporaries (and, with --check, the outputs) go in a private
# directory that is removed on exit.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/build-kernels.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export TMPDIR=$WORK

# Overwrite bytes of a file in place: patch FILE OFFSET STRING
patch_bytes() {
    printf '%s' "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# Re-tag a gfx940 code object as gfx942 (see the header comment).
retag_gfx942() {
    local f=$1 flags offsets n
    flags=$(od -An -tx1 -j48 -N4 "$f" | tr -d ' \n')
    if [[ $flags != 40050000 ]]; then
        echo "error: $f: e_flags $flags, expected 40050000 (gfx940, xnack any, sramecc any)" >&2
        exit 1
    fi
    offsets=$(grep -obUa 'amdgcn-amd-amdhsa--gfx940' "$f" | cut -d: -f1)
    n=$(printf '%s\n' "$offsets" | grep -c . || true)
    if [[ $n != 1 ]]; then
        echo "error: $f: found the gfx940 target string $n times, expected once" >&2
        exit 1
    fi
    patch_bytes "$f" 48 $'\x4c'
    patch_bytes "$f" $((offsets + 24)) 2 # "...--gfx940" -> "...--gfx942"
}

# build OUTROOT: build every artifact under OUTROOT/<kernel>/build/
build() {
    local out=$1 k src dst arch
    for k in "${KERNELS[@]}"; do
        mkdir -p "$out/$k/build/cuda" "$out/$k/build/rocm"
        # Compile from inside the kernel directory with relative source paths.
        pushd "$ROOT/kernels/$k" >/dev/null

        dst=$out/$k/build/cuda/${k}_sm80.ptx
        "$CLANG" "${CUDA_FLAGS[@]}" --cuda-gpu-arch=sm_80 -o "$dst" "src/$k.cu"
        echo "built kernels/$k/build/cuda/${k}_sm80.ptx"

        for arch in gfx90a gfx942; do
            dst=$out/$k/build/rocm/${k}_$arch.hsaco
            if [[ $arch == gfx942 ]]; then
                "$CLANG" "${HIP_FLAGS[@]}" --offload-arch=gfx940 -o "$dst" "src/$k.hip"
                retag_gfx942 "$dst"
            else
                "$CLANG" "${HIP_FLAGS[@]}" --offload-arch="$arch" -o "$dst" "src/$k.hip"
            fi
            echo "built kernels/$k/build/rocm/${k}_$arch.hsaco"
        done

        popd >/dev/null
        (cd "$ROOT" && python3 scripts/wgsl-variants.py "$k" "$out/$k") >"$WORK/$k.wgsl-made"
        sed "s|^|made kernels/$k/|" "$WORK/$k.wgsl-made"
    done
}

if ((check == 0)); then
    build "$ROOT/kernels"
    exit 0
fi

build "$WORK/out" >/dev/null
status=0
for k in "${DERIVED_HIP[@]}"; do
    (cd "$ROOT" && python3 scripts/hip-from-cu.py "$k" "$WORK/$k.hip")
    if ! cmp -s "$ROOT/kernels/$k/src/$k.hip" "$WORK/$k.hip"; then
        echo "DIFFERS kernels/$k/src/$k.hip (regenerate: python3 scripts/hip-from-cu.py $k, then rebuild)"
        status=1
    fi
done
# compare K REL WHY: kernels/K/REL against the file just built; WHY says what
# to do when they differ.
compare() {
    local committed=$ROOT/kernels/$1/$2
    if [[ ! -f $committed ]]; then
        echo "MISSING kernels/$1/$2 (run scripts/build-kernels.sh, then update kernel.toml)"
        status=1
    elif ! cmp -s "$committed" "$WORK/out/$1/$2"; then
        echo "DIFFERS kernels/$1/$2 ($3)"
        status=1
    fi
}
for k in "${KERNELS[@]}"; do
    for rel in "build/cuda/${k}_sm80.ptx" "build/rocm/${k}_gfx90a.hsaco" "build/rocm/${k}_gfx942.hsaco"; do
        compare "$k" "$rel" "rebuild with scripts/build-kernels.sh, then update kernel.toml"
    done
    # The WGSL files are the ones kernel.toml's WGSL artifacts name.
    while read -r rel; do
        compare "$k" "$rel" "not what src/$k.wgsl gives: remake it with scripts/build-kernels.sh, then update kernel.toml; edit the source, not this file"
    done <"$WORK/$k.wgsl-made"
    for committed in "$ROOT/kernels/$k"/wgsl/*.wgsl; do
        if ! grep -qxF "wgsl/${committed##*/}" "$WORK/$k.wgsl-made"; then
            echo "STRAY kernels/$k/wgsl/${committed##*/} (no WGSL artifact in kernel.toml names it: remove it)"
            status=1
        fi
    done
done
if ((status == 0)); then
    echo "ok: all native and WGSL artifacts match their sources, and the derived .hip their .cu"
fi
exit $status
