"""The cached data loader against the training step's consumption: images per second of
model.data.Batches (uint8 cache -> shuffled, flipped, normalised float batches in channels_last) and
of a training step at the same resolution, measured in the same run. Goal: the loader at least 10x
faster than training consumes, so it is never the bottleneck.

The loader's speed does not depend on what the pixels show, so the dataset is 13,500 random uint8
images (the size of the shared photos' training split), held in memory as the cache is.

  python bench/bench_data.py [--configs cpu,cpu64] [--batches 200] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.config import apply_overrides, get_preset  # noqa: E402
from model.data import Batches, ShoeData  # noqa: E402
from common import trainer_and_batch  # noqa: E402


def fake_data(n: int, res: int) -> ShoeData:
    rng = np.random.default_rng(0)
    return ShoeData(rng.integers(0, 256, (n, res, res, 3), dtype=np.uint8), rng.integers(0, 3, n),
                    np.zeros(n, bool), ["Boot", "Sandal", "Shoe"], [f"{i:040x}" for i in range(n)], [])


def loader_img_per_s(data: ShoeData, batch: int, batches: int) -> float:
    b = Batches(data, batch, seed=0, hflip=True, device=torch.device("cpu"), channels_last=True)
    it = b.epoch(0)
    next(it)  # the epoch's permutation is drawn once; count steady-state batches
    t0 = time.perf_counter()
    n = 0
    for x, c in it:
        n += 1
        if n >= batches:
            break
    return n * batch / (time.perf_counter() - t0)


def step_img_per_s(preset: str, batch: int, steps: int) -> float:
    cfg = apply_overrides(get_preset(preset), [f"train.batch_size={batch}"])
    tr, x, c = trainer_and_batch(cfg)
    tr.critic_step(x, c, 0)
    tr.generator_step(c)  # warm-up
    t0 = time.perf_counter()
    for i in range(steps):
        tr.critic_step(x, c, i + 1)
        tr.generator_step(c)
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="cpu,cpu64")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--images", type=int, default=13_500)
    args = ap.parse_args()
    rows = []
    for preset in args.configs.split(","):
        res = get_preset(preset).model.resolution
        load = loader_img_per_s(fake_data(args.images, res), args.batch, args.batches)
        train = step_img_per_s(preset, args.batch, args.steps)
        rows.append({"config": preset, "resolution": res, "loader_img_per_s": load, "train_img_per_s": train,
                     "headroom": load / train})
    print(json.dumps({"bench": "data", "threads": torch.get_num_threads(), "results": rows}, indent=2))
    print("SUMMARY data: " + "; ".join(f"{r['config']} {r['resolution']}px loader {r['loader_img_per_s']:.0f} img/s "
                                       f"vs training {r['train_img_per_s']:.0f} img/s ({r['headroom']:.0f}x headroom)"
                                       for r in rows))


if __name__ == "__main__":
    main()
