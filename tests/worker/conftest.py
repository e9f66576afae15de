"""Real Redis, a real Celery worker process, the real API: fixtures for the job tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("HYBRIDGAN_TEST_REDIS", "redis://127.0.0.1:6379/15")
TOKEN = "test-admin-token-5b1c"


def redis_up() -> bool:
    host, port = REDIS_URL.split("//")[1].split("/")[0].split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class Worker:
    def __init__(self, home: Path, broker: str, queue: str, log: Path, **env_extra: str):
        self.log = log
        env = {**os.environ, "HYBRIDGAN_HOME": str(home), "HYBRIDGAN_BROKER_URL": broker,
               "HYBRIDGAN_QUEUE": queue, "HYBRIDGAN_PROGRESS_EVERY_S": "0.1", "PYTHONUNBUFFERED": "1", **env_extra}
        self.proc = subprocess.Popen([sys.executable, "-m", "hybridgan.cli", "worker", "--loglevel", "info"],
                                     cwd=ROOT, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if b" ready." in log.read_bytes():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"worker not ready: {log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the whole worker: the main process and its pool child."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def queue(monkeypatch) -> str:
    name = f"test-{uuid.uuid4().hex[:8]}"  # a queue of its own: nothing else on this Redis interferes
    monkeypatch.setenv("HYBRIDGAN_QUEUE", name)
    return name


@pytest.fixture
def job_home(tmp_path, folder_dataset) -> Path:
    home = tmp_path / "home"
    (home / "datasets").mkdir(parents=True)
    (home / "datasets" / "shoes").symlink_to(folder_dataset)
    return home


@pytest.fixture(params=["redis", "filesystem"])
def broker(request) -> str:
    if request.param == "redis":
        if not redis_up():
            pytest.skip(f"no Redis answers at {REDIS_URL} (.ci/run starts one)")
        return REDIS_URL
    return "filesystem://"


@pytest.fixture
def workers(job_home, broker, queue, tmp_path):
    started: list[Worker] = []

    def start(**env_extra: str) -> Worker:
        w = Worker(job_home, broker, queue, tmp_path / f"worker-{len(started)}.log", **env_extra)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


@pytest.fixture
def api(job_home, broker, queue):
    settings = Settings(home=job_home, broker_url=broker, admin_token=TOKEN, poll_seconds=0.1)
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client


def wait_job(api, job_id: str, pred, timeout: float = 120.0) -> dict:
    end = time.monotonic() + timeout
    job = None
    while time.monotonic() < end:
        job = api.get(f"/train-jobs/{job_id}").json()
        if pred(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job never reached the state; last: {job}")
