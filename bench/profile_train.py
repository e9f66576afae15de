"""Where a training step's time goes: torch.profiler over a few steps (critic step with gradient penalty
+ generator step with info loss), operators grouped into FLOP-carrying kernels (convolution, matmul,
attention) and the rest (normalisation, activations, dropout, elementwise, optimiser, copies), with
the achieved rate of the FLOP-carrying part. This is what bounds the step's fraction of the matmul rate:
time in ops that count no FLOPs lowers it whatever the convolutions reach.

  python bench/profile_train.py [--config cpu] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from bench_train import CONFIGS, CountFlops, matmul_gflops  # noqa: E402
from common import trainer_and_batch  # noqa: E402

from model.config import apply_overrides, get_preset  # noqa: E402

GROUPS = [  # (group, substrings of aten op names), first match wins
    ("conv", ("convolution", "conv2d", "mkldnn_conv", "conv_depthwise")),
    ("matmul/attention", ("mm", "matmul", "addmm", "bmm", "linear", "scaled_dot_product", "flash_attention")),
    ("batchnorm", ("batch_norm",)),
    ("softmax", ("softmax",)),
    ("activation/dropout", ("leaky_relu", "relu", "tanh", "dropout", "bernoulli", "threshold")),
    ("upsample", ("upsample",)),
    ("optimiser", ("_foreach", "adam", "lerp")),
    ("copy/layout", ("copy_", "contiguous", "clone", "to_copy", "cat", "stack", "fill_", "zero_", "empty")),
    ("reduction", ("sum", "mean", "norm", "var", "std")),
    ("elementwise", ("add", "mul", "sub", "div", "pow", "sqrt", "rsqrt", "where", "neg", "exp")),
]


def group_of(name: str) -> str:
    n = name.lower()
    for g, keys in GROUPS:
        if any(k in n for k in keys):
            return g
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="cpu", choices=sorted(CONFIGS))
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    preset, overrides = CONFIGS[args.config]
    cfg = apply_overrides(get_preset(preset), overrides + [f"train.batch_size={args.batch}"])
    tr, x, c = trainer_and_batch(cfg)
    R = cfg.model.resolution

    def step(i):
        tr.critic_step(x, c, i)
        tr.generator_step(c)

    step(0)
    with CountFlops() as fc:
        step(1)
    flops = fc.total
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(args.steps):
            step(i + 2)
    # self time of top-level aten ops; autograd nodes are attributed to the ops they call
    by_group: dict[str, float] = defaultdict(float)
    top: dict[str, float] = defaultdict(float)
    for e in prof.key_averages():
        if not e.key.startswith("aten::"):
            continue
        us = e.self_cpu_time_total
        by_group[group_of(e.key)] += us
        top[e.key] += us
    total = sum(by_group.values())
    step_s = total / 1e6 / args.steps
    flop_s = (by_group["conv"] + by_group["matmul/attention"]) / 1e6 / args.steps
    mm = matmul_gflops()
    res = {"bench": "profile_train", "config": args.config, "resolution": R, "threads": torch.get_num_threads(),
           "matmul_gflops": mm, "gflop_per_step": flops / 1e9, "profiled_sec_per_step": step_s,
           "share": {g: v / total for g, v in sorted(by_group.items(), key=lambda kv: -kv[1])},
           "flop_kernels_gflops": flops / 1e9 / flop_s if flop_s else None,
           "top_ops_ms_per_step": {k: v / 1e3 / args.steps for k, v in sorted(top.items(), key=lambda kv: -kv[1])[:15]}}
    res["flop_kernels_fraction_of_matmul"] = res["flop_kernels_gflops"] / mm if res["flop_kernels_gflops"] else None
    print(json.dumps(res, indent=2))
    kern = by_group["conv"] + by_group["matmul/attention"]
    print(f"SUMMARY profile_train {args.config} {R}px: conv+matmul {kern / total:.0%} of step time at "
          f"{res['flop_kernels_gflops']:.0f} GFLOP/s ({res['flop_kernels_fraction_of_matmul']:.0%} of matmul "
          f"{mm:.0f}); the rest: " + ", ".join(f"{g} {v:.0%}" for g, v in list(res["share"].items())
                                               if g not in ("conv", "matmul/attention"))[:400])


if __name__ == "__main__":
    main()
