#!/usr/bin/env bash
# Run the native reference kernels' real sources on the CPU: the simulation
# in tests/kernel-sim/ (see its README.md for what it proves and what not).
#
# Why it exists: CI has no GPU, so without this nothing executes the logic of
# kernels/*/src/*.cu and *.hip (build-kernels.sh only compiles them). Each
# source is prepared (tests/kernel-sim/prepare.py: access checks added, one
# line at a time) into a temporary directory, compiled as host C++ with its
# harness, checked against its kernel.toml's launch geometry, and run.
#
#   scripts/simulate-kernels.sh [-v] [--source DIR] [KERNEL...]
#
#   KERNEL        activation, rmsnorm, rotary, softmax (default: all four),
#                 each as its .cu and its .hip
#   --source DIR  take DIR/<kernel>/src/<kernel>.{cu,hip} and
#                 DIR/<kernel>/kernel.toml instead of kernels/ (to try an
#                 edited copy without touching the committed files)
#   -v            every failure line, and progress per dtype
#
# Prints one line per kernel and variant; exits 1 naming every one that
# failed to build, launches differently from its kernel.toml, or failed a
# case. Needs clang++ 15 (CXX overrides; g++ lacks the clang vector
# extensions the kernels use) and python3 >= 3.11.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIM=$ROOT/tests/kernel-sim
SRC=$ROOT/kernels
CXX=${CXX:-clang++-15}
ALL=(activation rmsnorm rotary softmax)

usage() {
    echo "usage: $0 [-v] [--source DIR] [KERNEL...]   (KERNEL: ${ALL[*]})" >&2
    exit 2
}
verbose=()
kernels=()
while (($#)); do
    case $1 in
    -v) verbose=(-v) ;;
    --source) [[ $# -ge 2 ]] || usage; SRC=$(cd "$2" && pwd); shift ;;
    -*) usage ;;
    *) [[ " ${ALL[*]} " == *" $1 "* ]] || usage; kernels+=("$1") ;;
    esac
    shift
done
((${#kernels[@]})) || kernels=("${ALL[@]}")

command -v "$CXX" >/dev/null || { echo "error: $CXX not found (apt install clang-15, or set CXX)" >&2; exit 2; }
python3 -c 'import tomllib' 2>/dev/null || { echo "error: python3 >= 3.11 needed (tomllib)" >&2; exit 2; }

# -ffp-contract=off: plain IEEE f32 on every host, so runs are reproducible
# and the bitwise checks between a kernel's paths are meaningful.
CXXFLAGS=(-std=c++20 -O2 -ffp-contract=off -Wall -Wno-unknown-attributes -Wno-ignored-attributes)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/simulate-kernels.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

now() { date +%s%N; }

# One kernel variant, start to end; its output, stage and status land in
# $WORK/<kernel>.<variant>.{log,stage,rc,ns}.
job() {
    local k=$1 v=$2 b=$WORK/$1.$2 backend=cuda start rc
    [[ $v == hip ]] && backend=rocm
    start=$(now)
    set +e
    (
        set -e
        echo "build" >"$b.stage"
        python3 "$SIM/prepare.py" source "$SRC/$k/src/$k.$v" "$b"
        "$CXX" "${CXXFLAGS[@]}" -I"$SIM" -DKH_SIM_SOURCE="\"$b\"" "$SIM/$k.cpp" -o "$b.bin"
        echo "launch geometry" >"$b.stage"
        "$b.bin" --launch | python3 "$SIM/prepare.py" launch "$SRC/$k/kernel.toml" "$backend"
        echo "run" >"$b.stage"
        "$b.bin" "${verbose[@]}"
    ) >"$b.log" 2>&1
    rc=$?
    echo "$rc" >"$b.rc"
    echo $(($(now) - start)) >"$b.ns"
}

jobs_max=$(nproc 2>/dev/null || echo 2)
echo "simulating ${kernels[*]} from ${SRC#"$ROOT"/} with $CXX ($jobs_max at a time)"
t0=$(now)
running=0
for k in "${kernels[@]}"; do
    for v in cu hip; do
        job "$k" "$v" &
        running=$((running + 1))
        if ((running >= jobs_max)); then wait -n || true; running=$((running - 1)); fi
    done
done
wait || true

failed=()
for k in "${kernels[@]}"; do
    for v in cu hip; do
        b=$WORK/$k.$v
        rc=$(cat "$b.rc" 2>/dev/null || echo 1)
        secs=$(awk "BEGIN { printf \"%.1f\", $(cat "$b.ns" 2>/dev/null || echo 0) / 1e9 }")
        tally=$(grep -E '^[a-z]+: [0-9]+ cases, [0-9]+ failures$' "$b.log" | tail -1 | cut -d' ' -f2-) || true
        if [[ $rc == 0 ]]; then
            printf 'ok    %-16s %-28s %6s s\n' "$k.$v" "$tally" "$secs"
            # compiler warnings about the kernel source are worth seeing
            grep -E 'warning:' "$b.log" | sed 's/^/      /' || true
        else
            stage=$(cat "$b.stage" 2>/dev/null || echo "start")
            if [[ $stage == run ]]; then
                if ((rc > 128)); then stage="run: killed by signal $((rc - 128))"
                elif [[ -n $tally ]]; then stage="run: $tally"
                fi
            fi
            printf 'FAIL  %-16s %-28s %6s s\n' "$k.$v" "($stage)" "$secs"
            sed 's/^/      /' "$b.log"
            failed+=("$k.$v ($stage)")
        fi
    done
done
total=$(awk "BEGIN { printf \"%.0f\", ($(now) - $t0) / 1e9 }")
if ((${#failed[@]})); then
    echo "simulate-kernels: FAILED in ${total} s:"
    printf '  %s\n' "${failed[@]}"
    exit 1
fi
echo "simulate-kernels: all $((${#kernels[@]} * 2)) passed in ${total} s"
