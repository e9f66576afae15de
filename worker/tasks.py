"""Training tasks. Each takes a job id (JSON), reads everything else from the run store, and is
idempotent: a redelivered, duplicated or restarted job resumes from its last checkpoint, never runs
twice at once (the run lock), and a finished one is left alone."""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from pathlib import Path

from celery import signals

from hybridgan.queue import RECOVER_TASK, TRAIN_TASK
from model import Config, TrainingDiverged, train
from model.checkpoint import read_latest
from model.evaluation import evaluate_checkpoint
from model.jobs import (TERMINAL, JobError, cancel_file, is_orphaned, job_dir, list_jobs, read_job, run_lock,
                        update_job)
from model.store import default_home, publish

from .celery_app import app

log = logging.getLogger("hybridgan.worker")
MAX_ATTEMPTS = int(os.environ.get("HYBRIDGAN_MAX_ATTEMPTS", "3"))
PROGRESS_EVERY_S = float(os.environ.get("HYBRIDGAN_PROGRESS_EVERY_S", "1.0"))
# GPUs (or CPU processes) this worker gives each job that does not set train.nproc itself: jobs then run
# data-parallel under torchrun (model/distributed.py). One job at a time per worker either way.
WORKER_NPROC = int(os.environ.get("HYBRIDGAN_WORKER_NPROC", "1"))


def home() -> Path:
    return default_home()


@app.task(name=TRAIN_TASK)
def train_job(job_id: str) -> str:
    """Run (or resume) one training job end to end; returns its final status."""
    h = home()
    try:
        job_dir(h, job_id)
        read_job(h, job_id)
    except JobError as e:
        log.error("dropping task: %s", e)
        return "unknown"
    with run_lock(h, job_id) as mine:
        if not mine:
            log.info("job %s is running in another process; this delivery does nothing", job_id)
            return "busy"
        return _run(h, job_id)


def _run(h: Path, job_id: str) -> str:
    job = read_job(h, job_id)
    if job["status"] in TERMINAL:
        return job["status"]
    if cancel_file(h, job_id).exists():
        update_job(h, job_id, lambda j: j.update(status="cancelled", finished_at=time.time()))
        return "cancelled"
    if job["attempts"] >= MAX_ATTEMPTS:
        reason = (f"the job was started {job['attempts']} times and its worker died each time; "
                  f"giving up (HYBRIDGAN_MAX_ATTEMPTS={MAX_ATTEMPTS})")
        update_job(h, job_id, lambda j: j.update(status="failed", error=reason, finished_at=time.time()))
        return "failed"

    def start(j):
        j.update(status="running", attempts=j["attempts"] + 1, worker=socket.gethostname(), pid=os.getpid())
        j["started_at"] = j["started_at"] or time.time()
    job = update_job(h, job_id, start)
    run_dir = job_dir(h, job_id)
    resumed = read_latest(run_dir / "checkpoints")
    log.info("job %s attempt %d%s", job_id, job["attempts"], f", resuming at step {resumed['step']}" if resumed else "")

    last = [0.0]

    def progress(p: dict) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S and p["step"] < p["total_steps"]:
            return
        last[0] = now
        update_job(h, job_id, lambda j: j.update(progress={**p, "at": time.time()}))

    stop_path = cancel_file(h, job_id)
    request = job["request"]
    resume_from = None
    if request.get("resume_from") and resumed is None:
        resume_from = request["resume_from_state"]
    try:
        cfg = Config.from_dict(job["config"])
        if WORKER_NPROC > 1 and cfg.train.nproc == 1 and cfg.train.batch_size % WORKER_NPROC == 0:
            cfg.train.nproc = WORKER_NPROC  # a multi-GPU host: data-parallel over all of its GPUs
        result = train(cfg, run_dir, progress_fn=progress,
                       should_stop=stop_path.exists, resume=True, resume_from=resume_from)
    except TrainingDiverged as e:
        return _fail(h, job_id, str(e))
    except Exception as e:  # any failure ends the job with its reason; the last checkpoint stays intact
        log.error("job %s failed:\n%s", job_id, traceback.format_exc())
        return _fail(h, job_id, f"{type(e).__name__}: {e}")
    if result.status == "stopped":
        update_job(h, job_id, lambda j: j.update(status="cancelled", finished_at=time.time(),
                                                  result={"step": result.step, "checkpoint": result.checkpoint}))
        return "cancelled"
    if request.get("evaluate") and result.checkpoint:
        try:  # the report lands beside the checkpoint; publishing carries it to GET /models
            evaluate_checkpoint(result.checkpoint, job["config"]["data"]["path"], h,
                                layout=job["config"]["data"]["layout"], log=log.info)
        except Exception as e:
            return _fail(h, job_id, f"training finished but evaluation failed: {type(e).__name__}: {e}")
    published = None
    if request.get("publish") and result.checkpoint:
        try:
            published = publish(h, result.checkpoint, f"{job_id}-step-{result.step:09d}")
        except Exception as e:
            return _fail(h, job_id, f"training finished but publishing failed: {e}")
    update_job(h, job_id, lambda j: j.update(status="succeeded", finished_at=time.time(), published=published,
                                              result={"step": result.step, "checkpoint": result.checkpoint}))
    return "succeeded"


def _fail(h: Path, job_id: str, reason: str) -> str:
    update_job(h, job_id, lambda j: j.update(status="failed", error=reason, finished_at=time.time()))
    return "failed"


@app.task(name=RECOVER_TASK)
def recover() -> list[str]:
    """Re-queue jobs marked running whose worker died (nobody holds their run lock)."""
    h = home()
    found = [j["id"] for j in list_jobs(h) if is_orphaned(h, j)]
    for job_id in found:
        log.warning("job %s lost its worker; re-queueing it to resume from its last checkpoint", job_id)
        app.send_task(TRAIN_TASK, args=[job_id])
    return found


@signals.worker_ready.connect
def _recover_on_start(sender=None, **_):
    # A worker killed with SIGKILL leaves its job "running" and (on Redis) its message unacknowledged
    # until the visibility timeout; a worker that starts looks for such jobs and resumes them at once.
    try:
        recover()
    except Exception:
        log.exception("recovery scan failed")
