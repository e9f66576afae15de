"""Generation latency and throughput: the generator alone and through the HTTP service.

Prints one JSON object and a one-line summary. Uses a 64 px generator (the cpu64 preset's widths,
random weights: latency does not depend on training) published into a temporary run store, and a
real uvicorn server on loopback.

  python bench/bench_generate.py [--preset cpu64] [--repeats 30] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.checkpoint import save_generator  # noqa: E402
from model.config import get_preset  # noqa: E402
from model.networks import Generator  # noqa: E402
from model.sampling import cinfo_grid, generate  # noqa: E402
from model.store import publish  # noqa: E402

from common import pct, start_server  # noqa: E402


def timeit(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


async def concurrent_load(url: str, clients: int, per_client: int) -> dict:
    lat: list[float] = []
    errors = 0

    async def client(k: int):
        nonlocal errors
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            for i in range(per_client):
                t0 = time.perf_counter()
                r = await c.post("/generate", json={"class": k % 3, "seed": k * 1000 + i})
                lat.append(time.perf_counter() - t0)
                errors += r.status_code != 200

    t0 = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    wall = time.perf_counter() - t0
    return {"requests": clients * per_client, "errors": errors, "req_per_s": clients * per_client / wall,
            "p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="cpu64")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--per-client", type=int, default=4)
    args = ap.parse_args()

    torch.manual_seed(0)
    cfg = get_preset(args.preset).model
    G = Generator(cfg).eval()
    res: dict = {"bench": "generate", "preset": args.preset, "resolution": cfg.resolution,
                 "threads": torch.get_num_threads()}
    one = timeit(lambda: generate(G, 0, seed=1, n=1), args.repeats)
    grid = timeit(lambda: cinfo_grid(G, 0, seed=1, steps=8), max(5, args.repeats // 5))
    res["generator"] = {"one_p50_ms": pct(one, 50) * 1000, "one_p99_ms": pct(one, 99) * 1000,
                        "grid8x8_p50_ms": pct(grid, 50) * 1000, "grid8x8_p99_ms": pct(grid, 99) * 1000}

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        ckpt = save_generator(G, home / "bench.safetensors", class_names=["Boot", "Sandal", "Shoe"], step=0,
                              version="bench")
        publish(home, ckpt)
        for batching in (True, False):
            proc, url = start_server(home, HYBRIDGAN_BATCHING=str(batching).lower(),
                                     HYBRIDGAN_MAX_QUEUE_IMAGES=100000)
            try:
                key = "batched" if batching else "unbatched"
                if batching:
                    with httpx.Client(base_url=url, timeout=60) as c:
                        http_one = timeit(lambda: c.post("/generate", json={"class": 0, "seed": 1}), args.repeats)
                        http_grid = timeit(lambda: c.get("/grid.png", params={"class": 0, "seed": 1, "steps": 8}),
                                           max(5, args.repeats // 5))
                    res["http"] = {"one_p50_ms": pct(http_one, 50) * 1000, "one_p99_ms": pct(http_one, 99) * 1000,
                                   "grid8x8_p50_ms": pct(http_grid, 50) * 1000,
                                   "grid8x8_p99_ms": pct(http_grid, 99) * 1000}
                res[f"load_{key}"] = asyncio.run(concurrent_load(url, args.clients, args.per_client))
            finally:
                proc.terminate()
                proc.wait(timeout=10)
    res["batching_speedup"] = res["load_batched"]["req_per_s"] / res["load_unbatched"]["req_per_s"]
    print(json.dumps(res, indent=2))
    print(f"SUMMARY generate {cfg.resolution}px: G one p50 {res['generator']['one_p50_ms']:.1f} ms, "
          f"8x8 grid p50 {res['generator']['grid8x8_p50_ms']:.1f} ms; HTTP one p50 {res['http']['one_p50_ms']:.1f} ms, "
          f"grid p50 {res['http']['grid8x8_p50_ms']:.1f} ms; {args.clients} clients: batched "
          f"{res['load_batched']['req_per_s']:.1f} req/s (p99 {res['load_batched']['p99_ms']:.0f} ms) vs unbatched "
          f"{res['load_unbatched']['req_per_s']:.1f} req/s = {res['batching_speedup']:.2f}x")


if __name__ == "__main__":
    main()
