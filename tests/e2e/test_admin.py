"""The admin flow as a person does it, in headless chromium: start `hybridgan serve` (which starts its
embedded worker), log in with the token, start a job from the page, watch it finish with a drawn loss
curve, and see the explorer switch to the new model by itself."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from .test_explorer import CHROMIUM, ROOT, browser, free_port  # noqa: F401 (browser is a fixture)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
TOKEN = "e2e-admin-token"


@pytest.fixture
def service(tmp_path, folder_dataset):
    home = tmp_path / "home"
    (home / "datasets").mkdir(parents=True)
    (home / "datasets" / "shoes").symlink_to(folder_dataset)
    port = free_port()
    env = {**os.environ, "HYBRIDGAN_HOME": str(home), "HYBRIDGAN_POLL_SECONDS": "0.2",
           "HYBRIDGAN_ADMIN_TOKEN": TOKEN, "HYBRIDGAN_BROKER_URL": "filesystem://",
           "HYBRIDGAN_QUEUE": f"e2e-{port}", "HYBRIDGAN_PROGRESS_EVERY_S": "0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "hybridgan.cli", "serve", "--port", str(port),
                             "--log-level", "warning", "--no-default-model"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=open(tmp_path / "serve.log", "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError((tmp_path / "serve.log").read_text())
        time.sleep(0.1)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)


def test_admin_starts_a_job_watches_it_and_the_explorer_switches(service, browser):  # noqa: F811
    explorer = browser.new_page()
    explorer.goto(service + "/")
    assert "No model is being served yet" in explorer.inner_text("#no-model")

    admin = browser.new_page()
    admin.goto(service + "/admin")
    admin.fill("#token", "wrong")
    admin.click("#login")
    admin.wait_for_function("document.getElementById('message').textContent.includes('token')")
    admin.fill("#token", TOKEN)
    admin.click("#login")
    admin.wait_for_selector("#new-job:not([hidden])")
    admin.wait_for_function("document.querySelectorAll('#job-dataset option').length > 0")
    admin.fill("#job-preset", "tiny")
    admin.fill("#job-epochs", "1")
    admin.click("#submit-job")
    admin.wait_for_selector("tr.job")
    admin.wait_for_function("document.querySelector('tr.job .st').textContent === 'succeeded'", timeout=120_000)
    # the detail panel draws the loss curves and shows the latest samples and checkpoints
    admin.wait_for_function("document.getElementById('legend').textContent.includes('Loss/D')")
    admin.wait_for_function("document.getElementById('latest-sample').naturalWidth > 0")
    assert admin.query_selector_all("#checkpoints li")
    painted = admin.evaluate("""() => { const c = document.getElementById('curves');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""")
    assert painted > 500  # lines were drawn, not a table of numbers

    # the job published its model: the explorer, untouched, switches to it on its own
    explorer.wait_for_function("!document.getElementById('explorer').hidden", timeout=30_000)
    explorer.wait_for_function("document.getElementById('image').naturalWidth > 0")
    assert explorer.inner_text("#model-version").startswith("job-")
