"""Training-step throughput against this machine's fp32 matmul rate and a naive eager baseline.

One step = critic step with gradient penalty + generator step with info loss, batch 32. For each
configuration it reports images per second and achieved GFLOP/s (FLOPs counted once with torch's
flop counter) as a fraction of a 2048^2 fp32 matmul measured in the same run, for:
  optimised  the project's Trainer: channels_last, fakes under no_grad, D frozen in the G step
  naive      the same networks eager in NCHW, the critic's fakes not detached (autograd runs back
             through G), D not frozen in the G step: what a straightforward implementation does
Prints one JSON object and a one-line summary.

  python bench/bench_train.py [--steps 6] [--configs cpu,paper64]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.config import apply_overrides, get_preset  # noqa: E402
from model.losses import critic_wgan_loss, generator_loss, gradient_penalty, info_loss  # noqa: E402
from model.train import Trainer  # noqa: E402
from common import trainer_and_batch  # noqa: E402

CONFIGS = {"cpu": ("cpu", []), "paper64": ("paper", ["model.resolution=64", "model.d_attn_resolutions=16,8"])}


class CountFlops(TorchDispatchMode):
    """torch's flop formulas (convolutions, matmuls, attention) without FlopCounterMode's module
    tracking, whose backward hooks refuse the gradient penalty's autograd.grad(create_graph=True)."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.total += count(*args, **kwargs, out_val=out)
        return out


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def naive_step(tr: Trainer, x: torch.Tensor, c: torch.Tensor) -> None:
    """The baseline: the same losses without the project's optimisations."""
    cfg, t = tr.cfg.model, tr.cfg.train
    B = x.shape[0]
    z, ci = torch.randn(B, cfg.z_dim), torch.rand(B, cfg.info_dim) * 2 - 1
    fake = tr.G(z, c, ci)  # not detached: the critic's backward runs through G as well
    real_score, _ = tr.D(x, c)
    fake_score, q = tr.D(fake, c)
    loss = critic_wgan_loss(real_score, fake_score) + t.gp_weight * gradient_penalty(
        lambda xx, cc: tr.D(xx, cc)[0], x, fake, c) + t.info_weight * info_loss(q, ci)
    tr.opt_D.zero_grad()
    tr.opt_Q.zero_grad()
    loss.backward()
    tr.opt_D.step()
    tr.opt_Q.step()
    z, ci = torch.randn(B, cfg.z_dim), torch.rand(B, cfg.info_dim) * 2 - 1
    score, q = tr.D(tr.G(z, c, ci), c)  # D not frozen: its parameter gradients are computed too
    loss_g = generator_loss(score) + t.info_weight * info_loss(q, ci)
    tr.opt_G.zero_grad()
    loss_g.backward()
    tr.opt_G.step()


def bench(name: str, steps: int, naive: bool, batch: int = 32, compile_g: bool = False) -> dict:
    preset, overrides = CONFIGS[name]
    cfg = apply_overrides(get_preset(preset), overrides + [f"train.batch_size={batch}",
                                                          f"train.channels_last={str(not naive).lower()}",
                                                          f"train.compile={'g' if compile_g else 'off'}"])
    tr, x, c = trainer_and_batch(cfg, channels_last=not naive)
    R = cfg.model.resolution

    def step(i: int) -> None:
        if naive:
            naive_step(tr, x, c)
        else:
            tr.critic_step(x, c, i)
            tr.generator_step(c)

    step(0)  # warm-up (and, with --compile, the compilation)
    with CountFlops() as fc:
        step(1)
    flops = fc.total
    t0 = time.perf_counter()
    for i in range(steps):
        step(i + 2)
    dt = (time.perf_counter() - t0) / steps
    return {"config": name, "resolution": R, "naive": naive, "compile_g": compile_g, "sec_per_step": dt,
            "img_per_s": batch / dt,
            "gflop_per_step": flops / 1e9, "gflops": flops / dt / 1e9}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--configs", default="cpu,paper64")
    ap.add_argument("--compile", action="store_true", help="also time the optimised step with train.compile=g")
    args = ap.parse_args()
    res = {"bench": "train_step", "threads": torch.get_num_threads(), "matmul_gflops_before": matmul_gflops()}
    rows = []
    for name in args.configs.split(","):
        for naive in (True, False):
            rows.append(bench(name, args.steps, naive))
        if args.compile:
            rows.append(bench(name, args.steps, False, compile_g=True))
    res["matmul_gflops_after"] = matmul_gflops()
    ref = (res["matmul_gflops_before"] + res["matmul_gflops_after"]) / 2
    for r in rows:
        r["fraction_of_matmul"] = r["gflops"] / ref
    res["results"] = rows
    summary = []
    for name in args.configs.split(","):
        n = next(r for r in rows if r["config"] == name and r["naive"])
        o = next(r for r in rows if r["config"] == name and not r["naive"] and not r["compile_g"])
        res[f"{name}_speedup_vs_naive"] = o["img_per_s"] / n["img_per_s"]
        summary.append(f"{name} {o['resolution']}px: {o['img_per_s']:.1f} img/s, {o['gflops']:.1f} GFLOP/s "
                       f"({o['fraction_of_matmul']:.0%} of matmul), {res[f'{name}_speedup_vs_naive']:.2f}x naive")
        comp = next((r for r in rows if r["config"] == name and r["compile_g"]), None)
        if comp:
            res[f"{name}_compile_g_vs_eager"] = comp["img_per_s"] / o["img_per_s"]
            summary[-1] += f", compiled G {res[f'{name}_compile_g_vs_eager']:.2f}x eager"
    print(json.dumps(res, indent=2))
    print(f"SUMMARY train_step (matmul {ref:.1f} GFLOP/s): " + "; ".join(summary))


if __name__ == "__main__":
    main()
