"""Atomic file writes: every file is written to a temporary name in its folder, flushed, then renamed,
so a reader never sees a half-written file, whatever kills the writer."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from .faults import failpoint


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], point: str = "atomic_write") -> Path:
    """Call write(tmp_path) then rename tmp_path onto path; the temp file is removed on failure.

    `point` names the failpoint between the write and the rename (see faults.py)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        failpoint(point)  # tests: die, or run out of space, after the write and before the rename
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, point: str = "atomic_write") -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
    return atomic_write(path, write, point)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))
