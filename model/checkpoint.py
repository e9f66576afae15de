"""Checkpoints: servable generators (safetensors, tensors only) and resume state (worker only).

A servable generator file holds G's tensors and, in its metadata, the ModelConfig that rebuilds it,
the class names and the training step: `load_generator(path)` needs nothing else and never runs code.
Resume state (D, optimisers, RNG, position) is a separate torch file of plain tensors and numbers,
loaded with weights_only=True. Every file is written to a temporary name and renamed; a run's
`checkpoints/latest.json` names the newest complete pair and is written after both files.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save

from .config import ConfigError, ModelConfig, model_config_from_dict
from .fsutil import atomic_write, atomic_write_bytes, atomic_write_text
from .networks import Generator

FORMAT = "hybridgan.generator/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message says what is wrong with it."""


@dataclass
class GeneratorInfo:
    path: str
    model: ModelConfig
    class_names: list[str]
    step: int
    version: str  # "<run>/<file stem>" or what the metadata says; names the model in API answers
    extra: dict[str, Any]


def save_generator(G: Generator, path: str | os.PathLike, *, class_names: list[str], step: int,
                   version: str = "", extra: dict[str, Any] | None = None) -> Path:
    if len(class_names) != G.cfg.num_classes:
        raise ValueError(f"{len(class_names)} class names for a {G.cfg.num_classes}-class generator")
    tensors = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    meta = {"format": FORMAT, "model_config": json.dumps(asdict(G.cfg)),
            "class_names": json.dumps(class_names), "step": str(int(step)),
            "version": version or Path(path).stem, "extra": json.dumps(extra or {})}
    return atomic_write_bytes(path, st_save(tensors, metadata=meta), point="checkpoint")


def read_generator_metadata(path: str | os.PathLike) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a Hybrid-GAN generator (format {meta.get('format')!r})")
    return meta


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Generator, GeneratorInfo]:
    """Rebuild the generator from its file alone (config in the metadata), in eval mode."""
    meta = read_generator_metadata(path)
    try:
        cfg = model_config_from_dict(json.loads(meta["model_config"]))
        class_names = json.loads(meta["class_names"])
        step = int(meta.get("step", 0))
        extra = json.loads(meta.get("extra", "{}"))
        G = Generator(cfg)
    except (KeyError, ValueError, TypeError, ConfigError) as e:
        raise CheckpointError(f"{path} has bad metadata: {e}") from None
    if len(class_names) != cfg.num_classes:
        raise CheckpointError(f"{path}: {len(class_names)} class names for {cfg.num_classes} classes")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} has unreadable tensors: {e}") from None
    expected = G.state_dict()
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match its config: missing {sorted(missing)[:5]}, "
                              f"unexpected {sorted(unexpected)[:5]}")
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise CheckpointError(f"{path}: tensor {k} has shape {tuple(v.shape)}, "
                                  f"the config needs {tuple(expected[k].shape)}")
    G.load_state_dict(state)
    G.to(device).eval()
    info = GeneratorInfo(str(path), cfg, class_names, step, meta.get("version", Path(path).stem), extra)
    return G, info


def save_state(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Resume state: nested dicts/lists of tensors, numbers and strings (weights_only-loadable)."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp), point="checkpoint")


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"resume state not found: {path}") from None
    except Exception as e:  # truncated or foreign files raise many types
        raise CheckpointError(f"{path} is not a readable resume state: {type(e).__name__}: {e}") from None


def write_latest(ckpt_dir: Path, step: int, generator: str, state: str) -> None:
    atomic_write_text(ckpt_dir / "latest.json",
                      json.dumps({"step": step, "generator": generator, "state": state}))


def read_latest(ckpt_dir: Path) -> dict[str, Any] | None:
    """The newest complete checkpoint pair of a run, or None if it has none."""
    p = Path(ckpt_dir) / "latest.json"
    if not p.exists():
        return None
    try:
        latest = json.loads(p.read_text())
        return latest if (Path(ckpt_dir) / latest["state"]).exists() else None
    except (ValueError, KeyError, OSError):
        return None
