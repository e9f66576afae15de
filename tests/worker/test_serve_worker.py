"""`hybridgan serve` with its embedded worker: stopping the service stops the worker too."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ..e2e.test_explorer import ROOT, free_port


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of ours counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def test_sigterm_to_serve_stops_its_embedded_worker(tmp_path):
    port = free_port()
    env = {**os.environ, "HYBRIDGAN_HOME": str(tmp_path / "home"), "HYBRIDGAN_BROKER_URL": "filesystem://",
           "HYBRIDGAN_QUEUE": f"serve-{port}"}
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "hybridgan.cli", "serve", "--port", str(port), "--no-default-model",
                             "--log-level", "warning"], cwd=ROOT, env=env, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        worker = int(re.search(r"embedded training worker \(pid (\d+)\)", log.read_text()).group(1))
        assert alive(worker)
        proc.send_signal(signal.SIGTERM)  # what systemd, docker stop and the tests send
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(worker), "the embedded worker outlived the service:\n" + log.read_text()[-2000:]
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
