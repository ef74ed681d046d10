#!/usr/bin/env python3
"""PyTorch's figure for each reference op, and the GPU check's table.

Run by `scripts/gpu-check.sh run` on the GPU machine. Measures each op with
PyTorch on the same GPU, at the shapes `kernelhub run --tokens N` uses,
counting the same bytes (what one launch must read and write), then prints
one table beside kernelhub's measurements (`kernelhub run --json` lines).

PyTorch has no fused gated activation or rotary op: those are measured as the
eager expressions a PyTorch user writes (several kernels), which is the figure
users compare with but not a ceiling. softmax is one PyTorch kernel;
`F.rms_norm` is fused only in recent PyTorch versions (the table prints the
version).
"""

import argparse
import json
import sys


def torch_figures(tokens, device, dtypes):
    import torch
    import torch.nn.functional as F

    figures = {}
    t = tokens
    for name in dtypes:
        dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[name]
        elt = torch.tensor([], dtype=dtype).element_size()
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
            ops[op] = ((lambda f=f: torch.mul(f(x[:, :d]), x[:, d:], out=out)), 3 * t * d * elt)
        h = 4096
        xh = torch.randn(t, h, device=device, dtype=dtype)
        w = torch.randn(h, device=device, dtype=dtype)
        if hasattr(F, "rms_norm"):
            rms = lambda: F.rms_norm(xh, (h,), w, 1e-6)
        else:
            rms = lambda: xh * torch.rsqrt(xh.float().pow(2).mean(-1, keepdim=True) + 1e-6).to(dtype) * w
        ops["rms_norm"] = (rms, (2 * t * h + h) * elt)
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

        rotary_bytes = (2 * t * 40 * 128 + t * 128) * elt + 4 * t
        ops["rotary_neox"] = (lambda: rotary(True), rotary_bytes)
        ops["rotary_gptj"] = (lambda: rotary(False), rotary_bytes)
        xs = torch.randn(t, 4096, device=device, dtype=dtype)
        ops["softmax"] = ((lambda: torch.softmax(xs, -1)), 2 * t * 4096 * elt)
        for op, (f, nbytes) in ops.items():
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
                seconds = start.elapsed_time(end) / 1000 / 100
            else:
                import time

                begin = time.perf_counter()
                for _ in range(3):
                    f()
                seconds = (time.perf_counter() - begin) / 3
            figures[(op, name)] = nbytes / seconds / 1e9
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, required=True)
    parser.add_argument("--kernelhub", required=True, help="`kernelhub run --json` output")
    parser.add_argument("--device-name", default="?")
    parser.add_argument("--torch-device", default="cuda")
    args = parser.parse_args()
    rows = [json.loads(line) for line in open(args.kernelhub) if line.strip().startswith("{")]
    dtypes = sorted({r["dtype"] for r in rows}) or ["f32"]
    torch_version = "-"
    try:
        import torch

        torch_version = torch.__version__
        figures = torch_figures(args.tokens, args.torch_device, dtypes)
    except Exception as error:  # no torch, no GPU: the table still shows kernelhub's side
        print(f"note: PyTorch figures unavailable: {error}", file=sys.stderr)
        figures = {}
    print(
        f"device: {args.device_name}; kernelhub adapter: {rows[0]['device'] if rows else '?'}; "
        f"tokens {args.tokens}; PyTorch {torch_version}"
    )
    header = f"{'op':<18} {'dtype':<5} {'size':<22} {'artifact':<28} {'max error':>10} {'GB/s':>8} {'torch GB/s':>10} {'% torch':>8}  result"
    print(header)
    for r in rows:
        torch_gbps = figures.get((r["op"], r["dtype"]))
        ratio = f"{100 * r['gb_per_s'] / torch_gbps:.0f}%" if torch_gbps else "-"
        torch_text = f"{torch_gbps:.0f}" if torch_gbps else "-"
        result = "ok" if r["mismatches"] == 0 else f"FAIL ({r['mismatches']})"
        print(f"{r['op']:<18} {r['dtype']:<5} {r['size']:<22} {r['artifact']:<28} {r['max_error']:>10.2e} {r['gb_per_s']:>8.0f} {torch_text:>10} {ratio:>8}  {result}")
    if not rows:
        print("no kernelhub measurements: see kernelhub.err")


if __name__ == "__main__":
    main()
