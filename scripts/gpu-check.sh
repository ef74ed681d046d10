#!/usr/bin/env bash
# The GPU check of the runtime (issue 5): on the NVIDIA machine, every
# reference op in every variant the GPU can run it from (a cubin compiled
# there with ptxas, the PTX through the driver's JIT, the WGSL through wgpu
# on Vulkan), checked against the CPU reference at a large size, with GB/s
# beside PyTorch's figure for the same op and dtype measured in the same run;
# then launch overhead (10,000 tiny launches through the trait against raw
# cuLaunchKernel, and the wgpu trait against a raw dispatch) and first-load
# time (verified bytes to a launchable function, PTX vs cubin). One table.
# (../shared/GPU.md describes the machine.)
#
# The GPU machine has no Rust toolchain, so it runs in two steps:
#
#   scripts/gpu-check.sh build   # here (x86-64 Debian): release binary, the
#                                # runtime and cuda bench binaries, the Vulkan
#                                # loader debs -> .gpu-check/ (carry it)
#   scripts/gpu-check.sh run     # there, in the repo root: prints the table,
#                                # writes every log to $OUT (or .gpu-check/out)
#
# `run`, in order (each step with a time limit, together at most 510 s, so
# that one device command of 600 s always reaches the table; ~3-4 minutes
# expected). On the device tool: run(command="scripts/gpu-check.sh run",
# carry=[".gpu-check"], timeout_s=590).
#   1. cubins: copies of kernels/<k> under $OUT/cubin/, each with a cubin
#      compiled by ptxas from build/cuda/*.ptx for the GPU's architecture
#      (sm_XY from nvidia-smi's compute_cap), its [[artifacts]] added to the
#      copy's kernel.toml (entries of the PTX artifact), size and sha256 filled
#      by `kernelhub manifest update`, then `kernelhub check` (cubin.log has
#      every command and ptxas --version). `scripts/gpu-check.sh cubins DIR`
#      does this step alone (PTXAS= and KERNELHUB_GPU_ARCH= stand in for the
#      toolkit and nvidia-smi).
#   2. `kernelhub run --json` three times: the copies (cubin), kernels/*
#      (ptx), and kernels/* with KERNELHUB_BACKEND=wgpu (wgsl):
#      run-{cubin,ptx,wgsl}.jsonl. The variant of a line is what its
#      `artifact` ends with.
#   3. benches: cuda-bench (launch/*, first_load/{ptx,cubin} with
#      CUDA_CACHE_DISABLE=1) and runtime-bench's launch group on wgpu, their
#      criterion estimates under $OUT/criterion/{cuda,wgpu}.
#   4. scripts/gpu_check.py: PyTorch's figures, then the table (table.txt).
#
# Sizes: KERNELHUB_GPU_TOKENS rows (default 8192: silu_and_mul f32 then reads
# 256 MiB and writes 128 MiB per launch), each op timed for at least
# KERNELHUB_GPU_TIME_MS (default 300).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DIR=.gpu-check

# The executable `cargo bench --no-run` builds for bench $1.
bench_exe() {
    cargo bench --locked -q -p kernelhub-benches --bench "$1" --no-run --message-format=json |
        python3 -c 'import json, sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable")][-1])'
}

build() {
    cargo build --release --locked -q -p kernelhub-cli
    local runtime cuda
    runtime=$(bench_exe runtime)
    cuda=$(bench_exe cuda)
    rm -rf "$DIR" && mkdir -p "$DIR/gl" /tmp/amd64-lists/partial
    cp target/release/kernelhub "$DIR/"
    cp "$runtime" "$DIR/runtime-bench"
    cp "$cuda" "$DIR/cuda-bench"
    # Symbols off: the carried folder must stay well under 64 MiB.
    strip "$DIR/kernelhub" "$DIR/runtime-bench" "$DIR/cuda-bench"
    # The GPU machine has the NVIDIA Vulkan driver but not the loader, nor
    # the GL dispatch libraries the NVIDIA driver's Vulkan library needs
    # (../shared/GPU.md).
    o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64-lists)
    apt-get "${o[@]}" update -qq
    (cd "$DIR/gl" && apt-get "${o[@]}" download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
    echo "built $DIR/ ($(du -sh "$DIR" | cut -f1)): $(ls "$DIR" | tr '\n' ' ')"
}

# Appends to kernel.toml $1 a cubin artifact at path $3 (relative) for
# architecture $4, with the entries of the PTX artifact at path $2, and the
# ptxas command $5 as a comment; size and sha256 are placeholders for
# `kernelhub manifest update`.
add_cubin_artifact() {
    python3 - "$@" <<'PY'
import re, sys
manifest, ptx, cubin, arch, command = sys.argv[1:6]
text = open(manifest).read()
# The text cut before each table header; the PTX artifact's entries are the
# [[artifacts.entries]] tables between its [[artifacts]] and the next one.
entries, in_ptx = [], False
for chunk in re.split(r"(?m)^(?=\[)", text):
    if chunk.startswith("[[artifacts]]"):
        in_ptx = re.search(r'(?m)^path\s*=\s*"%s"' % re.escape(ptx), chunk) is not None
    elif chunk.startswith("[[artifacts.entries]]") and in_ptx:
        # Key/value lines only: comments after a table introduce the next one.
        lines = [l for l in chunk.splitlines() if l.strip() and not l.lstrip().startswith("#")]
        entries.append("\n".join(lines))
if not entries:
    sys.exit(f"{manifest}: no [[artifacts.entries]] under the artifact `{ptx}`")
text = text.rstrip("\n") + f"""

# Added by scripts/gpu-check.sh on the GPU machine, compiled from `{ptx}`:
#   {command}
[[artifacts]]
backend = "cuda"
format = "cubin"
targets = ["{arch}"]
path = "{cubin}"
size = 0  # size and sha256 filled in by `kernelhub manifest update`
sha256 = "{'0' * 64}"

""" + "\n\n".join(entries) + "\n"
open(manifest, "w").write(text)
print(f"{manifest}: cubin artifact `{cubin}` ({arch}) with the {len(entries)} entries of `{ptx}`")
PY
}

# Step 1 of `run` (see the top): cubin copies of the kernels with PTX under
# $1/cubin/, everything logged to $1/cubin.log.
cubins() {
    local out=$1 log=$1/cubin.log ptxas="${PTXAS:-}" cap="${KERNELHUB_GPU_ARCH:-}"
    mkdir -p "$out"
    : > "$log"
    if [[ -z $ptxas ]]; then
        for p in /usr/local/cuda/bin/ptxas "$(command -v ptxas || true)" /usr/local/cuda-*/bin/ptxas; do
            [[ -n $p && -x $p ]] && ptxas=$p && break
        done
    fi
    if [[ -z $ptxas ]]; then
        echo "  no ptxas (looked in /usr/local/cuda/bin and PATH; PTXAS= names one): no cubins" | tee -a "$log"
        return 0
    fi
    if [[ -z $cap ]]; then
        cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>>"$log" | head -n1 | tr -d ' ')
        [[ $cap =~ ^[0-9]+\.[0-9]+$ ]] || { echo "  no compute capability from nvidia-smi ('$cap'): no cubins" | tee -a "$log"; return 0; }
        cap=sm_${cap/./}
    fi
    { echo "\$ $ptxas --version"; "$ptxas" --version; } >> "$log" 2>&1
    echo "  ptxas: $ptxas ($("$ptxas" --version | grep -o 'V[0-9][0-9.]*' | head -n1)), GPU $cap"
    rm -rf "$out/cubin" && mkdir -p "$out/cubin"
    local kernel name copy ptx cubin arch cmd
    for kernel in kernels/*; do
        name=$(basename "$kernel")
        ptx=$(cd "$kernel" && ls build/cuda/*.ptx 2>/dev/null | head -n1) || true
        [[ -n $ptx ]] || { echo "  $name: no PTX, no cubin" | tee -a "$log"; continue; }
        copy=$out/cubin/$name
        cp -r "$kernel" "$copy"
        # The GPU's own architecture, not its `a` variant: ptxas 13.0 takes
        # -arch=sm_90a for sm_80 PTX but writes the same ELF header as for
        # sm_90 (arch-specific code needs sm_90a PTX), so the cubin is
        # sm_90, as `kernelhub check` reads it (checked with V13.0.88).
        arch=$cap
        cubin=build/cuda/${name}_${arch//_/}.cubin
        cmd=("$ptxas" -arch="$arch" -O3 -o "$copy/$cubin" "$copy/$ptx")
        echo "\$ ${cmd[*]}" >> "$log"
        if ! "${cmd[@]}" >> "$log" 2>&1; then
            echo "  $name: ptxas failed for $arch (cubin.log); no cubin" | tee -a "$log"
            rm -rf "$copy"
            continue
        fi
        local version
        version=$("$ptxas" --version | grep -o 'V[0-9][0-9.]*' | head -n1)
        if add_cubin_artifact "$copy/kernel.toml" "$ptx" "$cubin" "$arch" \
            "ptxas $version: ptxas -arch=$arch -O3 -o $cubin $ptx" >> "$log" 2>&1 &&
            "$DIR/kernelhub" manifest update "$copy" >> "$log" 2>&1 &&
            { echo "\$ kernelhub check $copy"; "$DIR/kernelhub" check "$copy"; } >> "$log" 2>&1; then
            echo "  $name: $cubin ($arch, $(wc -c < "$copy/$cubin") bytes): checked"
        else
            echo "  $name: the copy with the cubin did not build or check (cubin.log); left out" | tee -a "$log"
            rm -rf "$copy"
        fi
    done
}

run() {
    [[ -x $DIR/kernelhub ]] || { echo "error: $DIR/kernelhub missing; run \`$0 build\` on the build machine and carry $DIR" >&2; exit 2; }
    out=${OUT:-$DIR/out}
    mkdir -p "$out"
    out=$(cd "$out" && pwd)
    local start=$SECONDS
    step() { printf '[%3ds] %s\n' $((SECONDS - start)) "$*" | tee -a "$out/steps.log"; }
    if ! ldconfig -p | grep -q libvulkan.so.1; then
        for deb in "$DIR"/gl/*.deb; do dpkg -x "$deb" /; done
        ldconfig
    fi
    for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json; do
        [[ -e $icd ]] && export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd && break
    done
    tokens=${KERNELHUB_GPU_TOKENS:-8192}
    ms=${KERNELHUB_GPU_TIME_MS:-300}
    # NVIDIA, else AMD (rocm-smi), else whatever kernelhub finds.
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader > "$out/device.txt" 2>/dev/null ||
        { rocm-smi --showproductname --csv 2>/dev/null | sed -n 2p > "$out/device.txt"; } || true
    [[ -s $out/device.txt ]] || echo "unknown GPU (no nvidia-smi or rocm-smi; see doctor.txt)" > "$out/device.txt"
    nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || rocm-smi > "$out/rocm-smi.txt" 2>&1 || true
    step "device: $(head -n1 "$out/device.txt")"

    step "cubins"
    cubins "$out"
    "$DIR/kernelhub" doctor > "$out/doctor.txt" 2>&1 || true

    local kernels=() copies=()
    for k in kernels/*; do [[ -e $k/kernel.toml ]] && kernels+=("$k"); done
    for k in "$out"/cubin/*; do [[ -e $k/kernel.toml ]] && copies+=("$k"); done
    # One `kernelhub run` at the large size: $1 the variant, then the kernels.
    measure() {
        local variant=$1
        shift
        step "run $variant: ${*#"$PWD"/}"
        timeout 110 "$DIR/kernelhub" run "$@" --tokens "$tokens" --time "$ms" --json \
            > "$out/run-$variant.jsonl" 2> "$out/run-$variant.err" ||
            echo "  kernelhub run exited $? (run-$variant.err)"
        echo "  $(grep -c '^{' "$out/run-$variant.jsonl" || true) op/dtype pairs measured"
    }
    if ((${#copies[@]})); then measure cubin "${copies[@]}"; else step "run cubin: no cubin copies, skipped"; fi
    # On NVIDIA the committed kernels' native artifact is the PTX; on AMD the
    # hsaco (the table labels each row by its artifact's extension).
    measure ptx "${kernels[@]}"
    KERNELHUB_BACKEND=wgpu measure wgsl "${kernels[@]}"

    step "bench: cuda (launch overhead, first load)"
    rm -rf "$out/criterion"
    CUDA_CACHE_DISABLE=1 KERNELHUB_BENCH_CUBIN_KERNEL="$out/cubin/activation" CRITERION_HOME="$out/criterion/cuda" \
        timeout 60 "$DIR/cuda-bench" --bench > "$out/cuda-bench.txt" 2>&1 || echo "  cuda-bench exited $? (cuda-bench.txt)"
    step "bench: wgpu launch overhead"
    CRITERION_HOME="$out/criterion/wgpu" timeout 40 "$DIR/runtime-bench" --bench launch > "$out/wgpu-bench.txt" 2>&1 ||
        echo "  runtime-bench exited $? (wgpu-bench.txt)"

    step "PyTorch, then the table"
    local ptxas_version
    ptxas_version=$(grep -m1 -o 'release [0-9.]*, V[0-9.]*' "$out/cubin.log" 2>/dev/null || echo none)
    timeout 80 python3 scripts/gpu_check.py --tokens "$tokens" \
        --device-name "$(head -n1 "$out/device.txt")" \
        --note "cubins: ptxas $ptxas_version (commands in cubin.log); launches timed >= $ms ms per op" \
        --criterion "$out/criterion/cuda" --criterion "$out/criterion/wgpu" --write-jsonl "$out/results.jsonl" \
        "$out/run-cubin.jsonl" "$out/run-ptx.jsonl" "$out/run-wgsl.jsonl" \
        2> "$out/gpu_check.err" | tee "$out/table.txt" || echo "  gpu_check.py exited $? (gpu_check.err)"
    step "done; logs in $out"
}

case ${1:-} in
build) build ;;
run) run ;;
cubins) cubins "${2:?usage: $0 cubins OUTDIR}" ;;
*) echo "usage: $0 build|run|cubins OUTDIR" >&2; exit 2 ;;
esac
