"""Redis restarted while a job runs and while the API serves: generation goes on (it never needs
Redis), submissions answer 503 while the broker is down, and nothing queued or running is lost."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from model.store import publish

from ..app.conftest import make_checkpoint
from .conftest import TOKEN, Worker, wait_job

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server of the test's own, persisting to disk like the docker-compose one (AOF)."""

    def __init__(self, folder, port: int):
        self.folder, self.port, self.proc = folder, port, None

    def start(self) -> None:
        self.proc = subprocess.Popen([REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                                      "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: redis flushes its append-only file and exits
            self.proc.wait(timeout=10)


def test_a_redis_restart_loses_nothing_and_generation_never_stops(job_home, queue, tmp_path):
    redis = PrivateRedis(tmp_path, free_port())
    redis.start()
    url = f"redis://127.0.0.1:{redis.port}/0"
    publish(job_home, make_checkpoint(tmp_path / "serving.safetensors", 1, "serving"))
    worker = None
    try:
        settings = Settings(home=job_home, broker_url=url, admin_token=TOKEN, poll_seconds=0.1)
        with TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as api:
            worker = Worker(job_home, url, queue, tmp_path / "worker.log")
            running = api.post("/train-jobs", json={"dataset": "shoes", "preset": "tiny", "epochs": 4}).json()["id"]
            queued = api.post("/train-jobs", json={"dataset": "shoes", "preset": "tiny", "epochs": 0.5}).json()["id"]
            wait_job(api, running, lambda j: (j["progress"] or {}).get("step", 0) >= 2)

            redis.stop()
            assert api.post("/generate", json={"class": "Boot"}).status_code == 200  # serving needs no Redis
            down = api.post("/train-jobs", json={"dataset": "shoes", "preset": "tiny"})
            assert down.status_code == 503 and "not reachable" in down.json()["detail"]
            time.sleep(1.0)
            redis.start()

            a = wait_job(api, running, lambda j: j["status"] in ("succeeded", "failed"), timeout=180)
            b = wait_job(api, queued, lambda j: j["status"] in ("succeeded", "failed"), timeout=180)
            assert a["status"] == "succeeded" and b["status"] == "succeeded", (a["error"], b["error"])
            again = api.post("/train-jobs", json={"dataset": "shoes", "preset": "tiny", "epochs": 0.2})
            assert again.status_code == 202
            assert wait_job(api, again.json()["id"], lambda j: j["status"] == "succeeded")
    finally:
        if worker is not None:
            worker.stop()
        redis.stop()
