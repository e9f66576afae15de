"""Admin: training jobs (create, list, show, cancel, promote) and the datasets they may use."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from model.checkpoint import CheckpointError, read_latest
from model.config import ConfigError, apply_overrides, get_preset
from model.jobs import JobError, cancel_file, create_job, job_dir, list_jobs, read_job, update_job, TERMINAL
from model.store import publish

from ..auth import AdminDep
from ..deps import SettingsDep
from ..jobs_client import BrokerUnavailable

router = APIRouter(prefix="/train-jobs", tags=["train-jobs"])
datasets_router = APIRouter(tags=["train-jobs"])

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,127}$")
FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.png$")
CKPT_RE = re.compile(r"^step-\d{9}$")
FORBIDDEN_OVERRIDES = {"data.path", "data.cache_dir"}


class TrainJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"dataset": "shoes.zip", "preset": "cpu", "epochs": 15, "publish": True}]})

    dataset: str = Field(description="a dataset name from GET /datasets")
    preset: str = Field("cpu", description="e.g. cpu, cpu64, paper, model2, cpu+no-sa (hybridgan presets)")
    overrides: dict[str, str | int | float | bool | list[float]] = Field(
        default_factory=dict, description='config fields, e.g. {"train.lr_g": 0.0001}')
    epochs: float | None = Field(None, gt=0, description="default: the preset's")
    resume_from: str | None = Field(None, description="a job id whose latest checkpoint to continue from")
    publish: bool = Field(False, description="publish the final checkpoint to serving when the job succeeds")
    evaluate: bool = Field(False, description="run hybridgan evaluate on the final checkpoint (minutes on a CPU)")


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    checkpoint: str | None = Field(None, description="e.g. step-000001000; default: the job's latest")


def dataset_dirs(request: Request) -> list[Path]:
    s = request.app.state.settings
    return [s.home / "datasets", *s.dataset_dirs]


def available_datasets(request: Request) -> list[str]:
    names = set()
    for d in dataset_dirs(request):
        if d.is_dir():
            names.update(p.name for p in d.iterdir() if NAME_RE.match(p.name) and (p.is_dir() or p.suffix == ".zip"))
    return sorted(names)


def resolve_dataset(request: Request, name: str) -> Path:
    # A name, never a path: "../", absolute paths and separators are refused.
    if not NAME_RE.match(name) or ".." in name:
        raise HTTPException(422, f"dataset must be a plain name from GET /datasets, got {name!r}")
    for d in dataset_dirs(request):
        p = d / name
        if p.exists():
            return p
    raise HTTPException(422, f"unknown dataset {name!r}; available: {available_datasets(request)}")


def _job_or_404(home: Path, job_id: str) -> dict[str, Any]:
    try:
        return read_job(home, job_id)
    except JobError as e:
        raise HTTPException(404, str(e)) from None


def _value(v: Any) -> str:
    return ",".join(str(x) for x in v) if isinstance(v, list) else json.dumps(v) if isinstance(v, bool) else str(v)


@datasets_router.get("/datasets")
def datasets(request: Request, _: AdminDep):
    """Datasets that training jobs may name (entries of <home>/datasets and HYBRIDGAN_DATASET_DIRS)."""
    return {"datasets": available_datasets(request)}


@router.post("", status_code=202)
async def create(body: TrainJobRequest, request: Request, settings: SettingsDep, _: AdminDep):
    """Validate a training request, create its run directory and queue it; 202 with where to poll."""
    path = resolve_dataset(request, body.dataset)
    bad = FORBIDDEN_OVERRIDES & set(body.overrides)
    if bad:
        raise HTTPException(422, f"{sorted(bad)} cannot be overridden; name the dataset instead")
    if body.epochs is not None and body.epochs > settings.max_job_epochs:
        raise HTTPException(422, f"epochs must be at most {settings.max_job_epochs:g}")
    try:
        cfg = get_preset(body.preset)
        items = [f"{k}={_value(v)}" for k, v in body.overrides.items()] + [f"data.path={path}"]
        if body.epochs is not None:
            items.append(f"train.epochs={body.epochs}")
        cfg = apply_overrides(cfg, items)
    except ConfigError as e:
        raise HTTPException(422, str(e)) from None
    req = body.model_dump()
    if body.resume_from:
        try:
            latest = read_latest(job_dir(settings.home, body.resume_from) / "checkpoints")
        except JobError as e:
            raise HTTPException(422, f"resume_from: {e}") from None
        if latest is None:
            raise HTTPException(422, f"resume_from: job {body.resume_from} has no checkpoint")
        req["resume_from_state"] = str(job_dir(settings.home, body.resume_from) / "checkpoints" / latest["state"])
    job = create_job(settings.home, req, cfg.to_dict())
    try:
        await run_in_threadpool(request.app.state.jobs.send, job["id"])
    except BrokerUnavailable as e:
        reason = str(e)
        update_job(settings.home, job["id"], lambda j: j.update(status="failed", error=f"could not be queued: {reason}",
                                                                  finished_at=time.time()))
        raise HTTPException(503, f"{reason}; the job was not queued, try again when it is back",
                            headers={"Retry-After": "5"}) from None
    return {"id": job["id"], "status": "queued", "url": str(request.url_for("show_job", job_id=job["id"]).path)}


@router.get("")
def index(settings: SettingsDep, _: AdminDep):
    """All jobs, newest first, with status and progress."""
    return {"jobs": [_summary(j) for j in list_jobs(settings.home)]}


def _summary(j: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "status", "created_at", "started_at", "finished_at", "error", "progress", "attempts",
            "published", "cancel_requested")
    return {**{k: j.get(k) for k in keys}, "preset": j["config"].get("preset"),
            "dataset": j["request"].get("dataset")}


@router.get("/{job_id}", name="show_job")
def show(job_id: str, settings: SettingsDep, _: AdminDep):
    """One job: status, progress, latest losses, sample grids, checkpoints, error reason."""
    job = _job_or_404(settings.home, job_id)
    d = job_dir(settings.home, job_id)
    samples = sorted(p.name for p in (d / "samples").glob("*.png")) if (d / "samples").exists() else []
    ckpts = sorted(p.stem for p in (d / "checkpoints").glob("step-*.safetensors")) if (d / "checkpoints").exists() else []
    last = _metrics(d, 1)
    evaluation = None
    if ckpts:
        try:
            evaluation = json.loads((d / "checkpoints" / f"{ckpts[-1]}.eval.json").read_text())
        except (OSError, ValueError):
            pass
    return {**job, "latest_losses": last[-1] if last else None, "checkpoints": ckpts, "evaluation": evaluation,
            "samples": [f"/train-jobs/{job_id}/samples/{n}" for n in samples[-8:]],
            "latest_sample": next((f"/train-jobs/{job_id}/samples/{n}" for n in reversed(samples)
                                   if n.startswith("step-")), None)}


def _metrics(d: Path, max_points: int) -> list[dict[str, Any]]:
    p = d / "metrics.jsonl"
    if not p.exists():
        return []
    rows = []
    for line in p.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line being written
        if "event" not in row:
            rows.append(row)
    if len(rows) > max_points:
        stride = -(-len(rows) // max_points)
        rows = rows[::stride] + ([rows[-1]] if (len(rows) - 1) % stride else [])
    return rows


@router.get("/{job_id}/metrics")
def metrics(job_id: str, settings: SettingsDep, _: AdminDep, max_points: int = 400):
    """The job's logged losses over steps (downsampled to at most max_points), for loss curves."""
    _job_or_404(settings.home, job_id)
    return {"rows": _metrics(job_dir(settings.home, job_id), max(2, min(max_points, 5000)))}


@router.get("/{job_id}/samples/{name}", response_class=FileResponse)
def sample(job_id: str, name: str, settings: SettingsDep, _: AdminDep):
    """A sample grid PNG of the job."""
    _job_or_404(settings.home, job_id)
    if not FILE_RE.match(name):
        raise HTTPException(404, "no such sample")
    p = job_dir(settings.home, job_id) / "samples" / name
    if not p.is_file():
        raise HTTPException(404, "no such sample")
    return FileResponse(p, media_type="image/png")


@router.delete("/{job_id}")
def cancel(job_id: str, settings: SettingsDep, _: AdminDep):
    """Cancel: a queued job never starts; a running one checkpoints and stops within a few steps."""
    _job_or_404(settings.home, job_id)

    def mark(j):
        if j["status"] in TERMINAL:
            return
        j["cancel_requested"] = True
        if j["status"] == "queued":
            j["status"], j["finished_at"] = "cancelled", time.time()
    cancel_file(settings.home, job_id).touch()
    job = update_job(settings.home, job_id, mark)
    return {"id": job_id, "status": job["status"], "cancel_requested": job["cancel_requested"]}


@router.post("/{job_id}/promote")
def promote(job_id: str, request: Request, settings: SettingsDep, _: AdminDep, body: PromoteRequest | None = None):
    """Publish one of the job's checkpoints to serving; the API hot-loads it without a restart."""
    _job_or_404(settings.home, job_id)
    ckpt_dir = job_dir(settings.home, job_id) / "checkpoints"
    name = body.checkpoint if body and body.checkpoint else None
    if name is None:
        latest = read_latest(ckpt_dir)
        if latest is None:
            raise HTTPException(409, f"job {job_id} has no checkpoint yet")
        name = Path(latest["generator"]).stem
    if not CKPT_RE.match(name) or not (ckpt_dir / f"{name}.safetensors").is_file():
        raise HTTPException(404, f"job {job_id} has no checkpoint {name!r}")
    try:
        record = publish(settings.home, ckpt_dir / f"{name}.safetensors", f"{job_id}-{name}")
    except CheckpointError as e:
        raise HTTPException(409, f"checkpoint refused: {e}") from None
    request.app.state.registry.check_once()  # load it now rather than at the next poll
    return {"published": record, "serving": getattr(request.app.state.registry.current, "version", None)}
