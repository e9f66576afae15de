"""Off-the-event-loop generation with request batching.

Requests put their latent rows (z, class vector, c_info) on a queue; one batching task collects what
arrives within `batch_window_ms` (up to `batch_max_images` rows, same model only) and runs a single
generator pass in a worker thread. Because model.sampling.forward is batch-invariant, merging never
changes a request's pixels. When the queue holds more than `max_queue_images`, new requests are
refused at once (Overloaded -> 503 with Retry-After) instead of waiting into a timeout.
"""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from PIL import Image

from model.data import to_uint8
from model.sampling import forward

from .metrics import Metrics
from .registry import LoadedModel


class Overloaded(RuntimeError):
    pass


@dataclass
class _Job:
    lm: LoadedModel
    z: torch.Tensor
    c: torch.Tensor
    c_info: torch.Tensor
    future: asyncio.Future


def png_bytes(arr) -> bytes:
    """uint8 (H, W, 3) -> PNG bytes, deterministic (fixed settings, no metadata)."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


class Generation:
    def __init__(self, metrics: Metrics, batching: bool = True, window_ms: float = 4.0, max_rows: int = 64,
                 max_queue: int = 2048):
        self.metrics = metrics
        self.batching, self.window, self.max_rows, self.max_queue = batching, window_ms / 1000, max_rows, max_queue
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generator")
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self._pending_rows = 0

    async def start(self) -> None:
        if self.executor._shutdown:  # started again after a stop (a second lifespan)
            self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generator")
        self._queue = asyncio.Queue()
        if self.batching:
            self._task = asyncio.create_task(self._batch_loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def run(self, lm: LoadedModel, z: torch.Tensor, c: torch.Tensor, c_info: torch.Tensor) -> torch.Tensor:
        """Generate (B, 3, R, R) images in [-1, 1] for these latent rows on model lm."""
        B = z.shape[0]
        if self._pending_rows + B > self.max_queue:
            self.metrics.rejected.inc()
            raise Overloaded(f"{self._pending_rows} images are waiting; try again shortly")
        self._pending_rows += B
        try:
            if not self.batching:
                out = await asyncio.get_running_loop().run_in_executor(self.executor, self._forward, lm, z, c, c_info)
                self.metrics.batches.inc()
            else:
                fut = asyncio.get_running_loop().create_future()
                await self._queue.put(_Job(lm, z, c, c_info, fut))
                out = await fut
        finally:
            self._pending_rows -= B
        self.metrics.images.inc(B)
        return out

    async def to_thread(self, fn, *args):
        """Run CPU work (PNG encoding, grids) off the event loop, on the generator's thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    @staticmethod
    def _forward(lm: LoadedModel, z, c, c_info) -> torch.Tensor:
        with lm.lock:
            return forward(lm.G, z, c, c_info)

    async def _batch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        carry: _Job | None = None
        while True:
            first = carry or await self._queue.get()
            carry = None
            jobs, rows = [first], first.z.shape[0]
            deadline = loop.time() + self.window
            while rows < self.max_rows:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                if job.lm is not first.lm or rows + job.z.shape[0] > self.max_rows:
                    carry = job  # another model or too big: starts the next batch
                    break
                jobs.append(job)
                rows += job.z.shape[0]
            z = torch.cat([j.z for j in jobs])
            c = torch.cat([j.c for j in jobs])
            ci = torch.cat([j.c_info for j in jobs])
            try:
                out = await loop.run_in_executor(self.executor, self._forward, first.lm, z, c, ci)
            except Exception as e:
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(e)
                continue
            self.metrics.batches.inc()
            i = 0
            for j in jobs:
                n = j.z.shape[0]
                if not j.future.done():
                    j.future.set_result(out[i:i + n])
                i += n


def encode_images(images: torch.Tensor) -> list[bytes]:
    return [png_bytes(a) for a in to_uint8(images)]
