"""Shared fixtures: small image datasets the tests build themselves (no ../shared needed)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

CLASSES = ("Boot", "Sandal", "Shoe")


def shoe_like(cls: int, i: int, size=(34, 26)) -> Image.Image:
    """A non-square image on white with a class-specific coloured shape, varied by i."""
    rng = np.random.default_rng(cls * 1000 + i)
    w, h = size
    im = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(im)
    colour = tuple(int(v) for v in rng.integers(0, 200, 3))
    jitter = int(rng.integers(0, 4))
    if cls == 0:  # tall block: a boot
        d.rectangle([8 + jitter, 3, 20 + jitter, h - 4], fill=colour)
    elif cls == 1:  # thin strips: a sandal
        for y in range(10, h - 3, 5):
            d.line([4 + jitter, y, w - 5, y], fill=colour, width=2)
    else:  # low ellipse: a shoe
        d.ellipse([3 + jitter, h // 2 - 2, w - 4, h - 4], fill=colour)
    return im


def jpeg_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="session")
def folder_dataset(tmp_path_factory) -> Path:
    """root/<Class>/*.jpg with 24 images a class, plus one corrupt JPEG and one text file."""
    root = tmp_path_factory.mktemp("folders") / "shoes"
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(24):
            (root / name / f"{name.lower()} ({i}).jpg").write_bytes(jpeg_bytes(shoe_like(k, i)))
    (root / "Shoe" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (root / "Shoe" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="session")
def manifest_zip(tmp_path_factory) -> Path:
    """A zip shaped like ../shared/data's: manifest.csv plus class folders, one marked duplicate."""
    path = tmp_path_factory.mktemp("zip") / "shoes.zip"
    rows = ["path,label,width,height,bytes,md5,duplicate_of"]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for k, name in enumerate(CLASSES):
            for i in range(12):
                member = f"Shoe vs Sandal vs Boot Dataset/{name}/{name} ({i}).jpg"
                data = jpeg_bytes(shoe_like(k, i))
                zf.writestr(member, data)
                rows.append(f"{member},{name},34,26,{len(data)},,")
        dup = "Shoe vs Sandal vs Boot Dataset/Boot/Boot (99).jpg"
        zf.writestr(dup, jpeg_bytes(shoe_like(0, 0)))
        rows.append(f"{dup},Boot,34,26,0,,Shoe vs Sandal vs Boot Dataset/Boot/Boot (0).jpg")
        zf.writestr("manifest.csv", "\n".join(rows) + "\n")
    return path


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"
