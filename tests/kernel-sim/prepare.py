#!/usr/bin/env python3
# prepare.py - turn a real kernel source into its host-simulation copy, and
# check that the harness launches kernels as the kernel.toml says.
#
# Why it exists: the simulation must test the committed kernels/<k>/src files,
# not a copy that drifts from them, so this runs at build time
# (scripts/simulate-kernels.sh) and the copy lives only in a temp dir. Every
# change is within one line and a `#line` directive points diagnostics at the
# real file, so compiler messages and line numbers are the source's own.
#
#   prepare.py source IN OUT          write the simulation copy of IN to OUT
#   prepare.py launch KERNEL_TOML BACKEND < harness --launch output
#                                     exit 1 unless every BACKEND entry's
#                                     symbol, grid and block are ones the
#                                     harness simulates
#
# What `source` changes:
# - every load / store helper's pointer goes through a checked access
#   (kh_rd / kh_wr in sim.h): bounds, alignment, read-only tensors,
#   cross-thread read/write, double writes;
# - `static __attribute__((shared)) T a[N]` becomes SimShared<T, N> (race
#   and uninitialised-read checks);
# - the empty `asm volatile("" ...)` pins go (they emit no instruction);
# - the PTX shuffle asm becomes host_shfl_xor(v, lane_mask) (sim.h);
# - amdgpu_flat_work_group_size goes (an AMDGPU-only attribute).
# It fails, saying what to update, when a load/store rule matches nothing,
# when a pointer-cast dereference or a one-line `*p` helper is left
# unchecked, or when any asm or __shared__ array is left, so a refactored
# kernel cannot silently go unchecked. (A helper indexing p[i] would still
# slip through: the kernels' helpers all dereference `*p`.)
import json
import re
import sys
import tomllib

SHFL_ASM = ('asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" '
            ': "=f"(r) : "f"(v), "r"(lane_mask));')


def prepare(src_path, out_path):
    s = open(src_path).read()
    counts = {}

    def sub(name, pattern, repl):
        nonlocal s
        s, n = re.subn(pattern, repl, s)
        counts[name] = n

    cuda = src_path.endswith(".cu")
    # Scalar loads/stores whose body dereferences p itself: check sizeof(*p)
    # first. (Loads that cast p, e.g. f16's `*(const unsigned short*)p`, are
    # the next rule's; wrappers that only pass p on are left alone.)
    sub("scalar loads", r"(KH_DEVICE \w+ load(?:_bits)?\(const \w+\* p\) \{ )(?=[^;]*\*p\W)",
        r"\1p = kh_rd(p, sizeof(*p)); ")
    sub("cast loads", r"return \*\(const ([^*;()]+)\*\)p;", r"return *(const \1*)kh_rd(p, sizeof(\1));")
    sub("scalar stores", r"(KH_DEVICE void store\(\w+\* p, float v\) \{ )", r"\1p = kh_wr(p, sizeof(*p)); ")
    sub("cast stores", r"\*\(([^*;()]+)\*\)p = ", r"*(\1*)kh_wr(p, sizeof(\1)) = ")
    sub("shared arrays", r"static __attribute__\(\(shared\)\) (\w+) (\w+)\[([^\]]+)\];",
        r"static SimShared<\1, \3> \2;")
    sub("pins", r'asm volatile\(""[^;]*\);', "")
    if cuda:
        counts["PTX shuffle"] = s.count(SHFL_ASM)
        s = s.replace(SHFL_ASM, "r = host_shfl_xor(v, lane_mask);")
    else:
        sub("AMDGPU attribute", r"__attribute__\(\(amdgpu_flat_work_group_size\(\d+, \d+\)\)\)", "")

    # Every kernel has loads and stores; pins, shuffles, shared memory and
    # the AMDGPU attribute only some, but no asm may be left after (it would
    # not compile, or would be an instruction the host cannot run).
    for name in ("scalar loads", "cast loads", "scalar stores", "cast stores"):
        if counts[name] == 0:
            sys.exit(f"prepare.py: {src_path}: no match for the '{name}' rule; "
                     "update tests/kernel-sim/prepare.py to the kernel's new helpers")
    # Nothing may dereference memory around the checks: a cast pointer
    # dereferenced directly, or a one-line helper dereferencing p unchecked.
    code = re.sub(r"//.*", "", s)
    unchecked = re.findall(r"\*\((?:const )?[^*;()]+\*\)\s*(?!kh_)\w+", code)
    unchecked += [l.strip() for l in code.splitlines()
                  if re.search(r"KH_DEVICE .*\{.*\*p\b", l) and "kh_" not in l]
    if unchecked:
        sys.exit(f"prepare.py: {src_path}: memory accesses the rules did not check: "
                 + "; ".join(unchecked) + "\nupdate tests/kernel-sim/prepare.py")
    if "asm" in code:
        sys.exit(f"prepare.py: {src_path}: an asm statement is left that the simulation "
                 "cannot run; teach prepare.py (and sim.h) its host meaning")
    if "__attribute__((shared))" in s:
        sys.exit(f"prepare.py: {src_path}: a shared array the 'shared arrays' rule missed")
    with open(out_path, "w") as f:
        f.write(f'#line 1 "{src_path}"\n{s}')


def launch(toml_path, backend):
    manifest = tomllib.load(open(toml_path, "rb"))
    simulated = {}
    for line in sys.stdin:
        symbol, grid, block = line.rstrip("\n").split("|")
        simulated[symbol] = (json.loads(grid), json.loads(block))
    bad = []
    seen = 0
    for art in manifest.get("artifacts", []):
        if art.get("backend") != backend:
            continue
        for e in art.get("entries", []):
            seen += 1
            want = simulated.get(e["symbol"])
            got = (e.get("grid"), e.get("block"))
            if want is None:
                bad.append(f"{art['path']}: {e['symbol']} is not simulated")
            elif list(got) != list(want):
                bad.append(f"{art['path']}: {e['symbol']} launches grid {got[0]} block {got[1]}, "
                           f"the simulation grid {want[0]} block {want[1]}")
    if seen == 0:
        bad.append(f"no {backend} entries in {toml_path}")
    for b in bad:
        print(f"launch mismatch: {b}", file=sys.stderr)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "source":
        prepare(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "launch":
        launch(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: prepare.py source IN OUT | prepare.py launch KERNEL_TOML BACKEND")
