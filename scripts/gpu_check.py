#!/usr/bin/env python3
"""The GPU check's table: kernelhub beside PyTorch, per op, dtype and variant.

Run by `scripts/gpu-check.sh run` on the GPU machine. Reads the lines of
`kernelhub run --json` (one or several files: one per variant, or merged),
labels each with its variant by the artifact it ran from (`.cubin`, `.ptx`,
`.wgsl`), measures each (op, dtype) with PyTorch on the same GPU in the same
run at the shapes `kernelhub run --tokens N` uses, and prints one table:
max error, GB/s, PyTorch's GB/s over the same bytes (what one launch must
read and write, from kernelhub's line) and the percentage. Then the launch
overhead and first-load figures from the criterion benches' estimates
(`--criterion DIR`, the benches' CRITERION_HOME).

PyTorch has no fused gated activation or rotary op: those are measured as the
eager expressions a PyTorch user writes (several kernels), which is the figure
users compare with but not a ceiling. softmax is one PyTorch kernel;
`F.rms_norm` is fused only in recent PyTorch versions (the table prints the
version). `--no-torch` prints kernelhub's side alone (for testing the table
on a machine without PyTorch or a GPU).
"""

import argparse
import json
import os
import sys
import time

# Where the variants sort in the table, and what they are.
VARIANTS = ["cubin", "ptx", "hsaco", "wgsl"]
OPS = [
    "silu_and_mul",
    "gelu_and_mul",
    "gelu_tanh_and_mul",
    "rms_norm",
    "rotary_neox",
    "rotary_gptj",
    "softmax",
]
DTYPES = ["f32", "f16", "bf16"]


def time_call(torch, device, f):
    """Seconds per call of `f`: 5 warm-up calls, then 100 between CUDA events
    (3 by the wall clock on a CPU)."""
    for _ in range(5):
        f()
    if device == "cuda":
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(100):
            f()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000 / 100
    begin = time.perf_counter()
    for _ in range(3):
        f()
    return (time.perf_counter() - begin) / 3


def torch_seconds(tokens, device, dtypes):
    """Seconds per call of each op's PyTorch expression, by (op, dtype)."""
    import torch
    import torch.nn.functional as F

    seconds = {}
    t = tokens
    for name in dtypes:
        dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[name]
        d = 4096
        x = torch.randn(t, 2 * d, device=device, dtype=dtype)
        out = torch.empty(t, d, device=device, dtype=dtype)
        ops = {}
        act = {
            "silu_and_mul": lambda v: F.silu(v),
            "gelu_and_mul": lambda v: F.gelu(v),
            "gelu_tanh_and_mul": lambda v: F.gelu(v, approximate="tanh"),
        }
        for op, f in act.items():
            ops[op] = lambda f=f: torch.mul(f(x[:, :d]), x[:, d:], out=out)
        h = 4096
        xh = torch.randn(t, h, device=device, dtype=dtype)
        w = torch.randn(h, device=device, dtype=dtype)
        if hasattr(F, "rms_norm"):
            ops["rms_norm"] = lambda: F.rms_norm(xh, (h,), w, 1e-6)
        else:
            ops["rms_norm"] = lambda: xh * torch.rsqrt(xh.float().pow(2).mean(-1, keepdim=True) + 1e-6).to(dtype) * w
        q = torch.randn(t, 32, 128, device=device, dtype=dtype)
        k = torch.randn(t, 8, 128, device=device, dtype=dtype)
        cache = torch.randn(4096, 128, device=device, dtype=dtype)
        positions = (torch.arange(t, device=device) * 2654435761) % 4096

        def rotary(neox):
            cs = cache[positions]
            cos, sin = cs[:, None, :64], cs[:, None, 64:]
            for x_ in (q, k):
                if neox:
                    x1, x2 = x_[..., :64], x_[..., 64:]
                    x_.copy_(torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1))
                else:
                    x1, x2 = x_[..., ::2], x_[..., 1::2]
                    x_.copy_(torch.stack((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).flatten(-2))

        ops["rotary_neox"] = lambda: rotary(True)
        ops["rotary_gptj"] = lambda: rotary(False)
        xs = torch.randn(t, 4096, device=device, dtype=dtype)
        ops["softmax"] = lambda: torch.softmax(xs, -1)
        for op, f in ops.items():
            try:
                seconds[(op, name)] = time_call(torch, device, f)
            except Exception as error:  # one op PyTorch cannot run leaves the others
                print(f"note: PyTorch {op} {name}: {error}", file=sys.stderr)
        del x, out, xh, q, k, xs
        if device == "cuda":
            torch.cuda.empty_cache()
    return seconds


def bytes_of(op, dtype, tokens):
    """What one launch must read and write, as `kernelhub run` counts it
    (crates/kernelhub/src/exercise.rs), for ops kernelhub did not run."""
    t, e = tokens, {"f32": 4, "f16": 2, "bf16": 2}[dtype]
    if op.endswith("_and_mul"):
        return 3 * t * 4096 * e
    if op == "rms_norm":
        return (2 * t * 4096 + 4096) * e
    if op.startswith("rotary"):
        return (2 * t * 40 * 128 + t * 128) * e + 4 * t
    return 2 * t * 4096 * e  # softmax


def variant_of(artifact):
    """`build/cuda/activation_sm90a.cubin` -> `cubin`."""
    return os.path.splitext(artifact)[1].lstrip(".") or "?"


def read_rows(paths):
    """kernelhub's JSON lines from every file, each labelled with its variant;
    the same (op, dtype, size, variant, backend) twice is kept once (a kernel
    whose best artifact is the same in two runs)."""
    rows, seen = [], set()
    for path in paths:
        with open(path) as lines:
            for line in lines:
                if not line.strip().startswith("{"):
                    continue
                row = json.loads(line)
                if "error" in row:  # the op did not run: say so, measure nothing
                    print(f"FAIL kernelhub {row['op']} {row['dtype']} on {row['backend']}: {row['error']}")
                    continue
                row["variant"] = variant_of(row.get("artifact", ""))
                key = (row["op"], row["dtype"], row["size"], row["variant"], row["backend"])
                if key in seen:
                    continue
                seen.add(key)
                rows.append(row)

    def order(row):
        op = OPS.index(row["op"]) if row["op"] in OPS else len(OPS)
        dtype = DTYPES.index(row["dtype"]) if row["dtype"] in DTYPES else len(DTYPES)
        variant = VARIANTS.index(row["variant"]) if row["variant"] in VARIANTS else len(VARIANTS)
        return (op, row["op"], dtype, variant)

    return sorted(rows, key=order)


def criterion_estimates(homes):
    """Median time per iteration (seconds) and per element where the bench
    states a throughput in elements, by (home name, `group/function`)."""
    found = {}
    for home in homes:
        for root, _, files in os.walk(home):
            if os.path.basename(root) != "new" or "estimates.json" not in files:
                continue
            with open(os.path.join(root, "estimates.json")) as f:
                median = json.load(f)["median"]["point_estimate"] / 1e9
            benchmark = {}
            if "benchmark.json" in files:
                with open(os.path.join(root, "benchmark.json")) as f:
                    benchmark = json.load(f)
            throughput = benchmark.get("throughput") or {}
            elements = throughput.get("Elements") or 1
            name = benchmark.get("full_id") or os.path.relpath(os.path.dirname(root), home)
            found[(os.path.basename(os.path.normpath(home)), name)] = median / elements
    return found


def duration(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} us"
    return f"{seconds * 1e3:.2f} ms"


def print_table(rows, seconds, tokens, header):
    print(header)
    print(
        f"{'op':<18} {'dtype':<5} {'size':<22} {'variant':<7} {'backend':<7} "
        f"{'max error':>9} {'GB/s':>7} {'torch GB/s':>10} {'% torch':>7}  result"
    )
    ran = set()
    for r in rows:
        ran.add((r["op"], r["dtype"]))
        torch_time = seconds.get((r["op"], r["dtype"]))
        torch_gbps = r["bytes"] / torch_time / 1e9 if torch_time else None
        r["percent"] = 100 * r["gb_per_s"] / torch_gbps if torch_gbps else None
        ratio = f"{r['percent']:.1f}%" if torch_gbps else "-"
        torch_text = f"{torch_gbps:.0f}" if torch_gbps else "-"
        result = "ok" if r["mismatches"] == 0 else f"FAIL ({r['mismatches']} outside tolerance)"
        print(
            f"{r['op']:<18} {r['dtype']:<5} {r['size']:<22} {r['variant']:<7} {r['backend']:<7} "
            f"{r['max_error']:>9.2e} {r['gb_per_s']:>7.0f} {torch_text:>10} {ratio:>7}  {result}"
        )
    # What PyTorch ran and kernelhub did not: the gaps, in the same table.
    for op, dtype in sorted(set(seconds) - ran, key=lambda k: (OPS.index(k[0]), DTYPES.index(k[1]))):
        torch_gbps = bytes_of(op, dtype, tokens) / seconds[(op, dtype)] / 1e9
        print(
            f"{op:<18} {dtype:<5} {'-':<22} {'-':<7} {'-':<7} {'-':>9} {'-':>7} {torch_gbps:>10.0f} {'-':>7}  not run by kernelhub"
        )
    if not rows:
        print("no kernelhub measurements: see run-*.err")


def print_summary(rows):
    """Per variant: how many (op, dtype) reach PyTorch (natives) or 95% of it
    (WGSL), the targets of BENCHMARKS.md."""
    for variant in VARIANTS:
        measured = [r for r in rows if r["variant"] == variant and r.get("percent") is not None]
        if not measured:
            continue
        target = 95 if variant == "wgsl" else 100
        met = [r for r in measured if r["percent"] >= target and r["mismatches"] == 0]
        worst = min(measured, key=lambda r: r["percent"])
        print(
            f"{variant}: {len(met)} of {len(measured)} op/dtype pairs at >= {target}% of PyTorch "
            f"(lowest: {worst['op']} {worst['dtype']} at {worst['percent']:.1f}%)"
        )


def print_benches(estimates):
    if not estimates:
        return

    def get(home, name):
        return estimates.get((home, name))

    print("launch overhead (tiny silu_and_mul, 1 x 4 f32; criterion median per launch):")
    pairs = [
        ("cuda", "launch/trait", "launch/raw_cu_launch_kernel", "raw cuLaunchKernel", 1.1),
        # Enqueue time alone (sync untimed): host cost the GPU cannot hide.
        ("cuda", "enqueue/trait", "enqueue/raw_cu_launch_kernel", "raw cuLaunchKernel, enqueue only", 1.1),
        ("wgpu", "launch/trait", "launch/raw_wgpu", "raw wgpu dispatch", 1.2),
    ]
    for home, ours, raw, raw_name, target in pairs:
        a, b = get(home, ours), get(home, raw)
        if a is None and b is None:
            print(f"  {home}: not measured (see {home}-bench.txt)")
            continue
        ratio = f"{a / b:.2f}x" if a and b else "-"
        print(
            f"  {home}: trait {duration(a) if a else '-'}, {raw_name} {duration(b) if b else '-'}: "
            f"{ratio} (target <= {target}x)"
        )
        batched = get(home, "launch/trait_batched")
        if batched:
            print(f"  {home}: trait_batched {duration(batched)}")
    ptx, cubin = get("cuda", "first_load/ptx"), get("cuda", "first_load/cubin")
    print("first load (verified bytes -> launchable function + first launch; JIT cache off):")
    print(f"  ptx:   {duration(ptx) if ptx else 'not measured'}")
    versus = f" ({cubin / ptx:.3f}x the PTX)" if cubin and ptx else ""
    print(f"  cubin: {duration(cubin) if cubin else 'not measured'}{versus}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("jsonl", nargs="+", help="`kernelhub run --json` output, one file per variant or merged")
    parser.add_argument("--tokens", type=int, help="rows per op [default: the `tokens` of kernelhub's lines]")
    parser.add_argument("--device-name", default="?", help="the GPU, as nvidia-smi names it")
    parser.add_argument("--note", action="append", default=[], help="a line for the header (ptxas version, ...)")
    parser.add_argument("--torch-device", default="cuda")
    parser.add_argument("--no-torch", action="store_true", help="kernelhub's side only")
    parser.add_argument("--criterion", action="append", default=[], help="a bench's CRITERION_HOME, named cuda or wgpu")
    parser.add_argument("--write-jsonl", help="also write the rows, with variant and PyTorch's figures, here")
    args = parser.parse_args()
    rows = read_rows(p for p in args.jsonl if os.path.exists(p))
    tokens = args.tokens or (rows[0].get("tokens") if rows else None) or 0
    dtypes = sorted({r["dtype"] for r in rows}, key=lambda d: DTYPES.index(d) if d in DTYPES else 9) or ["f32"]
    torch_version = "not used"
    seconds = {}
    if not args.no_torch:
        try:
            import torch

            torch_version = torch.__version__
            seconds = torch_seconds(tokens, args.torch_device, dtypes)
        except Exception as error:  # no torch, no GPU: the table still shows kernelhub's side
            print(f"note: PyTorch figures unavailable: {error}", file=sys.stderr)
            torch_version = f"unavailable ({type(error).__name__})"
    adapters = sorted({f"{r['backend']}: {r['device']}" for r in rows})
    header = [
        f"GPU check on {args.device_name}; tokens {tokens}; PyTorch {torch_version}",
        f"kernelhub devices: {'; '.join(adapters) or '?'}",
    ] + args.note
    print_table(rows, seconds, tokens, "\n".join(header))
    print_summary(rows)
    if args.write_jsonl:
        with open(args.write_jsonl, "w") as merged:
            for r in rows:
                torch_time = seconds.get((r["op"], r["dtype"]))
                r["torch_gb_per_s"] = r["bytes"] / torch_time / 1e9 if torch_time else None
                r["torch_version"] = torch_version
                merged.write(json.dumps(r) + "\n")
    print_benches(criterion_estimates(args.criterion))


if __name__ == "__main__":
    main()
