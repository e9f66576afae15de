"""Training-job records in the run store: runs/<job_id>/job.json, the durable record of a job.

The API creates and cancels jobs, the worker runs them; both change job.json only through
`update_job`, a read-modify-write under an exclusive lock on runs/<job_id>/.job.lock, each write
atomic (temp file + rename). A worker running a job holds runs/<job_id>/.run.lock for as long as it
runs: the lock dies with its process, even under SIGKILL, so "running but nobody holds the lock"
means the worker died and the job can be resumed.

Statuses: queued -> running -> succeeded | failed | cancelled (queued -> cancelled directly).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from .fsutil import atomic_write_text

JOB_ID_RE = re.compile(r"^job-\d{8}-\d{6}-[0-9a-f]{6}$")
TERMINAL = {"succeeded", "failed", "cancelled"}


class JobError(ValueError):
    pass


def runs_dir(home: str | os.PathLike) -> Path:
    return Path(home) / "runs"


def job_dir(home: str | os.PathLike, job_id: str) -> Path:
    """The run directory of a job; refuses ids that could reach outside the run store."""
    if not JOB_ID_RE.match(job_id or ""):
        raise JobError(f"invalid job id {job_id!r}")
    return runs_dir(home) / job_id


def new_job_id() -> str:
    return time.strftime("job-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(3)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_job(home: str | os.PathLike, job_id: str) -> dict[str, Any]:
    p = job_dir(home, job_id) / "job.json"
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise JobError(f"no job {job_id}") from None


def create_job(home: str | os.PathLike, request: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    job_id = new_job_id()
    d = job_dir(home, job_id)
    d.mkdir(parents=True, exist_ok=False)
    job = {"id": job_id, "status": "queued", "request": request, "config": config, "attempts": 0,
           "created_at": time.time(), "started_at": None, "finished_at": None, "error": None,
           "progress": None, "cancel_requested": False, "published": None, "result": None}
    atomic_write_text(d / "job.json", json.dumps(job, indent=2))
    return job


def update_job(home: str | os.PathLike, job_id: str, fn: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """Apply fn to the job record (in place) under the job lock and write it back atomically."""
    d = job_dir(home, job_id)
    with _locked(d / ".job.lock"):
        job = read_job(home, job_id)
        fn(job)
        job["updated_at"] = time.time()
        atomic_write_text(d / "job.json", json.dumps(job, indent=2))
    return job


def list_jobs(home: str | os.PathLike) -> list[dict[str, Any]]:
    out = []
    d = runs_dir(home)
    if not d.exists():
        return out
    for p in sorted(d.iterdir(), reverse=True):
        if JOB_ID_RE.match(p.name) and (p / "job.json").exists():
            try:
                out.append(json.loads((p / "job.json").read_text()))
            except ValueError:
                continue
    return out


@contextmanager
def run_lock(home: str | os.PathLike, job_id: str) -> Iterator[bool]:
    """Try to take the job's run lock without waiting; yields whether this process holds it."""
    p = job_dir(home, job_id) / ".run.lock"
    with open(p, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def is_orphaned(home: str | os.PathLike, job: dict[str, Any]) -> bool:
    """A job marked running whose run lock nobody holds: its worker died."""
    if job.get("status") != "running":
        return False
    with run_lock(home, job["id"]) as got:
        return got


def cancel_file(home: str | os.PathLike, job_id: str) -> Path:
    return job_dir(home, job_id) / "cancel"
