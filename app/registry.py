"""The model registry: watches the published-model alias and hot-swaps generators.

When models/current.json changes, the new generator is loaded into a new object, checked with a
fixed-seed forward pass (shape, finite values) and only then swapped in (one reference assignment,
atomic under the GIL). A request takes the current LoadedModel once at its start and finishes on it,
whatever is swapped meanwhile. A missing, truncated, corrupt or wrong-shaped checkpoint is refused
with a logged reason and a counter, and the last good model keeps serving.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from model.checkpoint import CheckpointError, GeneratorInfo, load_generator
from model.networks import Generator
from model.sampling import generate
from model.store import read_current, version_path

from .metrics import Metrics

log = logging.getLogger("hybridgan.registry")


class NoModel(RuntimeError):
    """Nothing is published yet (or nothing published has loaded)."""


class UnknownVersion(LookupError):
    pass


@dataclass
class LoadedModel:
    G: Generator
    info: GeneratorInfo
    version: str
    loaded_at: float
    record: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)  # one forward at a time per model
    evaluation: dict[str, Any] | None = None  # hybridgan evaluate's report, when one was published with it

    @property
    def class_names(self) -> list[str]:
        return self.info.class_names

    def summary(self) -> dict[str, Any]:
        cfg = self.info.model
        return {"evaluation": self.evaluation,"version": self.version, "step": self.info.step, "resolution": cfg.resolution,
                "class_names": self.class_names, "info_dim": cfg.info_dim, "z_dim": cfg.z_dim,
                "preset": self.info.extra.get("preset"), "ema": self.info.extra.get("ema", False),
                "published_at": self.record.get("published_at"), "loaded_at": self.loaded_at,
                "config": cfg.__dict__}


def check_generator(G: Generator) -> None:
    """The fixed-seed forward pass every model must pass before it serves."""
    x = generate(G, 0, seed=0, n=2)
    R = G.cfg.resolution
    if x.shape != (2, 3, R, R):
        raise CheckpointError(f"generator output has shape {tuple(x.shape)}, expected (2, 3, {R}, {R})")
    if not torch.isfinite(x).all():
        raise CheckpointError("generator output has non-finite values")


class ModelRegistry:
    def __init__(self, home: Path, device: str = "cpu", poll_seconds: float = 1.0,
                 metrics: Metrics | None = None, pinned_cache: int = 4):
        self.home = Path(home)
        self.device = device
        self.poll_seconds = poll_seconds
        self.metrics = metrics or Metrics()
        self._current: LoadedModel | None = None
        self._pinned: OrderedDict[str, LoadedModel] = OrderedDict()
        self._pinned_cache = pinned_cache
        self._seen: tuple | None = None  # (record, file mtime) last acted on
        self._check_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.loading: str | None = None  # version being loaded right now
        self.last_error: str | None = None

    # --- reading -------------------------------------------------------------------------------
    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def get(self, version: str | None = None) -> LoadedModel:
        """The current model, or a pinned version (loaded on demand, a few kept)."""
        cur = self._current
        if version is None or (cur is not None and version == cur.version):
            if cur is None:
                raise NoModel(self.last_error or "no model is published yet")
            return cur
        if version in self._pinned:
            self._pinned.move_to_end(version)
            return self._pinned[version]
        try:
            path = version_path(self.home, version)
        except ValueError as e:
            raise UnknownVersion(str(e)) from None
        if not path.exists():
            raise UnknownVersion(f"model version {version!r} is not in the store")
        lm = self._load(path, version, {})
        self._pinned[version] = lm
        while len(self._pinned) > self._pinned_cache:
            self._pinned.popitem(last=False)
        return lm

    # --- loading -------------------------------------------------------------------------------
    def _load(self, path: Path, version: str, record: dict) -> LoadedModel:
        G, info = load_generator(path, device=self.device)
        check_generator(G)
        report = None
        try:
            report = json.loads(path.with_name(f"{version}.eval.json").read_text())
        except (OSError, ValueError):
            pass
        return LoadedModel(G, info, version, time.time(), record, evaluation=report)

    def check_once(self) -> bool:
        """Look at the alias once; load and swap in a new model if it changed. True if swapped."""
        with self._check_lock:
            try:
                record = read_current(self.home)
            except CheckpointError as e:
                return self._refuse(("bad-alias", str(e)), str(e))
            if record is None:
                return False
            path = self.home / "models" / Path(str(record.get("file", ""))).name
            try:
                mtime = path.stat().st_mtime_ns
            except OSError:
                mtime = None
            seen = (record.get("version"), record.get("file"), record.get("published_at"), mtime)
            if seen == self._seen:
                return False
            self._seen = seen
            if mtime is None:
                return self._refuse(seen, f"published model file {path.name} is missing")
            self.loading = record["version"]
            try:
                lm = self._load(path, record["version"], record)
            except Exception as e:  # refused whatever the reason: the last good model keeps serving
                return self._refuse(seen, f"{path.name}: {e}")
            finally:
                self.loading = None
            old = self._current
            self._current = lm  # the swap: requests that took `old` finish on it
            self.last_error = None
            self.metrics.reloads.inc()
            if old is not None and old.version != lm.version:
                self.metrics.model_info.remove(old.version)
            self.metrics.model_info.labels(lm.version).set(1)
            log.info("serving model %s (step %d)", lm.version, lm.info.step)
            return True

    def _refuse(self, seen: tuple, reason: str) -> bool:
        self._seen = seen
        self.last_error = f"refused published model: {reason}"
        self.metrics.reload_failures.inc()
        log.error("%s; still serving %s", self.last_error,
                  self._current.version if self._current else "nothing")
        return False

    # --- watching ------------------------------------------------------------------------------
    def start(self) -> None:
        self.check_once()
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="model-registry", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.check_once()
            except Exception:  # the watcher must never die
                log.exception("model registry check failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
