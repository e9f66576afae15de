"""Peak memory of one training step of the paper's Model2 (two SA layers in G), naive attention vs
the memory-efficient path (torch SDPA in G), at 64 and 128 px, batch 32.

Each configuration runs in its own process (peak RSS only grows), which builds the Trainer, records
its resident memory, takes one full step (critic step with gradient penalty + generator step with
info loss) and reports the growth of peak RSS during that step: the step's working memory on CPU.
On CUDA (--device cuda) torch.cuda.max_memory_allocated is used instead.
A configuration that runs out of memory (or past --limit-gb) is reported as such, not as a crash.

  python bench/bench_memory.py [--resolutions 64,128] [--batch 32]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(resolution: int, attention: str, batch: int, device: str) -> None:
    sys.path.insert(0, str(ROOT))
    import torch

    from common import trainer_and_batch
    from model.config import apply_overrides, get_preset

    # Model2: SA in G at the two largest maps below the output; D keeps its two at 32 and 16 px
    g_attn, d_attn = f"{resolution // 2},{resolution // 4}", f"{min(32, resolution // 2)},{min(16, resolution // 4)}"
    cfg = apply_overrides(get_preset("model2"), [f"model.resolution={resolution}", f"model.attention={attention}",
                                                 f"model.g_attn_resolutions={g_attn}",
                                                 f"model.d_attn_resolutions={d_attn}", f"train.batch_size={batch}"])
    dev = torch.device(device)
    tr, x, c = trainer_and_batch(cfg, device)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    def peak() -> float:
        if dev.type == "cuda":
            return (torch.cuda.max_memory_allocated(dev) - base) / 2**30
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before) / 2**30

    # The generator step first (G's attention holds its maps for backward there; the critic step runs
    # G under no_grad), then the critic step: peak memory only grows, so the first figure is G's alone.
    t0 = time.perf_counter()
    tr.generator_step(c)
    g_peak = peak()
    tr.critic_step(x, c, 0)
    secs = time.perf_counter() - t0
    print(json.dumps({"resolution": resolution, "attention": attention, "batch": batch, "device": device,
                      "g_attn_resolutions": list(tr.G.cfg.g_attn_resolutions), "g_step_peak_gb": g_peak,
                      "step_peak_gb": peak(), "sec_per_step": secs, "status": "ok"}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resolutions", default="64,128")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--limit-gb", type=float, default=0, help="address-space cap per run (0: none)")
    ap.add_argument("--child", nargs=2, metavar=("RES", "ATTN"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        if args.limit_gb:
            cap = int(args.limit_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        child(int(args.child[0]), args.child[1], args.batch, args.device)
        return
    rows = []
    for res in (int(r) for r in args.resolutions.split(",")):
        for attn in ("naive", "sdpa"):
            p = subprocess.run([sys.executable, __file__, "--child", str(res), attn, "--batch", str(args.batch),
                                "--device", args.device, "--limit-gb", str(args.limit_gb)],
                               capture_output=True, text=True)
            try:
                rows.append(json.loads(p.stdout.strip().splitlines()[-1]))
            except (ValueError, IndexError):
                err = (p.stderr.strip().splitlines() or ["killed"])[-1]
                status = "out of memory" if "memory" in err.lower() or p.returncode in (-9, 137) else "failed"
                rows.append({"resolution": res, "attention": attn, "batch": args.batch, "status": status,
                             "error": err[-300:]})
    res = {"bench": "memory", "model": "model2", "results": rows}
    summary = []
    for r in sorted({r["resolution"] for r in rows}):
        n = next(x for x in rows if x["resolution"] == r and x["attention"] == "naive")
        s = next(x for x in rows if x["resolution"] == r and x["attention"] == "sdpa")
        if n["status"] == s["status"] == "ok":
            ratio = n["step_peak_gb"] / max(s["step_peak_gb"], 1e-9)
            g_ratio = n["g_step_peak_gb"] / max(s["g_step_peak_gb"], 1e-9)
            res[f"ratio_{r}px"], res[f"g_step_ratio_{r}px"] = ratio, g_ratio
            summary.append(f"{r}px step peak naive {n['step_peak_gb']:.2f} GB vs sdpa {s['step_peak_gb']:.2f} GB "
                           f"({ratio:.2f}x), G step alone {n['g_step_peak_gb']:.2f} vs {s['g_step_peak_gb']:.2f} GB "
                           f"({g_ratio:.2f}x), {s['sec_per_step']:.0f} s/step")
        else:
            summary.append(f"{r}px naive {n['status']}, sdpa {s['status']}")
    print(json.dumps(res, indent=2))
    print(f"SUMMARY memory (Model2, batch {args.batch}): " + "; ".join(summary))


if __name__ == "__main__":
    main()
