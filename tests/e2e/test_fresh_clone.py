"""The README's first command as a new user runs it: a fresh clone of this repository into an empty
folder, with no virtual environment, no run store and no ../shared next to it, then `./scripts/serve`
exactly as written, then the explorer in headless chromium showing the shipped model's shoes.

(The second command, `./scripts/test`, is what CI runs on its own clean clone.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import httpx
import pytest

from .test_explorer import CHROMIUM, ROOT, browser, free_port  # noqa: F401 (browser is a fixture)

pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
              pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                                 reason="needs git and a git checkout to clone")]


def test_a_fresh_clone_serves_the_shipped_model_in_the_explorer(tmp_path, browser):
    clone = tmp_path / "empty" / "hybridgan"
    clone.parent.mkdir()
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    assert not (clone / ".venv").exists() and not (clone / ".hybridgan").exists()
    # a new user's shell: none of this checkout's virtual environment or settings
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HYBRIDGAN_", "VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(ROOT)))
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(["./scripts/serve", "--port", str(port)], cwd=clone, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 900  # pip installs torch and the rest into the new .venv first
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(1)
        else:
            raise AssertionError("not ready in time:\n" + (tmp_path / "serve.log").read_text()[-3000:])
        assert (clone / ".venv" / "bin" / "python").exists()  # the command set itself up
        current = httpx.get(url + "/models").json()["current"]
        assert current["version"] == "hybridgan-cpu-v1" and current["evaluation"]["generated"]["class_fidelity"]

        page = browser.new_page()
        page.goto(url + "/")
        loaded = "document.getElementById('image').complete && document.getElementById('image').naturalWidth > 0"
        page.wait_for_function(loaded)
        assert page.inner_text("#model-version") == "hybridgan-cpu-v1"
        shots = {}
        for name in ("Boot", "Sandal", "Shoe"):
            before = page.get_attribute("#image", "src")
            page.select_option("#class", label=name)
            if f"class={name}" not in before:
                page.wait_for_function(f"document.getElementById('image').getAttribute('src') !== {before!r}")
            page.wait_for_function(loaded)
            assert f"class={name}" in page.get_attribute("#image", "src")
            shots[name] = page.locator("#image").screenshot()
        assert len(set(shots.values())) == 3  # three different shoes, one per class
        page.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
