"""The run store: one folder (HYBRIDGAN_HOME) shared by the CLI, the workers and the API.

  runs/<job_id>/                 one training run each (see train.py)
  models/<version>.safetensors   published generators: immutable copies, so pruning a run's
                                 checkpoints never pulls a model out from under the API
  models/current.json            the published-model alias {"version", "file", "published_at", "source"},
                                 rewritten atomically; the API's registry watches it
  cache/                         decoded datasets (data.py)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from .checkpoint import CheckpointError, load_generator, read_generator_metadata
from .fsutil import atomic_write, atomic_write_text

VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# The model the project ships (trained by its own pipeline; see shipped/MODEL_CARD.md). `hybridgan
# serve` publishes it into a store that has no model yet, so a fresh clone serves real shoes at once.
SHIPPED_MODEL = Path(__file__).resolve().parents[1] / "shipped" / "hybridgan-cpu-v1.safetensors"


def default_home() -> Path:
    return Path(os.environ.get("HYBRIDGAN_HOME") or Path.home() / ".hybridgan").expanduser()


def models_dir(home: str | os.PathLike) -> Path:
    return Path(home) / "models"


def safe_version(text: str) -> str:
    """A version name made only of [A-Za-z0-9._-], so it is safe in paths and URLs."""
    v = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:128]
    if not v or not VERSION_RE.match(v):
        raise ValueError(f"cannot make a version name from {text!r}")
    return v


def version_path(home: str | os.PathLike, version: str) -> Path:
    """The published file of a version; refuses names that could reach outside the store."""
    if not VERSION_RE.match(version or ""):
        raise ValueError(f"invalid model version {version!r}")
    return models_dir(home) / f"{version}.safetensors"


def publish(home: str | os.PathLike, checkpoint: str | os.PathLike, version: str | None = None) -> dict[str, Any]:
    """Copy a servable checkpoint into the store and point models/current.json at it.

    The checkpoint is loaded and checked first: a file that does not load is never published.
    """
    checkpoint = Path(checkpoint)
    load_generator(checkpoint)  # raises CheckpointError with the reason
    meta = read_generator_metadata(checkpoint)
    version = safe_version(version or meta.get("version") or checkpoint.stem)
    dest = version_path(home, version)
    if not dest.exists():
        atomic_write(dest, lambda tmp: shutil.copyfile(checkpoint, tmp))
    report = checkpoint.with_name(checkpoint.name.replace(".safetensors", ".eval.json"))
    if report.exists():  # the evaluation travels with the model, for GET /models
        atomic_write(dest.with_name(f"{version}.eval.json"), lambda tmp: shutil.copyfile(report, tmp))
    record = {"version": version, "file": dest.name, "published_at": time.time(), "source": str(checkpoint)}
    atomic_write_text(models_dir(home) / "current.json", json.dumps(record, indent=2))
    return record


def ensure_default_model(home: str | os.PathLike, shipped: Path = SHIPPED_MODEL) -> dict[str, Any] | None:
    """Publish the shipped model when nothing is published in home yet; the record, or None if
    something already was (or no shipped model is here). A published model is never replaced."""
    if read_current(home) is not None or not shipped.exists():
        return None
    return publish(home, shipped, version=shipped.stem)


def read_current(home: str | os.PathLike) -> dict[str, Any] | None:
    """The published-model alias, or None when nothing is published yet."""
    p = models_dir(home) / "current.json"
    try:
        record = json.loads(p.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{p} is not readable JSON: {e}") from None
    if not isinstance(record, dict) or not VERSION_RE.match(str(record.get("version", ""))):
        raise CheckpointError(f"{p} does not name a valid model version")
    return record


def list_versions(home: str | os.PathLike) -> list[str]:
    d = models_dir(home)
    return sorted(p.stem for p in d.glob("*.safetensors")) if d.exists() else []
