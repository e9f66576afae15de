"""Shoe image datasets: reading, preparing, caching, splitting and batching.

Sources (DataConfig.layout):
  manifest       a .zip with manifest.csv (path, label, duplicate_of), as ../shared/data ships
  folders        a folder-per-class tree, on disk or inside a .zip (<root>/<Class>/**/<image>)
  utzap50k-hard  the official UT-Zap50K tree (<Category>/<Subcategory>/<Brand>/*.jpg) mapped to the
                 paper's 12-class dataset1 (sec. 4.1)
  utzap50k-easy  the same mapped to the paper's 5-class dataset2
  auto           manifest if the zip has one, UT-Zap50K if the tree looks like it, else folders

Every image is padded to a square on white (the shoe keeps its shape), resized to the model's
resolution and cached once as uint8, so epochs never wait on JPEG decoding. Images that cannot be
decoded are skipped and counted; byte-identical duplicates are kept once. The held-out split is chosen
by a hash of each image's bytes: the same images are held out on every machine, whatever the order.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from .config import DataConfig
from .fsutil import atomic_write_bytes, atomic_write_text

CACHE_VERSION = 1
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}
MAX_PIXELS = 6000 * 6000  # larger images are refused as decompression bombs, never decoded


class DataError(ValueError):
    """A dataset that cannot be used; the message says why."""


# The paper's dataset1 ("hard", 12 classes) and dataset2 ("easy", 5 classes) from UT-Zap50K's
# <Category>/<Subcategory> folders (sec. 4.1). The paper gives class names only; the mapping is
# our reading of them: "fast walker" is UT-Zap50K's Shoes/Firstwalker, "flip flops" its flat sandals,
# and the infant subcategories (crib shoes, prewalkers) are the images it removed.
UTZAP_HARD: dict[str, list[tuple[str, str]]] = {
    "Boat Shoes": [("shoes", "boatshoes")],
    "Boots": [("boots", "*")],
    "Clogs and Mules": [("shoes", "clogsandmules")],
    "Flip Flops": [("sandals", "flat")],
    "Firstwalker": [("shoes", "firstwalker")],
    "Flats": [("shoes", "flats")],
    "Heels": [("shoes", "heels")],
    "Loafers": [("shoes", "loafers")],
    "Oxfords": [("shoes", "oxfords")],
    "Sandals": [("sandals", "athletic"), ("sandals", "heel")],
    "Slippers": [("slippers", "*")],
    "Sneakers and Athletic Shoes": [("shoes", "sneakersandathleticshoes")],
}
UTZAP_EASY = ["Boat Shoes", "Boots", "Loafers", "Oxfords", "Sneakers and Athletic Shoes"]
UTZAP_DROPPED = ("prewalker", "crib")
UTZAP_CATEGORIES = {"boots", "sandals", "shoes", "slippers"}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower().replace("&", "and"))


def utzap_class(parts: list[str], classes: list[str]) -> str | None:
    """The paper's class of a UT-Zap50K path (its folder names as a list), or None if not used."""
    norm = [_norm(p) for p in parts]
    for i, p in enumerate(norm[:-1]):
        if p in UTZAP_CATEGORIES:
            sub = norm[i + 1]
            if any(d in sub for d in UTZAP_DROPPED):
                return None
            for cls in classes:
                for cat, want in UTZAP_HARD[cls]:
                    if cat == p and want in ("*", sub):
                        return cls
            return None
    return None


# --- reading sources -----------------------------------------------------------------------------

@dataclass
class Entry:
    label: str
    name: str  # member name in the zip, or path relative to the root


@dataclass
class Source:
    """Where the image bytes are and which class each belongs to."""

    path: Path
    layout: str
    entries: list[Entry]
    ignored: int = 0  # files that are not images (by extension)
    _zip: zipfile.ZipFile | None = field(default=None, repr=False)

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        return (self.path / name).read_bytes()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _is_image(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTS and not Path(name).name.startswith(".")


def open_source(cfg: DataConfig) -> Source:
    path = Path(cfg.path).expanduser()
    if not cfg.path or not path.exists():
        raise DataError(f"dataset not found: {cfg.path!r} (give a .zip or a folder of class folders)")
    if path.is_file():
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"{path} is not a readable zip archive: {e}") from None
        names = [n for n in zf.namelist() if not n.endswith("/") and "__MACOSX" not in n]
    else:
        zf = None
        names = sorted(str(p.relative_to(path)).replace(os.sep, "/") for p in path.rglob("*") if p.is_file())
    layout = cfg.layout
    if layout == "auto":
        if "manifest.csv" in names and zf is not None:
            layout = "manifest"
        elif _looks_like_utzap(names):
            layout = "utzap50k-hard"
        else:
            layout = "folders"
    images = [n for n in names if _is_image(n)]
    ignored = len([n for n in names if n != "manifest.csv"]) - len(images)
    if layout == "manifest":
        if zf is None or "manifest.csv" not in names:
            raise DataError(f"layout 'manifest' needs a zip with manifest.csv: {path}")
        rows = list(csv.DictReader(io.TextIOWrapper(zf.open("manifest.csv"), encoding="utf-8")))
        if not rows or not {"path", "label"} <= set(rows[0]):
            raise DataError("manifest.csv needs the columns path and label")
        entries = [Entry(r["label"], r["path"]) for r in rows if not r.get("duplicate_of")]
    elif layout == "folders":
        entries = _folder_entries(images)
    else:
        classes = list(UTZAP_HARD) if layout == "utzap50k-hard" else UTZAP_EASY
        entries = []
        for n in images:
            cls = utzap_class(n.split("/")[:-1], classes)
            if cls is not None:
                entries.append(Entry(cls, n))
    if not entries:
        raise DataError(f"no images found in {path} with layout {layout!r}")
    return Source(path, layout, entries, ignored, zf)


def _looks_like_utzap(names: list[str]) -> bool:
    dirs = {_norm(part) for n in names for part in n.split("/")[:-1]}
    return len(UTZAP_CATEGORIES & dirs) >= 2 and "shoes" in dirs


def _folder_entries(images: list[str]) -> list[Entry]:
    """Class = the first folder below the deepest folder that all images share."""
    dirs = [n.split("/")[:-1] for n in images]
    if not dirs:
        return []
    if any(not d for d in dirs):
        raise DataError("a folder-per-class dataset needs every image inside a class folder")
    common = os.path.commonprefix(dirs)
    if any(len(d) == len(common) for d in dirs):  # images directly in the shared folder
        common = common[:-1]
    depth = len(common)
    return [Entry(d[depth], n) for d, n in zip(dirs, images)]


# --- preparing images ----------------------------------------------------------------------------

def prepare_image(data: bytes, resolution: int) -> np.ndarray:
    """JPEG/PNG bytes -> (R, R, 3) uint8: padded to a square on white, then resized.

    Raises ValueError for anything that is not a decodable, reasonably sized image.
    """
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise ValueError(f"image of {w}x{h} px is too large (decompression bomb guard)")
        im = im.convert("RGB")
    side = max(w, h)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(im, ((side - w) // 2, (side - h) // 2))
    square = square.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(square, dtype=np.uint8)


def holdout_of(digest: bytes, fraction: float) -> bool:
    """Held out iff the image's hash falls in the first `fraction` of the hash space."""
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


@dataclass
class ShoeData:
    """A prepared dataset held in memory as uint8 (N, R, R, 3)."""

    images: np.ndarray
    labels: np.ndarray  # (N,) int64 class index
    holdout: np.ndarray  # (N,) bool
    class_names: list[str]
    digests: list[str]  # sha1 of each image's bytes
    skipped: list[str]  # "name: reason" for each image that could not be read
    duplicates: int = 0
    ignored: int = 0

    def split(self, which: str) -> "ShoeData":
        mask = ~self.holdout if which == "train" else self.holdout
        idx = np.nonzero(mask)[0]
        return ShoeData(self.images[idx], self.labels[idx], self.holdout[idx], self.class_names,
                        [self.digests[i] for i in idx], self.skipped, self.duplicates, self.ignored)

    def __len__(self) -> int:
        return len(self.labels)

    def summary(self) -> dict:
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        held = np.bincount(self.labels[self.holdout], minlength=len(self.class_names))
        return {"images": len(self), "resolution": int(self.images.shape[1]) if len(self) else 0,
                "classes": {n: {"train": int(c - h), "holdout": int(h)}
                            for n, c, h in zip(self.class_names, counts, held)},
                "train": int((~self.holdout).sum()), "holdout": int(self.holdout.sum()),
                "skipped": len(self.skipped), "duplicates": self.duplicates,
                "ignored_non_images": self.ignored}


def default_cache_dir() -> Path:
    from .store import default_home  # store imports checkpoint -> networks; kept out of import time

    return default_home() / "cache"


def _cache_key(cfg: DataConfig, resolution: int) -> str:
    path = Path(cfg.path).expanduser().resolve()
    if path.is_file():
        st = path.stat()
        ident = [str(path), st.st_size, st.st_mtime_ns]
    else:
        ident = [str(path)] + sorted([str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns]
                                     for p in path.rglob("*") if p.is_file())
    blob = json.dumps([CACHE_VERSION, ident, cfg.layout, resolution, cfg.holdout_fraction])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def load_dataset(cfg: DataConfig, resolution: int, progress: Callable[[int, int], None] | None = None,
                 use_cache: bool = True) -> ShoeData:
    """Read, prepare and cache a dataset; later calls with the same source and settings hit the cache."""
    cfg.validate()
    cache_dir = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
    key = _cache_key(cfg, resolution) if Path(cfg.path).expanduser().exists() else ""
    meta_path, img_path = cache_dir / f"{key}.json", cache_dir / f"{key}.npy"
    if use_cache and key and meta_path.exists() and img_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            images = np.load(img_path)
            if images.shape == (len(meta["labels"]), resolution, resolution, 3):
                return ShoeData(images, np.asarray(meta["labels"], dtype=np.int64),
                                np.asarray(meta["holdout"], dtype=bool), meta["class_names"],
                                meta["digests"], meta["skipped"], meta["duplicates"], meta["ignored"])
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    data = _build(cfg, resolution, progress)
    if use_cache and key:
        cache_dir.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.save(buf, data.images)
        atomic_write_bytes(img_path, buf.getvalue())
        # The JSON is written last: a cache without it is never read.
        atomic_write_text(meta_path, json.dumps({
            "labels": data.labels.tolist(), "holdout": data.holdout.tolist(),
            "class_names": data.class_names, "digests": data.digests, "skipped": data.skipped,
            "duplicates": data.duplicates, "ignored": data.ignored}))
    return data


def _build(cfg: DataConfig, resolution: int, progress) -> ShoeData:
    src = open_source(cfg)
    try:
        class_names = sorted({e.label for e in src.entries})
        index = {n: i for i, n in enumerate(class_names)}
        images, labels, digests, skipped, seen = [], [], [], [], set()
        duplicates = 0
        for i, e in enumerate(src.entries):
            if progress and i % 500 == 0:
                progress(i, len(src.entries))
            try:
                raw = src.read(e.name)
                digest = hashlib.sha1(raw).hexdigest()
                if digest in seen:
                    duplicates += 1
                    continue
                arr = prepare_image(raw, resolution)
            except Exception as exc:  # any undecodable file is skipped and counted, never fatal
                skipped.append(f"{e.name}: {type(exc).__name__}: {exc}"[:300])
                continue
            seen.add(digest)
            images.append(arr)
            labels.append(index[e.label])
            digests.append(digest)
        if progress:
            progress(len(src.entries), len(src.entries))
    finally:
        src.close()
    if not images:
        raise DataError(f"none of the {len(src.entries)} images in {cfg.path} could be read")
    holdout = np.array([holdout_of(bytes.fromhex(d), cfg.holdout_fraction) for d in digests], dtype=bool)
    return ShoeData(np.stack(images), np.asarray(labels, dtype=np.int64), holdout, class_names,
                    digests, skipped, duplicates, src.ignored)


# --- batching ------------------------------------------------------------------------------------

class Batches:
    """Shuffled minibatches from an in-memory uint8 dataset, resumable at any (epoch, step).

    The order of epoch e is a permutation drawn from a generator seeded with (seed, e), so a resumed
    run sees exactly the batches an uninterrupted one would. The last partial batch is dropped.
    """

    def __init__(self, data: ShoeData, batch_size: int, seed: int, hflip: bool, device: torch.device,
                 channels_last: bool = True, shard=None):
        if len(data) < batch_size:
            raise DataError(f"the training split has {len(data)} images, fewer than one batch of "
                            f"{batch_size}")
        self.images = torch.from_numpy(np.ascontiguousarray(data.images))  # (N, R, R, 3) uint8
        self.labels = torch.from_numpy(data.labels)
        self.batch_size, self.seed, self.hflip = batch_size, seed, hflip
        self.device, self.channels_last = device, channels_last
        self.steps_per_epoch = len(data) // batch_size
        self.shard = shard  # data-parallel: this rank keeps rows rank::world of each global batch

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.labels), generator=g)
        flips = torch.rand(len(self.labels), generator=g) < 0.5
        for s in range(start_step, self.steps_per_epoch):
            idx = perm[s * self.batch_size:(s + 1) * self.batch_size]
            if self.shard is not None:
                idx = self.shard.take(idx)
            x = self.images[idx]  # (B, R, R, 3) uint8
            if self.hflip:
                f = flips[idx]
                x[f] = x[f].flip(2)  # x is a copy, so the cache is untouched
            x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2)  # (B, 3, R, R) view, NHWC memory
            x = x.float().div_(127.5).sub_(1.0)
            if not self.channels_last:
                x = x.contiguous()
            yield x, self.labels[idx].to(self.device, non_blocking=True)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, R, R) in [-1, 1] -> (B, R, R, 3) uint8, rounding to nearest."""
    y = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return y.permute(0, 2, 3, 1).cpu().numpy()
