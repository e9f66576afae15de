"""Helpers the benchmarks share: percentiles, a free loopback port, a `hybridgan serve` subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def pct(xs: list[float], p: float) -> float | None:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, **env_extra) -> tuple[subprocess.Popen, str]:
    """`hybridgan serve` (no embedded worker) on a free loopback port, once it is ready."""
    port = free_port()
    env = {**os.environ, "HYBRIDGAN_HOME": str(home), **{k: str(v) for k, v in env_extra.items()}}
    proc = subprocess.Popen([sys.executable, "-m", "hybridgan.cli", "serve", "--port", str(port), "--no-worker",
                             "--log-level", "warning"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def trainer_and_batch(cfg, device: str = "cpu", channels_last: bool = True):
    """A Trainer seeded with 0 and one random batch (x in [-1, 1], classes cycling) for timing steps."""
    import torch

    sys.path.insert(0, str(ROOT))
    from model.train import Trainer

    torch.manual_seed(0)
    dev = torch.device(device)
    tr = Trainer(cfg, dev)
    B, R = cfg.train.batch_size, cfg.model.resolution
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = (torch.rand(B, 3, R, R, device=dev) * 2 - 1).contiguous(memory_format=fmt)
    c = torch.arange(B, device=dev) % cfg.model.num_classes
    return tr, x, c
