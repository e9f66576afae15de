"""Load test of the HTTP service on loopback, bounded in requests and time.

Phase 1 (steady + hot-load): many concurrent clients mix POST /generate, c_info grids and image
permalinks while a new model is published halfway; reports throughput, p50/p99 latency, errors, the
server's memory before and after, and which model versions answered.
Phase 2 (overload): a service with a small queue limit under the same clients: every refused request
must be a 503 with Retry-After, answered at once, never a timeout or a crash.

  python bench/bench_load.py [--clients 32] [--requests 400] [--max-seconds 120]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.checkpoint import save_generator  # noqa: E402
from model.config import get_preset  # noqa: E402
from model.networks import Generator  # noqa: E402
from model.store import publish  # noqa: E402

from common import pct, start_server  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def drive(url: str, clients: int, total: int, max_seconds: float, on_half=None) -> dict:
    lat, statuses, versions, retry_after_missing = [], Counter(), Counter(), 0
    issued = 0
    deadline = time.monotonic() + max_seconds
    half_done = asyncio.Event()

    async def client(k: int):
        nonlocal issued, retry_after_missing
        rng = random.Random(k)
        async with httpx.AsyncClient(base_url=url, timeout=30) as c:
            while issued < total and time.monotonic() < deadline:
                issued += 1
                if issued >= total // 2:
                    half_done.set()
                kind = rng.random()
                t0 = time.perf_counter()
                try:
                    if kind < 0.6:
                        r = await c.post("/generate", json={"class": rng.randrange(3), "seed": rng.randrange(10**6),
                                                            "count": rng.choice((1, 1, 2, 4))})
                    elif kind < 0.8:
                        r = await c.get("/grid.png", params={"class": rng.randrange(3), "seed": rng.randrange(100),
                                                             "steps": 5})
                    else:
                        r = await c.get("/image.png", params={"class": rng.randrange(3), "seed": rng.randrange(100),
                                                              "c_info": "0.5,-0.5"})
                    statuses[r.status_code] += 1
                    versions[r.headers.get("X-Model-Version")] += 1
                    if r.status_code in (429, 503) and "retry-after" not in r.headers:
                        retry_after_missing += 1
                except httpx.HTTPError as e:
                    statuses[type(e).__name__] += 1
                lat.append(time.perf_counter() - t0)

    async def hot_load():
        await half_done.wait()
        if on_half:
            await asyncio.get_running_loop().run_in_executor(None, on_half)

    t0 = time.perf_counter()
    await asyncio.gather(hot_load(), *(client(k) for k in range(clients)))
    wall = time.perf_counter() - t0
    ok = statuses.get(200, 0)
    return {"requests": sum(statuses.values()), "seconds": wall, "ok_per_s": ok / wall,
            "p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000,
            "statuses": {str(k): v for k, v in statuses.items()}, "versions": dict(versions),
            "errors": sum(v for k, v in statuses.items() if k != 200 and k not in (429, 503)),
            "refusals_without_retry_after": retry_after_missing}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("--preset", default="cpu")
    args = ap.parse_args()
    cfg = get_preset(args.preset).model
    res = {"bench": "load", "preset": args.preset, "clients": args.clients}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ckpts = []
        for seed in (1, 2):
            torch.manual_seed(seed)
            ckpts.append(save_generator(Generator(cfg), home / f"load-v{seed}.safetensors",
                                        class_names=["Boot", "Sandal", "Shoe"], step=seed, version=f"load-v{seed}"))
        publish(home, ckpts[0])
        proc, url = start_server(home, HYBRIDGAN_POLL_SECONDS=0.5)
        try:
            before = rss_mb(proc.pid)
            res["steady"] = asyncio.run(drive(url, args.clients, args.requests, args.max_seconds,
                                              on_half=lambda: publish(home, ckpts[1])))
            res["steady"]["rss_mb_before"], res["steady"]["rss_mb_after"] = before, rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        proc, url = start_server(home, HYBRIDGAN_POLL_SECONDS=0.5, HYBRIDGAN_MAX_QUEUE_IMAGES=8)
        try:
            res["overload"] = asyncio.run(drive(url, args.clients, args.requests // 2, args.max_seconds))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(json.dumps(res, indent=2))
    s, o = res["steady"], res["overload"]
    print(f"SUMMARY load {args.clients} clients: {s['requests']} requests, {s['ok_per_s']:.1f} ok/s, "
          f"p50 {s['p50_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms, errors {s['errors']}, versions {s['versions']}, "
          f"RSS {s['rss_mb_before']:.0f}->{s['rss_mb_after']:.0f} MB; overload: statuses {o['statuses']}, "
          f"errors {o['errors']}, refusals without Retry-After {o['refusals_without_retry_after']}")


if __name__ == "__main__":
    main()
